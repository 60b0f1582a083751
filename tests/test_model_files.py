"""The user's own Keras convnets (issue #6): read from every model.save format, equal to
TensorFlow in predictions and Grad-CAM maps; refusals of what is not supported."""

import json
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image

from reference_check import relative_to_max
from keras_convnets import INPUT_SHAPES, build, tf_grad_cam
from vggnp import grad_cam
from vggnp.keras_model import ModelError, load_keras_model
from vggnp.files.preprocess import preprocess
from vggnp.nn.trace import parameter_count

FORMATS = ["keras3.keras", "keras3.h5", "keras2.h5"]
KINDS = list(INPUT_SHAPES)


@pytest.fixture(scope="module")
def saved_models(tf, tmp_path_factory):
    """{kind: (folder, the Keras 3 model)} with the model saved in each format."""
    import keras
    import tf_keras

    folder = tmp_path_factory.mktemp("convnets")
    models = {}
    # Keras names unnamed layers from a counter per process (conv2d, conv2d_1...); the
    # tests compare a Keras 2 file's layers with the Keras 3 model's by name, so both
    # counters start afresh here, whatever models other tests built before.
    keras.backend.clear_session()
    tf_keras.backend.clear_session()
    for kind in KINDS:
        model = build(keras, kind)
        model.save(folder / f"{kind}_keras3.keras")
        model.save(folder / f"{kind}_keras3.h5")
        old = build(tf_keras, kind)  # same random weights (same seed)
        old.save(str(folder / f"{kind}_keras2.h5"))
        models[kind] = model
    return folder, models


def photos_for(model, photos):
    """The example photos at the model's input size, preprocessed as it was trained."""
    h, w = model.input_size
    rgb = np.stack([np.asarray(Image.open(p).convert("RGB").resize((w, h), Image.NEAREST))
                    for p in photos])
    return preprocess(rgb, model.default_preprocess)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", KINDS)
def test_predictions_and_grad_cam_equal_tensorflow(tf, saved_models, photos, kind, fmt):
    folder, keras_model = saved_models
    model = load_keras_model(folder / f"{kind}_{fmt}")
    assert model.input_size == INPUT_SHAPES[kind][:2]
    x = photos_for(model, photos)
    classes = [0, 1] if model.outputs == 1 else [0, 3]
    for layer in dict.fromkeys([model.last_conv, model.conv_names[-2]]):
        peaks = []
        for c in classes:
            outputs, tf_maps = tf_grad_cam(tf, keras_model[kind], x, layer, c)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an empty map, as TF's
                maps, chosen = grad_cam(model, x, layer=layer, class_index=c)
            assert (chosen == c).all()
            assert relative_to_max(model.predict(x), outputs) <= 1e-4
            assert np.abs(maps - tf_maps).max() <= 1e-4, (layer, c)
            peaks.append(tf_maps.max(axis=(1, 2)))
        assert np.all(np.max(peaks, axis=0) > 0)  # each image has a real map to compare


def test_models_say_what_they_are(saved_models):
    folder, keras_models = saved_models
    for kind, keras_model in keras_models.items():  # the zoo has a use_bias=False conv
        model = load_keras_model(folder / f"{kind}_keras3.keras")
        assert parameter_count(model) == keras_model.count_params(), kind
    head = load_keras_model(folder / "vgg16_head_keras3.keras")
    assert head.has_vgg16_base and head.default_preprocess == "vgg16"
    assert head.last_conv == "block5_conv3" and head.output_activation == "sigmoid"
    scratch = load_keras_model(folder / "scratch_keras2.h5")
    assert scratch.default_preprocess == "none" and scratch.outputs == 1
    zoo = load_keras_model(folder / "zoo_keras3.h5")
    assert zoo.outputs == 5 and zoo.output_activation == "softmax"


def test_two_maps_for_a_sigmoid_classifier(saved_models, photos):
    """Class 1 backpropagates +z, class 0 -z: the maps differ, and the scores are [1-p, p]."""
    folder, _ = saved_models
    model = load_keras_model(folder / "scratch_keras3.keras")
    x = photos_for(model, photos)
    one, two = {}, {}
    grad_cam(model, x, class_index=0, details=one)
    grad_cam(model, x, class_index=1, details=two)
    assert np.allclose(one["gradients"], -two["gradients"])
    assert np.allclose(one["probs"].sum(axis=1), 1) and one["probs"].shape == (2, 2)


def rewrite_config(src, dst, change):
    """Copy a .keras file with its config.json changed by change(config)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "config.json":
                config = json.loads(data)
                change(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)


def _set_layer(index, **fields):
    def change(config):
        config["config"]["layers"][index].update(fields)
    return change


@pytest.mark.parametrize("change, message", [
    (_set_layer(2, class_name="Lambda"), "Lambda layer .Python code."),
    (_set_layer(2, class_name="MyCustomConv"), "MyCustomConv, which vggnp does not support"),
    (lambda c: c["config"]["layers"][2]["config"].update(activation="mish"),
     "activation = mish"),
    (lambda c: c["config"]["layers"][2]["config"].update(data_format="channels_first"),
     "data_format = channels_first: vggnp needs channels-last; rebuild the model with "
     "data_format='channels_last'"),  # Keras' own option, not damage (a new user's trial)
    (lambda c: c["config"]["layers"][2]["config"].update(data_format="sideways"),
     "data_format is sideways; the file is damaged"),
    (lambda c: c["config"]["layers"][2]["config"].update(filters=7),
     r"weight 0 has shape \(3, 3, 3, 32\); its config and input \(150, 150, 3\) say "
     r"\(3, 3, 3, 7\)"),
])
def test_unsupported_models_are_refused(saved_models, tmp_path, change, message):
    folder, _ = saved_models
    bad = tmp_path / "bad.keras"
    rewrite_config(folder / "scratch_keras3.keras", bad, change)
    with pytest.raises(ModelError, match=message):
        load_keras_model(bad)


def test_weights_only_file_is_not_a_model(saved_models, tmp_path):
    folder, models = saved_models
    models["zoo"].save_weights(tmp_path / "zoo.weights.h5")
    with pytest.raises(ModelError, match="weights only, no architecture"):
        load_keras_model(tmp_path / "zoo.weights.h5")


def test_a_layer_that_does_not_fit_its_inputs_is_named():
    """The last check of load_keras_model runs zeros through the model (chain or graph):
    a layer that does not accept its inputs is refused by name, in one line."""
    from vggnp.models.keras_convnet import KerasConvNet, _check_runs
    from vggnp.nn.layers import Conv2D, Dense, Flatten
    rng = np.random.default_rng(0)
    layers = [Conv2D("conv", rng.standard_normal((3, 3, 3, 4)).astype(np.float32)),
              Flatten("flatten"),
              Dense("predictions", rng.standard_normal((5, 2)).astype(np.float32),
                    activation="softmax")]
    model = KerasConvNet(layers, (4, 4, 3), {"conv": (4, 4, 4), "flatten": (64,),
                                             "predictions": (2,)})
    with pytest.raises(ModelError, match=r"^m.keras: layer predictions does not fit its "
                                         r"inputs \(after flatten, of output \(1, 64\)\): "):
        _check_runs(model, "m.keras", np.float32)
    from vggnp.models.keras_convnet import KerasGraph
    from vggnp.nn.graph import IMAGE
    from vggnp.nn.merge_layers import Add
    conv = Conv2D("conv", rng.standard_normal((3, 3, 3, 4)).astype(np.float32))
    graph = KerasGraph([(conv, [IMAGE]), (Add("add"), ["conv", IMAGE]),
                        (Flatten("flatten"), ["add"]), (layers[2], ["flatten"])],
                       (4, 4, 3), {"conv": (4, 4, 4), "add": (4, 4, 4), "flatten": (64,),
                                   "predictions": (2,)})
    with pytest.raises(ModelError, match=r"^m.keras: layer add does not fit its inputs "
                                         r"\(after conv, of output \(1, 4, 4, 4\)\): "):
        _check_runs(graph, "m.keras", np.float32)
