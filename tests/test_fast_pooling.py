"""The fast path of the lesson's max-pool backward (``vggnp/fast/pooling.py``) equals the
lesson's own: the same numbers (a zero's sign aside: the module's docstring), and it is
the path that runs where the windows tile the map."""

import numpy as np
import pytest

from vggnp.fast.pooling import FastMaxPool2D
from vggnp.nn.layers import MaxPool2D


def pooled_pair(x, monkeypatch, *args):
    """(lesson's dx, fast dx, fast layer) of a max-pool of x for the same random dout; the
    lesson's backward refuses to run for the fast layer where its windows tile x."""
    plain, fast = MaxPool2D("p", *args), FastMaxPool2D("p", *args)
    out = plain.forward(x)
    np.testing.assert_array_equal(fast.forward(x), out)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)
    theirs = plain.backward(dout)
    if fast.tiles(x.shape):
        def refuse(self, dout, options=None):
            raise AssertionError("the lesson's backward ran for a tiling pool")
        monkeypatch.setattr(MaxPool2D, "backward", refuse)
    return theirs, fast.backward(dout), fast


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_tiling_pool_routes_each_window_to_its_first_max(dtype, monkeypatch):
    """VGG16's 2x2 pools after a ReLU: many windows all zeros (ties: the first, in
    row-major order, takes the gradient), a NaN window (no max found: no gradient, as the
    lesson's), and a non-contiguous input (a FastConv2D's output is a view)."""
    r = np.random.default_rng(0)
    big = np.maximum(r.standard_normal((2, 8, 12, 9 + 3)), 0).astype(dtype)
    x = big[..., 3:]                                        # not contiguous
    x[0, 2, 4, 1] = np.nan
    x[1, :2, :2, 0] = 5.0                                   # a tie of four maxima
    plain, fast, layer = pooled_pair(x, monkeypatch)
    assert layer.tiles(x.shape) and fast.dtype == dtype
    np.testing.assert_array_equal(fast, plain)
    assert fast[1, 0, 0, 0] != 0 and not fast[1, :2, :2, 0].ravel()[1:].any()


@pytest.mark.parametrize("shape, args", [((3, 8, 12, 2), ((2, 3), (2, 3), "same")),
                                         ((1, 6, 9, 2), ((3, 3), None, "valid")),
                                         ((2, 5, 5, 1), ((1, 1), None, "valid"))])
def test_other_tiling_pools_take_the_fast_path(shape, args, monkeypatch):
    """Non-square windows, "same" padding that pads nothing, 1x1; batch > 1."""
    x = np.random.default_rng(4).standard_normal(shape)
    x[0, :2, :3, 0] = 1.5                                   # a tie in the first window
    plain, fast, layer = pooled_pair(x, monkeypatch, *args)
    assert layer.tiles(x.shape)
    np.testing.assert_array_equal(fast, plain)


@pytest.mark.parametrize("shape, args", [((1, 7, 8, 3), ()),                 # a dropped row
                                         ((1, 9, 9, 2), ((3, 3), (2, 2), "same")),
                                         ((2, 6, 6, 2), ((2, 2), (1, 1)))])  # overlapping
def test_any_other_pool_runs_the_lessons_backward(shape, args, monkeypatch):
    x = np.random.default_rng(2).standard_normal(shape)
    plain, fast, layer = pooled_pair(x, monkeypatch, *args)
    assert not layer.tiles(x.shape)
    np.testing.assert_array_equal(fast, plain)


def test_a_padded_pool_in_a_shared_workspace_equals_the_lessons(monkeypatch):
    """Xception's 3x3 stride-2 "same" pool pads with -inf in the workspace a conv has just
    padded with zeros: on an all-negative map (a zero border would win every edge window)
    the output and dx equal the lesson's, in turn with the conv, float32 and float64; the
    pool's padded copies were the workspace's (counted)."""
    import vggnp.fast.pooling as pooling
    from vggnp.fast.layers import FastConv2D
    copies, padded_images = [], pooling.padded_images
    monkeypatch.setattr(pooling, "padded_images", lambda buffers, *a, **k: copies.append(
        buffers) or padded_images(buffers, *a, **k))
    workspace, r = {}, np.random.default_rng(5)
    for dtype in (np.float32, np.float64, np.float32):
        x = -np.abs(r.standard_normal((2, 9, 7, 3))).astype(dtype) - 1
        conv = FastConv2D("c", r.standard_normal((3, 3, 3, 3)).astype(dtype),
                          activation="linear", buffers=workspace)
        conv.forward(-x)                                    # zeros its border
        plain = MaxPool2D("p", (3, 3), (2, 2), "same")
        fast = FastMaxPool2D("p", (3, 3), (2, 2), "same", buffers=workspace)
        out = fast.forward(x)
        np.testing.assert_array_equal(out, plain.forward(x))
        assert (out < 0).all()
        dout = r.standard_normal(out.shape).astype(dtype)
        np.testing.assert_array_equal(fast.backward(dout), plain.backward(dout))
    assert set(workspace) == {"padded"}
    assert len(copies) == 6 and all(buffers is workspace for buffers in copies)


@pytest.mark.parametrize("pool", [(2, 2), (2, 3)])
def test_the_bands_of_rows_on_two_threads_route_as_the_lesson(pool, monkeypatch):
    """Maps taller than one band (ROWS_PER_TASK rows of windows), the last band short,
    the bands on two block threads (VGG16's pools), ties and a NaN in bands past the
    first: the same out and dx as the lesson's, every band run both ways."""
    from vggnp.fast import pooling
    from vggnp.fast.blocks import BlockThreads
    threads = BlockThreads()
    threads.use(2)
    bands, maxima = [], []
    route, take_max = FastMaxPool2D._route, FastMaxPool2D._max
    monkeypatch.setattr(FastMaxPool2D, "_route",
                        lambda self, *a: bands.append(a[0].shape[1]) or route(self, *a))
    monkeypatch.setattr(FastMaxPool2D, "_max",
                        lambda self, x, out: maxima.append(out.shape[1]) or take_max(self, x, out))
    rows = 2 * pooling.ROWS_PER_TASK + 3                    # two bands and three rows
    r = np.random.default_rng(5)
    x = np.maximum(r.standard_normal((2, pool[0] * rows, 3 * pool[1], 4)), 0)
    x[1, -2:, :pool[1], 2] = 7.0                            # a tie in the last band
    x[0, pool[0] * 9, 0, 1] = np.nan
    plain, fast = MaxPool2D("p", pool), FastMaxPool2D("p", pool, threads=threads)
    out = plain.forward(x)
    np.testing.assert_array_equal(fast.forward(x), out)
    dout = r.standard_normal(out.shape)
    np.testing.assert_array_equal(fast.backward(dout), plain.backward(dout))
    assert sorted(bands) == sorted(maxima) == [3, pooling.ROWS_PER_TASK, pooling.ROWS_PER_TASK]
