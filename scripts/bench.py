"""Benchmark vggnp against TensorFlow on this machine, in one run.

    python -m scripts.bench [--weights W.h5] [--rounds 2] [--repeats 5] [--json]

vggnp and TensorFlow run alternately, each in its own process (OpenBLAS threads that keep
spinning after a GEMM would slow TensorFlow in the same process), on the same photo and
the same weights (realistic random ones unless --weights is given). Prints medians and
min-max of each measure, the ratios the targets are stated in, achieved GFLOP/s per conv
layer against a measured sgemm rate, peak RSS, the BLAS library and its thread count.
Timings need an otherwise idle machine; they are never asserted in tests.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PHOTO = os.path.join(ROOT, "examples", "chelsea.jpg")
TARGETS = [  # (name, measure, target, stretch)
    ("Grad-CAM vs TF tf.function", "gradcam_vs_tf", 1.3, 1.0),
    ("Grad-CAM vs keras-io (eager)", "gradcam_vs_kerasio", 0.4, 0.3),
    ("input gradient / forward", "input_grad_vs_forward", 2.2, 2.0),
    ("batch 8 per image / batch 1", "batch8_vs_batch1", 0.9, 0.7),
    ("peak RSS, batch 1 (MB)", "rss_mb", 900, 750),
    ("vggnp.cam whole process (s)", "cli_s", 1.0, 0.7),
]


def timeit(fn, repeats):
    """Run fn once to warm up, then ``repeats`` times; returns the times in ms."""
    return time_interleaved({"fn": fn}, repeats)["fn"]


def time_interleaved(tasks, repeats):
    """{name: fn} -> {name: [ms, ...]}: each fn warmed up once, then the tasks timed in
    turn, ``repeats`` rounds, so that a slow spell of the machine hits all of them alike."""
    for fn in tasks.values():
        fn()
    times = {name: [] for name in tasks}
    for _ in range(repeats):
        for name, fn in tasks.items():
            start = time.perf_counter()
            fn()
            times[name].append(1000 * (time.perf_counter() - start))
    return times


def peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker_vggnp(weights, repeats):
    import vggnp
    from vggnp.layers import Conv2D
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
    out["sgemm_gflops"] = 2 * m * k * n / np.median(timeit(lambda: a_ @ b_, 3)) / 1e6
    try:
        from threadpoolctl import threadpool_info
        out["blas"] = [f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
                       for i in threadpool_info() if i["user_api"] == "blas"]
    except ImportError:
        out["blas"] = ["unknown (pip install threadpoolctl)"]
    return out


def worker_tf(weights, repeats):
    import tensorflow as tf
    import keras

    import vggnp
    model = keras.applications.VGG16(weights=None)
    for name, pair in vggnp.read_vgg16_weights(weights).items():
        model.get_layer(name).set_weights(list(pair))
    x = tf.constant(vggnp.load_image(PHOTO))
    layer = model.get_layer("block5_conv3")
    grad_model = keras.Model(model.inputs, [layer.output, model.get_layer("fc2").output])
    head = model.get_layer("predictions")

    def gradcam_eager(x):
        with tf.GradientTape() as tape:
            conv, fc2 = grad_model(x)
            logits = tf.matmul(fc2, head.kernel) + head.bias
            score = logits[:, tf.argmax(logits[0])]
        grads = tape.gradient(score, conv)
        pooled = tf.reduce_mean(grads, axis=(0, 1, 2))
        heatmap = tf.maximum(conv[0] @ pooled[..., None], 0)
        return heatmap / tf.reduce_max(heatmap)

    @tf.function
    def input_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            fc2 = grad_model(x)[1]
            score = (tf.matmul(fc2, head.kernel) + head.bias)[:, 0]
        return tape.gradient(score, x)

    forward = tf.function(lambda x: model(x))
    gradcam_fn = tf.function(gradcam_eager)
    out = time_interleaved({"forward": lambda: forward(x).numpy(),
                            "gradcam": lambda: gradcam_fn(x).numpy(),
                            "gradcam_kerasio": lambda: gradcam_eager(x).numpy(),
                            "input_grad": lambda: input_grad(x).numpy()}, repeats)
    out.update(rss_mb=peak_rss_mb(), version=tf.__version__)
    return out


def run_worker(kind, weights, repeats):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-m", "scripts.bench", "--worker", kind,
                             "--weights", weights, "--repeats", str(repeats)],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_cli(weights, repeats):
    with tempfile.TemporaryDirectory() as out:
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "vggnp.cam", PHOTO, "--weights", weights,
                            "--out", out, "--overwrite"], check=True, capture_output=True, cwd=ROOT)
            times.append(time.perf_counter() - start)
    return times[1:]  # the first run warms the page cache


def random_weights_file(folder):
    from scripts.export_keras_weights import write_h5
    from vggnp.random_init import random_vgg16_weights
    path = os.path.join(folder, "vgg16_random.h5")
    write_h5(path, random_vgg16_weights(seed=0))
    return path


def summary(samples):
    return {"median": float(np.median(samples)), "min": float(np.min(samples)),
            "max": float(np.max(samples))}


def main():
    p = argparse.ArgumentParser(description="vggnp vs TensorFlow benchmark")
    p.add_argument("--weights", help="a VGG16 .h5 file (default: realistic random weights)")
    p.add_argument("--rounds", type=int, default=2, help="alternations vggnp/TF (default 2)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per round (default 5)")
    p.add_argument("--no-tf", action="store_true", help="skip TensorFlow")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--worker", choices=["vggnp", "tf"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        fn = worker_vggnp if args.worker == "vggnp" else worker_tf
        print(json.dumps(fn(args.weights, args.repeats)))
        return

    with tempfile.TemporaryDirectory() as folder:
        weights = args.weights or random_weights_file(folder)
        runs = {"vggnp": [], "tf": []}
        has_tf = importlib.util.find_spec("tensorflow") is not None  # not imported here
        kinds = ["vggnp", "tf"] if has_tf and not args.no_tf else ["vggnp"]
        for _ in range(args.rounds):
            for kind in kinds:
                runs[kind].append(run_worker(kind, weights, args.repeats))
        cli = time_cli(weights, 3)
    report = collect(runs, cli)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)


def collect(runs, cli):
    def merged(kind, key):
        return [t for r in runs[kind] for t in r[key]] if runs[kind] else []

    np_ = {k: summary(merged("vggnp", k)) for k in
           ("forward", "gradcam", "input_grad", "gradcam_batch1_paired",
            "gradcam_batch8_per_image")}
    tf_ = {k: summary(merged("tf", k)) for k in
           ("forward", "gradcam", "gradcam_kerasio", "input_grad")} if runs["tf"] else {}
    last = runs["vggnp"][-1]
    ratios = {"input_grad_vs_forward": np_["input_grad"]["median"] / np_["forward"]["median"],
              # against the batch-1 runs timed in turn with the batch-8 ones
              "batch8_vs_batch1": np_["gradcam_batch8_per_image"]["median"]
              / np_["gradcam_batch1_paired"]["median"],
              "rss_mb": max(r["rss_mb"] for r in runs["vggnp"]),
              "cli_s": float(np.median(cli))}
    if tf_:
        ratios["gradcam_vs_tf"] = np_["gradcam"]["median"] / tf_["gradcam"]["median"]
        ratios["gradcam_vs_kerasio"] = np_["gradcam"]["median"] / tf_["gradcam_kerasio"]["median"]
    return {"machine": f"{os.cpu_count()} CPUs", "blas": last["blas"],
            "sgemm_gflops": last["sgemm_gflops"], "vggnp_ms": np_, "tf_ms": tf_,
            "tf_version": runs["tf"][-1]["version"] if runs["tf"] else None,
            "tf_rss_mb": max(r["rss_mb"] for r in runs["tf"]) if runs["tf"] else None,
            "conv_layers": last["conv_layers"], "ratios": ratios, "cli_s": summary(cli)}


def print_table(r):
    print(f"machine: {r['machine']}; BLAS: {', '.join(r['blas'])}; "
          f"sgemm {r['sgemm_gflops']:.0f} GFLOP/s; TensorFlow {r['tf_version']}")
    print(f"\n{'measure (ms, batch 1)':<28}{'vggnp median (min-max)':>26}{'TF median (min-max)':>26}")
    rows = [("forward", "forward", "forward"), ("Grad-CAM", "gradcam", "gradcam"),
            ("Grad-CAM, keras-io eager", None, "gradcam_kerasio"),
            ("gradient to the input", "input_grad", "input_grad"),
            ("Grad-CAM batch 8, per image", "gradcam_batch8_per_image", None)]
    for label, a, b in rows:
        cells = []
        for side, key in ((r["vggnp_ms"], a), (r["tf_ms"], b)):
            s = side.get(key) if key else None
            cells.append(f"{s['median']:.1f} ({s['min']:.0f}-{s['max']:.0f})" if s else "-")
        print(f"{label:<28}{cells[0]:>26}{cells[1]:>26}")
    print(f"\n{'target':<34}{'measured':>10}{'target':>9}{'stretch':>9}")
    for label, key, target, stretch in TARGETS:
        value = r["ratios"].get(key)
        shown = "-" if value is None else (f"{value:.0f}" if key == "rss_mb" else f"{value:.2f}")
        mark = "" if value is None else (" ok" if value <= target else " MISSED")
        print(f"{label:<34}{shown:>10}{target:>9}{stretch:>9}{mark}")
    print(f"\n{'conv layer':<16}{'ms':>8}{'GFLOP/s':>9}")
    for name, c in r["conv_layers"].items():
        print(f"{name:<16}{c['ms']:>8.1f}{c['gflops']:>9.0f}")
    if r["tf_rss_mb"]:
        print(f"\npeak RSS: vggnp {r['ratios']['rss_mb']:.0f} MB, TF {r['tf_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
