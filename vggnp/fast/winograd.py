"""Winograd's minimal filtering (Lavin & Gray, CVPR 2016): a 3x3 stride-1 "same" convolution
with fewer multiplies, F(m x m, 3x3): m x m output tiles from t x t input tiles, t = m + 2.

For one channel pair, a t x t input tile d gives the m x m output tile

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise, g the 3x3 kernel)

with the constant matrices of F2X2 and F4X4 below (``docs/math.md`` derives F(2x2)'s).
Flattened row by row, each two-sided product is one product with a Kronecker matrix:
vec(B^T d B) = (B^T kron B^T) vec(d), so for all tiles and channels at once

    V = KB @ d        d: (t*t, tiles*C), the tiles' values, KB = B^T kron B^T: (t*t, t*t)
    U = KG @ w        w: (9, C*F), the kernel's taps, KG = G kron G: (t*t, 9)
    M[k] = V[k] @ U[k]   for each of the t*t positions k: (tiles, C) @ (C, F)
    Y = KA @ M        KA = A^T kron A^T: (m*m, t*t), Y: (m*m, tiles*F)

t*t*C*F multiplies per tile of m*m outputs: F(4x4)'s 36 for 16 outputs are 2.25 per
output and channel pair, against 9 for the direct sum (4x fewer; F(2x2): 4, 2.25x fewer).
The transforms are small products over a tile's t*t values. F(4x4)'s G holds 1/6, 1/12
and 1/24, which float32 rounds, and its transforms sum values scaled by up to 8 and 1/24,
where F(2x2)'s constants (0, +-1, 1/2) are exact and small: its float32 error is larger,
stated and held in ``tests/test_winograd.py`` with the float64 identity.

Memory: everything lies in the workspace the layers share for their padded inputs, after
the padded x: V and M of one image (of a chunk of its tile rows, in a large image) and U
(t*t/9 of the kernel: F(4x4)'s is 4x, 118 MB for VGG16's block3 and block4 if kept),
made for each image (and chunk) again, a block of the kernel's third axis at a time.
"""

from functools import partial
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .blocks import INLINE
from .direct_conv import padded_copy, padded_input, workspace_array
from .gemm import matmul_add, matmul_into
from ..nn.activation_functions import relu as relu_function


class Minimal(NamedTuple):
    """F(m x m, 3x3): the 1-D matrices (B^T: (t, t), G: (t, 3), A^T: (m, t)) and their
    Kronecker squares, the 2-D transforms of a flattened tile."""
    m: int
    b_t: np.ndarray
    g: np.ndarray
    a_t: np.ndarray
    kron_b: np.ndarray   # (t*t, t*t)
    kron_g: np.ndarray   # (t*t, 9)
    kron_a: np.ndarray   # (m*m, t*t)


def minimal(b_t, g, a_t):
    """The Minimal of these 1-D matrices."""
    b_t, g, a_t = (np.array(a, dtype=np.float64) for a in (b_t, g, a_t))
    return Minimal(a_t.shape[0], b_t, g, a_t, np.kron(b_t, b_t), np.kron(g, g),
                   np.kron(a_t, a_t))


F2X2 = minimal([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
               [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
               [[1, 1, 1, 0], [0, 1, -1, -1]])
F4X4 = minimal([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
               [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
               [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]])

# Which layers take it (``winograd_pays``), from VGG16's passes on a 2-core VM (docs/speed.md,
# ``python -m scripts.conv_paths --network``; ad hoc per-layer timings in the network, the
# 2026-12-05 third session): F(4x4) was faster than the direct sum on the 256- and
# 512-channel layers measured there, but for block3_conv1 (128 -> 256: within 0.4 ms);
# block2 was measured alone only. Block4's gain came with its transforms whole (38 MB
# each), past the 750 MB peak-RSS target of one image; in blocks it was not measured. So
# at most MAX_PAIRS channel pairs C*F (block3's 256 x 256), and sides in whole tiles
# (VGG16's 56 x 56 at 224 x 224): where tiles overhang the image (ResNet50's 14 x 14 maps,
# 2/16 of each side's outputs computed and dropped) it was not measured.
MIN_CHANNELS = 256
MAX_PAIRS = 256 * 256
# How a conv is cut (``plan``): V and M a chunk of at most CHUNK_BYTES of tile rows at a
# time (block3's 14 rows at once: 7.2 MB each at 224 x 224), U made for U_BLOCK channels
# of the kernel's third axis at a time (half of block3's 256: 4.7 MB instead of 9.4), for
# each image and chunk again: U is what a call keeps least of.
CHUNK_BYTES = 8 << 20
U_BLOCK = 128


def winograd_pays(x_shape, w_shape):
    """True where F(4x4) computes a 3x3 stride-1 "same" conv of an input of ``x_shape``
    (N, H, W, C) with a kernel of ``w_shape`` (KH, KW, C, F): a 3x3 kernel, C and F at
    least MIN_CHANNELS, C*F at most MAX_PAIRS, H and W multiples of 4 (F4X4's output
    tile). The caller checks stride and padding."""
    c, f = w_shape[2:]
    whole_tiles = x_shape[1] % F4X4.m == 0 and x_shape[2] % F4X4.m == 0
    return (w_shape[:2] == (3, 3) and min(c, f) >= MIN_CHANNELS and c * f <= MAX_PAIRS
            and whole_tiles)


def kernel_transform(w, scheme=F4X4, threads=INLINE, out=None, flipped=False):
    """w: (3, 3, C, F) -> U: (t*t, C, F), U[k] = (G g G^T)[k // t, k % t] for every (c, f):
    U = KG @ w's nine taps (9, C*F), in column blocks for ``threads``, into out (a flat
    array, at least U's size) if given. flipped: the transform of the flipped kernel
    (dx's, ``layers.flipped_kernel``), its taps in reverse order (no copy): U[k] (C, F)
    then serves as the flipped kernel's (F, C) transposed."""
    taps, kg = w.reshape(9, -1), scheme.kron_g.astype(w.dtype)
    kg = kg[:, ::-1].copy() if flipped else kg
    shape = (kg.shape[0], taps.shape[1])
    out = np.empty(shape, w.dtype) if out is None else out[:shape[0] * shape[1]].reshape(shape)
    # columns in blocks, four a thread (a late thread takes fewer); one product for one
    step = taps.shape[1] if threads.count == 1 else -(-taps.shape[1] // (4 * threads.count))
    threads.run(partial(matmul_into, kg, taps[:, k:k + step], out[:, k:k + step])
                for k in range(0, taps.shape[1], step))
    return out.reshape(-1, *w.shape[2:])


class Plan(NamedTuple):
    """How :func:`winograd_same` cuts a conv: x padded by ``pads`` to th x tw tiles, one
    image's tile rows ``chunk`` at a time; ``sizes``: the floats of the padded x, V, M and
    U in the workspace "padded"."""
    pads: tuple
    th: int
    tw: int
    chunk: int
    sizes: tuple


def plan(shape, f, scheme, itemsize):
    """The Plan for an x of ``shape`` (N, H, W, C), F output channels, ``itemsize`` bytes
    a float: chunks of V at most CHUNK_BYTES (one tile row at least), U for U_BLOCK
    channels."""
    n, h, w, c = shape
    m, t = scheme.m, scheme.m + 2
    th, tw = -(-h // m), -(-w // m)
    hp, wp = m * th + 2, m * tw + 2
    chunk = max(1, min(th, CHUNK_BYTES // (t * t * tw * max(c, f) * itemsize)))
    tiles = chunk * tw
    sizes = (n * hp * wp * c, tiles * max(t * t * c, m * m * f), tiles * t * t * max(c, f),
             t * t * min(U_BLOCK, max(c, f)) * max(c, f))
    return Plan(((1, hp - 1 - h), (1, wp - 1 - w)), th, tw, chunk, sizes)


def winograd_input(buffers, shape, dtype, out_channels, scheme=F4X4):
    """The (N, H, W, C) view where :func:`winograd_same` reads an x of ``shape``, padded,
    in the workspace "padded" (as ``direct_conv.correlate_input``): an x written there by
    its maker (a conv's ReLU backward, dz) is not copied. The workspace is grown first to
    hold what the call puts after it (``out_channels`` F), so that the call does not move
    it."""
    planned = plan(shape, out_channels, scheme, np.dtype(dtype).itemsize)
    _workspace(buffers, planned, dtype)
    return padded_input(buffers, "padded", shape, dtype, planned.pads)[1]


def _workspace(buffers, planned, dtype):
    """The workspace "padded" (flat), grown to hold the Plan's padded x, V, M and U."""
    return workspace_array(buffers, "padded", (sum(planned.sizes),), dtype)


def winograd_same(x, w, buffers, scheme=F4X4, threads=INLINE, bias=None, relu=False,
                  flipped=False):
    """z = the 3x3 "same" cross-correlation of x with w (+ bias; with relu max(z, 0)), or
    with w flipped (a conv's dx: x then dz (N, H, W, F), z dx (N, H, W, C)).

    x: (N, H, W, C), w: (3, 3, C, F), bias: (F,) or None -> z: (N, H, W, F).
    H and W are padded up to multiples of m (the extra outputs computed and dropped).
    All in the workspace "padded" (buffers: the layers' workspace dict), after the padded
    x, one image at a time, a chunk of its tile rows at a time (``plan``: all of them at
    VGG16's sizes): V (t*t, tiles, C) made a band of tile rows at a time; U made here, a
    block of w's third axis at a time, and the products M (t*t, tiles, F) summed over the
    blocks (``Chunk.multiply``); Y made a band at a time and written into z with the bias
    and the ReLU.
    """
    n, h, wd, c = x.shape
    f = w.shape[2] if flipped else w.shape[3]
    m = scheme.m
    planned = plan(x.shape, f, scheme, x.itemsize)
    # grown before the copy into it (growing it would leave the copy behind)
    flat = _workspace(buffers, planned, x.dtype)
    xp = padded_copy(buffers, "padded", x, planned.pads, threads=threads).reshape(
        n, m * planned.th + 2, m * planned.tw + 2, c)
    ends = np.cumsum(planned.sizes)
    v, products, u = (flat[start:end] for start, end in zip(ends[:-1], ends[1:]))
    z = np.empty((n, planned.th, m, planned.tw, m, f), x.dtype)
    for image in range(n):
        for start in range(0, planned.th, planned.chunk):
            rows = slice(start, min(start + planned.chunk, planned.th))
            chunk = Chunk.carved(xp[image], z[image], rows, v, products, scheme)
            chunk.transform_input(scheme, threads)
            for first in range(0, w.shape[2], U_BLOCK):
                block = slice(first, min(first + U_BLOCK, w.shape[2]))
                chunk.multiply(kernel_transform(w[:, :, block], scheme, threads, u, flipped),
                               block, flipped, threads)
            chunk.transform_output(scheme, bias, relu, threads)
    return z.reshape(n, planned.th * m, planned.tw * m, f)[:, :h, :wd]


class Chunk(NamedTuple):
    """Tile rows ``rows`` of one image: xp (Hp, Wp, C) its padded input, z
    (th, m, tw, m, F) its output, v (t*t, tiles, C) and products (t*t, tiles, F) the
    rows' V and M; d_space and y_space (flat): where the bands put the gathered tiles d
    (M's space, before the products) and Y (V's, after them)."""
    xp: np.ndarray
    z: np.ndarray
    rows: slice
    v: np.ndarray
    products: np.ndarray
    d_space: np.ndarray
    y_space: np.ndarray

    @classmethod
    def carved(cls, xp, z, rows, v_space, m_space, scheme):
        """The Chunk whose V and M lie at the heads of the flat arrays v_space and m_space
        (sized by ``plan``: V's holds Y, M's d)."""
        t, c, f = scheme.m + 2, xp.shape[2], z.shape[4]
        tiles = (rows.stop - rows.start) * z.shape[2]
        v = v_space[:t * t * tiles * c].reshape(t * t, tiles, c)
        products = m_space[:t * t * tiles * f].reshape(t * t, tiles, f)
        return cls(xp, z, rows, v, products, d_space=m_space, y_space=v_space)

    def transform_input(self, scheme, threads):
        """V = KB @ d, a band of tile rows at a time (``_input_band``)."""
        threads.run(partial(self._input_band, scheme, band)
                    for band in _bands(self.rows, threads))

    def multiply(self, u, block, flipped, threads):
        """M[k] = V[k] @ U[k] for every position k, the part of it that u (t*t, B, F),
        the transform of w[:, :, block], gives: the sum over those input channels,
        M[k] (+)= V[k][:, block] @ u[k]; flipped (w's third axis is dx's channels), those
        output channels, M[k][:, block] = V[k] @ u[k].T."""
        if flipped:
            tasks = (partial(matmul_into, v_k, u_k.T, m_k[:, block])
                     for v_k, u_k, m_k in zip(self.v, u, self.products))
        else:
            into = matmul_into if block.start == 0 else matmul_add
            tasks = (partial(into, v_k[:, block], u_k, m_k)
                     for v_k, u_k, m_k in zip(self.v, u, self.products))
        threads.run(tasks)

    def transform_output(self, scheme, bias, relu, threads):
        """Y = KA @ M into z, a band of tile rows at a time (``_output_band``)."""
        threads.run(partial(self._output_band, scheme, bias, relu, band)
                    for band in _bands(self.rows, threads))

    def _input_band(self, scheme, rows):
        """V's tile rows ``rows`` (of the image's): their t x t tiles gathered from xp
        (tile (ty, tx) reads rows m*ty.., columns m*tx..) into d (t*t, band tiles * C),
        in M's space (not in use yet), then V[:, band] = KB @ d."""
        m, t = scheme.m, scheme.m + 2
        tiles = self._tiles(rows)
        d = _band_of(self.d_space, tiles, (t * t, tiles.stop - tiles.start, self.v.shape[2]))
        # every t x t window of xp, m apart: (th, tw, C, t, t), a view
        windows = sliding_window_view(self.xp, (t, t), axis=(0, 1))[::m, ::m]
        d.reshape(t, t, rows.stop - rows.start, self.z.shape[2], -1)[...] = \
            windows[rows].transpose(3, 4, 0, 1, 2)
        matmul_into(scheme.kron_b.astype(d.dtype), d.reshape(t * t, -1),
                    self.v[:, tiles].reshape(t * t, -1))

    def _output_band(self, scheme, bias, relu, rows):
        """z's tile rows ``rows`` (of the image's): Y = KA @ M[:, band] (m*m, band tiles *
        F) in V's space (no longer in use), scattered into z as z[ty, a, tx, b] = Y[m*a + b,
        (ty, tx)], then the bias and the ReLU taken there."""
        m, t = scheme.m, scheme.m + 2
        tiles = self._tiles(rows)
        y = _band_of(self.y_space, tiles, (m * m, tiles.stop - tiles.start,
                                           self.products.shape[2]))
        matmul_into(scheme.kron_a.astype(y.dtype), self.products[:, tiles].reshape(t * t, -1),
                    y.reshape(m * m, -1))
        out = self.z[rows]
        out[...] = y.reshape(m, m, rows.stop - rows.start, *self.z.shape[2::2]).transpose(
            2, 0, 3, 1, 4)
        if bias is not None:
            out += bias
        if relu:
            relu_function(out, out=out)

    def _tiles(self, rows):
        """The chunk's tiles (v's and products' second axis) in its tile rows ``rows``."""
        tw = self.z.shape[2]
        return slice((rows.start - self.rows.start) * tw, (rows.stop - self.rows.start) * tw)


def _band_of(space, tiles, shape):
    """The array of ``shape`` (lead, band's tiles, channels) for the band of chunk tiles
    ``tiles``, in the flat array space, laid out as the chunk's (lead, tiles, channels)
    would be by tile: each band its own part."""
    lead, _, channels = shape
    return space[lead * channels * tiles.start:lead * channels * tiles.stop].reshape(shape)


def _bands(rows, threads):
    """Slices cutting the tile rows ``rows`` for the transforms: one band a thread (fewer,
    larger products ran faster than bands of 0.5 to 2 MB: each is a small matrix times a
    wide one, and its call's cost is paid once)."""
    step = -(-(rows.stop - rows.start) // threads.count)
    return [slice(k, min(k + step, rows.stop)) for k in range(rows.start, rows.stop, step)]
