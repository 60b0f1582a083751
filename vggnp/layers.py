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
    """out = max(x, 0);  dx = dout * (x > 0).  Shapes: any -> same."""

    def forward(self, x):
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, dout):
        # Multiply, never ``dout[~mask] = 0``: that would write into the caller's array.
        return dout * self.mask


class Softmax:
    """Row-wise softmax. z: (N, K) -> p: (N, K).

    p = exp(z - max z) / sum(exp(z - max z))   (shifting by the max avoids overflow)
    dz = p * (dp - sum(dp * p))                (the softmax Jacobian applied to dp)
    """

    def forward(self, z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        self.p = e / e.sum(axis=1, keepdims=True)
        return self.p

    def backward(self, dp):
        return self.p * (dp - (dp * self.p).sum(axis=1, keepdims=True))


class Identity:
    """out = x;  dx = dout.  Keras' ``activation='linear'``."""

    def forward(self, x):
        return x

    def backward(self, dout):
        return dout


ACTIVATIONS = {"relu": ReLU, "softmax": Softmax, "linear": Identity}


# --------------------------------------------------------------------------------------
# Parameter layers
# --------------------------------------------------------------------------------------

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
        dW  = col.T @ dz,  db = sum of dz over N, H, W
    """

    def __init__(self, name, w, b, activation="relu"):
        self.name, self.w, self.b = name, w, b
        self.activation_name = activation
        self.activation = ACTIVATIONS[activation]()

    @property
    def pad(self):
        return self.w.shape[0] // 2

    def forward(self, x):
        x = np.asarray(x, dtype=self.w.dtype)
        kh, kw, c, f = self.w.shape
        n, h, w, _ = x.shape
        self.x = x  # backward re-unfolds x for dW rather than keeping the large col
        col = im2col(x, kh, kw, self.pad)
        z = col @ self.w.reshape(kh * kw * c, f) + self.b
        return self.activation.forward(z.reshape(n, h, w, f))

    def backward(self, dout, param_grads=False, through_activation=True):
        kh, kw, c, f = self.w.shape
        dz = self.activation.backward(dout) if through_activation else dout
        dz = dz.reshape(-1, f)
        if param_grads:
            col = im2col(self.x, kh, kw, self.pad)
            self.dw = (col.T @ dz).reshape(self.w.shape)
            self.db = dz.sum(axis=0)
        dcol = dz @ self.w.reshape(kh * kw * c, f).T
        return col2im(dcol, self.x.shape, kh, kw, self.pad)


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

    def __init__(self, name):
        self.name = name

    def forward(self, x):
        n, h, w, c = x.shape
        self.x_shape = x.shape
        oh, ow = h // 2, w // 2
        # (N, oh, 2, ow, 2, C) -> (N, oh, ow, C, 4): the 4 window values on the last axis,
        # in row-major window order (0,0), (0,1), (1,0), (1,1).
        windows = x[:, :2 * oh, :2 * ow, :].reshape(n, oh, 2, ow, 2, c)
        windows = windows.transpose(0, 1, 3, 5, 2, 4).reshape(n, oh, ow, c, 4)
        self.argmax = windows.argmax(axis=-1)  # argmax returns the first maximum
        return np.take_along_axis(windows, self.argmax[..., None], axis=-1)[..., 0]

    def backward(self, dout):
        n, h, w, c = self.x_shape
        oh, ow = h // 2, w // 2
        # dwindows[..., k] = dout where k is the window's argmax, else 0.
        dwindows = (np.arange(4) == self.argmax[..., None]) * dout[..., None]
        dx = np.zeros(self.x_shape, dtype=dout.dtype)
        dx[:, :2 * oh, :2 * ow, :] = (
            dwindows.reshape(n, oh, ow, c, 2, 2).transpose(0, 1, 4, 2, 5, 3)
            .reshape(n, 2 * oh, 2 * ow, c))
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
