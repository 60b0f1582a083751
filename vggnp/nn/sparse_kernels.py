"""Convolutions whose kernel is a larger kernel with zeros in it (Keras' Conv2D with
``dilation_rate`` or ``groups``, DepthwiseConv2D with ``dilation_rate``): run as the
convolution of that full kernel, which makes exactly the same sums, so forward and
backward are Conv2D's (``layers.py``) or DepthwiseConv2D's (``graph_layers.py``).

    dilated, rate (dh, dw): the KHxKW taps spread dh and dw pixels apart,
        W_full[dh * i, dw * j] = w[i, j], zeros between: a (dh (KH-1) + 1) x (dw (KW-1) + 1)
        kernel
    grouped, g groups: group k's F/g filters see only its C/g input channels,
        W_full[:, :, k C/g:(k+1) C/g, k F/g:(k+1) F/g] = w[:, :, :, k F/g:(k+1) F/g],
        zeros elsewhere (block diagonal)

The weight gradient is the full kernel's read back where the layer has weights (a zero of
the full kernel is not a weight). Slower than a dedicated kernel by the zeros it multiplies
(a rate-2 3x3 kernel is 5x5: 2.8 times the work); vggnp's models use neither often.
"""

import numpy as np

from .graph_layers import DepthwiseConv2D
from .layers import Conv2D, Layer


def full_kernel(w, dilation=(1, 1), groups=1, channels=None):
    """w: (KH, KW, C/g, F) -> (dh (KH-1) + 1, dw (KW-1) + 1, C, F), zeros where the
    layer has no weight; channels: C (C/g * g)."""
    kh, kw, cg, f = w.shape
    dh, dw = dilation
    full = np.zeros((dh * (kh - 1) + 1, dw * (kw - 1) + 1, cg * groups, f), w.dtype)
    fg = f // groups
    for k in range(groups):
        full[::dh, ::dw, k * cg:(k + 1) * cg, k * fg:(k + 1) * fg] = w[..., k * fg:(k + 1) * fg]
    return full


def layer_kernel(full, shape, dilation=(1, 1), groups=1):
    """The inverse of :func:`full_kernel`: the layer's (KH, KW, C/g, F) weights (or their
    gradients) read out of a full kernel."""
    _, _, cg, f = shape
    dh, dw = dilation
    fg = f // groups
    return np.concatenate([full[::dh, ::dw, k * cg:(k + 1) * cg, k * fg:(k + 1) * fg]
                           for k in range(groups)], axis=3)


class SparseKernelConv2D(Conv2D):
    """Keras' Conv2D with a dilation rate or groups (see the module docstring). kernel:
    (KH, KW, C/g, F) as Keras stores it; ``w`` is the full kernel Conv2D computes with;
    ``weights`` and ``dw`` are the layer's own, of the kernel's shape."""

    relevance = Layer.relevance  # LRP: the flat rule would spread onto the spread zeros

    def __init__(self, name, kernel, b=None, activation="linear", strides=(1, 1),
                 padding="same", dilation=(1, 1), groups=1):
        super().__init__(name, full_kernel(kernel, dilation, groups), b, activation, strides,
                         padding)
        self.kernel, self.dilation, self.groups = kernel, tuple(dilation), groups

    @property
    def weights(self):
        return (self.kernel, self.b) if self.use_bias else (self.kernel,)

    def param_gradients(self, dz):
        super().param_gradients(dz)
        self.dw = layer_kernel(self.dw, self.kernel.shape, self.dilation, self.groups)


class DilatedDepthwiseConv2D(DepthwiseConv2D):
    """Keras' DepthwiseConv2D with a dilation rate: the DepthwiseConv2D of the spread
    kernel (``full_kernel`` with one group: the taps spread, zeros between). kernel:
    (KH, KW, C, M) as Keras stores it; ``weights`` and ``dw`` are of its shape."""

    relevance = Layer.relevance  # LRP: the flat rule would spread onto the spread zeros

    def __init__(self, name, kernel, b=None, activation="linear", strides=(1, 1),
                 padding="same", dilation=(1, 1)):
        super().__init__(name, full_kernel(kernel, dilation), b, activation, strides, padding)
        self.kernel, self.dilation = kernel, tuple(dilation)

    @property
    def weights(self):
        return (self.kernel, self.b) if self.use_bias else (self.kernel,)

    def param_gradients(self, dz):
        super().param_gradients(dz)
        self.dw = layer_kernel(self.dw, self.kernel.shape, self.dilation)
