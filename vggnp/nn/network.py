"""A network as a plain list of named layers (VGG16's are named as Keras names them).

    probs = model.predict(x)                          # x: (N, 224, 224, 3), preprocessed
    a = model.forward(x, until="block5_conv3")        # any named intermediate output
    d = model.backward(dout, start="predictions", stop="block5_conv3", from_logits=True)

Forward runs the layers in order, each keeping its own cache; backward walks the same
list in reverse from ``start`` down to ``stop``, handing each layer the pass's options
(``BackwardPass``). ``vgg16.py`` builds VGG16's chain from arrays; ``vggnp/models/``
builds networks from files.
"""

import copy
import time
from dataclasses import replace

import numpy as np

from .activation_functions import sigmoid
from .backward_pass import BackwardPass
from .layers import Conv2D


def model_dtype(dtype):
    """The dtype a network computes in, float32 or float64 (for gradient checks); a
    ValueError naming any other (an integer model would read as an untrained one)."""
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, not {np.dtype(dtype)}")
    return np.dtype(dtype)


class Network:
    """A chain of named layers: forward to any layer, backward between any two.

    layers: :class:`vggnp.nn.layers.Layer` objects (``name``, ``forward(x)``,
    ``backward(dout, options)``). input_size: (H, W) of the images; channels: their C.
    batch_split: the layer up to which a batch runs one image at a time (see
    ``vggnp.fast.batch_split.forward_keeping``), or None: where one image's activations stop filling
    the CPU's cache (VGG16: block4_pool).
    """

    default_preprocess = "none"  # the inputs as given; VGG16 and Keras models say theirs
    supports_start = True  # forward(x, start=name) runs from a layer's output (a chain can)
    block_threads = False  # its products cut into blocks for fast/blocks.py's BLOCKS' threads

    def __init__(self, layers, input_size, channels=3, batch_split=None):
        self.layers = list(layers)
        for layer in self.layers:  # logits() reads the last layer's z; no other need keep it
            layer.keeps_logits = layer is self.layers[-1]
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
    def class_count(self):
        """The number of classes K of ``class_scores``: the output units, or 2 for one
        unit (a binary classifier's two classes)."""
        return 2 if self.outputs == 1 else self.outputs

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

    @property
    def map_names(self):
        """The layers a CAM can explain (outputs (N, h, w, C)): a chain's conv layers."""
        return self.conv_names

    @property
    def default_layer(self):
        """The CAMs' default layer: a chain's last conv (VGG16: block5_conv3)."""
        return self.last_conv

    def forward(self, x, until=None, keep=(), start=None, trace=None, fold=True):
        """Run x through the layers up to and including ``until`` (default: the last).

        x: (N, H, W, 3) preprocessed images. Returns the output of ``until``, e.g.
        (N, 14, 14, 512) for block5_conv3 or (N, 1000) probabilities for predictions.
        With ``keep`` (layer names), returns (output, {name: output of that layer}).
        start: a layer name; x is then that layer's output, e.g. (N, 14, 14, 512) for
        block5_conv3, and only the layers after it run.
        trace: a list; one dict per layer run is appended (see ``vggnp.trace``).
        fold: a graph's BatchNorm folding (``Graph.forward``); a chain runs every layer
        as itself.
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

    def class_scores(self, outputs):
        """outputs: (N, K) of this network's last forward -> one score per class: (N, K),
        or for a single unit the two classes (N, 2): a sigmoid p -> [1 - p, p], 1 - p as
        s(-z) from the logit z the last layer kept (float32's 1 - p is 0 once p rounds to
        1, z > 17; s(-z) is 2e-9 at 20); a logit z -> [-z, z] (class 0's logit is -z, as
        ``backward_seed`` has it); another activation f -> [1 - f, f]."""
        if outputs.ndim != 2 or outputs.shape[1] != 1:
            return outputs
        if self.output_activation == "linear":
            return np.concatenate([-outputs, outputs], axis=1)
        if self.output_activation == "sigmoid":
            p, one_minus_p = sigmoid(self.layers[-1].z)
            if not np.array_equal(p, outputs):
                raise ValueError("class_scores: the outputs of this network's last forward, "
                                 "please (its kept logits are another batch's)")
            return np.concatenate([one_minus_p, p], axis=1)
        return np.concatenate([1 - outputs, outputs], axis=1)

    def backward(self, dout, start=None, stop=None, from_logits=False, param_grads=False,
                 guided=False, trace=None, deconvnet=False, relevance=None):
        """Backpropagate ``dout`` from the output of ``start`` down to the output of ``stop``.

        dout: gradient w.r.t. the output of ``start`` (default: the deepest layer of the
        last forward), or, if ``from_logits``, w.r.t. the input of start's activation (the
        logits, when start is the last layer).
        stop: a layer name, or None for the input image.
        Returns the gradient w.r.t. the output of ``stop`` (post-ReLU for a conv layer, as
        Keras defines a layer's output), or w.r.t. the input: (N, H, W, 3).
        param_grads: also keep ``dw``/``db`` on each conv/dense layer passed through.
        guided: guided backpropagation, every ReLU passing only positive gradients.
        deconvnet: every ReLU passing max(dout, 0) (Zeiler and Fergus).
        relevance: an LRP composite (``vggnp.methods.lrp_plan``): dout is then the relevance
        at ``start``, and each layer's ``relevance`` passes it down by its rule.
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
        options = BackwardPass(guided=guided, param_grads=param_grads, deconvnet=deconvnet,
                               relevance=relevance)
        d = dout
        for index in range(first, last, -1):
            layer = self.layers[index]
            began = time.perf_counter()
            # from_logits holds for the first layer of the pass only: its activation is skipped
            step = layer.backward if relevance is None else layer.relevance
            arriving = d
            d = step(d, replace(options, from_logits=from_logits and index == first))
            if trace is not None:  # "arriving", "sum": a relevance pass's conservation
                trace.append({"layer": layer, "gradient": d.shape,
                              "norm": float(np.linalg.norm(d)),
                              "arriving": float(arriving.sum(dtype=np.float64)),
                              "sum": float(d.sum(dtype=np.float64)),
                              "ms": 1000 * (time.perf_counter() - began)})
        return d

