"""A Keras model config (the JSON of a .keras or .h5 model file) checked as a schema, before
anything is built or allocated.

    config = parse_config(text, path)             # JSON, size- and depth-limited, finite
    leaves, input_shape = leaf_layers(config, path)
    shapes = output_shapes(leaves, input_shape, path)

Every field vggnp uses is checked for its type and range (kernel, strides and pool >= 1,
known paddings, sizes that fit the input), and every layer's output shape is computed from
the config alone, so a crafted file cannot make vggnp allocate 75 GB or divide by zero.
"""

import json
import math
from collections import Counter

from .hdf5 import MAX_CONFIG_BYTES, MAX_NORM, ModelError
from .layer_fields import check_container, check_fields, refuse
from .model_wiring import (CONSTANT_OP, CONTAINERS, GRAPH_CLASSES, check_chain, json_object,
                           operation)

MAX_DEPTH = 16  # models nested in models
MAX_SIDE = 4096  # input height and width
MAX_IMAGE_BYTES = 2 << 30  # float32 activations of one image, all layers together
CHANNELS = (1, 3)  # grey or RGB input
LAYER_CLASSES = ("Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
                 "Flatten", "Dense", "Dropout", "BatchNormalization", "Activation", "Rescaling",
                 "DepthwiseConv2D", "SeparableConv2D", "ZeroPadding2D", "ReLU",
                 "GlobalMaxPooling2D", "Cropping2D", "LeakyReLU", "PReLU", "ELU", "Identity",
                 "Normalization", "Reshape")
WINDOWED = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D")
PADDINGS = ("valid", "same")
MAX_SCALE = MAX_NORM  # a Rescaling factor: the bound on weights


def parse_config(text, path):
    """The config JSON as a dict; ModelError if it is too large, not JSON, nested deeper
    than Python can parse, or holds NaN / infinite numbers (1e400 parses as inf)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ModelError(f"{path}: the model config is {len(text):,} characters, over the "
                         f"limit of {MAX_CONFIG_BYTES:,}; not a Keras model file")

    def finite(literal):
        value = float(literal)
        if not math.isfinite(value):
            raise ValueError(f"the number {literal[:20]} is not finite")
        return value
    try:
        config = json.loads(text, parse_float=finite, parse_constant=finite)
    except RecursionError:
        raise ModelError(f"{path}: the model config is nested too deeply to be a Keras "
                         "model") from None
    except ValueError as e:  # json.JSONDecodeError, or a non-finite number
        raise ModelError(f"{path}: the model config is not valid JSON ({e}); the file is "
                         "damaged") from None
    return json_object(config, path, "the model config")


def _fail(path, name, message):
    raise ModelError(f"{path}: layer {name}: {message}; the file is damaged or not made by "
                     "Keras")


def leaf_layers(config, path, graph=False):
    """[(class name, layer config)] of the model's layers in order, nested models inlined,
    each checked (``check_layer``), and the input shape (H, W, C). graph: a Functional
    model need not be a chain, and the layers of ``GRAPH_CLASSES`` are allowed too (its
    wiring is read by ``model_graph``)."""
    leaves, shapes = [], []
    _walk(config, path, leaves, shapes, depth=0, graph=graph)
    if not leaves:
        raise ModelError(f"{path}: the model has no layers vggnp can run; not a convnet")
    twice = sorted(name for name, n in Counter(cfg["name"] for _, cfg in leaves).items()
                   if n > 1)
    if twice:  # Keras refuses such a model; its weights and layers are found by name
        raise ModelError(f"{path}: two layers named {twice[0]}; the file is damaged or not "
                         "made by Keras")
    if not shapes:
        raise ModelError(f"{path}: the model config does not say its input shape")
    shape = shapes[0]
    if (not isinstance(shape, list) or len(shape) != 4
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape[1:])):
        raise ModelError(f"{path}: input shape {str(shape)[:60]}: vggnp needs images of a "
                         "fixed size, (None, H, W, C)")
    h, w, c = shape[1:]
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE) or c not in CHANNELS:
        raise ModelError(f"{path}: input shape {h}x{w}x{c}: vggnp takes 1..{MAX_SIDE} pixels "
                         f"a side and {' or '.join(map(str, CHANNELS))} channels")
    return leaves, (h, w, c)


def _walk(config, path, leaves, shapes, depth, graph):
    """Collect the leaf layers (checked) and input shapes of ``config``, nested models
    inlined (``graph``: see ``leaf_layers``)."""
    if depth > MAX_DEPTH:
        raise ModelError(f"{path}: models nested more than {MAX_DEPTH} deep")
    cls = config.get("class_name")
    cfg = json_object(config.get("config", {}), path, f"the config of {cls}")
    layers = cfg.get("layers", [])
    if not isinstance(layers, list):
        raise ModelError(f"{path}: the layers of {cls} are a {type(layers).__name__}, not a "
                         "list; not a Keras model file")
    if cls not in ("Sequential",) and not graph:
        check_chain(layers, path, cfg.get("name"))
    if layers:
        last = json_object(layers[-1], path, "a layer")
        names = {layer["config"].get("name") for layer in layers if isinstance(layer, dict)
                 and isinstance(layer.get("config"), dict)}
        check_container(cfg, json_object(last.get("config", {}), path,
                                         "a layer config").get("name"), path, names)
    for layer in layers:
        _visit(json_object(layer, path, f"a layer of {cls}"), path, leaves, shapes, depth,
               graph)
    # After the layers: Keras runs a Sequential at its InputLayer's shape when the two differ.
    for key in ("batch_input_shape", "build_input_shape"):
        if cfg.get(key):
            shapes.append(cfg[key])


def _visit(layer, path, leaves, shapes, depth, graph):
    """One layer of a model config: its shape fields, then a nested model walked, an
    InputLayer's fields checked, or a leaf checked and kept (see ``_walk``)."""
    kind, sub = operation(layer, path)
    name = sub.get("name")
    if not isinstance(kind, str) or not isinstance(name, str) or not name:
        raise ModelError(f"{path}: a layer without a class_name or name; not a Keras "
                         "model file")
    for key in ("batch_shape", "batch_input_shape"):
        if key in sub and not isinstance(sub[key], list):  # a shape Keras cannot read
            _fail(path, name, f"{key} is {str(sub[key])[:40]}, not a list")
    shape = sub.get("batch_shape") or sub.get("batch_input_shape")
    if shape:
        shapes.append(shape)
    if kind in CONTAINERS:
        _walk(layer, path, leaves, shapes, depth + 1, graph)
    elif kind == "InputLayer":
        check_fields(kind, sub, path)
    elif kind == "Lambda":
        raise ModelError(f"{path}: layer {name} is a Lambda layer (Python code); vggnp "
                         "never runs code from a file. Rebuild the model without it "
                         "(e.g. a Rescaling layer instead of a Lambda)")
    elif kind not in LAYER_CLASSES + (GRAPH_CLASSES if graph else ()) + (CONSTANT_OP,):
        raise ModelError(f"{path}: layer {name} is of class {kind}, which vggnp does not "
                         f"support (supported: {', '.join(LAYER_CLASSES)}; in a graph "
                         f"also {', '.join(GRAPH_CLASSES)})")
    else:
        check_layer(kind, sub, path)
        leaves.append((kind, sub))


def _pair(value, path, name, field, default):
    """An int or a list of two ints, each in 1..2^20, as a pair (Keras' conv_utils, with
    a bound no model reaches: a stride of 2^63 overflowed NumPy's strides)."""
    value = default if value is None else value
    pair = value if isinstance(value, list) else [value, value]
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and
                                 1 <= v <= 1 << 20 for v in pair):
        _fail(path, name, f"{field} is {str(value)[:40]}, not one or two integers in "
                          f"1..{1 << 20}")
    return tuple(pair)


def _integer(cfg, path, name, field):
    value = cfg.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1 << 20:
        _fail(path, name, f"{field} is {str(value)[:40]}, not an integer in 1..{1 << 20}")
    return value


def _number(cfg, path, name, field, default, low, high):
    value = cfg.get(field, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        _fail(path, name, f"{field} is {str(value)[:40]}, not a number in {low}..{high}")
    return value


def check_layer(kind, cfg, path):
    """The fields of one leaf layer's config that vggnp uses: types and ranges."""
    name = cfg["name"]
    check_fields(kind, cfg, path)
    if cfg.get("data_format", "channels_last") == "channels_first":  # Keras', not damage
        raise ModelError(f"{path}: layer {name}: data_format = channels_first: vggnp needs "
                         "channels-last; rebuild the model with data_format='channels_last' "
                         "(Keras' default)")
    if cfg.get("data_format", "channels_last") not in ("channels_last", None):
        _fail(path, name, f"data_format is {str(cfg['data_format'])[:40]}")
    flags = {"BatchNormalization": ("scale", "center"), "GlobalAveragePooling2D": ("keepdims",),
             "GlobalMaxPooling2D": ("keepdims",)}.get(kind, ("use_bias",))
    for flag in flags:
        if not isinstance(cfg.get(flag, False), bool):
            _fail(path, name, f"{flag} is {str(cfg[flag])[:40]}, not true or false")
    if kind in WINDOWED:
        _check_window(kind, cfg, path, name)
    if kind in ("Conv2D", "SeparableConv2D"):
        _integer(cfg, path, name, "filters")
    if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        dilation = _pair(cfg.get("dilation_rate", 1), path, name, "dilation_rate", None)
        if "groups" in cfg and kind == "Conv2D":
            _integer(cfg, path, name, "groups")
        if dilation != (1, 1) and _pair(cfg.get("strides", 1), path, name, "strides",
                                        None) != (1, 1):
            _fail(path, name, "a dilation rate and strides both over 1 (Keras refuses them)")
    if kind in ("DepthwiseConv2D", "SeparableConv2D"):
        _integer(cfg, path, name, "depth_multiplier")
    if kind in ("ZeroPadding2D", "Cropping2D"):
        zero_padding(cfg, path, "padding" if kind == "ZeroPadding2D" else "cropping")
    if kind in ("ReLU", "LeakyReLU", "ELU", "PReLU"):
        _check_relu(kind, cfg, path, name)
    if kind == "Normalization":
        _normalization(cfg, path, name)
    if kind == "ConstantOp":
        _number(cfg, path, name, "constant", 0, -MAX_SCALE, MAX_SCALE)
    if kind == "Dense":
        _integer(cfg, path, name, "units")
    if kind == "Dropout":
        _number(cfg, path, name, "rate", 0.5, 0, 1)
    if kind == "Rescaling":
        for field, default in (("scale", 1.0), ("offset", 0.0)):
            _per_channel(cfg.get(field, default), path, name, field, -MAX_SCALE)
    if kind == "BatchNormalization":
        _number(cfg, path, name, "epsilon", 1e-3, 1e-12, 1e3)


def _check_relu(kind, cfg, path, name):
    """The options of the ReLU-family layers: numbers in range, PReLU's shared axes."""
    if kind == "ReLU":
        for field, low in (("max_value", 0), ("negative_slope", 0), ("threshold", 0)):
            if field != "max_value" or cfg.get(field) is not None:
                _number(cfg, path, name, field, 0.0, low, MAX_SCALE)
    if kind == "LeakyReLU":  # Keras 3 says negative_slope, Keras 2 alpha
        _number(cfg, path, name, "negative_slope" if "negative_slope" in cfg else "alpha",
                0.3, 0, MAX_SCALE)
    if kind == "ELU":
        _number(cfg, path, name, "alpha", 1.0, -MAX_SCALE, MAX_SCALE)
    if kind == "PReLU" and not (cfg.get("shared_axes") is None or (isinstance(
            cfg["shared_axes"], list) and all(type(a) is int and 1 <= a <= 3
                                              for a in cfg["shared_axes"]))):
        _fail(path, name, f"shared_axes is {str(cfg['shared_axes'])[:40]}, not axes 1..3")


def _check_window(kind, cfg, path, name):
    """A conv's or pool's padding, window and strides."""
    if cfg.get("padding", "valid") not in PADDINGS:
        _fail(path, name, f"padding {str(cfg.get('padding'))[:40]!r}; vggnp supports "
                          f"{' and '.join(PADDINGS)}")
    pool = kind.endswith("Pooling2D")
    size = "pool_size" if pool else "kernel_size"
    _pair(cfg.get(size), path, name, size, 2 if pool else None)
    # null strides: a pool's are its pool size, a convolution's an error in Keras
    _pair(cfg.get("strides") if pool else cfg.get("strides", 1), path, name, "strides",
          1 if pool else None)


def _normalization(cfg, path, name):
    """Normalization: the channel axis; mean and variance both null (then weights of the
    file) or both numbers or lists of numbers (constants written into the config)."""
    if cfg.get("axis", -1) not in (-1, 3, [-1], [3]):
        refuse(path, name, "axis", cfg["axis"], "vggnp normalises the channel axis only")
    values = [cfg.get("mean"), cfg.get("variance")]
    if values == [None, None]:
        return
    for field, value in zip(("mean", "variance"), values):
        _per_channel(value, path, name, field, 0 if field == "variance" else -MAX_SCALE)


def _per_channel(value, path, name, field, low):
    """A Rescaling's or Normalization's constant: a number, or a list of one per channel
    (at most 4096), each in low..MAX_SCALE."""
    numbers = value if isinstance(value, list) else [value]
    if not (1 <= len(numbers) <= 4096 and all(
            type(v) in (int, float) and low <= v <= MAX_SCALE
            for v in numbers)):
        _fail(path, name, f"{field} is {str(value)[:40]}, not a number or one per channel "
                          f"in {low:g}..{MAX_SCALE:g}")


def zero_padding(cfg, path, field="padding"):
    """ZeroPadding2D's padding (default 1) or Cropping2D's cropping (default 0) as
    ((top, bottom), (left, right)): Keras takes an int, a pair (rows, columns) or the two
    pairs; each 0..MAX_SIDE."""
    value = cfg.get(field, 1 if field == "padding" else 0)
    pairs = ([[value] * 2] * 2 if type(value) is int else
             [[v, v] if type(v) is int else v for v in value] if isinstance(value, list)
             and len(value) == 2 else None)
    if not pairs or not all(isinstance(p, list) and len(p) == 2 and all(
            type(n) is int and 0 <= n <= MAX_SIDE for n in p) for p in pairs):
        _fail(path, cfg["name"], f"{field} is {str(value)[:40]}, not one, two or two pairs "
                                 "of integers 0..{MAX_SIDE}")
    return tuple(tuple(p) for p in pairs)
