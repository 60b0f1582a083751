"""Every method of issue #7 against an independent reference: TensorFlow for the gradients to
the input (saliency, guided backprop), the papers' equations written out for the CAMs,
a slow per-channel Score-CAM; and a faithfulness effect on a trained model."""

import pathlib
import re

import numpy as np
import pytest

from helpers import done_images, run_module
from reference_check import dlogits, relative_to_max, tf_rounding_choices, use_tf_activations
from shapes_data import MODEL_PATH, TEST_SEED, dataset
from vggnp import VGG16
from vggnp.methods.explain import explain, normalise, score_cam
from vggnp.methods.registry import METHODS
from vggnp.methods.faithfulness import deletion_insertion
from vggnp.keras_model import load_keras_model
from vggnp.methods.resize import resize_bilinear


@pytest.fixture(scope="module")
def full_size(keras_files):
    folder, x, refs, keras_model = keras_files
    return VGG16.load(folder / "keras1_official_layout.h5"), x, refs["top"], keras_model


def test_saliency_equals_tensorflow(full_size, monkeypatch):
    """max over channels of |d logit / d input|: on TensorFlow's activations within 1e-4
    relative to max; end to end (what ``explain`` returns, scaled to [0, 1]) within 1e-4
    of TF's map scaled alike, with TF's choices where float32 rounding decides (near-tied
    max-pool windows, ReLU inputs within rounding of 0: ``align_rounding_choices``;
    without them the map differed by 1e-2 to 4e-2, depending on the conv's order of sums)."""
    model, x, ref, _ = full_size
    aligned = tf_rounding_choices(monkeypatch, model, ref)
    maps, classes = explain(model, x, "saliency")
    assert aligned and aligned[0][1], "the backward ran without TF's choices"
    monkeypatch.undo()
    assert np.array_equal(classes, ref["classes"]) and maps.shape == (2, 224, 224)
    expected = np.abs(ref["grad_input"]).max(axis=3)
    end_to_end = float(np.abs(maps - normalise(expected)).max())
    use_tf_activations(model, x, ref)
    grad = model.backward(dlogits(ref), start="predictions", from_logits=True)
    on_tf = relative_to_max(np.abs(grad).max(axis=3), expected)
    print(f"\nsaliency: on TF's activations {on_tf:.1e}, end to end {end_to_end:.1e}")
    assert on_tf <= 1e-4
    assert end_to_end <= 1e-4


def test_guided_backprop_equals_tensorflow(tf, full_size, monkeypatch):
    """TF reference: each hidden ReLU replaced by a tf.custom_gradient guided ReLU. The
    guided d logit / d input on TensorFlow's activations within 1e-4 relative to max; end
    to end (what ``explain`` returns) within 1e-4 with TF's choices where rounding decides
    (as test_saliency_equals_tensorflow)."""
    model, x, ref, keras_model = full_size

    @tf.custom_gradient
    def guided_relu(z):
        def grad(dy):
            return tf.cast(dy > 0, dy.dtype) * tf.cast(z > 0, dy.dtype) * dy
        return tf.nn.relu(z), grad

    hidden = [layer for layer in keras_model.layers
              if getattr(layer, "activation", None) is not None and layer.name != "predictions"]
    saved = [layer.activation for layer in hidden]
    try:
        for layer in hidden:
            layer.activation = guided_relu
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            a = xt
            for layer in keras_model.layers[1:-1]:
                a = layer(a)
            head = keras_model.get_layer("predictions")
            logits = tf.matmul(a, head.kernel) + head.bias
            score = tf.reduce_sum(tf.gather(logits, ref["classes"], axis=1, batch_dims=1))
        expected = tape.gradient(score, xt).numpy()
    finally:
        for layer, activation in zip(hidden, saved):
            layer.activation = activation
    aligned = tf_rounding_choices(monkeypatch, model, ref)
    end_to_end, _ = explain(model, x, "guided-backprop")
    assert aligned and aligned[0][1], "the backward ran without TF's choices"
    monkeypatch.undo()
    use_tf_activations(model, x, ref)
    got = model.backward(dlogits(ref), start="predictions", from_logits=True, guided=True)
    on_tf, end_to_end = relative_to_max(got, expected), relative_to_max(end_to_end, expected)
    print(f"\nguided backprop: on TF's activations {on_tf:.1e}, end to end {end_to_end:.1e}")
    assert on_tf <= 1e-4
    assert end_to_end <= 1e-4
    assert relative_to_max(got, ref["grad_input"]) > 0.5  # guided is another picture


def transcribed(method, A, g):
    """The papers' equations, one channel and one position at a time. A, g: (h, w, C)."""
    h, w, C = A.shape
    L = np.zeros((h, w))
    for k in range(C):
        if method == "hirescam":      # Draelos & Carin, eq. 4: sum_k g^k (.) A^k
            L += g[:, :, k] * A[:, :, k]
        elif method == "layercam":    # Jiang et al., eq. 4-5: w^k_ij = ReLU(g^k_ij)
            for i in range(h):
                for j in range(w):
                    L[i, j] += max(g[i, j, k], 0) * A[i, j, k]
        elif method == "gradcam++":   # Chattopadhyay et al., eq. 19 and 9
            total = A[:, :, k].sum()
            weight = 0.0
            for i in range(h):
                for j in range(w):
                    d = 2 * g[i, j, k] ** 2 + total * g[i, j, k] ** 3
                    alpha = g[i, j, k] ** 2 / d if d != 0 else 0.0
                    weight += alpha * max(g[i, j, k], 0)
            L += weight * A[:, :, k]
        elif method == "xgradcam":    # Fu et al., eq. 9: sum_ij (A^k_ij / sum_ab A^k_ab) g^k_ij
            total = A[:, :, k].sum()
            weight = 0.0
            for i in range(h):
                for j in range(w):
                    weight += (A[i, j, k] / total if total != 0 else 0.0) * g[i, j, k]
            L += weight * A[:, :, k]
        elif method == "counterfactual":  # Selvaraju et al., sec. 5.3: negated gradients
            L += -g[:, :, k].mean() * A[:, :, k]
    L = np.maximum(L, 0)
    return L / L.max() if L.max() > 0 else L


@pytest.mark.parametrize("method", ["gradcam++", "hirescam", "xgradcam", "layercam",
                                    "counterfactual"])
def test_cams_equal_their_equations_on_tensorflow_values(full_size, method, monkeypatch):
    """TF's activations and gradients at block5_conv3 through the equations written out
    above equal vggnp's maps from its own forward and backward, with TF's choices where
    float32 rounding decides (``align_rounding_choices``: the element-wise HiResCAM and
    LayerCAM maps see each position's gradient, which a ReLU unit within rounding of 0
    below it changes; on a CPU whose sums rounded otherwise they differed by 5e-2)."""
    model, x, ref, _ = full_size
    aligned = tf_rounding_choices(monkeypatch, model, ref)
    maps, _ = explain(model, x, method, layer="block5_conv3", class_index=ref["classes"])
    assert aligned, "the backward ran without TF's choices"
    A, g = ref["outputs"]["block5_conv3"], ref["grads"]["block5_conv3"]
    for n in range(len(x)):
        assert np.abs(maps[n] - transcribed(method, A[n], g[n])).max() <= 1e-4, n


def test_eigen_cam_is_the_first_principal_component(full_size):
    """Eigen-CAM equals the first principal component of TF's activations at block5_conv3
    (numpy.linalg.svd of the centred (h*w, C) matrix, full, as U S), up to its sign; the
    sign vggnp picks agrees with the mean activation."""
    model, x, ref, _ = full_size
    maps, _ = explain(model, x, "eigencam", layer="block5_conv3")
    A = ref["outputs"]["block5_conv3"].astype(np.float64)
    for n in range(len(x)):
        M = A[n].reshape(-1, A.shape[-1])
        M = M - M.mean(axis=0)
        u, s, _ = np.linalg.svd(M)
        component = (u[:, 0] * s[0]).reshape(A.shape[1:3])
        mean = A[n].mean(axis=-1)
        signed = component if np.sum(component * (mean - mean.mean())) >= 0 else -component
        expected = np.maximum(signed, 0) / np.maximum(signed, 0).max()
        assert np.abs(maps[n] - expected).max() <= 1e-4, n


def test_score_cam_equals_a_slow_reference_and_batching_changes_nothing(small_model):
    x = np.random.default_rng(3).standard_normal((2, 64, 64, 3)).astype(np.float32) * 60
    classes = small_model.class_scores(small_model.predict(x)).argmax(axis=1)
    fast = score_cam(small_model, x, "block4_conv3", classes, batch_size=5)
    one_by_one = score_cam(small_model, x, "block4_conv3", classes, batch_size=1)
    assert np.allclose(fast, one_by_one, atol=1e-6)
    for n in range(2):  # the paper's Algorithm 1, one channel at a time
        A = small_model.forward(x[n:n + 1], until="block4_conv3")[0]
        scores = []
        for k in range(A.shape[2]):
            H = resize_bilinear(A[:, :, k], (64, 64))
            H = (H - H.min()) / (H.max() - H.min()) if H.max() > H.min() else 0 * H
            p = small_model.predict((x[n] * H[:, :, None])[None].astype(np.float32))
            scores.append(p[0, classes[n]])
        s = np.exp(np.array(scores) - max(scores))
        s /= s.sum()
        L = np.maximum(sum(s[k] * A[:, :, k] for k in range(A.shape[2])), 0)
        assert np.abs(fast[n] - L / L.max()).max() <= 1e-5


@pytest.mark.slow  # in-process, but seconds: the full suite's
def test_score_cam_skipping_dead_channels_changes_nothing():
    """Issue #14: channels that are zero everywhere are not run; the map is the same."""
    model = load_keras_model(MODEL_PATH)
    images, labels, _ = dataset(6, TEST_SEED)
    x = images.astype(np.float32)
    for layer in ("conv2d_11", "conv2d_9"):
        skipped = []
        fast = score_cam(model, x, layer, labels, batch_size=16, skipped=skipped)
        full = score_cam(model, x, layer, labels, batch_size=16, skip_dead=False)
        assert np.abs(fast - full).max() <= 1e-6, layer
        dead = [int((~model.forward(x[n:n + 1], until=layer)[0].any(axis=(0, 1))).sum())
                for n in range(len(x))]
        assert skipped == dead and sum(dead) > 0, (layer, dead)


def test_every_method_gives_finite_maps_of_the_right_shape(small_model):
    x = np.random.default_rng(4).standard_normal((2, 64, 64, 3)).astype(np.float32) * 60
    for method in METHODS:
        maps, classes = explain(small_model, x, method, batch_size=16)
        assert np.isfinite(maps).all() and len(classes) == 2
        image = (2, 64, 64, 3) if METHODS[method].gives_image else None
        expected = image or {"saliency": (2, 64, 64), "integrated-gradients": (2, 64, 64),
                             "smoothgrad": (2, 64, 64)}.get(method, (2, 4, 4))
        assert maps.shape == expected, method


@pytest.mark.slow  # in-process, but seconds: the full suite's
def test_deletion_auc_of_grad_cam_beats_a_random_map():
    """On the trained shapes model, deleting the pixels Grad-CAM ranks first destroys the
    class score sooner than deleting pixels in a random order (a real effect)."""
    model = load_keras_model(MODEL_PATH)
    images, labels, _ = dataset(12, TEST_SEED)
    x = images.astype(np.float32)
    maps, _ = explain(model, x, "gradcam", class_index=labels)
    rng = np.random.default_rng(0)
    cam_auc, random_auc, cam_ins, random_ins = [], [], [], []
    for n in range(len(x)):
        d, i = deletion_insertion(model, x[n], maps[n], labels[n], steps=16)
        cam_auc.append(d)
        cam_ins.append(i)
        d, i = deletion_insertion(model, x[n], rng.random(maps[n].shape), labels[n], steps=16)
        random_auc.append(d)
        random_ins.append(i)
    assert np.mean(cam_auc) < np.mean(random_auc) - 0.2, (np.mean(cam_auc), np.mean(random_auc))
    assert np.mean(cam_ins) > np.mean(random_ins), (np.mean(cam_ins), np.mean(random_ins))


def test_gradient_ascent_rises_and_is_deterministic():
    from vggnp.filters import filter_pattern
    model = load_keras_model(MODEL_PATH)
    image, losses = filter_pattern(model, model.last_conv, 0, "none", size=48, steps=12, seed=3)
    assert np.all(np.diff(losses[:8]) > 0), losses  # every one of the first steps helps
    assert losses[-1] > losses[0] + 1
    again, losses_again = filter_pattern(model, model.last_conv, 0, "none", size=48, steps=12,
                                         seed=3)
    assert np.array_equal(image, again) and np.array_equal(losses, losses_again)
    other, _ = filter_pattern(model, model.last_conv, 0, "none", size=48, steps=12, seed=4)
    assert not np.array_equal(image, other)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_from_the_cli(tmp_path, method):
    import os

    from shapes_data import LABELS_PATH, ROOT
    from PIL import Image
    image = os.path.join(ROOT, "examples", "square.png")
    result = run_module("vggnp.cam", "--model", MODEL_PATH, "--labels", LABELS_PATH, image,
                 "--method", method, "--out", str(tmp_path), "--json", "--metric",
                 "--format", "png", *(["--batch-size", "16"] if method == "scorecam" else []))
    assert result.returncode == 0, result.stderr
    (report,) = done_images(result.stdout)
    suffix = "cam" if method == "gradcam" else method
    assert report["outputs"]["overlay"] == str(tmp_path / f"square_square_{suffix}.png")
    assert report["method"] == method
    assert 0 <= report["deletion_auc"] <= 1 and 0 <= report["insertion_auc"] <= 1
    with Image.open(report["outputs"]["overlay"]) as picture:
        assert picture.size == (64, 64) and picture.mode == "RGB"


def test_activation_grid_and_filters_cli(tmp_path):
    import os

    from PIL import Image
    from shapes_data import ROOT
    image = os.path.join(ROOT, "examples", "circle.png")
    first_conv = load_keras_model(MODEL_PATH).conv_names[0]
    result = run_module("vggnp.activations", image, "--model", MODEL_PATH, "--layer", first_conv,
                 "--out", str(tmp_path), "--columns", "4")
    assert result.returncode == 0, result.stderr
    (grid_file,) = os.listdir(tmp_path)
    with Image.open(tmp_path / grid_file) as picture:  # 16 channels of 64x64: 4 x 4 tiles
        assert picture.size == (4 * 64 + 3, 4 * 64 + 3)
    result = run_module("vggnp.filters", "--model", MODEL_PATH, "--layer",
                 load_keras_model(MODEL_PATH).last_conv, "--filters", "3", "--size", "40",
                 "--steps", "5", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("mean pre-activation") == 3
    result = run_module("vggnp.activations", image, "--model", MODEL_PATH, "--layer", "nope",
                 "--out", str(tmp_path))
    assert result.returncode == 2 and "no layer 'nope'" in result.stderr


def test_hirescam_and_xgradcam_equal_gradcam_after_global_average_pooling(shapes_model,
                                                                          small_model):
    """The README's "HiResCAM and XGrad-CAM equal Grad-CAM here": the shapes model's last
    conv layer reaches the logits through global average pooling, so d y / d A is the same
    at every position and the three maps coincide (to float32 rounding) for every class;
    on VGG16, whose Flatten gives each position its own weight, they differ."""
    x = dataset(3, seed=TEST_SEED)[0].astype(np.float32)
    for c in range(3):
        gradcam = explain(shapes_model, x, "gradcam", class_index=c, warn_empty=False)[0]
        for method in ("hirescam", "xgradcam"):
            other = explain(shapes_model, x, method, class_index=c, warn_empty=False)[0]
            assert np.abs(other - gradcam).max() <= 1e-5, (method, c)
    assert gradcam.any()
    x = np.random.default_rng(0).normal(0, 40, (1, *small_model.input_size, 3))
    maps = [explain(small_model, x.astype(np.float32), method, class_index=0,
                    warn_empty=False)[0] for method in ("gradcam", "hirescam")]
    assert np.abs(maps[0] - maps[1]).max() > 0.01


@pytest.mark.parametrize("change, error, words", [
    (dict(method="integrated-gradients", steps=0), ValueError, "steps must be an integer >= 1"),
    (dict(method="smoothgrad", samples=-3), ValueError, "samples must be an integer >= 1"),
    (dict(method="scorecam", batch_size=0), ValueError, "batch_size must be an integer"),
    (dict(method="smoothgrad", noise=float("nan")), ValueError, "noise must be a finite"),
    (dict(class_index=2.9), ValueError, "class_index must be an integer"),
    (dict(class_index=True), ValueError, "class_index must be an integer"),
    (dict(class_index=[3]), ValueError, "class index [3] out of range 0..2"),
    (dict(class_index=[0, 1]), ValueError, "class_index has 2 classes for 1 image(s)"),
    (dict(class_index=[[1]]), ValueError, "class_index must be an integer or one per image"),
    (dict(method="smoothgrad", seed="a"), ValueError, "seed must be an integer >= 0, not 'a'"),
    (dict(method="smoothgrad", seed=-1), ValueError, "seed must be an integer >= 0, not -1"),
    (dict(method="lrp", gamma="x"), ValueError, "gamma must be a finite number >= 0, not 'x'"),
    (dict(details=[]), TypeError, "details must be a dict (filled in) or None, not list"),
    (dict(x="complex"), TypeError, "x must hold real numbers (float32), not complex64"),
    (dict(class_index=-1), ValueError, "class index -1 out of range 0..2"),
    (dict(x="3d"), ValueError, "x must be (N, 64, 64, 3) with N >= 1"),
    (dict(x="grey"), ValueError, "x must be (N, 64, 64, 3)"),
    (dict(x="empty"), ValueError, "x must be (N, 64, 64, 3)"),
    (dict(x="list"), TypeError, "x must be a NumPy array"),
    (dict(steps=8), ValueError, "method gradcam takes no steps (only integrated-gradients)"),
    (dict(method="saliency", seed=1), ValueError, "takes no seed (only smoothgrad)"),
    (dict(x="nan"), ValueError, "x holds NaN or infinite values"),
    (dict(method="integrated-gradients", trace=True), ValueError,
     '--trace (trace=True) shows one pass: use --method saliency (method="saliency")'),
    (dict(method="eigencam", target="softmax"), ValueError, "eigencam explains no class's "
     "score (its map is the same for every class): it takes no target, not softmax"),
    (dict(model="file"), TypeError, "model must be a vggnp model (vggnp.VGG16.load(path), "
     "vggnp.load_keras_model(path)), not a str"),
    (dict(method="integrated-gradients", samples=8, steps=4), ValueError,
     "takes no samples (only smoothgrad)"),
    (dict(steps=8, samples=4, rule="z_plus"), ValueError, "method gradcam takes no steps "
     "(only integrated-gradients), samples (only smoothgrad), rule (only lrp)")])
def test_explain_refuses_bad_arguments_naming_them(shapes_model, change, error, words):
    """What the command line's parser refuses is refused in Python too, naming the
    argument, before any pass (a new user's trial met ZeroDivisionError, AttributeError,
    numpy's broadcast errors, and class 2 explained for class_index=2.9); another method's
    option is refused, as the command line refuses it, not silently ignored."""
    x = np.zeros((1, 64, 64, 3), np.float32)
    x = {"3d": x[0], "grey": x[..., :1], "empty": x[:0], "list": x.tolist(),
         "nan": np.full_like(x, np.nan), "complex": x.astype(np.complex64)}.get(
             change.pop("x", None), x)
    model = "shapes.keras" if change.pop("model", None) else shapes_model
    with pytest.raises(error, match=re.escape(words)):
        explain(model, x, **change)


SHAPES_PICTURE = np.full((64, 64, 3), 128, np.uint8)


def test_explain_files_refuses_bad_arguments_at_once(shapes_model):
    """workers=0 made a stream that never ended; one path as a str was read as one path
    per character; an unknown method, another method's option or a class the model lacks
    failed each image alike."""
    from vggnp import explain_files
    for kwargs, error, words in ((dict(workers=0), ValueError, "workers must be"),
                                 (dict(batch_size=-2), ValueError, "batch_size must be"),
                                 (dict(method="bogus"), ValueError, "unknown method 'bogus'"),
                                 (dict(method_options={"steps": 8}), ValueError,
                                  "method gradcam takes no steps"),
                                 (dict(method_options={"stepz": 8}), TypeError,
                                  "method_options: unknown 'stepz'"),
                                 (dict(read_options={"foo": 1}), TypeError,
                                  "read_options: unknown 'foo'; read_image takes background, "
                                  "max_pixels, allow_truncated"),
                                 (dict(layer="nope"), ValueError, "a CAM needs a conv layer"),
                                 (dict(class_index=3), ValueError,
                                  r"class index 3 out of range 0\.\.2"),
                                 (dict(mode="bogus"), ValueError, "mode must be one of"),
                                 (dict(target="prob"), ValueError, "not the prob"),
                                 (dict(method="integrated-gradients",
                                       method_options={"steps": 0}), ValueError,
                                  "steps must be an integer >= 1"),
                                 (dict(method="lrp", method_options={"rule": "bogus"}),
                                  ValueError, "unknown LRP rule 'bogus'")):
        with pytest.raises(error, match=words):
            next(explain_files(shapes_model, [SHAPES_PICTURE], **kwargs))
    with pytest.raises(ValueError, match=r"class_index has 2 classes for 1 image\(s\)"):
        next(explain_files(shapes_model, [SHAPES_PICTURE], class_index=[0, 1]))
    with pytest.raises(ValueError, match="needs sources of a known length"):
        next(explain_files(shapes_model, iter([SHAPES_PICTURE]), class_index=[0]))
    with pytest.raises(TypeError, match="not one str: pass"):
        next(explain_files(shapes_model, "examples/triangle.png"))
    with pytest.raises(TypeError, match="not one PosixPath: pass"):
        next(explain_files(shapes_model, pathlib.Path("examples/triangle.png")))


def test_explain_files_takes_one_class_per_source(shapes_model):
    """A class per source is each source's, whatever batch it falls in (it was applied to
    each batch afresh: the first batch's classes again for the second, and a NumPy
    broadcast error for a last batch of another size)."""
    from vggnp import explain_files
    pictures = [np.random.default_rng(k).integers(0, 256, (64, 64, 3), np.uint8)
                for k in range(5)]
    classes = [2, 0, 1, 1, 2]
    results = list(explain_files(shapes_model, pictures, class_index=classes, batch_size=2))
    assert sorted((r.index, r.class_index) for r in results) == list(enumerate(classes))
    for r in results:
        one, _ = explain(shapes_model, r.x[None], class_index=classes[r.index],
                         warn_empty=False)
        assert np.allclose(r.map, one[0], rtol=0, atol=1e-6)


def test_explain_files_refuses_pictures_that_are_not_uint8_pixels(shapes_model):
    """A float picture in [0, 1] was cast to uint8 (an almost black image) and explained;
    now that source alone fails, saying what to pass; the others are explained."""
    from vggnp import explain_files
    ones = np.ones((64, 64, 3), np.float32)
    sources = [ones, SHAPES_PICTURE, 42, SHAPES_PICTURE[..., :1], SHAPES_PICTURE[..., 0]]
    results = sorted(explain_files(shapes_model, sources), key=lambda r: r.index)
    assert [r.error is None for r in results] == [False, True, False, False, True]
    assert str(results[0].error) == (
        "a picture array must be uint8 pixels (0..255) of shape (H, W), (H, W, 3) or "
        "(H, W, 4), not float32 (64, 64, 3); for values in [0, 1]: "
        "(a * 255).round().astype(np.uint8)")
    assert isinstance(results[2].error, TypeError) and "not int" in str(results[2].error)
    assert "not uint8 (64, 64, 1)" in str(results[3].error)
