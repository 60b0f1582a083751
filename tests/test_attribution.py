"""Integrated Gradients and SmoothGrad (issue #16): TensorFlow's gradients at the same points,
the completeness axiom at the default number of steps, and the command line's report."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from helpers import LABELS_PATH, MODEL_PATH, SHAPES, done_images, run_cam
from reference_check import dlogits, relative_to_max, use_tf_activations

from vggnp import VGG16
from vggnp.methods.attribution import integrated_gradients, path_points, smooth_grad
from vggnp.methods.explain import explain
from vggnp.files.preprocess import preprocess
from vggnp.keras_model import load_keras_model


@pytest.fixture(scope="module")
def full_size(keras_files):
    folder, x, refs, keras_model = keras_files
    return VGG16.load(folder / "keras1_official_layout.h5"), x, refs["top"], keras_model, \
        folder


def smoothgrad_points(image, samples, noise=0.15, seed=0):
    """The noisy copies ``smooth_grad`` makes of its first image (the same draws)."""
    sigma = noise * float(image.max() - image.min())
    rng = np.random.default_rng(seed)
    return image + rng.normal(0, sigma, (samples, *image.shape)).astype(image.dtype)


def test_integrated_gradients_and_smoothgrad_equal_tensorflow(tf, full_size):
    """At the same points (4 on the path, 4 noisy copies), vggnp's backward on TF's
    activations gives TF's gradients within 1e-4 relative to max (measured 1e-6). End to
    end (vggnp's own float32 forward, no choices aligned) near-ties in max-pool windows
    and ReLU signs go as rounding decides (reference_check), in TF's float32 sums as in
    vggnp's: so vggnp's float32 result is held within 0.05 of the same network's float64
    one and of TF's float32 one; TF's is itself 3.6e-2 and 2.1e-2 from the float64 one.
    Either order of block1_conv1's sums passes (measured from float64: 6.0e-3 and 1.7e-2
    as im2col's product, 3.6e-2 and 1.6e-2 as nine shifted products; from TF: 3.6e-2 and
    2.1e-2, 2.2e-2 and 2.0e-2: each order of sums meets other ties)."""
    import keras

    from tf_reference import reference
    model, x, ref, keras_model, folder = full_size
    exact = VGG16.load(folder / "keras1_official_layout.h5", dtype=np.float64)
    image, c = x[0], int(ref["classes"][0])
    cases = {
        "integrated-gradients": (path_points(image, np.zeros_like(image), 4),
                                 lambda g: image * g.mean(axis=0),
                                 lambda m, x: integrated_gradients(m, x, [c], steps=4)[0][0]),
        "smoothgrad": (smoothgrad_points(image, 4), lambda g: g.mean(axis=0),
                       lambda m, x: smooth_grad(m, x, [c], samples=4)[0])}
    for method, (points, combine, end_to_end) in cases.items():
        r = reference(tf, keras, keras_model, points, class_indices=[c] * len(points))
        expected = combine(r["grad_input"])
        use_tf_activations(model, points, r)
        on_tf = relative_to_max(
            combine(model.backward(dlogits(r), start="predictions", from_logits=True)),
            expected)
        ours, truth = end_to_end(model, x[:1]), end_to_end(exact, x[:1].astype(np.float64))
        whole, rounding = relative_to_max(ours, expected), relative_to_max(ours, truth)
        print(f"\n{method}: on TF's activations {on_tf:.1e}, end to end {whole:.1e}, "
              f"from float64 {rounding:.1e} (TF's {relative_to_max(expected, truth):.1e})")
        assert on_tf <= 1e-4 and rounding <= 0.05 and whole <= 0.05, method


def test_completeness_within_one_percent_at_the_default_steps(full_size):
    """sum of the attributions = score(x) - score(baseline), within 1 % at 64 steps: on
    the full-size VGG16 (random Keras weights) for the two photos, and on the shapes model
    for its three examples."""
    model, x = full_size[:2]
    shapes = load_keras_model(MODEL_PATH)
    pictures = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in SHAPES])
    for network, images in ((model, x),
                            (shapes, preprocess(pictures, shapes.default_preprocess))):
        details = {}
        explain(network, images, "integrated-gradients", details=details, batch_size=16)
        for c in details["completeness"]:
            print(c)
            assert c["relative_error"] <= 0.01, c
            assert abs(c["score_difference"]) > 1e-3  # a real change of score, not 0 = 0


def test_a_saturated_score_is_not_an_incomplete_path():
    """A score that does not change from the baseline (saturated at 1): attributions
    summing to float32 noise are no error (a new user's degenerate MobileNetV2 was told
    "off by 6486.5 %; pass --steps 128"); a real shortfall still is."""
    from vggnp.methods.attribution import completeness_check, completeness_warning
    saturated = completeness_check(6.5e-11, 1.0, 1.0)
    assert saturated["relative_error"] == pytest.approx(6.5e-5)
    assert completeness_warning(saturated, 64) is None
    short = completeness_check(0.5, 3.0, 1.0)
    assert short["relative_error"] == pytest.approx(0.75)
    assert "pass --steps 128" in completeness_warning(short, 64)


def test_too_few_steps_are_reported(tmp_path):
    """At 4 steps the path integral is coarse: the JSON says by how much and the CLI warns,
    suggesting more steps; the map is still written."""
    result = run_cam("--model", MODEL_PATH, "--labels", LABELS_PATH, SHAPES[2], "--method",
                     "integrated-gradients", "--steps", "4", "--json", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (report,) = done_images(result.stdout)
    c = report["completeness"]
    assert c["relative_error"] == pytest.approx(
        abs(c["attribution_sum"] - c["score_difference"]) / abs(c["score_difference"]))
    assert c["relative_error"] > 0.01 and "pass --steps 8" in result.stderr
    assert os.path.isfile(report["outputs"]["overlay"])
    assert json.loads(result.stdout.splitlines()[0])["method"] == "integrated-gradients"


def test_smoothgrad_is_seeded_and_options_belong_to_their_method(tmp_path):
    shapes = load_keras_model(MODEL_PATH)
    x = preprocess(np.asarray(Image.open(SHAPES[0]).convert("RGB"))[None],
                   shapes.default_preprocess)
    one = explain(shapes, x, "smoothgrad", samples=8, seed=3)[0]
    assert np.array_equal(one, explain(shapes, x, "smoothgrad", samples=8, seed=3)[0])
    assert not np.array_equal(one, explain(shapes, x, "smoothgrad", samples=8, seed=4)[0])
    for args, message in [(["--method", "gradcam", "--steps", "8"], "--steps does not apply"),
                          (["--method", "saliency", "--samples", "8"], "--samples does not"),
                          (["--method", "smoothgrad", "--trace"], "--trace does not apply"),
                          (["--method", "eigencam", "--target", "logit"], "Eigen-CAM looks")]:
        result = run_cam("--model", MODEL_PATH, SHAPES[0], "--out", str(tmp_path), *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_one_sigmoid_unit_scores_class_1_by_z_and_class_0_by_minus_z():
    """The score a method differentiates for a one-unit sigmoid model: z for class 1, -z
    for class 0 (the backward's seed, +1 or -1), in the logits' dtype."""
    from vggnp.methods.attribution import target_scores
    from vggnp.nn.layers import Dense, Flatten
    from vggnp.nn.network import Network
    r = np.random.default_rng(2)
    model = Network([Flatten("flatten"), Dense("p", r.standard_normal((12, 1)).astype(
        np.float32), np.zeros(1, np.float32), "sigmoid")], (2, 2))
    outputs = model.forward(r.standard_normal((4, 2, 2, 3)).astype(np.float32))
    z = model.layers[-1].z[:, 0]
    classes = np.array([0, 1, 1, 0])
    scores = target_scores(model, outputs, classes, "logit")
    assert scores.dtype == np.float32
    np.testing.assert_array_equal(scores, np.where(classes == 1, z, -z))
    np.testing.assert_allclose(target_scores(model, outputs, classes, "softmax"),
                               np.where(classes == 1, outputs[:, 0], 1 - outputs[:, 0]),
                               rtol=0, atol=1e-7)  # 1 - p: float32's, s(-z): exact
