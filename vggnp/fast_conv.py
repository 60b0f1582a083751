"""The fast convolution: the same sum as ``im2col(x) @ W``, computed in cache-sized
blocks of image rows.

``layers.Conv2D`` calls :func:`correlate_same` in one line for its stride-1 "same" convs with
odd square kernels (all of VGG16's), forward and, with the flipped kernel, backward. The
reference it is tested against is :func:`vggnp.im2col.im2col` followed by one GEMM
(``tests/test_fast_conv.py``). Why blocks: VGG16's first im2col matrix is 50,176 x 576
floats (110 MB); unfolding a few rows at a time into one reused ~8 MB buffer keeps the copy
in cache and avoids faulting in fresh memory at every call (``../shared/NOTES.md``:
block1_conv2 39 -> 26 ms).
"""

import numpy as np


def correlate_same(x, kernel, buffers, block_bytes=8 << 20, min_rows=1024):
    """im2col + GEMM in blocks of rows: z = im2col(x) @ kernel.reshape(KH*KW*C, F).

    x: (N, H, W, C), kernel: (KH, KW, C, F) -> z: (N, H, W, F), "same" zero padding,
    stride 1. Exactly the product of :func:`im2col` and one GEMM, computed a block of
    image rows at a time: the block's windows are unfolded into a buffer that is reused
    across blocks and calls (~8 MB, so it stays in cache and is not faulted in afresh),
    then one GEMM writes the block's output rows. Rows are counted across the batch
    (row g is row g % H of image g // H), so small late layers get GEMMs of at least
    ``min_rows`` rows spanning several images. buffers: a workspace dict kept by the
    caller; the model shares one among all its conv layers, forward and backward.
    """
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    pad = kh // 2
    rows = max(block_bytes // (w * kh * kw * c * x.itemsize), -(-min_rows // w), 1)
    rows = min(rows, n * h)
    col = workspace_array(buffers, "col", (rows, w, kh, kw, c), x.dtype)
    # One zero-padded image at a time (the buffer is shared, so its border is re-zeroed).
    xp = workspace_array(buffers, "padded", (h + 2 * pad, w + 2 * pad, c), x.dtype)
    xp[:pad], xp[h + pad:], xp[:, :pad], xp[:, w + pad:] = 0, 0, 0, 0
    loaded = None
    k2d = kernel.reshape(kh * kw * c, f)
    z = np.empty((n, h, w, f), dtype=x.dtype)
    z_rows = z.reshape(n * h, w, f)
    for start in range(0, n * h, rows):
        stop = min(start + rows, n * h)
        g = start
        while g < stop:  # the part of the block that lies in image i, rows y0..y1
            i, y0 = divmod(g, h)
            y1 = min(h, y0 + stop - g)
            if loaded != i:
                xp[pad:pad + h, pad:pad + w] = x[i]
                loaded = i
            for di in range(kh):
                for dj in range(kw):
                    col[g - start:g - start + y1 - y0, :, di, dj, :] = \
                        xp[y0 + di:y1 + di, dj:dj + w, :]
            g += y1 - y0
        m = (stop - start) * w
        np.matmul(col[:stop - start].reshape(m, -1), k2d, out=z_rows[start:stop].reshape(m, f))
    return z


def workspace_array(buffers, name, shape, dtype):
    """An array of ``shape`` backed by ``buffers[name]``, a flat array that grows to the
    largest size asked for and is then reused by every layer (contents are not cleared)."""
    size = int(np.prod(shape))
    flat = buffers.get(name)
    if flat is None or flat.dtype != dtype or flat.size < size:
        flat = buffers[name] = np.zeros(size, dtype=dtype)
    return flat[:size].reshape(shape)
