"""VGG16 (Simonyan & Zisserman, configuration D) as a chain of the lesson's layers, built
from arrays:

    model = VGG16(weights)                 # {layer name: (kernel, bias)}, Keras' layouts
    probs = model.predict(x)               # x: (N, 224, 224, 3), preprocessed

Inference is deterministic: VGG16's classifier has no dropout at test time. This is the
textbook network (every conv through ``im2col``); ``vggnp.VGG16`` (``vggnp/models/vgg16.py``)
is the same network with the fast conv path and a ``load`` from a weights file.
"""

from . import spec
from .layers import Conv2D, Dense, Flatten, MaxPool2D
from .network import Network


class VGG16(Network):
    """VGG16 from a dict of Keras weights.

    weights: {layer name: (kernel, bias)}; convs (3, 3, C, F), dense (D, M). The
    classifier (fc1, fc2, predictions) is optional: without it ("notop") the model ends
    at block5_pool. input_size: (H, W) of the images; fc1 expects H//32 * W//32 * C inputs.
    """

    def __init__(self, weights, input_size=spec.INPUT_SIZE):
        self.has_top = all(name in weights for name in spec.DENSE_NAMES)
        layers = []
        for name in spec.LAYER_NAMES:
            if name.endswith("_pool"):
                layers.append(self.pool_layer(name))
            elif name in spec.CONV_NAMES:
                layers.append(self.conv_layer(name, *weights[name]))
            elif not self.has_top:
                break
            elif name == "flatten":
                layers.append(Flatten(name))
            else:
                activation = "softmax" if name == "predictions" else "relu"
                layers.append(self.dense_layer(name, *weights[name], activation))
        super().__init__(layers, input_size, channels=3, batch_split="block4_pool")

    def conv_layer(self, name, w, b):
        """One of VGG16's 3x3 "same" ReLU convs: the textbook Conv2D (the fast VGG16
        overrides it, ``dense_layer`` and ``pool_layer``)."""
        return Conv2D(name, w, b, activation="relu")

    def pool_layer(self, name):
        """One of VGG16's 2x2 max-pools, stride 2: the textbook MaxPool2D."""
        return MaxPool2D(name)

    def dense_layer(self, name, w, b, activation):
        """fc1, fc2 or predictions: the textbook Dense (the fast VGG16 overrides it too)."""
        return Dense(name, w, b, activation=activation)

    default_preprocess = "vgg16"  # Keras' caffe mode, as the ImageNet weights were trained

    def _missing_hint(self, name):
        return " (this is a notop model)" if name in spec.LAYER_NAMES else ""

    def _require_top(self):
        if not self.has_top:
            raise ValueError("this model was loaded from a notop file (no fc1/fc2/predictions); "
                             "the classifier needs the full VGG16 weights file")

    def logits(self, x):
        """x: (N, H, W, 3) -> (N, 1000) class scores before the softmax."""
        self._require_top()
        return super().logits(x)

    def predict(self, x):
        """x: (N, H, W, 3) -> (N, 1000) softmax probabilities (as Keras' ``model.predict``)."""
        self._require_top()
        return super().predict(x)
