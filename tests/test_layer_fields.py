"""Every field of a layer config is implemented or refused (issue #27.2): mutations of the
demo model's config, and the two cases seen against Keras."""

import numpy as np
import pytest

from helpers import MODEL_PATH
from test_model_files import rewrite_config
from fuzz_config import check_config_mutants
from vggnp.files.layer_fields import DEFAULT_ONLY, NO_EFFECT, USED
from vggnp.keras_model import ModelError, load_keras_model

CONV = 2  # the demo model's first Conv2D (0: InputLayer, 1: Rescaling)


def _set(index, **fields):
    def change(config):
        config["config"]["layers"][index]["config"].update(fields)
    return change


@pytest.mark.parametrize("index, fields, message", [
    (CONV, {"dilation_rate": [0, 2]}, r"conv2d_6: dilation_rate is \[0, 2\], not one or two"),
    (CONV, {"dilation_rate": None}, "conv2d_6: dilation_rate is None, not one or two"),  # review
    (CONV, {"dilation_rate": 2, "strides": 2}, "conv2d_6: a dilation rate and strides both"),
    (CONV, {"groups": 3}, "conv2d_6: 3 groups do not divide its 3 input channels and 16"),
    (CONV, {"strides": None}, "conv2d_6: strides is None, not one or two integers"),  # fuzz
    (CONV, {"strides": [2 ** 63, 1]}, r"conv2d_6: strides is \[9223372036854775808, 1\], "
                                      r"not one or two integers in 1\.\.1048576"),  # fuzz
    (CONV, {"kernel_size": 1 << 21}, r"kernel_size|window is 2097152, not one or two"),
    (CONV, {"lora_rank": 4}, "conv2d_6: lora_rank = 4"),
    (CONV, {"future_option": True}, "conv2d_6: future_option = True: a field of Conv2D that "
                                    "vggnp does not know"),
    (CONV, {"dtype": "mixed_float16"}, "dtype = mixed_float16: vggnp computes in float32"),
    (CONV, {"dtype": {"config": "x"}}, "dtype = x: vggnp computes in float32"),
    (CONV, {"activation": {"module": "keras.layers", "class_name": "ReLU",
                           "config": {"alpha": 1}}}, "activation ReLU's alpha = 1"),
    (CONV, {"activation": {"module": "keras.layers", "class_name": "ReLU",
                           "config": {"max_value": 6.0}}},
     "activation ReLU's max_value = 6.0"),
    (CONV, {"activation": {"class_name": "LeakyReLU", "config": {}}}, "activation = "),
    (11, {"quantization_config": {"mode": "int8"}}, "dense_1: quantization_config"),
    (10, {"keepdims": True}, r"a Dense layer on a \(1, 1, 64\) input"),
    (10, {"keepdims": "yes"}, "keepdims is yes, not true or false"),
    (0, {"sparse": True, "padding_mode": "x"}, "input_layer_1: padding_mode = x"),
])
def test_a_field_vggnp_does_not_implement_is_refused(tmp_path, index, fields, message):
    bad = tmp_path / "bad.keras"
    rewrite_config(MODEL_PATH, bad, _set(index, **fields))
    with pytest.raises(ModelError, match=message):
        load_keras_model(bad)


@pytest.mark.parametrize("fields", [
    {"kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.1}}, "trainable": False},
    {"activation": {"module": "keras.layers", "class_name": "ReLU",
                    "config": {"name": "re_lu", "max_value": None, "negative_slope": 0.0,
                               "threshold": 0.0}}},
    {"activation": {"module": "keras.activations", "class_name": "function",
                    "config": "relu"}, "dilation_rate": 1},
])
def test_fields_without_effect_or_at_their_default_are_read(tmp_path, fields):
    same = tmp_path / "same.keras"
    rewrite_config(MODEL_PATH, same, _set(CONV, **fields))
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    model, reference = load_keras_model(same), load_keras_model(MODEL_PATH)
    assert np.array_equal(model.predict(x), reference.predict(x))


def test_the_three_kinds_of_field_are_disjoint():
    for kind, fields in USED.items():
        assert not fields & set(NO_EFFECT), kind
        assert not fields & set(DEFAULT_ONLY.get(kind, {})), kind


def test_inputlayer_shape_wins_over_build_input_shape(tf, tmp_path):
    """Keras runs a Sequential at its InputLayer's shape when build_input_shape differs.
    (Every Keras name given: an automatic one would shift the names other tests' models
    get, and test_model_files matches layers by name.)"""
    keras = tf.keras
    model = keras.Sequential([keras.Input((32, 32, 3), name="i"), keras.layers.Conv2D(
        4, 3, name="c"), keras.layers.GlobalAveragePooling2D(name="g"),
        keras.layers.Dense(3, name="d")], name="odd")
    model.save(tmp_path / "m.keras")
    odd = tmp_path / "odd.keras"
    rewrite_config(tmp_path / "m.keras", odd,
                   lambda c: c["config"].update(build_input_shape=[None, 64, 64, 3]))
    ours = load_keras_model(odd)
    assert ours.input_size == (32, 32)
    x = np.random.default_rng(1).standard_normal((2, 32, 32, 3)).astype(np.float32)
    theirs = keras.models.load_model(odd).predict(x, verbose=0)
    assert np.abs(ours.predict(x) - theirs).max() <= 1e-5


def test_relu_with_options_as_activation_is_refused_as_keras_would_not_run_it(tf, tmp_path):
    keras, layers = tf.keras, tf.keras.layers
    relu = layers.ReLU(max_value=0.05, negative_slope=0.3, name="r")
    model = keras.Sequential([keras.Input((16, 16, 3), name="i"), layers.Conv2D(
        8, 3, padding="same", activation=relu, name="c"), layers.GlobalAveragePooling2D(
        name="g"), layers.Dense(3, activation="softmax", name="d")], name="relu")
    model.save(tmp_path / "relu.keras")
    with pytest.raises(ModelError, match="activation ReLU's max_value = 0.05"):
        load_keras_model(tmp_path / "relu.keras")


def test_config_mutants_equal_keras_or_are_refused(tf, tmp_path):
    """The fuzz family of #27.2 (tests/fuzz_config.py): 60 one-field mutants of the demo
    model, each loaded by Keras and by vggnp; vggnp refuses, or equals Keras."""
    found = check_config_mutants(tf.keras, 60, seed=27, folder=str(tmp_path))
    print(found)
    assert found["different"] == [] and found["accepted alone"] == [], found
    assert found["equal"] >= 10 and found["refused"] >= 5  # the mutants reach both sides


def test_model_config_fields_are_read_or_refused(tmp_path):
    bad = tmp_path / "bad.keras"
    rewrite_config(MODEL_PATH, bad, lambda c: c["config"].update(future_field=1))
    with pytest.raises(ModelError, match="future_field = 1: a field of a model config"):
        load_keras_model(bad)
    rewrite_config(MODEL_PATH, bad, lambda c: c["config"].update(dtype="mixed_float16"))
    with pytest.raises(ModelError, match="dtype = mixed_float16"):
        load_keras_model(bad)


def test_an_output_taken_from_a_middle_layer_is_refused(tf, tmp_path):
    """A Functional model whose output is not the end of its chain: Keras outputs that
    layer, vggnp would run the chain to its end, so it refuses."""
    keras, layers = tf.keras, tf.keras.layers
    i = keras.Input((16, 16, 3), name="i")
    x = layers.Conv2D(4, 3, name="c")(i)
    o = layers.Dense(3, name="d")(layers.GlobalAveragePooling2D(name="g")(x))
    keras.Model(i, o, name="f").save(tmp_path / "f.keras")
    assert load_keras_model(tmp_path / "f.keras").outputs == 3
    rewrite_config(tmp_path / "f.keras", tmp_path / "middle.keras",
                   lambda c: c["config"].update(output_layers=["g", 0, 0]))
    with pytest.raises(ModelError, match=r"output_layers = \[\['g', 0, 0\]\]: vggnp explains "
                                         "a model with one output, its last layer d;"):
        load_keras_model(tmp_path / "middle.keras")


def test_two_layers_of_one_name_are_refused(tmp_path):
    """Found by the fuzz harness (a renamed layer): Keras refuses it; vggnp finds layers
    and weights by name, so it refuses too, rather than a KeyError."""
    bad = tmp_path / "bad.keras"
    rewrite_config(MODEL_PATH, bad, _set(5, name="conv2d_7"))
    with pytest.raises(ModelError, match="two layers named conv2d_7"):
        load_keras_model(bad)
