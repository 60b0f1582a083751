"""The layers of VGG16, each a small class with ``forward`` and ``backward``.

Conventions (as in CS231n's ``layers.py``):
- Arrays are NHWC: ``x: (N, H, W, C)``.
- ``forward(x)`` returns the output and keeps on the layer only what ``backward`` needs
  (``self.x``, ``self.mask``, ``self.argmax``...).
- ``backward(dout)`` returns ``dx``, the gradient of the loss with respect to the input,
  with the shape of ``x``. It never writes into ``dout``. Parameter gradients, when asked
  for (``param_grads=True``), are kept on the layer as ``self.dw`` and ``self.db``.
- The dtype follows the layer's weights (float32 by default, float64 for gradient checks):
  inputs are cast to it so that one stray float64 array never upcasts a float32 model.
"""

import numpy as np


# --------------------------------------------------------------------------------------
# im2col / col2im: a 3x3 convolution becomes one matrix product.
# --------------------------------------------------------------------------------------

def same_padding(size, k, stride):
    """Keras/TensorFlow "same": out = ceil(size / stride), the padding split as evenly as
    possible with the extra pixel after. Returns (out, pad_before, pad_after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def window_padding(h, w, kh, kw, strides, padding):
    """((top, bottom), (left, right)) for a KHxKW window moved by ``strides`` over an
    HxW input: zero for "valid" (windows that do not fit are dropped), else "same"."""
    if padding == "valid":
        return (0, 0), (0, 0)
    return same_padding(h, kh, strides[0])[1:], same_padding(w, kw, strides[1])[1:]


def _pads(pad):
    """An int p (p on every side) or ((top, bottom), (left, right))."""
    return ((pad, pad), (pad, pad)) if np.isscalar(pad) else pad


def _windows(xp, kh, kw, stride, out_h, out_w):
    """For each offset (i, j) in a KHxKW window, the (N, H', W', C) view of the element
    at that offset in every window: xp[:, i + stride*y, j + stride*x, :]."""
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw, :]


def im2col(x, kh, kw, pad, stride=1):
    """Unfold every KHxKW window of ``x`` into a row.

    x: (N, H, W, C) -> col: (N*H'*W', KH*KW*C), H' = (H + top + bottom - KH) // stride + 1
    (same for W'). pad: an int, or ((top, bottom), (left, right)) zero rows and columns.
    Row ``(n, i, j)`` holds the window whose top-left corner is ``(i, j) * stride`` in the
    padded image, ordered (kh, kw, C) so that it matches a Keras kernel ``(KH, KW, C, F)``
    reshaped to ``(KH*KW*C, F)``.
    """
    n, h, w, c = x.shape
    (top, bottom), (left, right) = _pads(pad)
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    out_h, out_w = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
    col = np.empty((n, out_h, out_w, kh, kw, c), dtype=x.dtype)
    # One slice copy per kernel offset: (kh, kw, C) rows from NHWC copy contiguous C runs.
    for i, j, view in _windows(xp, kh, kw, stride, out_h, out_w):
        col[:, :, :, i, j, :] = view
    return col.reshape(n * out_h * out_w, kh * kw * c)


def col2im(col, x_shape, kh, kw, pad, stride=1):
    """The adjoint of :func:`im2col`: add every row back onto the window it came from.

    col: (N*H'*W', KH*KW*C) -> dx: (N, H, W, C) = x_shape.
    Overlapping windows sum, which is exactly the chain rule for a pixel that appears in
    several windows: <im2col(x), col> == <x, col2im(col)>.
    """
    n, h, w, c = x_shape
    (top, bottom), (left, right) = _pads(pad)
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    out_h, out_w = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
    col = col.reshape(n, out_h, out_w, kh, kw, c)
    dxp = np.zeros((n, h + top + bottom, w + left + right, c), dtype=col.dtype)
    for i, j, view in _windows(dxp, kh, kw, stride, out_h, out_w):
        view += col[:, :, :, i, j, :]
    return dxp[:, top:top + h, left:left + w, :]


# --------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------

class ReLU:
    """out = max(x, 0);  dx = dout * (x > 0).  Shapes: any -> same.

    forward(x, inplace=True) writes the result into x (for a layer's own temporary z).
    backward(dout, guided=True) is guided backpropagation (Springenberg et al.): the
    gradient passes only where the input AND the incoming gradient are positive,
    dx = max(dout, 0) * (x > 0).
    """

    def forward(self, x, inplace=False):
        self.mask = x > 0
        return np.maximum(x, 0, out=x if inplace else None)

    def backward(self, dout, guided=False):
        # Multiply, never ``dout[~mask] = 0``: that would write into the caller's array.
        if guided:
            return np.maximum(dout, 0) * self.mask
        return dout * self.mask


class Softmax:
    """Softmax over the last axis. z: (N, K) -> p: (N, K) (or (..., K) -> (..., K)).

    p = exp(z - max z) / sum(exp(z - max z))   (shifting by the max avoids overflow)
    dz = p * (dp - sum(dp * p))                (the softmax Jacobian applied to dp)
    """

    def forward(self, z, inplace=False):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        self.p = e / e.sum(axis=-1, keepdims=True)
        return self.p

    def backward(self, dp, guided=False):
        return self.p * (dp - (dp * self.p).sum(axis=-1, keepdims=True))


class Sigmoid:
    """p = 1 / (1 + exp(-z)), written as (1 + tanh(z / 2)) / 2, which never overflows.
    dz = dp * p * (1 - p).  Shapes: any -> same."""

    def forward(self, z, inplace=False):
        self.p = 0.5 * (1 + np.tanh(0.5 * z))
        return self.p

    def backward(self, dp, guided=False):
        return dp * self.p * (1 - self.p)


class Identity:
    """out = x;  dx = dout.  Keras' ``activation='linear'``."""

    def forward(self, x, inplace=False):
        return x

    def backward(self, dout, guided=False):
        return dout


ACTIVATIONS = {"relu": ReLU, "softmax": Softmax, "sigmoid": Sigmoid, "linear": Identity}


# --------------------------------------------------------------------------------------
# Parameter layers
# --------------------------------------------------------------------------------------

def correlate_same(x, kernel, buffers, block_bytes=8 << 20, min_rows=1024):
    """im2col + GEMM in blocks of rows: z = im2col(x) @ kernel.reshape(KH*KW*C, F).

    x: (N, H, W, C), kernel: (KH, KW, C, F) -> z: (N, H, W, F), "same" zero padding,
    stride 1. Exactly the product of :func:`im2col` and one GEMM, computed a block of
    image rows at a time: the block's windows are unfolded into a buffer that is reused
    across blocks and calls (~8 MB, so it stays in cache and is not faulted in afresh),
    then one GEMM writes the block's output rows. Rows are counted across the batch
    (row g is row g % H of image g // H), so small late layers get GEMMs of at least
    ``min_rows`` rows spanning several images. buffers: a workspace dict kept by the
    caller; the model shares one among all its conv layers, forward and backward.
    """
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    pad = kh // 2
    rows = max(block_bytes // (w * kh * kw * c * x.itemsize), -(-min_rows // w), 1)
    rows = min(rows, n * h)
    col = _buffer(buffers, "col", (rows, w, kh, kw, c), x.dtype)
    # One zero-padded image at a time (the buffer is shared, so its border is re-zeroed).
    xp = _buffer(buffers, "padded", (h + 2 * pad, w + 2 * pad, c), x.dtype)
    xp[:pad], xp[h + pad:], xp[:, :pad], xp[:, w + pad:] = 0, 0, 0, 0
    loaded = None
    k2d = kernel.reshape(kh * kw * c, f)
    z = np.empty((n, h, w, f), dtype=x.dtype)
    z_rows = z.reshape(n * h, w, f)
    for start in range(0, n * h, rows):
        stop = min(start + rows, n * h)
        g = start
        while g < stop:  # the part of the block that lies in image i, rows y0..y1
            i, y0 = divmod(g, h)
            y1 = min(h, y0 + stop - g)
            if loaded != i:
                xp[pad:pad + h, pad:pad + w] = x[i]
                loaded = i
            for di in range(kh):
                for dj in range(kw):
                    col[g - start:g - start + y1 - y0, :, di, dj, :] = \
                        xp[y0 + di:y1 + di, dj:dj + w, :]
            g += y1 - y0
        m = (stop - start) * w
        np.matmul(col[:stop - start].reshape(m, -1), k2d, out=z_rows[start:stop].reshape(m, f))
    return z


def _buffer(buffers, name, shape, dtype):
    """An array of ``shape`` backed by ``buffers[name]``, a flat array that grows to the
    largest size asked for and is then reused by every layer (contents are not cleared)."""
    size = int(np.prod(shape))
    flat = buffers.get(name)
    if flat is None or flat.dtype != dtype or flat.size < size:
        flat = buffers[name] = np.zeros(size, dtype=dtype)
    return flat[:size].reshape(shape)


class Conv2D:
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
            = correlate_same(dz, w_flipped), w_flipped[i, j, f, c] = w[KH-1-i, KW-1-j, c, f]
              (for odd square kernels, stride 1, "same": the same sum as a "transposed
              convolution", measured faster than the col2im scatter, except for a
              3-channel first layer where col2im is kept)
        dW  = col.T @ dz,  db = sum of dz over N, H', W'
    Stride-1 "same" convs with odd square kernels (all of VGG16's) run forward and
    backward through :func:`correlate_same` (im2col in row blocks into a reused
    workspace); ``im2col``/``col2im`` above are the reference the tests hold them to, and
    the code path for every other shape.
    """

    def __init__(self, name, w, b=None, activation="relu", buffers=None, strides=(1, 1),
                 padding="same"):
        self.name, self.w = name, w
        self.use_bias = b is not None  # Keras' use_bias=False: a zero bias, not a parameter
        self.b = np.zeros(w.shape[3], w.dtype) if b is None else b
        self.strides, self.padding = tuple(strides), padding
        self.activation_name = activation
        self.activation = ACTIVATIONS[activation]()
        # im2col workspace, reused across calls (and shared by the model's conv layers)
        self.buffers = {} if buffers is None else buffers
        kh, kw = w.shape[:2]
        self.fast = kh == kw and kh % 2 == 1 and self.strides == (1, 1) and padding == "same"

    def pads(self, x_shape):
        """((top, bottom), (left, right)) zero padding for an input of x_shape."""
        return window_padding(x_shape[1], x_shape[2], *self.w.shape[:2], self.strides,
                              self.padding)

    def forward(self, x):
        self.x = np.asarray(x, dtype=self.w.dtype)  # kept for backward
        kh, kw, c, f = self.w.shape
        if self.fast:
            z = correlate_same(self.x, self.w, self.buffers)
        else:
            col = im2col(self.x, kh, kw, self.pads(self.x.shape), self.strides)
            z = (col @ self.w.reshape(kh * kw * c, f)).reshape(self.output_shape(self.x.shape))
        z += self.b
        return self.activation.forward(z, inplace=True)  # z is this call's own array

    def output_shape(self, x_shape):
        n, h, w, _ = x_shape
        (top, bottom), (left, right) = self.pads(x_shape)
        kh, kw, _, f = self.w.shape
        return (n, (h + top + bottom - kh) // self.strides[0] + 1,
                (w + left + right - kw) // self.strides[1] + 1, f)

    def backward(self, dout, param_grads=False, through_activation=True, guided=False):
        kh, kw, c, f = self.w.shape
        dz = self.activation.backward(dout, guided) if through_activation else dout
        pads = self.pads(self.x.shape)
        if param_grads:
            col = im2col(self.x, kh, kw, pads, self.strides)
            self.dw = (col.T @ dz.reshape(-1, f)).reshape(self.w.shape)
            self.db = dz.reshape(-1, f).sum(axis=0)
        if not self.fast or c < 16:
            dcol = dz.reshape(-1, f) @ self.w.reshape(kh * kw * c, f).T
            return col2im(dcol, self.x.shape, kh, kw, pads, self.strides)
        return correlate_same(dz, self._flipped_kernel(), self.buffers)

    def _flipped_kernel(self):
        """w_flipped[i, j, f, c] = w[KH-1-i, KW-1-j, c, f], made once per kernel array."""
        if getattr(self, "_flipped_from", None) is not self.w:
            self._flipped = np.ascontiguousarray(self.w[::-1, ::-1].transpose(0, 1, 3, 2))
            self._flipped_from = self.w
        return self._flipped


class Dense:
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

    def forward(self, x):
        self.x = np.asarray(x, dtype=self.w.dtype)
        self.z = self.x @ self.w + self.b
        return self.activation.forward(self.z)

    def backward(self, dout, param_grads=False, through_activation=True, guided=False):
        dz = self.activation.backward(dout, guided) if through_activation else dout
        if param_grads:
            # Only on request: for fc1 this is a (25088, 4096) matrix, 411 MB in float32.
            self.dw = self.x.T @ dz
            self.db = dz.sum(axis=0)
        return dz @ self.w.T


# --------------------------------------------------------------------------------------
# Layers without parameters
# --------------------------------------------------------------------------------------

class MaxPool2D:
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
        """x with "same" padding of value ``fill``, and the output size (H', W')."""
        ph, pw = self.pool_size
        (top, bottom), (left, right) = window_padding(x.shape[1], x.shape[2], ph, pw,
                                                      self.strides, self.padding)
        if top or bottom or left or right:
            x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)),
                       constant_values=fill)
        out_h = (x.shape[1] - ph) // self.strides[0] + 1
        out_w = (x.shape[2] - pw) // self.strides[1] + 1
        return x, (top, left), (out_h, out_w)

    def forward(self, x):
        self.x = x
        xp, _, (out_h, out_w) = self._padded(x, -np.inf)
        views = [v for _, _, v in _windows(xp, *self.pool_size, self.strides, out_h, out_w)]
        self.out = views[0].copy()
        for view in views[1:]:
            np.maximum(self.out, view, out=self.out)
        return self.out

    def backward(self, dout):
        xp, (top, left), (out_h, out_w) = self._padded(self.x, -np.inf)
        dxp = np.zeros(xp.shape, dtype=dout.dtype)
        routed = np.zeros(self.out.shape, dtype=bool)  # windows whose max is found
        offsets = _windows(xp, *self.pool_size, self.strides, out_h, out_w)
        grads = _windows(dxp, *self.pool_size, self.strides, out_h, out_w)
        for (_, _, view), (_, _, grad) in zip(offsets, grads):  # row-major window order
            first = (view == self.out) & ~routed
            grad += dout * first
            routed |= first
        h, w = self.x.shape[1:3]
        return dxp[:, top:top + h, left:left + w]


class AvgPool2D:
    """Average-pool, as Keras' AveragePooling2D (same window rules as :class:`MaxPool2D`).

    out[n, i, j, c] = mean of the window's elements inside the image ("same" padding is
    not counted, as TensorFlow does): out = sum / count.   dx: each window element gets
    dout / count; overlapping windows add.
    """

    def __init__(self, name, pool_size=(2, 2), strides=None, padding="valid"):
        self.name, self.pool_size, self.padding = name, tuple(pool_size), padding
        self.strides = tuple(strides or pool_size)

    _padded = MaxPool2D._padded

    def _count(self, x_shape):
        """(1, H', W', 1): how many elements of each window lie inside the image."""
        ones, _, (out_h, out_w) = self._padded(np.ones((1, *x_shape[1:3], 1)), 0.0)
        return sum(v for _, _, v in _windows(ones, *self.pool_size, self.strides, out_h, out_w))

    def forward(self, x):
        self.x_shape = x.shape
        xp, _, (out_h, out_w) = self._padded(x, 0.0)
        total = sum(v for _, _, v in _windows(xp, *self.pool_size, self.strides, out_h, out_w))
        return (total / self._count(x.shape)).astype(x.dtype, copy=False)

    def backward(self, dout):
        share = dout / self._count(self.x_shape)
        dxp, (top, left), (out_h, out_w) = self._padded(np.zeros(self.x_shape, dout.dtype), 0)
        for _, _, grad in _windows(dxp, *self.pool_size, self.strides, out_h, out_w):
            grad += share
        h, w = self.x_shape[1:3]
        return dxp[:, top:top + h, left:left + w]


class GlobalAvgPool2D:
    """x: (N, H, W, C) -> out: (N, C), the mean over H and W (Keras GlobalAveragePooling2D).
    dx[n, i, j, c] = dout[n, c] / (H * W)."""

    def __init__(self, name):
        self.name = name

    def forward(self, x):
        self.x_shape = x.shape
        return x.mean(axis=(1, 2))

    def backward(self, dout):
        n, h, w, c = self.x_shape
        return np.broadcast_to(dout[:, None, None, :] / (h * w), self.x_shape).copy()


class BatchNorm:
    """Batch normalisation at inference, over the last (channel) axis, as Keras'
    BatchNormalization with its moving statistics:
        out = gamma * (x - mean) / sqrt(var + eps) + beta  = x * scale + shift
        dx  = dout * scale,   scale = gamma / sqrt(var + eps)
    x: any shape (..., C) -> same. Parameters (C,) each.
    """

    def __init__(self, name, gamma, beta, mean, var, eps=1e-3):
        self.name = name
        self.gamma, self.beta, self.mean, self.var, self.eps = gamma, beta, mean, var, eps
        self.scale = (gamma / np.sqrt(var + eps)).astype(mean.dtype)
        self.shift = (beta - mean * self.scale).astype(mean.dtype)

    def forward(self, x):
        return x * self.scale + self.shift

    def backward(self, dout):
        return dout * self.scale


class Rescaling:
    """out = x * scale + offset (Keras' Rescaling, e.g. scale 1/255);  dx = dout * scale."""

    def __init__(self, name, scale, offset=0.0):
        self.name, self.scale, self.offset = name, scale, offset

    def forward(self, x):
        return (x * self.scale + self.offset).astype(x.dtype, copy=False)

    def backward(self, dout):
        return dout * self.scale


class Dropout:
    """Identity at inference: Keras only drops units while training."""

    def __init__(self, name, rate=0.5):
        self.name, self.rate = name, rate

    def forward(self, x):
        return x

    def backward(self, dout):
        return dout


class Activation:
    """An activation on its own (Keras' Activation layer): out = activation(z), z = input.
    backward(dout, through_activation=False) returns dout as d/dz (the logits' gradient
    when this layer is the model's final softmax or sigmoid)."""

    def __init__(self, name, activation):
        self.name, self.activation_name = name, activation
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x):
        self.z = x
        return self.activation.forward(x)

    def backward(self, dout, param_grads=False, through_activation=True, guided=False):
        return self.activation.backward(dout, guided) if through_activation else dout


class Flatten:
    """x: (N, H, W, C) -> out: (N, H*W*C), in channels-last (C fastest) order as Keras.

    The classifier's first kernel expects exactly this order; dx = dout reshaped back.
    """

    def __init__(self, name="flatten"):
        self.name = name

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.x_shape)
