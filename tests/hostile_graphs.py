"""Graphs made from the demo model's config (weights/shapes_convnet.keras, a Sequential
chain), for the hostile-graph tests and the fuzz harness's graph family (issue #25.7):
the chain written as a Keras 3 Functional model with a residual Add, then broken.

    residual(config)           # in place: a valid graph that vggnp runs
    GRAPH_EDITS[name](config)  # in place: one way to break it
"""

import copy


def _tensor(name, node=0, index=0):
    return {"class_name": "__keras_tensor__",
            "config": {"shape": None, "dtype": "float32", "keras_history": [name, node, index]}}


def _call(*names):
    if not names:
        return []
    return [{"args": [[_tensor(n) for n in names]] if len(names) > 1 else [_tensor(names[0])],
             "kwargs": {}}]


def _layers(config):
    return config["config"]["layers"]


def _layer(config, name):
    return next(layer for layer in _layers(config) if layer["config"]["name"] == name)


def residual(config):
    """The demo Sequential as a Functional graph: each layer fed by the one before, and an
    Add of conv2d_7 and conv2d_6 (16 channels each) feeding max_pooling2d_2."""
    layers = _layers(config)
    for before, layer in zip(layers, layers[1:]):
        layer["inbound_nodes"] = _call(before["config"]["name"])
    layers.insert(4, {"module": "keras.layers", "class_name": "Add",
                      "config": {"name": "add", "trainable": True, "dtype": "float32"},
                      "inbound_nodes": _call("conv2d_7", "conv2d_6")})
    _layer(config, "max_pooling2d_2")["inbound_nodes"] = _call("add")
    config["class_name"] = "Functional"
    config["config"].pop("build_input_shape", None)
    config["config"]["input_layers"] = [["input_layer_1", 0, 0]]
    config["config"]["output_layers"] = [["dense_1", 0, 0]]
    return config


def _takes(name, *sources):
    def edit(config):
        _layer(config, name)["inbound_nodes"] = _call(*sources)
    return edit


def _history(name, node, index, source="conv2d_6"):
    def edit(config):
        _layer(config, name)["inbound_nodes"] = [{"args": [_tensor(source, node, index)],
                                                  "kwargs": {}}]
    return edit


def _rename(config):
    _layer(config, "conv2d_8")["config"]["name"] = "conv2d_7"


def _nest(depth):
    def edit(config):
        inner = copy.deepcopy(config)
        for level in range(depth):
            inner = {"module": "keras", "class_name": "Functional",
                     "config": {"name": f"level_{level}", "trainable": True,
                                "layers": [_input(f"in_{level}"),
                                           {**inner, "inbound_nodes": _call(f"in_{level}")}],
                                "input_layers": [[f"in_{level}", 0, 0]],
                                "output_layers": [[inner["config"]["name"], 0, 0]]}}
        config["config"] = inner["config"]
    return edit


def _input(name):
    return {"class_name": "InputLayer", "config": {"batch_shape": [None, 64, 64, 3],
                                                   "dtype": "float32", "name": name}}


def _second_input(config):
    _layers(config).insert(1, _input("another_image"))
    _layer(config, "conv2d_6")["inbound_nodes"] = _call("another_image")


GRAPH_EDITS = {  # name: (edit, the words the one-line refusal must hold)
    "a cycle": (_takes("conv2d_6", "conv2d_8"), "not all are layers before it"),
    "a missing layer": (_takes("conv2d_8", "no_such_layer"), "not all are layers before it"),
    "a missing node index": (_history("conv2d_7", 5, 0), "call 5 of layer conv2d_6"),
    "a missing tensor index": (_history("conv2d_7", 0, 3), "takes output 3"),
    "call 1 of a layer called once": (_history("conv2d_7", 1, 0), "call 1 of layer conv2d_6"),
    "an output that is not a layer": (lambda c: c["config"].update(
        output_layers=[["ghost", 0, 0]]), "its output names layer ghost"),
    "duplicate names": (_rename, "two layers named conv2d_7"),
    "a source that is not a name": (_history("conv2d_7", 0, 0, ["conv2d_6"]),
                                    "which does not exist"),
    "inbound_nodes a number": (lambda c: _layer(c, "conv2d_8").update(inbound_nodes=5),
                               "inbound_nodes is a int, not a list"),
    "vggnp's own ConstantOp named": (lambda c: _layer(c, "add").update(
        class_name="ConstantOp", config={"name": "add", "op": "pow", "constant": 2}),
        "is of class ConstantOp, which vggnp does not support"),
    "a fan-in of 5000": (_takes("add", *["conv2d_7"] * 5000), "takes 5000 inputs"),
    "Add of unequal shapes": (_takes("add", "conv2d_7", "rescaling_1"), "do not broadcast"),
    "Concatenate along rows": (lambda c: _layer(c, "add").update(
        class_name="Concatenate", config={"name": "add", "axis": 1}), "along the last axis"),
    "no input": (_takes("conv2d_6"), "takes no input"),
    "a second input": (_second_input, "does not have one input"),
    "nested 20 deep": (_nest(20), "nested more than 16 deep"),
}
