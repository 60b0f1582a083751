"""A Keras Functional model that is not a chain, read as a graph (issue #25): its nodes in
Keras' order (a topological order: every layer after the layers feeding it), each with the
names of its inputs, and every node's output shape computed from the configs alone, before
any weight is read, so that a crafted file cannot make vggnp allocate gigabytes.

    nodes, input_shape, shapes = graph_of(config, path)

A node is (class name, layer config, [input names]); the model's input is called
``nn.graph.IMAGE``. Graphs of the layers of ``model_config.LAYER_CLASSES``, the merge
layers and Reshape, one input, one output; models nested inside are inlined (a Keras
Applications base inside a classifier).
"""

import math

import numpy as np

from ..nn.graph import IMAGE
from .hdf5 import ModelError
from .layer_shapes import check_memory, layer_output
from .model_config import leaf_layers
from .model_wiring import MERGES, graph_wiring


def graph_of(config, path):
    """(nodes, input shape (H, W, C), {node name: output shape of one image})."""
    leaves, input_shape = leaf_layers(config, path, graph=True)
    wiring = []
    graph_wiring(config, IMAGE, wiring, path)
    if len(wiring) != len(leaves):  # both walk the same config: a bug, not a bad file
        raise AssertionError(f"{len(leaves)} layers but {len(wiring)} wirings")
    nodes = [(kind, cfg, names) for (kind, cfg), names in zip(leaves, wiring)]
    return nodes, input_shape, graph_shapes(nodes, input_shape, path)


def graph_shapes(nodes, input_shape, path):
    """{name: one image's output shape} of every node; ModelError if a node takes an input
    that is not an earlier node, if shapes do not fit, or one image's activations would
    pass the memory limit."""
    shapes, elements = {IMAGE: tuple(input_shape)}, 0
    for kind, cfg, names in nodes:
        name = cfg["name"]
        if not names or any(n not in shapes for n in names):
            raise ModelError(f"{path}: layer {name} takes {names}: not all are layers before "
                             "it; the file is damaged or not made by Keras")
        ins = [shapes[n] for n in names]
        if kind in MERGES:
            shape = _merged(kind, cfg, ins, path)
        elif len(ins) != 1:
            raise ModelError(f"{path}: layer {name} ({kind}) takes {len(ins)} inputs, not 1")
        else:
            shape, unfolded = layer_output(kind, cfg, ins[0], path)
            elements += unfolded
        shapes[name] = shape
        elements += math.prod(shape)
    check_memory(elements, path)
    return shapes


def _merged(kind, cfg, ins, path):
    name = cfg["name"]
    if len(ins) < 2 or (kind == "Subtract" and len(ins) != 2):
        raise ModelError(f"{path}: layer {name} ({kind}) takes {len(ins)} inputs")
    if kind == "Concatenate":
        if cfg.get("axis", -1) not in (-1, len(ins[0])):
            raise ModelError(f"{path}: layer {name}: axis = {str(cfg.get('axis'))[:20]}: "
                             "vggnp joins along the last axis (channels) only")
        if len({shape[:-1] for shape in ins}) != 1:
            raise ModelError(f"{path}: layer {name}: inputs {ins} differ before the last axis")
        return (*ins[0][:-1], sum(shape[-1] for shape in ins))
    try:
        return tuple(np.broadcast_shapes(*ins))
    except ValueError:
        raise ModelError(f"{path}: layer {name} ({kind}): inputs {ins} do not broadcast "
                         "together") from None
