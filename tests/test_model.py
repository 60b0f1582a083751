"""The VGG16 model: named outputs, backward between any two layers, whole-net gradient check."""

import numpy as np
import pytest

from vggnp.nn.random_init import random_vgg16_weights
from vggnp import VGG16
from vggnp.nn import spec
from vggnp.nn.gradcheck import numerical_gradient, relative_error, sampled_numerical_gradient
from vggnp.nn.naive import conv2d_same_naive, maxpool2x2_naive


def tiny_model(dtype=np.float64, input_size=(32, 64), widths=(2, 2, 3, 3, 3), seed=3):
    weights = random_vgg16_weights(widths=widths, dense=(5, 5, 4), input_size=input_size,
                                   seed=seed)
    weights = {k: (w.astype(dtype), b.astype(dtype)) for k, (w, b) in weights.items()}
    return VGG16(weights, input_size=input_size)


def test_layer_names_match_keras():
    model = tiny_model()
    assert model.names == spec.LAYER_NAMES
    assert model.names[:3] == ["block1_conv1", "block1_conv2", "block1_pool"]
    assert model.names[-4:] == ["flatten", "fc1", "fc2", "predictions"]


def test_standard_shapes_count_138m_parameters():
    total = sum(np.prod(k) + np.prod(b) for k, b in spec.standard_shapes().values())
    assert total == 138_357_544


def test_named_outputs_and_shapes():
    model = tiny_model()
    x = np.random.default_rng(0).standard_normal((2, 32, 64, 3)) * 60
    out, kept = model.forward(x, keep=("block1_conv2", "block5_conv3", "block5_pool", "fc1"))
    assert kept["block1_conv2"].shape == (2, 32, 64, 2)
    assert kept["block5_conv3"].shape == (2, 2, 4, 3)
    assert kept["block5_pool"].shape == (2, 1, 2, 3)
    assert kept["fc1"].shape == (2, 5)
    assert np.allclose(out.sum(axis=1), 1)
    assert np.array_equal(model.forward(x, until="block5_conv3"), kept["block5_conv3"])
    assert np.allclose(model.predict(x), loop_forward(model, x), rtol=1e-10, atol=1e-12)


def loop_forward(model, x):
    """VGG16's forward written out independently of vggnp's layers: the loop convolution
    and max-pool of ``vggnp.nn.naive``, ReLU, the channels-last flatten, dense, softmax."""
    a = x
    for name in spec.LAYER_NAMES:
        layer = model.layer(name)
        if name in spec.CONV_NAMES:
            a = np.maximum(conv2d_same_naive(a, layer.w, layer.b), 0)
        elif name.endswith("_pool"):
            a = maxpool2x2_naive(a)[0]
        elif name == "flatten":
            a = a.reshape(len(a), -1)
        else:
            a = a @ layer.w + layer.b
            a = np.maximum(a, 0) if name != "predictions" else a
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# Each stop is followed by a conv or dense layer: perturbing an output that feeds a max-pool
# would move it across ties among zeros, where a finite difference cannot agree with any
# single (sub)gradient; the TensorFlow tests cover gradients at block5_conv3.
COORDINATES = 400  # random coordinates checked (CS231n's sparse check), of up to 4,096


@pytest.mark.parametrize("stop", [None, "block1_conv1", "block3_pool", "block4_conv2",
                                  "block5_pool"])
def test_whole_net_gradient_from_logits(stop):
    """d(logit . g)/d(output of stop) by backward equals finite differences (float64)."""
    # Widths of 2-3 channels leave whole layers dead under He init: 4-8 keep the signal.
    model = tiny_model(input_size=(32, 32), widths=(4, 6, 8, 8, 8), seed=0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 32, 32, 3)) * 60
    g = rng.standard_normal((1, 4))
    model.forward(x)
    if stop is None:
        analytic = model.backward(g, start="predictions", from_logits=True)
        indices, numeric = sampled_numerical_gradient(model.logits, x.copy(), g, COORDINATES,
                                                      h=1e-4)
    else:
        activation = model.forward(x, until=stop)
        model.forward(x)
        analytic = model.backward(g, start="predictions", stop=stop, from_logits=True)
        later = model.layers[model.names.index(stop) + 1:]

        def logits_from(a):
            for layer in later:
                a = layer.forward(a)
            return model.layer("predictions").z

        indices, numeric = sampled_numerical_gradient(logits_from, activation.copy(), g,
                                                      COORDINATES)
    assert relative_error(analytic.flat[indices], numeric) <= 1e-7


def test_backward_from_an_inner_layer():
    model = tiny_model()
    x = np.random.default_rng(2).standard_normal((1, 32, 64, 3)) * 60
    model.forward(x, until="block4_conv1")
    a = model.forward(x, until="block3_pool")
    model.forward(x, until="block4_conv1")
    dout = np.ones((1, 4, 8, 3))
    d = model.backward(dout, start="block4_conv1", stop="block3_pool")
    numeric = numerical_gradient(lambda v: model.layer("block4_conv1").forward(v), a.copy(), dout)
    assert relative_error(d, numeric) <= 1e-7


def test_backward_errors():
    model = tiny_model()
    x = np.zeros((1, 32, 64, 3))
    with pytest.raises(RuntimeError):
        model.backward(np.ones((1, 4)))
    model.forward(x, until="block2_pool")
    with pytest.raises(RuntimeError):
        model.backward(np.ones((1, 4)), start="predictions")
    with pytest.raises(KeyError, match="no layer 'block6_conv1'"):
        model.forward(x, until="block6_conv1")


def test_forward_from_an_inner_layer():
    """forward(a, start=L) continues from L's output exactly as the full forward does; a
    backward below L is then refused (the layers before it hold another run's caches)."""
    model = tiny_model()
    x = np.random.default_rng(4).standard_normal((2, 32, 64, 3)) * 60
    probs, kept = model.forward(x, keep=("block4_conv3",))
    dx = model.backward(np.ones((2, 4)), start="predictions", stop="block4_conv3")
    assert np.array_equal(model.forward(kept["block4_conv3"], start="block4_conv3"), probs)
    assert np.array_equal(model.backward(np.ones((2, 4)), stop="block4_conv3"), dx)
    with pytest.raises(RuntimeError, match="cannot reach block4_conv2"):
        model.backward(np.ones((2, 4)), stop="block4_conv2")
    with pytest.raises(RuntimeError, match="cannot reach the input"):
        model.backward(np.ones((2, 4)))
    with pytest.raises(ValueError, match="comes before"):
        model.forward(x, start="block4_conv3", until="block3_pool")


def test_a_replica_shares_the_weights_and_keeps_its_own_caches():
    """Network.replica(): the same weight arrays (none copied), but a forward on one
    replica leaves the other's caches alone, so each one's backward is its own run's."""
    model = tiny_model()
    twin = model.replica()
    for layer, copy in zip(model.layers, twin.layers):
        assert layer is not copy and all(a is b for a, b in zip(layer.weights, copy.weights))
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((2, 32, 64, 3)) * 60 for _ in range(2)]
    dout = rng.standard_normal((2, 4))

    def input_gradient(net, x):
        net.forward(x)
        return net.backward(dout, from_logits=True)
    alone = [input_gradient(model, x) for x in xs]
    model.forward(xs[0])
    twin.forward(xs[1])  # between the original's forward and its backward
    assert np.array_equal(model.backward(dout, from_logits=True), alone[0])
    assert np.array_equal(twin.backward(dout, from_logits=True), alone[1])
    assert not np.array_equal(alone[0], alone[1])  # the check above could tell them apart
