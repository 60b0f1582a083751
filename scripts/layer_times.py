"""Where VGG16's input gradient spends its time, layer by layer, inside the pass: each
layer's forward and backward timed as the network runs them (not alone on a warm cache),
and the page faults of a pass, as ``python -m vggnp.cam`` runs it.

    python -m scripts.layer_times [--repeats 9] [--weights W] [--tf]

The pass is ``model.forward(x)`` then ``model.backward(onehot, start="predictions",
from_logits=True)``: the bench's "gradient of a logit w.r.t. the input"
(``scripts/bench.py``). Each layer's ``forward`` and ``backward`` is wrapped with a timer
(a few microseconds a call), in a worker process with the commands' settings (threads,
heap, NumPy's huge pages). Prints a Markdown table of medians and the minor page faults a
pass (``getrusage``). Never asserted in a test.

With --tf, TensorFlow's same pass (``harness.tf_vgg16_passes``' input_grad, tf.function)
beside it, from TensorFlow's profiler in a process of its own: each op's time summed over
the profiled passes and put to its layer by its name (``block1_conv2_1/Relu``: the fused
conv, bias and ReLU; under ``gradient_tape/``: the backward's ops, Conv2DBackpropInput,
ReluGrad, MaxPoolGrad, MatMul; the head's product outside the model: "predictions"),
averaged a pass. Every op event lies on the executor's "tf_Compute" threads (the calling
thread's events are the enclosing calls, "EagerLocalExecute: ..."); TensorFlow's graph
has no forward product of the head (the logit's gradient does not need its value), so
its "predictions" forward is 0. The profiler adds its own time to each op: compare
TensorFlow's rows with each other, and its total with its own unprofiled pass (printed),
not single ms.
"""

import argparse
import json
import os
import re
import resource
import sys
import tempfile
import time

import numpy as np

from scripts.harness import PHOTO, random_weights_file, worker_json


def timed(layer, times):
    """Wrap the layer's forward and backward (on the instance) to add their seconds to
    times[(name, "forward" or "backward")]."""
    for way in ("forward", "backward"):
        call = getattr(layer, way)

        def timing(*args, _call=call, _key=(layer.name, way), **kwargs):
            start = time.perf_counter()
            out = _call(*args, **kwargs)
            times.setdefault(_key, []).append(time.perf_counter() - start)
            return out
        setattr(layer, way, timing)


def worker(weights, repeats):
    import vggnp
    from vggnp.cli import apply_process_settings
    apply_process_settings(argparse.Namespace(threads=None))
    model, x = vggnp.VGG16.load(weights), vggnp.load_image(PHOTO)
    onehot = np.zeros((1, 1000), np.float32)
    onehot[0, 0] = 1
    times, passes, faults = {}, [], []
    for layer in model.layers:
        timed(layer, times)
    for repeat in range(repeats + 1):
        before, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        model.forward(x)
        model.backward(onehot, start="predictions", from_logits=True)
        passes.append(time.perf_counter() - start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        if repeat == 0:  # the warm-up
            times.clear()
    ms = {f"{name} {way}": 1000 * float(np.median(t)) for (name, way), t in times.items()}
    return {"layers": [layer.name for layer in model.layers], "ms": ms,
            "pass_ms": 1000 * float(np.median(passes[1:])),
            "faults": int(np.median(faults[1:]))}


def tf_worker(weights, repeats, layers):
    """TensorFlow's input gradient: {"ms": {"<layer> forward|backward": ms a pass, its ops
    put to ``layers`` by name (``tf_layer``)}, "pass_ms": the median of ``repeats``
    unprofiled passes}."""
    import glob
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    from scripts.harness import tf_vgg16_passes
    passes = tf_vgg16_passes(weights)
    x, input_grad = passes["x"], passes["input_grad"]
    input_grad(x).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        input_grad(x).numpy()
        times.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as logs:
        tf.profiler.experimental.start(logs)
        for _ in range(repeats):
            input_grad(x).numpy()
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(os.path.join(logs, "**", "*.xplane.pb"), recursive=True)[0],
                  "rb") as f:
            space.ParseFromString(f.read())
    ms = {}
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            for event in (line.events if line.name.startswith("tf_Compute") else ()):
                key = tf_layer(names.get(event.metadata_id, ""), layers)
                if key:
                    ms[key] = ms.get(key, 0.0) + event.duration_ps / 1e9 / repeats
    return {"ms": ms, "pass_ms": 1000 * float(np.median(times))}


def tf_layer(op, layers):
    """"<layer> forward" or "<layer> backward" for a TensorFlow op's profiler name
    ("gradient_tape/functional_1/block1_pool_1/MaxPool2d/MaxPoolGrad:MaxPoolGrad"), the
    layer one of ``layers`` (VGG16's names; Keras names a layer's call "<layer>_1"), or
    "other ..." for an op of no layer there (the head's product outside the model is
    "predictions"); None for what is not an op (the executor's own events,
    "ExecutorState::Process" and those with no ":" in their names)."""
    if ":" not in op or "::" in op:
        return None
    path = op.split(":")[0].split("/")
    way = "backward" if path[0] == "gradient_tape" else "forward"
    path = path[1:] if way == "backward" else path
    if not (path[0].startswith("functional") and len(path) > 1):
        return f"predictions {way}"
    call = path[1]
    for name in (call, re.sub(r"_[0-9]+$", "", call)):
        if name in layers:
            return f"{name} {way}"
    return f"other {way}"


def table(found, theirs=None):
    """Markdown: vggnp's ms a layer (and TensorFlow's beside them, from ``tf_worker``)."""
    tf = theirs is not None
    lines = ["| layer | forward ms | backward ms |" + (" TF forward ms | TF backward ms |"
                                                        if tf else ""),
             "|---|---|---|" + ("---|---|" if tf else "")]
    keys = [(who, way) for who in ["vggnp"] + (["tf"] if tf else [])
            for way in ("forward", "backward")]
    sources = {"vggnp": found["ms"], "tf": theirs["ms"] if tf else {}}
    sums = dict.fromkeys(keys, 0.0)
    others = [name for name in ("other",) if any(
        key.startswith("other ") for source in sources.values() for key in source)]
    for name in found["layers"] + others:
        row = [sources[who].get(f"{name} {way}", 0.0) for who, way in keys]
        sums = {key: sums[key] + value for key, value in zip(keys, row)}
        lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
    lines.append("| all layers | " + " | ".join(f"{v:.1f}" for v in sums.values()) + " |")
    lines.append(f"\nThe whole pass: {found['pass_ms']:.1f} ms; minor page faults a pass: "
                 f"{found['faults']}")
    if tf:
        lines.append(f"TensorFlow's whole pass, unprofiled: {theirs['pass_ms']:.1f} ms")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--weights", help="a VGG16 .h5 file (default: realistic random weights)")
    p.add_argument("--tf", action="store_true", help="TensorFlow's ops beside vggnp's layers")
    p.add_argument("--worker", choices=["vggnp", "tf"], help=argparse.SUPPRESS)
    p.add_argument("--layers", help=argparse.SUPPRESS)  # the tf worker's: vggnp's names
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.weights, args.repeats) if args.worker == "vggnp" else
                         tf_worker(args.weights, args.repeats, args.layers.split(","))))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        weights = args.weights or random_weights_file(folder)
        options = ["--weights", weights, "--repeats", str(args.repeats)]
        found = worker_json("scripts.layer_times", ["vggnp", *options], "vggnp")
        theirs = worker_json("scripts.layer_times", ["tf", *options, "--layers",
                                                     ",".join(found["layers"])],
                             "tf") if args.tf else None
    print(f"VGG16's input gradient, batch 1, medians of {args.repeats} passes"
          + (" (TensorFlow: means of the profiled passes)" if args.tf else "")
          + f" (`python -m scripts.layer_times{' --tf' if args.tf else ''}`)\n")
    print(table(found, theirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
