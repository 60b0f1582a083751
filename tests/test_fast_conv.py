"""The fast convolution (``vggnp/fast/direct_conv.py`` and ``FastConv2D``) equals its
reference: ``im2col`` followed by one GEMM, and the loop convolution of
``vggnp/nn/naive.py``."""

import itertools

import numpy as np
import pytest

from helpers import assert_conv_as_the_lesson, spy

from vggnp.fast.direct_conv import correlate, correlate_same
from vggnp.fast.blocks import INLINE
from vggnp.fast.gemm import matmul_add
from vggnp.nn.im2col import im2col
from vggnp.nn.backward_pass import BackwardPass
from vggnp.nn.layers import Conv2D
from vggnp.fast.layers import FastConv2D
from vggnp.nn.naive import conv2d_same_naive


PARAMS = BackwardPass(param_grads=True)


def rng():
    return np.random.default_rng(7)


def test_conv_fast_equals_naive():
    r = rng()
    x = r.standard_normal((2, 6, 9, 3)).astype(np.float32)
    w = r.standard_normal((3, 3, 3, 5)).astype(np.float32)
    b = r.standard_normal(5).astype(np.float32)
    fast = FastConv2D("c", w, b, activation="linear").forward(x)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, conv2d_same_naive(x, w, b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape, k, f", [((3, 5, 9, 4), 3, 6), ((2, 7, 4, 16), 5, 3),
                                         ((1, 6, 6, 2), 1, 4), ((2, 1, 1, 3), 3, 2)])
@pytest.mark.parametrize("block_pixels", [None, 1, 7])
def test_correlate_same_equals_im2col_gemm(shape, k, f, block_pixels):
    """Any block size (all outputs at once, one pixel at a time, 7 pixels: blocks that
    start and end inside image rows and span two images) gives the sum of im2col(x) @ W
    (+ b), in float64 to rounding."""
    block_bytes = 2 << 20 if block_pixels is None else block_pixels * f * 8
    r = rng()
    x = r.standard_normal(shape)
    kernel = r.standard_normal((k, k, shape[3], f))
    bias = r.standard_normal(f)
    expected = (im2col(x, k, k, k // 2) @ kernel.reshape(-1, f)).reshape(*shape[:3], f)
    got = correlate_same(x, kernel, {}, block_bytes=block_bytes)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    with_bias = correlate_same(x, kernel, {}, bias=bias, block_bytes=block_bytes)
    np.testing.assert_allclose(with_bias, expected + bias, rtol=1e-12, atol=1e-12)
    # the backward's kernel: a flipped, channel-transposed view of w (F-contiguous taps)
    from vggnp.fast.layers import flipped_kernel
    flipped, dz = flipped_kernel(kernel), r.standard_normal((*shape[:3], f))
    expected_dx = (im2col(dz, k, k, k // 2) @ flipped.reshape(-1, shape[3])).reshape(shape)
    np.testing.assert_allclose(correlate_same(dz, flipped, {}, block_bytes=block_bytes),
                               expected_dx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel, pads", [((3, 3), ((0, 0), (0, 0))),
                                          ((4, 2), ((1, 2), (0, 1))),
                                          ((1, 3), ((0, 0), (2, 2))),
                                          ((3, 3), ((2, 2), (2, 2)))])
def test_correlate_with_any_padding_equals_im2col_gemm(kernel, pads):
    """Stride 1 with "valid", uneven ("same" for an even kernel) and "full" padding: the
    sum of im2col(x) @ W + b, in float64 to rounding, in blocks that span images too."""
    r = rng()
    x, kh, kw = r.standard_normal((2, 6, 7, 5)), *kernel
    w, b = r.standard_normal((kh, kw, 5, 3)), r.standard_normal(3)
    (top, bottom), (left, right) = pads
    shape = (2, 6 + top + bottom - kh + 1, 7 + left + right - kw + 1, 3)
    expected = (im2col(x, kh, kw, pads) @ w.reshape(-1, 3)).reshape(shape) + b
    for block_bytes in (2 << 20, 3 * 8):
        got = correlate(x, w, {}, pads, bias=b, block_bytes=block_bytes)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel, padding", [((3, 3), "valid"), ((4, 4), "same"),
                                             ((2, 3), "valid"), ((5, 5), "same")])
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-10), (np.float32, 5e-6)])
def test_fast_conv_with_any_padding_equals_the_lesson(kernel, padding, dtype, tolerance):
    """A stride-1 FastConv2D that is not "same" with an odd kernel (Xception's "valid"
    block1_conv2) runs the direct path forward and, with >= 16 channels, backward too;
    z, dx, dW and db equal the lesson's Conv2D (im2col, col2im) in float64 within 1e-10
    and in float32 within 5e-6 of each array's largest value."""
    r = rng()
    x = r.standard_normal((2, 9, 8, 16))
    w = r.standard_normal((*kernel, 16, 6)) / np.sqrt(16 * kernel[0] * kernel[1])
    b = r.standard_normal(6)
    fast = FastConv2D("c", w.astype(dtype), b.astype(dtype), "linear", padding=padding)
    lesson = Conv2D("c", w, b, "linear", padding=padding)
    assert fast.path(x.shape) == fast.path(x.shape, backward=True) == "direct"
    z, expected = fast.forward(x.astype(dtype)), lesson.forward(x)
    assert z.dtype == dtype
    dout = r.standard_normal(expected.shape)
    assert_conv_as_the_lesson(fast, lesson, z, expected, dout, PARAMS, dtype, tolerance)


def test_a_kernel_larger_than_the_padded_input_is_refused_or_left_to_im2col():
    """correlate refuses a kernel that does not fit (it would slice uninitialised rows);
    FastConv2D leaves that shape to its im2col path, whose window-row copy refuses it too
    (the lesson's im2col would give an empty map; a model's loader refuses such a layer
    before: files/layer_shapes)."""
    x = rng().standard_normal((1, 2, 5, 16))
    with pytest.raises(ValueError, match="does not fit"):
        correlate(x, np.ones((3, 3, 16, 2)), {}, ((0, 0), (0, 0)))
    conv = FastConv2D("c", np.ones((3, 3, 16, 2)), np.zeros(2), "linear", padding="valid")
    assert conv.path(x.shape) == "im2col" and conv.path((1, 3, 5, 16)) == "direct"
    with pytest.raises(ValueError, match="does not fit"):
        conv.forward(x)


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


def test_matmul_add_adds_in_place_through_numpys_blas():
    """gemm.matmul_add reads C- and F-contiguous b (w.T in the backward) as they are, and
    adds into out itself, also into a strided block of rows; NumPy's own BLAS is found
    on this NumPy (the ctypes path is what runs); bad shapes and read-only outs raise."""
    from vggnp.fast import gemm
    assert set(gemm.blas_functions()) == {np.dtype(np.float32), np.dtype(np.float64)}
    r = rng()
    for dtype in (np.float32, np.float64):
        a, b = r.standard_normal((5, 3)).astype(dtype), r.standard_normal((3, 4)).astype(dtype)
        for b_ in (b, np.asfortranarray(b), b[::-1][::-1], b[:, ::-1]):
            big = r.standard_normal((10, 7)).astype(dtype)
            out = big[::2, 2:6]                      # rows apart: BLAS's leading dimension
            expected, untouched = out + a @ b_, big[1::2].copy()
            assert matmul_add(a, b_, out) is out
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
            assert np.array_equal(big[1::2], untouched)
    with pytest.raises(ValueError, match="shapes"):
        matmul_add(np.ones((1, 5)), np.ones((3, 4)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="shapes"):
        matmul_add(np.ones((2, 3)), np.ones((3, 4)), np.zeros((2, 6)))
    frozen = np.zeros((2, 4))
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        matmul_add(np.ones((2, 3)), np.ones((3, 4)), frozen)


def test_matmul_add_without_a_usable_blas_takes_numpys_way(monkeypatch):
    """Another NumPy build (no scipy_cblas_sgemm64_): the same sums, by ``out += a @ b``."""
    from vggnp.fast import gemm
    monkeypatch.setattr(gemm, "blas_functions", dict)
    r = rng()
    x, w = r.standard_normal((2, 5, 6, 4)), r.standard_normal((3, 3, 4, 3))
    expected = (im2col(x, 3, 3, 1) @ w.reshape(-1, 3)).reshape(2, 5, 6, 3)
    np.testing.assert_allclose(correlate_same(x, w, {}), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c, f", [(3, 64), (64, 64), (128, 256), (256, 512), (512, 512)])
def test_float32_error_at_vgg16_widths(c, f):
    """float32 correlate_same (forward, and backward with the flipped kernel view) vs the
    float64 sum, relative to the output's max magnitude: within 5e-6, as Winograd F(2x2)'s
    (tests/test_winograd.py); the one-GEMM im2col path's own error printed beside it."""
    from vggnp.fast.layers import flipped_kernel
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


def test_the_gemm_switch_and_its_name(monkeypatch):
    """VGGNP_GEMM=numpy (scripts.gemm_ab's A/B switch) takes NumPy's way; gemm.path() says
    which way runs (``python -m vggnp.trace --paths`` prints it)."""
    from vggnp.fast import gemm
    assert "ctypes" in gemm.path()
    monkeypatch.setenv("VGGNP_GEMM", "numpy")
    gemm.forget()  # read when the libraries are found
    try:
        assert gemm.blas_functions() == {} and "out += a @ b" in gemm.path()
        r = rng()
        a, b, out = r.standard_normal((4, 3)), r.standard_normal((3, 2)), np.ones((4, 2))
        np.testing.assert_allclose(matmul_add(a, b, out), 1 + a @ b, rtol=1e-12)
    finally:
        monkeypatch.undo()
        gemm.forget()


def test_the_blas_kernels_are_named_with_who_chose_them(monkeypatch):
    """gemm.kernels() names the kernels threadpoolctl sees NumPy's BLAS run; "set by
    OPENBLAS_CORETYPE" only where that variable names the kernels running (docs/speed.md:
    this machine's environment sets Haswell on an AVX-512 CPU)."""
    from threadpoolctl import threadpool_info

    from vggnp.fast import gemm
    architecture = next(lib["architecture"] for lib in threadpool_info()
                        if lib["user_api"] == "blas" and lib.get("architecture"))
    monkeypatch.setenv("OPENBLAS_CORETYPE", architecture.upper())
    assert f"{architecture} (set by OPENBLAS_CORETYPE={architecture.upper()})" \
        in gemm.kernels()
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Nonsense")
    assert gemm.kernels().endswith(f"{architecture} (OPENBLAS_CORETYPE=Nonsense is set)")
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert gemm.kernels().endswith(f"{architecture} (chosen by the BLAS)")
    assert gemm.kernels() in gemm.path()


@pytest.mark.parametrize("shape, kernel, pads, strides", [
    ((2, 9, 11, 3), (7, 7), ((3, 3), (3, 3)), (2, 2)),
    ((1, 8, 8, 4), (3, 3), ((0, 1), (0, 1)), (2, 2)),
    ((1, 7, 9, 5), (1, 1), ((0, 0), (0, 0)), (2, 2)),
    ((2, 6, 5, 2), (2, 3), ((1, 0), (2, 1)), (1, 3)),
    ((1, 5, 5, 1), (3, 3), ((0, 0), (0, 0)), (1, 1))])
def test_im2col_rows_is_the_lessons_im2col(shape, kernel, pads, strides):
    """The window-row copy (``fast/unfold.py``) gives the lesson's matrix value for value:
    strided, padded on one side only, 1x1, non-square, one channel."""
    from vggnp.fast.unfold import im2col_rows
    x = rng().standard_normal(shape)
    np.testing.assert_array_equal(im2col_rows(x, *kernel, pads, strides),
                                  im2col(x, *kernel, pads, strides))
    # contiguous, its length-1 channel axis with a stride of 0: strides come from the shape
    one_channel = np.ascontiguousarray(x[..., 0])[..., None]
    np.testing.assert_array_equal(im2col_rows(one_channel, *kernel, pads, strides),
                                  im2col(one_channel, *kernel, pads, strides))


def test_a_strided_fast_conv_takes_the_window_row_copy(monkeypatch):
    """FastConv2D's im2col path (stride 2) unfolds by window rows, forward (a band at a
    time, ``window_rows``) and for dW, and equals the lesson's Conv2D to rounding."""
    import vggnp.fast.layers as fast_layers
    order = itertools.count()  # which call came first
    calls = {name: spy(monkeypatch, fast_layers, name, note=lambda *a: next(order))
             for name in ("im2col_rows", "window_rows")}
    r = rng()
    x, w, b = r.standard_normal((2, 9, 9, 3)), r.standard_normal((3, 3, 3, 4)), r.standard_normal(4)
    fast, lesson = (cls("c", w, b, "relu", (2, 2), "same") for cls in (FastConv2D, Conv2D))
    dz = r.standard_normal(lesson.forward(x).shape)
    np.testing.assert_allclose(fast.forward(x), lesson.forward(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast.backward(dz, PARAMS), lesson.backward(dz, PARAMS),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fast.dw, lesson.dw, rtol=1e-12, atol=1e-12)
    assert calls == {"window_rows": [0], "im2col_rows": [1]}  # forward, then dW


@pytest.mark.parametrize("kernel, padding", [((3, 3), "same"), ((3, 3), "valid"),
                                             ((2, 3), "same"), ((4, 4), "same")])
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 1e-6)])
@pytest.mark.parametrize("cut", [False, True])
def test_a_few_channel_convs_dx_by_planes_is_the_lessons_col2im(kernel, padding, dtype,
                                                                tolerance, cut, request,
                                                                monkeypatch):
    """VGG16's block1_conv1 (3 input channels): dx by planes (``unfold.col2im_planes``)
    is the lesson's col2im(dz @ W.T) to the product's rounding (W @ dz.T, by blocks of
    dz's rows for two threads or in one product; the same additions in the same order),
    for any stride-1 padding, even ones ("same" 4x4 pads 1 before, 2 after); the
    lesson's col2im never runs for it."""
    import vggnp.nn.layers as lesson
    r = np.random.default_rng(3)
    x = r.standard_normal((2, 9, 11, 3)).astype(dtype)
    w = r.standard_normal((*kernel, 3, 5)).astype(dtype)
    b = r.standard_normal(5).astype(dtype)
    threads = request.getfixturevalue("two_threads") if cut else INLINE
    fast = FastConv2D("c", w, b, "linear", padding=padding, threads=threads)
    plain = Conv2D("c", w, b, "linear", padding=padding)
    assert fast.path(x.shape, backward=True) == "planes"
    dz = r.standard_normal(fast.forward(x).shape).astype(dtype)
    plain.forward(x)
    theirs = plain.input_gradient(dz)
    monkeypatch.setattr(lesson, "col2im", None)  # calling it would fail the test
    ours = fast.input_gradient(dz)
    assert ours.dtype == dtype and ours.flags.c_contiguous and ours.shape == x.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tolerance * np.abs(theirs).max())
