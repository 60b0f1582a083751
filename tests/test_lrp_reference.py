"""LRP and its kin against iNNvestigate 2.1.2 (the Keras tool for them), on a narrow VGG16
and on the shapes model: the same relevance at the input, to 1e-4 of its largest value,
and the same relevance sum at every tensor of the model.

iNNvestigate runs in a child process (``scripts/innvestigate_reference.py``: it needs the
legacy tf_keras and graph mode). Where its definition and the paper's differ (the alpha-beta
rules with biases: iNNvestigate adds the whole bias to both z+ and z-), the models here
have zero biases and ``test_lrp.py`` checks vggnp against the paper's equation.
"""

import numpy as np
import pytest

from helpers import NARROW_WIDTHS, reference_module
from scripts.innvestigate_maps import innvestigate_maps
from vggnp.methods import lrp
from vggnp.nn.layers import Conv2D, Dense

pytestmark = pytest.mark.slow

# vggnp's name -> iNNvestigate's analyzer (keyword arguments); the same composite.
WITH_BIASES = {"z": ("lrp.z", {}), "epsilon": ("lrp.epsilon", {}),
               "w_square": ("lrp.w_square", {}), "flat": ("lrp.flat", {}),
               "z_plus": ("lrp.z_plus", {}),
               "alpha_1_beta_0_IB": ("lrp.alpha_1_beta_0_IB", {}),
               "alpha_2_beta_1_IB": ("lrp.alpha_2_beta_1_IB", {})}
ZERO_BIASES = {"alpha_1_beta_0": ("lrp.alpha_1_beta_0", {}),
               "alpha_2_beta_1": ("lrp.alpha_2_beta_1", {}),
               "sequential_preset_a": ("lrp.sequential_preset_a", {}),
               "sequential_preset_b": ("lrp.sequential_preset_b", {}),
               "sequential_preset_a_flat": ("lrp.sequential_preset_a_flat", {}),
               "sequential_preset_b_flat": ("lrp.sequential_preset_b_flat", {})}


def checked_maps(tmp_path, model, x, analyzers):
    reference_module("innvestigate", "pip install --no-deps innvestigate==2.1.2 (.ci/run)",
                     load=False)
    return innvestigate_maps(tmp_path, model, x, analyzers)


def vggnp_run(model, x, key, bounds):
    """(relevance at the input, per-tensor sums (T, N) in the model's order)."""
    trace = []
    if key == "deconvnet":  # iNNvestigate's reverse passes start from y^c, not from 1
        _, classes, r = lrp.deconvnet(model, x, None, trace=trace)
        logits = model.layers[-1].z[np.arange(len(x)), classes]
        return r * logits[:, None, None, None], None
    elif key == "input_t_gradient":
        return lrp.gradient_x_input(model, x, None)[2], None
    else:
        _, _, r = lrp.relevance(model, x, None, key, bounds, trace=trace)
    sums = [step["sum"] for step in reversed(trace)]
    return r, np.array(sums)


def compare(model, x, ours_x, theirs, keys, bounds, skip_first):
    """Each key's map to 1e-4 of the largest |value|, and its sums likewise."""
    for key in keys:
        mine, sums = vggnp_run(model, ours_x, key, bounds)
        scale = np.abs(theirs[key]).max()
        assert np.abs(mine - theirs[key]).max() <= 1e-4 * scale, key
        if sums is not None:
            # iNNvestigate keeps one tensor per layer output and the input; vggnp's trace
            # holds what each layer passes down (a leading Rescaling passes it as it is)
            # their first tensor is the output's (where the relevance starts), then the
            # input's and each layer's output in order
            their_sums = theirs[f"{key}_sums"].sum(axis=1)[1:1 + len(sums) - skip_first]
            assert np.allclose(sums[skip_first:], their_sums, rtol=1e-4,
                               atol=1e-4 * np.abs(their_sums).max()), key


def zero_biases(model):
    for layer in model.layers:
        if isinstance(layer, (Conv2D, Dense)):
            layer.b = np.zeros_like(layer.b)
    return model


@pytest.mark.parametrize("biases", ["kept", "zero"])
def test_lrp_on_a_narrow_vgg16_equals_innvestigate(tmp_path, biases):
    from vggnp import VGG16
    from vggnp.nn.random_init import random_vgg16_weights
    model = VGG16(random_vgg16_weights(**NARROW_WIDTHS, input_size=(32, 32), seed=3),
                  input_size=(32, 32))
    model = model if biases == "kept" else zero_biases(model)
    rng = np.random.default_rng(0)
    x = lrp_input(rng, model, 2)
    bounds = lrp.input_bounds("vgg16", 3)
    analyzers = dict(WITH_BIASES if biases == "kept" else ZERO_BIASES)
    if biases == "kept":
        analyzers.update({"deconvnet": ("deconvnet", {}),
                          "input_t_gradient": ("input_t_gradient", {}),
                          "deep_taylor": ("deep_taylor.bounded",
                                          {"low": bounds[0].tolist(),
                                           "high": bounds[1].tolist()})})
    theirs = checked_maps(tmp_path, model, x, analyzers)
    compare(model, x, x, theirs, analyzers, bounds, skip_first=0)


def test_lrp_on_the_shapes_model_equals_innvestigate(tmp_path, shapes_model):
    from shapes_data import dataset
    # noise: flat colours make max-pool windows tie to float rounding, where TensorFlow's
    # sums and vggnp's may pick different winners
    x = dataset(2, seed=5)[0] + np.random.default_rng(0).uniform(-8, 8, (2, 64, 64, 3))
    x = x.astype(np.float32)
    scaled = shapes_model.layers[0].forward(x)  # iNNvestigate multiplies R by 1/255 there
    # not deep_taylor: iNNvestigate's spreads relevance evenly over a global average
    # pooling (its gradient), vggnp's in proportion to the inputs (test_lrp.py)
    analyzers = {k: WITH_BIASES[k] for k in ("z", "epsilon", "z_plus", "flat", "w_square")}
    theirs = checked_maps(tmp_path, shapes_model, scaled, analyzers)
    compare(shapes_model, scaled, x, theirs, analyzers, lrp.input_bounds("none", 3),
            skip_first=1)


def lrp_input(rng, model, n):
    """n preprocessed (caffe) images of random pixels in 0..255."""
    from vggnp.files.preprocess import preprocess
    return preprocess(rng.uniform(0, 255, (n, *model.input_size, 3)), "vgg16")


def small_graph(rng):
    """A residual block (Add) and a concatenation, ReLU layers on their own, 8x8 images."""
    from vggnp.nn.convnet_layers import Activation, GlobalAvgPool2D
    from vggnp.nn.graph import IMAGE, Graph
    from vggnp.nn.layers import MaxPool2D
    from vggnp.nn.merge_layers import Add, Concatenate

    def conv(name, shape, activation):
        return Conv2D(name, rng.normal(0, 0.3, shape).astype(np.float32),
                      rng.normal(0, 0.1, shape[3]).astype(np.float32), activation=activation)
    nodes = [(conv("c1", (3, 3, 3, 6), "relu"), [IMAGE]),
             (conv("c2", (3, 3, 6, 6), "linear"), ["c1"]), (Add("add"), ["c2", "c1"]),
             (Activation("act", "relu"), ["add"]), (conv("c3", (1, 1, 6, 4), "relu"), ["act"]),
             (Concatenate("cat"), ["c3", "act"]), (MaxPool2D("pool"), ["cat"]),
             (GlobalAvgPool2D("gap"), ["pool"]),
             (Dense("out", rng.normal(0, 0.3, (10, 5)).astype(np.float32),
                    rng.normal(0, 0.1, 5).astype(np.float32), activation="softmax"), ["gap"])]
    return Graph(nodes, (8, 8))


def test_lrp_on_a_graph_equals_innvestigate(tmp_path):
    """At a fan-out the relevance coming back adds, Add splits it in proportion to its
    inputs, Concatenate by slices: the same maps as iNNvestigate's."""
    rng = np.random.default_rng(11)
    model = small_graph(rng)
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    analyzers = {k: WITH_BIASES[k] for k in ("z", "epsilon", "z_plus", "flat", "w_square",
                                             "alpha_2_beta_1_IB")}
    analyzers.update({"deconvnet": ("deconvnet", {}),
                      "input_t_gradient": ("input_t_gradient", {})})
    theirs = checked_maps(tmp_path, model, x, analyzers)
    for key in analyzers:
        mine, _ = vggnp_run(model, x, key, (-3, 3))
        assert np.abs(mine - theirs[key]).max() <= 1e-4 * np.abs(theirs[key]).max(), key
