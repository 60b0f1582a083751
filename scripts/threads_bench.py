"""Grad-CAM time of vggnp and TensorFlow with 1 and 2 threads, and vggnp with its default
(``cli.apply_process_settings``: the BLAS on the cores other work does not keep busy, the block
threads on every core), on an idle machine and with one busy process per core, in one run
(issues #26.6 and #28.2).

    python -m scripts.threads_bench [--repeats 5] [--rounds 2]

Each measure is a fresh worker process (vggnp with ``--threads``' limit: the BLAS's and
its own block threads, ``use_threads``; "2, BLAS only": two BLAS threads and no block
threads, as before ``fast/blocks.py``; TensorFlow with its intra-op pool set to the same
count), timing VGG16 Grad-CAM of one photo (realistic random weights) ``--repeats`` times
after a warm-up; the conditions alternate within each round, so that a slow spell of the
machine hits them alike. "busy" starts one spinning
Python process per core (``fast.threads.cores()``) before the worker and stops them after.
Prints a Markdown table of medians (ms) and the ratios. Never asserted in a test.
"""

import argparse
import json
import subprocess
import sys
import tempfile

import numpy as np

from scripts.harness import (PHOTO, in_a_second_thread, random_weights_file, time_interleaved,
                             worker_json)
from vggnp.fast.threads import cores

SPIN = "while True: pass"


def worker_vggnp(weights, threads, repeats):
    """threads 0: the command line's default (``cli.apply_process_settings``: BLAS on the free
    cores, chosen at the start; the block threads on every core); -n: n BLAS threads and
    no block threads."""
    import argparse
    import vggnp
    from vggnp.cli import apply_process_settings
    from vggnp.fast.threads import use_threads
    if threads < 0:
        threads = -threads
        use_threads(threads, blocks=1)
    else:
        threads = apply_process_settings(argparse.Namespace(threads=threads or None))
    model, x = vggnp.VGG16.load(weights), vggnp.load_image(PHOTO)
    return {"threads": threads, "ms": in_a_second_thread(lambda: time_interleaved(  # as the command
        {"gradcam": lambda: vggnp.grad_cam(model, x)}, repeats))["gradcam"]}


def worker_tf(weights, threads, repeats):
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    import vggnp
    model = keras.applications.VGG16(weights=None)
    for name, pair in vggnp.read_vgg16_weights(weights).items():
        model.get_layer(name).set_weights(list(pair))
    x = tf.constant(vggnp.load_image(PHOTO))
    grad_model = keras.Model(model.inputs, [model.get_layer("block5_conv3").output,
                                            model.get_layer("fc2").output])
    head = model.get_layer("predictions")

    @tf.function
    def gradcam(x):
        with tf.GradientTape() as tape:
            conv, fc2 = grad_model(x)
            logits = tf.matmul(fc2, head.kernel) + head.bias
            score = logits[:, tf.argmax(logits[0])]
        pooled = tf.reduce_mean(tape.gradient(score, conv), axis=(0, 1, 2))
        heatmap = tf.maximum(conv[0] @ pooled[..., None], 0)
        return heatmap / tf.reduce_max(heatmap)
    return {"threads": threads,
            "ms": time_interleaved({"gradcam": lambda: gradcam(x).numpy()}, repeats)["gradcam"]}


def measure(kind, weights, threads, repeats, busy):
    """One worker's times (ms), with ``busy`` spinning processes beside it."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(busy)]
    try:
        return worker_json("scripts.threads_bench", [kind, "--weights", weights, "--threads",
                                                     str(threads), "--repeats", str(repeats)],
                           kind)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--worker", choices=["vggnp", "tf"], help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        work = worker_vggnp if args.worker == "vggnp" else worker_tf
        print(json.dumps(work(args.weights, args.threads, args.repeats)))
        return 0
    conditions = [(kind, threads, load) for load in ("idle", "busy") for threads in (1, 2)
                  for kind in ("vggnp", "tf")]
    conditions += [("vggnp", t, load) for load in ("idle", "busy") for t in (0, -2)]
    times, chosen = {c: [] for c in conditions}, {c: [] for c in conditions}
    with tempfile.TemporaryDirectory() as folder:
        weights = random_weights_file(folder)
        for _ in range(args.rounds):
            for kind, threads, load in conditions:
                busy = cores() if load == "busy" else 0
                found = measure(kind, weights, threads, args.repeats, busy)
                times[kind, threads, load] += found["ms"]
                chosen[kind, threads, load].append(found["threads"])
    print(f"Grad-CAM of one 224x224 photo, VGG16, median ms of {args.rounds} x "
          f"{args.repeats}; {cores()} cores; busy = one spinning process per core\n")
    print_table(times, chosen)
    return 0


def print_table(times, chosen):
    """The Markdown table: per load, vggnp and TF with 1 and 2 threads, vggnp's 2 BLAS
    threads alone and its default (TF with 2 beside both)."""
    print("| load | threads | vggnp ms | TF ms | vggnp / TF | vggnp vs its 1 thread |")
    print("|---|---|---|---|---|---|")
    for load in ("idle", "busy"):
        one = np.median(times["vggnp", 1, load])
        for threads in (1, 2):
            ours, theirs = (np.median(times[k, threads, load]) for k in ("vggnp", "tf"))
            print(f"| {load} | {threads} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f} | "
                  f"{ours / one:.2f} |")
        theirs = np.median(times["tf", 2, load])
        picked = "/".join(str(n) for n in chosen["vggnp", 0, load])
        for threads, name in ((-2, "2, BLAS only"), (0, f"default (chose {picked}; TF: 2)")):
            ours = np.median(times["vggnp", threads, load])
            print(f"| {load} | {name} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f} | "
                  f"{ours / one:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
