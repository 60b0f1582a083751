"""Benchmark vggnp against TensorFlow on this machine, in one run.

    python -m scripts.bench [--weights W.h5] [--rounds 2] [--repeats 5] [--no-tf] [--json]
    python -m scripts.bench --quick     # one round of one run: checks that it works, no more

vggnp and TensorFlow run alternately, each in its own process (OpenBLAS threads that keep
spinning after a GEMM would slow TensorFlow in the same process), on the same photo and
the same weights (realistic random ones unless --weights is given). Prints first the
README's speed table in Markdown -- when and on what it was measured (CPU model, cores,
BLAS library, kernels and threads, numpy and TensorFlow versions), then medians, each
ratio computed from the numbers in the table itself -- and then the details: min-max of
each measure, the stretch targets, achieved GFLOP/s per conv layer against a measured
sgemm rate. Timings need an otherwise idle machine; they are never asserted in tests.
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PHOTO = os.path.join(ROOT, "examples", "chelsea.jpg")
TARGETS = [  # (name, measure, target, stretch): issue #18's targets
    ("forward vs TF tf.function", "forward_vs_tf", 1.0, 0.9),
    ("Grad-CAM vs TF tf.function", "gradcam_vs_tf", 1.0, 0.9),
    ("Grad-CAM vs keras-io (eager)", "gradcam_vs_kerasio", 0.4, 0.3),
    ("input gradient vs TF tf.function", "input_grad_vs_tf", 1.0, 0.9),
    ("input gradient / forward", "input_grad_vs_forward", 2.2, 2.0),
    ("batch 8 per image / batch 1", "batch8_vs_batch1", 0.9, 0.7),
    ("peak RSS, batch 1 (MB)", "rss_mb", 750, 700),
    ("vggnp.cam whole process (s)", "cli_s", 0.7, 0.5),
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
    from vggnp.cli import apply_threads
    from vggnp.fast.blocks import BLOCKS
    from vggnp.fast.layers import FastConv2D as Conv2D
    # Threads as the commands set them (the library alone leaves the BLAS's default and
    # no block threads): what a user of `python -m vggnp.cam` gets.
    blas = apply_threads(argparse.Namespace(threads=None))
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
    out["numpy"] = np.__version__
    out["sgemm_gflops"] = 2 * m * k * n / np.median(timeit(lambda: a_ @ b_, 3)) / 1e6
    try:
        from threadpoolctl import threadpool_info
        out["blas"] = [f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads"
                       + (f", {i['architecture']} kernels)" if i.get("architecture") else ")")
                       for i in threadpool_info() if i["user_api"] == "blas"]
    except ImportError:
        out["blas"] = ["unknown (pip install threadpoolctl)"]
    out["threads"] = f"{blas} BLAS thread(s) and {BLOCKS.count} block thread(s), as the commands"
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


def worker_json(module, argv, kind, extra_env=None):
    """What a benchmark's worker process prints last, as JSON: ``python -m module --worker
    *argv`` from the repository, TensorFlow's log quiet; SystemExit with the end of its
    stderr if it fails. kind: the worker's name in that message; extra_env: more
    environment variables."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3", **(extra_env or {}))
    done = subprocess.run([sys.executable, "-m", module, "--worker", *argv],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_worker(kind, weights, repeats, extra_env=None):
    """One worker process's measures (JSON); extra_env: more environment variables (the
    GEMM switch of ``scripts.gemm_ab``)."""
    return worker_json("scripts.bench", [kind, "--weights", weights, "--repeats",
                                         str(repeats)], kind, extra_env)


def time_cli(weights, repeats):
    # With the bytecode cache that pip writes at install time: an editable checkout under
    # PYTHONDONTWRITEBYTECODE (set on this VM) recompiles vggnp's 66 modules every run,
    # ~75 ms that no installed copy pays.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as out:
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "vggnp.cam", PHOTO, "--weights", weights,
                            "--out", out, "--overwrite"], check=True, capture_output=True,
                           cwd=ROOT, env=env)
            times.append(time.perf_counter() - start)
    return times[1:]  # the first run warms the page cache and writes the bytecode cache


def random_weights_file(folder):
    from scripts.export_keras_weights import write_h5
    from vggnp.nn.random_init import random_vgg16_weights
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
    p.add_argument("--quick", action="store_true",
                   help="1 round of 1 run, 1 whole-process run: to see that it works")
    p.add_argument("--no-tf", action="store_true", help="skip TensorFlow")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--worker", choices=["vggnp", "tf"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        fn = worker_vggnp if args.worker == "vggnp" else worker_tf
        print(json.dumps(fn(args.weights, args.repeats)))
        return
    if args.quick:
        args.rounds = args.repeats = 1
    cli_runs = 1 if args.quick else 3

    with tempfile.TemporaryDirectory() as folder:
        weights = args.weights or random_weights_file(folder)
        runs = {"vggnp": [], "tf": []}
        has_tf = importlib.util.find_spec("tensorflow") is not None  # not imported here
        kinds = ["vggnp", "tf"] if has_tf and not args.no_tf else ["vggnp"]
        for _ in range(args.rounds):
            for kind in kinds:
                runs[kind].append(run_worker(kind, weights, args.repeats))
        cli = time_cli(weights, cli_runs)
    command = "python -m scripts.bench" + (" --quick" if args.quick else
                                           f" --rounds {args.rounds} --repeats {args.repeats}")
    command += (" --weights W" if args.weights else "") + ("" if "tf" in kinds else " --no-tf")
    report = collect(runs, cli, command)
    # Last, in this process: each conv path per layer, with its float32 error.
    from scripts.conv_paths import table
    report["conv_paths"] = list(table(1 if args.quick else 5))
    report["ratios"] = shown_numbers(report)[2]
    report["markdown"] = markdown_table(report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(report["markdown"]))
        print()
        print_details(report)


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


def collect(runs, cli, command="python -m scripts.bench"):
    def merged(kind, key):
        return [t for r in runs[kind] for t in r[key]] if runs[kind] else []

    np_ = {k: summary(merged("vggnp", k)) for k in
           ("forward", "gradcam", "input_grad", "gradcam_batch1_paired",
            "gradcam_batch8_per_image")}
    tf_ = {k: summary(merged("tf", k)) for k in
           ("forward", "gradcam", "gradcam_kerasio", "input_grad")} if runs["tf"] else {}
    last = runs["vggnp"][-1]
    counts = {"batch 1": len(merged("vggnp", "forward")),
              "batch pair": len(merged("vggnp", "gradcam_batch8_per_image")),
              "rounds": len(runs["vggnp"]), "cli": len(cli)}
    return {"command": command,
            "machine": dict(machine(), blas=last["blas"] + [last["threads"]],
                            numpy=last.get("numpy"),
                            tf=runs["tf"][-1]["version"] if runs["tf"] else None),
            "counts": counts, "sgemm_gflops": last["sgemm_gflops"], "vggnp_ms": np_,
            "tf_ms": tf_, "rss_mb": max(r["rss_mb"] for r in runs["vggnp"]),
            "tf_rss_mb": max(r["rss_mb"] for r in runs["tf"]) if runs["tf"] else None,
            "conv_layers": last["conv_layers"], "cli_s": summary(cli)}


def shown_numbers(r):
    """The numbers of the README table as shown (ms and MB whole, seconds to 0.01), and the
    ratios computed from these shown numbers, so that a reader can redo every division."""
    np_, tf_ = r["vggnp_ms"], r["tf_ms"]
    v = {k: round(s["median"]) for k, s in np_.items()}
    t = {k: round(s["median"]) for k, s in tf_.items()}
    ratios = {"input_grad_vs_forward": v["input_grad"] / v["forward"],
              "batch8_vs_batch1": v["gradcam_batch8_per_image"] / v["gradcam_batch1_paired"],
              "rss_mb": round(r["rss_mb"]), "cli_s": round(r["cli_s"]["median"], 2)}
    if t:
        ratios.update(forward_vs_tf=v["forward"] / t["forward"],
                      gradcam_vs_tf=v["gradcam"] / t["gradcam"],
                      input_grad_vs_tf=v["input_grad"] / t["input_grad"],
                      gradcam_vs_kerasio=v["gradcam"] / t["gradcam_kerasio"])
    return v, t, ratios


def markdown_table(r):
    """The README's speed section as Markdown lines: when/where, how many runs, the table."""
    m, n = r["machine"], r["counts"]
    v, t, ratios = shown_numbers(r)
    targets = {key: target for _, key, target, _ in TARGETS}

    def target(key, unit=""):
        value = ratios.get(key)
        missed = value is not None and round(value, 2) > targets[key]
        return f"<= {targets[key]}{unit}" + (" (missed)" if missed else "")

    def plural(k, word):
        return f"{k} {word}{'' if k == 1 else 's'}"

    def ratio(key, text):
        return f"{ratios[key]:.2f} {text}" if key in ratios else ""

    tf_ms = {k: f"{x} ms" for k, x in t.items()}
    tf_ms.update({k: f"{t[k]} ms (tf.function)" for k in ("forward", "gradcam", "input_grad")
                  if k in t})
    tf_rss = f"{round(r['tf_rss_mb'])} MB" if r["tf_rss_mb"] else ""
    tf_version = f"TensorFlow {m['tf']} CPU ({m['tf_onednn']})" if m["tf"] else "no TensorFlow"
    lines = textwrap.wrap(
        f"Measured {m['date']} by `{r['command']}` on {m['cpu']}, {m['cpus']}, {m['os']}; "
        f"{', '.join(m['blas'])}; Python {m['python']}, numpy {m['numpy']}, {tf_version}. "
        f"Batch 1, 224x224, float32; medians of {plural(n['batch 1'], 'timed run')} "
        f"({plural(n['rounds'], 'round')}, each "
        f"a fresh process per library), of {n['batch pair']} for the batch-1/batch-8 pair "
        f"(timed in turn) and of {n['cli']} for the whole process (after a first run, with "
        "Python's bytecode cache, as an installed package has it; PYTHONDONTWRITEBYTECODE "
        "is unset for it). Each ratio is computed "
        "from the numbers shown in its row, or its row and the row it names.", 90) + [
        "",
        "| measure | vggnp | TensorFlow | ratio | target |",
        "|---|---|---|---|---|",
        f"| forward | {v['forward']} ms | {tf_ms.get('forward', '')} | "
        f"{ratio('forward_vs_tf', 'vggnp / TF')} | {target('forward_vs_tf')} |",
        f"| Grad-CAM (block5_conv3) | {v['gradcam']} ms | {tf_ms.get('gradcam', '')} | "
        f"{ratio('gradcam_vs_tf', 'vggnp / TF')} | {target('gradcam_vs_tf')} |",
        f"| Grad-CAM as the keras-io example runs it (eager) | | "
        f"{tf_ms.get('gradcam_kerasio', '')} | "
        f"{ratio('gradcam_vs_kerasio', 'vggnp Grad-CAM / this')} | "
        f"{target('gradcam_vs_kerasio')} |",
        f"| gradient of a logit w.r.t. the input | {v['input_grad']} ms | "
        f"{tf_ms.get('input_grad', '')} | {ratio('input_grad_vs_tf', 'vggnp / TF')}; "
        f"{ratio('input_grad_vs_forward', 'x vggnp forward')} "
        f"| {target('input_grad_vs_tf')}; {target('input_grad_vs_forward')} |",
        f"| Grad-CAM, batch 1, timed in turn with batch 8 | {v['gradcam_batch1_paired']} ms "
        "| | | |",
        f"| Grad-CAM, batch 8, per image (batch time / 8) | "
        f"{v['gradcam_batch8_per_image']} ms | | "
        f"{ratio('batch8_vs_batch1', 'x batch 1 in turn')} | "
        f"{target('batch8_vs_batch1')} |",
        f"| peak RSS, batch 1 | {ratios['rss_mb']} MB | {tf_rss} | | "
        f"{target('rss_mb', ' MB')} |",
        f"| `python -m vggnp.cam img.jpg --weights W`, whole process | {ratios['cli_s']:.2f} s "
        f"| | | {target('cli_s', ' s')} |",
    ]
    return lines


def print_details(r):
    print(f"sgemm {r['sgemm_gflops']:.0f} GFLOP/s (3136^3)")
    print(f"\n{'measure (ms, batch 1)':<28}{'vggnp median (min-max)':>26}"
          f"{'TF median (min-max)':>26}")
    rows = [("forward", "forward", "forward"), ("Grad-CAM", "gradcam", "gradcam"),
            ("Grad-CAM, keras-io eager", None, "gradcam_kerasio"),
            ("gradient to the input", "input_grad", "input_grad"),
            ("Grad-CAM b1 in turn with b8", "gradcam_batch1_paired", None),
            ("Grad-CAM batch 8, per image", "gradcam_batch8_per_image", None)]
    for label, a, b in rows:
        cells = []
        for side, key in ((r["vggnp_ms"], a), (r["tf_ms"], b)):
            s = side.get(key) if key else None
            cells.append(f"{s['median']:.1f} ({s['min']:.0f}-{s['max']:.0f})" if s else "-")
        print(f"{label:<28}{cells[0]:>26}{cells[1]:>26}")
    ratios = shown_numbers(r)[2]
    print(f"\n{'target (ratios as in the table)':<34}{'measured':>10}{'target':>9}{'stretch':>9}")
    for label, key, target, stretch in TARGETS:
        value = ratios.get(key)
        shown = "-" if value is None else (f"{value:.0f}" if key == "rss_mb" else f"{value:.2f}")
        mark = "" if value is None else (" ok" if round(value, 2) <= target else " MISSED")
        print(f"{label:<34}{shown:>10}{target:>9}{stretch:>9}{mark}")
    print(f"\n{'conv layer':<16}{'ms':>8}{'GFLOP/s':>9}")
    for name, c in r["conv_layers"].items():
        print(f"{name:<16}{c['ms']:>8.1f}{c['gflops']:>9.0f}")
    print("\nEach conv path alone, per layer (scripts/conv_paths.py; errors: float32 against "
          "the float64 im2col result, relative to the output's max):\n")
    print("\n".join(r["conv_paths"]))


if __name__ == "__main__":
    main()
