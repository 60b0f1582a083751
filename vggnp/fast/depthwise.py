"""The fast path of the lesson's ``DepthwiseConv2D`` (``nn/graph_layers.py``): the same sum,
read a row of pixels at a time (a pixel at a time where it has many channels).

The lesson's einsum contracts every window (N, H', W', C, KH, KW) with the kernel; its inner
loop runs over one pixel's C channels, so a map with few channels and many pixels (Xception's
147x147x64) spends its time in the loop around it. At stride 1 the tap (i, j) of a whole
output row is one contiguous run of the padded input's row, flattened to (W + KW - 1) * C:

    z[n, y, x*C + c] = sum_{i, j} xpad[n, y + i, (x + j)*C + c] w[i, j, c]
                     = sum_{i, j} rows[n, y, i, j, k] w_tiled[i, j, k],   k = x*C + c

with ``rows`` a strided view (no copy) starting each tap's run at j*C, and the kernel tiled
along k (w_tiled[i, j, x*C + c] = w[i, j, c]). The inner loop then runs over a row's
values, in chunks of about ROW_CHUNK_VALUES so that the tiled kernel stays in cache (one
chunk's width of it serves every chunk): ``python -m scripts.path_bench --path depthwise``
times this against the lesson's way in the models (docs/speed.md),
``tests/test_fast_depthwise.py`` holds it to the lesson's sum.

Where a pixel has many channels (C >= PIXEL_LOOP_MIN_CHANNELS: Xception's middle flow,
MobileNet's and EfficientNet's late blocks) a chunk holds few pixels and the loops around
it cost more than the long one saves: there the sum reads a pixel at a time, the kernel
broadcast over the row instead of tiled (``correlate_pixels``; 0.35 against 0.42 ms on
Xception's 19x19x728, 0.17 against 0.19 on 14x14x576; the two even at 320 and 384
channels, 0.90x to 1.04x; the chunked rows won at 256 and below, 0.61 against 0.66 ms on
37x37x256: ad hoc, 3x3 and 5x5 alike; ``--path loops`` times the choice in the models).

The input gradient, at stride 1, is the same sum over dz padded for the "full" correlation
with the kernel flipped (as ``layers.FastConv2D``'s; ``direct_conv.full_pads``):
    dx = correlate(pad(dz, ((KH-1-top, KH-1-bottom), (KW-1-left, KW-1-right))),
                   w[::-1, ::-1])
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..nn.graph_layers import DepthwiseConv2D
from .direct_conv import UsesWorkspace, full_pads, padded_images, workspace_array


PIXEL_LOOP_MIN_CHANNELS = 384
ROW_CHUNK_VALUES = 2048  # a chunk of an output row, x*C + c: 8 KB a tap in float32


def correlate(padded, w, out=None):
    """padded: (N, H' + KH - 1, W' + KW - 1, C), w: (KH, KW, C) -> z: (N, H', W', C), the
    stride-1 depthwise correlation z[n, y, x, c] = sum_{i, j} padded[n, y + i, x + j, c]
    w[i, j, c], a row at a time (``correlate_rows``) or, from PIXEL_LOOP_MIN_CHANNELS
    channels on, a pixel at a time (``correlate_pixels``); written into ``out`` (a
    C-contiguous (N, H', W', C) array) where given, else into a new array."""
    if padded.shape[3] >= PIXEL_LOOP_MIN_CHANNELS:
        return correlate_pixels(padded, w, out)
    return correlate_rows(padded, w, out)


def _checked(padded, w, out):
    """(padded as a C-contiguous array, its strides in bytes along (N, H, W, C) from its
    shape, out or a new array of z's shape (N, H', W', C) and dtype); a kernel that does
    not fit the map or names other channels, or an ``out`` that is not a C-contiguous
    array of that shape, refused (the views below are not bounds-checked, and a reshaped
    copy of ``out`` would take the sums in its place)."""
    padded = np.ascontiguousarray(padded)
    n, hp, wp, c = padded.shape
    kh, kw, kc = w.shape
    if hp < kh or wp < kw or kc != c or c == 0:
        raise ValueError(f"depthwise correlate: a {hp}x{wp}x{c} map, a kernel {w.shape}")
    shape = (n, hp - kh + 1, wp - kw + 1, c)
    if out is None:
        out = np.empty(shape, np.result_type(padded, w))
    elif out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"depthwise correlate: out must be a C-contiguous {shape} array")
    # strides from the shape, not the array's own: a contiguous array may carry any stride
    # on an axis of length 1, and the views read across axes
    item = padded.itemsize
    return padded, (hp * wp * c * item, wp * c * item, c * item, item), out


def correlate_pixels(padded, w, out=None):
    """The sum of ``correlate``, its inner loop over one pixel's C channels: the window
    view v[n, y, i, j, x, c] = padded[n, y + i, x + j, c] (no copy) contracted with w.
    (The lesson's einsum is the same sum over a view laid out (N, H', W', C, KH, KW); here
    the map comes padded in the workspace, and the output may be written into it.)"""
    padded, (image, row, pixel, value), out = _checked(padded, w, out)
    (n, out_h, out_w, c), (kh, kw, _) = out.shape, w.shape
    windows = as_strided(padded, (n, out_h, kh, kw, out_w, c),
                         (image, row, row, pixel, pixel, value), writeable=False)
    return np.einsum("nyijxc,ijc->nyxc", windows, w, out=out)


def correlate_rows(padded, w, out=None):
    """The sum of ``correlate``, a row at a time: for each chunk of an output row (about
    ROW_CHUNK_VALUES values, ``width`` pixels), rows[n, y, i, j, k] = the padded row y + i
    from pixel x0 + j on, flattened (no copy), contracted with the kernel tiled ``width``
    times, w_tiled[i, j, x*C + c] = w[i, j, c]. Chunks keep the tiled kernel in cache
    (Xception's 147x147x128 map: 5.3 against 7.9 ms in whole rows, ad hoc)."""
    padded, (image, row, pixel, value), out = _checked(padded, w, out)
    (n, out_h, out_w, c), (kh, kw, _) = out.shape, w.shape
    flat_out = out.reshape(n, out_h, out_w * c)  # a view: out is C-contiguous
    width = max(1, min(out_w, ROW_CHUNK_VALUES // c))
    w_tiled = np.tile(w, (1, 1, width))
    for x0 in range(0, out_w, width):
        length = (min(out_w, x0 + width) - x0) * c  # its last tap reads pixel < W' + KW - 1
        rows = as_strided(padded[:, :, x0:], (n, out_h, kh, kw, length),
                          (image, row, row, pixel, value), writeable=False)
        np.einsum("nyijk,ijk->nyk", rows, w_tiled[:, :, :length],
                  out=flat_out[:, :, x0 * c:x0 * c + length])
    return out


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
        return padded_images(self.buffers, "padded", x, pads or self.pads(x.shape))

    def _correlates(self):
        """True where ``correlate`` computes this layer's sums: stride 1, M = 1."""
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
