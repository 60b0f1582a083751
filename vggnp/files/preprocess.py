"""From a picture to the model's input, as Keras does it for VGG16.

Keras does two things before VGG16 sees a photo:
1. ``keras.utils.load_img(path, target_size=(224, 224))``: open with Pillow, convert to RGB
   (alpha is dropped, not composited), resize with PIL's NEAREST filter.
2. ``keras.applications.vgg16.preprocess_input`` ("caffe" mode): RGB -> BGR, then subtract
   the ImageNet channel means (B 103.939, G 116.779, R 123.68); no scaling to [0, 1].
vggnp's :func:`load_image` (the Python API and the command line alike) reads the file with
``images.read_image`` (upright by its EXIF orientation, transparency composited, 16-bit and
float scaled), then does step 1's resize and step 2; :func:`load_img` is Keras' own step 1,
kept as the reference the tests compare with. For an ordinary RGB, grey or palette file
the two give the same pixels.
"""

import numbers
import os

import numpy as np
from PIL import Image

from ..nn import spec
from .images import read_image

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


def load_image(path, target_size=spec.INPUT_SIZE, mode="vgg16", channels=3,
               allow_truncated=False):
    """Read an image file (or take a PIL image, as it is) ready for a model (by default
    VGG16's input): (1, H, W, C) float32, preprocessed as Keras does (``mode``: see
    :func:`preprocess`); channels: 3 (RGB) or 1 (grey, for a model whose ``channels`` is
    1). The picture is taken as a person sees it (see ``images.read_image``, and its
    allow_truncated); raises ``images.ImageError`` with the reason if it cannot be."""
    if not isinstance(path, (str, bytes, os.PathLike, Image.Image)):
        raise TypeError(f"path must be an image file's path or a PIL image, not "
                        f"{type(path).__name__}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), not {channels!r}")
    if np.shape(target_size) != (2,) or not all(isinstance(n, numbers.Integral) and n >= 1
                                                for n in target_size):
        raise ValueError(f"target_size must be (height, width), not {target_size!r}")
    picture = path.convert("RGB") if isinstance(path, Image.Image) else \
        read_image(path, allow_truncated=allow_truncated)[0]
    return model_input(picture, target_size, channels, mode)[None]


def model_input(picture, size, channels, mode):
    """A PIL RGB picture -> (H, W, C) float32 model input: resized to size = (H, W) with
    nearest-neighbour sampling (as Keras' load_img), grey if C is 1, scaled by ``mode``."""
    h, w = size
    resized = picture.resize((w, h), Image.NEAREST) if picture.size != (w, h) else picture
    if channels == 1:
        return preprocess(np.asarray(resized.convert("L"))[..., None], mode)
    return preprocess(np.asarray(resized), mode)


# Keras' preprocess_input modes by their Keras names (caffe, tf, torch), vggnp's own
# (rescale, none), and vgg16: caffe's older name here, kept as an alias.
PREPROCESS_MODES = ("caffe", "tf", "torch", "rescale", "none", "vgg16")
TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # ImageNet, RGB, in [0, 1]
TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
FLAT_BELOW = 0.5  # grey levels: under half a level of spread, a picture is one colour


def is_bgr(mode):
    """True for caffe (vgg16): the model's channels are BGR, a picture's RGB."""
    return mode in ("caffe", "vgg16")


def grey_level_spread(x, mode):
    """The largest standard deviation of one channel of a model input x (H, W, C), in
    8-bit grey levels (each mode of :func:`preprocess` is per channel x * s + t; this
    divides by s): 0 for an image of one flat colour."""
    scale = {"rescale": 1 / 255, "tf": 1 / 127.5, "torch": 1 / (255 * TORCH_STD)}.get(mode, 1)
    return float((x.std(axis=(0, 1)) / scale).max())


def channels_refusal(mode, channels):
    """Why ``mode`` cannot preprocess images of ``channels`` channels, or None: caffe and
    torch subtract one mean per colour, three of them."""
    if mode in ("caffe", "vgg16", "torch") and channels != 3:
        return (f"preprocess {mode} needs 3 channels (its means are per colour), not "
                f"{channels}: a grey-level model takes tf, rescale or none")
    return None


def preprocess(rgb, mode):
    """rgb: (..., C) values in [0, 255] -> a new float32 model input, as the model was trained:

        caffe (vgg16): preprocess_input above (BGR minus the ImageNet means; needs C = 3):
                 VGG16, ResNet50
        tf:      rgb / 127.5 - 1, in [-1, 1]: MobileNet, MobileNetV2, Xception, Inception,
                 ResNet50V2 (Keras' imagenet_utils "tf" mode)
        torch:   (rgb / 255 - mean) / std with ImageNet's RGB mean and std: DenseNet
        rescale: rgb / 255   (the book's ImageDataGenerator(rescale=1./255))
        none:    rgb as it is (the model rescales inside: EfficientNet, MobileNetV3, a
                 Rescaling layer)
    """
    refusal = channels_refusal(mode, np.shape(rgb)[-1])
    if refusal:  # (H, W, 1) minus 3 means would broadcast to 3 channels, silently
        raise ValueError(refusal)
    if is_bgr(mode):
        return preprocess_input(rgb)
    rgb = np.array(rgb, dtype=np.float32)
    if mode == "rescale":
        return rgb / np.float32(255)
    if mode == "tf":
        return rgb / np.float32(127.5) - np.float32(1)
    if mode == "torch":
        return (rgb / np.float32(255) - TORCH_MEAN) / TORCH_STD
    if mode == "none":
        return rgb
    raise ValueError(f"preprocess must be one of {PREPROCESS_MODES}, not {mode!r}")
