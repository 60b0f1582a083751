"""A conv with an image's channels (VGG16's block1_conv1, C = 3) runs forward as im2col's
one GEMM, a band of output rows at a time (``FastConv2D.im2col_in_bands``), its bias and ReLU
taken in each band: the same numbers as the lesson's Conv2D (im2col, one GEMM), and an
image's the same in a batch as alone."""

import numpy as np
import pytest

from helpers import assert_conv_as_the_lesson

from vggnp.fast.blocks import INLINE
import vggnp.fast.layers as fast_layers
from vggnp.fast.layers import UNFOLDED_MAX_CHANNELS, FastConv2D
from vggnp.nn.backward_pass import BackwardPass
from vggnp.nn.layers import Conv2D

PARAMS = BackwardPass(param_grads=True)


def counting(threads, counts, monkeypatch):
    """threads with its run wrapped (until the test ends) to append each run's number of
    tasks to counts."""
    run = threads.run

    def counted(tasks):
        tasks = list(tasks)
        counts.append(len(tasks))
        return run(tasks)
    monkeypatch.setattr(threads, "run", counted)
    return threads


@pytest.mark.parametrize("kernel, padding", [((3, 3), "same"), ((3, 3), "valid"),
                                             ((2, 3), "same"), ((4, 4), "same")])
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-10), (np.float32, 5e-6)])
@pytest.mark.parametrize("cut", [True, False])
def test_a_few_channel_conv_runs_im2col_in_bands_as_the_lesson(kernel, padding, dtype,
                                                               tolerance, cut, two_threads,
                                                               monkeypatch):
    """out (ReLU's), dx, dW and db equal the lesson's in float64 within 1e-10 and in
    float32 within 5e-6 of each array's largest value, for batch 2, any stride-1 padding,
    bands cut for two threads (each image's rows in several bands) or not (INLINE: one
    band an image); the ReLU's output is what the layer keeps for its backward."""
    r = np.random.default_rng(11)
    x = r.standard_normal((2, 19, 13, 3))
    w = r.standard_normal((*kernel, 3, 6)) / np.sqrt(3 * kernel[0] * kernel[1])
    b = r.standard_normal(6) / 4
    counts = []
    threads = counting(two_threads, counts, monkeypatch) if cut else INLINE
    fast = FastConv2D("c", w.astype(dtype), b.astype(dtype), "relu", padding=padding,
                      threads=threads)
    lesson = Conv2D("c", w, b, "relu", padding=padding)
    assert fast.path(x.shape) == "im2col" and fast.path(x.shape, backward=True) == "planes"
    out, expected = fast.forward(x.astype(dtype)), lesson.forward(x)
    assert out.dtype == dtype and out.shape == expected.shape
    assert fast.activation.out is out and (out >= 0).all()
    if cut:
        assert counts[0] == 2 * len(two_threads.row_slices(out.shape[1])) > 2
    dout = r.standard_normal(expected.shape)
    assert_conv_as_the_lesson(fast, lesson, out, expected, dout, PARAMS, dtype, tolerance)


def test_the_banded_pre_activation_is_the_lessons_linear_conv():
    """Without a ReLU (a linear conv; a graph's kept pre-activation) the bands give z =
    im2col(x) @ W + b, negative values kept; a conv with more than UNFOLDED_MAX_CHANNELS
    channels takes the shifted GEMMs' "direct" path."""
    r = np.random.default_rng(12)
    x, w, b = r.standard_normal((1, 7, 9, 2)), r.standard_normal((3, 3, 2, 4)), r.standard_normal(4)
    fast, lesson = FastConv2D("c", w, b, "linear"), Conv2D("c", w, b, "linear")
    assert fast.path(x.shape) == "im2col"
    z = fast.forward(x)
    np.testing.assert_allclose(z, lesson.forward(x), rtol=1e-12, atol=1e-12)
    assert (z < 0).any()
    wide = FastConv2D("c", np.zeros((3, 3, UNFOLDED_MAX_CHANNELS + 1, 4)), b, "relu")
    assert wide.path((1, 7, 9, UNFOLDED_MAX_CHANNELS + 1)) == "direct"


@pytest.mark.parametrize("cut", [True, False])
def test_an_image_gives_the_same_numbers_in_a_batch_as_alone(cut, two_threads, monkeypatch):
    """float32, bit for bit: each band lies in one image and is cut the same way whatever
    the batch (a batch's one im2col product had rounded an image's first layer otherwise:
    docs/speed.md). With BAND_BYTES at three rows' output, an image of 11 rows is four
    bands even on one thread (INLINE), six of two rows cut for two threads."""
    r = np.random.default_rng(13)
    x = r.standard_normal((3, 11, 17, 3)).astype(np.float32)
    w = (r.standard_normal((3, 3, 3, 8)) / 5).astype(np.float32)
    counts = []
    threads = two_threads if cut else INLINE
    monkeypatch.setattr(fast_layers, "BAND_BYTES", 3 * 17 * 8 * 4)
    fast = FastConv2D("c", w, np.zeros(8, np.float32), "relu",
                      threads=counting(threads, counts, monkeypatch))
    batch = fast.forward(x).copy()
    alone = [fast.forward(x[k:k + 1])[0].copy() for k in range(3)]
    np.testing.assert_array_equal(batch, np.stack(alone))
    per_image = 6 if cut else 4
    assert counts == [3 * per_image] + [per_image] * 3
