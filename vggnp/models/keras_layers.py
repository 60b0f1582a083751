"""One vggnp layer from one Keras layer's class name, config and weight arrays, with every
field checked against what vggnp supports (``keras_convnet.py`` walks the model and calls
:func:`build_layer` for each leaf layer). Convolutions are built on the fast path
(``FastConv2D``), the other layers are the lesson's own."""

from ..fast.layers import FastConv2D
from ..files.hdf5 import ModelError
from ..files.layer_fields import activation_name
from ..nn.convnet_layers import (Activation, AvgPool2D, BatchNorm, Dropout, GlobalAvgPool2D,
                                 Rescaling, Reshape)
from ..files.model_config import zero_padding
from ..nn.graph_layers import DepthwiseConv2D, ReLU, SeparableConv2D, ZeroPadding2D
from ..nn.merge_layers import Add, Average, Concatenate, Maximum, Multiply, Subtract
from ..nn.layers import Dense, Flatten, MaxPool2D

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
        return FastConv2D(name, weights[0], bias, activation_name(cfg, path),
                          strides=_pair(cfg.get("strides", 1)),
                          padding=cfg.get("padding", "valid"), buffers=workspace)
    if kind == "Dense":
        return Dense(name, weights[0], weights[1] if len(weights) == 2 else None,
                     activation_name(cfg, path))
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        cls = MaxPool2D if kind == "MaxPooling2D" else AvgPool2D
        strides = cfg.get("strides")
        return cls(name, _pair(cfg.get("pool_size") or 2), _pair(strides) if strides else None,
                   cfg.get("padding", "valid"))
    if kind == "GlobalAveragePooling2D":
        return GlobalAvgPool2D(name)
    if kind == "Flatten":
        return Flatten(name)
    if kind == "Dropout":
        return Dropout(name, cfg.get("rate", 0.5))
    if kind == "Activation":
        return Activation(name, activation_name(cfg, path))
    if kind == "Rescaling":
        scale, offset = cfg.get("scale", 1.0), cfg.get("offset", 0.0)
        if not all(isinstance(v, (int, float)) for v in (scale, offset)):
            raise ModelError(f"{path}: layer {name}: per-channel rescaling is not supported")
        return Rescaling(name, float(scale), float(offset))
    if kind in GRAPH_LAYER_KINDS:
        return _graph_layer(kind, cfg, weights, path)
    return _batch_norm(cfg, weights, path)


# The layers Keras Applications' graphs add (issue #25).
GRAPH_LAYER_KINDS = ("DepthwiseConv2D", "SeparableConv2D", "ZeroPadding2D", "ReLU", "Reshape",
                     *MERGE_LAYERS)


def _graph_layer(kind, cfg, weights, path):
    name = cfg["name"]
    if kind == "DepthwiseConv2D":
        return DepthwiseConv2D(name, weights[0], weights[1] if len(weights) == 2 else None,
                               activation_name(cfg, path), strides=_pair(cfg.get("strides", 1)),
                               padding=cfg.get("padding", "valid"))
    if kind == "SeparableConv2D":
        return SeparableConv2D(name, weights[0], weights[1],
                               weights[2] if len(weights) == 3 else None,
                               activation_name(cfg, path), strides=_pair(cfg.get("strides", 1)),
                               padding=cfg.get("padding", "valid"))
    if kind == "ZeroPadding2D":
        return ZeroPadding2D(name, zero_padding(cfg, path))
    if kind == "ReLU":
        return ReLU(name, cfg.get("max_value"), cfg.get("negative_slope", 0.0),
                    cfg.get("threshold", 0.0))
    if kind == "Reshape":
        return Reshape(name, cfg["target_shape"])
    return MERGE_LAYERS[kind](name, **({"axis": -1} if kind == "Concatenate" else {}))


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
