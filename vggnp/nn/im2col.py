"""im2col / col2im: a convolution becomes one matrix product (CS231n's ``im2col.py``).

Every KHxKW window of the input is unfolded into a row; a Keras kernel (KH, KW, C, F)
reshaped to (KH*KW*C, F) then maps all windows at once: z = im2col(x) @ W. Its adjoint,
col2im, adds each row back onto its window, which is the backward pass of that unfolding.
Padding follows Keras' "same" and "valid" rules.
"""

import numpy as np



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


def windows(xp, kh, kw, stride, out_h, out_w):
    """For each offset (i, j) in a KHxKW window, the (N, H', W', C) view of the element
    at that offset in every window: xp[:, i + stride*y, j + stride*x, :]."""
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw, :]


def max_of(views):
    """The elementwise max of a list of same-shaped arrays (a pool's window offsets), a
    new array."""
    out = np.maximum(views[0], views[1]) if len(views) > 1 else views[0].copy()
    for view in views[2:]:
        np.maximum(out, view, out=out)
    return out


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
    for i, j, view in windows(xp, kh, kw, stride, out_h, out_w):
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
    for i, j, view in windows(dxp, kh, kw, stride, out_h, out_w):
        view += col[:, :, :, i, j, :]
    return dxp[:, top:top + h, left:left + w, :]
