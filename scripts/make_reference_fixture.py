"""Write the small offline TensorFlow fixture under tests/data/ (needs tensorflow).

    python -m scripts.make_reference_fixture

A narrow VGG-shaped Keras model (VGG16's layer names and depth, widths 8-16, 64x96 input,
10 classes, realistic random weights) saved with Keras 3 ``save_weights``, plus TF's
outputs on two real photos: the preprocessed inputs, logits, every layer output, and the
gradients of the top-1 logit w.r.t. block5_conv3, block4_conv3 and the input. With
these, tests/test_offline_fixture.py checks vggnp's numerics without TensorFlow.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # before TensorFlow is imported

import numpy as np  # noqa: E402

from tests.tf_reference import build_keras_vgg16, reference  # noqa: E402
from vggnp.nn.random_init import random_vgg16_weights  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "..", "tests", "data")
INPUT_SIZE = (64, 96)
WIDTHS, DENSE = (8, 8, 16, 16, 16), (32, 32, 10)


def main():
    import keras
    import tensorflow as tf
    from PIL import Image
    from skimage import data

    weights = random_vgg16_weights(widths=WIDTHS, dense=DENSE, input_size=INPUT_SIZE, seed=7)
    model = build_keras_vgg16(keras, weights, INPUT_SIZE)
    model.save_weights(os.path.join(DATA, "narrow_vgg16.weights.h5"))
    images = []
    for photo in (data.chelsea(), data.coffee()):
        path = os.path.join(DATA, "_photo.png")
        Image.fromarray(photo).save(path)
        img = keras.utils.load_img(path, target_size=INPUT_SIZE)
        images.append(keras.applications.vgg16.preprocess_input(keras.utils.img_to_array(img)))
        os.remove(path)
    x = np.stack(images)
    ref = reference(tf, keras, model, x)
    arrays = {"x": x, "logits": ref["logits"], "classes": ref["classes"],
              "grad_input": ref["grad_input"]}
    arrays.update({f"outputs/{k}": v for k, v in ref["outputs"].items()})
    arrays.update({f"grads/{k}": v for k, v in ref["grads"].items()})
    np.savez_compressed(os.path.join(DATA, "narrow_vgg16_reference.npz"), **arrays)
    print(f"wrote the fixture to {os.path.normpath(DATA)} (TensorFlow {tf.__version__}, "
          f"Keras {keras.__version__}); top-1 classes {ref['classes']}")


if __name__ == "__main__":
    main()
