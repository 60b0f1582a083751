"""Resizing arrays: the one bilinear resize that the math (Score-CAM masks, guided
Grad-CAM, faithfulness curves, diagnose) and the pixels (overlay) both use."""

import numpy as np


def interpolation_matrix(n_in, n_out, dtype=np.float64):
    """(n_out, n_in) weights of 1-D bilinear interpolation with pixel centres aligned:
    output i samples u = (i + 0.5) * n_in / n_out - 0.5, clamped to [0, n_in - 1], so
    row i holds 1 - t at floor(u) and t at floor(u) + 1 (t = u - floor(u))."""
    u = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(u).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    t = u - lo
    weights = np.zeros((n_out, n_in), dtype)
    np.add.at(weights, (np.arange(n_out), lo), 1 - t)
    np.add.at(weights, (np.arange(n_out), hi), t)
    return weights


def resize_bilinear(heatmap, size, dtype=np.float64):
    """heatmap: (h, w) -> (H, W) = size, bilinear with pixel centres aligned.

    Bilinear resizing is linear in the map and separable: out = R @ heatmap @ C.T, with R
    (H, h) and C (W, w) the 1-D interpolation matrices of :func:`interpolation_matrix`.
    Two small matrix products, so a 12-megapixel overlay costs a few milliseconds.
    dtype: float64, or float32 for pictures.
    """
    heatmap = np.asarray(heatmap, dtype=dtype)
    rows = interpolation_matrix(heatmap.shape[0], size[0], dtype)
    columns = interpolation_matrix(heatmap.shape[1], size[1], dtype)
    return (rows @ heatmap) @ columns.T
