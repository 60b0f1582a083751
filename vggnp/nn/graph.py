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
keeps its readable chain (``network.py``). This class is the engine of Keras graphs
(issue #25); the methods and the Keras reader do not use it yet.
"""

from .layers import PLAIN

IMAGE = "input"  # the name of the graph's input tensor


class Graph:
    """nodes: [(layer, [names of the tensors it takes])], in an order where every input
    comes before its consumer (a topological order, as Keras lists a Functional model's
    layers); a tensor's name is the layer's that made it, or ``IMAGE``. The last node's
    output is the graph's output. input_size: (H, W); channels: C of the images."""

    def __init__(self, nodes, input_size, channels=3):
        self.nodes = [(layer, tuple(inputs)) for layer, inputs in nodes]
        self.input_size, self.channels = tuple(input_size), channels
        self.names = [layer.name for layer, _ in self.nodes]
        if len(set(self.names)) != len(self.names):  # a layer's caches serve one node
            raise ValueError("each node needs a layer of its own (a name used twice)")
        known = {IMAGE}
        for layer, inputs in self.nodes:
            missing = [name for name in inputs if name not in known]
            if missing or not inputs or (len(inputs) > 1) != layer.takes_many:
                raise ValueError(f"node {layer.name}: inputs {list(inputs)} must be earlier "
                                 f"nodes, one for a layer, several for a merge layer")
            known.add(layer.name)

    def forward(self, x):
        """x: (N, H, W, C) -> the last node's output. Each tensor is dropped as soon as its
        last consumer has run (the layers keep what their backward needs)."""
        last_use = {name: k for k, (_, inputs) in enumerate(self.nodes) for name in inputs}
        values = {IMAGE: x}
        for k, (layer, inputs) in enumerate(self.nodes):
            args = [values[name] for name in inputs]
            values[layer.name] = layer.forward(args if layer.takes_many else args[0])
            for name in inputs:
                if last_use[name] == k:
                    del values[name]
        return values[self.names[-1]]

    def predict(self, x):
        return self.forward(x)

    def backward(self, dout, options=PLAIN):
        """dout: dL/d(the last node's output) -> dL/dx, (N, H, W, C). Needs a forward
        first. Gradients of a tensor with several consumers add up (see the module)."""
        grads = {self.names[-1]: dout}
        for layer, inputs in reversed(self.nodes):
            d = grads.pop(layer.name, None)
            if d is None:  # no path from this node to the output
                continue
            back = layer.backward(d, options)
            for name, d_input in zip(inputs, back if layer.takes_many else [back]):
                grads[name] = grads[name] + d_input if name in grads else d_input  # the +=
        return grads[IMAGE]
