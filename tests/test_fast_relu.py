"""FastConv2D's ReLU taken where the conv's sums are (``vggnp/fast/layers.py``): forward,
max(z, 0) in the "direct" sum's blocks of rows (``direct_conv.correlate``'s relu); backward,
dz in bands of rows, on the "direct" path written into the padded input of dx's sum (its
copy then skipped: ``direct_conv.padded_copy``). Each equals the textbook Conv2D's."""

import numpy as np
import pytest

from helpers import spy
from vggnp.fast import direct_conv
from vggnp.fast.blocks import INLINE, BlockThreads
from vggnp.fast.direct_conv import correlate, padded_copy, padded_input
from vggnp.fast.layers import FastConv2D
from vggnp.nn.activation_functions import relu
from vggnp.nn.backward_pass import BackwardPass
from vggnp.nn.layers import Conv2D


def two_threads():
    threads = BlockThreads()
    threads.use(2)
    return threads


@pytest.mark.parametrize("threads", [INLINE, two_threads()], ids=["one", "two"])
def test_correlate_takes_the_relu_in_its_blocks(threads):
    r = np.random.default_rng(0)
    x, w, b = r.standard_normal((2, 40, 30, 5)), r.standard_normal((3, 3, 5, 6)), \
        r.standard_normal(6)
    pads = ((1, 1), (1, 1))
    plain = correlate(x, w, {}, pads, bias=b)
    fused = correlate(x, w, {}, pads, bias=b, block_bytes=2048, threads=threads, relu=True)
    assert (plain < 0).any() and not (fused < 0).any()
    np.testing.assert_array_equal(fused, relu(plain))


@pytest.mark.parametrize("channels, path", [(16, "direct"), (3, "planes")])
@pytest.mark.parametrize("threads", [INLINE, two_threads()], ids=["one", "two"])
@pytest.mark.parametrize("options", [{}, {"guided": True}, {"from_logits": True},
                                     {"deconvnet": True}, {"param_grads": True}])
def test_a_fast_relu_conv_is_the_textbooks(channels, path, threads, options, monkeypatch):
    """Forward (the ReLU in the sum's blocks: no second pass over z), backward (plain,
    guided, from the logits, deconvnet, with dW) in float64: out, dz and dx within 1e-12
    of the lesson's; on the "direct" path dz lies in the padded input of dx's sum, which
    copies nothing then; the ReLU's bands on two threads where there are two."""
    r = np.random.default_rng(1)
    x, w, b = r.standard_normal((2, 12, 7, channels)), \
        r.standard_normal((3, 3, channels, 4)), r.standard_normal(4)
    fast, plain = FastConv2D("c", w, b, buffers={}, threads=threads), Conv2D("c", w, b)
    assert fast.path(x.shape, backward=True) == path
    twice = spy(monkeypatch, fast.activation, "forward")  # the lesson's second pass
    out = fast.forward(x)
    np.testing.assert_allclose(out, plain.forward(x), rtol=0, atol=1e-12)
    assert fast.activation.out is out and twice == []
    fast.activation.out = plain.activation.out  # one mask, to the bit (z may round apart)
    pass_ = BackwardPass(**options)
    skipped = spy(monkeypatch, direct_conv, "same_view")
    runs, run = [], threads.run
    monkeypatch.setattr(threads, "run", lambda tasks: runs.append(list(tasks)) or run(runs[-1]))
    dout = r.standard_normal((2, 12, 9, 4))[:, :, 1:8]      # not contiguous
    np.testing.assert_allclose(fast.backward(dout, pass_), plain.backward(dout, pass_),
                               rtol=0, atol=1e-12)
    masked = not (pass_.from_logits or pass_.deconvnet)
    assert skipped == ([True] if path == "direct" and masked else
                       [False] if path == "direct" else [])
    if masked:  # the ReLU's run comes first: 12 rows, 2 a band on two threads
        assert len(runs[0]) == (1 if threads.count == 1 else 6)
    if pass_.param_grads:
        np.testing.assert_allclose(fast.dw, plain.dw, rtol=0, atol=1e-12)


def test_a_padded_copy_on_two_threads_is_the_copy():
    """Bands of rows on two threads; x already where it goes: the borders alone."""
    r = np.random.default_rng(2)
    x = r.standard_normal((3, 11, 6, 4))
    pads = ((1, 2), (2, 1))
    one = padded_copy({}, "p", x, pads, spare_rows=1).copy()
    assert np.array_equal(one[:3 * 14].reshape(3, 14, 9, 4)[:, 1:12, 2:8], x)
    np.testing.assert_array_equal(padded_copy({}, "p", x, pads, 1, threads=two_threads()), one)
    buffers = {}
    flat, inside = padded_input(buffers, "p", x.shape, x.dtype, pads, spare_rows=1)
    flat[...] = np.nan                                      # a border left dirty
    inside[...] = x
    np.testing.assert_array_equal(padded_copy(buffers, "p", inside, pads, 1), one)


def chain(fast, threads, seed=3):
    """Convs ("same", "valid", 1x1) with ReLUs and two pools (tiling; 3x3 stride 2 "same",
    padded in the workspace) on one shared workspace, as a graph's or VGG16's layers share
    theirs; or the textbook layers."""
    from vggnp.fast.pooling import FastMaxPool2D
    from vggnp.nn.layers import MaxPool2D
    from vggnp.nn.network import Network
    r, shared, layers = np.random.default_rng(seed), {}, []
    for name, k, c, f, padding in [("c1", 3, 3, 16, "same"), ("c2", 3, 16, 16, "same"),
                                   ("p1", 2, 0, 0, "valid"), ("c3", 1, 16, 24, "valid"),
                                   ("c4", 3, 24, 24, "valid"), ("p2", 3, 0, 0, "same"),
                                   ("c5", 3, 24, 8, "same")]:
        if name.startswith("p"):
            args = (name, (k, k), (2, 2), padding)
            layers.append(FastMaxPool2D(*args, buffers=shared, threads=threads) if fast
                          else MaxPool2D(*args))
            continue
        w, b = 0.3 * r.standard_normal((k, k, c, f)), 0.1 * r.standard_normal(f)
        layers.append(FastConv2D(name, w, b, padding=padding, buffers=shared, threads=threads)
                      if fast else Conv2D(name, w, b, padding=padding))
    return Network(layers, (22, 18))


@pytest.mark.parametrize("options", [{}, {"guided": True}, {"deconvnet": True},
                                     {"param_grads": True}])
def test_a_chain_sharing_one_workspace_is_the_textbooks(options):
    """Every layer's dz, padded copies and pool pads in the one workspace, two threads,
    passes that stop at several layers, a second backward from the same forward and a
    replica (its own workspace): the textbook chain's gradients within 1e-10."""
    fast, plain = chain(True, two_threads()), chain(False, INLINE)
    x = np.random.default_rng(4).standard_normal((2, 22, 18, 3))
    for net in (fast, fast.replica()):
        out = net.forward(x)
        np.testing.assert_allclose(out, plain.forward(x), rtol=0, atol=1e-10)
        dout = np.random.default_rng(5).standard_normal(out.shape)
        for stop in (None, "c2", "p1", "c4", None):
            np.testing.assert_allclose(net.backward(dout, stop=stop, **options),
                                       plain.backward(dout, stop=stop, **options),
                                       rtol=0, atol=1e-10)


@pytest.mark.parametrize("guided", [False, True])
@pytest.mark.parametrize("where", ["into", "into dout"])
def test_relu_gradient_is_dout_times_the_mask_bit_for_bit(guided, where):
    """``relu_gradient_into`` (the mask written into dx as 0.0/1.0, then multiplied
    there) gives dout * (out > 0) as the lesson's product with the boolean mask gives it
    (``relu_gradient``), bit for bit: signed zeros, NaN and inf in dout or out included;
    into another array, or into dout itself (the mask may not overwrite the gradient
    first)."""
    from vggnp.fast.layers import relu_gradient_into
    from vggnp.nn.activation_functions import relu_gradient
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-30, -2.5, 3.0], np.float32)
    r = np.random.default_rng(5)
    dout = r.choice(special, (4, 6, 8)).astype(np.float32)
    out = r.choice(special, (4, 6, 8)).astype(np.float32)
    mine = dout.copy()
    into = {"into": np.empty_like(dout), "into dout": mine}[where]
    with np.errstate(invalid="ignore"):  # inf * 0 is NaN in both
        expected = relu_gradient(dout, out, guided)
        got = relu_gradient_into(into, mine, out, guided)
    assert got is into
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    assert (np.signbit(got) == np.signbit(expected)).all()
