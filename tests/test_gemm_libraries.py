"""The two BLAS libraries ``fast.gemm.matmul_add`` may call, each held to the same sums:
Intel MKL (``pip install 'vggnp[mkl]'``; in the test extra on Linux x86_64) and NumPy's own
OpenBLAS (VGGNP_GEMM=openblas, or where MKL is not installed); and the switch itself."""

import os
import platform
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from vggnp.fast import gemm, mkl
from vggnp.fast.blocks import BLOCKS
from vggnp.fast.direct_conv import correlate_same
from vggnp.fast.layers import FastConv2D, flipped_kernel
from vggnp.fast.threads import use_threads
from vggnp.nn.backward_pass import BackwardPass
from vggnp.nn.im2col import im2col
from vggnp.nn.layers import Conv2D

from helpers import MODEL, SHAPES, missing

# where the [mkl] and [test] extras install MKL (pyproject.toml's marker)
MKL_WHEELS = sys.platform == "linux" and platform.machine() == "x86_64"


@pytest.fixture(params=["mkl", "openblas"])
def library(request, monkeypatch):
    """The libraries found again with VGGNP_GEMM unset ("mkl") or "openblas", NumPy's
    OpenBLAS on one thread, as on vggnp's block threads (where MKL is called). No MKL
    skips its case locally, and in CI where its wheels do not install; fails it in CI
    where they do, as TensorFlow's tests."""
    monkeypatch.setenv("VGGNP_GEMM", "auto" if request.param == "mkl" else "openblas")
    gemm.forget()
    absent = gemm.libraries().mkl_absent
    if request.param == "mkl" and absent:
        gemm.forget()
        missing("Intel MKL", f"the tests of each GEMM library ({absent})",
                "pip install -e '.[test]'", in_ci=MKL_WHEELS)
    with threadpool_limits(1, user_api="blas"):
        yield request.param
    gemm.forget()  # the next test finds the libraries as its VGGNP_GEMM says


@pytest.fixture
def ran(monkeypatch):
    """The gemm functions matmul_add calls, in order."""
    called, add = [], gemm._blas_add
    monkeypatch.setattr(gemm, "_blas_add", lambda f, *args: called.append(f) or add(f, *args))
    return called


def only(library, functions):
    """True where every function of ``functions`` (at least one) is the library's."""
    own = gemm.libraries().functions(library).values()
    return bool(functions) and all(any(f is g for g in own) for f in functions)


def test_each_library_adds_in_place(library, ran):
    """out += a @ b in place through the library's gemm, float32 and float64, for b C- and
    F-contiguous (the backward's transposed taps) and out a strided block of rows."""
    assert set(gemm.blas_functions()) == {np.dtype(np.float32), np.dtype(np.float64)}
    r = np.random.default_rng(3)
    for dtype, tolerance in ((np.float32, 1e-5), (np.float64, 1e-12)):
        a, b = r.standard_normal((5, 3)).astype(dtype), r.standard_normal((3, 4)).astype(dtype)
        for b_ in (b, np.asfortranarray(b)):
            big = r.standard_normal((10, 7)).astype(dtype)
            out = big[::2, 2:6]
            expected, untouched = out + a @ b_, big[1::2].copy()
            assert gemm.matmul_add(a, b_, out) is out
            np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)
            assert np.array_equal(big[1::2], untouched)
    assert only(library, ran) and len(ran) == 4


@pytest.mark.parametrize("c, f", [(64, 64), (256, 512)])
def test_each_library_convolves_within_the_float32_bound(library, ran, c, f):
    """correlate_same, forward and backward (flipped kernel), float32 against the float64
    im2col sum: within 5e-6 of the output's max (tests/test_fast_conv.py's bound); float64
    within 1e-10; every product through the library."""
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
    assert only(library, ran)


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_each_library_runs_a_relu_conv_on_two_block_threads(library, ran, dtype, tolerance):
    """FastConv2D with its ReLU, forward and input gradient cut for two block threads (as
    VGG16's layers run): the textbook Conv2D's in float64 (float32: to 1e-5 of the
    largest value), every product through the library's gemm."""
    before, restore = BLOCKS.count, use_threads(2)
    try:
        r = np.random.default_rng(9)
        x, w, b = r.standard_normal((2, 40, 36, 16)), r.standard_normal((3, 3, 16, 24)), \
            r.standard_normal(24)
        dout = r.standard_normal((2, 40, 36, 24))
        fast = FastConv2D("c", w.astype(dtype), b.astype(dtype), threads=BLOCKS)
        plain = Conv2D("c", w, b)
        for got, want in [(fast.forward(x.astype(dtype)), plain.forward(x)),
                          (fast.backward(dout.astype(dtype), BackwardPass()),
                           plain.backward(dout, BackwardPass()))]:
            assert got.dtype == dtype
            np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * np.abs(want).max())
    finally:
        BLOCKS.use(before)
        restore()
    assert only(library, ran)


@pytest.mark.parametrize("library", ["mkl"], indirect=True)
def test_mkl_only_where_openblas_runs_one_thread(library):
    """MKL's sequential gemm replaces OpenBLAS's only where OpenBLAS runs one thread (a
    block thread's product); with two (a Keras graph's products, on the caller's thread)
    OpenBLAS's own threads run it."""
    found = gemm.libraries()
    assert gemm.blas_functions() is found.mkl
    with threadpool_limits(2, user_api="blas"):  # OpenBLAS takes 2 even on one core
        assert found.threads() == 2 and gemm.blas_functions() is found.openblas


def test_each_library_is_named_and_kept_apart_from_numpys(library):
    """gemm.path() names the library matmul_add calls, or why there is no MKL;
    gemm.kernels() names NumPy's BLAS only (MKL, loaded by vggnp, is not NumPy's)."""
    assert ("Intel MKL 20" in gemm.path()) == (library == "mkl")
    if library == "openblas":
        assert "(Intel MKL: left out (VGGNP_GEMM=openblas))" in gemm.path()
    assert "mkl" not in gemm.kernels()


def test_vggnp_gemm_takes_three_values_and_every_command_refuses_others(monkeypatch,
                                                                       tmp_path, capsys):
    """VGGNP_GEMM: auto (or unset), openblas, numpy (NumPy's out += a @ b); anything else
    is a ValueError, and every command's usage error (exit 2, one line), before any work
    (``cli.ArgumentParser``)."""
    from vggnp import activations, filters, gradcheck, sanity, trace
    from vggnp.cam import run as cam_run
    for value, expected in [("", "auto"), ("auto", "auto"), ("openblas", "openblas"),
                            ("numpy", "numpy")]:
        monkeypatch.setenv("VGGNP_GEMM", value)
        assert gemm.choice() == expected
    monkeypatch.setenv("VGGNP_GEMM", "OpenBlas")
    with pytest.raises(ValueError, match="VGGNP_GEMM is 'OpenBlas': it may be auto, "):
        gemm.choice()
    image, out = [SHAPES[0], *MODEL, "--out", str(tmp_path)], []
    for name, main, argv in [("vggnp.cam", cam_run.main, image),
                             ("vggnp.activations", activations.main,
                              [*image, "--layer", "conv2d_1"]),
                             ("vggnp.filters", filters.main,
                              [*MODEL, "--layer", "conv2d_1", "--out", str(tmp_path)]),
                             ("vggnp.sanity", sanity.main, image),
                             ("vggnp.trace", trace.main, ["--paths"]),
                             ("vggnp.gradcheck", gradcheck.main, [])]:
        with pytest.raises(SystemExit) as stop:
            main(argv)
        out.append(capsys.readouterr())
        assert stop.value.code == 2 and out[-1].out == "", name
        assert out[-1].err == (f"{name}: the environment variable VGGNP_GEMM is 'OpenBlas': "
                               "it may be auto, openblas, numpy (or unset)\n")
    assert os.listdir(tmp_path) == []


def test_a_broken_mkl_install_is_left_out_not_loaded(monkeypatch, tmp_path):
    """libmkl_rt without the libraries it loads itself (MKL would end the process at its
    first product): not loaded, and said why."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libmkl_rt.so.9").write_bytes(b"")
    (tmp_path / "lib" / "libmkl_core.so.9").write_bytes(b"")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(mkl.site, "ENABLE_USER_SITE", False)
    sgemm, _, _, absent = mkl.load()
    assert sgemm is None and absent.endswith("libmkl_sequential.so.9 is not beside it "
                                             "(a broken install)")
    assert mkl.library_paths() == [str(tmp_path / "lib" / "libmkl_rt.so.9")]
