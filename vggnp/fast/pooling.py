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

import numpy as np

from ..nn.layers import PLAIN, MaxPool2D
from ..nn.im2col import windows
from .direct_conv import UsesWorkspace, padded_images


class FastMaxPool2D(UsesWorkspace, MaxPool2D):
    """MaxPool2D whose backward, where the windows tile the input (``tiles``), writes each
    pixel's gradient once; any other pool (overlapping windows, padding, a dropped last
    row) runs the lesson's. buffers: the workspace the model's conv layers share."""

    def _pad(self, x, pads, fill):
        """As the lesson's, the padded copy in the workspace: (N, H + top + bottom,
        W + left + right, C), read by its caller and let go."""
        return padded_images(self.buffers, "padded", x, pads, fill)

    def tiles(self, x_shape):
        """True where the windows cover x exactly once: strides equal to the pool size,
        H and W multiples of it (no padding then, "valid" or "same")."""
        (ph, pw), (_, h, w, _) = self.pool_size, x_shape
        return self.strides == self.pool_size and h % ph == 0 and w % pw == 0

    def backward(self, dout, options=PLAIN):
        """dout: (N, H', W', C) -> dx: (N, H, W, C)."""
        if not self.tiles(self.x.shape):
            return super().backward(dout, options)
        (ph, pw), (out_h, out_w) = self.pool_size, self.out.shape[1:3]
        dx = np.empty(self.x.shape, dout.dtype)
        routed = np.zeros(self.out.shape, dtype=bool)
        first = np.empty(self.out.shape, dtype=bool)
        offsets = windows(self.x, ph, pw, self.strides, out_h, out_w)
        grads = windows(dx, ph, pw, self.strides, out_h, out_w)
        for (_, _, view), (_, _, grad) in zip(offsets, grads):  # row-major window order
            np.equal(view, self.out, out=first)
            np.greater(first, routed, out=first)  # a max here, none found before
            routed |= first
            np.multiply(dout, first, out=grad)
        return dx
