"""BatchNorms folded into the convs before them (``vggnp/nn/folding.py``): the same
outputs and gradients as every layer run as itself, in float64, and never where a
method needs the conv's own output."""

import threading

import numpy as np
import pytest

from vggnp.fast.folding import BatchNormFolds
from vggnp.methods.explain import explain
from vggnp.nn.convnet_layers import Activation, BatchNorm, GlobalAvgPool2D
from vggnp.nn.graph import IMAGE, Graph
from vggnp.nn.graph_layers import DepthwiseConv2D, SeparableConv2D
from vggnp.nn.layers import Conv2D, Dense

RNG = np.random.default_rng(0)


def norm(name, c):
    return BatchNorm(name, RNG.uniform(0.5, 2, c), RNG.standard_normal(c),
                     RNG.standard_normal(c), RNG.uniform(0.1, 2, c))


def w(*shape):
    return RNG.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))


def folding_graph():
    """conv -> bn -> relu -> separable -> bn -> relu -> depthwise -> bn -> relu, then a
    stride-2 conv whose 4x5x16 map is smaller than its 3x3x6x16 kernel (not folded) -> bn
    -> relu -> gap -> logits; 8x10x3 images, float64."""
    nodes = [(Conv2D("conv", w(3, 3, 3, 4), w(4), "linear"), [IMAGE]),
             (norm("conv_bn", 4), ["conv"]), (Activation("relu1", "relu"), ["conv_bn"]),
             (SeparableConv2D("sep", w(3, 3, 4, 1), w(1, 1, 4, 6), w(6)), ["relu1"]),
             (norm("sep_bn", 6), ["sep"]), (Activation("relu2", "relu"), ["sep_bn"]),
             (DepthwiseConv2D("dw", w(3, 3, 6, 1), None), ["relu2"]),
             (norm("dw_bn", 6), ["dw"]), (Activation("relu3", "relu"), ["dw_bn"]),
             (Conv2D("big", w(3, 3, 6, 16), w(16), "linear", (2, 2)), ["relu3"]),
             (norm("big_bn", 16), ["big"]), (Activation("relu4", "relu"), ["big_bn"]),
             (GlobalAvgPool2D("gap"), ["relu4"]), (Dense("logits", w(16, 5), w(5)), ["gap"])]
    return Graph(nodes, (8, 10), 3, folds=BatchNormFolds.for_graph)


def test_a_folded_pass_equals_every_layer_run_as_itself():
    graph = folding_graph()
    x = RNG.standard_normal((2, 8, 10, 3))
    out = graph.forward(x)
    assert sorted(graph._stand_ins) == ["conv", "conv_bn", "dw", "dw_bn", "sep", "sep_bn"]
    dout = RNG.standard_normal(out.shape)
    dx = graph.backward(dout)
    reference = graph.forward(x, fold=False)
    assert graph._stand_ins == {}
    assert np.allclose(out, reference, rtol=0, atol=1e-12)
    assert np.allclose(dx, graph.backward(dout), rtol=0, atol=1e-12)
    assert np.abs(dx).max() > 1e-3  # a gradient was compared


@pytest.mark.parametrize("layer", ["conv", "sep", "dw"])
def test_a_conv_whose_output_is_asked_for_runs_as_itself(layer):
    graph = folding_graph()
    x = RNG.standard_normal((1, 8, 10, 3))
    _, kept = graph.forward(x, keep=(layer,))
    assert layer not in graph._stand_ins and "big" not in graph._stand_ins
    assert "dw" in graph._stand_ins or layer == "dw"
    _, reference = graph.forward(x, keep=(layer,), fold=False)
    assert np.allclose(kept[layer], reference[layer], rtol=0, atol=1e-12)
    graph.forward(x, until=layer)
    assert layer not in graph._stand_ins
    maps, _ = explain(graph, x, "gradcam", layer=layer, class_index=1, warn_empty=False)
    graph.folds.pairs = {}
    unfolded, _ = explain(graph, x, "gradcam", layer=layer, class_index=1, warn_empty=False)
    assert np.allclose(maps, unfolded, rtol=0, atol=1e-12)


def test_a_backward_that_needs_a_folded_conv_is_refused():
    graph = folding_graph()
    x = RNG.standard_normal((1, 8, 10, 3))
    out = graph.forward(x)
    with pytest.raises(ValueError, match="backward from or to sep: the last forward folded"):
        graph.backward(np.ones((1, 8, 10, 6)), start="sep")
    with pytest.raises(ValueError, match="parameter gradients and LRP need every layer"):
        graph.backward(np.ones_like(out), param_grads=True)
    graph.forward(x, fold=False)
    graph.backward(np.ones_like(out), param_grads=True)  # every layer ran as itself


def test_a_replaced_kernel_is_folded_anew():
    """The sanity checks replace kernels: the folded kernel follows."""
    graph = folding_graph()
    x = RNG.standard_normal((1, 8, 10, 3))
    graph.forward(x)
    sep = graph.layer("sep")
    sep.w, sep.b = w(1, 1, 4, 6), w(6)
    assert np.allclose(graph.forward(x), graph.forward(x, fold=False), rtol=0, atol=1e-12)


def test_a_replaced_batch_norm_statistic_is_folded_anew():
    """A BatchNorm's scale and shift, and the kernel it is folded into, are made again when
    one of its arrays is replaced (they were made once, at load: a new gamma was used by
    neither the layer run as itself nor the folded conv)."""
    graph = folding_graph()
    x = RNG.standard_normal((1, 8, 10, 3))
    before = graph.forward(x)
    for name in ("conv_bn", "sep_bn"):
        norm = graph.layer(name)
        norm.gamma, norm.var = norm.gamma * 3, norm.var * 0.5
    after = graph.forward(x)
    assert np.abs(after - before).max() > 1e-3
    assert np.allclose(after, graph.forward(x, fold=False), rtol=0, atol=1e-12)
    norm = graph.layer("conv_bn")
    z = RNG.standard_normal((2, 4))
    assert np.allclose(norm.forward(z), norm.gamma * (z - norm.mean) / np.sqrt(
        norm.var + norm.eps) + norm.beta, rtol=0, atol=1e-12)


def test_replicas_fold_on_their_own_caches():
    graph = folding_graph()
    xs = [RNG.standard_normal((1, 8, 10, 3)) for _ in range(2)]
    expected = [graph.forward(x, fold=False) for x in xs]
    replicas = [graph.replica() for _ in xs]
    got = [None, None]

    def run(k):
        for _ in range(20):
            replicas[k].forward(xs[k])
            got[k] = replicas[k].backward(np.ones((1, 5)))
    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k, x in enumerate(xs):
        graph.forward(x, fold=False)
        assert np.allclose(got[k], graph.backward(np.ones((1, 5))), rtol=0, atol=1e-12)
        kept = [replica.folds._folded.kept("sep") for replica in replicas]
        assert kept[k] is not kept[1 - k]
    assert expected  # the unfolded outputs exist for both images


def test_a_graph_without_folds_runs_every_layer_as_itself():
    graph = Graph(folding_graph().nodes, (8, 10), 3)
    graph.forward(RNG.standard_normal((1, 8, 10, 3)))
    assert graph._stand_ins == {} and graph.replica().folds.pairs == {}


def test_a_pass_leaves_one_set_of_caches_per_conv():
    """A folded pass drops the caches an unfolded one left on the conv (at 299x299,
    Xception's were 71 MB of peak memory), and an unfolded pass drops the folded copy."""
    graph = folding_graph()
    x = RNG.standard_normal((1, 8, 10, 3))
    graph.forward(x, fold=False)
    sep = graph.layer("sep")
    assert sep.x is not None and sep.depthwise.x is not None
    graph.forward(x)
    assert sep.x is None and sep.depthwise.x is None
    folded = graph.folds._folded.kept("sep")
    assert folded.x is not None and folded.depthwise is not sep.depthwise
    graph.forward(x, fold=False)
    assert graph.folds._folded.kept("sep") is None and sep.x is not None


def test_what_is_made_from_weights_is_made_again_only_when_they_are_replaced():
    """nn.made.MadeFrom, the one cache of LRP's kernels and the folds: kept while the very
    arrays stay (an equal copy is another array), made again once one is replaced, never
    kept when too big, shared by a layer's replicas."""
    from vggnp.nn.layers import Conv2D
    from vggnp.nn.made import MadeFrom
    calls = []

    def make(w, b):
        calls.append(1)
        return w + b
    made, w, b = MadeFrom(), np.ones(3), np.zeros(3)
    first = made.get("k", (w, b), make)
    assert made.get("k", (w, b), make) is first and len(calls) == 1
    assert made.get("k", (w.copy(), b), make) is not first and len(calls) == 2
    made.get("big", (w, b), make, keep=False)
    made.get("big", (w, b), make, keep=False)
    assert len(calls) == 4 and made.kept("big") is None
    conv = Conv2D("c", RNG.standard_normal((3, 3, 2, 4)), np.zeros(4))
    twin = conv.replica(None)
    assert conv.made_from_weights("plus", make) is twin.made_from_weights("plus", make)
    before = len(calls)
    conv.w = conv.w * 2  # replaced, as the sanity checks do
    again = conv.made_from_weights("plus", make)
    assert len(calls) == before + 1 and np.array_equal(again, conv.w + conv.b)
