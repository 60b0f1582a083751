"""The arguments of ``explain`` and ``explain_files`` checked for a caller in Python, as the
command line's parser checks its options: one ValueError or TypeError naming the argument,
before any pass, instead of an error from deep inside NumPy (or, for ``workers=0``, a
stream that never ends)."""

import collections.abc
import inspect
import math
import numbers
import os

import numpy as np

from .array_checks import check_class_index, check_count, check_model
from .gradcam import conv_layer
from .lrp import input_bounds, model_refusal
from .registry import OPTION_DEFAULTS, filled_options, method_record, refusal
from ..files.images import read_image
from ..files.preprocess import PREPROCESS_MODES


def check_method_arguments(model, record, layer, target, trace, batch_size, own):
    """What explain and explain_files check before any pass: batch_size and the method's
    own options (``own``, filled: steps, samples >= 1; noise finite >= 0; seed None or an
    integer >= 0; lrp's epsilon and gamma are its composite's, ``composite_refusal``); the
    target, layer and trace the method allows (``registry.refusal``), softmax only from a
    model that gives probabilities; the layer one of the model's maps. Returns (target,
    layer), the defaults filled in."""
    for name in ("batch_size", "steps", "samples"):
        check_count(name, batch_size if name == "batch_size" else own[name])
    noise = own["noise"]
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or \
            not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, not {noise!r}")
    seed = own["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise ValueError(f"seed must be an integer >= 0, not {seed!r}")
    target = target or record.targets[0]
    refused = refusal(record, layer, target, trace)
    if refused:
        raise ValueError(refused)
    if target == "softmax" and model.output_activation not in ("softmax", "sigmoid"):
        raise ValueError(f"{record.name} with target softmax needs class probabilities, but "
                         f"the model's last layer ({model.names[-1]}) is "
                         f"{model.output_activation}: its outputs are logits")
    return target, conv_layer(model, layer) if record.layer else layer


def check_stream_arguments(model, sources, method, layer, class_index, target, trace,
                           batch_size, workers, mode, method_options, read_options):
    """explain_files' arguments, all at once (one error now, not one per image): sources
    a sequence or iterable of items, not one path (a str, whose characters would each be
    taken as a path); workers >= 1; mode None or a known preprocessing; read_options
    read_image's keyword arguments (their values are checked per image); method_options the
    method's own (another method's, or an unknown name, refused), lrp's rule one that fits
    the model (``lrp.model_refusal``); class_index one for all, or one per source; the
    rest as explain's (``check_method_arguments``).
    """
    if isinstance(sources, (str, bytes, os.PathLike)):
        raise TypeError("sources must be a list (or any iterable) of paths, pictures or "
                        f"arrays, not one {type(sources).__name__}: pass [{sources!r}]")
    check_model(model)
    check_count("workers", workers)
    if mode is not None and mode not in PREPROCESS_MODES:
        raise ValueError(f"mode must be one of {', '.join(PREPROCESS_MODES)}, not {mode!r}")
    readable = list(inspect.signature(read_image).parameters)[1:]  # after the path
    unknown = sorted(set(read_options) - set(readable))
    if unknown:
        raise TypeError(f"read_options: unknown {', '.join(map(repr, unknown))}; "
                        f"read_image takes {', '.join(readable)}")
    unknown = sorted(set(method_options) - set(OPTION_DEFAULTS))
    if unknown:
        raise TypeError(f"method_options: unknown {', '.join(map(repr, unknown))}; the "
                        f"methods' options are {', '.join(OPTION_DEFAULTS)}")
    record = method_record(method)
    own = filled_options(record, {name: method_options.get(name) for name in OPTION_DEFAULTS})
    check_method_arguments(model, record, layer, target, trace, batch_size, own)
    sized = isinstance(sources, collections.abc.Sized)
    if np.ndim(class_index) == 1 and not sized:
        raise ValueError("class_index with one class per source needs sources of a known "
                         "length (a list): these are an iterator")
    check_class_index(model, class_index, len(sources) if sized else None)
    if method in ("lrp", "deep-taylor", "deconvnet"):  # the rule, and the model's layers
        refused = model_refusal(model, method, own["rule"], input_bounds(
            mode or model.default_preprocess, model.channels), own["epsilon"], own["gamma"])
        if refused:
            raise ValueError(refused)
