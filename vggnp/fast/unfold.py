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
read-only view of x. ``layers.FastConv2D.unfold`` uses it (strided convs, every dW).
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided


def im2col_rows(x, kh, kw, pads, strides):
    """x: (N, H, W, C), pads ((top, bottom), (left, right)), strides (SH, SW) -> col:
    (N*H'*W', KH*KW*C), H' = (H + top + bottom - KH) // SH + 1 (W' alike), row (n, y, x)
    the window whose top-left corner is (SH*y, SW*x) in the padded image."""
    (top, bottom), (left, right) = pads
    padded = np.ascontiguousarray(np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
                                  if top or bottom or left or right else x)
    n, hp, wp, c = padded.shape
    sh, sw = strides
    out_h, out_w = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"im2col_rows: a {kh}x{kw} window does not fit in {hp}x{wp} pixels")
    item, row = padded.itemsize, wp * c * padded.itemsize  # strides from the shape: see
    windows = as_strided(padded, (n, out_h, out_w, kh, kw * c),   # depthwise.correlate_rows
                         (hp * row, sh * row, sw * c * item, row, item), writeable=False)
    return windows.reshape(n * out_h * out_w, kh * kw * c)
