"""The layers that join branches of a graph (Keras' merge layers): several inputs, one
output. Same contract as every layer (``layers.py``), with lists:

- ``forward(xs)``: xs a list of arrays (each (N, ...), of one shape, or broadcastable to
  it as Keras allows: a squeeze-and-excitation gate (N, 1, 1, C) times a feature map
  (N, H, W, C)); returns one array.
- ``backward(dout, options)``: returns a list, the gradient w.r.t. each input, each with
  that input's shape (a broadcast input gets the sum over the axes it was broadcast
  along: the adjoint of broadcasting).

``takes_many`` tells the graph (``graph.py``) to pass a list; a chain never holds these.
"""

import numpy as np

from .layers import PLAIN, Layer
from .relevance import stabilise


def unbroadcast(d, shape):
    """The adjoint of broadcasting an array of ``shape`` to d.shape: d summed over the axes
    that broadcasting added or stretched from 1, then shaped as ``shape``."""
    d = d.sum(axis=tuple(range(d.ndim - len(shape)))) if d.ndim > len(shape) else d
    stretched = tuple(k for k, n in enumerate(shape) if n == 1 and d.shape[k] != 1)
    return d.sum(axis=stretched, keepdims=True) if stretched else d


class Merge(Layer):
    """What the merge layers share: a list in, their inputs' shapes kept for backward."""

    takes_many = True

    def forward(self, xs):
        self.shapes = [x.shape for x in xs]
        return self.merge([np.asarray(x) for x in xs])

    def backward(self, dout, options=PLAIN):
        return [unbroadcast(d, shape) for d, shape in zip(self.gradients(dout), self.shapes)]


class Add(Merge):
    """y = x_1 + ... + x_n;  dL/dx_i = dL/dy (a sum passes its gradient to every term).
    LRP: each term gets its share of y's relevance, R_i = x_i / y * R (y stabilised as
    LRP-0's z; iNNvestigate's rule for Add)."""

    def merge(self, xs):
        self.xs = xs
        self.out = sum(xs[1:], xs[0])
        return self.out

    def relevance(self, r, options):
        s = r / stabilise(self.out)
        return [unbroadcast(x * s, shape) for x, shape in zip(self.xs, self.shapes)]

    def gradients(self, dout):
        return [dout] * len(self.shapes)


class Subtract(Merge):
    """y = x_1 - x_2;  dL/dx_1 = dL/dy, dL/dx_2 = -dL/dy."""

    def merge(self, xs):
        return xs[0] - xs[1]

    def gradients(self, dout):
        return [dout, -dout]


class Average(Merge):
    """y = (x_1 + ... + x_n) / n;  dL/dx_i = dL/dy / n."""

    def merge(self, xs):
        return sum(xs[1:], xs[0]) / len(xs)

    def gradients(self, dout):
        return [dout / len(self.shapes)] * len(self.shapes)


class Multiply(Merge):
    """y = x_1 * ... * x_n (elementwise);  dL/dx_i = dL/dy * prod_{j != i} x_j."""

    def merge(self, xs):
        self.xs = xs
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out

    def gradients(self, dout):
        found = []
        for i in range(len(self.xs)):
            d = dout
            for j, x in enumerate(self.xs):
                if j != i:
                    d = d * x
            found.append(d)
        return found


class Maximum(Merge):
    """y = max(x_1, ..., x_n) (elementwise);  dL/dx_i = dL/dy where x_i is the first
    input holding the maximum, 0 elsewhere (as Keras' chain of ``maximum``: a tie goes to
    the first)."""

    def merge(self, xs):
        stacked = np.stack(np.broadcast_arrays(*xs))
        self.winner = stacked.argmax(axis=0)
        return stacked.max(axis=0)

    def gradients(self, dout):
        return [np.where(self.winner == i, dout, 0) for i in range(len(self.shapes))]


class Concatenate(Merge):
    """y = [x_1, ..., x_n] joined along ``axis`` (Keras' default: the last, channels);
    dL/dx_i = the slice of dL/dy that x_i filled."""

    relevance = Layer.gradient_relevance  # each input gets its slice

    def __init__(self, name, axis=-1):
        super().__init__(name)
        self.axis = axis

    def merge(self, xs):
        return np.concatenate(xs, axis=self.axis)

    def gradients(self, dout):
        ends = np.cumsum([shape[self.axis] for shape in self.shapes])[:-1]
        return np.split(dout, ends, axis=self.axis)
