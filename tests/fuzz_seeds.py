"""The seeds of the fuzz harness (issue #15): the small valid file of each target that
every mutant is made from, made in code (nothing binary is committed).

A 40x30 picture saved in each image format (IMAGE_FORMATS), the demo model
weights/shapes_convnet.keras, a narrow VGG16 in the official file's layout
(``kerasfiles.write_keras1_h5``) and the demo model's labels. TARGETS names each target's
file kind, SUFFIXES its file name suffix.
"""

import io
import json
import os
import tempfile

import numpy as np
from PIL import Image

from vggnp.nn.random_init import random_vgg16_weights

try:
    from kerasfiles import write_keras1_h5  # under pytest, and in the worker (tests/ on the path)
except ImportError:  # imported as tests.fuzz_seeds by python -m scripts.fuzz
    from tests.kerasfiles import write_keras1_h5

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DEMO_MODEL = os.path.join(ROOT, "weights", "shapes_convnet.keras")
CIRCLE = os.path.join(ROOT, "examples", "circle.png")
LABELS = b"circle\nsquare\ntriangle\n"  # the demo model's 3 classes
H5_INPUT = (32, 32)  # the narrow VGG16's input: fc1 takes 1 x 1 x 8 values

IMAGE_FORMATS = {  # target: (Pillow format, save options, file suffix)
    "png": ("PNG", {}, ".png"),
    "jpeg": ("JPEG", {"quality": 90}, ".jpg"),  # with an EXIF orientation (see image_seed)
    "jpeg_progressive": ("JPEG", {"quality": 90, "progressive": True}, ".jpg"),
    "gif": ("GIF", {"duration": 100, "loop": 0}, ".gif"),  # 3 frames
    "bmp": ("BMP", {}, ".bmp"),
    "tiff": ("TIFF", {}, ".tif"),
    "webp": ("WEBP", {"quality": 80}, ".webp"),
    "ico": ("ICO", {"sizes": [(16, 16), (24, 24)]}, ".ico"),
    "avif": ("AVIF", {"quality": 80}, ".avif"),
}
TARGETS = {**{name: "image" for name in IMAGE_FORMATS}, "keras": "model", "h5": "weights",
           "labels": "labels", "results": "results", "tempname": "tempname",
           "selftest": "selftest"}
SUFFIXES = {"keras": ".keras", "h5": ".h5", "labels": ".txt", "selftest": ".txt",
            "results": ".jsonl", "tempname": ".name",
            **{name: suffix for name, (_, _, suffix) in IMAGE_FORMATS.items()}}


def picture(shift=0):
    """The 40x30 RGB seed picture: smooth colours (JPEG keeps them); shift makes frames."""
    y, x = np.mgrid[0:30, 0:40]
    rgb = np.stack([x * 6 + shift, y * 8 + shift // 2, 255 - x * 6], axis=-1) % 256
    return Image.fromarray(rgb.astype(np.uint8))


def image_seed(target):
    """The seed picture saved as ``target`` (IMAGE_FORMATS), as bytes."""
    fmt, options, _ = IMAGE_FORMATS[target]
    options = dict(options)
    if target == "gif":
        options.update(save_all=True, append_images=[picture(40), picture(80)])
    if target == "jpeg":
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation: rotate on display, as phones write it
        options["exif"] = exif
    buffer = io.BytesIO()
    picture().save(buffer, fmt, **options)
    return buffer.getvalue()


def h5_seed():
    """A narrow VGG16 (widths 4-8, fc 16-16-10, for a 32x32 input) in the Keras 1 layout."""
    weights = random_vgg16_weights(widths=(4, 4, 8, 8, 8), dense=(16, 16, 10),
                                   input_size=H5_INPUT, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "vgg16.h5")
        write_keras1_h5(path, weights)
        with open(path, "rb") as f:
            return f.read()


def results_seed():
    """A results file as a run writes it: an intent line, its success record, a failure."""
    overlay = os.path.join(tempfile.gettempdir(), "circle_circle_cam.jpg")
    entry = {"index": 0, "name": "circle", "score": 0.9}
    lines = [
        {"image": CIRCLE, "path": CIRCLE, "writing": [overlay], "started_ns": 1},
        {"image": CIRCLE, "path": CIRCLE, "size": 1000, "mtime_ns": 5, "top": [entry],
         "class": entry, "method": "gradcam", "layer": "conv2d_11", "target": "logit",
         "empty": False, "model": DEMO_MODEL, "notes": ["a note"],
         "outputs": {"overlay": overlay}, "stamps": {overlay: [10, 20]}, "box": [1, 2, 3, 4],
         "deletion_auc": 0.1, "insertion_auc": 0.9, "deletion_curve": [1.0, 0.5],
         "insertion_curve": [0.0, 1.0]},
        {"image": "gone.png", "path": "/gone.png", "error": "no such file"}]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def make_seed(target):
    if target in IMAGE_FORMATS:
        return image_seed(target)
    if target == "results":
        return results_seed()
    if target == "tempname":
        return b".vggnp-tmp-4194304-circle_circle_cam.jpg"
    if target == "keras":
        with open(DEMO_MODEL, "rb") as f:
            return f.read()
    return h5_seed() if target == "h5" else LABELS
