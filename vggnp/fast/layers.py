"""The fast path of the lesson's ``Conv2D``: the same sums, most computed without ``im2col``.

``FastConv2D`` is a ``vggnp.nn.layers.Conv2D`` (same weights, same ``forward(x)`` /
``backward(dout, options)`` contract, same outputs to float32 rounding) that the loaded
models build instead (``vggnp/models/``). A stride-1 conv sums shifted GEMMs
(``direct_conv.correlate``), forward and for dx. A strided conv, or one with an image's
channels (at most UNFOLDED_MAX_CHANNELS), runs forward as im2col and one GEMM, a band of
output rows at a time (``im2col_in_bands``); dx of fewer than FLIPPED_KERNEL_MIN_CHANNELS
input channels is col2im by planes, a strided conv's the textbook col2im; every path's dW
reads im2col a window row at a time (``unfold.py``). Each path is tested against the
textbook one (``tests/test_fast_conv.py``, ``tests/test_few_channel_conv.py``,
``tests/test_winograd.py``). Winograd F(4x4, 3x3) replaces either sum of a "same" 3x3 conv
of 256 to 256 channels in whole 4x4 tiles (``winograd.winograd_pays``: VGG16's
block3_conv2 and block3_conv3). ``python -m vggnp.trace --paths`` says which path each
layer of VGG16 takes on this machine. ``FastDense`` is the lesson's
``Dense`` with its large products cut into blocks for several threads (``blocks.py``).
"""

from functools import partial

import numpy as np

from ..nn.activation_functions import relu as relu_function, relu_gradient
from ..nn.layers import Conv2D, Dense
from .blocks import INLINE
from .direct_conv import UsesWorkspace, correlate, correlate_input, full_pads
from .unfold import col2im_planes, im2col_rows, window_rows
from .winograd import winograd_input, winograd_pays, winograd_same

# Below this many input channels the backward's dx is col2im's sum, by planes
# (``unfold.col2im_planes``): for VGG16's first layer (C = 3) the flipped-kernel sum would
# be KH*KW GEMMs that each write only 3 columns, measured slower (docs/speed.md).
FLIPPED_KERNEL_MIN_CHANNELS = 16
# At most this many input channels (an image's: 1 gray, 3 RGB) a stride-1 conv's forward
# is im2col's one product of depth KH*KW*C, in bands (``FastConv2D.im2col_in_bands``), not KH*KW
# shifted products of depth C: VGG16's block1_conv1 5.2 -> 3.1 ms alone, 5.0-6.5 -> 3.4-3.8
# in the network (docs/speed.md). Bands were faster alone up to C = 16 too, but no
# model's layer past its input has so few channels, and the narrow test models (4 to 8
# channels) then keep the shifted products that VGG16's twelve other convs run.
UNFOLDED_MAX_CHANNELS = 3
# The most output a band of ``im2col_in_bands`` holds: it bounds the im2col rows copied at once
# (KH*KW*C / F times the band's bytes). Bands of 1 to 16 MB, or an image's, ran alike on
# this machine's 480 MB L3 (docs/speed.md); the bound keeps the copy small whatever the
# image's size, and a band near cache-sized where caches are smaller.
BAND_BYTES = 2 << 20


def relu_gradient_into(dx, dout, out, guided=False):
    """``activation_functions.relu_gradient`` written into dx: dx = dout * (out > 0)
    (guided: max(dout, 0) * (out > 0)); dx, dout, out: any shape, the same. The mask is
    written into dx as 0.0 and 1.0 and multiplied there: NumPy's product with the boolean
    mask casts it inside the loop, 7-13 % slower on VGG16's maps in eight readings of
    nine (``python -m scripts.relu_bench``'s first table, docs/speed.md). The same
    numbers, signed zeros included (tests/test_fast_relu.py). Returns dx."""
    gradient = relu_function(dout) if guided else np.asarray(dout)
    if np.may_share_memory(dx, gradient):  # the mask would overwrite the gradient first
        return relu_gradient(gradient, out, into=dx)
    np.greater(out, 0, out=dx)
    return np.multiply(dx, gradient, out=dx)


def flipped_kernel(w):
    """w_flipped[i, j, f, c] = w[KH-1-i, KW-1-j, c, f]: (KH, KW, C, F) -> (KH, KW, F, C).

    A view of w, not a copy: each tap w_flipped[i, j] is the (C, F) tap w[KH-1-i, KW-1-j]
    transposed, which ``gemm.matmul_add`` hands to BLAS as it is (with BLAS's transpose flag),
    so the backward costs no second copy of the kernels (58 MB for VGG16's)."""
    return w[::-1, ::-1].transpose(0, 1, 3, 2)


class FastConv2D(UsesWorkspace, Conv2D):
    """Conv2D whose stride-1 convolutions ("same" as all of VGG16's, or "valid") run
    forward and backward through :func:`correlate` (but for the exceptions below): one
    GEMM per kernel tap on shifted slices of the padded input, the bias added in the same
    pass (out is then a view into an array padded like the input, not contiguous).

    Backward, for those shapes, with the forward's zero padding (top, bottom) rows and
    (left, right) columns:
        dx = correlate(dz, w_flipped, ((KH-1-top, KH-1-bottom), (KW-1-left, KW-1-right))),
        w_flipped[i, j, f, c] = w[KH-1-i, KW-1-j, c, f]
    the same sum as ``col2im(dz @ W.T)`` (a "transposed convolution"; a "valid" conv's is
    the "full" one). Up to UNFOLDED_MAX_CHANNELS input channels the forward is im2col's
    product in bands (``im2col_in_bands``); below FLIPPED_KERNEL_MIN_CHANNELS dx is col2im's sum
    by planes (``unfold.col2im_planes``).
    Winograd F(4x4, 3x3) replaces either sum of a 3x3 "same" conv where
    :func:`winograd_pays`. A ReLU (VGG16's) is taken in the direct sum's blocks of rows
    (and im2col's bands, Winograd's output bands), and its backward writes dz where dx's
    sum reads it: two passes over each map fewer (``forward``, ``activation_backward``).
    buffers: the padded-input workspace, shared by the model's conv layers (they run one
    at a time) and reused across calls. threads: the ``blocks.BlockThreads`` its products
    are cut for (every path's: VGG16's layers; default ``INLINE``, not cut).
    """

    def __init__(self, name, w, b=None, activation="relu", strides=(1, 1), padding="same",
                 buffers=None, threads=INLINE):
        super().__init__(name, w, b, activation, strides, padding, buffers=buffers)
        self.threads = threads

    def forward(self, x):
        """x: (N, H, W, C) -> out: (N, H', W', F), as the lesson's; a ReLU is taken in the
        path's blocks or bands of rows, while each is in cache (``correlate``'s relu,
        ``im2col_in_bands``, ``winograd_same``), and kept as the ReLU's output."""
        path = self.path(np.shape(x))
        if self.activation_name != "relu":
            return super().forward(x)
        self.x = np.asarray(x, dtype=self.w.dtype)
        if path == "im2col":
            return self.activation.keep_output(self.im2col_in_bands(self.x, relu=True))
        if path == "winograd":
            return self.activation.keep_output(winograd_same(
                self.x, self.w, self.buffers, threads=self.threads, bias=self.b, relu=True))
        return self.activation.keep_output(correlate(self.x, self.w, self.buffers,
                                                     self.pads(self.x.shape), bias=self.b,
                                                     threads=self.threads, relu=True))

    def pre_activation(self, x):
        path = self.path(x.shape)
        if path == "im2col":
            return self.im2col_in_bands(x)
        if path == "winograd":
            return winograd_same(x, self.w, self.buffers, threads=self.threads, bias=self.b)
        return correlate(x, self.w, self.buffers, self.pads(x.shape), bias=self.b,
                         threads=self.threads)

    def im2col_in_bands(self, x, relu=False):
        """z = im2col(x) @ W + b (with relu: max(z, 0)), x: (N, H, W, C) -> (N, H', W', F),
        a band of output rows of one image at a time (``_bands``): the band's rows of
        im2col copied (``unfold.window_rows``), multiplied, the bias added and the ReLU
        taken while they are in cache, the bands shared among ``threads``. An image's bands
        do not depend on the batch around it: its numbers are the same alone."""
        windows = window_rows(x, *self.w.shape[:2], self.pads(x.shape), self.strides)
        n, out_h, out_w = windows.shape[:3]
        kernel = self.w.reshape(-1, self.w.shape[3])
        z = np.empty((n, out_h, out_w, kernel.shape[1]), np.result_type(x, kernel))

        def band(image, rows):
            out = z[image, rows].reshape(-1, kernel.shape[1])  # a view: z is contiguous
            np.matmul(windows[image, rows].reshape(-1, kernel.shape[0]), kernel, out=out)
            out += self.b
            if relu:
                relu_function(out, out=out)
        self.threads.run(partial(band, image, rows) for image in range(n)
                         for rows in self._bands(out_h, out_w * z.shape[3] * z.itemsize))
        return z

    def _bands(self, rows, row_bytes):
        """Slices of an image's ``rows`` output rows (``row_bytes`` each) for ``im2col_in_bands``:
        at most BAND_BYTES each, and as ``threads.row_slices`` cuts them for its threads."""
        step = min(self.threads.row_slices(rows)[0].stop, max(1, BAND_BYTES // row_bytes))
        return [slice(k, k + step) for k in range(0, rows, step)]

    def input_gradient(self, dz):
        path = self.path(self.x.shape, backward=True)
        if path == "im2col":
            return super().input_gradient(dz)
        if path == "planes":
            return self._by_planes(dz)
        if path == "winograd":
            return winograd_same(dz, self.w, self.buffers, threads=self.threads, flipped=True)
        return correlate(dz, self._flipped_kernel(), self.buffers,
                         full_pads(*self.w.shape[:2], self.pads(self.x.shape)),
                         threads=self.threads)

    def activation_backward(self, dout, options):
        """dout: (N, H', W', F) -> dz, as the lesson's (``Layer.activation_backward``); a
        ReLU's, plain or guided (``relu_gradient_into``), in bands of rows for ``threads`` (one
        band for one thread), written where dx's sum reads it (``_dz_array``:
        no copy there)."""
        if self.activation_name != "relu" or options.from_logits or options.deconvnet:
            return super().activation_backward(dout, options)
        out, dz = self.activation.out, self._dz_array(dout.shape, dout.dtype)

        def band(rows):
            relu_gradient_into(dz[:, rows], dout[:, rows], out[:, rows], options.guided)
        self.threads.run(partial(band, rows) for rows in self.threads.row_slices(dout.shape[1]))
        return dz

    def _dz_array(self, shape, dtype):
        """Where the ReLU's backward writes dz (N, H', W', F): on the "direct" and
        "winograd" paths, the workspace array where dx's sum reads its padded input; else
        a new array."""
        path = self.path(self.x.shape, backward=True)
        if path == "winograd":
            return winograd_input(self.buffers, shape, dtype, self.w.shape[2])
        if path != "direct":
            return np.empty(shape, dtype)
        return correlate_input(self.buffers, shape, dtype,
                               full_pads(*self.w.shape[:2], self.pads(self.x.shape)))

    def param_gradients(self, dz):
        """As the lesson's, on a contiguous dz (the ReLU's backward leaves it inside the
        padded workspace, where each of the lesson's reshapes would copy it)."""
        super().param_gradients(np.ascontiguousarray(dz))

    def unfold(self, x):
        """im2col(x), read a window row at a time (``unfold.py``): dW of every path (the
        im2col path's forward unfolds a band at a time: ``im2col_in_bands``)."""
        return im2col_rows(x, *self.w.shape[:2], self.pads(x.shape), self.strides)

    def product(self, a, b):
        """a @ b of the im2col path's dx, cut into blocks of a's rows for ``threads``."""
        return self.threads.matmul(a, b)

    def path(self, x_shape, backward=False):
        """Which sum computes this layer's forward (or backward dx) for an input of x_shape:
        "im2col", "direct" (shifted GEMMs), "winograd" or, for dx with few channels,
        "planes"."""
        kh, kw, c, f = self.w.shape
        (top, bottom), (left, right) = self.pads(x_shape)
        fits = x_shape[1] + top + bottom >= kh and x_shape[2] + left + right >= kw
        if self.strides != (1, 1) or not fits:
            return "im2col"
        if backward and c < FLIPPED_KERNEL_MIN_CHANNELS:
            return "planes"
        if not backward and c <= UNFOLDED_MAX_CHANNELS:
            return "im2col"
        shape = (*x_shape[:3], f) if backward else x_shape
        kernel = (kh, kw, f, c) if backward else self.w.shape
        same = self.padding == "same"  # Winograd's tiles: 3x3, one pixel of padding
        return "winograd" if same and winograd_pays(shape, kernel) else "direct"

    def _flipped_kernel(self):
        return flipped_kernel(self.w)

    def _by_planes(self, dz):
        """dx of the "planes" path: col2im(dz @ W.T) by whole planes, the product cut for
        this layer's threads (``unfold.col2im_planes``)."""
        return col2im_planes(dz, self.w, self.x.shape, self.pads(self.x.shape), self.threads)


class FastDense(Dense):
    """Dense whose large products (VGG16's fc1: w 25088 x 4096, 411 MB, read once a pass)
    are cut into blocks of w's rows for several threads (``blocks.py``):

        z = b + sum over blocks k of x[:, k] @ w[k]       (partial sums, added)
        dx[:, k] = dz @ w[k].T                            (each block its own columns)

    Each block reads one contiguous slab of w. (Cutting w's columns instead read a 4 KB
    piece of each 16 KB row: fc1's backward took 48 ms against OpenBLAS's 9.) One thread, or a
    kernel under MIN_SPLIT_BYTES: Dense's own products. The sums' order differs from one
    product's: float32 rounding, not more (``tests/test_blocks.py``). threads: as
    ``FastConv2D``'s."""

    MIN_SPLIT_BYTES = 1 << 22

    def __init__(self, name, w, b=None, activation="relu", threads=INLINE):
        super().__init__(name, w, b, activation)
        self.threads = threads

    def _row_blocks(self):
        """Slices of w's rows, one per block; None: one product."""
        if self.threads.count == 1 or self.w.nbytes < self.MIN_SPLIT_BYTES:
            return None
        return self.threads.row_slices(self.w.shape[0])

    def pre_activation(self, x):
        """z = x @ w + b: (N, D) -> (N, M), as Dense's (in blocks: see the class)."""
        parts = self._row_blocks()
        if parts is None:
            return super().pre_activation(x)
        sums = [None] * len(parts)

        def block(k, rows):
            sums[k] = x[:, rows] @ self.w[rows]
        self.threads.run(partial(block, k, rows) for k, rows in enumerate(parts))
        z = sums[0]
        for s in sums[1:]:
            z += s
        z += self.b
        return z

    def input_gradient(self, dz):
        """dx = dz @ w.T: (N, M) -> (N, D), as Dense's (in blocks: see the class)."""
        parts = self._row_blocks()
        if parts is None:
            return super().input_gradient(dz)
        dx = np.empty((dz.shape[0], self.w.shape[0]), np.result_type(dz, self.w))

        def block(rows):
            dx[:, rows] = (self.w[rows] @ dz.T).T
        self.threads.run(partial(block, rows) for rows in parts)
        return dx
