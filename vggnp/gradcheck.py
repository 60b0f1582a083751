"""Finite-difference gradient checks, as in CS231n's ``eval_numerical_gradient_array``.

Run them in float64: with float32 the rounding error of the difference quotient is far
larger than any bug worth finding.
"""

import numpy as np


def numerical_gradient(f, x, dout, h=1e-5):
    """Estimate d<f(x), dout>/dx by central differences.

    f: function of the array x (modified in place and restored), returning an array of the
    shape of dout. Returns grad with the shape of x:
        grad[i] = <f(x + h e_i) - f(x - h e_i), dout> / (2h)
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.sum(f(x) * dout)
        x[i] = old - h
        minus = np.sum(f(x) * dout)
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def relative_error(a, b):
    """max |a - b| / max(|a|, |b|), elementwise max; 0 when both are zero."""
    scale = np.maximum(np.abs(a), np.abs(b)).max()
    return 0.0 if scale == 0 else float(np.abs(a - b).max() / scale)
