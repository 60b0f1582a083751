"""The fast paths of the lesson's max-pool backward (``vggnp/fast/pooling.py``) and of its
col2im for a few-channel conv's dx (``vggnp/fast/unfold.col2im_planes``) equal the
lesson's own code: the same numbers, value for value where no sum is reordered."""

import numpy as np
import pytest

from vggnp.fast.layers import FastConv2D
from vggnp.fast.pooling import FastMaxPool2D
from vggnp.nn.layers import Conv2D, MaxPool2D


def pooled_pair(x, *args):
    """(lesson's dx, fast dx, fast layer) of a max-pool of x for the same random dout."""
    plain, fast = MaxPool2D("p", *args), FastMaxPool2D("p", *args)
    out = plain.forward(x)
    np.testing.assert_array_equal(fast.forward(x), out)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)
    return plain.backward(dout), fast.backward(dout), fast


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_tiling_pool_routes_each_window_to_its_first_max(dtype):
    """VGG16's 2x2 pools after a ReLU: many windows all zeros (ties: the first, in
    row-major order, takes the gradient), a NaN window (no max found: no gradient, as the
    lesson's), and a non-contiguous input (a FastConv2D's output is a view)."""
    r = np.random.default_rng(0)
    big = np.maximum(r.standard_normal((2, 8, 12, 9 + 3)), 0).astype(dtype)
    x = big[..., 3:]                                        # not contiguous
    x[0, 2, 4, 1] = np.nan
    x[1, :2, :2, 0] = 5.0                                   # a tie of four maxima
    plain, fast, layer = pooled_pair(x)
    assert layer.tiles(x.shape) and fast.dtype == dtype
    np.testing.assert_array_equal(fast, plain)
    assert fast[1, 0, 0, 0] != 0 and not fast[1, :2, :2, 0].ravel()[1:].any()


@pytest.mark.parametrize("shape, args", [((1, 7, 8, 3), ()),                 # a dropped row
                                         ((1, 9, 9, 2), ((3, 3), (2, 2), "same")),
                                         ((2, 6, 6, 2), ((2, 2), (1, 1)))])  # overlapping
def test_any_other_pool_runs_the_lessons_backward(shape, args):
    x = np.random.default_rng(2).standard_normal(shape)
    plain, fast, layer = pooled_pair(x, *args)
    assert not layer.tiles(x.shape)
    np.testing.assert_array_equal(fast, plain)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_a_few_channel_convs_dx_by_planes_equals_col2im(padding, dtype, tolerance):
    """VGG16's block1_conv1 (3 input channels): dx by planes, the lesson's col2im sum."""
    r = np.random.default_rng(3)
    x = r.standard_normal((2, 9, 11, 3)).astype(dtype)
    w, b = r.standard_normal((3, 3, 3, 5)).astype(dtype), r.standard_normal(5).astype(dtype)
    fast = FastConv2D("c", w, b, "linear", padding=padding)
    plain = Conv2D("c", w, b, "linear", padding=padding)
    assert fast.path(x.shape, backward=True) == "planes"
    dz = r.standard_normal(fast.forward(x).shape).astype(dtype)
    plain.forward(x)
    ours, theirs = fast.input_gradient(dz), plain.input_gradient(dz)
    assert ours.dtype == dtype and ours.flags.c_contiguous
    scale = np.abs(theirs).max()
    np.testing.assert_allclose(ours / scale, theirs / scale, rtol=0, atol=tolerance)
