"""LRP on the models it is refused for (said once, before any image, naming the layer),
and on graphs: the relevance sums of a traced pass where tensors fan out and merge."""

import numpy as np
import pytest

from vggnp.fast.depthwise import FastDepthwiseConv2D
from vggnp.methods import lrp
from vggnp.nn.activation_layers import ELU, PReLU
from vggnp.nn.convnet_layers import Activation, BatchNorm, GlobalAvgPool2D
from vggnp.nn.graph import IMAGE, Graph
from vggnp.nn.graph_layers import DepthwiseConv2D, ReLU, SeparableConv2D
from vggnp.nn.layers import Conv2D, Dense, Flatten
from vggnp.nn.merge_layers import Add, Subtract
from vggnp.nn.network import Network
from vggnp.nn import dense_by_rows
from vggnp.nn.dense_by_rows import KernelByRows
from vggnp.nn.relevance import Affine, Flat, WSquare
from vggnp.nn.sparse_kernels import DilatedDepthwiseConv2D, SparseKernelConv2D


def chain_with(middle):
    """conv (3 -> 3, linear) -> middle -> flatten -> dense softmax, 2x2 images."""
    return Network([Conv2D("c", np.ones((1, 1, 3, 3)), activation="linear"), middle,
                    Flatten("f"), Dense("out", np.ones((12, 2)), activation="softmax")],
                   (2, 2))


@pytest.mark.parametrize("middle, said", [
    (ReLU("relu6", max_value=6.0), "needs ReLU activations, but layer relu6 ends in ReLU6 "
                                   "(max_value 6), not a plain ReLU"),
    (ReLU("leaky", negative_slope=0.1, threshold=0.5), "needs ReLU activations, but layer "
     "leaky ends in a ReLU (negative_slope 0.1, threshold 0.5), not a plain ReLU"),
    (ELU("elu"), "needs ReLU activations, but layer elu is a ELU"),
    (PReLU("prelu", np.full((1, 1, 3), 0.1)), "needs ReLU activations, but layer prelu "
                                              "is a PReLU"),
    (Activation("swish", "swish"), "needs ReLU activations, but layer swish ends in swish"),
    (DilatedDepthwiseConv2D("dw", np.ones((3, 3, 3, 1)), dilation=(2, 2)),
     "LRP has no rule for layer dw (DilatedDepthwiseConv2D)"),
    (SeparableConv2D("sep", np.ones((1, 1, 3, 1)), np.ones((1, 1, 3, 3))),
     "LRP has no rule for layer sep (SeparableConv2D)"),
    (SparseKernelConv2D("dil", np.ones((3, 3, 3, 3)), dilation=(2, 2)),
     "LRP has no rule for layer dil (SparseKernelConv2D)")])
def test_a_model_lrp_is_not_built_for_is_refused_before_any_image(middle, said):
    assert said in lrp.model_refusal(chain_with(middle), "lrp")
    if "no rule" not in said:  # the deconvnet needs the same ReLUs
        assert lrp.model_refusal(chain_with(middle), "deconvnet").startswith("deconvnet")


def test_a_merge_without_a_rule_is_refused_by_name():
    graph = Graph([(Conv2D("a", np.ones((1, 1, 3, 3))), [IMAGE]),
                   (Subtract("minus"), ["a", IMAGE]), (Flatten("f"), ["minus"]),
                   (Dense("out", np.ones((12, 2)), activation="softmax"), ["f"])], (2, 2))
    assert lrp.model_refusal(graph, "lrp", "z") == ("LRP has no rule for layer minus "
                                                    "(Subtract); use a gradient method "
                                                    "for this model")
    assert lrp.model_refusal(graph, "deconvnet") is None  # linear: the gradient passes


def residual(rng):
    conv = [Conv2D(name, rng.normal(0, .5, (3, 3, c, 4)), rng.normal(0, .1, 4),
                   activation=act) for name, c, act in (("c1", 3, "relu"), ("c2", 4, "linear"))]
    return Graph([(conv[0], [IMAGE]), (conv[1], ["c1"]), (Add("add"), ["c2", "c1"]),
                  (Activation("act", "relu"), ["add"]), (GlobalAvgPool2D("gap"), ["act"]),
                  (Dense("out", rng.normal(size=(4, 3)), np.zeros(3), activation="softmax"),
                   ["gap"])], (5, 5))


def test_a_graphs_relevance_sums_are_what_arrives_at_each_tensor():
    """c1 feeds c2 and the Add: the sum at its output is what both send back; the
    input's is the map's own sum; z+ (no bias) keeps the logit at every tensor that all
    paths pass (not at c2, one branch of the residual block)."""
    rng = np.random.default_rng(12)
    model, x = residual(rng), rng.normal(size=(2, 5, 5, 3))
    steps = {"forward": [], "backward": []}
    _, classes, r = lrp.relevance(model, x, None, "z_plus", (-3, 3), trace=steps)
    sums = lrp.relevance_sums(steps, r)
    assert sums["input"] == pytest.approx(r.sum(), rel=1e-12)
    logits = model.layers[-1].z[np.arange(2), classes].sum()
    for name in ("out", "gap", "act", "add", "c1", "input"):
        assert sums[name] == pytest.approx(logits, rel=1e-9), name
    assert 0 < sums["c2"] < 0.99 * logits
    _, _, r = lrp.relevance(model, x, None, "z", (-3, 3), trace=steps)
    rows = {row["layer"].name: row for row in steps["backward"]}
    assert rows["add"]["arriving"] == pytest.approx(rows["add"]["sum"], rel=1e-9)


def test_the_command_line_refuses_such_a_model_in_one_line(tf, tmp_path, capsys):
    """Exit 2 and one line before any image is read (not an error per image), for
    vggnp.cam and vggnp.sanity alike."""
    import keras
    from helpers import SHAPES
    from vggnp import sanity
    from vggnp.cam import run as cam
    model = keras.Sequential([keras.Input((8, 8, 3)),
                              keras.layers.Conv2D(2, 3, activation="tanh", name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(2, "softmax")])
    path = str(tmp_path / "tanh.keras")
    model.save(path)
    for method in ("lrp", "deep-taylor", "deconvnet"):
        assert cam.main([SHAPES[0], "--model", path, "--method", method, "--preprocess",
                         "rescale", "--out", str(tmp_path / method)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].endswith("needs ReLU activations, but layer conv "
                                                 "ends in tanh"), err
        assert not (tmp_path / method / "vggnp-results.jsonl").exists()
    assert sanity.main([SHAPES[0], "--model", path, "--methods", "saliency,lrp",
                        "--preprocess", "rescale", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().endswith("LRP needs ReLU activations, but layer "
                                                    "conv ends in tanh")


def test_the_first_layer_is_found_through_reshapes_and_padding():
    from vggnp.methods.lrp_plan import first_layers
    from vggnp.nn.convnet_layers import Rescaling
    from vggnp.nn.graph_layers import ZeroPadding2D
    dense = Network([Flatten("f"), Dense("d", np.ones((12, 4))),
                     Dense("out", np.ones((4, 2)), activation="softmax")], (2, 2))
    assert first_layers(dense) == {"d"}
    padded = Network([Rescaling("r", 1 / 255), ZeroPadding2D("pad", ((1, 1), (1, 1))),
                      Conv2D("c", np.ones((3, 3, 3, 2))), Flatten("f"),
                      Dense("out", np.ones((8, 2)), activation="softmax")], (2, 2))
    assert first_layers(padded) == {"c"}


@pytest.mark.parametrize("rule", ["z", "epsilon", "alpha_2_beta_1", "epsilon_gamma_box",
                                  "flat", "w_square", "z_plus"])
def test_a_big_dense_kernel_is_made_by_rows_where_it_is_used(monkeypatch, rule):
    """A dense kernel above MAX_KEPT_BYTES (VGG16's fc1) has its rule's kernels made a
    block of rows at a time (``dense_by_rows``), with the BatchNorm folded into it made
    likewise: the same relevance, and no kernel of its size made whole."""
    rng = np.random.default_rng(11)
    norm = BatchNorm("bn", rng.normal(size=10), rng.normal(size=10), rng.normal(size=10),
                     rng.uniform(0.5, 2, 10))
    model = Network([Flatten("f"), Dense("d", rng.normal(size=(48, 10)), rng.normal(size=10),
                                         activation="linear"), norm, Activation("r", "relu"),
                     Dense("top", rng.normal(size=(10, 3)), rng.normal(size=3),
                           activation="softmax")], (4, 4))
    x = rng.normal(size=(2, 4, 4, 3))
    whole = lrp.relevance(model, x, None, rule, (-3, 3))[2]
    made, rows = [], KernelByRows.rows
    monkeypatch.setattr(KernelByRows, "rows", lambda self, r: made.append(
        (self.shape, r.stop - r.start)) or rows(self, r))
    monkeypatch.setattr(Affine, "MAX_KEPT_BYTES", 8 * 10 * 3)  # top's 10x3 kept whole
    monkeypatch.setattr(dense_by_rows, "ROW_BLOCK_BYTES", 8 * 10 * 5)  # 5 of d's 48 rows
    by_rows = lrp.relevance(model, x, None, rule, (-3, 3))[2]
    np.testing.assert_allclose(by_rows, whole, rtol=1e-9, atol=1e-12)
    assert made and all(shape == (48, 10) and n <= 5 for shape, n in made), made
    # A dense layer after a pooling that keeps its axes: (N, 1, 1, C), as Dense takes it.
    kept_axes = Network([Conv2D("c", rng.normal(size=(3, 3, 3, 8)), rng.normal(size=8)),
                         GlobalAvgPool2D("g", True), Dense("d", rng.normal(size=(8, 6)),
                                                           rng.normal(size=6)),
                         Flatten("f"), Dense("top", rng.normal(size=(6, 3)),
                                             rng.normal(size=3), activation="softmax")], (4, 4))
    by_rows = lrp.relevance(kept_axes, x, None, rule, (-3, 3))[2]
    monkeypatch.setattr(Affine, "MAX_KEPT_BYTES", 2 ** 26)
    whole = lrp.relevance(kept_axes, x, None, rule, (-3, 3))[2]
    np.testing.assert_allclose(by_rows, whole, rtol=1e-9, atol=1e-12)


def across_channels(w):
    """A depthwise kernel (KH, KW, C, M) as the Conv2D kernel (KH, KW, C, C*M) it equals:
    zero from channel c to every output but c*M .. c*M + M-1."""
    kh, kw, c, m = w.shape
    full = np.zeros((kh, kw, c, c * m))
    for channel in range(c):
        full[:, :, channel, channel * m:(channel + 1) * m] = w[:, :, channel]
    return full


@pytest.mark.parametrize("rule", ["z", "epsilon", "z_plus", "alpha_2_beta_1",
                                  "epsilon_gamma_box", "w_square", "sequential_preset_b"])
@pytest.mark.parametrize("cls, stride, m", [(DepthwiseConv2D, 2, 2), (FastDepthwiseConv2D, 1, 1)])
def test_a_depthwise_conv_passes_relevance_per_channel(rule, cls, stride, m):
    """conv -> DepthwiseConv2D (stride 2, depth multiplier 2; and stride 1, one kernel per
    channel, on its fast path) -> BatchNorm -> ReLU explains as the Conv2D whose kernel is
    zero across channels (every rule's rho(0) is 0), with the BatchNorm folded into it;
    the flat rule's ones stay on the channel's own taps."""
    rng = np.random.default_rng(12)
    w, b = rng.normal(size=(3, 3, 3, m)), rng.normal(size=3 * m)
    norm = BatchNorm("bn", rng.normal(size=3 * m), rng.normal(size=3 * m),
                     rng.normal(size=3 * m), rng.uniform(0.5, 2, 3 * m))
    side = 4 // stride
    def model(middle):
        return Network([Conv2D("c", rng.normal(size=(3, 3, 3, 3)), rng.normal(size=3)),
                        middle, norm, Activation("r", "relu"), Flatten("f"),
                        Dense("out", np.ones((side * side * 3 * m, 3)), np.zeros(3),
                              activation="softmax")], (4, 4))
    depthwise = model(cls("dw", w, b, strides=(stride, stride)))
    conv = model(Conv2D("dw", across_channels(w), b, activation="linear",
                        strides=(stride, stride)))
    conv.layers[0].w, conv.layers[0].b = depthwise.layers[0].w, depthwise.layers[0].b
    x = rng.normal(size=(2, 4, 4, 3))
    got = lrp.relevance(depthwise, x, None, rule, (-3, 3))[2]
    np.testing.assert_allclose(got, lrp.relevance(conv, x, None, rule, (-3, 3))[2],
                               rtol=1e-9, atol=1e-12)
    assert np.abs(got).max() > 1e-3
    r = rng.normal(size=(2, side, side, 3 * m))
    ones = Conv2D("ones", across_channels(np.ones_like(w)), strides=(stride, stride))
    ones.forward(x), depthwise.layers[1].forward(x)
    np.testing.assert_allclose(Flat().propagate(depthwise.layers[1], r),
                               WSquare().propagate(ones, r), rtol=1e-12)
