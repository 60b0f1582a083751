"""The gradient checks of the layers graphs add (issue #25): merge layers, the layers of
Keras Applications, the activation functions, and a whole graph whose gradients add
(lines of ``python -m vggnp.gradcheck``; the method is ``gradcheck.py``'s)."""

import numpy as np

from .gradcheck import layer_errors, numerical_gradient, relative_error


def merge_errors(make, xs):
    """Relative error of a merge layer's gradient w.r.t. each of its inputs xs (float64
    arrays) against finite differences: {"dx1": e, "dx2": e, ...}."""
    rng = np.random.default_rng(0)
    layer = make()
    dout = rng.standard_normal(layer.forward([x.copy() for x in xs]).shape)
    analytic = layer.backward(dout)
    errors = {}
    for i, x in enumerate(xs):
        def forward_with(value, i=i):
            return make().forward([value if j == i else other for j, other in enumerate(xs)])
        errors[f"dx{i + 1}"] = relative_error(analytic[i],
                                              numerical_gradient(forward_with, x.copy(), dout))
    return errors


def residual_graph(dtype=np.float64, seed=0):
    """A small graph with a skip connection and a squeeze-and-excitation gate, in float64:

        input -> conv_a (relu) -> conv_b -> add(conv_b, input) -> relu ->
          gap -> gate (Dense, sigmoid) -> reshape -> multiply(relu, gate) -> gap2 -> logits

    where the image feeds conv_a and the Add (its gradient adds), and relu feeds both the
    squeeze branch and the Multiply."""
    from .convnet_layers import Activation, GlobalAvgPool2D, Reshape
    from .graph import IMAGE, Graph
    from .layers import Conv2D, Dense
    from .merge_layers import Add, Multiply
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))).astype(dtype)
    c = 3
    nodes = [(Conv2D("conv_a", w(3, 3, c, c), w(c), "relu"), [IMAGE]),
             (Conv2D("conv_b", w(3, 3, c, c), w(c), "linear"), ["conv_a"]),
             (Add("add"), ["conv_b", IMAGE]),
             (Activation("relu", "relu"), ["add"]),
             (GlobalAvgPool2D("gap"), ["relu"]),
             (Dense("gate", w(c, c), w(c), "sigmoid"), ["gap"]),
             (Reshape("gate_4d", (1, 1, c)), ["gate"]),
             (Multiply("excite"), ["relu", "gate_4d"]),
             (GlobalAvgPool2D("gap2"), ["excite"]),
             (Dense("logits", w(c, 2), w(2), "linear"), ["gap2"])]
    return Graph(nodes, (5, 6), c)


def graph_checks():
    """(name, errors) of the merge layers and of a whole graph with a skip connection
    (the gradients of a tensor feeding two layers add), for ``python -m vggnp.gradcheck``."""
    from .merge_layers import Add, Average, Concatenate, Maximum, Multiply, Subtract
    rng = np.random.default_rng(3)
    a, b, c = (rng.standard_normal((2, 3, 4, 5)) for _ in range(3))
    gate = rng.standard_normal((2, 1, 1, 5))
    merges = [("Add of 3", Add, [a, b, c]), ("Subtract", Subtract, [a, b]),
              ("Average of 3", Average, [a, b, c]),
              ("Multiply, a broadcast gate", Multiply, [a, gate]),
              ("Maximum of 3", Maximum, [a, b, c]),
              ("Concatenate (channels)", Concatenate, [a, b[..., :2]])]
    for name, kind, xs in merges:  # the worst input's error: the table has one dx column
        yield name, {"dx": max(merge_errors(lambda: kind("m"), xs).values())}
    yield from application_layer_checks()
    model = residual_graph()
    x = rng.standard_normal((2, 5, 6, 3))
    x[np.abs(x) < 1e-3] = 0.5
    dout = rng.standard_normal(model.forward(x.copy()).shape)
    analytic = model.backward(dout)
    yield "Graph: skip + squeeze-excitation", {"dx": relative_error(
        analytic, numerical_gradient(lambda v: model.forward(v), x.copy(), dout))}


def application_layer_checks():
    """(name, errors) of the layers Keras Applications add (``graph_layers.py``)."""
    from .graph_layers import DepthwiseConv2D, ReLU, SeparableConv2D, ZeroPadding2D
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 7, 3))
    x[np.abs(x - 0.5) < 1e-2] = 0.2  # away from the ReLU's threshold below
    w, w2 = rng.standard_normal((3, 3, 3, 1)), rng.standard_normal((3, 3, 3, 2))
    yield "DepthwiseConv2D 3x3 same, relu", layer_errors(
        lambda w_, b_: DepthwiseConv2D("d", w_, b_, "relu"), x, (w, rng.standard_normal(3)))
    yield "DepthwiseConv2D x2, stride 2 valid", layer_errors(
        lambda w_, b_: DepthwiseConv2D("d", w_, b_, "linear", (2, 2), "valid"), x,
        (w2, rng.standard_normal(6)))
    wd = rng.standard_normal((3, 3, 3, 2))
    yield "SeparableConv2D x2 -> 4, stride 2 same", layer_errors(
        lambda w_, b_: SeparableConv2D("s", wd, w_, b_, "relu", (2, 2), "same"), x,
        (rng.standard_normal((1, 1, 6, 4)), rng.standard_normal(4)))
    yield "ZeroPadding2D ((0, 1), (2, 1))", layer_errors(
        lambda: ZeroPadding2D("z", ((0, 1), (2, 1))), x)
    yield "ReLU max 1, slope 0.1, threshold 0.5", layer_errors(
        lambda: ReLU("r", 1.0, 0.1, 0.5), x * 0.8)
    yield "ReLU max 6 (ReLU6)", layer_errors(lambda: ReLU("r", 6.0), x * 4 + 0.01)
    yield from more_layer_checks(rng, x)
    yield from activation_checks()


def more_layer_checks(rng, x):
    """Cropping, PReLU (dx and d alpha), the global max pool, the keepdims average pool,
    a per-channel Rescaling and Keras 3's x * c."""
    from .convnet_layers import GlobalAvgPool2D, GlobalMaxPool2D, Rescaling
    from .activation_layers import ELU, PReLU
    from .graph_layers import ConstantOp, Cropping2D
    yield "Cropping2D ((1, 0), (2, 1))", layer_errors(lambda: Cropping2D("c", ((1, 0), (2, 1))), x)
    yield "PReLU, alpha shared over H, W", layer_errors(
        lambda a: PReLU("p", a), x, (rng.uniform(0.1, 0.5, (1, 1, 3)),))
    yield "ELU alpha 0.7", layer_errors(lambda: ELU("e", 0.7), x + 0.01)
    yield "GlobalMaxPooling2D", layer_errors(lambda: GlobalMaxPool2D("g"), x)
    yield "GlobalAveragePooling2D keepdims", layer_errors(lambda: GlobalAvgPool2D("g", True), x)
    yield "Rescaling per channel", layer_errors(
        lambda: Rescaling("r", np.array([0.5, 2.0, -1.0]), np.array([0.1, 0.0, -0.2])), x)
    yield "x * c (Keras 3 operation)", layer_errors(lambda: ConstantOp("m", "multiply", 1 / 6), x)
    from .sparse_kernels import DilatedDepthwiseConv2D, SparseKernelConv2D
    x4 = rng.standard_normal((2, 7, 8, 4))
    yield "Conv2D 3x3 dilation 2, same", layer_errors(
        lambda w_, b_: SparseKernelConv2D("c", w_, b_, "relu", dilation=(2, 2)), x4,
        (rng.standard_normal((3, 3, 4, 3)), rng.standard_normal(3)))
    yield "DepthwiseConv2D 3x3 dilated (2, 1)", layer_errors(
        lambda w_, b_: DilatedDepthwiseConv2D("d", w_, b_, "relu", padding="valid",
                                              dilation=(2, 1)), x4,
        (rng.standard_normal((3, 3, 4, 1)), rng.standard_normal(4)))
    yield "Conv2D 3x3 2 groups, stride 2 valid", layer_errors(
        lambda w_, b_: SparseKernelConv2D("c", w_, b_, "linear", (2, 2), "valid", groups=2),
        x4, (rng.standard_normal((3, 3, 2, 6)), rng.standard_normal(6)))


def activation_checks():
    """(name, errors) of each activation function Keras models use, on inputs across
    their range and away from their kinks (relu6 at 0 and 6, the hard ones at +-3, Keras
    2's hard_sigmoid at +-2.5)."""
    from .activation_functions import ACTIVATIONS
    x = np.linspace(-7.3, 7.1, 2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    kinks = np.array([-3, -2.5, 0, 2.5, 3, 6])
    x[np.min(np.abs(x[..., None] - kinks), axis=-1) < 1e-3] += 0.05
    kinds = {name: kind for name, kind in ACTIVATIONS.items()
             if name not in ("relu", "softmax", "sigmoid", "linear", "silu", "hard_swish")}
    for name, kind in kinds.items():
        yield f"activation {name}", layer_errors(kind, x)
