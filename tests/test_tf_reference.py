"""vggnp equals TensorFlow/Keras on the full-size VGG16, loaded from every Keras format.

The Keras model is ``keras.applications.VGG16(weights=None)`` given realistic random
weights (He-normal, non-zero biases); the inputs are real photos shipped with scikit-image.
Tolerances (relative to each tensor's max |value|): 1e-4 for logits, every conv and pool
output and d logit / d block5_conv3; 1e-3 for d logit / d input.
"""

import numpy as np
import pytest

from kerasfiles import write_keras1_h5
from reference_check import compare_backward, compare_forward
from scripts.tf_reference import reference, set_weights
from vggnp import VGG16, load_image
from vggnp.random_init import random_vgg16_weights

FORMATS = ["keras1_official_layout.h5", "keras2_save_weights.h5", "keras2_model_save.h5",
           "keras3.weights.h5", "keras3_model_save.h5", "keras3.keras"]


@pytest.fixture(scope="session")
def photos(tmp_path_factory):
    """Two real photos from scikit-image (a cat; a cup of coffee), as JPEG and PNG files."""
    from PIL import Image
    from skimage import data
    folder = tmp_path_factory.mktemp("photos")
    paths = [folder / "chelsea.jpg", folder / "coffee.png"]
    Image.fromarray(data.chelsea()).save(paths[0], quality=95)
    Image.fromarray(data.coffee()).save(paths[1])
    return paths


@pytest.fixture(scope="session")
def keras_files(tf, tmp_path_factory, photos):
    """The weights saved in every supported format, and TensorFlow's reference values."""
    import keras
    import tf_keras

    folder = tmp_path_factory.mktemp("keras_files")
    weights = random_vgg16_weights(seed=0)
    model = keras.applications.VGG16(weights=None)
    set_weights(model, weights)
    model.save_weights(folder / "keras3.weights.h5")
    model.save(folder / "keras3_model_save.h5")
    model.save(folder / "keras3.keras")
    write_keras1_h5(folder / "keras1_official_layout.h5", weights)
    model2 = tf_keras.applications.VGG16(weights=None)
    set_weights(model2, weights)
    model2.save_weights(str(folder / "keras2_save_weights.h5"))
    model2.save(str(folder / "keras2_model_save.h5"))
    del model2

    x = np.concatenate([
        keras.applications.vgg16.preprocess_input(
            keras.utils.img_to_array(keras.utils.load_img(p, target_size=(224, 224)))[None])
        for p in photos])
    refs = {"top": reference(tf, keras, model, x),
            "chosen": reference(tf, keras, model, x, class_indices=[386, 285])}
    return folder, x, refs


def test_realistic_weights_are_not_degenerate(keras_files):
    _, _, refs = keras_files
    for name, a in refs["top"]["outputs"].items():  # ReLU outputs: some, not all, positive
        alive = (a > 0).mean()
        assert 0.05 < alive < 0.95, (name, alive)
    assert np.abs(refs["top"]["grads"]["block5_conv3"]).max() > 0


def test_preprocessing_equals_keras(keras_files, photos):
    _, x, _ = keras_files
    ours = np.concatenate([load_image(p) for p in photos])
    assert ours.dtype == np.float32
    assert np.array_equal(ours, x)


@pytest.mark.parametrize("filename", FORMATS)
def test_equals_tensorflow(keras_files, filename):
    folder, x, refs = keras_files
    model = VGG16.load(folder / filename)
    errors, ties = compare_forward(model, x, refs["top"])
    errors.update(compare_backward(model, x, refs["top"]))
    print(filename, f"near-tied block5 windows: {ties}", {k: f"{v:.1e}" for k, v in errors.items()})


def test_chosen_class_and_other_layer(keras_files):
    folder, x, refs = keras_files
    model = VGG16.load(folder / "keras3.weights.h5")
    compare_forward(model, x, refs["chosen"])
    compare_backward(model, x, refs["chosen"], layer="block4_conv3")
