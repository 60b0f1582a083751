"""#25's engine: the merge layers and backprop on a graph (nn/merge_layers.py, nn/graph.py),
checked by finite differences in float64; where a tensor feeds two layers, the gradients
must add."""

import warnings

import numpy as np
import pytest

from vggnp.methods.explain import explain
from vggnp import EmptyMapWarning
from vggnp.methods.registry import METHODS
from vggnp.nn.gradcheck import TOLERANCE, numerical_gradient, relative_error
from vggnp.nn.graph_gradcheck import merge_errors, residual_graph
from vggnp.nn.graph import IMAGE, Graph
from vggnp.nn.layers import Dense, Flatten
from vggnp.nn.merge_layers import (Add, Average, Concatenate, Maximum, Multiply, Subtract,
                                   unbroadcast)
from vggnp.nn.random_init import random_vgg16_weights
from vggnp.nn.vgg16 import VGG16

RNG = np.random.default_rng(5)
A, B, C = (RNG.standard_normal((2, 3, 4, 5)) for _ in range(3))


@pytest.mark.parametrize("kind, xs", [
    (Add, [A, B, C]), (Subtract, [A, B]), (Average, [A, B, C]), (Maximum, [A, B, C]),
    (Multiply, [A, B, C]), (Multiply, [A, RNG.standard_normal((2, 1, 1, 5))]),
    (Add, [A, RNG.standard_normal((5,))]), (Concatenate, [A, B[..., :2], C[..., :1]]),
], ids=lambda v: getattr(v, "__name__", ""))
def test_each_merge_layer_against_finite_differences(kind, xs):
    errors = merge_errors(lambda: kind("m"), xs)
    assert len(errors) == len(xs) and max(errors.values()) <= TOLERANCE, errors


def test_a_broadcast_input_gets_the_summed_gradient():
    d = np.ones((2, 3, 4, 5))
    assert unbroadcast(d, (2, 1, 1, 5)).shape == (2, 1, 1, 5)
    assert np.all(unbroadcast(d, (2, 1, 1, 5)) == 12) and np.all(unbroadcast(d, (5,)) == 24)


def test_maximum_gives_a_tie_to_the_first_input():
    layer = Maximum("m")
    layer.forward([A, A.copy()])
    first, second = layer.backward(np.ones_like(A))
    assert np.all(first == 1) and np.all(second == 0)


def test_the_gradients_of_a_tensor_with_two_consumers_add():
    """The lesson of backprop on a graph, shown by breaking it: the residual graph's input
    gradient equals finite differences; the same backward that keeps only the last
    consumer's gradient (``=`` for ``+=``) does not."""
    model = residual_graph()
    x = RNG.standard_normal((2, 5, 6, 3))
    dout = RNG.standard_normal(model.forward(x.copy()).shape)
    numeric = numerical_gradient(lambda v: model.forward(v), x.copy(), dout)
    model.forward(x)
    assert relative_error(model.backward(dout), numeric) <= TOLERANCE

    class Overwriting(Graph):
        def backward(self, dout):
            grads = {self.names[-1]: dout}
            for layer, inputs in reversed(self.nodes):
                back = layer.backward(grads.pop(layer.name))
                for name, d in zip(inputs, back if layer.takes_many else [back]):
                    grads[name] = d  # the bug: the other consumer's share is lost
            return grads[IMAGE]
    broken = Overwriting(model.nodes, model.input_size, model.channels)
    broken.forward(x)
    assert relative_error(broken.backward(dout), numeric) > 0.01


def test_a_chain_as_a_graph_is_the_network():
    """VGG16 (small, float64) as a graph of one-input nodes: the same outputs and input
    gradient as the chain."""
    weights = random_vgg16_weights(widths=(4, 4, 8, 8, 8), dense=(6, 6, 3),
                                   input_size=(32, 32), seed=2)
    chain = VGG16({k: (w.astype(np.float64), b.astype(np.float64))
                   for k, (w, b) in weights.items()}, input_size=(32, 32))
    graph = Graph([(layer, [before]) for layer, before in
                   zip(chain.layers, [IMAGE, *chain.names[:-1]])], (32, 32))
    x = RNG.standard_normal((2, 32, 32, 3)) * 50
    out = graph.forward(x)
    assert np.array_equal(out, chain.forward(x))
    dout = RNG.standard_normal(out.shape)
    graph.forward(x)
    through_graph = graph.backward(dout)
    chain.forward(x)
    assert np.allclose(through_graph, chain.backward(dout), rtol=1e-12, atol=1e-12)


def test_a_graph_refuses_nodes_out_of_order():
    dense = Dense("d", np.ones((4, 2)), None, "linear")
    with pytest.raises(ValueError, match="node d: inputs \\['flat'\\] must be earlier"):
        Graph([(dense, ["flat"]), (Flatten("flat"), [IMAGE])], (2, 2), 1)
    with pytest.raises(ValueError, match="several for a merge layer"):
        Graph([(Add("a"), [IMAGE])], (2, 2), 1)
    with pytest.raises(ValueError, match="a name used twice"):
        Graph([(Flatten("f"), [IMAGE]), (Flatten("f"), ["f"])], (2, 2), 1)


def test_separable_conv_depthwise_kernel_gradient():
    """SeparableConv2D's gradient w.r.t. its depthwise kernel (the gradcheck line checks
    dx, the pointwise kernel and the bias): finite differences, float64."""
    from vggnp.nn.graph_layers import SeparableConv2D
    from vggnp.nn.backward_pass import BackwardPass
    rng = np.random.default_rng(8)
    x, wd = rng.standard_normal((2, 5, 6, 3)), rng.standard_normal((3, 3, 3, 2))
    wp, b = rng.standard_normal((1, 1, 6, 4)), rng.standard_normal(4)

    def make(kernel):
        return SeparableConv2D("s", kernel, wp, b, "linear", (1, 1), "same")
    layer = make(wd)
    dout = rng.standard_normal(layer.forward(x).shape)
    layer.backward(dout, BackwardPass(param_grads=True))
    numeric = numerical_gradient(lambda k: make(k).forward(x), wd.copy(), dout)
    assert relative_error(layer.depthwise.dw, numeric) <= TOLERANCE


def small_keras_graph(softmax=False):
    """The residual + squeeze-and-excitation graph of the gradcheck, in float32, as the
    Keras reader builds it (every node with its output shape): 12x12 images; its logits
    through a softmax if ``softmax``."""
    from vggnp.models.keras_convnet import KerasGraph
    from vggnp.nn.graph_gradcheck import residual_graph
    from vggnp.nn.layers import Dense
    graph = residual_graph(np.float32)
    nodes = graph.nodes
    if softmax:
        last, inputs = nodes[-1]
        nodes[-1] = (Dense(last.name, last.w, last.b, "softmax"), inputs)
    x = np.zeros((1, 12, 12, 3), np.float32)
    _, kept = graph.forward(x, keep=set(graph.names))
    shapes = {name: value.shape[1:] for name, value in kept.items()}
    return KerasGraph(nodes, (12, 12, 3), shapes, name="residual")


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_on_a_graph(method):
    """Each method of --method on a graph (a skip connection and a gate): finite maps of
    the right shape, at the default layer (the input of the last global pooling)."""
    model = small_keras_graph()
    assert model.default_layer == "excite"
    x = np.random.default_rng(0).standard_normal((2, 12, 12, 3)).astype(np.float32)
    if method in ("lrp", "deep-taylor", "deconvnet"):  # the gate's sigmoid: refused
        with pytest.raises(ValueError, match="needs ReLU activations, but layer gate ends "
                                             "in sigmoid"):
            explain(model, x, method)
        return
    if method == "scorecam":  # weighs channels by probabilities, which logits are not
        with pytest.raises(ValueError, match="scorecam with target softmax needs class "):
            explain(model, x, method)
        model = small_keras_graph(softmax=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyMapWarning)
        maps, classes = explain(model, x, method, batch_size=4)
    assert np.isfinite(maps).all() and len(classes) == 2
    assert maps.shape[:3] == (2, 12, 12)


def test_trace_of_a_graph_shows_inputs_and_fan_out():
    from vggnp.nn.trace import forward_table
    model, rows = small_keras_graph(), []
    model.forward(np.zeros((1, 12, 12, 3), np.float32), trace=rows)
    table = forward_table(rows)
    assert "<- conv_b, input" in table and "<- add (feeds 2)" in table


def test_layer_errors_of_a_graph_say_what_is_wrong():
    """--layer on a graph: a layer with no feature map is named as such, a near miss gets
    the nearest names (a new user's trial found "no conv layer 'dense'" misleading)."""
    from vggnp.cli import cam_layer
    model = small_keras_graph()
    assert cam_layer(model, "relu") == "relu"  # any feature map, not only convolutions
    with pytest.raises(ValueError, match="layer 'gap' has no feature map"):
        cam_layer(model, "gap")
    with pytest.raises(ValueError, match="no layer 'exite' .did you mean 'excite'"):
        cam_layer(model, "exite")
