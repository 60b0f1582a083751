"""Every layer's output shape and weight shapes, from the configs alone (``model_config``
checks the fields first): computed before any weight is read or array allocated, so that
a crafted file cannot make vggnp allocate 75 GB or divide by zero.
"""

import math

from .hdf5 import ModelError
from .model_config import MAX_IMAGE_BYTES, WINDOWED, _fail, _pair, zero_padding

GLOBAL_POOLS = ("GlobalAveragePooling2D", "GlobalMaxPooling2D")


def window_output(n, window, stride, padding):
    """Keras' output length of a conv or pool along one axis of length n:
        valid: floor((n - window) / stride) + 1   (0 if the window does not fit)
        same:  ceil(n / stride)"""
    if padding == "same":
        return -(-n // stride)
    return (n - window) // stride + 1 if n >= window else 0


def output_shapes(leaves, input_shape, path):
    """The shape of one image's output of each leaf layer of a chain, from the configs
    alone: [(H, W, C) or (D,)]. ModelError if a layer does not fit its input or the
    activations of one image, with every conv's im2col matrix, would need more than
    MAX_IMAGE_BYTES."""
    shape, shapes, elements = tuple(input_shape), [], 0
    for kind, cfg in leaves:
        shape, unfolded = layer_output(kind, cfg, shape, path)
        shapes.append(shape)
        elements += unfolded + math.prod(shape)
    check_memory(elements, path)
    return shapes


def check_memory(elements, path):
    """ModelError if one image's float32 activations (``elements`` values) pass the limit."""
    if 4 * elements > MAX_IMAGE_BYTES:
        raise ModelError(f"{path}: the activations of one image would take "
                         f"{4 * elements / 2**30:.1f} GB (the limit is "
                         f"{MAX_IMAGE_BYTES / 2**30:.0f} GB); not a model vggnp can run")


def layer_output(kind, cfg, shape, path):
    """(the output shape of one image, the im2col values it unfolds) of a one-input layer
    of ``kind`` on an input of ``shape``; ModelError if it does not fit."""
    name = cfg["name"]
    if kind in WINDOWED + GLOBAL_POOLS + ("Flatten", "ZeroPadding2D", "Cropping2D") \
            and len(shape) != 3:
        _fail(path, name, f"a {kind} after a layer with output shape {shape}")
    if kind == "Dense" and len(shape) != 1:
        raise ModelError(f"{path}: layer {name}: a Dense layer on a {shape} input; "
                         "vggnp supports Dense after Flatten or GlobalAveragePooling2D")
    if kind in WINDOWED:
        return _windowed(kind, cfg, shape, path)
    if kind == "ZeroPadding2D":
        (top, bottom), (left, right) = zero_padding(cfg, path, "padding")
        return (shape[0] + top + bottom, shape[1] + left + right, shape[2]), 0
    if kind == "Cropping2D":
        (top, bottom), (left, right) = zero_padding(cfg, path, "cropping")
        if top + bottom >= shape[0] or left + right >= shape[1]:
            raise ModelError(f"{path}: layer {name}: crops more than its {shape[0]}x"
                             f"{shape[1]} input")
        return (shape[0] - top - bottom, shape[1] - left - right, shape[2]), 0
    if kind in GLOBAL_POOLS:
        return ((1, 1, shape[2]) if cfg.get("keepdims") else (shape[2],)), 0
    if kind == "Flatten":
        return (shape[0] * shape[1] * shape[2],), 0
    if kind == "Dense":
        return (cfg["units"],), 0
    if kind == "Reshape":
        return _reshaped(cfg, shape, path), 0
    return tuple(shape), 0


def _windowed(kind, cfg, shape, path):
    """(output shape, im2col values) of a convolution or pool on an input of ``shape``."""
    name = cfg["name"]
    pool = kind.endswith("Pooling2D")
    window = _pair(cfg.get("pool_size" if pool else "kernel_size"), path, name, "window",
                   2)
    if not pool:  # a dilated kernel spans d (k - 1) + 1 pixels
        rate = _pair(cfg.get("dilation_rate"), path, name, "dilation_rate", 1)
        window = tuple(d * (k - 1) + 1 for d, k in zip(rate, window))
    strides = _pair(cfg.get("strides") or (list(window) if pool else 1), path, name,
                    "strides", 1)
    padding = cfg.get("padding", "valid")
    h, w = (window_output(n, k, s, padding) for n, k, s in zip(shape, window, strides))
    if h < 1 or w < 1:
        raise ModelError(f"{path}: layer {name}: a {window[0]}x{window[1]} window "
                         f"does not fit its {shape[0]}x{shape[1]} input")
    # the im2col matrix a Conv2D may build; a depthwise one contracts views (none)
    unfolded = h * w * window[0] * window[1] * shape[2] if kind == "Conv2D" else 0
    groups = cfg.get("groups", 1) if kind == "Conv2D" else 1
    if groups > 1 and (shape[2] % groups or cfg["filters"] % groups):
        raise ModelError(f"{path}: layer {name}: {groups} groups do not divide its "
                         f"{shape[2]} input channels and {cfg['filters']} filters")
    channels = {"Conv2D": cfg.get("filters"), "SeparableConv2D": cfg.get("filters"),
                "DepthwiseConv2D": shape[2] * cfg.get("depth_multiplier", 1)}
    return (h, w, channels.get(kind, shape[2])), unfolded


def weight_shapes(kind, cfg, input_shape):
    """The shapes a layer's weight arrays must have, in Keras' order, for an input of
    ``input_shape`` (one image)."""
    bias = cfg.get("use_bias", True)
    if kind == "Conv2D":
        kh, kw = _pair(cfg["kernel_size"], None, None, "kernel_size", None)  # checked before
        channels = input_shape[-1] // cfg.get("groups", 1)
        return [(kh, kw, channels, cfg["filters"])] + [(cfg["filters"],)] * bias
    if kind in ("DepthwiseConv2D", "SeparableConv2D"):
        kh, kw = _pair(cfg["kernel_size"], None, None, "kernel_size", None)
        c, m = input_shape[-1], cfg.get("depth_multiplier", 1)
        if kind == "DepthwiseConv2D":
            return [(kh, kw, c, m)] + [(c * m,)] * bias
        return [(kh, kw, c, m), (1, 1, c * m, cfg["filters"])] + [(cfg["filters"],)] * bias
    if kind == "Dense":
        return [(input_shape[0], cfg["units"])] + [(cfg["units"],)] * bias
    if kind == "BatchNormalization":
        count = 2 + cfg.get("scale", True) + cfg.get("center", True)
        return [(input_shape[-1],)] * count
    if kind == "Normalization" and cfg.get("mean") is None:  # else constants in the config
        return [(input_shape[-1],), (input_shape[-1],), ()]  # mean, variance, count
    if kind == "PReLU":  # alpha: the input's shape, 1 on the shared axes
        shared = cfg.get("shared_axes") or ()
        return [tuple(1 if axis in shared else n for axis, n in enumerate(input_shape, 1))]
    return []


def _reshaped(cfg, shape, path):
    target = cfg.get("target_shape")
    if not (isinstance(target, list) and target and all(type(n) is int and n >= 1
                                                        for n in target)):
        raise ModelError(f"{path}: layer {cfg['name']}: target_shape = {str(target)[:40]}: "
                         "not a list of sizes >= 1 (vggnp does not infer a -1)")
    if math.prod(target) != math.prod(shape):
        raise ModelError(f"{path}: layer {cfg['name']}: {shape} cannot be reshaped to {target}")
    return tuple(target)
