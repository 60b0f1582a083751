"""The fast convolution: the same sum as ``im2col(x) @ W``, without unfolding the windows.

``layers.FastConv2D`` calls :func:`correlate` for its stride-1 convs ("same", as all of
VGG16's, or "valid", as Xception's block1_conv2), forward and, with the flipped kernel,
backward. The reference it is tested against is :func:`vggnp.nn.im2col.im2col` followed
by one GEMM (``tests/test_fast_conv.py``).

The idea, for a 3x3 kernel (``docs/math.md`` draws it): lay the zero-padded image out
flat, one row of C channels per pixel, Wp = W + 2 pixels to an image row. Output pixel
(i, j) is flat row p = i*Wp + j, and its tap (di, dj) reads flat row p + di*Wp + dj. So
for each tap, the rows all outputs need are one contiguous slice of the flat image,
shifted by di*Wp + dj:

    z[p] = b + sum over taps (di, dj) of  flat[p + di*Wp + dj] @ kernel[di, dj]   (C) @ (C, F)

nine GEMMs on slices of one array, added into the same output rows (``gemm.matmul_add``),
and no im2col matrix at all (VGG16's first is 50,176 x 576 floats, 110 MB, copied at every
call). The price: the outputs that fall on the padding (2 per image row, and in a batch
the 2 padding rows between images) are computed and dropped: 2/W more work for one
image (0.9 % at W = 224, 14 % at W = 14). The outputs are summed a block of rows at a
time, so that the block being added to stays in cache across the nine GEMMs: on this
machine's 300 MB L3 the block size hardly mattered, on a smaller cache it would. The
blocks are independent: with several threads (``blocks.BLOCKS``) each takes the next.
"""

from functools import partial

import numpy as np

from ..nn.activation_functions import relu as relu_function
from .blocks import BLOCKS_PER_THREAD, INLINE
from .gemm import matmul_add

# With several threads, the fewest output rows of a block where a thread has more than one:
# each block's GEMMs repack the whole kernel tap, so smaller blocks cost more than they
# balance (VGG16's block3 to block5, where four blocks a thread ran 9-91 % slower than one:
# docs/speed.md, ``python -m scripts.cuts_bench``).
MIN_BLOCK_ROWS = 1024
# Rows of zeros after correlate's padded images: the last tap of the last output row reads
# KW - 1 pixels past the image.
SPARE_ROWS = 1


def correlate_same(x, kernel, buffers, bias=None, block_bytes=2 << 20, threads=INLINE):
    """z = im2col(x) @ kernel.reshape(KH*KW*C, F) (+ bias): :func:`correlate` with "same"
    zero padding (KH // 2 on every side), for an odd square kernel.

    x: (N, H, W, C), kernel: (KH, KW, C, F) with KH = KW odd, bias: (F,) or None
    -> z: (N, H, W, F).
    """
    k, k_w = kernel.shape[:2]
    if k != k_w or k % 2 == 0:
        raise ValueError(f"correlate_same: an odd square kernel, not {k}x{k_w}")
    return correlate(x, kernel, buffers, ((k // 2, k // 2), (k // 2, k // 2)), bias, block_bytes,
                     threads)


def correlate(x, kernel, buffers, pads, bias=None, block_bytes=2 << 20, threads=INLINE,
              relu=False):
    """z = im2col(x) @ kernel.reshape(KH*KW*C, F) (+ bias), stride 1, as sums of shifted
    GEMMs (with relu: max(z, 0), taken in each block of rows while it is in cache):

        z[n, y, x'] = b + sum_{i, j} xpad[n, y + i, x' + j] @ kernel[i, j]

    x: (N, H, W, C), kernel: (KH, KW, C, F), pads: ((top, bottom), (left, right)) rows and
    columns of zeros, bias: (F,) or None -> z: (N, H', W', F), H' = H + top + bottom - KH + 1
    (W' alike): "same" or "valid" padding, or the "full" one of a valid conv's backward.

    The N padded images lie one after another in one flat (rows, C) array, so a block of
    output rows may span two images: the outputs that fall between images (the padding
    rows) are computed and dropped too. z is a view into a (N, H+top+bottom, W+left+right,
    F) array (not contiguous: reshaping it copies).
    buffers: a workspace dict kept by the caller (the model shares one among its conv
    layers) for the padded input, so that no call faults in fresh memory.
    threads: the ``blocks.BlockThreads`` that runs the blocks (default: this thread).
    An x that already lies where its padded copy goes (``correlate_input``) is not copied.
    """
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    (top, bottom), (left, right) = pads
    hp, wp = h + top + bottom, w + left + right
    h_out, w_out = hp - kh + 1, wp - kw + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(f"correlate: a {kh}x{kw} kernel does not fit in {hp}x{wp} pixels")
    flat = padded_copy(buffers, "padded", x, pads, SPARE_ROWS, threads=threads).reshape(-1, c)

    z = np.empty((n, hp, wp, f), dtype=x.dtype)
    z_flat = z.reshape(-1, f)
    last = (n - 1) * hp * wp + h_out * wp           # one past the last output needed

    def block_sum(start, stop):
        """z's flat rows start..stop-1: the bias, then the KH*KW shifted products added in
        (the block stays in cache across them)."""
        out = z_flat[start:stop]
        out[...] = 0 if bias is None else bias
        for i in range(kh):
            for j in range(kw):
                shift = i * wp + j
                matmul_add(flat[start + shift:stop + shift], kernel[i, j], out)
        if relu:
            relu_function(out, out=out)
    parts = blocks(last, f, x.itemsize, block_bytes, threads.count)
    threads.run(partial(block_sum, *part) for part in parts)
    return z[:, :h_out, :w_out]


def correlate_input(buffers, shape, dtype, pads):
    """The (N, H, W, C) view of the workspace where :func:`correlate` copies an x of
    ``shape`` padded by ``pads``, its border written: an x written there by its maker (a
    conv's ReLU backward, dz) is not copied again."""
    return padded_input(buffers, "padded", shape, dtype, pads, SPARE_ROWS)[1]


def full_pads(kh, kw, pads):
    """The padding of a stride-1 conv's backward: dx is the correlation of dz, padded by
    ((KH-1-top, KH-1-bottom), (KW-1-left, KW-1-right)), with the kernel flipped (the
    forward's pads ((top, bottom), (left, right)); a "valid" conv's is the "full" one)."""
    (top, bottom), (left, right) = pads
    return (kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right)


def blocks(rows, f, itemsize, block_bytes, threads=1):
    """The independent parts of a correlate's output (``rows`` flat rows x F channels), as
    (start, stop) rows, every row in one: blocks of at most block_bytes; for several
    threads, as many a thread as leave each at least MIN_BLOCK_ROWS rows (one a thread at
    least, BLOCKS_PER_THREAD at most, more where block_bytes asks), a multiple of the
    thread count of blocks of one size (the last shorter by fewer rows than there are
    blocks), so that the threads finish together on an idle machine and a thread that
    comes late takes fewer where there are several."""
    if rows <= 0:
        return []
    count = -(-rows * f * itemsize // block_bytes)  # blocks of at most block_bytes
    if threads > 1:
        per_thread = min(BLOCKS_PER_THREAD, rows // max(MIN_BLOCK_ROWS * threads, 1))
        count = -(-max(count, per_thread * threads, threads) // threads) * threads
    block = -(-rows // count)
    return [(start, min(start + block, rows)) for start in range(0, rows, block)]


def padded_copy(buffers, name, x, pads, spare_rows=0, fill=0, threads=INLINE):
    """x: (N, H, W, C) padded by ``pads``, ((top, bottom), (left, right)) rows and
    columns of ``fill`` (zeros for a conv; -inf for a max-pool, which never picks it), in
    the workspace array ``name``: (N*(H+top+bottom) + spare_rows, W+left+right, C), the
    padded images one after another, then ``spare_rows`` rows of ``fill``. The buffer is
    reused (memory already in use: no fresh pages to fault in), so only its border is
    written besides x, x in bands of rows for ``threads`` (a copy, like a pool, runs
    faster on two cores). Where x already lies inside the buffer (``padded_input``'s
    inside, written by x's maker) only the border is written."""
    flat, inside = padded_input(buffers, name, x.shape, x.dtype, pads, spare_rows, fill)
    if same_view(inside, x):
        return flat
    if threads.count == 1 or np.may_share_memory(inside, x):  # NumPy's copy handles overlap
        inside[...] = x
        return flat
    threads.run(partial(np.copyto, inside[:, rows], x[:, rows])
                for rows in threads.row_slices(x.shape[1]))
    return flat


def padded_input(buffers, name, shape, dtype, pads, spare_rows=0, fill=0):
    """The workspace array ``name`` of ``padded_copy`` for an x of ``shape`` (N, H, W, C),
    its border (and spare rows) written with ``fill``: (flat, inside), inside the
    (N, H, W, C) view where x goes, for the caller to write."""
    n, h, w, c = shape
    (top, bottom), (left, right) = pads
    hp, wp = h + top + bottom, w + left + right
    flat = workspace_array(buffers, name, (n * hp + spare_rows, wp, c), dtype)
    images = flat[:n * hp].reshape(n, hp, wp, c)
    images[:, :top], images[:, top + h:] = fill, fill
    images[:, :, :left], images[:, :, left + w:] = fill, fill
    flat[n * hp:] = fill
    return flat, images[:, top:top + h, left:left + w]


def same_view(a, b):
    """True where the arrays a and b are the same numbers in memory: one address, shape,
    strides and dtype."""
    return (a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def padded_images(buffers, name, x, pads, fill=0):
    """``padded_copy`` with no spare rows, seen as images: x (N, H, W, C) ->
    (N, H + top + bottom, W + left + right, C) in the workspace array ``name``."""
    (top, bottom), (left, right) = pads
    n, h, w, c = x.shape
    return padded_copy(buffers, name, x, pads, fill=fill).reshape(
        n, h + top + bottom, w + left + right, c)


class UsesWorkspace:
    """A layer whose scratch arrays (padded copies) live in ``buffers``, the workspace
    its network's layers share (they run one at a time); a replica of the network gives
    its layers the replica's own, and a copy for the same pass (workspace None: a folded
    conv's depthwise, ``SeparableConv2D.with_weights``) shares this layer's. Mixed in
    before the layer class, whose arguments it passes on: buffers=None is a dict of its
    own."""

    def __init__(self, *args, buffers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.buffers = {} if buffers is None else buffers

    def replica(self, workspace):
        twin = super().replica(workspace)
        twin.buffers = self.buffers if workspace is None else workspace
        return twin


def workspace_array(buffers, name, shape, dtype):
    """An array of ``shape`` backed by ``buffers[name]``, a flat array that grows to the
    largest size asked for and is then reused by every layer (contents are not cleared)."""
    size = int(np.prod(shape))
    flat = buffers.get(name)
    if flat is None or flat.dtype != dtype or flat.size < size:
        flat = buffers[name] = np.zeros(size, dtype=dtype)
    return flat[:size].reshape(shape)
