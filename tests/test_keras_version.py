"""hard_sigmoid, whose meaning Keras changed: clip(0.2 x + 0.5) in Keras 2, clip(x / 6 +
0.5) in Keras 3. vggnp reads which Keras saved the file (metadata.json of a .keras zip,
the keras_version attribute of an .h5) and computes that one; a file that does not say
is refused, as is one that names vggnp's own internal names."""

import json
import zipfile

import pytest

from test_graph_keras import equals_keras
from vggnp.files.hdf5 import ModelError
from vggnp.files.keras_version import major_version, version_in_metadata, version_text
from vggnp.keras_model import load_keras_model


def hard_sigmoid_model(keras):
    """A small convnet with hard_sigmoid as a Conv2D's activation and as a layer."""
    L = keras.layers
    i = keras.Input((10, 10, 3))
    x = L.Conv2D(6, 3, activation="hard_sigmoid")(i)
    x = L.Activation("hard_sigmoid")(L.Conv2D(6, 1)(x))
    x = L.Conv2D(4, 1, activation="relu", name="last_conv")(x)
    out = L.Dense(3, activation="softmax", name="predictions")(L.GlobalAveragePooling2D()(x))
    return keras.Model(i, out)


@pytest.mark.parametrize("maker, suffix", [("keras", "keras"), ("keras", "h5"),
                                           ("tf_keras", "h5"), ("tf_keras", "keras")])
def test_hard_sigmoid_is_the_one_of_the_keras_that_saved_the_file(tf, tmp_path, maker,
                                                                   suffix):
    """Outputs and d logit / d input equal the saving Keras' own (weights N(0, 1): the
    pre-activations reach past both clips, +-2.5 and +-3)."""
    import tf_keras
    keras = tf.keras if maker == "keras" else tf_keras
    path = tmp_path / f"m.{suffix}"
    equals_keras(tf, hard_sigmoid_model(keras), path, 1.0, 1e-5, 1e-4, 1, keras=keras)
    expected = "hard_sigmoid (Keras 3)" if maker == "keras" else "hard_sigmoid (Keras 2)"
    assert expected in {layer.activation_name for layer in load_keras_model(path).layers}


def rewritten(source, target, edit):
    """A copy of the .keras zip ``source`` with ``edit(name, bytes) -> bytes`` applied to
    each member."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, edit(info.filename, old.read(info)))
    return target


def test_a_file_that_does_not_say_which_keras_is_refused(tf, tmp_path):
    tf.keras.backend.clear_session()
    hard_sigmoid_model(tf.keras).save(tmp_path / "m.keras")
    silent = rewritten(tmp_path / "m.keras", tmp_path / "silent.keras",
                       lambda name, data: b"{}" if name == "metadata.json" else data)
    with pytest.raises(ModelError, match=r"silent.keras: layer conv2d\w*: activation = "
                                         r"hard_sigmoid: .*does not say which Keras"):
        load_keras_model(silent)
    future = rewritten(tmp_path / "m.keras", tmp_path / "future.keras", lambda name, data: (
        b'{"keras_version": "4.0.0"}' if name == "metadata.json" else data))
    with pytest.raises(ModelError, match=r"keras_version is '4.0.0', and vggnp knows Keras 2"):
        load_keras_model(future)


def test_a_custom_function_named_hard_sigmoid_is_refused(tf, tmp_path):
    """Keras writes its own functions with module keras.activations; a function of
    another module with the same name is not Keras' hard_sigmoid."""
    tf.keras.backend.clear_session()
    hard_sigmoid_model(tf.keras).save(tmp_path / "m.keras")

    def custom(name, data):
        if name != "config.json":
            return data
        return data.replace(b'"activation": "hard_sigmoid"', b'"activation": {"module": '
                            b'"my_package.activations", "class_name": "function", "config": '
                            b'"hard_sigmoid", "registered_name": "hard_sigmoid"}', 1)
    with pytest.raises(ModelError, match=r"activation = \{'module': 'my_package"):
        load_keras_model(rewritten(tmp_path / "m.keras", tmp_path / "custom.keras", custom))


def test_vggnp_s_own_names_in_a_file_are_refused(tf, tmp_path):
    tf.keras.backend.clear_session()
    hard_sigmoid_model(tf.keras).save(tmp_path / "m.keras")

    def forged(name, data):
        if name != "config.json":
            return data
        return json.dumps(json.loads(data)).replace(
            '"hard_sigmoid"', '"hard_sigmoid (Keras 2)"').encode()
    with pytest.raises(ModelError, match=r"activation = hard_sigmoid \(Keras 2\): a name "
                                         r"of vggnp's own"):
        load_keras_model(rewritten(tmp_path / "m.keras", tmp_path / "forged.keras", forged))


def test_versions_are_read_from_what_the_files_hold(tmp_path):
    """Leniently: a version that is not a short text is None (hard_sigmoid is then refused;
    a file without it is read as before)."""
    assert [version_text(v) for v in ("3.15.1", b"2.21.0", 3, b"\xff", "9" * 65, None)] \
        == ["3.15.1", "2.21.0", "<the int 3>", "<bytes that are not UTF-8 text>",
            "<a text of 65 characters>", None]
    with zipfile.ZipFile(tmp_path / "m.zip", "w") as archive:
        for name, raw in [("ok", b'{"keras_version": "3.15.1", "date_saved": "x"}'),
                          ("bad", b"\xff"), ("list", b"[]"), ("number", b'{"keras_version": 3}'),
                          ("deep", b"[" * 100000), ("big", b" " * (64 << 10) + b"{}")]:
            archive.writestr(name, raw)
    with zipfile.ZipFile(tmp_path / "m.zip") as archive:
        found = {info.filename: version_in_metadata(archive, info)
                 for info in archive.infolist()}
    assert found == {"ok": "3.15.1", "bad": None, "list": None, "number": "<the int 3>",
                     "deep": None, "big": None}
    assert [major_version(v) for v in ("2.21.0", "3.15.1", "3", "1.2.2", "30.1", None, "")] \
        == [2, 3, 3, None, None, None, None]
    assert major_version("2.4.0-tf") == 2
