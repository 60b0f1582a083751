"""LRP's rules against the paper's equations (explicit sums, float64), its classic
identities and conservation, the fast conv path against the textbook one, BatchNorm
folding. iNNvestigate's maps: ``test_lrp_reference.py``; refusals and graphs:
``test_lrp_models.py``; pictures, options and the docs' tables: ``test_lrp_outputs.py``."""

import numpy as np
import pytest

from vggnp.fast.layers import FastConv2D
from vggnp.methods import lrp, lrp_plan
from vggnp.methods.explain import explain
from vggnp.nn.convnet_layers import Activation, AvgPool2D, GlobalAvgPool2D, Rescaling
from vggnp.nn.graph import IMAGE, Graph
from vggnp.nn.layers import Conv2D, Dense, Flatten, MaxPool2D
from vggnp.nn.network import Network
from vggnp.nn.relevance import AlphaBeta, Epsilon, Flat, Gamma, WSquare, ZBox

RULES = {"epsilon": Epsilon(0.5), "z": Epsilon(0.0), "gamma": Gamma(0.25),
         "alpha_1_beta_0": AlphaBeta(1, 0), "alpha_2_beta_1": AlphaBeta(2, 1),
         "alpha_2_beta_1_IB": AlphaBeta(2, 1, bias=False), "w_square": WSquare(),
         "flat": Flat(), "box": ZBox(-2.0, 3.0)}


def paper(rule, x, w, b, r):
    """R_j of one dense layer by the equations of Montavon et al. (2019) and Montavon et
    al. (2017), written as explicit sums over j and k. x: (D,), w: (D, M), b, r: (M,)."""
    d, m = w.shape
    out = np.zeros(d)
    for k in range(m):
        if rule in ("epsilon", "z"):
            eps = 0.5 if rule == "epsilon" else 0.0
            z = sum(x[j] * w[j, k] for j in range(d)) + b[k]
            z += eps if z >= 0 else -eps
            out += np.array([x[j] * w[j, k] / z * r[k] for j in range(d)])
        elif rule == "gamma":
            rho = [w[j, k] + 0.25 * max(w[j, k], 0) for j in range(d)]
            z = sum(x[j] * rho[j] for j in range(d)) + b[k] + 0.25 * max(b[k], 0)
            out += np.array([x[j] * rho[j] / z * r[k] for j in range(d)])
        elif rule.startswith("alpha"):
            alpha, beta = (1, 0) if rule == "alpha_1_beta_0" else (2, 1)
            bias = not rule.endswith("_IB")
            pos = [max(x[j] * w[j, k], 0) for j in range(d)]
            neg = [min(x[j] * w[j, k], 0) for j in range(d)]
            zp = sum(pos) + (max(b[k], 0) if bias else 0)
            zn = sum(neg) + (min(b[k], 0) if bias else 0)
            out += np.array([(alpha * pos[j] / zp - (beta * neg[j] / zn if beta else 0))
                             * r[k] for j in range(d)])
        elif rule in ("w_square", "flat"):
            rho = [w[j, k] ** 2 if rule == "w_square" else 1.0 for j in range(d)]
            out += np.array([rho[j] / sum(rho) * r[k] for j in range(d)])
        elif rule == "box":
            terms = [x[j] * w[j, k] + 2.0 * max(w[j, k], 0) - 3.0 * min(w[j, k], 0)
                     for j in range(d)]
            out += np.array([terms[j] / sum(terms) * r[k] for j in range(d)])
    return out


@pytest.mark.parametrize("name", list(RULES))
def test_each_rule_is_the_papers_equation(name):
    rng = np.random.default_rng(1)
    x = rng.normal(size=10) if name in ("alpha_2_beta_1", "alpha_2_beta_1_IB", "box") \
        else np.abs(rng.normal(size=10))  # signed inputs where the rule allows them
    w, b, r = rng.normal(size=(10, 5)), rng.normal(size=5), rng.normal(size=5)
    layer = Dense("d", w, b)
    layer.forward(x[None])
    got = RULES[name].propagate(layer, r[None])[0]
    np.testing.assert_allclose(got, paper(name, x, w, b, r), rtol=1e-10, atol=1e-12)


def chain(rng, bias=True, dtype=np.float64):
    def b(n):
        return rng.normal(0, 0.1, n).astype(dtype) if bias else None
    return Network([Conv2D("c1", rng.normal(0, .3, (3, 3, 3, 4)).astype(dtype), b(4)),
                    MaxPool2D("p1"),
                    Conv2D("c2", rng.normal(0, .3, (3, 3, 4, 5)).astype(dtype), b(5)),
                    AvgPool2D("p2"), Flatten("f"),
                    Dense("d1", rng.normal(0, .3, (5, 6)).astype(dtype), b(6)),
                    Dense("out", rng.normal(0, .3, (6, 3)).astype(dtype), b(3),
                          activation="softmax")], (4, 4))


def test_lrp_0_without_biases_is_gradient_times_input():
    rng = np.random.default_rng(0)
    model, x = chain(rng, bias=False), rng.normal(size=(3, 4, 4, 3))
    _, _, r = lrp.relevance(model, x, None, "z", (-3, 3))
    _, _, gx = lrp.gradient_x_input(model, x, None)
    assert np.abs(r).max() > 0.01
    np.testing.assert_allclose(r, gx, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rule", ["z", "z_plus"])
def test_relevance_is_conserved_at_every_layer(rule):
    rng = np.random.default_rng(2)
    model, x = chain(rng, bias=False), np.abs(rng.normal(size=(2, 4, 4, 3)))
    steps = {"forward": [], "backward": []}
    _, classes, r = lrp.relevance(model, x, None, rule, (0, 5), trace=steps)
    sums = lrp.relevance_sums(steps, r)
    logits = model.layers[-1].z[np.arange(2), classes].sum()
    assert len(sums) == len(model.layers) + 1
    for name, total in sums.items():
        assert abs(total - logits) <= 1e-10 * abs(logits), name


def test_biases_absorb_what_lrp_0_does_not_pass_down():
    """With biases, each dense layer's relevance in - out = sum_k R_k b_k / z_k."""
    rng = np.random.default_rng(3)
    model, x = chain(rng), rng.normal(size=(1, 4, 4, 3))
    steps = {"forward": [], "backward": []}
    _, _, r = lrp.relevance(model, x, None, "z", (-3, 3), trace=steps)
    sums = lrp.relevance_sums(steps, r)
    top = model.layers[-1]
    r_out = steps["start_sum"]
    c = int(np.argmax(top.z))
    assert sums["d1"] == pytest.approx(r_out - r_out * top.b[c] / top.z[0, c], rel=1e-10)


@pytest.mark.parametrize("name", ["z", "epsilon", "gamma", "alpha_2_beta_1", "flat",
                                  "w_square", "box"])
def test_the_fast_conv_path_passes_the_same_relevance(name):
    rng = np.random.default_rng(4)
    w, b = rng.normal(0, .1, (3, 3, 16, 8)), rng.normal(0, .1, 8)
    x = rng.normal(size=(2, 6, 5, 16))
    slow, fast = Conv2D("c", w, b), FastConv2D("c", w, b)
    assert fast.path(x.shape) == "direct" and fast.path(x.shape, backward=True) == "direct"
    r = rng.normal(size=(2, 6, 5, 8))
    slow.forward(x), fast.forward(x)
    np.testing.assert_allclose(RULES[name].propagate(fast, r),
                               RULES[name].propagate(slow, r), rtol=1e-9, atol=1e-12)


def test_averaging_layers_share_relevance_in_proportion():
    rng = np.random.default_rng(5)
    x = np.abs(rng.normal(size=(2, 4, 4, 3)))
    for layer in (AvgPool2D("a"), GlobalAvgPool2D("g")):
        out = layer.forward(x)
        r = rng.normal(size=out.shape)
        got = layer.relevance(r, None)
        assert got.sum() == pytest.approx(r.sum(), rel=1e-12)
    g = GlobalAvgPool2D("g")
    g.forward(x)
    np.testing.assert_allclose(g.relevance(np.ones((2, 3)), None),
                               x / x.sum(axis=(1, 2), keepdims=True))
    rescale = Rescaling("s", 1 / 255)
    assert rescale.relevance(x, None) is x  # one-to-one: the relevance passes whole


def test_deconvnet_relus_the_signal_not_the_forward():
    """Two dense layers: d = W1 relu(W2^T seed) (ReLU on the signal), where the gradient
    is W1 (mask * W2^T seed)."""
    rng = np.random.default_rng(6)
    w1, w2 = rng.normal(size=(4, 6)), rng.normal(size=(6, 3))
    model = Network([Flatten("f"), Dense("h", w1, np.zeros(6)),
                     Dense("out", w2, np.zeros(3), activation="softmax")], (1, 1), channels=4)
    x = rng.normal(size=(1, 1, 1, 4))
    _, classes, d = lrp.deconvnet(model, x, None)
    seed = np.eye(3)[classes[0]]
    np.testing.assert_allclose(d.reshape(4), w1 @ np.maximum(w2 @ seed, 0))


def test_composites_give_each_layer_its_rule(small_model):
    bounds = lrp.input_bounds("vgg16", 3)
    plan = lrp_plan.composite(small_model, "epsilon_gamma_box", bounds)
    first = plan.rule_for(small_model.layer("block1_conv1"))
    assert isinstance(first, ZBox)
    np.testing.assert_allclose(first.low, [-103.939, -116.779, -123.68], rtol=1e-6)
    np.testing.assert_allclose(first.high, [151.061, 138.221, 131.32], rtol=1e-6)
    assert isinstance(plan.rule_for(small_model.layer("block3_conv2")), Gamma)
    dense = plan.rule_for(small_model.layer("fc1"))
    assert isinstance(dense, Epsilon) and dense.epsilon == 1e-6
    preset = lrp_plan.composite(small_model, "sequential_preset_b_flat", bounds, epsilon=0.3)
    assert isinstance(preset.rule_for(small_model.layer("block1_conv1")), Flat)
    second = preset.rule_for(small_model.layer("block1_conv2"))
    assert isinstance(second, AlphaBeta) and (second.alpha, second.beta) == (2, 1)
    assert preset.rule_for(small_model.layer("predictions")).epsilon == 0.3


def test_the_box_follows_a_rescaling_layer():
    model = Network([Rescaling("r", 1 / 127.5, -1.0),
                     Conv2D("c", np.ones((1, 1, 3, 2)), None), Flatten("f"),
                     Dense("d", np.ones((2, 2)), None, activation="softmax")], (1, 1))
    box = lrp_plan.composite(model, "epsilon_gamma_box", lrp.input_bounds("none", 3)).rules["c"]
    np.testing.assert_allclose([box.low, box.high], [[-1] * 3, [1] * 3])


def test_deep_taylor_conserves_max_of_the_logit(shapes_model):
    from shapes_data import dataset
    x = dataset(2, seed=5)[0].astype(np.float32)
    details = {}
    maps, classes = explain(shapes_model, x, "deep-taylor", details=details)
    logits = shapes_model.layers[-1].z[np.arange(2), classes]
    assert maps.shape == x.shape
    assert details["relevance_sums"]["input"] == pytest.approx(
        np.maximum(logits, 0).sum(), rel=1e-4)


@pytest.mark.parametrize("method", ["lrp", "deep-taylor", "deconvnet", "gradient-x-input"])
def test_explain_runs_each_method_on_vgg16(small_model, method):
    x = np.random.default_rng(7).uniform(-100, 100, (2, 64, 64, 3)).astype(np.float32)
    options = {"rule": "sequential_preset_a"} if method == "lrp" else {}
    maps, classes = explain(small_model, x, method, **options)
    if method != "lrp":  # the command line refuses --rule with them, and so does explain
        with pytest.raises(ValueError, match=f"^method {method} takes no rule, epsilon "):
            explain(small_model, x, method, rule="z", epsilon=0.1)
    assert maps.shape == x.shape and np.isfinite(maps).all() and np.abs(maps).max() > 0


def refused(model, rule="z"):
    with pytest.raises(ValueError) as info:
        lrp.relevance(model, np.ones((1, 2, 2, 3)), None, rule, (0, 1))
    return str(info.value)


def test_what_lrp_has_no_rule_for_is_refused_by_name():
    from vggnp.nn.merge_layers import Multiply
    w = np.ones((1, 1, 3, 3))
    graph = Graph([(Conv2D("a", w), [IMAGE]), (Multiply("gate"), ["a", IMAGE]),
                   (Flatten("f"), ["gate"]),
                   (Dense("out", np.ones((12, 2)), activation="softmax"), ["f"])], (2, 2))
    assert refused(graph) == "LRP needs ReLU activations, but layer gate is a Multiply"
    tanh = Network([Flatten("f"), Dense("h", np.ones((12, 2)), activation="tanh"),
                    Activation("out", "softmax")], (2, 2))
    assert refused(tanh) == "LRP needs ReLU activations, but layer h ends in tanh"
    assert "unknown LRP rule 'zz'" in refused(tanh, "zz")
    with pytest.raises(ValueError, match="^rule z has no gamma; only epsilon_gamma_box"):
        lrp_plan.composite(tanh, "z", (0, 1), gamma=0.5)
    with pytest.raises(ValueError, match="^rule z_plus has no epsilon; the rules with one: "):
        lrp_plan.composite(tanh, "z_plus", (0, 1), epsilon=0.5)
    for value in (-1.0, np.inf, np.nan):  # inf made every map NaN, nan slipped through
        assert lrp_plan.composite_refusal("epsilon_gamma_box", gamma=value) == \
            f"gamma must be a finite number >= 0, not {value}"
        assert lrp_plan.composite_refusal("epsilon", epsilon=value) == \
            f"epsilon must be a finite number >= 0, not {value}"
    assert lrp_plan.composite_refusal("epsilon_gamma_box", gamma="x") == \
        "gamma must be a finite number >= 0, not 'x'"  # was a TypeError from <=


def test_the_forwards_z_is_reused_only_where_it_is_known():
    """After a ReLU the output is z where z > 0; LRP-epsilon reuses it when no relevance
    comes down where the output is 0, and computes z again otherwise."""
    rng = np.random.default_rng(8)
    layer = Conv2D("c", rng.normal(size=(3, 3, 2, 4)), rng.normal(size=4))
    out = layer.forward(rng.normal(size=(1, 5, 5, 2)))
    assert layer.kept_pre_activation(out * 2) is out  # zero where out is
    z = layer.kept_pre_activation(np.ones_like(out))
    assert z is not out and (z < 0).any()
    np.testing.assert_allclose(np.maximum(z, 0), out)


def test_a_batch_norm_after_a_conv_is_folded_into_it():
    """conv -> BatchNorm explains as the one conv it equals (w * scale, b * scale +
    shift), for every rule (zennit's canonizer); a BatchNorm with no such conv before it
    is refused by name."""
    from vggnp.nn.convnet_layers import BatchNorm
    rng = np.random.default_rng(10)
    w, b = rng.normal(size=(3, 3, 3, 4)), rng.normal(size=4)
    gamma, beta, mean, var = (rng.normal(size=4), rng.normal(size=4), rng.normal(size=4),
                              rng.uniform(0.5, 2, 4))
    norm = BatchNorm("bn", gamma, beta, mean, var)
    head = [Activation("relu", "relu"), Flatten("f"),
            Dense("out", rng.normal(size=(64, 3)), rng.normal(size=3), activation="softmax")]
    with_norm = Network([Conv2D("c", w, b, activation="linear"), norm, *head], (4, 4))
    folded = Network([Conv2D("c", w * norm.scale, b * norm.scale + norm.shift,
                             activation="linear"), *head], (4, 4))
    x = rng.normal(size=(2, 4, 4, 3))
    for rule in ("z", "epsilon_gamma_box", "alpha_2_beta_1", "flat"):
        np.testing.assert_allclose(lrp.relevance(with_norm, x, None, rule, (-3, 3))[2],
                                   lrp.relevance(folded, x, None, rule, (-3, 3))[2],
                                   rtol=1e-9, atol=1e-12)
    dense_w, dense_b = rng.normal(size=(48, 4)), rng.normal(size=4)
    head = [Activation("relu2", "relu"), Dense("top", rng.normal(size=(4, 3)), None,
                                               activation="softmax")]
    with_norm = Network([Flatten("f"), Dense("d", dense_w, dense_b, activation="linear"),
                         BatchNorm("bn2", gamma, beta, mean, var), *head], (4, 4))
    folded = Network([Flatten("f"), Dense("d", dense_w * norm.scale,
                                          dense_b * norm.scale + norm.shift,
                                          activation="linear"), *head], (4, 4))
    for rule in ("z", "epsilon", "alpha_2_beta_1"):  # a folded dense's z is its own
        np.testing.assert_allclose(lrp.relevance(with_norm, x, None, rule, (-3, 3))[2],
                                   lrp.relevance(folded, x, None, rule, (-3, 3))[2],
                                   rtol=1e-9, atol=1e-12)
    alone = Network([BatchNorm("bn", *[np.ones(3)] * 4), Flatten("f"),
                     Dense("out", np.ones((12, 2)), activation="softmax")], (2, 2))
    assert refused(alone) == ("LRP has no rule for layer bn (BatchNorm): it does not follow "
                              "a conv or dense layer of its own that it could be folded into")


def test_a_leak_of_a_conserving_rule_is_warned(small_model):
    """z+ passes all relevance down, unless an output with relevance has no positive
    contribution (z+ = 0): forced here by zeroing a conv's positive weights into one
    channel whose output still gets relevance through its bias."""
    x = np.random.default_rng(9).uniform(-100, 100, (1, 64, 64, 3)).astype(np.float32)
    details = {}
    explain(small_model, x, "lrp", rule="z_plus", details=details)
    (check,) = details["conservation"]
    assert lrp.conservation_warning(check) is None
    assert check["input"] == pytest.approx(check["start"], rel=1e-4)
    layer = small_model.layer("block5_conv3")
    saved = layer.w, layer.b
    try:
        layer.w, layer.b = np.minimum(layer.w, 0), np.full_like(layer.b, 5.0)
        explain(small_model, x, "lrp", rule="z_plus", details=details, warn_empty=False)
    finally:
        layer.w, layer.b = saved
    (check,) = details["conservation"]
    warning = lrp.conservation_warning(check)
    assert warning.startswith("the relevance sums to ") and "--trace" in warning
    explain(small_model, x, "lrp", rule="epsilon", details=details)
    assert not details["conservation"][0]["conserving"]  # epsilon's leak is expected
    assert lrp.conservation_warning(details["conservation"][0]) is None
    grown = {"start": 2.0, "input": -30.0, "conserving": False}
    assert "30 at the input, 15 times the 2" in lrp.conservation_warning(grown).replace(
        "-30", "30")
    # the lines docs/methods.md draws: a leak over 0.1 % of a conserving rule, growth past
    # 10 times the start for any rule
    for start, found, conserving, warned in ((2.0, 2.0 * (1 - 0.99e-3), True, False),
                                             (2.0, 2.0 * (1 - 1.01e-3), True, True),
                                             (2.0, 19.9, False, False),
                                             (2.0, -20.1, False, True)):
        check = {"start": start, "input": found, "conserving": conserving}
        assert (lrp.conservation_warning(check) is not None) == warned, check


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_denominator_is_stabilised_as_innvestigate_does(dtype):
    """z + epsilon sign(z) with sign(0) = +1 (away from zero), and without epsilon an
    exact zero made ZERO_GUARD; z itself untouched."""
    from vggnp.nn.relevance import ZERO_GUARD, stabilise
    z = np.array([-1.0, 0.0, 2.0, -0.5], dtype)
    got = stabilise(z, 0.5)
    assert got.dtype == dtype and z[1] == 0.0
    assert np.array_equal(got, np.array([-1.5, 0.5, 2.5, -1.0], dtype))
    assert np.array_equal(stabilise(z), np.array([-1.0, ZERO_GUARD, 2.0, -0.5], dtype))
    rng = np.random.default_rng(0)
    z = (rng.standard_normal(1000) * rng.integers(0, 2, 1000)).astype(dtype)  # half zeros
    for epsilon in (0.0, 0.25, 1e-7):
        textbook = z + np.where(z >= 0, epsilon, -epsilon).astype(dtype)
        textbook = np.where(textbook == 0, dtype(ZERO_GUARD), textbook)
        assert np.array_equal(stabilise(z, epsilon), textbook)
