"""The arrays and numbers every explanation takes, checked for a caller in Python: one
ValueError or TypeError naming the argument, before any pass (``arguments.py`` checks
the rest of ``explain``'s and ``explain_files``' arguments; ``grad_cam`` calls these
itself)."""

import numbers

import numpy as np

from ..nn.network import Network


def check_count(name, value):
    """``value`` must be an integer >= 1 (bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, not {value!r}")


def check_model(model):
    """model must be a vggnp network (a file's name is not one)."""
    if not isinstance(model, Network):
        raise TypeError(f"model must be a vggnp model (vggnp.VGG16.load(path), "
                        f"vggnp.load_keras_model(path)), not a {type(model).__name__}")


def check_x(model, x):
    """explain's x (N, H, W, C): a NumPy array of at least one image of the model's input
    shape, every value finite (a NaN gives a map of NaNs and class 0, said by nothing)."""
    check_model(model)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a NumPy array (N, H, W, C), not a {type(x).__name__}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"x must hold real numbers (float32), not {x.dtype}")
    shape = (*model.input_size, model.channels)
    if x.ndim != 4 or x.shape[1:] != shape or len(x) == 0:
        raise ValueError(f"x must be (N, {', '.join(map(str, shape))}) with N >= 1 for this "
                         f"model, not {x.shape} (vggnp.load_image makes such arrays)")
    if not np.isfinite(x).all():
        raise ValueError("x holds NaN or infinite values: not a preprocessed image")


def check_class_index(model, class_index, count):
    """class_index: None (each image's top-1), an integer, or one integer per image (a
    sequence of ``count``; count None: the images not counted yet, any length), each in
    0..K-1 for the model's K classes; not 2.9, nor True, nor [[1]]."""
    if class_index is None:
        return
    indices = np.asarray(class_index)
    if indices.dtype.kind not in "iu" or indices.ndim > 1 or indices.size == 0:
        raise ValueError(f"class_index must be an integer or one per image, not "
                         f"{class_index!r}")
    if indices.ndim == 1 and count is not None and len(indices) != count:
        raise ValueError(f"class_index has {len(indices)} classes for {count} image(s): "
                         "one per image, or one integer for all")
    if indices.min() < 0 or indices.max() >= model.class_count:
        raise ValueError(f"class index {class_index} out of range 0..{model.class_count - 1}")
