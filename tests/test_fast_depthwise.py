"""The depthwise convolution's fast path (``vggnp/fast/depthwise.py``: a row of pixels at a
time) equals the lesson's ``DepthwiseConv2D`` (a pixel's window at a time), forward and
backward, in float64 to rounding and in float32 within float32's rounding."""

import numpy as np
import pytest

import vggnp.fast.depthwise as depthwise
from vggnp.fast.depthwise import FastDepthwiseConv2D, correlate_pixels, correlate_rows
from vggnp.nn.backward_pass import BackwardPass
from vggnp.nn.graph_layers import DepthwiseConv2D

PARAMS = BackwardPass(param_grads=True)


def pair(shape, kernel, padding, bias=True, activation="relu", strides=(1, 1), m=1,
         dtype=np.float64, seed=0):
    """(lesson, fast, x): the same weights in both layers."""
    r = np.random.default_rng(seed)
    w = r.standard_normal((*kernel, shape[3], m)).astype(dtype)
    b = r.standard_normal(shape[3] * m).astype(dtype) if bias else None
    layers = [cls("d", w, b, activation, strides, padding)
              for cls in (DepthwiseConv2D, FastDepthwiseConv2D)]
    return (*layers, r.standard_normal(shape).astype(dtype))


def forward_backward(layer, x, dout_seed=1):
    out = layer.forward(x)
    dout = np.random.default_rng(dout_seed).standard_normal(out.shape).astype(x.dtype)
    return out, layer.backward(dout, PARAMS), layer.dw, layer.db


@pytest.mark.parametrize("loop, chunk", [("correlate_rows", None), ("correlate_rows", 7),
                                         ("correlate_pixels", None)])
@pytest.mark.parametrize("shape, kernel, padding", [
    ((2, 7, 9, 5), (3, 3), "same"), ((1, 8, 6, 3), (3, 5), "valid"),
    ((2, 5, 5, 4), (2, 2), "same"), ((1, 6, 7, 2), (4, 1), "same"),
    ((1, 1, 1, 3), (3, 3), "same"), ((3, 4, 4, 1), (1, 1), "valid")])
def test_fast_path_equals_the_lesson_in_float64(shape, kernel, padding, loop, chunk,
                                                monkeypatch):
    """Odd, even and non-square kernels, "same" (asymmetric pads for even ones) and "valid",
    a 1x1 map, each sum read a row (in whole rows, or in chunks of a pixel or two with a
    shorter last one) or a pixel at a time (the channel threshold moved to choose): output,
    dx, dW and db within 1e-12; both the forward and the backward took that loop
    (counted)."""
    calls = []
    if chunk:
        monkeypatch.setattr(depthwise, "ROW_CHUNK_VALUES", chunk)
    monkeypatch.setattr(depthwise, "PIXEL_LOOP_MIN_CHANNELS",
                        1 if loop == "correlate_pixels" else 10 ** 9)
    inner = getattr(depthwise, loop)
    monkeypatch.setattr(depthwise, loop, lambda *a: calls.append(1) or inner(*a))
    lesson, fast, x = pair(shape, kernel, padding)
    for got, expected in zip(forward_backward(fast, x), forward_backward(lesson, x)):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert len(calls) == 2


def test_layers_sharing_one_workspace_equal_the_lesson():
    """Two fast layers on one padded-input workspace (as a loaded model's), run in turn on
    maps of other sizes, pads and dtypes (the buffer grows, shrinks in use, changes
    dtype): each output and dx as the lesson's, and the buffer is the one shared."""
    workspace = {}
    cases = [((1, 9, 9, 4), (3, 3), "same", np.float64), ((2, 5, 6, 3), (2, 2), "same",
             np.float32), ((1, 12, 11, 6), (3, 5), "valid", np.float64)]
    for seed, (shape, kernel, padding, dtype) in enumerate(cases * 2):
        lesson, plain, x = pair(shape, kernel, padding, dtype=dtype, seed=seed)
        fast = plain.replica(workspace)
        for got, expected in zip(forward_backward(fast, x), forward_backward(lesson, x)):
            tolerance = 1e-12 if dtype == np.float64 else 1e-5
            np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)
    assert fast.buffers is workspace and set(workspace) == {"padded"}


def test_a_separable_convs_d_in_the_workspace_equals_the_lessons():
    """SeparableConv2D on the fast depthwise writes d into the workspace
    (``transient_forward``). Two such layers on one workspace, interleaved as a network
    runs them (forward A, forward B, backward B, backward A: nothing of A's forward may
    live in the workspace B writes over): outputs, dx and every parameter gradient equal
    those on the lesson's depthwise. Where d is not the plain sum (a bias) it is a fresh
    array, equal to the lesson's forward."""
    from vggnp.nn.graph_layers import SeparableConv2D
    r, workspace, pairs = np.random.default_rng(3), {}, []
    for shape, c_out in (((2, 6, 7, 3), 5), ((1, 9, 8, 4), 2)):
        wd = r.standard_normal((3, 3, shape[3], 1))
        wp, b = r.standard_normal((1, 1, shape[3], c_out)), r.standard_normal(c_out)
        fast_d = FastDepthwiseConv2D("s/depthwise", wd, None, "linear").replica(workspace)
        pairs.append([SeparableConv2D("s", d, wp, b, "relu") for d in (fast_d, wd)]
                     + [r.standard_normal(shape)])
    outs = [[layer.forward(x) for layer in (ours, lesson)] for ours, lesson, x in pairs]
    for (ours, lesson, _), (out, expected) in reversed(list(zip(pairs, outs))):
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
        dout = r.standard_normal(out.shape)
        got = [ours.backward(dout, PARAMS), ours.dw, ours.db, ours.depthwise.dw]
        want = [lesson.backward(dout, PARAMS), lesson.dw, lesson.db, lesson.depthwise.dw]
        for a, e in zip(got, want):
            np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)
    x = pairs[-1][2]
    d = fast_d.transient_forward(x)
    assert np.shares_memory(d, workspace["depthwise_out"])
    np.testing.assert_allclose(d, DepthwiseConv2D("d", wd).forward(x), rtol=1e-12)
    biased = FastDepthwiseConv2D("d", wd, r.standard_normal(x.shape[3]), "linear")
    np.testing.assert_allclose(biased.transient_forward(x), DepthwiseConv2D(
        "d", wd, biased.b).forward(x), rtol=1e-12)
    assert "depthwise_out" not in biased.buffers


@pytest.mark.parametrize("shape, loop", [((1, 19, 19, 728), "correlate_pixels"),
                                         ((1, 37, 37, 64), "correlate_rows")])
def test_fast_path_in_float32_is_within_rounding(shape, loop, monkeypatch):
    """Xception's 19x19x728 map (a pixel at a time) and a 37x37x64 one (a row at a time, in
    two chunks), float32, against the float64 lesson: within 1e-6 of the output's largest
    value, as close as the lesson's own float32 run; the loop named ran (counted)."""
    calls, inner = [], getattr(depthwise, loop)
    monkeypatch.setattr(depthwise, loop, lambda *a: calls.append(1) or inner(*a))
    lesson, fast, x = pair(shape, (3, 3), "same", dtype=np.float32)
    exact = DepthwiseConv2D("d", lesson.w.astype(np.float64), lesson.b.astype(np.float64),
                            "relu").forward(x.astype(np.float64))
    got = fast.forward(x)
    assert got.dtype == np.float32
    scale = np.abs(exact).max()
    assert np.abs(got - exact).max() <= 1e-6 * scale
    assert np.abs(got - exact).max() <= 2 * np.abs(lesson.forward(x) - exact).max() + 1e-7 * scale
    assert calls == [1]


@pytest.mark.parametrize("strides, m", [((2, 2), 1), ((1, 1), 2)])
def test_other_shapes_run_the_lessons_code(strides, m, monkeypatch):
    """Stride 2, or two kernels per channel: the lesson's sum, exactly its values."""
    monkeypatch.setattr(depthwise, "correlate", None)  # would fail if called
    lesson, fast, x = pair((2, 6, 6, 3), (3, 3), "same", strides=strides, m=m)
    for got, expected in zip(forward_backward(fast, x), forward_backward(lesson, x)):
        np.testing.assert_array_equal(got, expected)


def test_new_weights_are_used_by_the_next_pass():
    """Weights put in place (as the sanity checks do) are used by the next pass, forward
    and backward."""
    lesson, fast, x = pair((1, 5, 6, 2), (3, 3), "same")
    forward_backward(fast, x)
    lesson.w = fast.w = np.random.default_rng(5).standard_normal(fast.w.shape)
    for got, expected in zip(forward_backward(fast, x), forward_backward(lesson, x)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_both_loops_read_the_map_they_are_given_or_refuse_it():
    """A one-channel map whose length-1 axis carries a stray stride (``x[..., None]``, which
    NumPy calls contiguous): the lesson's values, a row or a pixel at a time. A kernel
    larger than the map, or of other channels: refused, not read past the map's end."""
    r = np.random.default_rng(3)
    plane, w = r.standard_normal((1, 6, 7)), r.standard_normal((3, 3, 1, 1))
    x = plane[..., None]
    lesson = DepthwiseConv2D("d", w, None, "linear", padding="valid").forward(x)
    for loop in (correlate_rows, correlate_pixels):
        np.testing.assert_allclose(loop(x, w[..., 0]), lesson, rtol=1e-12, atol=1e-12)
        for bad in (r.standard_normal((7, 3, 1)), r.standard_normal((3, 8, 1)),
                    w[:, :, [0, 0], 0]):
            with pytest.raises(ValueError, match="kernel"):
                loop(x, bad)


def test_rows_are_read_in_chunks_that_cover_each_row_once():
    """A 9-pixel row of 2 channels in chunks of 4 pixels (ROW_CHUNK_VALUES = 8): three
    einsums (4, 4 and 1 pixels), their outputs disjoint and covering the row; the sum is
    the lesson's."""
    r = np.random.default_rng(4)
    x, w = r.standard_normal((1, 3, 11, 2)), r.standard_normal((3, 3, 2, 1))
    lesson = DepthwiseConv2D("d", w, None, "linear", padding="valid").forward(x)
    chunks, einsum = [], np.einsum

    def counted(spec, *operands, out):
        chunks.append(out.shape[2])
        return einsum(spec, *operands, out=out)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(depthwise, "ROW_CHUNK_VALUES", 8)
        patch.setattr(depthwise.np, "einsum", counted)
        got = correlate_rows(x, w[..., 0])
    assert chunks == [8, 8, 2]
    np.testing.assert_allclose(got, lesson, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("loop", [correlate_rows, correlate_pixels])
def test_both_loops_take_mixed_dtypes_and_refuse_an_out_they_cannot_fill(loop):
    """A float32 map and a float64 kernel (a float64 layer's dx of a float32 dz): a float64
    sum, as NumPy's own arithmetic. An ``out`` that is not a C-contiguous array of the
    output's shape is refused (a reshaped copy would take the sums, out left unwritten);
    one that is receives them."""
    r = np.random.default_rng(5)
    x, w = r.standard_normal((1, 5, 6, 3)).astype(np.float32), r.standard_normal((3, 3, 3))
    got = loop(x, w)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, loop(x.astype(np.float64), w), rtol=1e-12)
    out = np.empty((1, 3, 4, 3), order="F")
    with pytest.raises(ValueError, match="C-contiguous"):
        loop(x, w, out)
    out = np.zeros((1, 3, 4, 3))
    assert loop(x, w, out) is out and np.array_equal(out, got)
