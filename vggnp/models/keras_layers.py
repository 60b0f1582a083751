"""One vggnp layer from one Keras layer's class name, config and weight arrays, with every
field checked against what vggnp supports (``keras_convnet.py`` walks the model and calls
:func:`build_layer` for each leaf layer). Plain convolutions are built on the fast path
(``FastConv2D``); dilated and grouped ones (``nn/sparse_kernels.py``) and the other layers
are the lesson's own."""

import numpy as np

from ..fast.depthwise import FastDepthwiseConv2D
from ..fast.layers import FastConv2D
from ..fast.pooling import FastMaxPool2D
from ..files.hdf5 import ModelError
from ..files.layer_fields import activation_name
from ..nn.convnet_layers import (Activation, AvgPool2D, BatchNorm, Dropout, GlobalAvgPool2D,
                                 GlobalMaxPool2D, Rescaling, Reshape)
from ..files.model_config import zero_padding
from ..files.model_wiring import CONSTANT_OP
from ..nn.activation_layers import ELU, PReLU
from ..nn.graph_layers import (ConstantOp, Cropping2D, Identity, ReLU, SeparableConv2D,
                               ZeroPadding2D)
from ..nn.sparse_kernels import DilatedDepthwiseConv2D, SparseKernelConv2D
from ..nn.merge_layers import Add, Average, Concatenate, Maximum, Multiply, Subtract
from ..nn.layers import Dense, Flatten

MERGE_LAYERS = {"Add": Add, "Subtract": Subtract, "Average": Average, "Multiply": Multiply,
                "Maximum": Maximum, "Concatenate": Concatenate}


def _pair(value):
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


def build_layer(kind, cfg, arrays, workspace, path):
    """One vggnp layer from a Keras layer's class name and config (checked by
    ``model_config.check_layer``) and its weight arrays (checked against the config's
    shapes by ``keras_convnet``): ``arrays[name]``."""
    name = cfg["name"]
    weights = arrays[name]
    if kind == "Conv2D":
        bias = weights[1] if len(weights) == 2 else None
        dilation, groups = _pair(cfg.get("dilation_rate", 1)), cfg.get("groups", 1)
        if dilation != (1, 1) or groups != 1:
            return SparseKernelConv2D(name, weights[0], bias, activation_name(cfg, path),
                                      _pair(cfg.get("strides", 1)), cfg.get("padding", "valid"),
                                      dilation, groups)
        return FastConv2D(name, weights[0], bias, activation_name(cfg, path),
                          strides=_pair(cfg.get("strides", 1)),
                          padding=cfg.get("padding", "valid"), buffers=workspace)
    if kind == "Dense":
        return Dense(name, weights[0], weights[1] if len(weights) == 2 else None,
                     activation_name(cfg, path))
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        strides = cfg.get("strides")
        window = (_pair(cfg.get("pool_size") or 2), _pair(strides) if strides else None,
                  cfg.get("padding", "valid"))
        if kind == "MaxPooling2D":
            return FastMaxPool2D(name, *window, buffers=workspace)
        return AvgPool2D(name, *window)
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        cls = GlobalAvgPool2D if kind == "GlobalAveragePooling2D" else GlobalMaxPool2D
        return cls(name, cfg.get("keepdims", False))
    if kind == "Flatten":
        return Flatten(name)
    if kind == "Dropout":
        return Dropout(name, cfg.get("rate", 0.5))
    if kind == "Activation":
        return Activation(name, activation_name(cfg, path))
    if kind == "Rescaling":
        return _rescaling(cfg)
    if kind in GRAPH_LAYER_KINDS:
        return _graph_layer(kind, cfg, weights, workspace, path)
    return _batch_norm(cfg, weights, path)


def _rescaling(cfg):
    """Rescaling: out = x * scale + offset, each a number or one per channel (a list,
    checked by ``model_config``; float64: Rescaling casts to the input's dtype)."""
    return Rescaling(cfg["name"], *(np.array(v, np.float64) if isinstance(v, list) else float(v)
                                    for v in (cfg.get("scale", 1.0), cfg.get("offset", 0.0))))


# The layers Keras Applications' graphs add (issue #25).
GRAPH_LAYER_KINDS = ("DepthwiseConv2D", "SeparableConv2D", "ZeroPadding2D", "ReLU", "Reshape",
                     "Cropping2D", "LeakyReLU", "PReLU", "ELU", "Identity", "Normalization",
                     CONSTANT_OP, *MERGE_LAYERS)


def _depthwise(name, w, b, activation, strides, padding, dilation, workspace):
    """A depthwise convolution on its fast path, or, dilated, as the spread kernel's."""
    if dilation != (1, 1):
        return DilatedDepthwiseConv2D(name, w, b, activation, strides, padding, dilation)
    return FastDepthwiseConv2D(name, w, b, activation, strides, padding, buffers=workspace)


def _graph_layer(kind, cfg, weights, workspace, path):
    name = cfg["name"]
    strides, padding = _pair(cfg.get("strides", 1)), cfg.get("padding", "valid")
    dilation = _pair(cfg.get("dilation_rate", 1))
    if kind == "DepthwiseConv2D":
        return _depthwise(name, weights[0], weights[1] if len(weights) == 2 else None,
                          activation_name(cfg, path), strides, padding, dilation, workspace)
    if kind == "SeparableConv2D":
        depthwise = _depthwise(f"{name}/depthwise", weights[0], None, "linear", strides,
                               padding, dilation, workspace)
        return SeparableConv2D(name, depthwise, weights[1],
                               weights[2] if len(weights) == 3 else None,
                               activation_name(cfg, path))
    if kind == "ZeroPadding2D":
        return ZeroPadding2D(name, zero_padding(cfg, path, "padding"))
    if kind == "ReLU":
        return ReLU(name, cfg.get("max_value"), cfg.get("negative_slope", 0.0),
                    cfg.get("threshold", 0.0))
    if kind == "LeakyReLU":
        return ReLU(name, None, cfg.get("negative_slope", cfg.get("alpha", 0.3)))
    if kind == "Cropping2D":
        return Cropping2D(name, zero_padding(cfg, path, "cropping"))
    if kind == "PReLU":
        return PReLU(name, weights[0])
    if kind == "ELU":
        return ELU(name, cfg.get("alpha", 1.0))
    if kind == "Identity":
        return Identity(name)
    if kind == CONSTANT_OP:
        return ConstantOp(name, cfg["op"], cfg["constant"])  # a Python number, as Keras
    if kind == "Normalization":
        return _normalization(cfg, weights, path)
    if kind == "Reshape":
        return Reshape(name, cfg["target_shape"])
    return MERGE_LAYERS[kind](name, **({"axis": -1} if kind == "Concatenate" else {}))


def _normalization(cfg, weights, path):
    """Keras' Normalization: (x - mean) / max(sqrt(variance), 1e-7), as a Rescaling with
    scale 1 / max(sqrt(variance), 1e-7) and offset -mean * scale per channel; mean and
    variance from the file's weights, or the config's constants (EfficientNetV2)."""
    if cfg.get("mean") is None:
        mean, variance = weights[0], weights[1]
    else:
        mean, variance = (np.array(cfg[field], np.float64) for field in ("mean", "variance"))
    if (variance < 0).any():
        raise ModelError(f"{path}: layer {cfg['name']}: a negative variance; the file is "
                         "damaged")
    scale = 1 / np.maximum(np.sqrt(variance), np.float32(1e-7))
    return Rescaling(cfg["name"], scale, -mean * scale)


def _batch_norm(cfg, weights, path):
    """BatchNormalization: [gamma], [beta], moving mean, moving variance."""
    name = cfg["name"]
    if not any(cfg.get("axis", -1) == axis for axis in (-1, 3, [-1], [3])):
        raise ModelError(f"{path}: layer {name} normalises axis {cfg.get('axis')}; vggnp "
                         "supports the channel axis (-1) only")
    weights = list(weights)
    gamma = weights.pop(0) if cfg.get("scale", True) else None
    beta = weights.pop(0) if cfg.get("center", True) else None
    if (weights[1] < 0).any():
        raise ModelError(f"{path}: layer {name}: a negative moving variance; the file is "
                         "damaged")
    return BatchNorm(name, gamma, beta, weights[0], weights[1], cfg.get("epsilon", 1e-3))
