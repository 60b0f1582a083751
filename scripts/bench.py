"""Benchmark vggnp against TensorFlow on this machine, in one run.

    python -m scripts.bench [--weights W.h5] [--rounds 2] [--repeats 5] [--no-tf] [--json]
    python -m scripts.bench --quick     # one round of one run: checks that it works, no more

vggnp and TensorFlow run alternately, each in its own process (OpenBLAS threads that keep
spinning after a GEMM would slow TensorFlow in the same process), on the same photo and
the same weights (realistic random ones unless --weights is given). Prints first the
README's speed table in Markdown -- when and on what it was measured (CPU model, cores,
BLAS library, kernels and threads, numpy and TensorFlow versions), then medians, each
ratio computed from the numbers in the table itself -- and then the details: min-max of
each measure, the stretch targets, achieved GFLOP/s per conv layer against a measured
sgemm rate. Timings need an otherwise idle machine; they are never asserted in tests.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial

import numpy as np

from scripts.bench_report import collect, markdown_table, print_details, shown_numbers
from scripts.harness import (PHOTO, ROOT, in_a_second_thread, peak_rss_mb, random_weights_file,
                             tf_vgg16_passes, time_interleaved, numpy_huge_pages, timeit,
                             worker_json)


def worker_vggnp(weights, repeats):
    """vggnp's measures as ``python -m vggnp.cam`` runs its passes: threads set as the
    commands set them, in the main thread (the library alone leaves the BLAS's default
    and no block threads), and the passes in a second thread (``in_a_second_thread``)."""
    from vggnp.cli import apply_process_settings
    blas = apply_process_settings(argparse.Namespace(threads=None))
    return in_a_second_thread(lambda: measure_vggnp(weights, repeats, blas))


def measure_vggnp(weights, repeats, blas):
    import vggnp
    from vggnp.fast.blocks import BLOCKS
    from vggnp.fast.layers import FastConv2D as Conv2D
    model = vggnp.VGG16.load(weights)
    x = vggnp.load_image(PHOTO)
    onehot = np.zeros((1, 1000), np.float32)
    onehot[0, 0] = 1

    def input_grad():
        model.forward(x)
        model.backward(onehot, start="predictions", from_logits=True)

    out = time_interleaved({"forward": lambda: model.predict(x),
                            "gradcam": lambda: vggnp.grad_cam(model, x),
                            "input_grad": input_grad}, repeats)
    out["rss_mb"] = peak_rss_mb()  # batch 1 only, so far
    x8 = np.repeat(x, 8, axis=0)
    pair = time_interleaved({"batch1": lambda: vggnp.grad_cam(model, x),
                             "batch8": lambda: vggnp.grad_cam(model, x8)}, max(2, repeats // 2))
    out["gradcam_batch1_paired"] = pair["batch1"]
    out["gradcam_batch8_per_image"] = [t / 8 for t in pair["batch8"]]
    # Per conv layer: time its forward on its real input.
    layers, a = {}, x
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            n, h, w, c = a.shape
            flops = 2 * n * h * w * 9 * c * layer.w.shape[3]
            ms = float(np.median(timeit(lambda: layer.forward(a), repeats)))
            layers[layer.name] = {"ms": ms, "gflops": flops / ms / 1e6}
        a = layer.forward(a)
        if layer.name == "block5_pool":
            break
    out["conv_layers"] = layers
    m = k = n = 3136  # a GEMM of VGG16's size (block3: 56*56 rows)
    a_, b_ = np.ones((m, k), np.float32), np.ones((k, n), np.float32)
    out["numpy"] = np.__version__
    out["sgemm_gflops"] = 2 * m * k * n / np.median(timeit(lambda: a_ @ b_, 3)) / 1e6
    try:
        from threadpoolctl import threadpool_info
        out["blas"] = [f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads"
                       + (f", {i['architecture']} kernels)" if i.get("architecture") else ")")
                       for i in threadpool_info() if i["user_api"] == "blas"]
    except ImportError:
        out["blas"] = ["unknown (pip install threadpoolctl)"]
    from vggnp.fast import gemm
    out["threads"] = (f"{blas} BLAS thread(s) and {BLOCKS.count} block thread(s), NumPy's "
                      f"huge pages {numpy_huge_pages()}, as the commands, the passes in a "
                      f"second thread, as the stream's worker; the conv sums' GEMM: "
                      f"{gemm.path().split(';')[0]}")
    return out


def worker_tf(weights, repeats):
    import tensorflow as tf
    passes = tf_vgg16_passes(weights)
    x = passes.pop("x")
    out = time_interleaved({name: partial(lambda fn: fn(x).numpy(), fn)
                            for name, fn in passes.items()}, repeats)
    out.update(rss_mb=peak_rss_mb(), version=tf.__version__)
    return out


def run_worker(kind, weights, repeats, extra_env=None):
    """One worker process's measures (JSON); extra_env: more environment variables (the
    GEMM switch of ``scripts.gemm_ab``)."""
    return worker_json("scripts.bench", [kind, "--weights", weights, "--repeats",
                                         str(repeats)], kind, extra_env)


def time_cli(weights, repeats):
    # With the bytecode cache that pip writes at install time: an editable checkout under
    # PYTHONDONTWRITEBYTECODE (set on this VM) recompiles vggnp's 66 modules every run,
    # ~75 ms that no installed copy pays.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as out:
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "vggnp.cam", PHOTO, "--weights", weights,
                            "--out", out, "--overwrite"], check=True, capture_output=True,
                           cwd=ROOT, env=env)
            times.append(time.perf_counter() - start)
    return times[1:]  # the first run warms the page cache and writes the bytecode cache


def main():
    p = argparse.ArgumentParser(description="vggnp vs TensorFlow benchmark")
    p.add_argument("--weights", help="a VGG16 .h5 file (default: realistic random weights)")
    p.add_argument("--rounds", type=int, default=2, help="alternations vggnp/TF (default 2)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per round (default 5)")
    p.add_argument("--quick", action="store_true",
                   help="1 round of 1 run, 1 whole-process run: to see that it works")
    p.add_argument("--no-tf", action="store_true", help="skip TensorFlow")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--worker", choices=["vggnp", "tf"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        fn = worker_vggnp if args.worker == "vggnp" else worker_tf
        print(json.dumps(fn(args.weights, args.repeats)))
        return
    if args.quick:
        args.rounds = args.repeats = 1
    cli_runs = 1 if args.quick else 3

    with tempfile.TemporaryDirectory() as folder:
        weights = args.weights or random_weights_file(folder)
        runs = {"vggnp": [], "tf": []}
        has_tf = importlib.util.find_spec("tensorflow") is not None  # not imported here
        kinds = ["vggnp", "tf"] if has_tf and not args.no_tf else ["vggnp"]
        for _ in range(args.rounds):
            for kind in kinds:
                runs[kind].append(run_worker(kind, weights, args.repeats))
        cli = time_cli(weights, cli_runs)
    command = "python -m scripts.bench" + (" --quick" if args.quick else
                                           f" --rounds {args.rounds} --repeats {args.repeats}")
    command += (" --weights W" if args.weights else "") + ("" if "tf" in kinds else " --no-tf")
    report = collect(runs, cli, command)
    # Last, in this process: each conv path per layer, with its float32 error.
    from scripts.conv_paths import table
    report["conv_paths"] = list(table(1 if args.quick else 5))
    report["ratios"] = shown_numbers(report)[2]
    report["markdown"] = markdown_table(report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(report["markdown"]))
        print()
        print_details(report)


if __name__ == "__main__":
    main()
