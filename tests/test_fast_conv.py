"""The fast convolution (``vggnp/fast_conv.py``) equals its reference: ``im2col`` followed
by one GEMM, and the loop convolution of ``vggnp/naive.py``."""

import numpy as np
import pytest

from vggnp.fast_conv import correlate_same
from vggnp.gemm import matmul
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
                                         ((1, 6, 6, 2), 1, 4), ((2, 1, 1, 3), 3, 2)])
@pytest.mark.parametrize("block_bytes", [2 << 20, 8])
def test_correlate_same_equals_im2col_gemm(shape, k, f, block_bytes):
    """Any block size (all outputs at once, or one pixel at a time, blocks that span two
    images) gives the sum of im2col(x) @ W (+ b), in float64 to rounding."""
    r = rng()
    x = r.standard_normal(shape)
    kernel = r.standard_normal((k, k, shape[3], f))
    bias = r.standard_normal(f)
    expected = (im2col(x, k, k, k // 2) @ kernel.reshape(-1, f)).reshape(*shape[:3], f)
    got = correlate_same(x, kernel, {}, block_bytes=block_bytes)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    with_bias = correlate_same(x, kernel, {}, bias=bias, block_bytes=block_bytes)
    np.testing.assert_allclose(with_bias, expected + bias, rtol=1e-12, atol=1e-12)


def test_a_shared_workspace_gives_each_call_its_own_result():
    """The padded input lives in a workspace shared by every layer: a small call after a
    large one (stale data past its end) and a float32 call after a float64 one."""
    r, buffers = rng(), {}
    big = r.standard_normal((2, 9, 9, 8))
    correlate_same(big, r.standard_normal((3, 3, 8, 4)), buffers)
    x = r.standard_normal((1, 4, 5, 8)).astype(np.float32)
    kernel = r.standard_normal((3, 3, 8, 2)).astype(np.float32)
    expected = (im2col(x, 3, 3, 1) @ kernel.reshape(-1, 2)).reshape(1, 4, 5, 2)
    got = correlate_same(x, kernel, buffers)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_matmul_overwrites_or_adds_in_place_and_refuses_what_it_cannot():
    """gemm.matmul reads C- and F-contiguous operands (w.T in the backward) as they are,
    and writes into out itself; an out BLAS could only fill as a copy is refused."""
    r = rng()
    a, b = r.standard_normal((5, 3)), r.standard_normal((3, 4))
    for a_, b_ in [(a[:1], b), (a[:1], np.asfortranarray(b))]:   # one row: BLAS's gemv
        out = r.standard_normal((1, 4))
        before = out.copy()
        assert matmul(a_, b_, out, accumulate=True) is out
        np.testing.assert_allclose(out, before + a_ @ b_, rtol=1e-12)
    for a_, b_ in [(a, b), (np.asfortranarray(a), b), (a, np.asfortranarray(b)),
                   (a[:, ::-1], b[::-1])]:
        out = r.standard_normal((5, 4))
        before = out.copy()
        assert matmul(a_, b_, out, accumulate=True) is out
        np.testing.assert_allclose(out, before + a_ @ b_, rtol=1e-12)
        np.testing.assert_allclose(matmul(a_, b_, out), a_ @ b_, rtol=1e-12)
    assert matmul(a.astype(np.float32), b.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="C-contiguous"):
        matmul(a, b, np.zeros((4, 5)).T)           # not C-contiguous: BLAS would copy


@pytest.mark.parametrize("c, f", [(3, 64), (64, 64), (128, 256), (256, 512), (512, 512)])
def test_float32_error_at_vgg16_widths(c, f):
    """float32 correlate_same (forward, and backward with the flipped kernel view) vs the
    float64 sum, relative to the output's max magnitude: within 5e-6, as Winograd's
    (tests/test_winograd.py); the one-GEMM im2col path's own error printed beside it."""
    from vggnp.layers import flipped_kernel
    r = np.random.default_rng(5)
    x = np.abs(r.standard_normal((2, 14, 14, c))).astype(np.float32)  # post-ReLU-like
    w = (r.standard_normal((3, 3, c, f)) * np.sqrt(2 / (9 * c))).astype(np.float32)
    dz = r.standard_normal((2, 14, 14, f)).astype(np.float32)
    for inputs, kernel in [(x, w), (dz, flipped_kernel(w))]:
        k = kernel.shape[3]
        exact = (im2col(inputs.astype(np.float64), 3, 3, 1)
                 @ kernel.astype(np.float64).reshape(-1, k)).reshape(*inputs.shape[:3], k)
        scale = np.abs(exact).max()
        fast = np.abs(correlate_same(inputs, kernel, {}) - exact).max() / scale
        one_gemm = np.abs((im2col(inputs, 3, 3, 1) @ kernel.reshape(-1, k)).reshape(exact.shape)
                          - exact).max() / scale
        print(f"C={kernel.shape[2]} F={k}: correlate_same {fast:.2e}, im2col GEMM {one_gemm:.2e}")
        assert fast <= 5e-6


def test_dot_and_the_dtypes_matmul_takes():
    """gemm.dot: BLAS's dot for float32/float64, np.dot for others (the weights' checks
    read int arrays too); matmul refuses mixed or non-float dtypes rather than casting."""
    from vggnp.gemm import dot
    r = rng()
    a = r.standard_normal(1000)
    assert dot(a, a) == pytest.approx(float(a @ a), rel=1e-12)
    assert dot(a.astype(np.float32), a.astype(np.float32)) == pytest.approx(float(a @ a), rel=1e-5)
    assert dot(np.arange(4), np.arange(4)) == 14.0
    with pytest.raises(ValueError, match="float32 or float64"):
        matmul(np.ones((2, 2), np.float32), np.ones((2, 2)))
    with pytest.raises(ValueError, match="float32 or float64"):
        matmul(np.ones((2, 2), int), np.ones((2, 2), int))


def test_the_blas_module_is_scipys_own():
    """gemm loads SciPy's BLAS wrappers without importing scipy.linalg (160 ms); a later
    ``import scipy.linalg`` must find and use that very module, not load a second copy."""
    import subprocess
    import sys
    code = ("import sys, vggnp.gemm as g; assert 'scipy.linalg' not in sys.modules; "
            "from scipy.linalg import blas; assert blas.sgemm is g._BLAS.sgemm; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr
