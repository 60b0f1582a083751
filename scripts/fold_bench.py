"""What folding BatchNorms into the convs before them saves (``vggnp/fast/folding.py``):
Grad-CAM at the default layer of Keras Applications graphs, folded and not, alternating
in one process, and the peak memory of each in a fresh process.

    python -m scripts.fold_bench [--repeats 15] [--models Xception ...]

Models as ``scripts.graph_bench`` builds them (realistic random weights). Prints a
Markdown table of medians. Never asserted in a test.
"""

import argparse
import json
import os
import time

import numpy as np

from scripts.harness import peak_rss_mb, worker_json
from scripts.graph_bench import MODELS, built_models, photo_input


def worker(path, fold, repeats):
    """In a fresh process: (ms of each Grad-CAM, folded and not, alternating) or, with
    ``fold`` "on"/"off" alone, the peak RSS of three Grad-CAMs that way."""
    from vggnp import grad_cam, load_keras_model
    model = load_keras_model(path)
    x = photo_input(model)
    pairs = model.folds.pairs
    if fold != "both":
        model.folds.pairs = pairs if fold == "on" else {}
        for _ in range(3):
            grad_cam(model, x, model.default_layer)
        return {"mb": peak_rss_mb()}
    times = {"on": [], "off": []}
    for _ in range(repeats):
        for way in times:
            model.folds.pairs = pairs if way == "on" else {}
            grad_cam(model, x, model.default_layer)  # the stand-ins made, caches warm
            began = time.perf_counter()
            grad_cam(model, x, model.default_layer)
            times[way].append(1000 * (time.perf_counter() - began))
    model.folds.pairs = pairs
    model.forward(x)
    return {"times": times, "folded": len(model._stand_ins) // 2, "pairs": len(pairs)}


def run_worker(*args):
    return worker_json("scripts.fold_bench", list(args), "fold_bench")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        path, fold, repeats = args.worker
        print(json.dumps(worker(path, fold, int(repeats))))
        return
    with built_models(args.models) as folder:
        print(f"Grad-CAM at the default layer, one photo, median ms of {args.repeats}, "
              "folded and not alternating in one process; peak RSS of each way in its own\n")
        print("| model | BatchNorms folded | folded ms | unfolded ms | folded / unfolded | "
              "folded MB | unfolded MB |\n|---|---|---|---|---|---|---|")
        for name in args.models:
            path = os.path.join(folder, f"{name}.keras")
            run = run_worker(path, "both", str(args.repeats))
            on, off = (float(np.median(run["times"][way])) for way in ("on", "off"))
            mb = {way: run_worker(path, way, "0")["mb"] for way in ("on", "off")}
            print(f"| {name} | {run['folded']} of {run['pairs']} | {on:.1f} | {off:.1f} | "
                  f"{on / off:.2f} | {mb['on']:.0f} | {mb['off']:.0f} |")


if __name__ == "__main__":
    main()
