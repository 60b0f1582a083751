"""Per conv layer of VGG16, three paths, forward, batch 1, 224x224, float32 (issue #18):
the direct path (nine shifted GEMMs, ``direct_conv.correlate_same``, what FastConv2D runs
from 4 input channels on; block1_conv1's forward runs im2col's one GEMM in bands),
Winograd F(2x2, 3x3) (``vggnp.fast.winograd``, off by default) and Winograd F(4x4, 3x3)
(36 GEMMs on 6x6 tiles, 4x fewer multiplies than direct; measured here only, with the
plain transforms below, not in the library).

    python -m scripts.conv_paths [--repeats 7]

For each layer: milliseconds (the minimum of ``--repeats`` runs; kernel transforms done
beforehand, as at load time), the effective GFLOP/s (the direct sum's 2*H*W*9*C*F flops
over the time, for every path, so the columns compare), and each path's float32 error
against the float64 im2col result, relative to the output's largest magnitude. Inputs
are ReLU-like (|N(0, 1)|), kernels He-scaled. A benchmark: timings need an idle machine
and are never asserted in tests.
"""

import argparse
import time

import numpy as np

from vggnp.nn import spec
from vggnp.fast.direct_conv import correlate_same
from vggnp.nn.im2col import im2col
from vggnp.fast.winograd import kernel_transform, winograd_same

# F(4x4, 3x3) (Lavin & Gray, sec. 4.2): Y = A^T [(G g G^T) * (B^T d B)] A on 6x6 tiles.
# G's entries 1/6, 1/12, 1/24 are not exact in float32 and B, A hold 4, 5 and 8: larger
# rounding than F(2x2, 3x3)'s 0, +-1 and 1/2.
B_T4 = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float)
G4 = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
A_T4 = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                 [0, 1, -1, 8, -8, 1]], float)


def kernel_transform_4x4(w):
    """w: (3, 3, C, F) -> U: (36, C, F), U[6*a + b] = (G g G^T)[a, b]."""
    g = G4.astype(w.dtype)
    return np.ascontiguousarray(np.einsum("ai,ijcf,bj->abcf", g, w, g).reshape(36, *w.shape[2:]))


def winograd_4x4(x, u):
    """x: (N, H, W, C), u: (36, C, F) -> (N, H, W, F), 3x3 "same"; 4x4 output tiles read
    6x6 inputs, four apart (H, W padded up to multiples of 4, the extra outputs dropped)."""
    n, h, w, c = x.shape
    th, tw = -(-h // 4), -(-w // 4)
    xp = np.zeros((n, 4 * th + 2, 4 * tw + 2, c), x.dtype)
    xp[:, 1:h + 1, 1:w + 1] = x
    s = xp.strides
    d = np.lib.stride_tricks.as_strided(xp, (n, th, tw, 6, 6, c),
                                        (s[0], 4 * s[1], 4 * s[2], s[1], s[2], s[3]))
    bt, at = B_T4.astype(x.dtype), A_T4.astype(x.dtype)
    v = np.tensordot(bt, np.tensordot(bt, d, axes=(1, 3)), axes=(1, 4))  # (b, a, n, th, tw, c)
    v = np.ascontiguousarray(v.transpose(1, 0, 2, 3, 4, 5)).reshape(36, n * th * tw, c)
    m = np.matmul(v, u).reshape(6, 6, n, th, tw, -1)          # 36 GEMMs
    y = np.tensordot(at, np.tensordot(at, m, axes=(1, 0)), axes=(1, 1))  # (j, i, n, th, tw, f)
    return y.transpose(2, 3, 1, 4, 0, 5).reshape(n, 4 * th, 4 * tw, -1)[:, :h, :w]


def layer_shapes(size=224):
    """[(name, H, W, C, F)] of VGG16's convs at a size x size input."""
    shapes, side, channels = [], size, 3
    for name in spec.CONV_NAMES:
        block = int(name[5]) - 1
        if block and name.endswith("conv1"):
            side //= 2
        filters = spec.BLOCKS[block][0]
        shapes.append((name, side, side, channels, filters))
        channels = filters
    return shapes


def best_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return 1000 * min(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    for line in table(args.repeats):
        print(line)


PATHS = ("direct", "Winograd F(2x2,3x3)", "Winograd F(4x4,3x3)")


def table(repeats):
    """The per-layer table's lines (markdown), then the sums."""
    r = np.random.default_rng(0)
    yield ("| layer | H x W x C -> F | " + " | ".join(f"{p} ms | GFLOP/s" for p in PATHS)
           + " | fastest | " + " | ".join(f"{p} error" for p in PATHS) + " |")
    yield "|---" * (3 + 3 * len(PATHS)) + "|"
    rows = []
    for name, h, w, c, f in layer_shapes():
        x = np.abs(r.standard_normal((1, h, w, c))).astype(np.float32)
        k = (r.standard_normal((3, 3, c, f)) * np.sqrt(2 / (9 * c))).astype(np.float32)
        u2, u4, buffers = kernel_transform(k), kernel_transform_4x4(k), {}
        paths = [lambda: correlate_same(x, k, buffers), lambda: winograd_same(x, u2),
                 lambda: winograd_4x4(x, u4)]
        ms = [best_ms(path, repeats) for path in paths]
        rows.append(ms)
        exact = (im2col(x.astype(np.float64), 3, 3, 1) @ k.astype(np.float64).reshape(-1, f))
        exact = exact.reshape(1, h, w, f)
        scale = np.abs(exact).max()
        errors = [np.abs(path() - exact).max() / scale for path in paths]
        gflop = 2 * h * w * 9 * c * f / 1e9
        yield (f"| {name} | {h}x{w}x{c} -> {f} | "
               + " | ".join(f"{t:.1f} | {gflop / t * 1e3:.0f}" for t in ms)
               + f" | {PATHS[int(np.argmin(ms))]} | " + " | ".join(f"{e:.1e}" for e in errors) + " |")
    sums = np.sum(rows, axis=0)
    yield ("\nall 13 convs: " + ", ".join(f"{p} {t:.0f} ms" for p, t in zip(PATHS, sums))
           + f"; the fastest path per layer {sum(min(ms) for ms in rows):.0f} ms")


if __name__ == "__main__":
    main()
