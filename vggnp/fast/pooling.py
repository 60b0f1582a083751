"""The fast path of the lesson's ``MaxPool2D`` backward, for windows that tile the map
(VGG16's 2x2 pools, stride 2, on even maps): each pixel lies in exactly one window, so
dx is written once per window offset, with no zeroed array and no float temporaries.

For each offset (i, j) of the window, in row-major order, with out the forward's max:

    first[i, j] = (x[:, i::PH, j::PW] == out) and not routed      (routed: found before)
    dx[:, i::PH, j::PW] = dout * first[i, j]

the same rule as the lesson's (each window's gradient to its FIRST maximum, as
TensorFlow's), four passes an offset over out-sized arrays where the lesson's takes six,
and no zeroed dx. The same numbers, but for a zero's sign: where a window's gradient goes
elsewhere, dout * 0 is -0.0 for a negative dout (the lesson's 0 + dout * 0 is +0.0; the
two compare equal). ``tests/test_fast_pooling.py`` holds it to the lesson's, ties and NaN
included.

A pool with "same" padding (Xception's 3x3, stride 2) pads its input with -inf in the
model's workspace (``direct_conv.padded_copy``) rather than in np.pad's fresh array:
Xception's Grad-CAM 158 against 165 ms (an ad hoc alternating timing, 21 runs each).
"""

from functools import partial

import numpy as np

from ..nn.layers import PLAIN, MaxPool2D
from ..nn.im2col import windows
from .blocks import INLINE
from .direct_conv import UsesWorkspace, padded_images

# Rows of windows a task takes: the band of x the backward reads four times (VGG16's
# block1_pool: 8 rows of windows, 16 of x, 0.9 MB) stays in cache between them. Whole at
# once, x came from memory four times: block1_pool's backward 8.5 ms with a cold cache,
# 5.9 in bands of 8 rows, 3.8 with the bands on two threads (ad hoc timings, docs/speed.md).
ROWS_PER_TASK = 8


class FastMaxPool2D(UsesWorkspace, MaxPool2D):
    """MaxPool2D whose backward, where the windows tile the input (``tiles``), writes each
    pixel's gradient once, a few rows of windows at a time (``ROWS_PER_TASK``), the tasks
    run on ``threads`` (VGG16's: ``blocks.BLOCKS``; default ``INLINE``); any other pool
    (overlapping windows, padding, a dropped last row) runs the lesson's. buffers: the
    workspace the model's conv layers share."""

    def __init__(self, name, pool_size=(2, 2), strides=None, padding="valid", buffers=None,
                 threads=INLINE):
        super().__init__(name, pool_size, strides, padding, buffers=buffers)
        self.threads = threads

    def _pad(self, x, pads, fill):
        """As the lesson's, the padded copy in the workspace: (N, H + top + bottom,
        W + left + right, C), read by its caller and let go."""
        return padded_images(self.buffers, "padded", x, pads, fill)

    def tiles(self, x_shape):
        """True where the windows cover x exactly once: strides equal to the pool size,
        H and W multiples of it (no padding then, "valid" or "same")."""
        (ph, pw), (_, h, w, _) = self.pool_size, x_shape
        return self.strides == self.pool_size and h % ph == 0 and w % pw == 0

    def forward(self, x):
        """x: (N, H, W, C) -> out: (N, H', W', C), the max of each window as the lesson's;
        where the windows tile x, a band of rows of windows at a time (``_bands``)."""
        if not self.tiles(x.shape):
            return super().forward(x)
        self.x = x
        (ph, pw), (n, h, w, c) = self.pool_size, x.shape
        self.out = np.empty((n, h // ph, w // pw, c), x.dtype)
        self.threads.run(partial(self._max, x[:, i], self.out[:, o]) for o, i in self._bands())
        return self.out

    def backward(self, dout, options=PLAIN):
        """dout: (N, H', W', C) -> dx: (N, H, W, C)."""
        if not self.tiles(self.x.shape):
            return super().backward(dout, options)
        dx = np.empty(self.x.shape, dout.dtype)
        self.threads.run(partial(self._route, dout[:, o], dx[:, i], self.x[:, i], self.out[:, o])
                         for o, i in self._bands())
        return dx

    def _bands(self):
        """(rows of out, rows of x) of each band: ROWS_PER_TASK rows of windows, the last
        band shorter where they do not divide H'."""
        ph, rows = self.pool_size[0], ROWS_PER_TASK
        return [(slice(r, r + rows), slice(ph * r, ph * (r + rows)))
                for r in range(0, self.x.shape[1] // ph, rows)]

    def _max(self, x, out):
        """out (N, R, W', C) = the max of each window of a band x (N, R * PH, W, C)."""
        views = windows(x, *self.pool_size, self.strides, *out.shape[1:3])
        out[...] = next(views)[2]
        for _, _, view in views:
            np.maximum(out, view, out=out)

    def _route(self, dout, dx, x, out):
        """The module's rule on a band of whole rows of windows: dout, out (N, R, W', C);
        x, dx (N, R * PH, W, C), dx written."""
        (ph, pw), out_w = self.pool_size, out.shape[2]
        routed = np.zeros(out.shape, dtype=bool)
        first = np.empty(out.shape, dtype=bool)
        offsets = windows(x, ph, pw, self.strides, out.shape[1], out_w)
        grads = windows(dx, ph, pw, self.strides, out.shape[1], out_w)
        for (_, _, view), (_, _, grad) in zip(offsets, grads):  # row-major window order
            np.equal(view, out, out=first)
            np.greater(first, routed, out=first)  # a max here, none found before
            routed |= first
            np.multiply(dout, first, out=grad)
