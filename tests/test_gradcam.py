"""Grad-CAM: equal to TensorFlow's (keras-io example), the guarded normalisation, targets."""

import os
import warnings

import numpy as np
import pytest

from reference_check import relative_to_max, tf_rounding_choices
from tf_reference import tf_grad_cam
from vggnp import VGG16, grad_cam

DATA = os.path.join(os.path.dirname(__file__), "data")


def test_grad_cam_equals_fixture_formula():
    """Offline: the committed TF activations and gradients give the same map by eq. 1-2."""
    with np.load(os.path.join(DATA, "narrow_vgg16_reference.npz")) as f:
        ref = dict(f)
    model = VGG16.load(os.path.join(DATA, "narrow_vgg16.weights.h5"),
                       input_size=ref["x"].shape[1:3], standard=False)
    for layer in ("block5_conv3", "block4_conv3"):
        details = {}
        heatmaps, classes = grad_cam(model, ref["x"], layer=layer, details=details)
        assert np.array_equal(classes, ref["classes"])
        alpha = ref[f"grads/{layer}"].mean(axis=(1, 2))
        cam = np.maximum(np.einsum("nhwc,nc->nhw", ref[f"outputs/{layer}"], alpha), 0)
        cam /= cam.max(axis=(1, 2), keepdims=True)
        assert relative_to_max(details["weights"], alpha) <= 1e-4
        assert np.abs(heatmaps - cam).max() <= 1e-4
        assert heatmaps.shape == ref[f"outputs/{layer}"].shape[:3]


def test_all_zero_map_stays_zero_with_warning(small_model):
    x = np.random.default_rng(0).standard_normal((1, 64, 64, 3)).astype(np.float32) * 60
    # Silence the last conv: A = 0 makes every weighted sum 0. The map must not be NaN.
    layer = small_model.layer("block5_conv3")
    saved = layer.w, layer.b
    layer.w, layer.b = np.zeros_like(layer.w), np.full_like(layer.b, -1.0)
    try:
        with pytest.warns(RuntimeWarning, match="zero everywhere"):
            heatmaps, _ = grad_cam(small_model, x)
    finally:
        layer.w, layer.b = saved
    assert np.all(heatmaps == 0)


def test_heatmap_range_classes_and_targets(small_model):
    x = np.random.default_rng(1).standard_normal((3, 64, 64, 3)).astype(np.float32) * 60
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # some classes may give empty maps
        heatmaps, classes = grad_cam(small_model, x)
        assert np.array_equal(classes, small_model.predict(x).argmax(1))
        assert heatmaps.shape == (3, 4, 4)
        assert heatmaps.min() >= 0 and np.allclose(heatmaps.max(axis=(1, 2)), 1)
        _, chosen = grad_cam(small_model, x, class_index=[0, 4, 2])
        assert chosen.tolist() == [0, 4, 2]
        logit, softmax = {}, {}
        grad_cam(small_model, x, class_index=2, details=logit)
        grad_cam(small_model, x, class_index=2, target="softmax", details=softmax)
    # d p_c / d A = p_c * (d z_c / d A - sum_j p_j d z_j / d A): differs from the logit's
    assert not np.allclose(logit["gradients"], softmax["gradients"])
    with pytest.raises(ValueError, match="conv layer"):
        grad_cam(small_model, x, layer="block5_pool")
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(small_model, x, class_index=5)


@pytest.mark.parametrize("layer", ["block5_conv3", "block4_conv3", "block2_conv1"])
def test_batch_equals_image_by_image(small_model, layer):
    """A batch runs the conv layers image by image and the head batched: same maps."""
    x = np.random.default_rng(2).standard_normal((3, 64, 64, 3)).astype(np.float32) * 60
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        batch, details = {}, []
        heatmaps, classes = grad_cam(small_model, x, layer=layer, details=batch)
        for i in range(3):
            details.append({})
            one, chosen = grad_cam(small_model, x[i:i + 1], layer=layer, details=details[-1])
            assert chosen[0] == classes[i]
            assert np.abs(one[0] - heatmaps[i]).max() <= 1e-4  # maps lie in [0, 1]
    for key in ("probs", "activations", "gradients", "weights"):
        together = np.concatenate([d[key] for d in details])
        assert np.allclose(batch[key], together, rtol=1e-4, atol=1e-5 * np.abs(together).max())


@pytest.mark.parametrize("layer", ["block5_conv3", "block4_conv3"])
@pytest.mark.parametrize("which", ["top", "chosen"])
def test_grad_cam_equals_tensorflow(tf, keras_files, layer, which, monkeypatch):
    """Full-size VGG16, real photos: map and alpha within 1e-4 of TF's, relative to max,
    with TF's choices where float32 rounding decides (a ReLU input within rounding of 0
    below block4_conv3 put on the other side of 0 by vggnp's order of sums changed the
    block4_conv3 map by 1e-3: ``reference_check.align_rounding_choices``)."""
    import keras
    folder, x, refs, keras_model = keras_files
    model = VGG16.load(folder / "keras3.weights.h5")
    tf_rounding_choices(monkeypatch, model, refs["top"])
    class_index = None if which == "top" else [386, 285]
    ref_maps, ref_alpha, ref_classes = tf_grad_cam(tf, keras, keras_model, x, layer, class_index)
    details = {}
    heatmaps, classes = grad_cam(model, x, layer=layer, class_index=class_index, details=details)
    assert np.array_equal(classes, ref_classes)
    errors = (relative_to_max(heatmaps, ref_maps), relative_to_max(details["weights"], ref_alpha))
    print(layer, which, "map error %.1e, alpha error %.1e" % errors)
    assert errors[0] <= 1e-4 and errors[1] <= 1e-4


def test_an_empty_map_of_the_top_class_is_not_told_to_try_the_top_class():
    """The empty-map warning's advice depends on whether the class is the model's top-1."""
    from vggnp.methods.empty_maps import empty_map_message
    other = empty_map_message("gradcam", "cat (1)", "conv", top=False, cli=True)
    top = empty_map_message("gradcam", "cat (1)", "conv", top=True, cli=True)
    assert "try the top-1 class, another --layer" in other
    assert "top-1" not in top and "though it is the model's top class" in top
    assert top.endswith("try another --layer, or --method counterfactual")
    # in Python, the options as explain takes them
    python = empty_map_message("gradcam", "cat (1)", "conv", top=True)
    assert python.endswith('try another layer=, or method="counterfactual"')


def test_the_empty_map_advice_of_each_kind_of_method():
    """eigencam has no class to change; an empty counterfactual map is the usual one for a
    class the model is sure of; a tie for the top is not the model's choice."""
    from vggnp.methods.empty_maps import empty_map_message, is_top
    eigencam = empty_map_message("eigencam", "c", "conv", top=False, cli=True)
    assert "try another --layer" in eigencam and "class" not in eigencam
    counter = empty_map_message("counterfactual", "c", "conv", top=True)
    assert "no location has evidence against the class" in counter and "top" not in counter
    assert is_top([0.1, 0.9], 1) and not is_top([0.1, 0.9], 0) and not is_top([0.5, 0.5], 0)


@pytest.mark.parametrize("change, error, words", [
    (dict(class_index=2.9), ValueError, "class_index must be an integer"),
    (dict(class_index=True), ValueError, "class_index must be an integer"),
    (dict(class_index=[0, 1]), ValueError, "class_index has 2 classes for 1 image(s)"),
    (dict(class_index=[]), ValueError, "class_index must be an integer or one per image"),
    (dict(x="nan"), ValueError, "x holds NaN or infinite values"),
    (dict(x="3d"), ValueError, "x must be (N, 64, 64, 3) with N >= 1"),
    (dict(x="list"), TypeError, "x must be a NumPy array"),
    (dict(model="file"), TypeError, "model must be a vggnp model")])
def test_grad_cam_refuses_bad_arguments_naming_them(shapes_model, change, error, words):
    """The README's own call checks what explain checks: class 2 was explained for
    class_index=2.9, a NaN image gave a map of NaNs and class 0, the rest failed deep in
    NumPy or in the Winograd path."""
    import re
    x = np.zeros((1, 64, 64, 3), np.float32)
    x = {"nan": np.full_like(x, np.nan), "3d": x[0], "list": x.tolist()}.get(
        change.pop("x", None), x)
    model = "shapes.keras" if change.pop("model", None) else shapes_model
    with pytest.raises(error, match=re.escape(words)):
        grad_cam(model, x, **change)
