"""Per conv layer of VGG16: the direct path (im2col in blocks + one GEMM,
``fast_conv.correlate_same``) against Winograd F(2x2, 3x3) (``vggnp.winograd``), forward,
batch 1, 224x224, float32 (issue #18).

    python -m scripts.conv_paths [--repeats 7]

For each layer: milliseconds (the minimum of ``--repeats`` runs; the kernel transform is
done beforehand, as at load time), the effective GFLOP/s (the direct sum's 2*H*W*9*C*F
flops over the time, for both paths, so the columns compare), and each path's float32
error against the float64 im2col result, relative to the output's largest magnitude.
Inputs are ReLU-like (|N(0, 1)|), kernels He-scaled. A benchmark: timings need an idle
machine and are never asserted in tests.
"""

import argparse
import time

import numpy as np

from vggnp import spec
from vggnp.fast_conv import correlate_same
from vggnp.im2col import im2col
from vggnp.winograd import kernel_transform, winograd_same


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
    r = np.random.default_rng(0)
    print("| layer | H x W x C -> F | direct ms | GFLOP/s | Winograd ms | GFLOP/s | "
          "faster | direct error | Winograd error |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name, h, w, c, f in layer_shapes():
        x = np.abs(r.standard_normal((1, h, w, c))).astype(np.float32)
        k = (r.standard_normal((3, 3, c, f)) * np.sqrt(2 / (9 * c))).astype(np.float32)
        u = kernel_transform(k)
        buffers = {}
        ms = [best_ms(lambda: correlate_same(x, k, buffers), args.repeats),
              best_ms(lambda: winograd_same(x, u), args.repeats)]
        rows.append(ms)
        exact = (im2col(x.astype(np.float64), 3, 3, 1) @ k.astype(np.float64).reshape(-1, f))
        exact = exact.reshape(1, h, w, f)
        scale = np.abs(exact).max()
        errors = [np.abs(z - exact).max() / scale for z in (correlate_same(x, k, buffers),
                                                             winograd_same(x, u))]
        gflop = 2 * h * w * 9 * c * f / 1e9
        print(f"| {name} | {h}x{w}x{c} -> {f} | {ms[0]:.1f} | {gflop / ms[0] * 1e3:.0f} | "
              f"{ms[1]:.1f} | {gflop / ms[1] * 1e3:.0f} | "
              f"{'Winograd' if ms[1] < ms[0] else 'direct'} | {errors[0]:.1e} | {errors[1]:.1e} |")
    direct, fast = np.sum(rows, axis=0)
    print(f"\nall 13 convs: direct {direct:.0f} ms, Winograd {fast:.0f} ms, the faster of "
          f"the two per layer {sum(min(ms) for ms in rows):.0f} ms")


if __name__ == "__main__":
    main()
