"""Winograd F(2x2, 3x3) (``vggnp/fast/winograd.py``) against the im2col reference: the same
sum to float64 rounding, and within float32 rounding of the float64 result at VGG16's
layer shapes (channels as VGG16's, images smaller)."""

import numpy as np
import pytest

from vggnp.nn.im2col import im2col
from vggnp.fast.winograd import kernel_transform, winograd_same


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


def test_conv2d_takes_winograd_where_it_pays_forward_and_backward(monkeypatch):
    """Turned on at 256 channels, a 256-channel 3x3 layer runs Winograd forward and
    backward (counted), and both equal the im2col / col2im reference in float64; odd
    sizes and thin layers do not take it, and nothing does while it is off (the default)."""
    from vggnp.fast import layers
    from vggnp.fast import winograd
    from vggnp.nn.im2col import col2im
    assert winograd.WINOGRAD_MIN_CHANNELS is None
    assert not winograd.winograd_pays((1, 4, 6, 512), (3, 3, 512, 512))
    monkeypatch.setattr(winograd, "WINOGRAD_MIN_CHANNELS", 256)
    calls = []
    real = winograd.winograd_same
    monkeypatch.setattr(layers, "winograd_same",
                        lambda x, *rest, **kw: calls.append(x.shape) or real(x, *rest, **kw))
    r = np.random.default_rng(9)
    x = r.standard_normal((1, 4, 6, 256))
    w = r.standard_normal((3, 3, 256, 256)) * 0.03
    layer = layers.FastConv2D("c", w, r.standard_normal(256), activation="linear")
    np.testing.assert_allclose(layer.forward(x), reference(x, w) + layer.b, rtol=1e-10,
                               atol=1e-10)
    dz = r.standard_normal((1, 4, 6, 256))
    expected = col2im(dz.reshape(-1, 256) @ w.reshape(-1, 256).T, x.shape, 3, 3, 1)
    np.testing.assert_allclose(layer.backward(dz), expected, rtol=1e-10, atol=1e-10)
    assert calls == [(1, 4, 6, 256), (1, 4, 6, 256)]
    assert not winograd.winograd_pays((1, 5, 6, 256), w.shape)      # odd height
    assert not winograd.winograd_pays((1, 4, 6, 128), (3, 3, 128, 256))  # thin
    assert not winograd.winograd_pays((1, 4, 6, 256), (5, 5, 256, 256))  # not 3x3


def test_the_flipped_kernels_transform_is_the_kernels_permuted_and_transposed():
    """dx's Winograd reads the forward's transform (``winograd.FLIPPED``): the same sum as
    the flipped kernel's own transform, and as col2im in float64; the transform of the
    flipped kernel equals U's positions permuted, each (C, F) transposed (to the rounding
    of its sums, taken in the other order)."""
    from vggnp.fast.layers import flipped_kernel
    from vggnp.fast.winograd import FLIPPED
    from vggnp.nn.im2col import col2im
    r = np.random.default_rng(6)
    w, dz = r.standard_normal((3, 3, 5, 7)), r.standard_normal((2, 6, 8, 7))
    u, u_flipped = kernel_transform(w), kernel_transform(np.ascontiguousarray(flipped_kernel(w)))
    np.testing.assert_allclose(u[FLIPPED].transpose(0, 2, 1), u_flipped, rtol=0, atol=1e-14)
    expected = col2im(dz.reshape(-1, 7) @ w.reshape(-1, 7).T, (2, 6, 8, 5), 3, 3, 1)
    np.testing.assert_allclose(winograd_same(dz, u, flipped=True), expected, rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(winograd_same(dz, u_flipped), expected, rtol=1e-10, atol=1e-10)


def test_the_measured_f4x4_path_equals_im2col():
    """scripts/conv_paths.py's F(4x4, 3x3), timed and quoted in docs/speed.md, computes the
    conv it is timed against: float64 to rounding, sides not multiples of 4 included, on
    one thread and cut for two (as the bench runs it)."""
    from scripts.conv_paths import kernel_transform_4x4, winograd_4x4
    from vggnp.fast.blocks import INLINE, BlockThreads
    two = BlockThreads()
    two.use(2)
    r = np.random.default_rng(4)
    for threads in (INLINE, two):
        for shape, f in [((2, 14, 14, 8), 5), ((1, 16, 12, 3), 4)]:
            x, w = r.standard_normal(shape), r.standard_normal((3, 3, shape[3], f))
            u = kernel_transform_4x4(w, threads)
            np.testing.assert_allclose(winograd_4x4(x, u, threads), reference(x, w),
                                       rtol=1e-10, atol=1e-10)


def test_the_measured_f4x4_path_writes_before_it_reads_its_workspaces():
    """The workspaces conv_paths' F(4x4) reuses (its network timing passes the model's):
    one dict across shapes, the largest first, every array in it then filled with NaN;
    the smaller convs read nothing that they did not write (M zeroed before the products
    add into it, the padded input's border written each call)."""
    from scripts.conv_paths import kernel_transform_4x4, winograd_4x4
    r = np.random.default_rng(5)
    buffers = {}
    for k, (shape, f) in enumerate([((2, 12, 16, 8), 6), ((1, 6, 10, 4), 3),
                                    ((1, 8, 8, 5), 5)]):
        x, w = r.standard_normal(shape), r.standard_normal((3, 3, shape[3], f))
        got = winograd_4x4(x, kernel_transform_4x4(w, buffers=buffers), buffers=buffers)
        np.testing.assert_allclose(got, reference(x, w), rtol=1e-10, atol=1e-10)
        if k == 0:
            assert {"padded", "w4_d", "w4_v", "w4_m", "w4_y", "w4_u"} <= set(buffers)
            for array in buffers.values():
                array[...] = np.nan


def test_the_measured_f4x4_in_a_layer_is_the_lessons_forward_and_dx():
    """conv_paths' F4x4Layers (what --network times): a FastConv2D it names runs F(4x4)
    forward and, with the kernel flipped, for dx, each within 1e-10 of the lesson's
    Conv2D in float64; one it does not name keeps its path; on exit the library's own
    path, kernel transform and Winograd are back."""
    from scripts.conv_paths import F4x4Layers
    from vggnp.fast import layers as fast_layers
    from vggnp.fast.blocks import INLINE
    from vggnp.fast.layers import FastConv2D
    from vggnp.nn.layers import Conv2D
    saved = (FastConv2D.path, fast_layers.kernel_transform, fast_layers.winograd_same)
    r = np.random.default_rng(6)
    x, w, b = r.standard_normal((2, 8, 12, 5)), r.standard_normal((3, 3, 5, 4)), \
        r.standard_normal(4)
    named, other = (FastConv2D(name, w, b, buffers={}) for name in ("c", "d"))
    lesson = Conv2D("c", w, b)
    with F4x4Layers({"c"}, INLINE) as f4x4:
        f4x4.on = True
        assert named.path(x.shape) == named.path(x.shape, backward=True) == "winograd"
        assert other.path(x.shape) == "direct"
        out, expected = named.forward(x), lesson.forward(x)
        np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
        dout = r.standard_normal(out.shape)
        np.testing.assert_allclose(named.backward(dout), lesson.backward(dout),
                                   rtol=1e-10, atol=1e-10)
    assert (FastConv2D.path, fast_layers.kernel_transform, fast_layers.winograd_same) == saved
    assert named.path(x.shape) == "direct"
