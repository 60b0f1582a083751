"""Where VGG16's input gradient spends its time, layer by layer, inside the pass: each
layer's forward and backward timed as the network runs them (not alone on a warm cache),
and the page faults of a pass, as ``python -m vggnp.cam`` runs it.

    python -m scripts.layer_times [--repeats 9] [--weights W]

The pass is ``model.forward(x)`` then ``model.backward(onehot, start="predictions",
from_logits=True)``: the bench's "gradient of a logit w.r.t. the input"
(``scripts/bench.py``). Each layer's ``forward`` and ``backward`` is wrapped with a timer
(a few microseconds a call), in a worker process with the commands' settings (threads,
heap, NumPy's huge pages). Prints a Markdown table of medians and the minor page faults a
pass (``getrusage``). Never asserted in a test.
"""

import argparse
import json
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


def table(found):
    lines = ["| layer | forward ms | backward ms |", "|---|---|---|"]
    sums = [0.0, 0.0]
    for name in found["layers"]:
        f, b = found["ms"].get(f"{name} forward", 0.0), found["ms"].get(f"{name} backward", 0.0)
        sums = [sums[0] + f, sums[1] + b]
        lines.append(f"| {name} | {f:.1f} | {b:.1f} |")
    lines.append(f"| all layers | {sums[0]:.1f} | {sums[1]:.1f} |")
    lines.append(f"\nThe whole pass: {found['pass_ms']:.1f} ms; minor page faults a pass: "
                 f"{found['faults']}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--weights", help="a VGG16 .h5 file (default: realistic random weights)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.weights, args.repeats)))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        weights = args.weights or random_weights_file(folder)
        found = worker_json("scripts.layer_times", ["--weights", weights, "--repeats",
                                                    str(args.repeats)], "vggnp")
    print(f"VGG16's input gradient, batch 1, medians of {args.repeats} passes "
          "(`python -m scripts.layer_times`)\n")
    print(table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
