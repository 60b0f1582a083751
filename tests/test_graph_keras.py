"""#25's graphs against TensorFlow: a small Keras graph's Grad-CAM, graph files (.keras and
.h5) read and run, graphs that do not fit refused, nested models inlined, the Applications'
other layers, dilated and grouped convolutions."""

import numpy as np
import pytest

from keras_convnets import grad_cams_equal
from vggnp.nn.graph import IMAGE, Graph
from vggnp.nn.layers import Dense
from vggnp.nn.merge_layers import Add, Concatenate, Multiply


def keras_and_vggnp_graph(keras):
    """The same residual, squeeze-and-excitation, concatenating graph in Keras (random
    weights, its own initialisers) and as a vggnp Graph with Keras' weights; conv_a feeds
    both conv_b and the Concatenate, the image both conv_a and the Add."""
    from vggnp.nn.convnet_layers import Activation, GlobalAvgPool2D, Reshape
    from vggnp.nn.layers import Conv2D
    L = keras.layers
    i = keras.Input((12, 14, 3), name="image")
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(i)
    b = L.Conv2D(3, 3, padding="same", name="conv_b")(a)
    r = L.Activation("relu", name="relu")(L.Add(name="add")([b, i]))
    gate = L.Dense(3, activation="sigmoid", name="gate")(L.GlobalAveragePooling2D(name="gap")(r))
    e = L.Multiply(name="excite")([r, L.Reshape((1, 1, 3), name="gate_4d")(gate)])
    c = L.Concatenate(name="concat")([e, a])
    z = L.Dense(4, name="logits")(L.GlobalAveragePooling2D(name="gap2")(c))
    model = keras.Model(i, L.Activation("softmax", name="probs")(z), name="resnetish")
    rng = np.random.default_rng(7)  # the same weights whatever Keras' random state
    for layer in model.layers:
        layer.set_weights([rng.standard_normal(v.shape).astype(np.float32) / np.sqrt(
            np.prod(v.shape[:-1]) if v.ndim > 1 else 4) for v in layer.get_weights()])
    w = {layer.name: layer.get_weights() for layer in model.layers}
    nodes = [(Conv2D("conv_a", *w["conv_a"], "relu"), [IMAGE]),
             (Conv2D("conv_b", *w["conv_b"], "linear"), ["conv_a"]),
             (Add("add"), ["conv_b", IMAGE]), (Activation("relu", "relu"), ["add"]),
             (GlobalAvgPool2D("gap"), ["relu"]), (Dense("gate", *w["gate"], "sigmoid"), ["gap"]),
             (Reshape("gate_4d", (1, 1, 3)), ["gate"]), (Multiply("excite"), ["relu", "gate_4d"]),
             (Concatenate("concat"), ["excite", "conv_a"]), (GlobalAvgPool2D("gap2"), ["concat"]),
             (Dense("logits", *w["logits"], "linear"), ["gap2"]),
             (Activation("probs", "softmax"), ["logits"])]
    return model, Graph(nodes, (12, 14), 3)


def test_grad_cam_on_a_graph_equals_tensorflow(tf):
    """Grad-CAM at both conv layers of the graph, every class, equals TensorFlow's
    (GradientTape on the same Keras model): the graph's forward, its backward to a layer
    with two consumers, and the methods on a Graph."""
    keras = tf.keras
    model, graph = keras_and_vggnp_graph(keras)
    x = np.random.default_rng(0).standard_normal((3, 12, 14, 3)).astype(np.float32)
    assert np.abs(graph.predict(x) - model.predict(x, verbose=0)).max() <= 1e-5
    nonzero = grad_cams_equal(tf, model, graph, x, ("conv_a", "conv_b"), range(4), "logits")
    assert nonzero >= 6  # of the 8 (layer, class) pairs: real maps were compared


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_keras_graph_file_is_read_and_equals_tensorflow(tf, tmp_path, suffix):
    """--model with a Functional model that is not a chain (a skip connection, a
    squeeze-and-excitation gate, a concatenation), saved by Keras 3: vggnp's predictions
    and Grad-CAM equal TensorFlow's."""
    from vggnp import load_keras_model
    keras = tf.keras
    model, _ = keras_and_vggnp_graph(keras)
    model.save(tmp_path / f"graph{suffix}")
    ours = load_keras_model(tmp_path / f"graph{suffix}")
    assert type(ours).__name__ == "KerasGraph" and ours.conv_names == ["conv_a", "conv_b"]
    # the load's check pass ran on a replica: no layer holds a map of the zeros it ran
    assert [layer.name for layer in ours.layers if vars(layer).get("x") is not None] == []
    x = np.random.default_rng(1).standard_normal((2, 12, 14, 3)).astype(np.float32)
    assert np.abs(ours.predict(x) - model.predict(x, verbose=0)).max() <= 1e-5
    assert grad_cams_equal(tf, model, ours, x, ("conv_a",), (2,), "logits") == 1


def _layer_named(config, name):
    return next(layer for layer in config["config"]["layers"]
                if layer["config"]["name"] == name)


def _move_before(config, name, other):
    layers = config["config"]["layers"]
    moved = _layer_named(config, name)
    layers.remove(moved)
    layers.insert(layers.index(_layer_named(config, other)), moved)


@pytest.mark.parametrize("change, message", [
    (lambda c: _move_before(c, "conv_b", "conv_a"),
     r"layer conv_b takes \['conv_a'\]: not all are layers before it"),
    (lambda c: _layer_named(c, "concat")["config"].update(axis=1),
     "axis = 1: vggnp joins along the last axis"),
    (lambda c: _layer_named(c, "gate_4d")["config"].update(target_shape=[-1, 1, 3]),
     r"target_shape = \[-1, 1, 3\]: not a list of sizes"),
    (lambda c: c["config"].update(output_layers=[["gap2", 0, 0]]),
     "output_layers .*: vggnp explains a model with one output, its last layer probs"),
    (lambda c: c["config"].update(output_layers=[["gap2", 0, 0], ["logits", 0, 0]]),
     "one output, its last layer probs, and this one has 2 outputs"),
    (lambda c: _layer_named(c, "add").update(class_name="MyMerge"),
     "layer add is of class MyMerge, which vggnp does not support"),
])
def test_a_graph_that_does_not_fit_is_refused(tf, tmp_path, change, message):
    from test_model_files import rewrite_config
    from vggnp.keras_model import ModelError, load_keras_model
    model, _ = keras_and_vggnp_graph(tf.keras)
    model.save(tmp_path / "graph.keras")
    rewrite_config(tmp_path / "graph.keras", tmp_path / "bad.keras", change)
    with pytest.raises(ModelError, match=message):
        load_keras_model(tmp_path / "bad.keras")


def test_models_nested_in_a_graph_are_inlined(tf, tmp_path):
    """A Sequential inside a Functional inside the graph, its output taken by an Add with
    the image (the skip): read as one graph, equal to Keras; the same model called twice
    (shared weights) is refused."""
    from vggnp.keras_model import ModelError, load_keras_model
    keras, L = tf.keras, tf.keras.layers
    inner = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(3, 3, padding="same",
                                                              name="inner_conv")], name="inner")
    j = keras.Input((8, 8, 3))
    middle = keras.Model(j, L.Activation("relu", name="middle_relu")(inner(j)), name="middle")
    i = keras.Input((8, 8, 3), name="image")
    x = L.Add(name="add")([middle(i), i])
    out = L.Dense(2, activation="softmax", name="d")(L.GlobalAveragePooling2D(name="g")(x))
    model = keras.Model(i, out, name="nested")
    model.save(tmp_path / "nested.keras")
    ours = load_keras_model(tmp_path / "nested.keras")
    assert ours.names == ["inner_conv", "middle_relu", "add", "g", "d"]
    assert ours.inputs_of["add"] == ("middle_relu", "input")
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    assert np.abs(ours.predict(x) - model.predict(x, verbose=0)).max() <= 1e-6
    twice = keras.Model(i, L.Add(name="add2")([middle(i), middle(i)]), name="twice")
    twice.save(tmp_path / "twice.keras")
    with pytest.raises(ModelError, match="is called 2 times"):
        load_keras_model(tmp_path / "twice.keras")


def test_the_other_new_layers_equal_tensorflow(tf, tmp_path):
    """The layers of #25 no Keras Applications model uses, in one small graph, equal to
    TensorFlow: Normalization with constants, Cropping2D, LeakyReLU, PReLU, ELU, Identity,
    the activations gelu, tanh, selu, elu and silu, and GlobalMaxPooling2D: outputs and
    d logit / d input."""
    keras, L = tf.keras, tf.keras.layers
    i = keras.Input((12, 12, 3))
    x = L.Normalization(mean=[0.5, 0.25, 0.0], variance=[4.0, 1.0, 0.25])(i)
    x = L.Cropping2D(((1, 2), (0, 1)))(x)
    x = L.Conv2D(8, 3, activation="gelu")(x)
    branches = [L.LeakyReLU(0.2)(x), L.PReLU(shared_axes=[1, 2])(x), L.ELU(0.7)(x),
                L.Activation("tanh")(L.Identity()(x)), L.Activation("selu")(x),
                L.Conv2D(8, 1, activation="silu")(x), L.Conv2D(8, 1, activation="elu")(x)]
    x = L.Conv2D(6, 1, activation="relu", name="last_conv")(L.Concatenate()(branches))
    out = L.Dense(3, activation="softmax", name="predictions")(L.GlobalMaxPooling2D()(x))
    equals_keras(tf, keras.Model(i, out), tmp_path / "zoo.keras", 0.5, 1e-5, 1e-4, 1)


def equals_keras(tf, model, path, sd, output_tolerance, gradient_tolerance, c, keras=None):
    """Give ``model`` N(0, sd) weights, save it to ``path``, read it with vggnp: outputs
    within ``output_tolerance``, d logit_c / d input within ``gradient_tolerance`` of
    its largest value (the logit: the last layer, a Dense, before its activation).
    keras: the Keras that built it (default Keras 3; tf_keras for Keras 2)."""
    from vggnp.keras_model import load_keras_model
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, sd, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    model.save(path)
    ours = load_keras_model(path)
    x = rng.uniform(-1, 1, (2, *model.input_shape[1:])).astype(np.float32)
    assert np.abs(ours.predict(x) - model.predict(x, verbose=0)).max() <= output_tolerance
    image, dense = tf.constant(x), model.layers[-1]
    with tf.GradientTape() as tape:
        tape.watch(image)
        features = (keras or tf.keras).Model(model.inputs, dense.input)(image)
        score = (tf.matmul(features, dense.kernel) + dense.bias)[:, c]
    theirs = tape.gradient(score, image).numpy()
    ours.forward(x)
    mine = ours.backward(np.eye(dense.units, dtype=np.float32)[[c, c]], from_logits=True)
    assert np.abs(mine - theirs).max() <= gradient_tolerance * np.abs(theirs).max()


def test_dilated_and_grouped_convolutions_equal_tensorflow(tf, tmp_path):
    """Conv2D with dilation_rate (same and valid) and with groups, DepthwiseConv2D and
    SeparableConv2D with dilation_rate, in a chain saved by Keras 3: outputs and d logit /
    d input equal TensorFlow's."""
    keras, L = tf.keras, tf.keras.layers
    model = keras.Sequential([
        keras.Input((20, 18, 3)), L.Conv2D(8, 3, dilation_rate=2, padding="same",
                                           activation="relu"),
        L.Conv2D(8, (3, 2), dilation_rate=(1, 3), activation="relu"),
        L.Conv2D(12, 3, groups=4, strides=2, padding="same", activation="relu"),
        L.DepthwiseConv2D(3, dilation_rate=2, padding="same", activation="relu"),
        L.SeparableConv2D(12, 3, dilation_rate=(2, 1), padding="same", activation="relu"),
        L.Conv2D(6, 1, groups=2), L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")])
    equals_keras(tf, model, tmp_path / "sparse.keras", 0.4, 1e-6, 1e-5, 2)
