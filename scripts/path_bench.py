"""What a fast path saves inside the models: Grad-CAM at the default layer and the gradient
of the top logit to the input, on Keras Applications graphs, with the path and with the
lesson's code it replaces, alternating in one process.

    python -m scripts.path_bench --path depthwise [--repeats 15] [--models Xception ...]

--path depthwise: the depthwise convolution read a row at a time
(``fast/depthwise.FastDepthwiseConv2D``) against the lesson's einsum (``DepthwiseConv2D``);
--path unfold: a strided conv's im2col copied a window row at a time (``fast/unfold.py``)
against the lesson's ``im2col``. Models as ``scripts.graph_bench`` builds them (realistic
random weights). Prints a Markdown table of medians and how far apart the two ways' maps
are. Never asserted in a test (``tests/test_fast_depthwise.py``,
``tests/test_fast_conv.py`` hold each path to the lesson's sum).
"""

import os
import time

import numpy as np

from scripts.harness import worker_json
from scripts.graph_bench import MODELS, ab_bench_args, built_models, photo_input

# {path: the models that have the layers it changes}
PATHS = {"depthwise": ("MobileNetV2", "Xception", "EfficientNetB0"), "unfold": tuple(MODELS)}


def ways(path):
    """{"rows": (class, attribute, value) as the package has it, "lesson": the same
    attribute with the lesson's code}."""
    from vggnp.fast.depthwise import FastDepthwiseConv2D
    from vggnp.fast.layers import FastConv2D
    from vggnp.nn.layers import Conv2D
    if path == "depthwise":
        return {"rows": (FastDepthwiseConv2D, "_rows_path", FastDepthwiseConv2D._rows_path),
                "lesson": (FastDepthwiseConv2D, "_rows_path", lambda layer: False)}
    return {"rows": (FastConv2D, "unfold", FastConv2D.unfold),
            "lesson": (FastConv2D, "unfold", Conv2D.unfold)}


def worker(model_path, repeats, path):
    """In a fresh process: {measure: {way: [ms...]}}, and each measure's largest
    difference between the two ways' maps over the map's largest value."""
    from vggnp import grad_cam, load_keras_model
    from vggnp.methods.attribution import score_gradient
    model = load_keras_model(model_path)
    x = photo_input(model)
    both = ways(path)
    measures = {"gradcam": lambda: grad_cam(model, x, model.default_layer)[0],
                "input gradient": lambda: score_gradient(model, x, None, "logit")[2]}
    times = {m: {way: [] for way in both} for m in measures}
    maps = {}
    for r in range(repeats):
        for way in (list(both) if r % 2 else list(both)[::-1]):
            setattr(*both[way])
            for measure, run in measures.items():
                maps[measure, way] = run()  # warm: the caches as the timed run finds them
                began = time.perf_counter()
                run()
                times[measure][way].append(1000 * (time.perf_counter() - began))
    apart = {m: float(np.abs(maps[m, "rows"] - maps[m, "lesson"]).max() /
                      np.abs(maps[m, "lesson"]).max()) for m in measures}
    return {"times": times, "apart": apart}


def main():
    args = ab_bench_args(__doc__, 15, MODELS, worker, PATHS)
    if args is None:
        return
    models = [name for name in args.models if name in PATHS[args.path]]
    if not models:
        raise SystemExit(f"--path {args.path} changes layers that only "
                         f"{', '.join(PATHS[args.path])} have")
    with built_models(models) as folder:
        print(f"--path {args.path}: one photo, median ms of {args.repeats} each way, "
              "alternating in one process\n")
        print("| model | measure | rows ms | lesson ms | rows / lesson | maps apart |\n"
              "|---|---|---|---|---|---|")
        for name in models:
            run = worker_json("scripts.path_bench", [os.path.join(folder, f"{name}.keras"),
                                                     str(args.repeats), "--path", args.path],
                              "path_bench")
            for measure, both in run["times"].items():
                rows, lesson = (float(np.median(both[w])) for w in ("rows", "lesson"))
                print(f"| {name} | {measure} | {rows:.1f} | {lesson:.1f} | "
                      f"{rows / lesson:.2f} | {run['apart'][measure]:.1e} |")


if __name__ == "__main__":
    main()
