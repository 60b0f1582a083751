"""How the layers of a Keras Functional model are wired: the names feeding each layer
(Keras 2 and 3 write them differently), the check that a model is a chain, and, for a
model that is not, its graph (issue #25): the nodes in Keras' order with their inputs, and
every node's output shape from the configs alone, before any weight is read.
"""

from .hdf5 import ModelError

CONTAINERS = ("Sequential", "Functional", "Model")
MERGES = ("Add", "Subtract", "Average", "Multiply", "Maximum", "Concatenate")
GRAPH_CLASSES = MERGES  # beside model_config.LAYER_CLASSES, in a graph


def json_object(value, path, what):
    """``value`` if it is a JSON object (a dict), else ModelError naming ``what``."""
    if not isinstance(value, dict):
        raise ModelError(f"{path}: {what} is a {type(value).__name__}, not a JSON object; "
                         "not a Keras model file")
    return value


CONSTANT_OP = "ConstantOp"  # x + c, x * c: made by operation() from what Keras recorded
OPERATIONS = {"Add": "add", "Subtract": "add", "Multiply": "multiply", "TrueDivide": "multiply"}


def operation(layer, path):
    """(class name, config) of a layer config, where an operation Keras 3 recorded from
    code (``x + 3.0``: module keras.src.ops.numpy, the number among its call's args)
    becomes a "ConstantOp" {name, op, constant} (x - c as x + (-c), x / c as x * (1 / c)),
    or with two tensors the merge layer of the same name."""
    kind = layer.get("class_name")
    cfg = json_object(layer.get("config", {}), path, "a layer config")
    module = layer.get("module")
    if kind == CONSTANT_OP:  # vggnp's own name, never a class of a file
        raise ModelError(f"{path}: layer {str(cfg.get('name'))[:60]} is of class {kind}, "
                         "which vggnp does not support")
    if kind == "TFOpLambda":
        return _tf_operation(layer, cfg, path)
    if not (isinstance(module, str) and module.startswith("keras.src.ops")):
        return kind, cfg
    name = cfg.get("name")
    nodes = layer.get("inbound_nodes")
    call = nodes[0] if isinstance(nodes, list) and len(nodes) == 1 else None
    args = call.get("args") if isinstance(call, dict) else None
    if kind not in OPERATIONS or set(cfg) - {"name"} or not isinstance(args, list) \
            or len(args) != 2 or call.get("kwargs"):
        raise ModelError(f"{path}: layer {name}: the operation {str(kind)[:40]} "
                         f"({str(module)[:40]}) as Keras recorded it, which vggnp does not run")
    numbers = [a for a in args if type(a) in (int, float)]
    if not numbers:  # two tensors: the merge layer (Keras' ops broadcast as its layers do)
        return ("Subtract" if kind == "Subtract" else kind), cfg
    if kind in ("Subtract", "TrueDivide") and type(args[1]) not in (int, float):
        raise ModelError(f"{path}: layer {name}: a number {kind} a tensor; vggnp runs only "
                         "tensor - number and tensor / number")
    constant = numbers[0]
    if kind == "TrueDivide":
        if constant == 0:
            raise ModelError(f"{path}: layer {name}: a division by zero")
        constant = 1 / constant
    return CONSTANT_OP, {"name": name, "op": OPERATIONS[kind],
                          "constant": -constant if kind == "Subtract" else constant}


TF_FUNCTIONS = {"__operators__.add": "add", "math.add": "add", "math.multiply": "multiply"}


def _tf_operation(layer, cfg, path):
    """Keras 2's record of ``x + 3.0`` or ``x * c`` in a tf.keras model (a TFOpLambda
    layer: MobileNetV3's hard sigmoid): {"function": "__operators__.add"} and the number
    as the call's keyword y, [[name, 0, 0, {"y": 3.0, "name": null}]]; as a ConstantOp."""
    name, function = cfg.get("name"), cfg.get("function")
    nodes = layer.get("inbound_nodes")
    call = nodes[0] if isinstance(nodes, list) and len(nodes) == 1 else None
    if isinstance(call, list) and len(call) == 1:  # [[entry]] or, as tf.keras writes it, [entry]
        call = call[0]
    kwargs = call[3] if isinstance(call, list) and len(call) == 4 and isinstance(
        call[0], str) and isinstance(call[3], dict) else {}
    constant = kwargs.get("y")
    if function not in TF_FUNCTIONS or set(cfg) - {"name", "trainable", "dtype", "function"} \
            or type(constant) not in (int, float) or set(kwargs) - {"y", "name"}:
        raise ModelError(f"{path}: layer {name}: the TensorFlow operation "
                         f"{str(function)[:40]} as tf.keras recorded it, which vggnp does not "
                         "run (it runs x + number and x * number)")
    return CONSTANT_OP, {"name": name, "op": TF_FUNCTIONS[function], "constant": constant}


def inbound_names(layer):
    """Names of the layers feeding ``layer`` in a Functional config (Keras 2 or 3)."""
    return [name for name, _, _ in inbound_refs(layer)]


def inbound_refs(layer):
    """(layer name, node index, tensor index) of each tensor feeding ``layer`` in a
    Functional config, as the file says them (Keras 3's keras_history, Keras 2's lists)."""
    names = []

    def find(node, depth=0):
        if depth > 32:
            return
        if isinstance(node, dict):
            history = node.get("config", {})
            history = history.get("keras_history") if isinstance(history, dict) else None
            if isinstance(history, list) and history:  # Keras 3: a tensor's source layer
                names.append((history + [None, None])[:3])
                return
            for value in node.values():
                find(value, depth + 1)
        elif isinstance(node, list):
            if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
                names.append(node[:3])  # Keras 2: [name, node index, tensor index, kwargs]
            else:
                for value in node:
                    find(value, depth + 1)

    find(layer.get("inbound_nodes", []))
    return names


def check_chain(layers, path, model_name):
    """A Functional model must be a chain: each layer fed by exactly the one before it."""
    for before, layer in zip(layers, layers[1:]):
        before, layer = json_object(before, path, "a layer"), json_object(layer, path, "a layer")
        inbound = inbound_names(layer)
        expected = before.get("name") or json_object(before.get("config", {}), path,
                                               "a layer config").get("name")
        if inbound != [expected]:
            raise ModelError(f"{path}: in {model_name}, layer {layer.get('name')} takes its "
                             f"input from {inbound}, not from the layer before it "
                             f"({expected}); vggnp supports chains of layers only")


def is_chain(config, depth=0):
    """True unless ``config`` or a model nested in it is a Functional model whose layers
    are not each fed by the one before it (then the whole model is a graph)."""
    layers = config.get("config", {}).get("layers", []) if isinstance(
        config.get("config"), dict) else []
    if not isinstance(layers, list) or depth > 64:
        return True  # not a model vggnp reads: model_config says why
    layers = [layer for layer in layers if isinstance(layer, dict)]
    if any(layer.get("class_name") in CONTAINERS and not is_chain(layer, depth + 1)
           for layer in layers):
        return False
    if config.get("class_name") not in ("Functional", "Model"):
        return True
    names = [layer.get("config", {}).get("name") if isinstance(layer.get("config"), dict)
             else None for layer in layers]
    return all(inbound_names(layer) == [before] for before, layer in zip(names, layers[1:]))


def graph_wiring(config, source, wiring, path, depth=0):
    """Append to ``wiring`` the input names of each leaf layer of ``config`` (a model fed
    by the tensor named ``source``), in the order ``model_config.leaf_layers`` lists them,
    nested models inlined: a nested model's InputLayer stands for the tensor feeding it,
    and its name, where a later layer takes it, for its last layer. Returns the name of the
    tensor the model outputs (its last layer's: ``check_container``)."""
    if depth > 64:
        raise ModelError(f"{path}: models nested too deeply")
    layers = config["config"].get("layers") or []  # leaf_layers checked: a list of objects
    alias, previous = {}, source
    # the last node index a tensor may name: a layer's calls are 0..n-1 (an InputLayer's
    # 0); a nested model's 0..n (Keras counts the model's own creation as its node 0)
    calls = {layer["config"]["name"]: max(len(layer["inbound_nodes"]) - (
        layer["class_name"] not in CONTAINERS), 0) if isinstance(
        layer.get("inbound_nodes"), list) else 0 for layer in layers}
    if config.get("class_name") != "Sequential" and sum(
            layer.get("class_name") == "InputLayer" for layer in layers) != 1:
        raise ModelError(f"{path}: model {config['config'].get('name')} does not have one "
                         "input; vggnp takes one image")
    for layer in layers:
        kind, name = layer["class_name"], layer["config"]["name"]
        if kind == "InputLayer":
            alias[name] = source
            continue
        if config.get("class_name") == "Sequential":
            names = [previous]
        else:
            names = [alias.get(n, n) for n in _one_call(layer, calls, path)]
        if kind in CONTAINERS:
            if len(names) != 1:
                raise ModelError(f"{path}: model {name} takes {len(names)} inputs; vggnp "
                                 "takes one image")
            previous = alias[name] = graph_wiring(layer, names[0], wiring, path, depth + 1)
        else:
            wiring.append(names)
            previous = name
    return previous


MAX_FAN_IN = 1024  # tensors into one layer (Keras' Applications: at most a few)


def _one_call(layer, calls, path):
    """The inbound names of a layer of a Functional model, called once (a layer used at
    two places of a graph, shared weights, would need one cache per call), each naming
    one output (tensor 0) of a call that exists (node index <= that layer's calls: Keras
    counts a nested model's own creation as node 0); calls: {name: number of calls}."""
    name, nodes = layer["config"]["name"], layer.get("inbound_nodes", [])
    if not isinstance(nodes, list):
        raise ModelError(f"{path}: layer {name}: inbound_nodes is a "
                         f"{type(nodes).__name__}, not a list; not a Keras model file")
    if len(nodes) > 1:
        raise ModelError(f"{path}: layer {name} is called {len(nodes)} times (shared "
                         "weights), which vggnp does not run")
    refs = inbound_refs(layer)
    if not refs:
        raise ModelError(f"{path}: layer {name} takes no input; the file is damaged or not "
                         "made by Keras")
    if len(refs) > MAX_FAN_IN:
        raise ModelError(f"{path}: layer {name} takes {len(refs)} inputs; vggnp's limit is "
                         f"{MAX_FAN_IN}")
    for source, node, tensor in refs:
        if not isinstance(source, str) or tensor != 0 or type(node) is not int \
                or not 0 <= node <= calls.get(source, 0):
            raise ModelError(f"{path}: layer {name} takes output {str(tensor)[:20]} of call "
                             f"{str(node)[:20]} of layer {str(source)[:60]}, which does not "
                             "exist; the file is damaged or not made by Keras")
    return [source for source, _, _ in refs]
