"""The tables ``scripts.bench`` prints: the README's speed table in Markdown, each ratio
computed from the numbers it shows, and the details (min-max, the targets, GFLOP/s per
conv layer)."""

import textwrap

from scripts.harness import machine, summary

TARGETS = [  # (name, measure, target, stretch): issue #18's, and #28.1's where it set its own
    ("forward vs TF tf.function", "forward_vs_tf", 1.0, 0.9),
    ("Grad-CAM vs TF tf.function", "gradcam_vs_tf", 1.0, 0.9),
    ("Grad-CAM vs keras-io (eager)", "gradcam_vs_kerasio", 0.4, 0.3),
    ("input gradient vs TF tf.function", "input_grad_vs_tf", 1.1, 0.9),
    ("input gradient / forward", "input_grad_vs_forward", 2.2, 2.0),
    ("batch 8 per image / batch 1", "batch8_vs_batch1", 0.9, 0.7),
    ("peak RSS, batch 1 (MB)", "rss_mb", 750, 700),
    ("vggnp.cam whole process (s)", "cli_s", 0.6, 0.5),
]


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
