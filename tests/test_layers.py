"""Every layer: float64 finite-difference gradient checks, fast == naive, im2col adjoint."""

import numpy as np
import pytest

from vggnp.nn.gradcheck import numerical_gradient, relative_error
from vggnp.nn.convnet_layers import (Activation, AvgPool2D, BatchNorm, Dropout, GlobalAvgPool2D,
                                  Rescaling)
from vggnp.nn.im2col import col2im, im2col, window_padding
from vggnp.nn.activation_functions import ReLU, Sigmoid, Softmax
from vggnp.fast.layers import FastConv2D
from vggnp.nn.backward_pass import BackwardPass
from vggnp.nn.layers import Conv2D, Dense, Flatten, MaxPool2D
from vggnp.nn.naive import conv2d_naive, maxpool2x2_naive, pool_naive

TOL = 1e-7  # relative to the gradient's max |value|, float64


def rng():
    return np.random.default_rng(1234)


def check_dx(layer, x, **backward_kwargs):
    """Analytic dx equals the numerical one for a random upstream gradient."""
    out = layer.forward(x.copy())
    dout = rng().standard_normal(out.shape)
    dout_before = dout.copy()
    dx = layer.backward(dout, **backward_kwargs)
    assert dx.shape == x.shape
    assert np.array_equal(dout, dout_before), "backward wrote into the incoming gradient"
    dx_num = numerical_gradient(lambda v: layer.forward(v), x.copy(), dout)
    assert relative_error(dx, dx_num) <= TOL
    return dout


def check_param_layer(cls, x, w, b, activation):
    """dx, dw and db of a Conv2D or Dense equal their numerical estimates.
    cls(name, w, b, activation): the layer class, or a function that makes one."""
    layer = cls("layer", w, b, activation)
    dout = check_dx(layer, x)
    layer.forward(x)
    layer.backward(dout, BackwardPass(param_grads=True))
    dw_num = numerical_gradient(lambda v: cls("w", v, b, activation).forward(x), w.copy(), dout)
    db_num = numerical_gradient(lambda v: cls("b", w, v, activation).forward(x), b.copy(), dout)
    assert relative_error(layer.dw, dw_num) <= TOL
    assert relative_error(layer.db, db_num) <= TOL


@pytest.mark.parametrize("conv", [Conv2D, FastConv2D])
@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_conv2d_gradients_non_square(activation, conv):
    r = rng()
    x = r.standard_normal((2, 5, 7, 3))
    check_param_layer(conv, x, r.standard_normal((3, 3, 3, 4)), r.standard_normal(4), activation)


@pytest.mark.parametrize("activation", ["relu", "linear", "softmax"])
def test_dense_gradients(activation):
    r = rng()
    x, w, b = r.standard_normal((3, 6)), r.standard_normal((6, 5)), r.standard_normal(5)
    check_param_layer(Dense, x, w, b, activation)


def test_dense_backward_from_logits_skips_softmax():
    r = rng()
    x, w, b = r.standard_normal((2, 6)), r.standard_normal((6, 4)), r.standard_normal(4)
    dense = Dense("d", w, b, activation="softmax")
    dense.forward(x)
    dz = r.standard_normal((2, 4))
    assert np.allclose(dense.backward(dz, BackwardPass(from_logits=True)), dz @ w.T)


def test_relu_softmax_flatten_gradients():
    r = rng()
    x = r.standard_normal((2, 3, 5, 4))
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from the kink at 0
    check_dx(ReLU(), x)
    check_dx(Softmax(), r.standard_normal((3, 7)))
    check_dx(Flatten(), x)


def test_maxpool_gradients_non_square_odd():
    # Distinct values, so a finite difference never crosses a tie. Odd sizes: the last
    # row and column are dropped, as Keras' "valid" pooling does.
    x = rng().permutation(2 * 5 * 7 * 3).reshape(2, 5, 7, 3).astype(np.float64) / 10
    check_dx(MaxPool2D("p"), x)


def test_flatten_is_channels_last():
    x = np.arange(2 * 2 * 3 * 4).reshape(2, 2, 3, 4)
    out = Flatten().forward(x)
    assert out.shape == (2, 24)
    assert np.array_equal(out[1, :4], x[1, 0, 0, :])  # channels vary fastest


def test_im2col_col2im_adjoint():
    r = rng()
    x = r.standard_normal((2, 5, 7, 3))
    col = im2col(x, 3, 3, 1)
    assert col.shape == (2 * 5 * 7, 27)
    c = r.standard_normal(col.shape)
    assert np.isclose(np.sum(col * c), np.sum(x * col2im(c, x.shape, 3, 3, 1)), rtol=1e-12,
                      atol=0)


def test_maxpool_fast_equals_naive_with_ties():
    r = rng()
    # Values from a small set, many all-equal windows: exactly the post-ReLU situation.
    x = np.maximum(r.integers(-2, 2, (2, 6, 8, 3)), 0).astype(np.float32)
    pool = MaxPool2D("p")
    out = pool.forward(x)
    ref_out, ref_backward = maxpool2x2_naive(x)
    assert np.array_equal(out, ref_out)
    dout = r.standard_normal(out.shape).astype(np.float32)
    assert np.array_equal(pool.backward(dout), ref_backward(dout))


def test_maxpool_tie_goes_to_first_max_only():
    x = np.zeros((1, 2, 2, 1))
    pool = MaxPool2D("p")
    pool.forward(x)
    dx = pool.backward(np.ones((1, 1, 1, 1)))
    assert dx[0, :, :, 0].tolist() == [[1, 0], [0, 0]]


@pytest.mark.parametrize("conv_class", [Conv2D, FastConv2D])
def test_float32_stays_float32(conv_class):
    r = rng()
    w = r.standard_normal((3, 3, 2, 4)).astype(np.float32)
    conv = conv_class("c", w, np.zeros(4, np.float32))
    out = conv.forward(r.standard_normal((1, 4, 4, 2)))  # float64 input is cast
    assert out.dtype == np.float32
    assert conv.backward(np.ones_like(out)).dtype == np.float32


# --------------------------------------------------------------------------------------
# The other layers of a Keras convnet (issue #6): any kernel, stride and padding.
# --------------------------------------------------------------------------------------

CONV_SHAPES = [  # (kernel size, strides, padding): fast path and im2col path
    ((5, 5), (2, 2), "same"), ((3, 3), (1, 1), "valid"), ((1, 3), (2, 1), "valid"),
    ((4, 4), (1, 1), "same"), ((3, 3), (2, 2), "valid"), ((3, 3), (1, 1), "same"),
]


@pytest.mark.parametrize("conv", [Conv2D, FastConv2D])
@pytest.mark.parametrize("kernel, strides, padding", CONV_SHAPES)
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_general_conv2d_gradients_and_forward(kernel, strides, padding, activation, conv):
    r = rng()
    x = r.standard_normal((2, 7, 9, 3))
    w, b = r.standard_normal((*kernel, 3, 4)), r.standard_normal(4)

    def make(name, w_, b_, activation_=activation):
        return conv(name, w_, b_, activation=activation_, strides=strides, padding=padding)

    check_param_layer(make, x, w, b, activation)
    linear = make("c", w, b, "linear")
    z = linear.forward(x)
    assert np.allclose(z, conv2d_naive(x, w, b, strides, linear.pads(x.shape)), atol=1e-12)
    expected_h = -(-7 // strides[0]) if padding == "same" else (7 - kernel[0]) // strides[0] + 1
    assert z.shape[1] == expected_h


POOLS = [((3, 3), (2, 2), "valid"), ((2, 2), (2, 2), "same"), ((3, 2), (1, 2), "same"),
         ((2, 2), None, "valid"), ((3, 3), (1, 1), "valid"), ((1, 2), (1, 1), "valid")]


@pytest.mark.parametrize("pool_size, strides, padding", POOLS)
def test_pooling_gradients_and_forward(pool_size, strides, padding):
    x = rng().permutation(2 * 7 * 9 * 3).reshape(2, 7, 9, 3).astype(np.float64) / 10
    for cls, reduce in ((MaxPool2D, np.max), (AvgPool2D, np.mean)):
        layer = cls("p", pool_size, strides, padding)
        out = layer.forward(x)
        pads = window_padding(7, 9, *pool_size, layer.strides, padding)
        assert np.allclose(out, pool_naive(x, pool_size, layer.strides, pads, reduce))
        check_dx(cls("p", pool_size, strides, padding), x)


def test_overlapping_maxpool_routes_to_the_first_maximum_and_adds():
    x = np.zeros((1, 3, 3, 1))
    x[0, 1, 1, 0] = 5.0  # the maximum of all four overlapping 2x2 windows (stride 1)
    pool = MaxPool2D("p", (2, 2), (1, 1))
    assert np.all(pool.forward(x) == 5)
    dx = pool.backward(np.ones((1, 2, 2, 1)))
    assert dx[0, 1, 1, 0] == 4 and dx.sum() == 4
    ties = MaxPool2D("p", (2, 2), (2, 2))
    ties.forward(np.zeros((1, 2, 2, 1)))
    assert ties.backward(np.ones((1, 1, 1, 1)))[0, :, :, 0].tolist() == [[1, 0], [0, 0]]


def test_global_pool_batchnorm_rescaling_dropout_activation_gradients():
    r = rng()
    x = r.standard_normal((2, 3, 5, 4))
    check_dx(GlobalAvgPool2D("g"), x)
    assert np.allclose(GlobalAvgPool2D("g").forward(x), x.mean(axis=(1, 2)))
    gamma, beta, mean = r.standard_normal(4), r.standard_normal(4), r.standard_normal(4)
    var = r.random(4) + 0.1
    bn = BatchNorm("bn", gamma, beta, mean, var, eps=1e-3)
    assert np.allclose(bn.forward(x), gamma * (x - mean) / np.sqrt(var + 1e-3) + beta)
    check_dx(bn, x)
    check_dx(Rescaling("r", 1 / 255, -0.5), x)
    assert np.array_equal(Dropout("d", 0.5).forward(x), x)
    check_dx(Dropout("d"), x)
    for activation in ("relu", "sigmoid", "linear"):
        check_dx(Activation("a", activation), np.where(np.abs(x) < 1e-3, 0.5, x))
    check_dx(Activation("a", "softmax"), r.standard_normal((3, 5)))
    check_dx(Sigmoid(), r.standard_normal((3, 5)) * 10)
    assert np.allclose(Sigmoid().forward(np.array([-800.0, 0.0, 800.0])), [0, 0.5, 1])
    final = Activation("a", "sigmoid")
    final.forward(x)
    assert np.array_equal(final.backward(x, BackwardPass(from_logits=True)), x)  # d/dz = dout


def test_only_a_networks_last_activation_keeps_its_input():
    """An Activation keeps its input z for ``Network.logits`` only as the last layer: one
    in the middle drops it (its backward reads its own cache), the gradient unchanged."""
    from vggnp.nn.network import Network
    r = rng()
    x = r.standard_normal((2, 3, 3, 2))
    middle, last = Activation("relu", "relu"), Activation("out", "softmax")
    net = Network([middle, Flatten("f"), Dense("d", r.standard_normal((18, 4)), None,
                                               "linear"), last], (3, 3), 2)
    probs = net.forward(x)
    assert middle.z is None and not middle.keeps_logits and last.keeps_logits
    z = net.logits(x)
    np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), probs,
                               rtol=1e-12)
    dx = net.backward(np.ones((2, 4)), from_logits=True)
    np.testing.assert_allclose(dx, (np.ones((2, 4)) @ net.layers[2].w.T).reshape(x.shape)
                               * (x > 0), rtol=1e-12)


def test_strided_padded_im2col_col2im_adjoint():
    r = rng()
    x = r.standard_normal((2, 7, 8, 3))
    pads = ((1, 2), (0, 1))
    col = im2col(x, 4, 3, pads, (2, 3))
    c = r.standard_normal(col.shape)
    assert np.isclose(np.sum(col * c), np.sum(x * col2im(c, x.shape, 4, 3, pads, (2, 3))),
                      rtol=1e-12, atol=0)
