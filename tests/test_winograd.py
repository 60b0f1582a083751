"""Winograd F(2x2, 3x3) and F(4x4, 3x3) (``vggnp/fast/winograd.py``) against the im2col
reference: the same sum to float64 rounding (forward and dx, sides not multiples of the
tile included, on one thread and cut for two), within the stated bound of the float64
result in float32 at VGG16's layer shapes, and taken by ``FastConv2D`` where it pays."""

import functools

import numpy as np
import pytest

from vggnp.fast.blocks import INLINE, BlockThreads
from vggnp.fast.layers import flipped_kernel
from vggnp.fast.winograd import (F2X2, F4X4, kernel_transform, winograd_input,
                                 winograd_pays, winograd_same)
from vggnp.nn.im2col import col2im, im2col

# float32 F(4x4) against the float64 sum, relative to the output's largest magnitude, at
# VGG16's widths: measured 2.5e-6 to 7.1e-6 (F(2x2)'s and one im2col product's 2e-7 to 7e-7;
# ``pytest -s`` prints them).
F4X4_FLOAT32_BOUND = 1.5e-5


def reference(x, w):
    """The 3x3 "same" cross-correlation as im2col + one GEMM, in float64."""
    n, h, wd, c = x.shape
    col = im2col(x.astype(np.float64), 3, 3, 1)
    return (col @ w.astype(np.float64).reshape(9 * c, -1)).reshape(n, h, wd, -1)


@functools.cache
def two_threads():
    """One runner of two threads for the module (its helper thread lives on, idle)."""
    threads = BlockThreads()
    threads.use(2)
    return threads


@pytest.mark.parametrize("scheme", [F2X2, F4X4], ids=["F2x2", "F4x4"])
@pytest.mark.parametrize("shape, f", [((1, 2, 2, 1), 1), ((2, 6, 10, 3), 5),
                                      ((1, 8, 4, 16), 7), ((2, 5, 7, 4), 3),
                                      ((1, 14, 13, 6), 2)])
def test_winograd_equals_im2col_in_float64(scheme, shape, f):
    """Forward (with bias and ReLU) and dx, each within 1e-10 of im2col / col2im."""
    r = np.random.default_rng(3)
    x, dz = r.standard_normal(shape), r.standard_normal((*shape[:3], f))
    w, b = r.standard_normal((3, 3, shape[3], f)), r.standard_normal(f)
    dx = col2im(dz.reshape(-1, f) @ w.reshape(-1, f).T, shape, 3, 3, 1)
    for threads in (INLINE, two_threads()):
        np.testing.assert_allclose(winograd_same(x, w, {}, scheme, threads),
                                   reference(x, w), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(
            winograd_same(x, w, {}, scheme, threads, bias=b, relu=True),
            np.maximum(reference(x, w) + b, 0), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(winograd_same(dz, w, {}, scheme, threads, flipped=True),
                                   dx, rtol=1e-10, atol=1e-10)


def test_chunks_and_kernel_blocks_give_the_same_sum(monkeypatch):
    """Cut into chunks of one tile row and the kernel's transform into blocks of 3
    channels (``plan``: what a large image or a wide kernel gets), on two threads, forward
    and dx still equal im2col / col2im within 1e-10."""
    from vggnp.fast import winograd
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)
    monkeypatch.setattr(winograd, "U_BLOCK", 3)
    r = np.random.default_rng(7)
    x, dz = r.standard_normal((2, 13, 9, 8)), r.standard_normal((2, 13, 9, 7))
    w = r.standard_normal((3, 3, 8, 7))
    assert winograd.plan(x.shape, 7, F4X4, 8).chunk == 1
    dx = col2im(dz.reshape(-1, 7) @ w.reshape(-1, 7).T, x.shape, 3, 3, 1)
    for threads in (INLINE, two_threads()):
        np.testing.assert_allclose(winograd_same(x, w, {}, threads=threads), reference(x, w),
                                   rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(winograd_same(dz, w, {}, threads=threads, flipped=True),
                                   dx, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("c, f", [(3, 64), (64, 64), (128, 256), (256, 256), (256, 512),
                                  (512, 512)])
def test_winograd_float32_error_at_vgg16_widths(c, f):
    """float32 vs the float64 sum, relative to the output's max magnitude: F(2x2) within
    5e-6, F(4x4) within F4X4_FLOAT32_BOUND (the direct float32 GEMM's own error printed
    beside them)."""
    r = np.random.default_rng(5)
    x = np.abs(r.standard_normal((1, 14, 14, c))).astype(np.float32)  # post-ReLU-like
    w = (r.standard_normal((3, 3, c, f)) * np.sqrt(2 / (9 * c))).astype(np.float32)
    exact = reference(x, w)
    scale = np.abs(exact).max()
    errors = [np.abs(winograd_same(x, w, {}, scheme) - exact).max() / scale
              for scheme in (F2X2, F4X4)]
    direct = np.abs((im2col(x, 3, 3, 1) @ w.reshape(9 * c, f)).reshape(exact.shape)
                    - exact).max() / scale
    print(f"C={c} F={f}: F(2x2) {errors[0]:.2e}, F(4x4) {errors[1]:.2e}, direct {direct:.2e}")
    assert errors[0] <= 5e-6 and errors[1] <= F4X4_FLOAT32_BOUND


def test_the_flipped_kernels_transform_is_its_taps_reversed():
    """dx's transform, made from the kernel's taps in reverse order (no copy), is the
    flipped kernel's own transform, each (C, F) matrix transposed."""
    r = np.random.default_rng(6)
    w = r.standard_normal((3, 3, 5, 7))
    own = kernel_transform(np.ascontiguousarray(flipped_kernel(w)))      # (36, 7, 5)
    np.testing.assert_allclose(kernel_transform(w, flipped=True).transpose(0, 2, 1), own,
                               rtol=0, atol=1e-14)


def test_the_workspaces_are_written_before_they_are_read():
    """One workspace dict across shapes, the largest first, every array in it then
    filled with NaN: the smaller convs read nothing they did not write (the padded
    input's border, V, M and the kernel's transform each call)."""
    r = np.random.default_rng(5)
    buffers = {}
    for k, (shape, f) in enumerate([((2, 12, 16, 8), 6), ((1, 6, 10, 4), 3),
                                    ((1, 8, 8, 5), 5)]):
        x, w = r.standard_normal(shape), r.standard_normal((3, 3, shape[3], f))
        np.testing.assert_allclose(winograd_same(x, w, buffers), reference(x, w),
                                   rtol=1e-10, atol=1e-10)
        if k == 0:
            assert set(buffers) == {"padded"}
            for array in buffers.values():
                array[...] = np.nan


def test_an_input_written_in_the_workspace_is_read_there():
    """dz written where ``winograd_input`` says (as a conv's ReLU backward writes it): the
    call does not grow the workspace under it, even from an empty one, and its sum is
    dz's."""
    r = np.random.default_rng(8)
    w, dz = r.standard_normal((3, 3, 4, 6)), r.standard_normal((2, 9, 10, 6))
    buffers = {}
    inside = winograd_input(buffers, dz.shape, dz.dtype, 4)
    inside[...] = dz
    padded = buffers["padded"]
    got = winograd_same(inside, w, buffers, flipped=True)
    assert buffers["padded"] is padded
    np.testing.assert_allclose(got, col2im(dz.reshape(-1, 6) @ w.reshape(-1, 6).T,
                                           (2, 9, 10, 4), 3, 3, 1), rtol=1e-10, atol=1e-10)


def test_conv2d_takes_winograd_where_it_pays_forward_and_backward(monkeypatch):
    """A 256 -> 256 3x3 "same" layer runs F(4x4) forward and for dx (counted), each
    within 1e-10 of the lesson's Conv2D in float64; thinner, wider, strided, "valid", 5x5
    and overhanging layers keep their paths."""
    from vggnp.fast import layers
    from vggnp.nn.layers import Conv2D
    calls = []
    real = layers.winograd_same
    monkeypatch.setattr(layers, "winograd_same",
                        lambda x, *rest, **kw: calls.append(x.shape) or real(x, *rest, **kw))
    r = np.random.default_rng(9)
    x = r.standard_normal((1, 8, 4, 256))
    w, b = r.standard_normal((3, 3, 256, 256)) * 0.03, r.standard_normal(256)
    fast, lesson = layers.FastConv2D("c", w, b, threads=two_threads()), Conv2D("c", w, b)
    np.testing.assert_allclose(fast.forward(x), lesson.forward(x), rtol=1e-10, atol=1e-10)
    dout = r.standard_normal((1, 8, 4, 256))
    np.testing.assert_allclose(fast.backward(dout), lesson.backward(dout), rtol=1e-10,
                               atol=1e-10)
    assert calls == [(1, 8, 4, 256), (1, 8, 4, 256)]
    assert winograd_pays((1, 8, 4, 256), w.shape)
    assert not winograd_pays((1, 4, 8, 128), (3, 3, 128, 256))  # thin
    assert not winograd_pays((1, 4, 8, 256), (3, 3, 256, 128))  # thin dx
    assert not winograd_pays((1, 4, 8, 512), (3, 3, 512, 512))  # transform past MAX_PAIRS
    assert not winograd_pays((1, 4, 8, 256), (5, 5, 256, 256))  # not 3x3
    assert not winograd_pays((1, 14, 16, 256), w.shape)  # tiles overhang the image
    for other in (layers.FastConv2D("s", w, b, strides=(2, 2)),
                  layers.FastConv2D("v", w, b, padding="valid")):
        assert other.path(x.shape) != "winograd"
        assert other.path(x.shape, backward=True) != "winograd"
