"""Image loading and preprocessing, identical to Keras' for VGG16.

Keras does two things before VGG16 sees a photo:
1. ``keras.utils.load_img(path, target_size=(224, 224))``: open with Pillow, convert to RGB
   (alpha is dropped, not composited), resize with PIL's NEAREST filter.
2. ``keras.applications.vgg16.preprocess_input`` ("caffe" mode): RGB -> BGR, then subtract
   the ImageNet channel means (B 103.939, G 116.779, R 123.68); no scaling to [0, 1].
"""

import numpy as np
from PIL import Image

from . import spec

# ImageNet mean of each channel, in the BGR order the original Caffe weights used.
BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def load_img(path, target_size=spec.INPUT_SIZE):
    """Open an image as Keras' ``load_img`` does. target_size: (H, W) or None.

    Returns a PIL RGB image of size (W, H) (PIL's order).
    """
    with Image.open(path) as img:
        img = img.convert("RGB") if img.mode != "RGB" else img.copy()
    if target_size is not None and img.size != (target_size[1], target_size[0]):
        img = img.resize((target_size[1], target_size[0]), Image.NEAREST)
    return img


def preprocess_input(x):
    """x: (..., 3) RGB values in [0, 255] -> new float32 array (..., 3), BGR minus mean.

        out[..., c] = x[..., 2 - c] - BGR_MEAN[c]
    Unlike Keras' version, never modifies or returns a view of the caller's array.
    """
    x = np.asarray(x, dtype=np.float32)
    return x[..., ::-1] - BGR_MEAN


def load_image(path, target_size=spec.INPUT_SIZE):
    """Read an image file ready for VGG16: (1, H, W, 3) float32, preprocessed as Keras does."""
    rgb = np.asarray(load_img(path, target_size), dtype=np.float32)
    return preprocess_input(rgb)[None]


PREPROCESS_MODES = ("vgg16", "rescale", "none")


def preprocess(rgb, mode):
    """rgb: (..., C) values in [0, 255] -> a new float32 model input, as the model was trained:

        vgg16:   preprocess_input above (BGR minus the ImageNet means; needs C = 3)
        rescale: rgb / 255   (the book's ImageDataGenerator(rescale=1./255))
        none:    rgb as it is (the model has its own Rescaling layer)
    """
    if mode == "vgg16":
        return preprocess_input(rgb)
    rgb = np.array(rgb, dtype=np.float32)
    if mode == "rescale":
        return rgb / np.float32(255)
    if mode == "none":
        return rgb
    raise ValueError(f"preprocess must be one of {PREPROCESS_MODES}, not {mode!r}")
