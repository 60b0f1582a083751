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


def conv2d_naive(x, w, b, strides, pads):
    """Any kernel, stride and zero padding. pads: ((top, bottom), (left, right)).

    z[n, i, j, f] = b[f] + sum over (di, dj, c) of xp[n, SH*i+di, SW*j+dj, c] * w[di, dj, c, f]
    """
    (top, bottom), (left, right) = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw, _, f = w.shape
    out_h = (xp.shape[1] - kh) // strides[0] + 1
    out_w = (xp.shape[2] - kw) // strides[1] + 1
    z = np.zeros((x.shape[0], out_h, out_w, f), dtype=np.result_type(x, w))
    for ni in range(x.shape[0]):
        for i in range(out_h):
            for j in range(out_w):
                window = xp[ni, strides[0] * i:strides[0] * i + kh,
                            strides[1] * j:strides[1] * j + kw, :]
                for fi in range(f):
                    z[ni, i, j, fi] = np.sum(window * w[:, :, :, fi]) + b[fi]
    return z


def pool_naive(x, pool_size, strides, pads, reduce):
    """Max (reduce=np.max) or average (np.mean) over each window's elements that lie in
    the image; windows placed as in conv2d_naive. x: (N, H, W, C) -> (N, H', W', C)."""
    (top, bottom), (left, right) = pads
    n, h, w, c = x.shape
    out_h = (h + top + bottom - pool_size[0]) // strides[0] + 1
    out_w = (w + left + right - pool_size[1]) // strides[1] + 1
    out = np.zeros((n, out_h, out_w, c), dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            y0, x0 = strides[0] * i - top, strides[1] * j - left
            window = x[:, max(y0, 0):y0 + pool_size[0], max(x0, 0):x0 + pool_size[1], :]
            out[:, i, j, :] = reduce(window, axis=(1, 2))
    return out
