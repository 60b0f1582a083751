"""Every field of every Keras layer config vggnp reads: implemented, or refused.

A field vggnp skipped would be a silently wrong answer (a ``ReLU(max_value=0.05)`` run as a
plain ReLU, a dilated convolution run undilated). So each field of a layer config is one of:

- **used**: read and implemented by vggnp (``USED``; its type and range are checked in
  ``model_config.check_layer`` and the layer is tested against TensorFlow);
- **default only**: implemented at Keras' default value, refused at any other
  (``DEFAULT_ONLY``: LoRA, quantisation, batch renormalisation...);
- **no effect on the output** of a trained model at inference (``NO_EFFECT``: names,
  initialisers, regularisers, constraints, Dropout's seed);

and any other field, say one a newer Keras adds, is refused with one line naming the layer,
the field and its value.
"""

from ..nn.activation_functions import ACTIVATIONS, KERAS_VERSIONED
from .hdf5 import ModelError
from .keras_version import major_version
from .model_wiring import MERGES

# What an initialiser, a regulariser or a constraint does happens during training; the
# weights in the file are the result. Dropout is the identity at inference. Each such field
# still has to be of the type Keras writes (a damaged file is refused, as Keras refuses it).
def _keras_object(v):
    """A serialised Keras object: null, a name, or {"class_name": ..., ...}."""
    return v is None or isinstance(v, str) or (isinstance(v, dict)
                                               and isinstance(v.get("class_name"), str))


def _flag(v):
    return isinstance(v, bool)


def _optional_int(v):
    return v is None or (type(v) is int and v >= 0)


NO_EFFECT = {
    "name": lambda v: isinstance(v, str), "trainable": _flag,
    **{f"{weight}_{kind}": _keras_object for weight in ("kernel", "bias", "beta", "gamma",
                                                        "depthwise", "pointwise", "alpha")
       for kind in ("initializer", "regularizer", "constraint")},
    "activity_regularizer": _keras_object, "moving_mean_initializer": _keras_object,
    "moving_variance_initializer": _keras_object,
    "momentum": lambda v: type(v) in (int, float), "renorm_momentum": lambda v: type(v) in
    (int, float), "synchronized": _flag, "seed": _optional_int,
    "noise_shape": lambda v: v is None or isinstance(v, list), "sparse": _flag,
    "ragged": _flag, "optional": _flag, "batch_size": _optional_int,
    "fused": lambda v: v is None or _flag(v)}

USED = {
    "Conv2D": {"filters", "kernel_size", "strides", "padding", "data_format", "activation",
               "use_bias", "dilation_rate", "groups"},
    "Dense": {"units", "activation", "use_bias"},
    "MaxPooling2D": {"pool_size", "strides", "padding", "data_format"},
    "AveragePooling2D": {"pool_size", "strides", "padding", "data_format"},
    "Flatten": {"data_format"},
    "Dropout": {"rate"},
    "BatchNormalization": {"epsilon", "center", "scale", "axis"},
    "Activation": {"activation"},
    "Rescaling": {"scale", "offset"},
    "InputLayer": set(),
    "DepthwiseConv2D": {"kernel_size", "strides", "padding", "data_format", "depth_multiplier",
                        "activation", "use_bias", "dilation_rate"},
    "SeparableConv2D": {"filters", "kernel_size", "strides", "padding", "data_format",
                        "depth_multiplier", "activation", "use_bias", "dilation_rate"},
    "ZeroPadding2D": {"padding", "data_format"},
    "ReLU": {"max_value", "negative_slope", "threshold"},
    **{merge: set() for merge in MERGES if merge != "Concatenate"},
    "Concatenate": {"axis"}, "Reshape": {"target_shape"},
    "GlobalAveragePooling2D": {"data_format", "keepdims"},
    "GlobalMaxPooling2D": {"data_format", "keepdims"},
    "Cropping2D": {"cropping", "data_format"}, "LeakyReLU": {"negative_slope", "alpha"},
    "PReLU": {"shared_axes"}, "ELU": {"alpha"}, "Identity": set(),
    "Normalization": {"axis", "mean", "variance"},
    "ConstantOp": {"op", "constant"},  # x + c, x * c (model_wiring.operation)
}
# Any layer may carry the model's input shape (Keras 2 writes it into the first layer);
# model_config reads it.
SHAPE_FIELDS = {"batch_shape", "batch_input_shape"}

# Field -> the values that mean "Keras' default" (absent means the default too).
DEFAULT_ONLY = {
    "Conv2D": {"lora_rank": (None, 0), "lora_alpha": (None,)},
    "Normalization": {"invert": (False,)},
    "DepthwiseConv2D": {"groups": (1,)},  # tf_keras writes groups: 1
    "SeparableConv2D": {"groups": (1,)},
    "Dense": {"quantization_config": (None,), "lora_rank": (None, 0), "lora_alpha": (None,)},
    "BatchNormalization": {"renorm": (False,), "renorm_clipping": (None,),
                           "virtual_batch_size": (None,), "adjustment": (None,)},
}

# vggnp's names for a Keras name whose meaning depends on the Keras that saved the file
OURS = {ours for versions in KERAS_VERSIONED.values() for ours in versions.values()}
# Keras' names, as a file holds them: relu, relu6, swish, gelu..., hard_sigmoid
ACTIVATION_NAMES = tuple(name for name in ACTIVATIONS if name not in OURS) + tuple(
    KERAS_VERSIONED)
RELU_FIELDS = {"name", "trainable", "dtype", "max_value", "negative_slope", "threshold"}


def check_fields(kind, cfg, path):
    """ModelError unless every field of ``cfg`` (the config of a layer of class ``kind``)
    is used, at its default, or of no effect; and its dtype is float32."""
    name = cfg.get("name")
    defaults = DEFAULT_ONLY.get(kind, {})
    for field, value in cfg.items():
        if field == "dtype":
            _check_dtype(value, path, name)
        elif field in defaults:
            if not any(value == d and type(value) is type(d) for d in defaults[field]):
                refuse(path, name, field, value, "vggnp implements only Keras' default, "
                       f"{defaults[field][0]!r}")
        elif field in SHAPE_FIELDS:
            continue
        elif field in NO_EFFECT and field not in USED.get(kind, ()):
            if not NO_EFFECT[field](value):
                refuse(path, name, field, value, "not a value Keras writes there; the file "
                       "is damaged")
        elif field not in USED.get(kind, ()):
            refuse(path, name, field, value, f"a field of {kind} that vggnp does not know, "
                   "so cannot run as Keras would")


CONTAINER_FIELDS = {"name", "trainable", "dtype", "layers", "build_input_shape",
                    "input_layers", "output_layers"}


def check_container(cfg, last_name, path, names=()):
    """The fields of a Sequential or Functional config: known ones only, float32, and a
    Functional's one output the last layer of its chain (``last_name``): vggnp runs a chain
    to its end, so an output taken from a middle layer would be a silently wrong model."""
    name = cfg.get("name")
    for field, value in cfg.items():
        if field not in CONTAINER_FIELDS:
            refuse(path, name, field, value, "a field of a model config that vggnp does not "
                   "know")
    _check_dtype(cfg.get("dtype"), path, name)
    outputs = cfg.get("output_layers")
    if outputs is None:
        return
    if isinstance(outputs, list) and len(outputs) == 3 and isinstance(outputs[0], str):
        outputs = [outputs]  # Keras 3 writes one output as [name, node, tensor]
    named = outputs[0][0] if isinstance(outputs, list) and len(outputs) == 1 and isinstance(
        outputs[0], list) and outputs[0] else None
    if names and isinstance(named, str) and named not in names:
        raise ModelError(f"{path}: model {name}: its output names layer {named[:60]}, which "
                         "it does not have; the file is damaged or not made by Keras")
    if named != last_name:
        refuse(path, name, "output_layers", outputs, f"vggnp explains a model with one "
               f"output, its last layer {last_name}" + (
                   f", and this one has {len(outputs)} outputs" if isinstance(outputs, list)
                   and len(outputs) > 1 else ""))


def refuse(path, name, field, value, why):
    raise ModelError(f"{path}: layer {name}: {field} = {str(value)[:60]}: {why}; rebuild the "
                     "model without it, or see docs/keras-models.md")


def _check_dtype(value, path, name):
    """float32 only: a mixed-precision model computes in float16 in Keras, so vggnp's
    float32 answer would not be Keras' answer."""
    policy = value
    if isinstance(value, dict):  # {"class_name": "DTypePolicy", "config": {"name": ...}}
        config = value.get("config")
        policy = config.get("name") if isinstance(config, dict) else config
    if policy not in (None, "float32"):
        refuse(path, name, "dtype", policy, "vggnp computes in float32 only")


def activation_name(cfg, path):
    """The activation of a layer config: a name of ``ACTIVATION_NAMES``. Keras saves a
    function as its name (or as {"module": "keras.activations", "class_name": "function",
    "config": name}) and a layer
    object as its config: only a ``ReLU`` with every option at its default is a plain relu;
    anything else is refused, naming the option."""
    value, name = _function_name(cfg.get("activation", "linear")), cfg.get("name")
    if isinstance(value, dict):
        inner = value.get("config")
        if value.get("class_name") == "ReLU" and isinstance(inner, dict) \
                and value.get("module") == "keras.layers":
            for option in set(inner) - RELU_FIELDS:
                refuse(path, name, f"activation ReLU's {option}", inner[option],
                       "a field of ReLU that vggnp does not know")
            for option, default in (("max_value", None), ("negative_slope", 0),
                                    ("threshold", 0)):
                if inner.get(option, default) != default:
                    refuse(path, name, f"activation ReLU's {option}", inner[option],
                           "vggnp's relu is max(0, x) only")
            value = "relu"
    if isinstance(value, str) and value in KERAS_VERSIONED:
        _refuse_unversioned(path, name, value, None)
    if not isinstance(value, str) or value not in ACTIVATIONS:  # OURS: versioned_names
        refuse(path, name, "activation", value,
               f"vggnp supports {', '.join(ACTIVATION_NAMES)}")
    return value


def _function_name(value):
    """An activation as Keras writes a function: its name, or {"module":
    "keras.activations", "class_name": "function", "config": name} -> name; any other
    value as it is (a custom function's dict is then refused as not a name)."""
    if isinstance(value, dict) and value.get("class_name") == "function" \
            and value.get("module") == "keras.activations" \
            and isinstance(value.get("config"), str):
        return value["config"]
    return value


def _refuse_unversioned(path, name, value, version):
    shown = version if version and version.startswith("<") else repr(version)
    said = (f"the file's keras_version is {shown}, and vggnp knows Keras 2 and 3"
            if version else "the file does not say which Keras saved it (no keras_version)")
    refuse(path, name, "activation", value, "Keras 2 computes it as clip(0.2 x + 0.5) and "
           f"Keras 3 as clip(x / 6 + 0.5), and {said}")


def versioned_names(config, version, path):
    """Replace, in the parsed ``config`` (nested dicts and lists), each activation of
    ``KERAS_VERSIONED`` by vggnp's name for it in the Keras that saved the file
    (``version``: its keras_version text, or None); refused where that is not Keras 2 or
    3. vggnp's own names in a file are refused: a file cannot choose what its
    keras_version does not say. Walked with a stack, not recursion: a config may be
    nested deeply."""
    major, stack = major_version(version), [(config, None)]
    while stack:
        node, layer = stack.pop()
        if isinstance(node, list):  # reversed: popped in the file's order (the first named)
            stack.extend((item, layer) for item in reversed(node))
        if not isinstance(node, dict):
            continue
        layer = node["name"] if isinstance(node.get("name"), str) else layer
        value = _function_name(node.get("activation"))
        if isinstance(value, str) and value in OURS:
            refuse(path, layer, "activation", value, "a name of vggnp's own, not Keras'")
        if isinstance(value, str) and value in KERAS_VERSIONED:
            if major is None:
                _refuse_unversioned(path, layer, value, version)
            node["activation"] = KERAS_VERSIONED[value][major]
        stack.extend((child, layer) for child in reversed(node.values()))
