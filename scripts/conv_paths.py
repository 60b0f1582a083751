"""Per conv layer of VGG16, three paths, forward, batch 1, 224x224, float32 (issue #18):
the direct path (nine shifted GEMMs, ``direct_conv.correlate_same``, what FastConv2D runs
from 4 input channels on; block1_conv1's forward runs im2col's one GEMM in bands) and
Winograd F(2x2, 3x3) and F(4x4, 3x3) (``vggnp.fast.winograd``; the library runs F(4x4)
where ``winograd_pays``).

    python -m scripts.conv_paths [--repeats 7]
    python -m scripts.conv_paths --network [--repeats 15] [--weights W] [--max-pairs P]

The threads as the commands set them (``cli.apply_process_settings``): every path on
vggnp's block threads, as in the network. For each layer: milliseconds (the minimum of
``--repeats`` runs; Winograd's times include its kernel transform, made in each call, and
F(4x4)'s transform is timed alone beside them), the effective GFLOP/s (the direct sum's
2*H*W*9*C*F flops over the time, for every path, so the columns compare), and each path's
float32 error against the float64 im2col result, relative to the output's largest
magnitude. Inputs are ReLU-like (|N(0, 1)|), kernels He-scaled. A benchmark: timings need
an idle machine and are never asserted in tests.

--network: VGG16's input gradient and Grad-CAM (as ``scripts/bench.py`` times them) with
the library's F(4x4) where it pays (``--max-pairs``: where C*F is at most that, instead
of ``winograd.MAX_PAIRS``; 262144 takes block4 too, block5's 14x14 maps not being whole
tiles) against the direct path
everywhere, the two ways alternating in one process, in a second thread as the commands
run; then each way's peak RSS in a process of its own (the bench's target: 750 MB).
"""

import argparse
import json
import time
from functools import partial

import numpy as np

from vggnp.nn import spec
from vggnp.fast import winograd
from vggnp.fast.blocks import BLOCKS
from vggnp.fast.direct_conv import correlate_same
from vggnp.nn.im2col import im2col
from vggnp.fast.winograd import F2X2, F4X4, kernel_transform, winograd_same


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


def ways(way, max_pairs):
    """{way: the winograd module's (MIN_CHANNELS, MAX_PAIRS) for it}: "direct" turns
    Winograd off, "winograd" takes the library's rule (MAX_PAIRS max_pairs if given)."""
    chosen = {"direct": (None, winograd.MAX_PAIRS),
              "winograd": (winograd.MIN_CHANNELS, max_pairs or winograd.MAX_PAIRS)}
    return chosen if way == "both" else {way: chosen[way]}


def use_way(setting):
    """Set the winograd module's rule: (MIN_CHANNELS, MAX_PAIRS), None: off."""
    low, winograd.MAX_PAIRS = setting
    winograd.MIN_CHANNELS = np.inf if low is None else low


def network_worker(weights, repeats, way, max_pairs):
    """{"ms": {pass: {way: [ms...]}}, "rss_mb": peak} in a fresh process: way "both"
    alternates the direct path and F(4x4); "direct" or "winograd" runs one way (its RSS)."""
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
    settings = ways(way, max_pairs)
    order = list(settings)
    ms = {name: {w: [] for w in order} for name in passes}

    def run():
        for r in range(repeats + 1):
            for w in (order if r % 2 else order[::-1]):
                use_way(settings[w])
                for name, one_pass in passes.items():
                    began = time.perf_counter()
                    one_pass()
                    if r:  # the first round warms up
                        ms[name][w].append(1000 * (time.perf_counter() - began))
    in_a_second_thread(run)
    return {"ms": ms, "rss_mb": peak_rss_mb()}


def network(weights, repeats, max_pairs):
    """The --network report's lines: F(4x4) where it pays against the direct path."""
    import tempfile
    from scripts.harness import random_weights_file, worker_json
    with tempfile.TemporaryDirectory() as folder:
        weights = weights or random_weights_file(folder)
        args = ["--network", "--weights", weights, "--repeats", str(repeats), "--max-pairs",
                str(max_pairs or winograd.MAX_PAIRS), "--way"]
        both = worker_json("scripts.conv_paths", args + ["both"], "conv_paths")
        rss = {w: worker_json("scripts.conv_paths", args + [w], "conv_paths")["rss_mb"]
               for w in ("direct", "winograd")}
    use_way(ways("winograd", max_pairs)["winograd"])  # the rule the workers ran
    layers = [name for name, h, w, c, f in layer_shapes()
              if winograd.winograd_pays((1, h, w, c), (3, 3, c, f))]
    yield (f"VGG16, batch 1, F(4x4) on {', '.join(layers)} (kernels transformed in "
           f"each call), median ms of {repeats}, the ways alternating in one process\n")
    yield "| pass | direct ms | F(4x4) ms | F(4x4) / direct |\n|---|---|---|---|"
    for name, times in both["ms"].items():
        direct, f4x4 = (float(np.median(times[w])) for w in ("direct", "winograd"))
        yield f"| {name} | {direct:.1f} | {f4x4:.1f} | {f4x4 / direct:.2f} |"
    yield (f"\npeak RSS, each way in a process of its own: direct {rss['direct']:.0f} MB, "
           f"F(4x4) {rss['winograd']:.0f} MB")


PATHS = ("direct", "Winograd F(2x2,3x3)", "Winograd F(4x4,3x3)")


def table(repeats):
    """The per-layer table's lines (markdown), then the sums; the threads set as the
    commands set them. Path by path over all layers, then F(4x4)'s kernel transforms."""
    from vggnp.cli import apply_process_settings
    apply_process_settings(argparse.Namespace(threads=None))
    r = np.random.default_rng(0)
    layers = []
    for name, h, w, c, f in layer_shapes():
        x = np.abs(r.standard_normal((1, h, w, c))).astype(np.float32)
        k = (r.standard_normal((3, 3, c, f)) * np.sqrt(2 / (9 * c))).astype(np.float32)
        buffers = {}
        layers.append((name, x, k, [partial(correlate_same, x, k, buffers, threads=BLOCKS)] + [
            partial(winograd_same, x, k, buffers, scheme, BLOCKS) for scheme in (F2X2, F4X4)]))
    ms = {(name, p): best_ms(paths[p], repeats) for p in range(len(PATHS))
          for name, _, _, paths in layers}
    transforms = {name: best_ms(partial(kernel_transform, k, F4X4, BLOCKS, np.empty(
        4 * k.size, k.dtype)), repeats) for name, _, k, _ in layers}
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=None, help="default 7; 15 with --network")
    p.add_argument("--network", action="store_true",
                   help="F(4x4) where it pays against the direct path, in VGG16's passes")
    p.add_argument("--weights", help="with --network: a VGG16 .h5 file (default: realistic "
                                     "random weights)")
    p.add_argument("--max-pairs", type=int, default=None,
                   help="with --network: F(4x4) where C*F is at most this (default: "
                        "winograd.MAX_PAIRS)")
    p.add_argument("--way", choices=["both", "direct", "winograd"], help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.network and (args.weights or args.max_pairs):
        p.error("--weights and --max-pairs go with --network")
    if args.worker:
        print(json.dumps(network_worker(args.weights, args.repeats, args.way,
                                        args.max_pairs)))
        return
    lines = (network(args.weights, args.repeats or 15, args.max_pairs) if args.network
             else table(args.repeats or 7))
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
