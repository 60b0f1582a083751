"""The arguments of ``explain`` and ``explain_files`` checked for a caller in Python, as the
command line's parser checks its options: one ValueError or TypeError naming the argument,
before any pass, instead of an error from deep inside NumPy (or, for ``workers=0``, a
stream that never ends)."""

import math
import numbers

import numpy as np

from .registry import OPTION_DEFAULTS, filled_options, method_record


def check_count(name, value):
    """``value`` must be an integer >= 1 (bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, not {value!r}")


def check_explain_arguments(model, x, batch_size, steps, samples, noise, class_index):
    """explain's x (N, H, W, C): a NumPy array of at least one image of the model's input
    shape; batch_size, steps, samples: integers >= 1; noise: a finite number >= 0;
    class_index: None, an integer or integers (not 2.9, nor True)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a NumPy array (N, H, W, C), not a {type(x).__name__}")
    shape = (*model.input_size, model.channels)
    if x.ndim != 4 or x.shape[1:] != shape or len(x) == 0:
        raise ValueError(f"x must be (N, {', '.join(map(str, shape))}) with N >= 1 for this "
                         f"model, not {x.shape} (vggnp.load_image makes such arrays)")
    for name, value in (("batch_size", batch_size), ("steps", steps), ("samples", samples)):
        check_count(name, value)
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or \
            not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, not {noise!r}")
    if class_index is not None and np.asarray(class_index).dtype.kind not in "iu":
        raise ValueError(f"class_index must be an integer or one per image, not "
                         f"{class_index!r}")


def check_stream_arguments(sources, method, batch_size, workers, method_options):
    """explain_files' sources: a sequence or iterable of items, not one path as a str
    (whose characters would each be taken as a path); the method known, and taking the
    options of method_options ({name: value}: one error now, not one per image);
    batch_size, workers >= 1."""
    unknown = sorted(set(method_options) - set(OPTION_DEFAULTS))
    if unknown:
        raise TypeError(f"method_options: unknown {', '.join(map(repr, unknown))}; the "
                        f"methods' options are {', '.join(OPTION_DEFAULTS)}")
    filled_options(method_record(method), method_options)
    if isinstance(sources, (str, bytes)):
        raise TypeError("sources must be a list (or any iterable) of paths, pictures or "
                        f"arrays, not one {type(sources).__name__}: pass [{sources!r}]")
    check_count("batch_size", batch_size)
    check_count("workers", workers)
