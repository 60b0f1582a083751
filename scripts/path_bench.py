"""What a fast path saves inside the models: Grad-CAM at the default layer and the gradient
of the top logit to the input, on Keras Applications graphs, with the path and with the
code it replaces (the lesson's, or an earlier fast path), alternating in one process.

    python -m scripts.path_bench --path depthwise|loops|unfold [--repeats 15]
                                 [--models Xception ...]

--path depthwise: the depthwise convolution read a row (or a pixel) at a time
(``fast/depthwise.FastDepthwiseConv2D``) against the lesson's einsum (``DepthwiseConv2D``);
--path loops: that fast path as chosen (rows in chunks, a pixel at a time where a pixel
has many channels: ``KNOBS``) against whole rows everywhere;
--path unfold: a strided (or 3-channel) conv's forward as im2col's product in bands of
output rows, each band's windows copied from a strided view (``FastConv2D.im2col_in_bands``,
``fast/unfold.window_rows``), against the lesson's whole ``im2col`` and one product.
Models as ``scripts.graph_bench`` builds them (realistic random weights). Prints a
Markdown table of medians and how far apart the two ways' maps are. Never asserted in a
test (``tests/test_fast_depthwise.py``, ``tests/test_fast_conv.py`` hold each path to
the lesson's sum).
"""

import os
import time

import numpy as np

from scripts.harness import worker_json
from scripts.graph_bench import MODELS, ab_bench_args, built_models, photo_input

# {path: the models that have the layers it changes}
PATHS = {"depthwise": ("MobileNetV2", "Xception", "EfficientNetB0"), "unfold": tuple(MODELS),
         "loops": ("MobileNetV2", "Xception", "EfficientNetB0")}
# {path: the table's names for (the package's way, the way it replaces)}
LABELS = {"depthwise": ("fast", "lesson"), "unfold": ("bands", "lesson"),
          "loops": ("chosen", "whole rows")}


KNOBS = ("PIXEL_LOOP_MIN_CHANNELS", "ROW_CHUNK_VALUES")  # of fast/depthwise.py


def ways(path):
    """{"with": [(object, attribute, value)] as the package has it, "without": the same
    attributes with the code the path replaces}."""
    from vggnp.fast import depthwise
    from vggnp.fast.depthwise import FastDepthwiseConv2D
    from vggnp.fast.layers import FastConv2D
    if path == "depthwise":
        return {"with": [(FastDepthwiseConv2D, "_correlates", FastDepthwiseConv2D._correlates)],
                "without": [(FastDepthwiseConv2D, "_correlates", lambda layer: False)]}
    if path == "loops":
        return {"with": [(depthwise, name, getattr(depthwise, name)) for name in KNOBS],
                "without": [(depthwise, name, 10 ** 9) for name in KNOBS]}
    return {"with": [(FastConv2D, "im2col_in_bands", FastConv2D.im2col_in_bands)],
            "without": [(FastConv2D, "im2col_in_bands", lesson_im2col)]}


def lesson_im2col(layer, x, relu=False):
    """What ``FastConv2D.im2col_in_bands`` replaces: z = im2col(x) @ W + b (with relu: max(z, 0)),
    the lesson's whole im2col matrix and one product. x: (N, H, W, C) -> (N, H', W', F)."""
    from vggnp.nn.im2col import im2col
    kernel = layer.w.reshape(-1, layer.w.shape[3])
    z = im2col(x, *layer.w.shape[:2], layer.pads(x.shape), layer.strides) @ kernel
    z = z.reshape(layer.output_shape(x.shape)) + layer.b
    return np.maximum(z, 0, out=z) if relu else z


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
            for setting in both[way]:
                setattr(*setting)
            for measure, run in measures.items():
                maps[measure, way] = run()  # warm: the caches as the timed run finds them
                began = time.perf_counter()
                run()
                times[measure][way].append(1000 * (time.perf_counter() - began))
    apart = {m: float(np.abs(maps[m, "with"] - maps[m, "without"]).max() /
                      np.abs(maps[m, "without"]).max()) for m in measures}
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
        new, old = LABELS[args.path]
        print(f"| model | measure | {new} ms | {old} ms | {new} / {old} | maps apart |\n"
              "|---|---|---|---|---|---|")
        for name in models:
            run = worker_json("scripts.path_bench", [os.path.join(folder, f"{name}.keras"),
                                                     str(args.repeats), "--path", args.path],
                              "path_bench")
            for measure, both in run["times"].items():
                ours, theirs = (float(np.median(both[w])) for w in ("with", "without"))
                print(f"| {name} | {measure} | {ours:.1f} | {theirs:.1f} | "
                      f"{ours / theirs:.2f} | {run['apart'][measure]:.1e} |")


if __name__ == "__main__":
    main()
