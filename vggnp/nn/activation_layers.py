"""Keras' activation layers with a parameter of their own, beside ``ReLU``
(``graph_layers.py``): PReLU (a learned slope per channel) and ELU. Same contract as every
layer (``layers.py``), shapes any -> same."""

import numpy as np

from .activation_functions import ELU as ELUFunction, relu
from .layers import PLAIN, Layer


class PReLU(Layer):
    """Keras' PReLU: a leaky ReLU whose slope is learned, alpha: the input's shape without
    N, of size 1 on the ``shared_axes``:

        f(x) = x for x > 0, alpha * x else
        dx = dout for x > 0, alpha * dout else;  dalpha = sum of dout * x where x <= 0, over
        N and the shared axes

    Guided: the negative gradients dropped too, as at every ReLU."""

    def __init__(self, name, alpha):
        super().__init__(name)
        self.alpha = alpha
        self.weights = (alpha,)

    def forward(self, x):
        self.x = x
        return np.where(x > 0, x, self.alpha * x)

    def backward(self, dout, options=PLAIN):
        positive = self.x > 0
        if options.param_grads:
            axes = tuple(a for a in range(self.x.ndim)
                         if a == 0 or self.alpha.shape[a - 1] == 1)
            self.dw = np.where(positive, 0, dout * self.x).sum(axis=axes).reshape(
                self.alpha.shape)
        dx = np.where(positive, dout, self.alpha * dout)
        return relu(dx) if options.guided else dx


class ELU(Layer):
    """Keras' ELU layer: the elu activation (``activation_functions.ELU``: f(x) = x for
    x > 0, alpha (e^x - 1) else) with this layer's alpha (the activation's is 1)."""

    def __init__(self, name, alpha=1.0):
        super().__init__(name)
        self.alpha = alpha
        self.function = self._function()

    def _function(self):
        function = ELUFunction()
        function.alpha = self.alpha
        return function

    def replica(self, workspace):
        twin = super().replica(workspace)
        twin.function = self._function()  # the function keeps its input: one per replica
        return twin

    def forward(self, x):
        return self.function.forward(x)

    def backward(self, dout, options=PLAIN):
        return self.function.backward(dout, options.guided)
