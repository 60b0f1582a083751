"""How the layers of a Keras Functional model are wired: the names feeding each layer
(Keras 2 and 3 write them differently), the check that a model is a chain, and, for a
model that is not, its graph (issue #25): the nodes in Keras' order with their inputs, and
every node's output shape from the configs alone, before any weight is read.
"""

from .hdf5 import ModelError

MERGES = ("Add", "Subtract", "Average", "Multiply", "Maximum", "Concatenate")
GRAPH_CLASSES = MERGES + ("Reshape",)  # beside model_config.LAYER_CLASSES, in a graph


def json_object(value, path, what):
    """``value`` if it is a JSON object (a dict), else ModelError naming ``what``."""
    if not isinstance(value, dict):
        raise ModelError(f"{path}: {what} is a {type(value).__name__}, not a JSON object; "
                         "not a Keras model file")
    return value


def inbound_names(layer):
    """Names of the layers feeding ``layer`` in a Functional config (Keras 2 or 3)."""
    names = []

    def find(node, depth=0):
        if depth > 32:
            return
        if isinstance(node, dict):
            history = node.get("config", {})
            history = history.get("keras_history") if isinstance(history, dict) else None
            if isinstance(history, list) and history:  # Keras 3: a tensor's source layer
                names.append(history[0])
                return
            for value in node.values():
                find(value, depth + 1)
        elif isinstance(node, list):
            if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
                names.append(node[0])  # Keras 2: [name, node index, tensor index, kwargs]
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


def is_chain(config):
    """True unless ``config`` is a Functional model whose layers are not each fed by the
    one before it (then it is a graph)."""
    if config.get("class_name") not in ("Functional", "Model"):
        return True
    layers = config.get("config", {}).get("layers", [])
    names = [layer.get("config", {}).get("name") if isinstance(layer, dict) else None
             for layer in layers]
    return all(isinstance(layer, dict) and inbound_names(layer) == [before]
               for before, layer in zip(names, layers[1:]))
