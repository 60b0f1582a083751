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
values: ``python -m scripts.depthwise_bench`` times both ways inside the models
(docs/speed.md), ``tests/test_fast_depthwise.py`` holds this one to the lesson's sum.

Backward, at stride 1, is the same sum over dz padded for the "full" correlation with the
kernel flipped (as ``layers.FastConv2D``'s):
    dx = correlate_rows(pad(dz, ((KH-1-top, KH-1-bottom), (KW-1-left, KW-1-right))),
                        w[::-1, ::-1])
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..nn.graph_layers import DepthwiseConv2D


def correlate_rows(padded, w_tiled, out_h, out_w):
    """padded: (N, out_h + KH - 1, out_w + KW - 1, C), C-contiguous; w_tiled: (KH, KW,
    out_w * C), w_tiled[i, j, x*C + c] = w[i, j, c] -> z: (N, out_h, out_w, C), the stride-1
    depthwise correlation z[n, y, x, c] = sum_{i, j} padded[n, y + i, x + j, c] w[i, j, c]."""
    padded = np.ascontiguousarray(padded)
    n, c = padded.shape[0], padded.shape[3]
    kh, kw = w_tiled.shape[:2]
    sn, sy, sx, sc = padded.strides
    rows = as_strided(padded, (n, out_h, kh, kw, out_w * c), (sn, sy, sy, sx, sc),
                      writeable=False)
    return np.einsum("nyijk,ijk->nyk", rows, w_tiled).reshape(n, out_h, out_w, c)


class FastDepthwiseConv2D(DepthwiseConv2D):
    """DepthwiseConv2D whose stride-1 convolutions with one kernel per channel (M = 1, as
    in every Keras Applications model) run forward and backward through
    :func:`correlate_rows`; any other shape runs the lesson's code."""

    def _rows_path(self):
        return self.strides == (1, 1) and self.w.shape[3] == 1

    def _tiled(self, width, flipped):
        """w[..., 0] (flipped for the backward) tiled ``width`` times along the channels:
        (KH, KW, width * C). Made on every call (a small part of the sum's time); kept,
        Xception's would hold 16 MB."""
        taps = self.w[::-1, ::-1, :, 0] if flipped else self.w[:, :, :, 0]
        return np.tile(taps, (1, 1, width))

    def pre_activation(self, x):
        """z (N, H', W', C), a new array."""
        if not self._rows_path():
            return super().pre_activation(x)
        _, h, w, _ = self.output_shape(x.shape)
        z = correlate_rows(self._padded(x), self._tiled(w, False), h, w)
        if self.b.any():
            z += self.b
        return z

    def input_gradient(self, dz):
        """dz (N, H', W', C) -> dx (N, H, W, C), a new array."""
        if not self._rows_path():
            return super().input_gradient(dz)
        kh, kw = self.w.shape[:2]
        (top, bottom), (left, right) = self.pads(self.x.shape)
        _, h, w, _ = self.x.shape
        padded = np.pad(dz, ((0, 0), (kh - 1 - top, kh - 1 - bottom),
                             (kw - 1 - left, kw - 1 - right), (0, 0)))
        return correlate_rows(padded, self._tiled(w, True), h, w)
