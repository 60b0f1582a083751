"""What reading the depthwise convolution a row at a time saves
(``vggnp/fast/depthwise.py``): Grad-CAM at the default layer and the gradient of the top
logit to the input, on Keras Applications graphs, with the rows path and with the lesson's
einsum (``DepthwiseConv2D``), alternating in one process.

    python -m scripts.depthwise_bench [--repeats 15] [--models Xception ...]

Models as ``scripts.graph_bench`` builds them (realistic random weights). Prints a
Markdown table of medians and how far apart the two ways' maps are. Never asserted in a
test (``tests/test_fast_depthwise.py`` holds the path to the lesson's sum).
"""

import os
import time

import numpy as np

from scripts.harness import worker_json
from scripts.graph_bench import ab_bench_args, built_models, photo_input

MODELS = ("MobileNetV2", "Xception", "EfficientNetB0")  # those with depthwise convs


def worker(path, repeats):
    """In a fresh process: {measure: {way: [ms...]}}, and each measure's largest
    difference between the two ways' maps over the map's largest value."""
    from vggnp import grad_cam, load_keras_model
    from vggnp.fast.depthwise import FastDepthwiseConv2D
    from vggnp.methods.attribution import score_gradient
    model = load_keras_model(path)
    x = photo_input(model)
    ways = {"rows": FastDepthwiseConv2D._rows_path, "lesson": lambda layer: False}
    measures = {"gradcam": lambda: grad_cam(model, x, model.default_layer)[0],
                "input gradient": lambda: score_gradient(model, x, None, "logit")[2]}
    times = {m: {way: [] for way in ways} for m in measures}
    maps = {}
    for r in range(repeats):
        for way in (list(ways) if r % 2 else list(ways)[::-1]):
            FastDepthwiseConv2D._rows_path = ways[way]
            for measure, run in measures.items():
                maps[measure, way] = run()  # warm: the caches as the timed run finds them
                began = time.perf_counter()
                run()
                times[measure][way].append(1000 * (time.perf_counter() - began))
    apart = {m: float(np.abs(maps[m, "rows"] - maps[m, "lesson"]).max() /
                      np.abs(maps[m, "lesson"]).max()) for m in measures}
    return {"times": times, "apart": apart}


def main():
    args = ab_bench_args(__doc__, 15, MODELS, worker)
    if args is None:
        return
    with built_models(args.models) as folder:
        print(f"One photo, median ms of {args.repeats} each way, alternating in one process\n")
        print("| model | measure | rows ms | lesson ms | rows / lesson | maps apart |\n"
              "|---|---|---|---|---|---|")
        for name in args.models:
            run = worker_json("scripts.depthwise_bench",
                              [os.path.join(folder, f"{name}.keras"), str(args.repeats)],
                              "depthwise_bench")
            for measure, ways in run["times"].items():
                rows, lesson = (float(np.median(ways[w])) for w in ("rows", "lesson"))
                print(f"| {name} | {measure} | {rows:.1f} | {lesson:.1f} | "
                      f"{rows / lesson:.2f} | {run['apart'][measure]:.1e} |")


if __name__ == "__main__":
    main()
