"""Per conv layer of VGG16, three paths, forward, batch 1, 224x224, float32 (issue #18):
the direct path (nine shifted GEMMs, ``direct_conv.correlate_same``, what FastConv2D runs
from 4 input channels on; block1_conv1's forward runs im2col's one GEMM in bands),
Winograd F(2x2, 3x3) (``vggnp.fast.winograd``, off by default) and Winograd F(4x4, 3x3)
(36 GEMMs on 6x6 tiles, 4x fewer multiplies than direct; measured here only, below, not
in the library).

    python -m scripts.conv_paths [--repeats 7]
    python -m scripts.conv_paths --network [--repeats 15] [--weights W] [--layers L ...]

The threads as the commands set them (``cli.apply_process_settings``): the direct path's
blocks and F(4x4)'s steps on vggnp's block threads, as in the network; F(2x2)'s products
on NumPy's BLAS threads, as the library runs it. For each layer: milliseconds (the
minimum of ``--repeats`` runs; kernel transforms done beforehand, as at load time, and
F(4x4)'s kernel transform timed alone beside it: what a call would add that made it on
the fly instead of keeping it, 4x the kernel's memory), the effective GFLOP/s (the
direct sum's 2*H*W*9*C*F flops over the time, for every path, so the columns compare),
and each path's float32 error against the float64 im2col result, relative to the
output's largest magnitude. Inputs are ReLU-like (|N(0, 1)|), kernels He-scaled. A
benchmark: timings need an idle machine and are never asserted in tests.

--network: VGG16's input gradient and Grad-CAM (as ``scripts/bench.py`` times them) with
F(4x4) instead of the direct path on ``--layers`` (default ``NETWORK_LAYERS``: block3 and
block4, where it is fastest alone), forward and dx, each call transforming its kernel (keeping the
transforms would take 4x those kernels' memory, 118 MB), the two ways alternating in one
process, in a second thread as the commands run; then each way's peak RSS in a process
of its own (the bench's target: 750 MB).
"""

import argparse
import json
import time
from functools import partial

import numpy as np

from vggnp.nn import spec
from vggnp.fast.blocks import BLOCKS, INLINE
from vggnp.fast.direct_conv import correlate_same, padded_copy, workspace_array
from vggnp.fast.gemm import matmul_add
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
KRON_B, KRON_G, KRON_A = np.kron(B_T4, B_T4), np.kron(G4, G4), np.kron(A_T4, A_T4)  # 2-D, flat


def kernel_transform_4x4(w, threads=INLINE, buffers=None, flipped=False):
    """w: (3, 3, C, F) -> U: (36, C, F), U[6*a + b] = (G g G^T)[a, b] for every (c, f):
    one product, (G kron G) (36, 9) @ w's nine taps (9, C*F); flipped: the flipped
    kernel's (dx's), its taps in reverse order (no copy), each U[k] to be used transposed.
    buffers: a workspace dict to write U into, reused by the next call."""
    g, kg = w.reshape(9, -1), KRON_G.astype(w.dtype)
    out = None if buffers is None else workspace_array(buffers, "w4_u", (36, g.shape[1]),
                                                       w.dtype)
    kg = np.ascontiguousarray(kg[:, ::-1]) if flipped else kg
    return by_columns(kg, g, threads, out).reshape(36, *w.shape[2:])


def by_columns(a, b, threads, out=None):
    """a @ b, a: (M, K), b: (K, N) -> (M, N) (into out, if given), the columns cut into
    blocks for threads."""
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b)) if out is None else out
    if threads.count == 1:
        return np.matmul(a, b, out=out)
    step = -(-b.shape[1] // (4 * threads.count))
    threads.run(partial(np.matmul, a, b[:, k:k + step], out=out[:, k:k + step])
                for k in range(0, b.shape[1], step))
    return out


def winograd_4x4(x, u, threads=INLINE, buffers=None, transposed=False):
    """x: (N, H, W, C), u: (36, C, F) -> (N, H, W, F), 3x3 "same"; 4x4 output tiles read
    6x6 inputs, four apart (H, W padded up to multiples of 4, the extra outputs dropped).
    Each transform is one product with a Kronecker matrix over a tile's 36 (or 16) values:
    the tiles gathered into d (36, tiles*C), V = (B^T kron B^T) d, M[k] = V[k] @ U[k] for
    the 36 positions k, Y = (A^T kron A^T) M (16, tiles*F), scattered into the output.
    buffers: a workspace dict for the padded input, d, V, M and Y (default: new arrays).
    transposed: u (36, F, C) from ``kernel_transform_4x4(w, flipped=True)``, each U[k]
    used transposed (BLAS's flag): dx of the conv of w, x then dz (N, H, W, F)."""
    buffers = {} if buffers is None else buffers
    n, h, w, c = x.shape
    th, tw, f = -(-h // 4), -(-w // 4), u.shape[1 if transposed else 2]
    xp = padded_copy(buffers, "padded", x, ((1, 4 * th + 1 - h), (1, 4 * tw + 1 - w)),
                     threads=threads).reshape(n, 4 * th + 2, 4 * tw + 2, c)
    d = workspace_array(buffers, "w4_d", (36, n, th, tw, c), x.dtype)
    threads.run(partial(np.copyto, d[6 * i + j], xp[:, i:i + 4 * th:4, j:j + 4 * tw:4])
                for i in range(6) for j in range(6))
    v = by_columns(KRON_B.astype(x.dtype), d.reshape(36, -1), threads,
                   workspace_array(buffers, "w4_v", (36, d[0].size), x.dtype))
    v = v.reshape(36, n * th * tw, c)
    m = workspace_array(buffers, "w4_m", (36, n * th * tw, f), x.dtype)

    def position(k):  # M[k] = V[k] @ U[k]
        m[k] = 0
        matmul_add(v[k], u[k].T if transposed else u[k], m[k])
    threads.run(partial(position, k) for k in range(36))
    y = by_columns(KRON_A.astype(x.dtype), m.reshape(36, -1), threads,
                   workspace_array(buffers, "w4_y", (16, m[0].size), x.dtype))
    y = y.reshape(4, 4, n, th, tw, f)
    z = np.empty((n, th, 4, tw, 4, f), x.dtype)
    threads.run(partial(np.copyto, z[:, :, a], y[a].transpose(1, 2, 3, 0, 4))
                for a in range(4))
    return z.reshape(n, 4 * th, 4 * tw, f)[:, :h, :w]


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


NETWORK_LAYERS = ("block3_conv1", "block3_conv2", "block3_conv3", "block4_conv1",
                  "block4_conv2", "block4_conv3")


class F4x4Layers:
    """While entered (``with``), FastConv2D runs F(4x4) on the layers named ``layers``
    whenever ``on`` is true: their path "winograd", with the library's Winograd replaced
    by :func:`winograd_4x4` on ``threads``, the kernel (for dx the flipped kernel's
    transform, taken from the kernel's taps in reverse order) transformed in each call
    into the layer's workspace. On exit the three replaced attributes are restored."""

    def __init__(self, layers, threads=BLOCKS):
        self.layers, self.threads, self.on = set(layers), threads, False

    def __enter__(self):
        from vggnp.fast import layers as fast_layers
        self._saved = (fast_layers.FastConv2D.path, fast_layers.kernel_transform,
                       fast_layers.winograd_same)
        chosen = fast_layers.FastConv2D.path

        def path(layer, x_shape, backward=False):
            if self.on and layer.name in self.layers:
                return "winograd"
            return chosen(layer, x_shape, backward)
        fast_layers.FastConv2D.path = path
        fast_layers.kernel_transform = lambda w: w  # kept as it is: transformed in each call
        fast_layers.winograd_same = self.winograd
        return self

    def __exit__(self, *exc):
        from vggnp.fast import layers as fast_layers
        (fast_layers.FastConv2D.path, fast_layers.kernel_transform,
         fast_layers.winograd_same) = self._saved

    def winograd(self, x, w, buffers, flipped=False):
        """``winograd.winograd_same``'s place: x (N, H, W, C) -> (N, H, W, F), or with
        flipped, dz (N, H, W, F) -> dx (N, H, W, C)."""
        u = kernel_transform_4x4(w, self.threads, buffers, flipped)
        return winograd_4x4(x, u, self.threads, buffers, transposed=flipped)


def network_worker(weights, repeats, way, layers):
    """{"ms": {pass: {way: [ms...]}}, "rss_mb": peak} in a fresh process: way "both"
    alternates the direct path and F(4x4); "direct" or "f4x4" runs one way (for its RSS)."""
    import vggnp
    from scripts.harness import PHOTO, in_a_second_thread, peak_rss_mb
    from vggnp.cli import apply_process_settings
    apply_process_settings(argparse.Namespace(threads=None))
    model, x = vggnp.VGG16.load(weights), vggnp.load_image(PHOTO)
    onehot = np.zeros((1, 1000), np.float32)
    onehot[0, 0] = 1
    passes = {"input gradient": lambda: (model.forward(x), model.backward(
        onehot, start="predictions", from_logits=True)), "Grad-CAM": lambda: vggnp.grad_cam(
        model, x)}
    ways = ("direct", "f4x4") if way == "both" else (way,)
    ms = {name: {w: [] for w in ways} for name in passes}

    def run():
        with F4x4Layers(layers) as f4x4:
            for r in range(repeats + 1):
                for w in (ways if r % 2 else ways[::-1]):
                    f4x4.on = w == "f4x4"
                    for name, one_pass in passes.items():
                        began = time.perf_counter()
                        one_pass()
                        if r:  # the first round warms up
                            ms[name][w].append(1000 * (time.perf_counter() - began))
    in_a_second_thread(run)
    return {"ms": ms, "rss_mb": peak_rss_mb()}


def network(weights, repeats, layers):
    """The --network report's lines: F(4x4) on ``layers``."""
    import tempfile
    from scripts.harness import random_weights_file, worker_json
    with tempfile.TemporaryDirectory() as folder:
        weights = weights or random_weights_file(folder)
        args = ["--network", "--weights", weights, "--repeats", str(repeats), "--layers",
                *layers, "--way"]
        both = worker_json("scripts.conv_paths", args + ["both"], "conv_paths")
        rss = {w: worker_json("scripts.conv_paths", args + [w], "conv_paths")["rss_mb"]
               for w in ("direct", "f4x4")}
    yield (f"VGG16, batch 1, F(4x4) on {', '.join(layers)} (kernels transformed in "
           f"each call), median ms of {repeats}, the ways alternating in one process\n")
    yield "| pass | direct ms | F(4x4) ms | F(4x4) / direct |\n|---|---|---|---|"
    for name, times in both["ms"].items():
        direct, f4x4 = (float(np.median(times[w])) for w in ("direct", "f4x4"))
        yield f"| {name} | {direct:.1f} | {f4x4:.1f} | {f4x4 / direct:.2f} |"
    yield (f"\npeak RSS, each way in a process of its own: direct {rss['direct']:.0f} MB, "
           f"F(4x4) {rss['f4x4']:.0f} MB")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=None, help="default 7; 15 with --network")
    p.add_argument("--network", action="store_true",
                   help="F(4x4) on block3 and block4 inside VGG16's passes")
    p.add_argument("--weights", help="with --network: a VGG16 .h5 file (default: realistic "
                                     "random weights)")
    p.add_argument("--layers", nargs="+", default=list(NETWORK_LAYERS),
                   choices=[name for name, *_ in layer_shapes()],
                   help="with --network: the layers F(4x4) runs (default: block3, block4)")
    p.add_argument("--way", choices=["both", "direct", "f4x4"], help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.network and (args.weights or args.layers != list(NETWORK_LAYERS)):
        p.error("--weights and --layers go with --network")
    if args.worker:
        print(json.dumps(network_worker(args.weights, args.repeats, args.way, args.layers)))
        return
    lines = (network(args.weights, args.repeats or 15, args.layers) if args.network
             else table(args.repeats or 7))
    for line in lines:
        print(line)


PATHS = ("direct", "Winograd F(2x2,3x3)", "Winograd F(4x4,3x3)")


def table(repeats):
    """The per-layer table's lines (markdown), then the sums; the threads set as the
    commands set them. Path by path over all layers (direct, F(4x4), F(4x4)'s kernel
    transforms), F(2x2) last: its products leave NumPy's BLAS threads spinning a while,
    which slowed the block threads' paths timed after it."""
    from vggnp.cli import apply_process_settings
    apply_process_settings(argparse.Namespace(threads=None))
    r = np.random.default_rng(0)
    layers = []
    for name, h, w, c, f in layer_shapes():
        x = np.abs(r.standard_normal((1, h, w, c))).astype(np.float32)
        k = (r.standard_normal((3, 3, c, f)) * np.sqrt(2 / (9 * c))).astype(np.float32)
        u2, u4, buffers = kernel_transform(k), kernel_transform_4x4(k, BLOCKS), {}
        layers.append((name, x, k, [
            partial(correlate_same, x, k, buffers, threads=BLOCKS),
            partial(winograd_same, x, u2, {}), partial(winograd_4x4, x, u4, BLOCKS, buffers)]))
    ms = {(name, p): best_ms(paths[p], repeats) for p in (0, 2) for name, _, _, paths in layers}
    transforms = {name: best_ms(partial(kernel_transform_4x4, k, BLOCKS, {}), repeats)
                  for name, _, k, _ in layers}  # U in a workspace, reused (best_ms warms up)
    ms.update({(name, 1): best_ms(paths[1], repeats) for name, _, _, paths in layers})
    yield ("| layer | H x W x C -> F | " + " | ".join(f"{p} ms | GFLOP/s" for p in PATHS)
           + " | F(4x4) kernel transform ms | fastest | "
           + " | ".join(f"{p} error" for p in PATHS) + " |")
    yield "|---" * (4 + 3 * len(PATHS)) + "|"
    rows = []
    for name, x, k, paths in layers:
        (_, h, w, c), f = x.shape, k.shape[3]
        times = [ms[name, p] for p in range(len(PATHS))]
        rows.append(times)
        exact = (im2col(x.astype(np.float64), 3, 3, 1) @ k.astype(np.float64).reshape(-1, f))
        exact = exact.reshape(1, h, w, f)
        errors = [np.abs(path() - exact).max() / np.abs(exact).max() for path in paths]
        gflop = 2 * h * w * 9 * c * f / 1e9
        yield (f"| {name} | {h}x{w}x{c} -> {f} | "
               + " | ".join(f"{t:.1f} | {gflop / t * 1e3:.0f}" for t in times)
               + f" | {transforms[name]:.1f} | {PATHS[int(np.argmin(times))]} | "
               + " | ".join(f"{e:.1e}" for e in errors) + " |")
    sums = np.sum(rows, axis=0)
    yield ("\nall 13 convs: " + ", ".join(f"{p} {t:.0f} ms" for p, t in zip(PATHS, sums))
           + f"; the fastest path per layer {sum(min(ms) for ms in rows):.0f} ms")


if __name__ == "__main__":
    main()
