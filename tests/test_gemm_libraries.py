"""The two BLAS libraries ``fast.gemm.matmul_add`` may call, each held to the same sums:
Intel MKL (``pip install 'vggnp[mkl]'``; in the test extra on Linux x86_64) and NumPy's own
OpenBLAS (VGGNP_GEMM=openblas, or where MKL is not installed)."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from vggnp.fast import gemm
from vggnp.fast.direct_conv import correlate_same
from vggnp.fast.layers import flipped_kernel
from vggnp.nn.im2col import im2col

from helpers import missing


@pytest.fixture(params=["mkl", "openblas"])
def library(request, monkeypatch):
    """gemm's choice made again with VGGNP_GEMM set ("mkl": MKL where installed), NumPy's
    OpenBLAS on one thread, as on vggnp's block threads (where MKL is called). No MKL
    skips its case locally and fails it in CI (CI is set), as TensorFlow's tests do."""
    monkeypatch.setenv("VGGNP_GEMM", request.param)
    gemm._FOUND.clear()
    if request.param == "mkl" and not gemm._found_blas().mkl:
        gemm._FOUND.clear()
        missing("Intel MKL", "the tests of each GEMM library", "pip install -e '.[test]'")
    with threadpool_limits(1, user_api="blas"):
        yield request.param
    gemm._FOUND.clear()  # the next test finds the library VGGNP_GEMM gives it


def test_each_library_adds_in_place(library):
    """out += a @ b in place through the library's gemm, float32 and float64, for b C- and
    F-contiguous (the backward's transposed taps) and out a strided block of rows."""
    assert gemm.blas_functions() is getattr(gemm._found_blas(), library)
    assert set(gemm.blas_functions()) == {np.dtype(np.float32), np.dtype(np.float64)}
    r = np.random.default_rng(3)
    for dtype, tolerance in ((np.float32, 1e-5), (np.float64, 1e-12)):
        a, b = r.standard_normal((5, 3)).astype(dtype), r.standard_normal((3, 4)).astype(dtype)
        for b_ in (b, np.asfortranarray(b), b[:, ::-1]):
            big = r.standard_normal((10, 7)).astype(dtype)
            out = big[::2, 2:6]
            expected, untouched = out + a @ b_, big[1::2].copy()
            assert gemm.matmul_add(a, b_, out) is out
            np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)
            assert np.array_equal(big[1::2], untouched)


@pytest.mark.parametrize("c, f", [(64, 64), (256, 512)])
def test_each_library_convolves_within_the_float32_bound(library, c, f):
    """correlate_same, forward and backward (flipped kernel), float32 against the float64
    im2col sum: within 5e-6 of the output's max (tests/test_fast_conv.py's bound); float64
    within 1e-10."""
    r = np.random.default_rng(5)
    x = np.abs(r.standard_normal((2, 10, 12, c)))
    w = r.standard_normal((3, 3, c, f)) * np.sqrt(2 / (9 * c))
    dz = r.standard_normal((2, 10, 12, f))
    for inputs, kernel in [(x, w), (dz, flipped_kernel(w))]:
        k = kernel.shape[3]
        exact = (im2col(inputs, 3, 3, 1) @ kernel.reshape(-1, k)).reshape(*inputs.shape[:3], k)
        scale = np.abs(exact).max()
        single = correlate_same(inputs.astype(np.float32), kernel.astype(np.float32), {})
        assert np.abs(single - exact).max() / scale <= 5e-6
        assert np.abs(correlate_same(inputs, kernel, {}) - exact).max() / scale <= 1e-10


def test_each_library_is_named_and_kept_apart_from_numpys(library):
    """gemm.path() names the library matmul_add calls; gemm.kernels() names NumPy's BLAS
    only (MKL, loaded by vggnp, is not NumPy's)."""
    assert ("Intel MKL" in gemm.path()) == (library == "mkl")
    assert "mkl" not in gemm.kernels()


def test_mkl_only_where_openblas_runs_one_thread(library):
    """MKL's sequential gemm replaces OpenBLAS's only where OpenBLAS runs one thread (a
    block thread's product); with two (a Keras graph's products, on the caller's thread)
    OpenBLAS's own threads run it."""
    found = gemm._found_blas()
    with threadpool_limits(2, user_api="blas"):
        if found.threads() == 2:  # a one-core machine keeps one
            assert gemm.blas_functions() is found.openblas
    assert gemm.blas_functions() is (found.mkl if library == "mkl" else found.openblas)


def test_each_library_runs_a_relu_conv_on_two_block_threads(library, monkeypatch):
    """FastConv2D with its ReLU, forward and input gradient cut for two block threads (as
    VGG16's layers run): the textbook Conv2D's, float64 to 1e-12, every product through
    the library's gemm."""
    from vggnp.fast.blocks import BLOCKS
    from vggnp.fast.layers import FastConv2D
    from vggnp.fast.threads import use_threads
    from vggnp.nn.backward_pass import BackwardPass
    from vggnp.nn.layers import Conv2D
    ran, add = [], gemm._blas_add
    monkeypatch.setattr(gemm, "_blas_add", lambda f, *args: ran.append(f) or add(f, *args))
    before, limits = BLOCKS.count, use_threads(2)
    try:
        r = np.random.default_rng(9)
        x, w, b = r.standard_normal((2, 40, 36, 16)), r.standard_normal((3, 3, 16, 24)), \
            r.standard_normal(24)
        fast, plain = FastConv2D("c", w, b, threads=BLOCKS), Conv2D("c", w, b)
        np.testing.assert_allclose(fast.forward(x), plain.forward(x), rtol=0, atol=1e-12)
        dout = r.standard_normal((2, 40, 36, 24))
        np.testing.assert_allclose(fast.backward(dout, BackwardPass()),
                                   plain.backward(dout, BackwardPass()), rtol=0, atol=1e-12)
    finally:
        BLOCKS.use(before)
        limits.restore_original_limits()
    chosen = getattr(gemm._found_blas(), library).values()
    assert ran and all(any(f is g for g in chosen) for f in ran)
