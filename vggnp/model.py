"""VGG16 as a plain list of layers, named as Keras names them.

    model = VGG16.load("weights.h5")
    probs = model.predict(x)                          # x: (N, 224, 224, 3), preprocessed
    a = model.forward(x, until="block5_conv3")        # any named intermediate output
    d = model.backward(dout, start="predictions", stop="block5_conv3", from_logits=True)

Forward runs the layers in order, each keeping its own cache; backward walks the same
list in reverse from ``start`` down to ``stop``. Inference is deterministic: VGG16's
classifier has no dropout at test time. ``Network`` holds this chain logic; ``VGG16``
builds its layers from a weights file, as ``vggnp.keras_model`` does for other convnets.
"""

import copy
import time
from dataclasses import replace

import numpy as np

from . import spec
from .layers import BackwardPass, Conv2D, Dense, Flatten, MaxPool2D


class Network:
    """A chain of named layers: forward to any layer, backward between any two.

    layers: :class:`vggnp.layers.Layer` objects (``name``, ``forward(x)``,
    ``backward(dout)``). input_size: (H, W) of the images; channels: their C.
    batch_split: the layer up to which a batch runs one image at a time (see
    ``gradcam.forward_keeping``), or None: where one image's activations stop filling
    the CPU's cache (VGG16: block4_pool).
    """

    default_preprocess = "none"  # the inputs as given; VGG16 and Keras models say theirs

    def __init__(self, layers, input_size, channels=3, batch_split=None):
        self.layers = list(layers)
        self.input_size = tuple(input_size)
        self.channels = channels
        self.batch_split = batch_split
        self.names = [layer.name for layer in self.layers]
        self._last_run = None  # index of the deepest layer the last forward ran
        self._first_run = None  # ... and of the first: backward cannot go below it

    @property
    def dtype(self):
        """The weights' dtype (float32, or float64 for gradient checks)."""
        return next(layer.weights[0].dtype for layer in self.layers if layer.weights)

    @property
    def conv_names(self):
        """The names of the conv layers, in order: the layers a CAM can explain."""
        return [layer.name for layer in self.layers if isinstance(layer, Conv2D)]

    @property
    def outputs(self):
        """The number of output units (VGG16: 1000; a sigmoid binary classifier: 1)."""
        return next(layer.weights[0].shape[-1] for layer in reversed(self.layers)
                    if layer.weights)

    def replica(self):
        """A network with the same weights (shared, not copied) and caches and workspace
        of its own: two replicas run at once in two threads (``vggnp.stream`` runs one
        batch on each), where one network's layer caches would be overwritten."""
        twin = copy.copy(self)
        workspace = {}
        twin.layers = [layer.replica(workspace) for layer in self.layers]
        twin._first_run = twin._last_run = None
        return twin

    def layer(self, name):
        """The layer called ``name`` (a Keras layer name, e.g. ``block5_conv3``)."""
        if name not in self.names:
            raise KeyError(f"no layer {name!r}{self._missing_hint(name)}; layers: "
                           f"{', '.join(self.names)}")
        return self.layers[self.names.index(name)]

    def _missing_hint(self, name):
        return ""

    @property
    def output_activation(self):
        """The last layer's activation: "softmax" or "sigmoid" (outputs are probabilities),
        or "linear" (outputs are logits); "linear" also for a model that ends without one
        (a notop VGG16 ends at block5_pool)."""
        return self.layers[-1].activation_name or "linear"

    @property
    def last_conv(self):
        """The last conv layer's name: Grad-CAM's default, as in the paper and keras-io."""
        return self.conv_names[-1]

    def forward(self, x, until=None, keep=(), start=None, trace=None):
        """Run x through the layers up to and including ``until`` (default: the last).

        x: (N, H, W, 3) preprocessed images. Returns the output of ``until``, e.g.
        (N, 14, 14, 512) for block5_conv3 or (N, 1000) probabilities for predictions.
        With ``keep`` (layer names), returns (output, {name: output of that layer}).
        start: a layer name; x is then that layer's output, e.g. (N, 14, 14, 512) for
        block5_conv3, and only the layers after it run.
        trace: a list; one dict per layer run is appended (see ``vggnp.trace``).
        """
        stop = self.names.index(self.layer(until or self.names[-1]).name)
        first = 0 if start is None else self.names.index(self.layer(start).name) + 1
        if first > stop:
            raise ValueError(f"until={until!r} comes before start={start!r}")
        kept = {}
        out = x
        for layer in self.layers[first:stop + 1]:
            began = time.perf_counter()
            layer_input, out = out, layer.forward(out)
            if trace is not None:
                trace.append({"layer": layer, "input": layer_input.shape, "output": out.shape,
                              "ms": 1000 * (time.perf_counter() - began)})
            if layer.name in keep:
                kept[layer.name] = out
        self._first_run, self._last_run = first, stop
        missing = set(keep) - set(kept)
        if missing:
            raise KeyError(f"{sorted(missing)} not among the layers run up to {until}")
        return (out, kept) if keep else out

    def logits(self, x):
        """x: (N, H, W, C) -> (N, K) class scores before the final softmax or sigmoid:
        the pre-activation ``z`` kept by the last layer (a Dense or an Activation)."""
        self.forward(x)
        return self.layers[-1].z

    def predict(self, x):
        """x: (N, H, W, C) -> (N, K) the model's outputs (as Keras' ``model.predict``)."""
        return self.forward(x)

    def backward(self, dout, start=None, stop=None, from_logits=False, param_grads=False,
                 guided=False, trace=None):
        """Backpropagate ``dout`` from the output of ``start`` down to the output of ``stop``.

        dout: gradient w.r.t. the output of ``start`` (default: the deepest layer of the
        last forward), or, if ``from_logits``, w.r.t. the input of start's activation (the
        logits, when start is the last layer).
        stop: a layer name, or None for the input image.
        Returns the gradient w.r.t. the output of ``stop`` (post-ReLU for a conv layer, as
        Keras defines a layer's output), or w.r.t. the input: (N, H, W, 3).
        param_grads: also keep ``dw``/``db`` on each conv/dense layer passed through.
        guided: guided backpropagation, every ReLU passing only positive gradients.
        trace: a list; one dict per layer passed through is appended (``vggnp.trace``).
        Needs a forward pass that reached ``start`` (caches live on the layers).
        """
        if self._last_run is None:
            raise RuntimeError("run forward before backward")
        first = self.names.index(self.layer(start or self.names[self._last_run]).name)
        if first > self._last_run:
            raise RuntimeError(f"run forward up to {self.names[first]} before backward")
        last = -1 if stop is None else self.names.index(self.layer(stop).name)
        if last > first:
            raise ValueError(f"stop layer {stop} comes after start layer {self.names[first]}")
        if last + 1 < self._first_run:
            raise RuntimeError(f"the last forward started after {self.names[self._first_run - 1]}"
                               f"; backward cannot reach {stop or 'the input'}")
        if from_logits and self.layers[first].activation_name is None:
            raise ValueError(f"from_logits needs a start layer with an activation, not "
                             f"{self.names[first]}")
        options = BackwardPass(guided=guided, param_grads=param_grads)
        d = dout
        for index in range(first, last, -1):
            layer = self.layers[index]
            began = time.perf_counter()
            layer.backward_pass = replace(options, from_logits=from_logits and index == first)
            try:
                d = layer.backward(d)
            finally:
                del layer.backward_pass  # back to the class's plain pass
            if trace is not None:
                trace.append({"layer": layer, "gradient": d.shape,
                              "norm": float(np.linalg.norm(d)),
                              "ms": 1000 * (time.perf_counter() - began)})
        return d


class VGG16(Network):
    """VGG16 from a dict of Keras weights.

    weights: {layer name: (kernel, bias)}; convs (3, 3, C, F), dense (D, M). The
    classifier (fc1, fc2, predictions) is optional: without it ("notop") the model ends
    at block5_pool. input_size: (H, W) of the images; fc1 expects H//32 * W//32 * C inputs.
    """

    def __init__(self, weights, input_size=spec.INPUT_SIZE):
        self.has_top = all(name in weights for name in spec.DENSE_NAMES)
        layers = []
        workspace = {}  # the convs' padded-input buffers, shared: the layers run one at a time
        for name in spec.LAYER_NAMES:
            if name.endswith("_pool"):
                layers.append(MaxPool2D(name))
            elif name in spec.CONV_NAMES:
                layers.append(Conv2D(name, *weights[name], activation="relu",
                                     buffers=workspace))
            elif not self.has_top:
                break
            elif name == "flatten":
                layers.append(Flatten(name))
            else:
                activation = "softmax" if name == "predictions" else "relu"
                layers.append(Dense(name, *weights[name], activation=activation))
        super().__init__(layers, input_size, channels=3, batch_split="block4_pool")

    @classmethod
    def load(cls, path, dtype=np.float32, input_size=spec.INPUT_SIZE, standard=True,
             need_top=False):
        """Load any supported Keras weights file (see ``vggnp.files.weights``).

        dtype: float32 (default) or float64 (for gradient checks). standard=False accepts
        VGG-shaped models of other widths. need_top: refuse a notop file up front.
        """
        from .files.weights import read_vgg16_weights  # the model itself is built from arrays
        weights = read_vgg16_weights(path, input_size=input_size, standard=standard,
                                     need_top=need_top)
        weights = {name: (k.astype(dtype, copy=False), b.astype(dtype, copy=False))
                   for name, (k, b) in weights.items()}
        return cls(weights, input_size=input_size)

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
