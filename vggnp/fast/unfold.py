"""The fast path of the lesson's ``im2col`` (``nn/im2col.py``): the same matrix, copied a
window row at a time instead of a window pixel at a time.

The lesson copies, for each of the KH*KW kernel offsets, one pixel's C channels of every
window: for a network's first layer (C = 3) that is NumPy's loop around a copy of three
numbers, 49 times for ResNet50's 7x7 stem. But a window's row is KW*C numbers lying side
by side in the padded image, so a strided view (no copy)

    windows[n, y, x, i, :] = xpad[n, SH*y + i, SW*x : SW*x + KW, :]   (KW*C values)

read into the (N*H'*W', KH*KW*C) matrix copies runs of KW*C values: the same rows, in
the same (KH, KW, C) order (``tests/test_fast_conv.py`` holds the two equal, value for
value). Where no copy is needed (a 1x1 kernel at stride 1, unpadded) the matrix is a
read-only view of x. ``layers.FastConv2D.unfold`` uses it (every dW), and
``FastConv2D.im2col_in_bands`` its windows, a band of rows at a time (``window_rows``: the
forward of strided convs and of those with an image's few channels).

Its adjoint, col2im, is the input gradient of a conv with few input channels (VGG16's
block1_conv1, C = 3), where the flipped-kernel sum's GEMMs would each write C columns.
:func:`col2im_planes` makes the same sum with each (i, j, c) of the kernel a whole plane
of H'*W' values, so its additions run along image rows, not over a pixel's C numbers.
"""

from functools import partial

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .blocks import INLINE


def im2col_rows(x, kh, kw, pads, strides):
    """x: (N, H, W, C), pads ((top, bottom), (left, right)), strides (SH, SW) -> col:
    (N*H'*W', KH*KW*C), H' = (H + top + bottom - KH) // SH + 1 (W' alike), row (n, y, x)
    the window whose top-left corner is (SH*y, SW*x) in the padded image."""
    windows = window_rows(x, kh, kw, pads, strides)
    return windows.reshape(-1, kh * windows.shape[4])


def window_rows(x, kh, kw, pads, strides):
    """The windows of im2col_rows, not yet copied: a read-only strided view
    (N, H', W', KH, KW*C) of the padded x (a padded copy where pads are not all zero),
    windows[n, y, x', i] the i-th row of the window at (SH*y, SW*x'). A band of output
    rows, windows[n, rows], reshaped to (rows*W', KH*KW*C) is that band's rows of
    im2col (``layers.FastConv2D.im2col_in_bands`` copies a band at a time)."""
    (top, bottom), (left, right) = pads
    padded = np.ascontiguousarray(np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
                                  if top or bottom or left or right else x)
    n, hp, wp, c = padded.shape
    sh, sw = strides
    out_h, out_w = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"im2col: a {kh}x{kw} window does not fit in {hp}x{wp} pixels")
    item, row = padded.itemsize, wp * c * padded.itemsize  # strides from the shape: see
    return as_strided(padded, (n, out_h, out_w, kh, kw * c),   # depthwise.correlate_rows
                      (hp * row, sh * row, sw * c * item, row, item), writeable=False)


def col2im_planes(dz, w, x_shape, pads, threads=INLINE):
    """dx of a stride-1 convolution: dz (N, H', W', F), w (KH, KW, C, F), x_shape
    (N, H, W, C), pads ((top, bottom), (left, right)) -> dx (N, H, W, C), the lesson's
    col2im(dz @ W.T) computed as

        planes = W @ dz^T                (KH*KW*C, N*H'*W'): row (i, j, c), a plane
        dxpad[c, n, y + i, x + j] += planes[i, j, c, n, y, x]

    then dx = dxpad without its padding, channels last (a new array). The planes are
    made by blocks of dz's rows for ``threads``, each block's product written straight
    into its columns of planes (BLAS's leading dimension: no transposed copy)."""
    n, h, w_in, c = x_shape
    kh, kw, _, f = w.shape
    (top, bottom), (left, right) = pads
    h_out, w_out = dz.shape[1:3]
    dz_rows, kernel = dz.reshape(-1, f), w.reshape(kh * kw * c, f)
    planes = np.empty((kh * kw * c, len(dz_rows)), np.result_type(dz, w))
    threads.run(partial(np.matmul, kernel, dz_rows[rows].T, out=planes[:, rows])
                for rows in threads.row_slices(len(dz_rows)))
    planes = planes.reshape(kh, kw, c, n, h_out, w_out)
    dxpad = np.zeros((c, n, h + top + bottom, w_in + left + right), planes.dtype)
    for i in range(kh):
        for j in range(kw):
            dxpad[:, :, i:i + h_out, j:j + w_out] += planes[i, j]
    return np.ascontiguousarray(dxpad[:, :, top:top + h, left:left + w_in].transpose(1, 2, 3, 0))
