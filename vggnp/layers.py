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

def im2col(x, kh, kw, pad):
    """Unfold every KHxKW window of ``x`` into a row (stride 1).

    x: (N, H, W, C) -> col: (N*H'*W', KH*KW*C), H' = H + 2*pad - KH + 1 (same for W').
    Row ``(n, i, j)`` holds the window whose top-left corner is ``(i, j)`` in the padded
    image, ordered (kh, kw, C) so that it matches a Keras kernel ``(KH, KW, C, F)``
    reshaped to ``(KH*KW*C, F)``.
    """
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out_h, out_w = h + 2 * pad - kh + 1, w + 2 * pad - kw + 1
    col = np.empty((n, out_h, out_w, kh, kw, c), dtype=x.dtype)
    # One slice copy per kernel offset: (kh, kw, C) rows from NHWC copy contiguous C runs.
    for i in range(kh):
        for j in range(kw):
            col[:, :, :, i, j, :] = xp[:, i:i + out_h, j:j + out_w, :]
    return col.reshape(n * out_h * out_w, kh * kw * c)


def col2im(col, x_shape, kh, kw, pad):
    """The adjoint of :func:`im2col`: add every row back onto the window it came from.

    col: (N*H'*W', KH*KW*C) -> dx: (N, H, W, C) = x_shape.
    Overlapping windows sum, which is exactly the chain rule for a pixel that appears in
    several windows: <im2col(x), col> == <x, col2im(col)>.
    """
    n, h, w, c = x_shape
    out_h, out_w = h + 2 * pad - kh + 1, w + 2 * pad - kw + 1
    col = col.reshape(n, out_h, out_w, kh, kw, c)
    dxp = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, i:i + out_h, j:j + out_w, :] += col[:, :, :, i, j, :]
    return dxp[:, pad:pad + h, pad:pad + w, :]


# --------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------

class ReLU:
    """out = max(x, 0);  dx = dout * (x > 0).  Shapes: any -> same.

    forward(x, inplace=True) writes the result into x (for a layer's own temporary z).
    """

    def forward(self, x, inplace=False):
        self.mask = x > 0
        return np.maximum(x, 0, out=x if inplace else None)

    def backward(self, dout):
        # Multiply, never ``dout[~mask] = 0``: that would write into the caller's array.
        return dout * self.mask


class Softmax:
    """Row-wise softmax. z: (N, K) -> p: (N, K).

    p = exp(z - max z) / sum(exp(z - max z))   (shifting by the max avoids overflow)
    dz = p * (dp - sum(dp * p))                (the softmax Jacobian applied to dp)
    """

    def forward(self, z, inplace=False):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        self.p = e / e.sum(axis=1, keepdims=True)
        return self.p

    def backward(self, dp):
        return self.p * (dp - (dp * self.p).sum(axis=1, keepdims=True))


class Identity:
    """out = x;  dx = dout.  Keras' ``activation='linear'``."""

    def forward(self, x, inplace=False):
        return x

    def backward(self, dout):
        return dout


ACTIVATIONS = {"relu": ReLU, "softmax": Softmax, "linear": Identity}


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
    """3x3 "same" convolution, stride 1, followed by its activation (as a Keras Conv2D).

    Parameters: kernel w: (KH, KW, C, F) as Keras stores it, bias b: (F,).
    x: (N, H, W, C) -> out: (N, H, W, F)   ("same": pad = KH // 2, so H' = H).

    Forward, as one GEMM (cross-correlation, no kernel flip, like Keras):
        col = im2col(x)                         (N*H*W, KH*KW*C)
        z   = col @ W + b,  W = w.reshape(KH*KW*C, F)
        out = activation(z)
    Backward:
        dz  = activation'(dout)
        dx  = col2im(dz @ W.T)
            = correlate_same(dz, w_flipped), w_flipped[i, j, f, c] = w[KH-1-i, KW-1-j, c, f]
              (the same sum, as a "transposed convolution": measured faster than the
              col2im scatter, except for the 3-channel first layer where col2im is kept)
        dW  = col.T @ dz,  db = sum of dz over N, H, W
    The forward and the transposed backward run through :func:`correlate_same` (im2col in
    row blocks into a reused workspace); ``im2col``/``col2im`` above are the reference
    the tests hold them to.
    """

    def __init__(self, name, w, b, activation="relu", buffers=None):
        self.name, self.w, self.b = name, w, b
        self.activation_name = activation
        self.activation = ACTIVATIONS[activation]()
        # im2col workspace, reused across calls (and shared by the model's conv layers)
        self.buffers = {} if buffers is None else buffers

    @property
    def pad(self):
        return self.w.shape[0] // 2

    def forward(self, x):
        self.x = np.asarray(x, dtype=self.w.dtype)  # kept for backward
        z = correlate_same(self.x, self.w, self.buffers)
        z += self.b
        return self.activation.forward(z, inplace=True)  # z is this call's own array

    def backward(self, dout, param_grads=False, through_activation=True):
        kh, kw, c, f = self.w.shape
        dz = self.activation.backward(dout) if through_activation else dout
        if param_grads:
            col = im2col(self.x, kh, kw, self.pad)
            self.dw = (col.T @ dz.reshape(-1, f)).reshape(self.w.shape)
            self.db = dz.reshape(-1, f).sum(axis=0)
        if c < 16:
            dcol = dz.reshape(-1, f) @ self.w.reshape(kh * kw * c, f).T
            return col2im(dcol, self.x.shape, kh, kw, self.pad)
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

    def __init__(self, name, w, b, activation="relu"):
        self.name, self.w, self.b = name, w, b
        self.activation_name = activation
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x):
        self.x = np.asarray(x, dtype=self.w.dtype)
        self.z = self.x @ self.w + self.b
        return self.activation.forward(self.z)

    def backward(self, dout, param_grads=False, through_activation=True):
        dz = self.activation.backward(dout) if through_activation else dout
        if param_grads:
            # Only on request: for fc1 this is a (25088, 4096) matrix, 411 MB in float32.
            self.dw = self.x.T @ dz
            self.db = dz.sum(axis=0)
        return dz @ self.w.T


# --------------------------------------------------------------------------------------
# Layers without parameters
# --------------------------------------------------------------------------------------

class MaxPool2D:
    """2x2 max-pool, stride 2, "valid" (an odd last row or column is dropped, as in Keras).

    x: (N, H, W, C) -> out: (N, H//2, W//2, C)
    out[n, i, j, c] = max over the window x[n, 2i:2i+2, 2j:2j+2, c]
    dx: each window's gradient goes to ONE position, its first maximum in row-major order
    (as TensorFlow does). After a ReLU many windows are all zeros; splitting their
    gradient among the ties would change Grad-CAM's channel weights.
    """

    # The four positions of a window, in row-major order: (0,0), (0,1), (1,0), (1,1).
    OFFSETS = [(0, 0), (0, 1), (1, 0), (1, 1)]

    def __init__(self, name):
        self.name = name

    def _corner(self, a, di, dj):
        """(N, H//2, W//2, C) view: the element (di, dj) of every window of a."""
        oh, ow = a.shape[1] // 2, a.shape[2] // 2
        return a[:, di:2 * oh:2, dj:2 * ow:2, :]

    def forward(self, x):
        self.x = x
        corners = [self._corner(x, di, dj) for di, dj in self.OFFSETS]
        self.out = np.maximum(np.maximum(corners[0], corners[1]),
                              np.maximum(corners[2], corners[3]))
        return self.out

    def backward(self, dout):
        dx = np.zeros(self.x.shape, dtype=dout.dtype)
        routed = np.zeros(self.out.shape, dtype=bool)  # windows whose max is found
        for di, dj in self.OFFSETS:
            first = (self._corner(self.x, di, dj) == self.out) & ~routed
            self._corner(dx, di, dj)[...] = dout * first
            routed |= first
        return dx


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
