"""vggnp: VGG16 in NumPy with a hand-written backward pass, explained by Grad-CAM.

The names below are imported when first used (PEP 562), so that ``python -m vggnp.cam``
can install its signal handlers before NumPy and Pillow load: a Ctrl-C in the first
half-second is then one line, not a traceback.
"""

import importlib

_HOMES = {
    "InputError": "files.errors", "ModelError": "files.hdf5", "LabelsError": "files.labels",
    "DownloadError": "files.download", "official_weights": "files.download",
    "class_index": "files.imagenet", "decode_predictions": "files.imagenet",
    "ImageError": "files.images", "read_image": "files.images",
    "load_image": "files.preprocess", "load_img": "files.preprocess",
    "preprocess_input": "files.preprocess",
    "WeightsError": "files.weights", "read_vgg16_weights": "files.weights",
    "explain": "methods.explain", "grad_cam": "methods.gradcam",
    "EmptyMapWarning": "methods.empty_maps",
    "load_keras_model": "models.keras_convnet",
    "VGG16": "models.vgg16", "explain_files": "stream.batches", "overlay": "viz.overlay",
}
__all__ = sorted(_HOMES)
__version__ = "0.1.0"


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module 'vggnp' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOMES))
