"""The layers of VGG16, each a small class with ``forward`` and ``backward``.

Conventions (as in CS231n's ``layers.py``; one contract for every layer, as micrograd):
- Arrays are NHWC: ``x: (N, H, W, C)``.
- ``forward(x)`` returns the output and keeps on the layer only what ``backward`` needs
  (``self.x``, ``self.out``...).
- ``backward(dout, options)`` returns ``dx``, the gradient of the loss with respect to the
  input, with the shape of ``x``. It never writes into ``dout``. ``options`` is the
  :class:`BackwardPass` the network passes to every layer of the pass, in plain sight:
  guided ReLUs, keeping parameter gradients as ``self.dw``/``self.db``, starting from the
  logits.
- The dtype follows the layer's weights (float32 by default, float64 for gradient checks):
  inputs are cast to it so that one stray float64 array never upcasts a float32 model.
- A convolution is one matrix product after ``im2col`` (``im2col.py``, with its adjoint
  ``col2im``). This is the textbook version; ``vggnp/fast/layers.py`` computes the same
  sums faster (``FastConv2D``, which the loaded models use) and is tested against it, and
  ``naive.py`` holds the loops both are tested against.
"""

import copy

import numpy as np

from .activation_functions import ACTIVATIONS, relu
from .backward_pass import PLAIN
from .relevance import Affine
from .im2col import col2im, im2col, max_of, window_padding, windows
from .made import MadeFrom


class Layer:
    """What every layer of a network's chain has: a Keras ``name``, ``forward(x)`` and
    ``backward(dout, options)``; ``weights``, its parameter arrays (none by default);
    ``activation_name``, the activation it ends in (None: it has none); and ``takes_many``,
    True for the layers that join branches of a graph (``merge_layers.py``: a list in, a
    list of gradients out)."""

    activation_name = None
    weights = ()
    takes_many = False
    keeps_logits = True  # its z for Network.logits: a network sets False but for its last

    def __init__(self, name):
        self.name = name

    def replica(self, workspace):
        """A layer with this one's weights (the same arrays, not copies) and settings but
        caches of its own, so that two replicas can run at once in two threads.
        workspace: the replica network's scratch buffers (``fast/direct_conv.UsesWorkspace``)."""
        twin = copy.copy(self)
        if self.activation_name is not None:  # the activation keeps a cache too (its mask)
            twin.activation = ACTIVATIONS[self.activation_name]()
        return twin

    def activation_backward(self, dout, options):
        """d/dz of a layer that ends in an activation: dout through the activation's
        backward (guided if the pass is), or dout itself when the pass starts from the
        logits here. A deconvnet pass keeps max(dout, 0) at a ReLU (ReLU networks only:
        ``lrp.check_relu_network``)."""
        if options.from_logits or self.activation_name == "linear":
            return dout
        if options.deconvnet:
            return relu(dout)
        return self.activation.backward(dout, options.guided)

    def relevance(self, r, options):
        """LRP: the relevance r at this layer's output -> at its input. By default a layer
        has no rule: one line naming it (the layers that have one say how they pass it)."""
        raise ValueError(f"LRP has no rule for layer {self.name} "
                         f"({type(self).__name__}); use a gradient method for this model")

    def gradient_relevance(self, r, options):
        """Relevance passed as the gradient is, by the layers that only move values
        (max-pooling: to each window's winner; Flatten...), as iNNvestigate does."""
        return self.backward(r, options)


# --------------------------------------------------------------------------------------
# Parameter layers
# --------------------------------------------------------------------------------------

class Conv2D(Affine, Layer):
    """2-D convolution followed by its activation (as a Keras Conv2D, channels last).

    Parameters: kernel w: (KH, KW, C, F) as Keras stores it, bias b: (F,) (zeros for
    ``use_bias=False``). strides: (SH, SW); padding: "same" or "valid" (Keras' rules, see
    :func:`window_padding`). VGG16's convs are 3x3, stride 1, "same".
    x: (N, H, W, C) -> out: (N, H', W', F)   ("same": H' = ceil(H / SH); "valid":
    H' = (H - KH) // SH + 1).

    Forward, as one GEMM (cross-correlation, no kernel flip, like Keras):
        col = im2col(x)                         (N*H'*W', KH*KW*C)
        z   = col @ W + b,  W = w.reshape(KH*KW*C, F)
        out = activation(z)
    Backward:
        dz  = activation'(dout)
        dx  = col2im(dz @ W.T)
        dW  = col.T @ dz,  db = sum of dz over N, H', W'
    """

    def __init__(self, name, w, b=None, activation="relu", strides=(1, 1), padding="same"):
        self.name, self.w = name, w
        self.use_bias = b is not None  # Keras' use_bias=False: a zero bias, not a parameter
        self.b = np.zeros(w.shape[3], w.dtype) if b is None else b
        self.strides, self.padding = tuple(strides), padding
        self.activation_name, self.activation = activation, ACTIVATIONS[activation]()
        self.made = MadeFrom()  # made_from_weights' kernels

    def pads(self, x_shape):
        """((top, bottom), (left, right)) zero padding for an input of x_shape."""
        return window_padding(x_shape[1], x_shape[2], *self.w.shape[:2], self.strides,
                              self.padding)

    def forward(self, x):
        self.x = np.asarray(x, dtype=self.w.dtype)  # kept for backward
        return self.activation.forward(self.pre_activation(self.x), inplace=True)

    def forget(self):
        """Drop what the last forward kept for the backward: a graph's pass ran a copy of
        this layer instead (``folding.py``), and the cache would hold a map for nothing.
        (Only for a layer without an activation: the folded ones.)"""
        self.x = None

    def pre_activation(self, x):
        """z = im2col(x) @ W + b: (N, H, W, C) -> (N, H', W', F), a new array."""
        z = self.product(self.unfold(x), self.w.reshape(-1, self.w.shape[3]))
        z = z.reshape(self.output_shape(x.shape))
        z += self.b
        return z

    def unfold(self, x):
        """im2col(x) for this layer (the fast path copies it a window row at a time)."""
        return im2col(x, *self.w.shape[:2], self.pads(x.shape), self.strides)

    def product(self, a, b):
        """a @ b: im2col's one matrix product, forward and backward (a subclass may cut
        it into blocks for several threads)."""
        return a @ b

    def output_shape(self, x_shape):
        n, h, w, _ = x_shape
        (top, bottom), (left, right) = self.pads(x_shape)
        kh, kw, _, f = self.w.shape
        return (n, (h + top + bottom - kh) // self.strides[0] + 1,
                (w + left + right - kw) // self.strides[1] + 1, f)

    @property
    def weights(self):
        return (self.w, self.b) if self.use_bias else (self.w,)

    def backward(self, dout, options=PLAIN):
        dz = self.activation_backward(dout, options)
        if options.param_grads:
            self.param_gradients(dz)
        return self.input_gradient(dz)

    def kept_pre_activation(self, r):
        """After a ReLU, z = out wherever out > 0; where out = 0 the relevance coming down
        is 0 too unless the layer above spread it regardless of its inputs (the flat and
        w^2 rules, say): then z is computed again."""
        out = self.activation.out if self.activation_name == "relu" else None
        if out is None or self.twin or np.logical_and(out <= 0, r != 0).any():
            return self.pre_activation(self.x)
        return out

    def param_gradients(self, dz):
        """dW = col.T @ dz, db = sum of dz: kept as self.dw (KH, KW, C, F), self.db (F,)."""
        f = self.w.shape[3]
        self.dw = (self.unfold(self.x).T @ dz.reshape(-1, f)).reshape(self.w.shape)
        self.db = dz.reshape(-1, f).sum(axis=0)

    def input_gradient(self, dz):
        """dx = col2im(dz @ W.T): dz (N, H', W', F) -> dx (N, H, W, C)."""
        kh, kw, c, f = self.w.shape
        dcol = self.product(dz.reshape(-1, f), self.w.reshape(kh * kw * c, f).T)
        return col2im(dcol, self.x.shape, kh, kw, self.pads(self.x.shape), self.strides)


class Dense(Affine, Layer):
    """Fully connected layer followed by its activation (as a Keras Dense).

    Parameters: w: (D, M), b: (M,).   x: (N, D) -> out: (N, M).
        z = x @ w + b,  out = activation(z)
        dz = activation'(dout);  dx = dz @ w.T;  dw = x.T @ dz;  db = sum of dz over N
    """

    def __init__(self, name, w, b=None, activation="relu"):
        self.name, self.w = name, w
        self.use_bias = b is not None
        self.b = np.zeros(w.shape[1], w.dtype) if b is None else b
        self.activation_name = activation
        self.activation = ACTIVATIONS[activation]()
        self.made = MadeFrom()

    def forward(self, x):
        self.x = np.asarray(x, dtype=self.w.dtype)
        self.z = self.pre_activation(self.x)
        return self.activation.forward(self.z)

    def pre_activation(self, x):
        """z = x @ w + b: (N, D) -> (N, M)."""
        return x @ self.w + self.b

    def input_gradient(self, dz):
        """dx = dz @ w.T: (N, M) -> (N, D)."""
        return dz @ self.w.T

    def kept_pre_activation(self, r):
        """z of the last forward, kept by it (a twin's is computed: its forward never ran)."""
        return self.pre_activation(self.x) if self.twin else self.z

    @property
    def weights(self):
        return (self.w, self.b) if self.use_bias else (self.w,)

    def backward(self, dout, options=PLAIN):
        dz = self.activation_backward(dout, options)
        if options.param_grads:
            # Only on request: for fc1 this is a (25088, 4096) matrix, 411 MB in float32.
            self.dw = self.x.T @ dz
            self.db = dz.sum(axis=0)
        return self.input_gradient(dz)


# --------------------------------------------------------------------------------------
# Layers without parameters
# --------------------------------------------------------------------------------------

class MaxPool2D(Layer):
    """Max-pool, as Keras' MaxPooling2D: windows of pool_size moved by strides (default:
    the pool size), "valid" (windows that do not fit are dropped: an odd last row or column
    of a 2x2 pool) or "same" (padded with -inf, which never wins).

    x: (N, H, W, C) -> out: (N, H', W', C); VGG16: 2x2, stride 2, "valid": H' = H // 2.
    out[n, i, j, c] = max over the window x[n, SH*i:SH*i+PH, SW*j:SW*j+PW, c]
    dx: each window's gradient goes to ONE position, its first maximum in row-major order
    (as TensorFlow does); overlapping windows add. After a ReLU many windows are all
    zeros; splitting their gradient among the ties would change Grad-CAM's weights.
    """

    def __init__(self, name, pool_size=(2, 2), strides=None, padding="valid"):
        self.name, self.pool_size, self.padding = name, tuple(pool_size), padding
        self.strides = tuple(strides or pool_size)

    def _padded(self, x, fill):
        """x: (N, H, W, C) -> (xp, (top, left), (H', W')): x padded with ``fill`` ("same"),
        H' = (H + top + bottom - PH) // SH + 1 (W' alike)."""
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        pads = window_padding(x.shape[1], x.shape[2], ph, pw, self.strides, self.padding)
        xp = self._pad(x, pads, fill) if any(pads[0] + pads[1]) else x
        out_size = ((xp.shape[1] - ph) // sh + 1, (xp.shape[2] - pw) // sw + 1)
        return xp, (pads[0][0], pads[1][0]), out_size

    def _pad(self, x, pads, fill):
        """x (N, H, W, C) padded by ((top, bottom), (left, right)) of ``fill``, a new array."""
        return np.pad(x, ((0, 0), *pads, (0, 0)), constant_values=fill)

    relevance = Layer.gradient_relevance  # to each window's winner

    def forward(self, x):
        """The max over each window's rows, then over its columns: the same values as the
        window's max at once, but the first step takes whole rows of the padded map, so
        NumPy's loops run over W*C values at a time, not over one pixel's C."""
        self.x = x
        xp, _, (out_h, out_w) = self._padded(x, -np.inf)
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        rows = max_of([xp[:, i:i + sh * (out_h - 1) + 1:sh] for i in range(ph)])
        self.out = max_of([rows[:, :, j:j + sw * (out_w - 1) + 1:sw] for j in range(pw)])
        return self.out

    def backward(self, dout, options=PLAIN):
        xp, (top, left), (out_h, out_w) = self._padded(self.x, -np.inf)
        dxp = np.zeros(xp.shape, dtype=dout.dtype)
        routed = np.zeros(self.out.shape, dtype=bool)  # windows whose max is found
        offsets = windows(xp, *self.pool_size, self.strides, out_h, out_w)
        grads = windows(dxp, *self.pool_size, self.strides, out_h, out_w)
        for (_, _, view), (_, _, grad) in zip(offsets, grads):  # row-major window order
            first = (view == self.out) & ~routed
            grad += dout * first
            routed |= first
        h, w = self.x.shape[1:3]
        return dxp[:, top:top + h, left:left + w]


class Flatten(Layer):
    """x: (N, H, W, C) -> out: (N, H*W*C), in channels-last (C fastest) order as Keras:
    the order the classifier's first kernel expects. dx = dout reshaped back."""

    relevance = Layer.gradient_relevance

    def __init__(self, name="flatten"):
        self.name = name

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, options=PLAIN):
        return dout.reshape(self.x_shape)
