"""Slow, obvious loop versions of convolution and max-pool.

Used only by the tests, to check the fast im2col and reshape versions in ``layers.py``
against code whose correctness can be seen by reading it (as CS231n's
``conv_forward_naive``). Shapes as in ``layers.py``: NHWC.
"""

import numpy as np


def conv2d_same_naive(x, w, b):
    """x: (N, H, W, C), w: (KH, KW, C, F), b: (F,) -> z: (N, H, W, F), before activation.

    z[n, i, j, f] = b[f] + sum over (di, dj, c) of xp[n, i+di, j+dj, c] * w[di, dj, c, f]
    where xp is x zero-padded by KH//2 (cross-correlation, as Keras).
    """
    n, h, width, c = x.shape
    kh, kw, _, f = w.shape
    pad = kh // 2
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    z = np.zeros((n, h, width, f), dtype=np.result_type(x, w))
    for ni in range(n):
        for i in range(h):
            for j in range(width):
                window = xp[ni, i:i + kh, j:j + kw, :]  # (KH, KW, C)
                for fi in range(f):
                    z[ni, i, j, fi] = np.sum(window * w[:, :, :, fi]) + b[fi]
    return z


def maxpool2x2_naive(x):
    """x: (N, H, W, C) -> (out: (N, H//2, W//2, C), dx_routing).

    Returns the pooled output and a function that routes an upstream gradient
    ``dout: (N, H//2, W//2, C)`` to the first maximum of each window (row-major scan,
    strict ``>``, so ties go to the earliest position).
    """
    n, h, w, c = x.shape
    oh, ow = h // 2, w // 2
    out = np.zeros((n, oh, ow, c), dtype=x.dtype)
    where = {}
    for ni in range(n):
        for i in range(oh):
            for j in range(ow):
                for ci in range(c):
                    best, best_pos = None, None
                    for di in range(2):
                        for dj in range(2):
                            v = x[ni, 2 * i + di, 2 * j + dj, ci]
                            if best is None or v > best:
                                best, best_pos = v, (2 * i + di, 2 * j + dj)
                    out[ni, i, j, ci] = best
                    where[ni, i, j, ci] = best_pos

    def backward(dout):
        dx = np.zeros(x.shape, dtype=dout.dtype)
        for (ni, i, j, ci), (pi, pj) in where.items():
            dx[ni, pi, pj, ci] += dout[ni, i, j, ci]
        return dx

    return out, backward
