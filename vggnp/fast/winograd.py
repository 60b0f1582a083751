"""Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, CVPR 2016): a 3x3 stride-1 "same"
convolution with 16 multiplies per 2x2 output tile and channel pair instead of 36.

For one channel pair, a 4x4 input tile d gives the 2x2 output tile

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise, g the 3x3 kernel)

with the constant matrices below. Summed over input channels, the elementwise product at
each of the 16 positions (xi, nu) becomes one matrix product over all tiles at once:

    M[xi, nu] = V[xi, nu] @ U[xi, nu]     V: (tiles, C) input transform, U: (C, F) kernel's

so the work is 16 GEMMs of (tiles x C) @ (C x F), 16 * C * F multiplies per tile of 4
outputs = 4 per output and channel pair, against 9 for the direct sum: 2.25x fewer. The
transforms are additions only (B and A hold 0 and +-1; G's halves are applied once, when
the kernel is loaded). ``tests/test_winograd.py`` holds it to ``direct_conv.correlate_same``
within float32 rounding.
"""

import numpy as np

from .direct_conv import padded_images, workspace_array

B_T = np.array([[1, 0, -1, 0],
                [0, 1, 1, 0],
                [0, -1, 1, 0],
                [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0],
              [0.5, 0.5, 0.5],
              [0.5, -0.5, 0.5],
              [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0],
                [0, 1, -1, -1]], dtype=np.float64)


# Off (None) by default. Alone, per layer, Winograd was faster than the direct path on some
# of the layers with >= 256 input channels (which ones moves from run to run: the README's
# Speed section has the bench's table); inside the whole network no gain could be measured
# on this 2-core VM (Grad-CAM with/without, interleaved: min 232 vs 223 ms, median 264 vs
# 281 ms, against the earlier im2col direct path), while the kernel transforms (16/9 of
# those kernels) raise the peak RSS of one image from 714 to 862 MB.
# Set it to 256 to turn it on for layers that wide.
WINOGRAD_MIN_CHANNELS = None


# The kernel flipped in both spatial axes (dx's, with C and F swapped) has the transform
# U'[xi, nu] = U[p(xi), p(nu)]^T, p swapping 0 and 3: G with its columns reversed is G with
# rows 0 and 3 swapped (G J = P G), so G J g J G^T = P (G g G^T) P^T. One transform serves
# the forward and the backward (tests/test_winograd.py holds the two equal).
_SWAP = (3, 1, 2, 0)
FLIPPED = [4 * _SWAP[xi] + _SWAP[nu] for xi in range(4) for nu in range(4)]


def winograd_pays(x_shape, w_shape):
    """True where this module's path is chosen for a stride-1 "same" conv of an input of
    ``x_shape`` (N, H, W, C) with a kernel of ``w_shape`` (KH, KW, C, F): when turned on
    (WINOGRAD_MIN_CHANNELS), a 3x3 kernel, H and W even, and at least that many input
    channels."""
    _, h, w, c = x_shape
    return (WINOGRAD_MIN_CHANNELS is not None and w_shape[:2] == (3, 3) and h % 2 == 0
            and w % 2 == 0 and c >= WINOGRAD_MIN_CHANNELS)


def kernel_transform(w):
    """w: (3, 3, C, F) -> U: (16, C, F), U[4*xi + nu] = (G g G^T)[xi, nu] for every (c, f).
    Done once per kernel, as two matrix products over its spatial axes, in w's dtype (G's
    entries are 0, 1 and 1/2: exact in float32)."""
    g = G.astype(w.dtype)
    rows = np.tensordot(g, w, axes=(1, 0))                  # (4, 3, C, F): G g
    u = np.tensordot(g, rows, axes=(1, 1))                  # (4 nu, 4 xi, C, F): (G g) G^T
    return np.ascontiguousarray(u.transpose(1, 0, 2, 3)).reshape(16, *w.shape[2:])


def winograd_same(x, u, buffers=None, flipped=False):
    """z = the 3x3 "same" cross-correlation of x with the kernel whose transform is u, or
    with that kernel flipped (a conv's dx, ``layers.flipped_kernel``).

    x: (N, H, W, C), u: (16, C, F) from :func:`kernel_transform` -> z: (N, H, W, F); with
    flipped, x: (N, H, W, F) -> z: (N, H, W, C), each position's product
    V[k] @ U[FLIPPED[k]].T (see FLIPPED: the flipped kernel's transform, not made).
    H and W even (every VGG16 layer's are); tiles of 2x2 outputs read 4x4 inputs of the
    zero-padded image, two apart. buffers: a workspace dict (as ``direct_conv``'s) for the
    padded input and the two tile arrays, so that no call faults in fresh memory.
    """
    buffers = {} if buffers is None else buffers
    n, h, w, c = x.shape
    th, tw = h // 2, w // 2
    xp = padded_images(buffers, "winograd_padded", x, ((1, 1), (1, 1)))
    v = _input_transform(xp, th, tw, workspace_array(buffers, "winograd_v",
                                                     (4, 4, n, th, tw, c), x.dtype))
    out_channels = u.shape[1] if flipped else u.shape[2]
    m = workspace_array(buffers, "winograd_m", (16, n * th * tw, out_channels), x.dtype)
    if flipped:
        for k, source in enumerate(FLIPPED):
            np.matmul(v[k], u[source].T, out=m[k])          # BLAS reads the transpose
    else:
        np.matmul(v, u, out=m)                              # (16, tiles, F)
    return _output_transform(m.reshape(4, 4, n, th, tw, -1))


def _input_transform(xp, th, tw, v):
    """V = B^T d B for every 4x4 tile d (rows 2*ty.., columns 2*tx.. of xp), written into
    v (4, 4, N, th, tw, C) and returned as (16, tiles, C): rows first (B^T d), then columns
    (. B), each a few large additions."""
    n, _, _, c = xp.shape
    # rows[i]: (N, th, W+2, C), the i-th row of every tile row
    rows = [xp[:, i:i + 2 * th:2] for i in range(4)]
    t = [rows[0] - rows[2], rows[1] + rows[2], rows[2] - rows[1], rows[1] - rows[3]]
    for a in range(4):
        cols = [t[a][:, :, j:j + 2 * tw:2] for j in range(4)]   # (N, th, tw, C)
        np.subtract(cols[0], cols[2], out=v[a, 0])
        np.add(cols[1], cols[2], out=v[a, 1])
        np.subtract(cols[2], cols[1], out=v[a, 2])
        np.subtract(cols[1], cols[3], out=v[a, 3])
    return v.reshape(16, n * th * tw, c)


def _output_transform(m):
    """Y = A^T M A for every tile: m (4, 4, N, th, tw, F) -> z (N, 2*th, 2*tw, F)."""
    r0 = m[0] + m[1] + m[2]                                 # A^T's rows over xi
    r1 = m[1] - m[2] - m[3]
    n, th, tw, f = m.shape[2:]
    z = np.empty((n, th, 2, tw, 2, f), m.dtype)
    for a, r in enumerate((r0, r1)):                        # then over nu
        np.add(r[0] + r[1], r[2], out=z[:, :, a, :, 0])
        np.subtract(r[1] - r[2], r[3], out=z[:, :, a, :, 1])
    return z.reshape(n, 2 * th, 2 * tw, f)
