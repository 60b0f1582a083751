"""Grad-CAM time and peak memory of vggnp and TensorFlow on Keras Applications graphs at
their default input size (issue #25.6), and how close vggnp's depthwise convolution comes
to a plain array copy.

    python -m scripts.graph_bench [--repeats 5] [--rounds 2] [--models ResNet50 ...]

The models are built once by Keras (``weights=None``, realistic random weights: He-normal
kernels, batch norms calibrated on noise images) and saved with ``model.save``. Each
measure is a fresh worker process -- vggnp (``load_keras_model``, ``grad_cam`` at the
default layer) or TensorFlow (``keras.models.load_model``, a ``tf.function`` GradientTape
Grad-CAM at the same layer, intra-op threads as vggnp's) -- timing one photo ``--repeats``
times after a warm-up and reporting its peak RSS; the two alternate within each round.
Prints a Markdown table of medians and ratios. Never asserted in a test.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from scripts.harness import (PHOTO, ROOT, numpy_huge_pages, peak_rss_mb,
                             time_interleaved, worker_json)

MODELS = {"ResNet50": 224, "MobileNetV2": 224, "Xception": 299, "EfficientNetB0": 224}


def make_models(folder, names):
    """Save each model of ``names`` to folder/NAME.keras (in a worker: TensorFlow)."""
    import tensorflow as tf
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from test_keras_applications import calibrate_batch_norms, realistic_weights
    for name in names:
        side = MODELS[name]
        model = getattr(tf.keras.applications, name)(weights=None, input_shape=(side, side, 3))
        realistic_weights(tf.keras, model)
        noise = np.random.default_rng(0).uniform(0, 255, (4, side, side, 3)).astype(np.float32)
        calibrate_batch_norms(tf.keras, model, noise if name.startswith("Eff") else
                              noise / 127.5 - 1)
        model.save(os.path.join(folder, f"{name}.keras"))


@contextlib.contextmanager
def built_models(names):
    """A temporary folder holding NAME.keras for each of ``names``, made by
    ``make_models`` in a child process (TensorFlow stays out of the caller's)."""
    with tempfile.TemporaryDirectory() as folder:
        made = subprocess.run([sys.executable, "-m", "scripts.graph_bench", "--make", folder,
                               "--models", *names], cwd=ROOT, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"))
        if made.returncode != 0:
            raise SystemExit(f"making the models failed:\n{made.stderr[-3000:]}")
        yield folder


def ab_bench_args(doc, repeats, models, worker, paths=None):
    """The options of an A/B bench on the graph models, --repeats and --models (and --path,
    one of ``paths``, where given), parsed; in its worker process (--worker MODEL REPEATS,
    hidden), ``worker(model, repeats[, path])``'s result printed as JSON, and None
    returned."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--models", nargs="+", default=list(models), choices=list(models))
    if paths:
        p.add_argument("--path", choices=list(paths), required=True)
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        extra = (args.path,) if paths else ()
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), *extra)))
        return None
    return args


def photo_input(model):
    """The photo as the model's input (its own preprocessing): (1, H, W, 3) float32."""
    from vggnp.files.images import read_image
    from vggnp.files.preprocess import model_input
    picture, _ = read_image(PHOTO)
    return model_input(picture, model.input_size, 3, model.default_preprocess)[None]


def worker_vggnp(path, repeats):
    from vggnp import grad_cam, load_keras_model
    model = load_keras_model(path)
    x = photo_input(model)
    times = time_interleaved({"gradcam": lambda: grad_cam(model, x, model.default_layer)},
                             repeats)["gradcam"]
    from vggnp.fast.gemm import kernels
    return {"ms": times, "rss": peak_rss_mb(), "layer": model.default_layer,
            "kernels": f"{kernels()}, NumPy's huge pages {numpy_huge_pages()}"}


def worker_tf(path, repeats, layer, threads):
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from vggnp import load_keras_model
    x = tf.constant(photo_input(load_keras_model(path)))
    model = tf.keras.models.load_model(path)
    head = model.layers[-1]
    probe = tf.keras.Model(model.inputs, [model.get_layer(layer).output, head.input])

    @tf.function
    def gradcam(x):
        with tf.GradientTape() as tape:
            conv, features = probe(x)
            logits = tf.matmul(features, head.kernel) + head.bias
            score = logits[:, tf.argmax(logits[0])]
        weights = tf.reduce_mean(tape.gradient(score, conv), axis=(1, 2))
        cam = tf.nn.relu(tf.einsum("nhwc,nc->nhw", conv, weights))
        return cam / tf.reduce_max(cam)
    times = time_interleaved({"gradcam": lambda: gradcam(x).numpy()}, repeats)["gradcam"]
    return {"ms": times, "rss": peak_rss_mb()}


def depthwise_bandwidth(repeats=20):
    """(GB/s of vggnp's DepthwiseConv2D forward as the loaded models run it, GB/s of an
    array copy) on MobileNetV2's block_2_depthwise (1, 56, 56, 144), 3x3, stride 1: bytes
    read + written / time."""
    from vggnp.fast.depthwise import FastDepthwiseConv2D
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 56, 56, 144)).astype(np.float32)
    layer = FastDepthwiseConv2D("d", rng.standard_normal((3, 3, 144, 1)).astype(np.float32))
    out = np.empty_like(x)
    timed = time_interleaved({"depthwise": lambda: layer.forward(x),
                              "copy": lambda: np.copyto(out, x)}, repeats)
    return {name: 2 * x.nbytes / (np.median(ms) / 1000) / 1e9 for name, ms in timed.items()}


def run_worker(args, kind, path, layer=None):
    argv = [kind, "--path", path, "--repeats", str(args.repeats), "--threads",
            str(args.threads)]
    return worker_json("scripts.graph_bench", argv + (["--layer", layer] if layer else []),
                       kind)


def measure(args, folder):
    results = {(name, kind): {"ms": [], "rss": 0} for name in args.models
               for kind in ("vggnp", "tf")}
    layers, kernels = {}, None
    for _ in range(args.rounds):
        for name in args.models:
            path = os.path.join(folder, f"{name}.keras")
            ours = run_worker(args, "vggnp", path)
            layers[name], kernels = ours["layer"], ours["kernels"]
            theirs = run_worker(args, "tf", path, ours["layer"])
            for kind, got in (("vggnp", ours), ("tf", theirs)):
                results[name, kind]["ms"] += got["ms"]
                results[name, kind]["rss"] = max(results[name, kind]["rss"], got["rss"])
    return results, layers, kernels


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    for hidden in ("--worker", "--path", "--layer", "--make"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.make:
        make_models(args.make, args.models)
        return 0
    if args.worker:
        from vggnp.fast.threads import use_threads
        use_threads(args.threads)
        result = (worker_vggnp(args.path, args.repeats) if args.worker == "vggnp" else
                  worker_tf(args.path, args.repeats, args.layer, args.threads))
        print(json.dumps(result))
        return 0
    began = time.time()
    with built_models(args.models) as folder:
        results, layers, kernels = measure(args, folder)
    print(f"Grad-CAM of one photo at the default layer, median ms of {args.rounds} x "
          f"{args.repeats}, {args.threads} threads each; peak RSS of each worker process "
          f"({time.time() - began:.0f} s in all); vggnp's {kernels}\n")
    print("| model | input | layer | vggnp ms | TF ms | vggnp / TF | vggnp MB | TF MB | "
          "MB ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        ours, theirs = results[name, "vggnp"], results[name, "tf"]
        a, b = np.median(ours["ms"]), np.median(theirs["ms"])
        print(f"| {name} | {MODELS[name]} | {layers[name]} | {a:.0f} | {b:.0f} | {a / b:.2f} | "
              f"{ours['rss']:.0f} | {theirs['rss']:.0f} | {ours['rss'] / theirs['rss']:.2f} |")
    gbs = depthwise_bandwidth()
    print(f"\nDepthwiseConv2D forward, (1, 56, 56, 144) 3x3: {gbs['depthwise']:.1f} GB/s; "
          f"an array copy of its input: {gbs['copy']:.1f} GB/s "
          f"({gbs['depthwise'] / gbs['copy']:.0%} of it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
