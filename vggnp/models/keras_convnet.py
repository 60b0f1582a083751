"""A user's own Keras convnet -- architecture and weights -- read from a full-model file.

    model = load_keras_model("cats_and_dogs.keras")   # model.save(): .keras or .h5
    probs = model.predict(x)                          # x: (N, H, W, C), preprocessed
    heatmaps, classes = grad_cam(model, x, layer=model.last_conv)

No TensorFlow, and no code from the file is ever run: the architecture is the JSON the file
stores (``config.json`` in a .keras zip, the ``model_config`` attribute of an .h5), parsed as
data; each layer becomes the vggnp layer of the same name, with the same backward pass as
VGG16. Supported: Sequential models and Functional ones, nested (e.g. the book's
``Sequential([conv_base, Flatten(), Dense(256), Dropout(0.5), Dense(1, "sigmoid")])`` with
``conv_base = VGG16(include_top=False)``, or a classifier on a Keras Applications base): a
chain becomes a :class:`KerasConvNet`, a graph (skip connections, branches) a
:class:`KerasGraph`; the layers are those of ``model_config.LAYER_CLASSES`` and, in a
graph, the merge layers (docs/keras-models.md has the table).
Lambda layers (Python code) and custom layers are refused with a message.
"""

import os

import numpy as np

from ..fast.folding import BatchNormFolds
from ..files.hdf5 import (ModelError, check_values, dataset, hdf5_errors, opened_weights_file,
                   refuse_external_links, check_dataset, text)
from ..files.layer_fields import versioned_names
from ..files.layer_shapes import output_shapes, weight_shapes
from ..files.model_config import CONTAINERS, leaf_layers, parse_config
from ..files.model_graph import graph_of
from ..files.model_wiring import is_chain
from ..nn import spec
from ..nn.convnet_layers import GlobalAvgPool2D
from ..nn.layers import Conv2D
from ..nn.graph import Graph
from ..nn.network import Network, model_dtype
from .keras_layers import build_layer
from .keras_preprocess import default_preprocess, model_names, preprocess_guessed

GLOBAL_POOLS = (GlobalAvgPool2D,)  # GlobalMaxPool2D is one too: a subclass


class KerasModel:
    """What the two readings of a Keras file share. shapes: {layer name: one image's
    output shape}, from the config; keras_names: the names of the config's models (see
    ``keras_preprocess``)."""

    has_vgg16_base = False

    def _keras(self, name, shapes, keras_names):
        self.name, self.keras_names = name, tuple(keras_names)
        self._maps = [n for n in self.names if len(shapes[n]) == 3]

    @property
    def map_names(self):
        """Every layer whose output is a feature map (N, h, w, C): a CAM can explain any."""
        return self._maps

    @property
    def default_preprocess(self):
        """vgg16 (caffe) for a VGG16 base, else ``keras_preprocess.default_preprocess``
        (MobileNetV2: tf, ResNet50: caffe, a Rescaling first layer: none)."""
        if self.has_vgg16_base:
            return "vgg16"
        return default_preprocess(self.layers[0], self.keras_names)

    @property
    def preprocess_guessed(self):
        """True where ``default_preprocess`` is a guess (the model does not say)."""
        return not self.has_vgg16_base and preprocess_guessed(self.layers[0], self.keras_names)


class KerasConvNet(KerasModel, Network):
    """A Keras convnet as a chain of vggnp layers (see the module docstring).

    input_shape: (H, W, C) the model was built for. Class scores: a softmax (or linear)
    output of K units gives K classes; a single sigmoid unit p gives two, [1 - p, p]
    (class 1 is Keras' positive class).
    """

    def __init__(self, layers, input_shape, shapes, name="model", keras_names=()):
        has_vgg16_base = all(name in [layer.name for layer in layers] for name in spec.CONV_NAMES)
        super().__init__(layers, input_shape[:2], channels=input_shape[2],
                         batch_split="block4_pool" if has_vgg16_base else None)
        self.has_vgg16_base = has_vgg16_base
        self._keras(name, shapes, keras_names)

    @property
    def default_layer(self):
        """The input of the last global pooling (MobileNet's conv_pw_13_relu), else the
        last conv (VGG16 and the book's convnets: block5_conv3, as keras-io)."""
        pools = [k for k, layer in enumerate(self.layers) if isinstance(layer, GLOBAL_POOLS)]
        if pools and pools[-1] > 0 and not self.has_vgg16_base:
            return self.names[pools[-1] - 1]
        return self.last_conv


class KerasGraph(KerasModel, Graph):
    """A Keras Functional model that is not a chain (or holds one that is not), as a
    graph of vggnp layers (issue #25), nested models inlined. Class scores as
    ``KerasConvNet``'s."""

    def __init__(self, nodes, input_shape, shapes, name="model", keras_names=()):
        super().__init__(nodes, input_shape[:2], channels=input_shape[2],
                         folds=BatchNormFolds.for_graph)
        self._keras(name, shapes, keras_names)

    @property
    def default_layer(self):
        """The input of the last global pooling (the last feature map before the
        classifier's head: Xception's block14_sepconv2_act, ResNet50's conv5_block3_out,
        as Keras' Grad-CAM example takes; MobileNetV3's squeeze-and-excitation pools come
        before its head's), else of the last layer that turns maps into vectors (Flatten),
        else the last feature map."""
        heads = [n for n in self.names if isinstance(self.layer(n), GLOBAL_POOLS)] or [
            n for n in self.names if n not in self.map_names
            and all(i in self.map_names for i in self.inputs_of[n])]
        if heads:
            last = max(heads, key=self.names.index)
            return self.inputs_of[last][0]
        return self.map_names[-1]


def load_keras_model(path, dtype=np.float32):
    """Read a Keras full-model file (``model.save``: .keras, or .h5 from Keras 2 or 3).

    The config is checked as a schema (``model_config``) and every layer's output shape
    computed before any weight is read; then the weights, each checked against its
    layer's shapes and for its values (``hdf5.check_values``).
    Returns a KerasConvNet (a chain) or a KerasGraph. Raises ModelError (a WeightsError)
    for anything it cannot use.
    """
    dtype = model_dtype(dtype)
    path = os.fspath(path)
    with opened_weights_file(path, "model file", ModelError) as (f, config_text, _, version), \
            hdf5_errors(path, ModelError):
        refuse_external_links(f, path)
        if config_text is None:
            raise ModelError(f"{path}: holds weights only, no architecture; save the whole "
                             "model (model.save('model.keras')), or for VGG16 use --weights "
                             "(in Python: vggnp.VGG16.load)")
        config = parse_config(config_text, path)
        versioned_names(config, version, path)
        leaves, input_shape, inputs, wiring, shapes = _architecture(config, path)
        needs = {cfg["name"]: weight_shapes(kind, cfg, shape)
                 for (kind, cfg), shape in zip(leaves, inputs)}
        datasets = _arrays_by_layer(f, config, path, set(needs))
        _check_weight_shapes(needs, datasets, zip(leaves, inputs), path)
        # Only the datasets the config uses are read, each after its shape was checked.
        arrays = {name: [_float_array(d, path, name, dtype) for d in datasets.get(name, [])]
                  for name in needs}
    workspace = {}
    layers = [build_layer(cls, cfg, arrays, workspace, path)
              for (cls, cfg) in leaves]
    if layers[-1].activation_name is None:
        raise ModelError(f"{path}: the model ends with {layers[-1].name} "
                         f"({type(layers[-1]).__name__}); vggnp needs a Dense or Activation "
                         "output layer (the class scores)")
    if not any(isinstance(layer, Conv2D) for layer in layers):
        raise ModelError(f"{path}: no Conv2D layer: Grad-CAM needs a convnet")
    name = config.get("config", {}).get("name", "")
    name = name if isinstance(name, str) else ""
    if wiring is None:
        model = KerasConvNet(layers, input_shape, dict(zip([l.name for l in layers], shapes)),
                             name, model_names(config))
    else:
        model = KerasGraph(list(zip(layers, wiring)), input_shape, shapes, name,
                           model_names(config))
    _check_runs(model, path, dtype)
    return model


def _architecture(config, path):
    """(leaves [(class, config)], input shape (H, W, C), each leaf's input shape, for a
    graph each leaf's input names (None for a chain), and the leaves' output shapes (a
    chain: a list; a graph: {name: shape}), from the config alone."""
    if is_chain(config):
        leaves, input_shape = leaf_layers(config, path)
        shapes = output_shapes(leaves, input_shape, path)
        return leaves, input_shape, [input_shape] + shapes[:-1], None, shapes
    nodes, input_shape, shapes = graph_of(config, path)
    # a merge layer has no weights: its first input's shape stands for its inputs
    return ([(kind, cfg) for kind, cfg, _ in nodes], input_shape,
            [shapes[names[0]] for _, _, names in nodes], [names for _, _, names in nodes],
            shapes)


def _check_weight_shapes(needs, datasets, layers, path):
    """Each layer's datasets: as many as its config says, of the shapes its config and
    its input (one image's) imply (``model_config.weight_shapes``). layers: ((class name,
    config), input shape) pairs."""
    for (kind, cfg), input_shape in layers:
        name, shapes = cfg["name"], needs[cfg["name"]]
        found = datasets.get(name, [])
        if len(found) != len(shapes):
            raise ModelError(f"{path}: layer {name} ({kind}) needs {len(shapes)} weight "
                             f"arrays, the file has {len(found)}")
        for i, (data, shape) in enumerate(zip(found, shapes)):
            if data.shape != shape:
                raise ModelError(f"{path}: layer {name}: weight {i} has shape {data.shape}; "
                                 f"its config and input {input_shape} say {shape}")


def _arrays_by_layer(f, config, path, known):
    """{layer name: [datasets in Keras' order]} from either file layout; known: the
    names of the config's layers."""
    arrays = {}
    if "model_weights" in f and "layer_names" in f["model_weights"].attrs:
        root = f["model_weights"]  # .h5 of Keras 2 and 3: weight names say their layer
        for group_name in map(text, root.attrs["layer_names"]):
            group = root[group_name]
            for weight in map(text, group.attrs.get("weight_names", [])):
                arrays.setdefault(_weight_layer(weight, group_name, known), []).append(
                    dataset(group, weight))
    elif "layers" in f:  # Keras 3 .keras: layers/<key>/vars/<i>, nested layers/<key>/layers/
        keys = _keras3_keys(config)
        _collect_keras3(f["layers"], ("layers",), keys, arrays)
    else:
        raise ModelError(f"{path}: no Keras weights in the file (top-level keys: "
                         f"{sorted(f.keys())[:8]})")
    return arrays


def _weight_layer(weight, group_name, known):
    """The layer an .h5 weight name ("[model/]layer/kernel:0") belongs to: the longest
    tail of its path, the variable's name dropped, that names a layer of the config (a
    layer name may hold "/": DenseNet's "conv1/conv"), else the part before the variable."""
    parts = weight.split("/")[:-1]
    if not parts:
        return group_name
    tails = ["/".join(parts[k:]) for k in range(len(parts))]
    return next((tail for tail in tails if tail in known), parts[-1])


def _collect_keras3(group, prefix, keys, arrays):
    for key, sub in group.items():
        here = prefix + (key,)
        variables = sub.get("vars")
        if variables is not None and len(variables):
            name = (text(variables.attrs["name"]) if "name" in variables.attrs
                    else keys.get(here, key))
            arrays[name] = [dataset(variables, k) for k in sorted(variables, key=int)]
        if "layers" in sub:
            _collect_keras3(sub["layers"], here + ("layers",), keys, arrays)


def _snake(class_name):
    """Keras' naming.to_snake_case: 'MaxPooling2D' -> 'max_pooling2d'."""
    import re
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras3_keys(config, prefix=("layers",)):
    """Keras 3 (before 3.6 no ``name`` attribute) keys each layer of a container by its
    class in snake case, numbered in order: conv2d, conv2d_1, ... -> {key path: name}."""
    keys, counts = {}, {}
    for layer in config.get("config", {}).get("layers", []):
        base = _snake(layer["class_name"])
        n = counts[base] = counts.get(base, -1) + 1
        key = prefix + (base if n == 0 else f"{base}_{n}",)
        keys[key] = layer.get("config", {}).get("name")
        if layer["class_name"] in CONTAINERS:
            keys.update(_keras3_keys(layer, key + ("layers",)))
    return keys


def _float_array(data, path, name, dtype):
    check_dataset(data, path, name)
    # a Normalization layer's count of adapted samples is an integer scalar (unused)
    if data.dtype.kind != "f" and not (data.shape == () and data.dtype.kind in "iu"):
        raise ModelError(f"{path}: {name} holds {data.dtype} values, not floats")
    values = data[()].astype(dtype, copy=False)
    check_values(values, path, name, ModelError)
    # read-only, as VGG16's memory-mapped weights: what is made from an array (a folded
    # BatchNorm, LRP's kernels) is made again when the array is replaced, but an array
    # changed in place would not be seen, so that is an error, not a silent old answer
    if isinstance(values, np.ndarray):  # not a scalar (a Normalization's count)
        values.flags.writeable = False
    return values


def _check_runs(model, path, dtype):
    """Run zeros through the model once (a chain or a graph): every layer must accept its
    inputs. The layer that does not is the one after the last the trace lists. It runs
    on a replica (the same weights), whose caches of the zeros' maps go with it: kept on
    the model they held 200 MB for Xception until its first pass."""
    done = []
    try:
        zeros = np.zeros((1, *model.input_size, model.channels), dtype=dtype)
        model.replica().forward(zeros, trace=done)
    except (MemoryError, ValueError) as e:
        layer = model.layers[len(done)].name
        if isinstance(e, MemoryError):
            raise ModelError(f"{path}: layer {layer} needs more memory than this machine "
                             "has for one image") from None
        after = f" (after {done[-1]['layer'].name}, of output {done[-1]['output']})" \
            if done else ""
        raise ModelError(f"{path}: layer {layer} does not fit its inputs{after}: {e}") \
            from None
