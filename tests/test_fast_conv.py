"""The fast convolution (``vggnp/fast_conv.py``) equals its reference: ``im2col`` followed
by one GEMM, and the loop convolution of ``vggnp/naive.py``."""

import numpy as np
import pytest

from vggnp.fast_conv import correlate_same
from vggnp.im2col import im2col
from vggnp.layers import Conv2D
from vggnp.naive import conv2d_same_naive


def rng():
    return np.random.default_rng(7)


def test_conv_fast_equals_naive():
    r = rng()
    x = r.standard_normal((2, 6, 9, 3)).astype(np.float32)
    w = r.standard_normal((3, 3, 3, 5)).astype(np.float32)
    b = r.standard_normal(5).astype(np.float32)
    fast = Conv2D("c", w, b, activation="linear").forward(x)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, conv2d_same_naive(x, w, b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape, k, f", [((3, 5, 9, 4), 3, 6), ((2, 7, 4, 16), 5, 3),
                                         ((1, 6, 6, 2), 1, 4)])
@pytest.mark.parametrize("block_bytes, min_rows", [(8 << 20, 1024), (64, 1)])
def test_correlate_same_equals_im2col_gemm(shape, k, f, block_bytes, min_rows):
    """Any block size (one block, or one row at a time across image boundaries) gives the
    sum of im2col(x) @ W, in float64 to rounding."""
    r = rng()
    x = r.standard_normal(shape)
    kernel = r.standard_normal((k, k, shape[3], f))
    expected = (im2col(x, k, k, k // 2) @ kernel.reshape(-1, f)).reshape(*shape[:3], f)
    got = correlate_same(x, kernel, {}, block_bytes=block_bytes, min_rows=min_rows)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
