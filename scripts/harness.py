"""What every benchmark under scripts/ shares: where the repository and the photo are,
timing tasks in turn, peak memory, a worker process's JSON, realistic random VGG16
weights in a file, and the machine a run was measured on."""

import datetime
import json
import os
import platform
import subprocess
import sys
import threading
import time

import numpy as np

from vggnp.startup import COMMAND_ENVIRONMENT

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PHOTO = os.path.join(ROOT, "examples", "chelsea.jpg")


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


def in_a_second_thread(function):
    """function()'s result, computed in a thread of its own, as ``python -m vggnp.cam``
    runs its passes (the stream's worker thread; the main thread set the threads first).
    A difference that passes in the main thread never showed: threadpoolctl 3.8 had
    dropped the block threads' one-BLAS-thread setting there (``vggnp/fast/blas_threads.py``).
    Its exception is raised here."""
    done = {}

    def run():
        try:
            done["result"] = function()
        except BaseException as e:  # noqa: B036 - raised again in the caller's thread
            done["error"] = e
    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    if "error" in done:
        raise done["error"]
    return done["result"]


def peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker_json(module, argv, kind, extra_env=None):
    """What a benchmark's worker process prints last, as JSON: ``python -m module --worker
    *argv`` from the repository, TensorFlow's log quiet, NumPy as vggnp's commands set it
    (``startup.COMMAND_ENVIRONMENT``, unless this environment sets it); SystemExit with
    the end of its stderr if it fails. kind: the worker's name in that message;
    extra_env: more environment variables."""
    env = {**COMMAND_ENVIRONMENT, **os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           **(extra_env or {})}
    done = subprocess.run([sys.executable, "-m", module, "--worker", *argv],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def numpy_huge_pages():
    """"on" or "off": whether this process's NumPy asks for huge pages for its large arrays
    (vggnp's commands turn them off: ``startup.COMMAND_ENVIRONMENT``)."""
    core = np._core if hasattr(np, "_core") else np.core
    return "on" if core.multiarray._get_madvise_hugepage() else "off"


def random_weights_file(folder):
    from scripts.export_keras_weights import write_h5
    from vggnp.nn.random_init import random_vgg16_weights
    path = os.path.join(folder, "vgg16_random.h5")
    write_h5(path, random_vgg16_weights(seed=0))
    return path


def summary(samples):
    return {"median": float(np.median(samples)), "min": float(np.min(samples)),
            "max": float(np.max(samples))}


def cpu_description():
    """'<model name> (AVX-512)' from /proc/cpuinfo, or what platform knows elsewhere."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not flags:
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    return f"{model} ({isa})" if isa else model


def machine():
    """When and on what the benchmark ran (the parts known to this process)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cpus = f"{os.cpu_count()} logical CPUs"
    if usable and usable != os.cpu_count():
        cpus += f", {usable} usable by this process"
    return {"date": datetime.date.today().isoformat(), "cpu": cpu_description(), "cpus": cpus,
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "tf_onednn": ("TF_ENABLE_ONEDNN_OPTS=" + os.environ["TF_ENABLE_ONEDNN_OPTS"]
                          if "TF_ENABLE_ONEDNN_OPTS" in os.environ else "its default oneDNN path")}


def tf_vgg16_passes(weights):
    """TensorFlow's passes that the benchmarks time against vggnp's, on
    ``keras.applications.VGG16`` with the VGG16 weights of the .h5 file ``weights`` and the
    photo: {"forward", "gradcam" (tf.function), "gradcam_kerasio" (eager, as the keras-io
    example runs it), "input_grad" (d logit 0 / d input, tf.function): each a function of
    the input, "x": the photo's input tensor}."""
    import tensorflow as tf
    import keras

    import vggnp
    model = keras.applications.VGG16(weights=None)
    for name, pair in vggnp.read_vgg16_weights(weights).items():
        model.get_layer(name).set_weights(list(pair))
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

    return {"forward": tf.function(lambda x: model(x)), "gradcam": tf.function(gradcam_eager),
            "gradcam_kerasio": gradcam_eager, "input_grad": input_grad,
            "x": tf.constant(vggnp.load_image(PHOTO))}
