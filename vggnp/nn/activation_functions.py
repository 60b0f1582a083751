"""The activation functions: the last step of a Conv2D, Dense or Activation layer (not
layers of the chain themselves), each with ``forward(z, inplace)`` and ``backward(dout,
guided)``; its layer passes on whether the pass is guided (see ``BackwardPass`` in
``layers.py``). ``ACTIVATIONS`` maps Keras' activation names to them."""

import numpy as np


class ReLU:
    """out = max(x, 0);  dx = dout * (x > 0).  Shapes: any -> same.

    forward(x, inplace=True) writes the result into x (for a layer's own temporary z).
    backward(dout, guided=True) is guided backpropagation (Springenberg et al.): the
    gradient passes only where the input AND the incoming gradient are positive,
    dx = max(dout, 0) * (x > 0).
    """

    def forward(self, x, inplace=False):
        self.out = np.maximum(x, 0, out=x if inplace else None)
        return self.out

    def backward(self, dout, guided=False):
        # (x > 0) == (out > 0), made here rather than kept by forward: a forward with no
        # backward (most layers of a Grad-CAM) never pays for the mask, in time or memory.
        # Multiply, never ``dout[~mask] = 0``: that would write into the caller's array.
        mask = self.out > 0
        if guided:
            return np.maximum(dout, 0) * mask
        return dout * mask


class Softmax:
    """Softmax over the last axis. z: (N, K) -> p: (N, K) (or (..., K) -> (..., K)).

    p = exp(z - max z) / sum(exp(z - max z))   (shifting by the max avoids overflow)
    dz = p * (dp - sum(dp * p))                (the softmax Jacobian applied to dp)
    """

    def forward(self, z, inplace=False):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        self.p = e / e.sum(axis=-1, keepdims=True)
        return self.p

    def backward(self, dp, guided=False):
        return self.p * (dp - (dp * self.p).sum(axis=-1, keepdims=True))


class Sigmoid:
    """p = 1 / (1 + exp(-z)), written as (1 + tanh(z / 2)) / 2, which never overflows.
    dz = dp * p * (1 - p).  Shapes: any -> same."""

    def forward(self, z, inplace=False):
        self.p = 0.5 * (1 + np.tanh(0.5 * z))
        return self.p

    def backward(self, dp, guided=False):
        return dp * self.p * (1 - self.p)


class Identity:
    """out = x;  dx = dout.  Keras' ``activation='linear'``."""

    def forward(self, x, inplace=False):
        return x

    def backward(self, dout, guided=False):
        return dout


ACTIVATIONS = {"relu": ReLU, "softmax": Softmax, "sigmoid": Sigmoid, "linear": Identity}

