"""A network whose layers form a directed acyclic graph, as Keras' Functional models do
(ResNet's skip connections, Inception's branches, squeeze-and-excitation gates).

Backprop on a graph needs one idea more than on a chain. Where one tensor x feeds several
layers c_1 ... c_k, the loss depends on x through each of them, and the multivariable
chain rule adds the paths:

    dL/dx = sum over k of (dL/dc_k) (dc_k/dx)

-- micrograd's ``+=`` on ``grad``. ``backward`` below runs the nodes in reverse
topological order and accumulates, into one gradient per tensor, what every consumer
sends back. A residual block y = F(x) + x is the smallest example: x gets the gradient
through F and, unchanged, through the skip (``Add``'s backward passes dL/dy to both).

A chain is the special case where every node has one input, the node before it; VGG16
keeps its readable chain (``network.py``). A ``Graph`` is a ``Network`` (same names,
``layer()``, ``conv_names``, ``forward(x, until, keep)``, ``backward(dout, start, stop,
...)``), so the methods run on it; it cannot start a forward midway (``supports_start``).
"""

import time
from collections import Counter
from dataclasses import replace

import numpy as np

from .backward_pass import BackwardPass
from .network import Network

IMAGE = "input"  # the name of the graph's input tensor


class Graph(Network):
    """nodes: [(layer, [names of the tensors it takes])], in an order where every input
    comes before its consumer (a topological order, as Keras lists a Functional model's
    layers); a tensor's name is the layer's that made it, or ``IMAGE``. The last node's
    output is the graph's output. input_size: (H, W); channels: C of the images.
    folds: None (every layer runs as itself), or a speed path that runs some nodes as
    stand-ins, made from (layers, inputs_of): ``fast.folding.BatchNormFolds.for_graph``,
    which the Keras reader gives its graphs."""

    supports_start = False

    def __init__(self, nodes, input_size, channels=3, folds=None):
        super().__init__([layer for layer, _ in nodes], input_size, channels)
        self.inputs_of = {layer.name: tuple(inputs) for layer, inputs in nodes}
        if len(self.inputs_of) != len(self.layers):  # a layer's caches serve one node
            raise ValueError("each node needs a layer of its own (a name used twice)")
        known = {IMAGE}
        for layer in self.layers:
            inputs = self.inputs_of[layer.name]
            if any(name not in known for name in inputs) or not inputs \
                    or (len(inputs) > 1) != layer.takes_many:
                raise ValueError(f"node {layer.name}: inputs {list(inputs)} must be earlier "
                                 f"nodes, one for a layer, several for a merge layer")
            known.add(layer.name)
        self.fan_out = Counter(name for inputs in self.inputs_of.values() for name in inputs)
        self.folds = NoFolds() if folds is None else folds(self.layers, self.inputs_of)
        self._stand_ins = {}  # {node name: the layer that ran it} in the last forward

    def replica(self):
        twin = super().replica()
        twin.folds, twin._stand_ins = self.folds.replica(twin.layers), {}
        return twin

    @property
    def nodes(self):
        """[(layer, input names)] in order (the replica's layers after ``replica()``)."""
        return [(layer, self.inputs_of[layer.name]) for layer in self.layers]

    def forward(self, x, until=None, keep=(), start=None, trace=None, fold=True):
        """x: (N, H, W, C) -> the output of ``until`` (default: the last node); with
        ``keep``, (output, {name: output}). Each tensor is dropped once its last consumer
        has run (the layers keep what their backward needs). ``trace``: as Network's.
        fold: run the stand-ins of ``folds`` (BatchNorms folded into the convs before
        them where it pays), but for the convs whose own output is asked for (``until``,
        ``keep``); never with ``trace`` (every node is then timed as itself)."""
        if start is not None:
            raise ValueError("a graph runs from its input: start is for chains")
        stop = self.names.index(self.layer(until or self.names[-1]).name)
        last_use = {name: k for k, layer in enumerate(self.layers[:stop + 1])
                    for name in self.inputs_of[layer.name]}
        values, kept, self._stand_ins = {IMAGE: x}, {}, {}
        foldable = set(self.folds.pairs) - {self.names[stop], *keep} \
            if fold and trace is None else set()
        for k, node in enumerate(self.layers[:stop + 1]):
            args, began = [values[name] for name in self.inputs_of[node.name]], time.perf_counter()
            if node.name in foldable:
                self._stand_ins.update(self.folds.stand_ins(node, args[0].shape))
            if node.name in self.folds and node.name not in self._stand_ins:
                self.folds.forget(node.name)
            layer = self._stand_ins.get(node.name, node)
            out = values[layer.name] = layer.forward(args if layer.takes_many else args[0])
            if trace is not None:
                trace.append({"layer": layer, "input": args[0].shape, "output": out.shape,
                              "ms": 1000 * (time.perf_counter() - began),
                              "inputs": self.inputs_of[layer.name],
                              "fan_out": self.fan_out[layer.name]})
            if layer.name in keep:
                kept[layer.name] = out
            for name in self.inputs_of[layer.name]:
                if last_use[name] == k:
                    del values[name]
        self._first_run, self._last_run = 0, stop
        return (out, kept) if keep else out

    def backward(self, dout, start=None, stop=None, from_logits=False, param_grads=False,
                 guided=False, trace=None, deconvnet=False, relevance=None):
        """dout: dL/d(output of ``start``, default the deepest node of the last forward)
        -> dL/d(output of ``stop``), or dL/dx (N, H, W, C) for stop None. The gradient of
        a tensor is complete once every node after it is done: its consumers all come
        later. Options as Network's."""
        if self._last_run is None:
            raise RuntimeError("run forward before backward")
        first = self.names.index(self.layer(start or self.names[self._last_run]).name)
        self._check_unfolded(start, stop, param_grads or relevance is not None)
        options = BackwardPass(guided=guided, param_grads=param_grads, deconvnet=deconvnet,
                               relevance=relevance)
        grads = {self.names[first]: dout}
        for index in range(first, -1, -1):
            layer = self._stand_ins.get(self.names[index], self.layers[index])
            if layer.name == stop:
                return grads[stop]
            d = grads.pop(layer.name, None)
            if d is None:  # no path from this node to ``start``
                continue
            began = time.perf_counter()
            step = layer.backward if relevance is None else layer.relevance
            back = step(d, replace(options, from_logits=from_logits and index == first))
            if trace is not None:  # "arriving" at its output, "sum" passed down
                passed = back if layer.takes_many else [back]
                trace.append({"layer": layer, "gradient": d.shape,
                              "norm": float(np.linalg.norm(d)),
                              "arriving": float(d.sum(dtype=np.float64)),
                              "sum": float(sum(p.sum(dtype=np.float64) for p in passed)),
                              "ms": 1000 * (time.perf_counter() - began)})
            for name, d_input in zip(self.inputs_of[layer.name],
                                     back if layer.takes_many else [back]):
                grads[name] = grads[name] + d_input if name in grads else d_input  # the +=
        if stop is not None:
            raise ValueError(f"stop layer {stop} does not feed {self.names[first]}")
        return grads[IMAGE]

    def _check_unfolded(self, start, stop, every_layer):
        """ValueError where the backward would need what the last forward's folds did not
        make: a folded conv's own output (start or stop), or every layer's own caches
        (``every_layer``: parameter gradients, LRP; their forward takes fold=False)."""
        hidden = [name for name in (start, stop) if name in self._stand_ins and
                  name in self.folds]
        if hidden:
            raise ValueError(f"backward from or to {hidden[0]}: the last forward folded the "
                             "BatchNorm after it into it, so its own output was not made; "
                             f"run forward(..., keep=({hidden[0]!r},)) or fold=False")
        if every_layer and self._stand_ins:
            raise ValueError("parameter gradients and LRP need every layer's own caches: "
                             "run forward(..., fold=False)")


class NoFolds:
    """The folds of a graph without any: no node has a stand-in."""

    pairs = {}

    def __contains__(self, name):
        return False

    def replica(self, layers):
        return self
