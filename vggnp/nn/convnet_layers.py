"""The other layers a Keras convnet may hold (``vggnp/models/keras_layers.py`` builds them): the
same contract as ``layers.py`` (``forward(x)``, ``backward(dout, options)``, the
``BackwardPass`` given by the network), with shapes and formulas in each docstring. VGG16
itself needs none.
"""

import numpy as np

from .activation_functions import ACTIVATIONS
from .layers import PLAIN, Layer, MaxPool2D, windows
from .made import MadeFrom
from .relevance import Affine, stabilise


def proportional_relevance(layer, r, options):
    """LRP-0 through an averaging layer (iNNvestigate's rule for average pooling): each
    input gets its share of its windows' sums, R_in = x * backward(R / out)."""
    return layer.x * layer.backward(r / stabilise(layer.out), options)


class AvgPool2D(Layer):
    """Average-pool, as Keras' AveragePooling2D (same window rules as :class:`MaxPool2D`).

    out[n, i, j, c] = mean of the window's elements inside the image ("same" padding is
    not counted, as TensorFlow does): out = sum / count.   dx: each window element gets
    dout / count; overlapping windows add.
    """

    def __init__(self, name, pool_size=(2, 2), strides=None, padding="valid"):
        self.name, self.pool_size, self.padding = name, tuple(pool_size), padding
        self.strides = tuple(strides or pool_size)

    _padded, _pad = MaxPool2D._padded, MaxPool2D._pad

    def _count(self, x_shape):
        """(1, H', W', 1): how many elements of each window lie inside the image."""
        ones, _, (out_h, out_w) = self._padded(np.ones((1, *x_shape[1:3], 1)), 0.0)
        return sum(v for _, _, v in windows(ones, *self.pool_size, self.strides, out_h, out_w))

    relevance = proportional_relevance

    def forward(self, x):
        self.x, self.x_shape = x, x.shape
        xp, _, (out_h, out_w) = self._padded(x, 0.0)
        total = sum(v for _, _, v in windows(xp, *self.pool_size, self.strides, out_h, out_w))
        self.out = (total / self._count(x.shape)).astype(x.dtype, copy=False)
        return self.out

    def backward(self, dout, options=PLAIN):
        share = dout / self._count(self.x_shape)
        dxp, (top, left), (out_h, out_w) = self._padded(np.zeros(self.x_shape, dout.dtype), 0)
        for _, _, grad in windows(dxp, *self.pool_size, self.strides, out_h, out_w):
            grad += share
        h, w = self.x_shape[1:3]
        return dxp[:, top:top + h, left:left + w]


class GlobalAvgPool2D(Layer):
    """x: (N, H, W, C) -> out: (N, C), the mean over H and W (Keras GlobalAveragePooling2D);
    keepdims: (N, 1, 1, C) (a squeeze-and-excitation block's).
    dx[n, i, j, c] = dout[n, c] / (H * W)."""

    def __init__(self, name, keepdims=False):
        self.name, self.keepdims = name, keepdims

    relevance = proportional_relevance

    def forward(self, x):
        self.x, self.x_shape = x, x.shape
        self.out = x.mean(axis=(1, 2), keepdims=self.keepdims)
        return self.out

    def backward(self, dout, options=PLAIN):
        n, h, w, c = self.x_shape
        return np.broadcast_to(dout.reshape(n, 1, 1, c) / (h * w), self.x_shape).copy()


class GlobalMaxPool2D(GlobalAvgPool2D):
    """x: (N, H, W, C) -> out: (N, C) (keepdims: (N, 1, 1, C)), the max over H and W.
    dx: dout where x is its channel's max, shared equally between tied places (as
    TensorFlow's gradient of reduce_max: a channel of zeros after a ReLU is one tie)."""

    relevance = Layer.gradient_relevance

    def forward(self, x):
        self.x = x
        self.out = x.max(axis=(1, 2), keepdims=True)
        return self.out if self.keepdims else self.out[:, 0, 0, :]

    def backward(self, dout, options=PLAIN):
        n, _, _, c = self.x.shape
        at_max = self.x == self.out
        ties = at_max.sum(axis=(1, 2), keepdims=True, dtype=dout.dtype)
        return at_max * (dout.reshape(n, 1, 1, c) / ties)


def _read_only(array):
    array.flags.writeable = False
    return array


class BatchNorm(Layer):
    """Batch normalisation at inference, over the last (channel) axis, as Keras'
    BatchNormalization with its moving statistics:
        out = gamma * (x - mean) / sqrt(var + eps) + beta  = x * scale + shift
        dx  = dout * scale,   scale = gamma / sqrt(var + eps)
    x: any shape (..., C) -> same. Parameters (C,) each; gamma None: 1 (Keras'
    scale=False), beta None: 0 (center=False). scale and shift are made from them, again
    when one is replaced (an array changed in place is not seen: ``made.MadeFrom``).
    """

    def __init__(self, name, gamma, beta, mean, var, eps=1e-3):
        self.name = name
        self.weights = tuple(a for a in (gamma, beta, mean, var) if a is not None)
        gamma = _read_only(np.ones_like(mean)) if gamma is None else gamma
        beta = _read_only(np.zeros_like(mean)) if beta is None else beta
        self.gamma, self.beta, self.mean, self.var, self.eps = gamma, beta, mean, var, eps
        self.made = MadeFrom()

    @property
    def statistics(self):
        """(gamma, beta, mean, var): what the affine map is made from."""
        return self.gamma, self.beta, self.mean, self.var

    @property
    def scale(self):
        """gamma / sqrt(var + eps), (C,)."""
        return self._affine()[0]

    @property
    def shift(self):
        """beta - mean * scale, (C,)."""
        return self._affine()[1]

    def _affine(self):
        def make(gamma, beta, mean, var):
            scale = (gamma / np.sqrt(var + self.eps)).astype(mean.dtype)
            return scale, (beta - mean * scale).astype(mean.dtype)
        return self.made.get("affine", self.statistics, make)

    def forward(self, x):
        out = x * self.scale
        out += self.shift
        return out

    def backward(self, dout, options=PLAIN):
        return dout * self.scale

    def folded_into(self, layer):
        """A copy of ``layer`` (a conv or dense layer with no activation, whose output
        this BatchNorm alone takes) computing this BatchNorm's output: the one affine map
        of the pair, w' = w * scale (per output channel), b' = b * scale + shift; made
        once per kernel and kept on the layer (``made_from_weights``; a big dense
        layer's made a block of rows at a time, ``dense_by_rows``)."""
        # In float64, rounded once: w' as close to w * scale as its dtype allows.
        scale = self.gamma / np.sqrt(np.float64(self.var) + self.eps)
        shift = self.beta - self.mean * scale

        def fold(w, b):
            return (layer.kernel_times(np.float64(w), scale).astype(w.dtype),
                    (b * scale + shift).astype(b.dtype))
        return layer.with_weights(*layer.made_from_weights(("folded", self.name), fold,
                                                            also=self.statistics))

    def relevance(self, r, options):
        """Folded into the conv before it, or refused by name (``lrp_plan.Composite``)."""
        return options.relevance.rule_for(self).propagate(self, r)


class Rescaling(Layer):
    """out = x * scale + offset (Keras' Rescaling, e.g. scale 1/255);  dx = dout * scale.
    scale, offset: numbers, or (C,) arrays, one per channel (EfficientNet's Rescaling, and
    Keras' Normalization: scale 1 / max(sqrt(variance), 1e-7), offset -mean * scale)."""

    def __init__(self, name, scale, offset=0.0):
        self.name, self.scale, self.offset = name, scale, offset

    def forward(self, x):
        return (x * self.scale + self.offset).astype(x.dtype, copy=False)

    def relevance(self, r, options):
        """Each input feeds one output alone: it gets that output's relevance, whole (the
        paper's view of a one-to-one layer; iNNvestigate multiplies it by the scale)."""
        return r

    def backward(self, dout, options=PLAIN):
        return dout * self.scale


class Dropout(Layer):
    """Identity at inference: Keras only drops units while training."""

    relevance = Layer.gradient_relevance

    def __init__(self, name, rate=0.5):
        self.name, self.rate = name, rate

    def forward(self, x):
        return x

    def backward(self, dout, options=PLAIN):
        return dout


class Activation(Layer):
    """An activation on its own (Keras' Activation layer): out = activation(z), z = input.
    A pass ``from_logits`` that starts here returns dout as d/dz (the logits' gradient
    when this layer is the model's final softmax or sigmoid)."""

    def __init__(self, name, activation):
        self.name, self.activation_name = name, activation
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x):
        # its backward needs only the activation's own cache: z, the input, is kept for a
        # last layer's logits alone (Xception's 36 ReLU layers held 46 MB of maps otherwise)
        self.z = x if self.keeps_logits else None
        return self.activation.forward(x)

    def backward(self, dout, options=PLAIN):
        return self.activation_backward(dout, options)

    def relevance(self, r, options):
        """A ReLU (or a linear activation, or the output's softmax skipped by a pass from
        the logits) passes relevance as it is: ``lrp.check_relu_network`` refuses others."""
        return r


class Reshape(Layer):
    """Keras' Reshape: each sample (N, ...) -> (N, *shape), the order of the elements
    kept; backward reshapes the gradient back to the input's shape."""

    relevance = Layer.gradient_relevance

    def __init__(self, name, shape):
        super().__init__(name)
        self.shape = tuple(shape)

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(x.shape[0], *self.shape)

    def backward(self, dout, options=PLAIN):
        return dout.reshape(self.in_shape)


def batch_norms_after(layers, inputs_of):
    """[(layer, the BatchNorm after it)] for each conv or dense layer with no activation
    whose output one BatchNorm alone takes: the pairs ``BatchNorm.folded_into`` folds.
    layers: in order; inputs_of: {layer name: the names of the tensors it takes}."""
    takers, by_name = {}, {layer.name: layer for layer in layers}
    for name, inputs in inputs_of.items():
        for source in inputs:
            takers.setdefault(source, []).append(name)
    pairs = []
    for layer in layers:
        source = by_name.get(inputs_of[layer.name][0])
        if isinstance(layer, BatchNorm) and isinstance(source, Affine) and \
                takers[source.name] == [layer.name] and source.activation_name == "linear":
            pairs.append((source, layer))
    return pairs
