"""Resizing arrays: the one bilinear resize that the math (Score-CAM masks, guided
Grad-CAM, faithfulness curves, diagnose) and the pixels (overlay) both use."""

import numpy as np


def resize_bilinear(heatmap, size):
    """heatmap: (h, w) -> (H, W) = size, bilinear with pixel centres aligned.

    Output pixel i samples input coordinate u = (i + 0.5) * h / H - 0.5 (the centre of
    pixel i, mapped to input pixel units), clamped to the edge; then
    out = (1 - t) * in[floor(u)] + t * in[floor(u) + 1] along each axis, t = u - floor(u).
    """
    out = np.asarray(heatmap, dtype=np.float64)
    for axis, (n_in, n_out) in enumerate(zip(out.shape, size)):
        u = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(u).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        t = u - lo
        shape = [1, 1]
        shape[axis] = n_out
        t = t.reshape(shape)
        out = (1 - t) * np.take(out, lo, axis=axis) + t * np.take(out, hi, axis=axis)
    return out
