"""Winograd F(2x2, 3x3) (``vggnp/winograd.py``) against the im2col reference: the same
sum to float64 rounding, and within float32 rounding of the float64 result at VGG16's
layer shapes (channels as VGG16's, images smaller)."""

import numpy as np
import pytest

from vggnp.im2col import im2col
from vggnp.winograd import kernel_transform, winograd_same


def reference(x, w):
    """The 3x3 "same" cross-correlation as im2col + one GEMM, in float64."""
    n, h, wd, c = x.shape
    col = im2col(x.astype(np.float64), 3, 3, 1)
    return (col @ w.astype(np.float64).reshape(9 * c, -1)).reshape(n, h, wd, -1)


@pytest.mark.parametrize("shape, f", [((1, 2, 2, 1), 1), ((2, 6, 10, 3), 5),
                                      ((1, 8, 4, 16), 7)])
def test_winograd_equals_im2col_in_float64(shape, f):
    r = np.random.default_rng(3)
    x = r.standard_normal(shape)
    w = r.standard_normal((3, 3, shape[3], f))
    np.testing.assert_allclose(winograd_same(x, kernel_transform(w)), reference(x, w),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c, f", [(3, 64), (64, 64), (128, 256), (256, 512), (512, 512)])
def test_winograd_float32_error_at_vgg16_widths(c, f):
    """float32 Winograd vs the float64 sum, relative to the output's max magnitude: within
    5e-6 (the direct float32 GEMM's own error is printed beside it)."""
    r = np.random.default_rng(5)
    x = np.abs(r.standard_normal((1, 14, 14, c))).astype(np.float32)  # post-ReLU-like
    w = (r.standard_normal((3, 3, c, f)) * np.sqrt(2 / (9 * c))).astype(np.float32)
    exact = reference(x, w)
    scale = np.abs(exact).max()
    fast = np.abs(winograd_same(x, kernel_transform(w)) - exact).max() / scale
    direct = np.abs((im2col(x, 3, 3, 1) @ w.reshape(9 * c, f)).reshape(exact.shape)
                    - exact).max() / scale
    print(f"C={c} F={f}: winograd {fast:.2e}, direct {direct:.2e}")
    assert fast <= 5e-6
