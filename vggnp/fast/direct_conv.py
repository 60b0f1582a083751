"""The fast convolution: the same sum as ``im2col(x) @ W``, without unfolding the windows.

``layers.FastConv2D`` calls :func:`correlate_same` for its stride-1 "same" convs with odd
square kernels (all of VGG16's), forward and, with the flipped kernel, backward. The
reference it is tested against is :func:`vggnp.nn.im2col.im2col` followed by one GEMM
(``tests/test_fast_conv.py``).

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
machine's 300 MB L3 the block size hardly mattered, on a smaller cache it would.
"""

import numpy as np

from .gemm import matmul_add


def correlate_same(x, kernel, buffers, bias=None, block_bytes=2 << 20):
    """z = im2col(x) @ kernel.reshape(KH*KW*C, F) (+ bias), as sums of shifted GEMMs.

    x: (N, H, W, C), kernel: (KH, KW, C, F) with KH = KW odd, bias: (F,) or None
    -> z: (N, H, W, F), "same" zero padding, stride 1.

    The N padded images lie one after another in one flat (rows, C) array, so a block of
    output rows may span two images: the outputs that fall between images (the padding
    rows) are computed and dropped too. z is a view into a (N, H+2p, W+2p, F) array
    (not contiguous: reshaping it copies).
    buffers: a workspace dict kept by the caller (the model shares one among its conv
    layers) for the padded input, so that no call faults in fresh memory.
    """
    n, h, w, c = x.shape
    k, k_w, _, f = kernel.shape
    if k != k_w or k % 2 == 0:
        raise ValueError(f"correlate_same: an odd square kernel, not {k}x{k_w}")
    pad = k // 2
    hp, wp = h + 2 * pad, w + 2 * pad
    # One spare row: the last tap of the last output row reads 2*pad pixels past the image.
    flat = zero_padded(buffers, "padded", x, pad, spare_rows=1).reshape(-1, c)

    z = np.empty((n, hp, wp, f), dtype=x.dtype)
    z_flat = z.reshape(-1, f)
    last = (n - 1) * hp * wp + h * wp           # one past the last output needed
    block = max(block_bytes // (f * x.itemsize), 1)
    for start in range(0, last, block):
        stop = min(start + block, last)
        out = z_flat[start:stop]
        out[...] = 0 if bias is None else bias
        for i in range(k):
            for j in range(k):
                shift = i * wp + j
                matmul_add(flat[start + shift:stop + shift], kernel[i, j], out)
    return z[:, :h, :w]


def zero_padded(buffers, name, x, pad, spare_rows=0):
    """x: (N, H, W, C) zero-padded by ``pad`` on every side, in the workspace array
    ``name``: (N*(H+2*pad) + spare_rows, W+2*pad, C), the padded images one after another,
    then ``spare_rows`` rows of zeros. The buffer is reused, so only its border is zeroed."""
    n, h, w, c = x.shape
    hp, wp = h + 2 * pad, w + 2 * pad
    flat = workspace_array(buffers, name, (n * hp + spare_rows, wp, c), x.dtype)
    images = flat[:n * hp].reshape(n, hp, wp, c)
    images[:, :pad], images[:, h + pad:], images[:, :, :pad], images[:, :, w + pad:] = 0, 0, 0, 0
    flat[n * hp:] = 0
    images[:, pad:pad + h, pad:pad + w] = x
    return flat


def workspace_array(buffers, name, shape, dtype):
    """An array of ``shape`` backed by ``buffers[name]``, a flat array that grows to the
    largest size asked for and is then reused by every layer (contents are not cleared)."""
    size = int(np.prod(shape))
    flat = buffers.get(name)
    if flat is None or flat.dtype != dtype or flat.size < size:
        flat = buffers[name] = np.zeros(size, dtype=dtype)
    return flat[:size].reshape(shape)
