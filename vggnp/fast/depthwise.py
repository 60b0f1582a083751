"""The fast path of the lesson's ``DepthwiseConv2D`` (``nn/graph_layers.py``): the same sum,
read a row of pixels at a time instead of a pixel at a time.

The lesson's einsum contracts every window (N, H', W', C, KH, KW) with the kernel; its inner
loop runs over one pixel's C channels, so a map with few channels and many pixels (Xception's
147x147x64) spends its time in the loop around it. At stride 1 the tap (i, j) of a whole
output row is one contiguous run of the padded input's row, flattened to (W + KW - 1) * C:

    z[n, y, x*C + c] = sum_{i, j} xpad[n, y + i, (x + j)*C + c] w[i, j, c]
                     = sum_{i, j} rows[n, y, i, j, k] w_tiled[i, j, k],   k = x*C + c

with ``rows`` a strided view (no copy) starting each tap's run at j*C, and the kernel tiled
W' times along k (w_tiled[i, j, x*C + c] = w[i, j, c]). The inner loop then runs over W'*C
values: ``python -m scripts.path_bench --path depthwise`` times both ways in the models
(docs/speed.md), ``tests/test_fast_depthwise.py`` holds this one to the lesson's sum.

Where a pixel has many channels (C >= PIXEL_LOOP_MIN_CHANNELS: Xception's middle flow,
MobileNet's and EfficientNet's late blocks) the tiled kernel no longer fits in cache and
its tiling costs more than it saves: there the sum reads a pixel at a time, the kernel
broadcast over the row instead of tiled (``correlate_pixels``; 0.4 against 0.5 ms on
Xception's 19x19x728, ad hoc; 192 channels is where the two measured even, 3x3 and 5x5).

The input gradient, at stride 1, is the same sum over dz padded for the "full" correlation
with the kernel flipped (as ``layers.FastConv2D``'s; ``direct_conv.full_pads``):
    dx = correlate(pad(dz, ((KH-1-top, KH-1-bottom), (KW-1-left, KW-1-right))),
                   w[::-1, ::-1])
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..nn.graph_layers import DepthwiseConv2D
from .direct_conv import UsesWorkspace, full_pads, padded_copy, workspace_array


PIXEL_LOOP_MIN_CHANNELS = 192


def correlate(padded, w, out=None):
    """padded: (N, H' + KH - 1, W' + KW - 1, C), w: (KH, KW, C) -> z: (N, H', W', C), the
    stride-1 depthwise correlation z[n, y, x, c] = sum_{i, j} padded[n, y + i, x + j, c]
    w[i, j, c], a row at a time (``correlate_rows``, the kernel tiled) or, from
    PIXEL_LOOP_MIN_CHANNELS channels on, a pixel at a time (``correlate_pixels``);
    written into ``out`` (N, H', W', C) where given, else into a new array."""
    out_w = padded.shape[2] - w.shape[1] + 1
    if padded.shape[3] >= PIXEL_LOOP_MIN_CHANNELS:
        return correlate_pixels(padded, w, out)
    rows_out = None if out is None else out.reshape(out.shape[0], out.shape[1], -1)
    return correlate_rows(padded, np.tile(w, (1, 1, max(out_w, 0))), rows_out)


def correlate_pixels(padded, w, out=None):
    """padded: (N, H' + KH - 1, W' + KW - 1, C), w: (KH, KW, C) -> z: (N, H', W', C), the
    sum of ``correlate``, its inner loop over one pixel's C channels: the window view
    v[n, y, i, j, x, c] = padded[n, y + i, x + j, c] (no copy) contracted with w."""
    padded = np.ascontiguousarray(padded)
    n, hp, wp, c = padded.shape
    kh, kw, _ = w.shape
    out_h, out_w = hp - kh + 1, wp - kw + 1
    if out_h < 1 or out_w < 1 or w.shape[2] != c:
        raise ValueError(f"correlate_pixels: a {hp}x{wp}x{c} map, a kernel {w.shape}")
    item = padded.itemsize  # strides from the shape (see correlate_rows)
    windows = as_strided(padded, (n, out_h, kh, kw, out_w, c),
                         (hp * wp * c * item, wp * c * item, wp * c * item, c * item,
                          c * item, item), writeable=False)
    return np.einsum("nyijxc,ijc->nyxc", windows, w, out=out)


def correlate_rows(padded, w_tiled, out=None):
    """padded: (N, H' + KH - 1, W' + KW - 1, C); w_tiled: (KH, KW, W' * C),
    w_tiled[i, j, x*C + c] = w[i, j, c] -> z: (N, H', W', C), the stride-1 depthwise
    correlation z[n, y, x, c] = sum_{i, j} padded[n, y + i, x + j, c] w[i, j, c];
    written into ``out`` (N, H', W' * C) where given, else into a new array."""
    padded = np.ascontiguousarray(padded)
    n, hp, wp, c = padded.shape
    kh, kw, k = w_tiled.shape
    out_h, out_w = hp - kh + 1, wp - kw + 1
    if out_h < 1 or out_w * c != k:
        raise ValueError(f"correlate_rows: a {hp}x{wp}x{c} map, a tiled kernel {w_tiled.shape}")
    # strides from the shape, not the array's own: a contiguous array may carry any stride
    # on an axis of length 1, and the view below reads across axes
    item = padded.itemsize
    rows = as_strided(padded, (n, out_h, kh, kw, k),
                      (hp * wp * c * item, wp * c * item, wp * c * item, c * item, item),
                      writeable=False)
    return np.einsum("nyijk,ijk->nyk", rows, w_tiled, out=out).reshape(n, out_h, out_w, c)


class FastDepthwiseConv2D(UsesWorkspace, DepthwiseConv2D):
    """DepthwiseConv2D whose stride-1 convolutions with one kernel per channel (M = 1, as
    in every Keras Applications model) run forward and input gradient through
    :func:`correlate` (dW stays the lesson's sum); any other shape runs the
    lesson's code. buffers: the workspace the model's conv layers share, for the padded
    input (``direct_conv.padded_copy``: a copy written into memory already in use runs
    faster than np.pad's fresh array, Xception's Grad-CAM 155 against 161 ms, ad hoc) and
    for ``transient_forward``'s output."""

    def _padded(self, x, pads=None):
        """x: (N, H, W, C) zero-padded by ``pads`` (default: this layer's, as the lesson's
        ``_padded``, which its dW path calls too) in the workspace: (N, H + top + bottom,
        W + left + right, C), read by the caller and let go."""
        (top, bottom), (left, right) = pads or self.pads(x.shape)
        n, h, w, c = x.shape
        return padded_copy(self.buffers, "padded", x, ((top, bottom), (left, right))).reshape(
            n, h + top + bottom, w + left + right, c)

    def _correlates(self):
        return self.strides == (1, 1) and self.w.shape[3] == 1

    def pre_activation(self, x):
        """z (N, H', W', C), a new array."""
        if not self._correlates():
            return super().pre_activation(x)
        z = correlate(self._padded(x), self.w[:, :, :, 0])
        if self.b.any():
            z += self.b
        return z

    def transient_forward(self, x):
        """forward(x) written into the workspace array "depthwise_out" (the next call
        writes over it), where the output is the plain sum (no bias, linear): a separable
        conv's d, read once by its pointwise product. Xception's big maps then write no
        fresh 11 MB array: its slowest Grad-CAMs 191 against 313 ms, the median the same
        (an ad hoc alternating timing, 30 runs each). x: (N, H, W, C) -> (N, H', W', C)."""
        if not self._correlates() or self.b.any() or self.activation_name != "linear":
            return self.forward(x)
        self.x = np.asarray(x, dtype=self.w.dtype)  # kept for backward, as forward's
        out = workspace_array(self.buffers, "depthwise_out", self.output_shape(self.x.shape),
                              self.x.dtype)
        return correlate(self._padded(self.x), self.w[:, :, :, 0], out=out)

    def input_gradient(self, dz):
        """dz (N, H', W', C) -> dx (N, H, W, C), a new array."""
        if not self._correlates():
            return super().input_gradient(dz)
        rows, columns = full_pads(*self.w.shape[:2], self.pads(self.x.shape))
        return correlate(self._padded(dz, (rows, columns)), self.w[::-1, ::-1, :, 0])
