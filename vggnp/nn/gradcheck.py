"""Finite-difference gradient checks, as in CS231n's ``eval_numerical_gradient_array``.

Run them in float64: with float32 the rounding error of the difference quotient is far
larger than any bug worth finding.
"""

import numpy as np

from .backward_pass import BackwardPass


def numerical_gradient(f, x, dout, h=1e-5):
    """Estimate d<f(x), dout>/dx by central differences.

    f: function of the array x (modified in place and restored), returning an array of the
    shape of dout. Returns grad with the shape of x:
        grad[i] = <f(x + h e_i) - f(x - h e_i), dout> / (2h)
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        grad[it.multi_index] = central_difference(f, x, it.multi_index, dout, h)
    return grad


def central_difference(f, x, i, dout, h):
    """<f(x + h e_i) - f(x - h e_i), dout> / (2h) for the index i of x (restored after)."""
    old = x[i]
    x[i] = old + h
    plus = np.sum(f(x) * dout)
    x[i] = old - h
    minus = np.sum(f(x) * dout)
    x[i] = old
    return (plus - minus) / (2 * h)


def sampled_numerical_gradient(f, x, dout, count, seed=0, h=1e-5):
    """Central differences at ``count`` random coordinates of x only (CS231n's
    ``grad_check_sparse``): where a full check would cost 2 * x.size calls of f.
    Returns (flat indices (count,), estimates (count,)); compare with
    ``analytic.flat[indices]``."""
    indices = np.random.default_rng(seed).choice(x.size, size=min(count, x.size),
                                                  replace=False)
    estimates = np.array([central_difference(f, x, i, dout, h)
                          for i in zip(*np.unravel_index(indices, x.shape))])
    return indices, estimates


def relative_error(a, b):
    """max |a - b| / max(|a|, |b|), elementwise max; 0 when both are zero."""
    scale = np.maximum(np.abs(a), np.abs(b)).max()
    return 0.0 if scale == 0 else float(np.abs(a - b).max() / scale)


# --------------------------------------------------------------------------------------
# The lines of python -m vggnp.gradcheck: the exercise a teacher gives, runnable in seconds.
# --------------------------------------------------------------------------------------

TOLERANCE = 1e-7  # float64 central differences agree to ~1e-9 on these small layers


def layer_errors(make, x, params=(), must_call=None):
    """Relative errors of a layer's analytic gradients against finite differences.

    make(*params) builds the layer; x its input (float64). The upstream gradient is
    random, so every output element matters. Returns {"dx": e, "dw": e, "db": e}.
    must_call: the name of a method of the layer that its backward must call (the code
    path the check is for); AssertionError if the backward does not.
    """
    rng = np.random.default_rng(0)
    layer = make(*params)
    out = layer.forward(x.copy())
    dout = rng.standard_normal(out.shape)
    calls = []
    if must_call:  # a spy on this one instance: counts the calls, returns what it returns
        method = getattr(layer, must_call)
        setattr(layer, must_call, lambda *a, **k: calls.append(1) or method(*a, **k))
    # keep dw, db when there are parameters; an activation function's backward takes no pass
    dx = layer.backward(dout, BackwardPass(param_grads=True)) if params else layer.backward(dout)
    if must_call and not calls:
        raise AssertionError(f"{type(layer).__name__}.backward did not call {must_call}: "
                             f"the check does not exercise the path it is for")
    errors = {"dx": relative_error(dx, numerical_gradient(lambda v: make(*params).forward(v),
                                                          x.copy(), dout))}
    for i, name in enumerate(("dw", "db")[:len(params)]):
        def forward_with(value, i=i):
            changed = list(params)
            changed[i] = value
            return make(*changed).forward(x)
        errors[name] = relative_error(getattr(layer, name),
                                      numerical_gradient(forward_with, params[i].copy(), dout))
    return errors


def layer_checks():
    """(name, errors) for every textbook layer kind (``vggnp.gradcheck`` adds the fast
    path's lines and a whole small VGG16)."""
    from .convnet_layers import Activation, AvgPool2D, BatchNorm, GlobalAvgPool2D, Rescaling
    from .activation_functions import ReLU, Sigmoid, Softmax
    from .layers import Conv2D, Dense, Flatten, MaxPool2D
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 7, 3))
    x[np.abs(x) < 1e-3] = 0.5  # away from ReLU's kink
    distinct = rng.permutation(2 * 6 * 7 * 3).reshape(2, 6, 7, 3) / 10.0  # no max ties
    w, b = rng.standard_normal((3, 3, 3, 4)), rng.standard_normal(4)
    w5 = rng.standard_normal((5, 5, 3, 4))
    dense_x, dw, db = rng.standard_normal((3, 8)), rng.standard_normal((8, 5)), \
        rng.standard_normal(5)
    c = 3
    yield "Conv2D 3x3 same, relu", layer_errors(
        lambda w_, b_: Conv2D("c", w_, b_, "relu"), x, (w, b))
    yield "Conv2D 5x5 stride 2 valid", layer_errors(
        lambda w_, b_: Conv2D("c", w_, b_, "linear", strides=(2, 2), padding="valid"),
        x, (w5, b))
    yield "Dense relu", layer_errors(lambda w_, b_: Dense("d", w_, b_, "relu"), dense_x, (dw, db))
    yield "Dense softmax", layer_errors(lambda w_, b_: Dense("d", w_, b_, "softmax"),
                                        dense_x, (dw, db))
    yield "ReLU", layer_errors(ReLU, x)
    yield "Softmax", layer_errors(Softmax, dense_x)
    yield "Sigmoid", layer_errors(Sigmoid, dense_x)
    yield "MaxPool2D 2x2", layer_errors(lambda: MaxPool2D("p"), distinct)
    yield "MaxPool2D 3x3 stride 2 same", layer_errors(
        lambda: MaxPool2D("p", (3, 3), (2, 2), "same"), distinct)
    yield "AvgPool2D 3x3 stride 2 same", layer_errors(
        lambda: AvgPool2D("p", (3, 3), (2, 2), "same"), x)
    yield "GlobalAvgPool2D", layer_errors(lambda: GlobalAvgPool2D("g"), x)
    yield "BatchNorm", layer_errors(lambda: BatchNorm(
        "bn", np.full(c, 1.5), np.full(c, 0.2), np.full(c, 0.1),
        np.full(c, 2.0)), x)
    yield "Rescaling", layer_errors(lambda: Rescaling("r", 1 / 255, -0.5), x)
    yield "Activation sigmoid", layer_errors(lambda: Activation("a", "sigmoid"), x)
    yield "Flatten", layer_errors(lambda: Flatten(), x)


def whole_net_errors(network_class=None):
    """d(logits . g)/d(input) of a small VGG16 (widths 4..8, 32x32 input), float64.
    network_class: the VGG16 class to check (default: the textbook ``nn.vgg16.VGG16``)."""
    from .random_init import random_vgg16_weights
    from .vgg16 import VGG16
    network_class = network_class or VGG16
    weights = random_vgg16_weights(widths=(4, 6, 8, 8, 8), dense=(5, 5, 4),
                                   input_size=(32, 32), seed=0)
    model = network_class({k: (w.astype(np.float64), b.astype(np.float64))
                           for k, (w, b) in weights.items()}, input_size=(32, 32))
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((1, 32, 32, 3)) * 60, rng.standard_normal((1, 4))
    model.forward(x)
    analytic = model.backward(g, start="predictions", from_logits=True)
    # 400 of the 3,072 input coordinates: each costs two forward passes of the network
    indices, numeric = sampled_numerical_gradient(model.logits, x.copy(), g, 400, h=1e-4)
    return {"dx": relative_error(analytic.flat[indices], numeric)}
