"""#25: a transfer-learning classifier -- a Keras Applications base nested as one layer
inside a new model with a new head -- read by vggnp as one graph (the base's layers
inlined) and equal to TensorFlow: predictions and Grad-CAM inside the base."""

from pathlib import Path

import numpy as np
import pytest

from helpers import LABELS_PATH, MODEL_PATH
from test_keras_applications import realistic_weights
from vggnp import grad_cam, load_keras_model


def classifier(keras, kind, sigmoid=False):
    """MobileNetV2 (alpha 0.35, 64x64) as ``base``, then GlobalAveragePooling2D -> Dropout
    -> Dense(3, softmax) or Dense(1, sigmoid); ``kind``: Functional (the base called on
    an Input, as Keras' transfer-learning guide writes it) or Sequential."""
    L = keras.layers
    base = keras.applications.MobileNetV2(weights=None, include_top=False, alpha=0.35,
                                          input_shape=(64, 64, 3))
    head = [L.GlobalAveragePooling2D(), L.Dropout(0.2),
            L.Dense(1, activation="sigmoid") if sigmoid else L.Dense(3, activation="softmax")]
    if kind == "Sequential":
        model = keras.Sequential([keras.Input((64, 64, 3)), base, *head])
    else:
        inputs = keras.Input((64, 64, 3))
        x = base(inputs, training=False)
        for layer in head:
            x = layer(x)
        model = keras.Model(inputs, x)
    realistic_weights(keras, model)
    return model, base


def tf_nested_grad_cam(tf, keras, model, base, x, layer, class_index):
    """Grad-CAM by GradientTape at ``layer`` inside ``base``: the score is the logit of the
    last Dense (for one sigmoid unit, +z for class 1, -z for class 0)."""
    probe = keras.Model(base.inputs, [base.get_layer(layer).output, base.output])
    head = [l for l in model.layers if l is not base and type(l).__name__ != "InputLayer"]
    with tf.GradientTape() as tape:
        conv, a = probe(tf.constant(x))
        for l in head[:-1]:
            a = l(a, training=False)
        logits = tf.matmul(a, head[-1].kernel) + head[-1].bias
        score = (logits[:, 0] * (1.0 if class_index == 1 else -1.0) if logits.shape[1] == 1
                 else logits[:, class_index])
    weights = tf.reduce_mean(tape.gradient(score, conv), axis=(1, 2))
    cam = tf.nn.relu(tf.einsum("nhwc,nc->nhw", conv, weights)).numpy()
    return cam / np.maximum(cam.max(axis=(1, 2), keepdims=True), 1e-30)


@pytest.mark.parametrize("version, kind, sigmoid, suffix", [
    ("keras", "Functional", False, ".keras"), ("keras", "Sequential", True, ".keras"),
    ("keras", "Functional", True, ".h5"), ("keras", "Sequential", False, ".h5"),
    ("tf_keras", "Functional", False, ".h5"), ("tf_keras", "Sequential", True, ".keras")])
def test_a_classifier_on_a_nested_base_equals_tensorflow(tf, tmp_path, version, kind, sigmoid,
                                                         suffix):
    """Keras 3 and Keras 2 (tf_keras), .keras and .h5, softmax and sigmoid heads."""
    keras = tf.keras
    if version == "tf_keras":
        import tf_keras as keras
        keras.backend.clear_session()
    model, base = classifier(keras, kind, sigmoid)
    model.save(tmp_path / f"clf{suffix}")
    ours = load_keras_model(tmp_path / f"clf{suffix}")
    assert type(ours).__name__ == "KerasGraph" and ours.last_conv == "Conv_1"
    assert ours.default_layer == "out_relu"  # the base's output, before the new head
    assert ours.names[-3:] == [l.name for l in model.layers[-3:]]
    x = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    theirs = model.predict(x, verbose=0)
    assert np.abs(ours.predict(x) - theirs).max() <= 1e-5
    nonzero = 0
    for layer in ("out_relu", "Conv_1", "block_13_expand_relu", "block_6_project"):
        for c in range(2 if sigmoid else 3):
            cam = tf_nested_grad_cam(tf, keras, model, base, x, layer, c)
            maps, _ = grad_cam(ours, x, layer=layer, class_index=c)
            assert np.abs(maps - cam).max() <= 1e-4, (layer, c)
            nonzero += cam.max() > 0
    assert nonzero >= 3


def test_a_trained_classifier_explained_from_the_command_line(tf, tmp_path):
    """A new user's run: a MobileNetV2 classifier trained for a few steps on generated
    images, saved, explained by ``python -m vggnp.cam photo.jpg --model clf.keras
    --preprocess tf``; its map equals TensorFlow's Grad-CAM of the same input (Keras'
    load_img and mobilenet_v2.preprocess_input), and without --preprocess vggnp takes tf
    itself (the base is a MobileNetV2)."""
    from helpers import done_images, run_cam
    from vggnp.files.preprocess import load_img
    keras = tf.keras
    keras.backend.clear_session()
    model, base = classifier(keras, "Functional")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(3)
    images = rng.uniform(-1, 1, (12, 64, 64, 3)).astype(np.float32)
    model.fit(images, rng.integers(0, 3, 12), epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "clf.keras")
    photo = str(Path(__file__).parent.parent / "examples" / "coffee.jpg")
    x = keras.applications.mobilenet_v2.preprocess_input(
        np.asarray(load_img(photo, (64, 64)), np.float32)[None])
    top = int(model.predict(x, verbose=0).argmax())
    theirs = tf_nested_grad_cam(tf, keras, model, base, x, "out_relu", top)[0]
    for options in (["--preprocess", "tf"], []):
        out = tmp_path / f"out{len(options)}"
        result = run_cam(photo, "--model", str(tmp_path / "clf.keras"), *options, "--json",
                         "--save-heatmap", "--out", str(out))
        assert result.returncode == 0, result.stderr
        (record,) = done_images(result.stdout)
        assert record["class"]["index"] == top and record["layer"] == "out_relu"
        assert record["preprocess"] == "tf"  # said, chosen or given
        assert np.abs(np.load(record["outputs"]["heatmap"]) - theirs).max() <= 1e-4


def test_preprocess_modes_equal_keras_and_each_base_gets_its_own(tf, tmp_path):
    """--preprocess caffe, tf and torch equal Keras' preprocess_input of the models that
    use them; the default mode of a saved Keras Applications model is its own."""
    from vggnp.files.preprocess import preprocess
    from vggnp.models.keras_preprocess import application_mode
    A = tf.keras.applications
    rgb = np.random.default_rng(0).uniform(0, 255, (2, 5, 6, 3)).astype(np.float32)
    for mode, module in (("caffe", A.resnet50), ("vgg16", A.vgg16), ("tf", A.mobilenet_v2),
                         ("tf", A.xception), ("torch", A.densenet)):
        assert np.abs(preprocess(rgb, mode) - module.preprocess_input(rgb.copy())).max() \
            <= 1e-5, mode
    names = {A.ResNet50: "caffe", A.ResNet50V2: "tf", A.MobileNet: "tf", A.MobileNetV2: "tf",
             A.Xception: "tf", A.InceptionV3: "tf", A.DenseNet121: "torch", A.VGG16: "caffe"}
    for build, mode in names.items():
        assert application_mode([build(weights=None).name.lower()]) == mode, build


def test_the_commands_on_a_graph(tf, tmp_path):
    """The command line's other tools on a transfer-learning graph: --trace (a row per
    node, with its inputs and fan-out), --diagnose, --metric, --report over a folder read
    by two workers, and the sanity checks (cascading randomisation from the top)."""
    import json
    import shutil
    from helpers import done_images, run_cam, run_module
    keras = tf.keras
    keras.backend.clear_session()
    model, _ = classifier(keras, "Functional")
    model.save(tmp_path / "clf.keras")
    folder = tmp_path / "photos"
    folder.mkdir()
    examples = Path(__file__).parent.parent / "examples"
    for name in ("coffee.jpg", "chelsea.jpg", "square.png"):
        shutil.copy(examples / name, folder / name)
    clf = ["--model", str(tmp_path / "clf.keras")]
    result = run_cam(str(folder / "coffee.jpg"), *clf, "--trace", "--diagnose", "--metric",
                     "--out", str(tmp_path / "one"))
    assert result.returncode == 0, result.stderr
    # MobileNetV2's residual: block_4_add takes the skip and the block, and feeds two
    assert "<- block_3_project_BN, block_4_project_BN (feeds 2)" in result.stderr
    assert "diagnose" in result.stderr and "dead channels at out_relu" in result.stderr
    assert "faithfulness: deletion AUC" in result.stdout
    result = run_cam(str(folder), *clf, "--json", "--report", "--out", str(tmp_path / "all"))
    assert result.returncode == 0, result.stderr
    assert len(done_images(result.stdout)) == 3
    assert (tmp_path / "all" / "report.html").exists()
    result = run_module("vggnp.sanity", str(folder / "coffee.jpg"), *clf, "--depth", "3",
                        "--methods", "gradcam,saliency", "--json", "--out", str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    steps = json.loads(result.stdout.splitlines()[-1])["cascading"]
    # from the top, in reverse topological order: the head, then the base's last conv
    assert [step["randomised"][-1] for step in steps] == ["dense", "Conv_1", "block_16_project"]


BASES = {  # name: (the base, its default layer, pixels it takes)
    "ResNet50": (lambda A: A.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3)),
                 "conv5_block3_out", (-1, 1)),
    "EfficientNetB0": (lambda A: A.EfficientNetB0(weights=None, include_top=False,
                                                  input_shape=(64, 64, 3)),
                       "top_activation", (0, 255)),
    "MobileNetV2": (lambda A: A.MobileNetV2(weights=None, include_top=False, alpha=0.35,
                                            input_shape=(64, 64, 3)), "out_relu", (-1, 1)),
}


@pytest.mark.parametrize("name", BASES)
@pytest.mark.parametrize("sigmoid", [False, True])
def test_classifiers_on_each_base_equal_tensorflow(tf, tmp_path, name, sigmoid):
    """A Functional classifier on a ResNet50, EfficientNetB0 or MobileNetV2 base (batch
    norms calibrated on images), GlobalAveragePooling2D -> Dropout -> Dense(3, softmax) or
    Dense(1, sigmoid): logits within 1e-4 of the largest, outputs the head's activation of
    them (and log outputs within 2e-4 of the largest logit of TF's); the Grad-CAM map at
    the default layer (the base's output) and d logit / d input, every class, as in
    test_application_models: against vggnp's float64, within 1e-4 or three times TF's own
    float32 error (ResNet50: its map 1.01e-4 from TF's; its max pool has near-ties, d
    logit / d input ~1e-2 in both)."""
    from test_application_models import relative
    from test_keras_applications import calibrate_batch_norms
    keras, L = tf.keras, tf.keras.layers
    keras.backend.clear_session()
    build, default, (low, high) = BASES[name]
    base = build(keras.applications)
    inputs = keras.Input((64, 64, 3))
    x = L.Dropout(0.2)(L.GlobalAveragePooling2D()(base(inputs, training=False)))
    model = keras.Model(inputs, L.Dense(1, activation="sigmoid")(x) if sigmoid else
                        L.Dense(3, activation="softmax")(x))
    realistic_weights(keras, model)
    images = np.random.default_rng(1).uniform(low, high, (6, 64, 64, 3)).astype(np.float32)
    calibrate_batch_norms(keras, model, images[2:])
    model.save(tmp_path / "clf.keras")
    ours, x = load_keras_model(tmp_path / "clf.keras"), images[:2]
    ours64 = load_keras_model(tmp_path / "clf.keras", dtype=np.float64)
    assert ours.default_layer == default
    # The outputs are the head's activation of the logits (those within 1e-4 of TF's
    # largest, below), and TF's within what that allows in log space: log p moves by at
    # most 2 max|dz|, not by a fixed fraction of p (a sigmoid output ~3e-5 is 1e-3 off
    # for a logit 1e-3 off, as one CI run had it)
    z = ours.logits(x)
    head = 1 / (1 + np.exp(-z)) if sigmoid else np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    assert np.allclose(ours.predict(x), head, rtol=1e-5, atol=0)
    theirs = np.log(np.maximum(model.predict(x, verbose=0), 1e-30))
    assert np.abs(theirs - np.log(np.maximum(head, 1e-30))).max() <= 2e-4 * np.abs(z).max()
    dense = model.layers[-1]
    probe = keras.Model(base.inputs, [base.get_layer(default).output, base.output])
    for c in range(2 if sigmoid else 3):
        image = tf.constant(x)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(image)
            conv, features = probe(image)
            logits = tf.matmul(tf.reduce_mean(features, axis=(1, 2)), dense.kernel) + dense.bias
            score = (logits[:, 0] * (1.0 if c == 1 else -1.0) if sigmoid else logits[:, c])
        weights = tf.reduce_mean(tape.gradient(score, conv), axis=(1, 2))
        cam = tf.nn.relu(tf.einsum("nhwc,nc->nhw", conv, weights)).numpy()
        cam /= np.maximum(cam.max(axis=(1, 2), keepdims=True), 1e-30)
        assert relative(ours.logits(x), logits.numpy()) <= 1e-4
        maps, _ = grad_cam(ours, x, class_index=c)
        truth_map, _ = grad_cam(ours64, x.astype(np.float64), class_index=c)
        assert np.abs(maps - truth_map).max() <= max(1e-4, 3 * np.abs(cam - truth_map).max())
        seed = np.full((2, 1), 1.0 if c == 1 else -1.0) if sigmoid else np.eye(3)[[c, c]]
        ours.forward(x)
        mine = ours.backward(seed.astype(np.float32), from_logits=True)
        ours64.forward(x.astype(np.float64))
        truth = ours64.backward(seed, from_logits=True)
        theirs = tape.gradient(score, image).numpy()
        assert relative(mine, truth) <= max(1e-4, 3 * relative(theirs, truth)), c


def test_a_guessed_preprocessing_is_said(tf, tmp_path, capsys):
    """A model that says nothing of its input scaling (no Rescaling first layer, no Keras
    Applications model inside) is run with --preprocess rescale, and the run says so
    once; with --preprocess given, or a model that rescales, nothing is said."""
    from PIL import Image

    from vggnp.cam import main
    keras = tf.keras
    keras.backend.clear_session()
    i = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(i)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(i, out).save(tmp_path / "plain.keras")
    Image.new("RGB", (20, 20), (200, 30, 30)).save(tmp_path / "red.png")
    runs = {}
    for name, extra in (("guessed", []), ("given", ["--preprocess", "tf"])):
        code = main([str(tmp_path / "red.png"), "--model", str(tmp_path / "plain.keras"),
                     "--out", str(tmp_path / name), *extra])
        runs[name] = (code, capsys.readouterr().err)
    assert runs["guessed"][0] == runs["given"][0] == 0
    assert runs["guessed"][1].count("--preprocess rescale (pixels / 255) assumed") == 1
    assert "assumed" not in runs["given"][1]
    code = main([str(tmp_path / "red.png"), "--model", MODEL_PATH, "--labels", LABELS_PATH,
                 "--out", str(tmp_path / "rescales")])  # the shapes model: Rescaling first
    assert code == 0 and "assumed" not in capsys.readouterr().err
