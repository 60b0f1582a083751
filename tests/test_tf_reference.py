"""vggnp equals TensorFlow/Keras on the full-size VGG16, loaded from every Keras format.

The Keras model is ``keras.applications.VGG16(weights=None)`` given realistic random
weights (He-normal, non-zero biases); the inputs are real photos shipped with scikit-image.
The reference is TensorFlow's Eigen CPU path (TF_ENABLE_ONEDNN_OPTS=0, tests/conftest.py),
not its default oneDNN one: ``python -m scripts.tf_paths`` measures how far apart they are.
Tolerances (max |difference| / max |TF's value|, see tests/reference_check.py):
- end to end: 1e-4 for the logits, every layer output and d logit / d block5_conv3 and
  block4_conv3 (by window sum in near-tied max-pool windows); 5e-2 for d logit / d input;
- on TensorFlow's activations: 1e-4 for d logit / d block5_conv3, block4_conv3 and input.
"""

import os

import numpy as np
import pytest

from kerasfiles import FORMATS
from reference_check import compare_backward, compare_forward
from vggnp import VGG16, load_image


def test_realistic_weights_are_not_degenerate(keras_files):
    _, _, refs, _ = keras_files
    for name, a in refs["top"]["outputs"].items():  # ReLU outputs: some, not all, positive
        alive = (a > 0).mean()
        assert 0.05 < alive < 0.95, (name, alive)
    assert np.abs(refs["top"]["grads"]["block5_conv3"]).max() > 0


def test_preprocessing_equals_keras(keras_files, photos, tmp_path):
    import keras
    from PIL import Image
    _, x, _, _ = keras_files
    ours = np.concatenate([load_image(p) for p in photos])
    assert ours.dtype == np.float32
    assert np.array_equal(ours, x)
    # Other modes: RGBA (Keras drops alpha), grayscale, palette; a non-square target size.
    rgba = tmp_path / "rgba.png"
    Image.open(photos[0]).convert("RGBA").save(rgba)
    gray = tmp_path / "gray.png"
    Image.open(photos[1]).convert("L").save(gray)
    palette = tmp_path / "palette.png"
    Image.open(photos[1]).convert("P").save(palette)
    for path in (rgba, gray, palette):
        img = keras.utils.img_to_array(keras.utils.load_img(path, target_size=(150, 200)))
        expected = keras.applications.vgg16.preprocess_input(img[None])
        assert np.array_equal(load_image(path, target_size=(150, 200)), expected), path


def test_preprocess_input_leaves_the_callers_array_alone():
    from vggnp import preprocess_input
    rgb = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)
    before = rgb.copy()
    out = preprocess_input(rgb)
    assert np.array_equal(rgb, before) and not np.shares_memory(out, rgb)
    assert np.allclose(out[0, 0, 0], [2 - 103.939, 1 - 116.779, 0 - 123.68])


@pytest.mark.parametrize("filename", FORMATS)
def test_equals_tensorflow(keras_files, filename):
    folder, x, refs, _ = keras_files
    model = VGG16.load(folder / filename)
    report(filename, model, x, refs["top"], "block5_conv3")


def test_chosen_class_and_other_layer(keras_files):
    folder, x, refs, _ = keras_files
    model = VGG16.load(folder / "keras3.weights.h5")
    report("chosen classes", model, x, refs["chosen"], "block4_conv3")


def report(what, model, x, ref, layer):
    """Both comparisons (they assert their tolerances); prints the measured errors (-s)."""
    end_to_end, ties, kinks = compare_forward(model, x, ref)
    on_tf = compare_backward(model, x, ref, layer=layer)
    print(f"\n{what}: near-tied windows {ties}, ReLU kinks and pool windows aligned {kinks}\n  end to end: "
          + ", ".join(f"{k} {v:.1e}" for k, v in end_to_end.items())
          + "\n  on TF's activations: " + ", ".join(f"{k} {v:.1e}" for k, v in on_tf.items()))


def test_reference_is_tensorflows_eigen_path(tf, keras_files):
    """TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it is imported, and reports the
    result: the references above came from its Eigen kernels, not its default oneDNN ones."""
    from tensorflow.python.framework.test_util import IsMklEnabled
    assert os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0"
    assert not IsMklEnabled(), "TensorFlow runs its oneDNN kernels: the reference is not Eigen's"


def test_export_script_writes_a_file_vggnp_loads(keras_files, tmp_path):
    import subprocess
    import sys
    folder, _, _, keras_model = keras_files
    out = tmp_path / "exported.h5"
    result = subprocess.run([sys.executable, "scripts/export_keras_weights.py",
                             str(folder / "keras3.keras"), "-o", str(out)],
                            capture_output=True, text=True, timeout=300,
                            cwd=os.path.join(os.path.dirname(__file__), ".."))
    assert result.returncode == 0, result.stderr
    model = VGG16.load(out)
    for name in ("block1_conv1", "block5_conv3", "predictions"):
        kernel, bias = keras_model.get_layer(name).get_weights()
        assert np.array_equal(model.layer(name).w, kernel)
        assert np.array_equal(model.layer(name).b, bias)
