"""Score-CAM on VGG16, vggnp beside tf-keras-vis (issue #28.1), and the forward pass's
throughput by batch size, in one run.

    python -m scripts.scorecam_bench [--rounds 2]

Score-CAM is hundreds of forward passes of masked copies of the photo: a question of
images per second. The first table times the forward pass of VGG16 (realistic random
weights) at batch 1, 8, 32 and 64, as one batch and with the layers up to block4_pool one
image at a time (``fast.batch_split.forward_split``, what Score-CAM runs), in a worker
process of its own. vggnp's workers run with the commands' threads, heap and NumPy
settings (``as_the_commands``; before 2026-12-05 the library's defaults) and, since
the BLAS change of 2026-12-05 (docs/speed.md), in a second thread as the command. The second
times Score-CAM of ``examples/chelsea.jpg`` at block5_conv3, batches of 32, each in a fresh
worker process (vggnp: ``score_cam`` with ``skip_dead=False``, every channel run, as
tf-keras-vis does: 512 forward passes; tf-keras-vis 0.8.7: ``Scorecam`` with
``CategoricalScore`` of the same class, ``max_N=None``, intra-op threads TensorFlow's
default), alternating within each round, each after a warm-up. Medians; never asserted in
a test.

Needs ``pip install tf-keras-vis==0.8.7`` (not in the test extra). That wheel also
installs a top-level package named ``tests``, which then shadows this repository's
``tests/`` folder (a namespace package) for ``scripts`` that import from it, such as
``scripts.gallery``: uninstall it after the bench, or run the bench in a venv of its own.
"""

import argparse
import json
import sys
import tempfile
import time

import numpy as np

from scripts.harness import PHOTO, in_a_second_thread, random_weights_file, worker_json

LAYER = "block5_conv3"


def as_the_commands():
    """Threads and heap as ``python -m vggnp.cam`` sets them (``cli.apply_process_settings``;
    NumPy's huge pages: ``harness.worker_json``)."""
    from vggnp.cli import apply_process_settings
    apply_process_settings(argparse.Namespace(threads=None))


def worker_throughput(weights):
    """{"batch way": images/s} of the full forward pass, as one batch or split, in a
    second thread (``harness.in_a_second_thread``: as the command runs its passes)."""
    as_the_commands()
    return in_a_second_thread(lambda: throughput(weights))


def throughput(weights, batches=(1, 8, 32, 64), repeats=3):
    import vggnp
    from vggnp.fast.batch_split import forward_split
    model, x = vggnp.VGG16.load(weights), vggnp.load_image(PHOTO)
    ways = {"one batch": model.forward, "split": lambda b: forward_split(model, b)}
    found = {}
    for n in batches:
        batch = np.repeat(x, n, axis=0)
        for way, forward in ways.items():
            forward(batch)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                forward(batch)
                times.append(time.perf_counter() - start)
            found[f"{n} {way}"] = n / float(np.median(times))
    return found


def worker_vggnp(weights):
    """Score-CAM's seconds, in a second thread, as the command runs it."""
    as_the_commands()
    return in_a_second_thread(lambda: scorecam_seconds(weights))


def scorecam_seconds(weights):
    import vggnp
    from vggnp.methods.explain import score_cam
    model, x = vggnp.VGG16.load(weights), vggnp.load_image(PHOTO)
    c = int(model.predict(x).argmax())
    score_cam(model, x, LAYER, [c], batch_size=32, skip_dead=False)  # warm-up
    start = time.perf_counter()
    score_cam(model, x, LAYER, [c], batch_size=32, skip_dead=False)
    return {"class": c, "s": time.perf_counter() - start}


def worker_tf(weights):
    import tensorflow as tf
    import keras
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore
    import vggnp
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = keras.applications.VGG16(weights=None)
    for name, pair in vggnp.read_vgg16_weights(weights).items():
        model.get_layer(name).set_weights(list(pair))
    x = vggnp.load_image(PHOTO)
    c = int(model.predict(x, verbose=0).argmax())
    scorecam = Scorecam(model)
    scorecam(CategoricalScore([c]), x, penultimate_layer=LAYER, batch_size=32)  # warm-up
    start = time.perf_counter()
    scorecam(CategoricalScore([c]), x, penultimate_layer=LAYER, batch_size=32)
    return {"class": c, "s": time.perf_counter() - start}


def measure(kind, weights):
    return worker_json("scripts.scorecam_bench", [kind, "--weights", weights], kind)


WORKERS = {"throughput": worker_throughput, "vggnp": worker_vggnp, "tf": worker_tf}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--weights", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.weights)))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        weights = random_weights_file(folder)
        rates = measure("throughput", weights)
        times = {"vggnp": [], "tf": []}
        for _ in range(args.rounds):
            for kind in times:
                found = measure(kind, weights)
                times[kind].append(found["s"])
    print("VGG16 forward pass, images/s (median of 3), one batch or split "
          "(up to block4_pool one image at a time)\n")
    print("| batch | one batch | split |\n|---|---|---|")
    for n in sorted({int(key.split()[0]) for key in rates}):
        print(f"| {n} | {rates[f'{n} one batch']:.2f} | {rates[f'{n} split']:.2f} |")
    ours, theirs = np.median(times["vggnp"]), np.median(times["tf"])
    print(f"\nScore-CAM of one photo at {LAYER}, 512 channels, batches of 32, "
          f"median s of {args.rounds}\n")
    print("| vggnp s | tf-keras-vis s | vggnp / tf-keras-vis |\n|---|---|---|")
    print(f"| {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
