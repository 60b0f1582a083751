"""The main job on a folder: memory and throughput as the folder grows (issue #14).

    python -m scripts.stream_bench                       # 20, 200 and 2,000 images
    python -m scripts.stream_bench --counts 20 200 --batch-sizes 1 4 8

Makes a folder of real-photo variants (the two photos in examples/, cropped, flipped and
resized so that the longer side is 200-4,000 px, saved as JPEG), then runs
``python -m vggnp.cam FOLDER --weights W --out OUT`` on the first N of them, one fresh
process each, and reads its peak RSS (VmHWM) from /proc while it runs. The network alone is
timed in the same run: Grad-CAM on one preprocessed image, in a process of its own.
Prints a Markdown table for the README. Full-size VGG16 with realistic random weights
(the same compute as the ImageNet weights, which cannot be downloaded here).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from scripts.harness import machine, random_weights_file
from vggnp.startup import COMMAND_ENVIRONMENT

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PHOTOS = [os.path.join(ROOT, "examples", name) for name in ("chelsea.jpg", "coffee.jpg")]
DISTINCT = 200  # distinct files; larger runs name them again (each gets its own outputs)

NETWORK_ONLY = """
import sys, time, numpy as np
from vggnp import VGG16, grad_cam, load_image
model = VGG16.load(sys.argv[1], need_top=True)
x = load_image(sys.argv[2])
grad_cam(model, x)
times = []
for _ in range(int(sys.argv[3])):
    began = time.perf_counter(); grad_cam(model, x); times.append(time.perf_counter() - began)
print(np.median(times))
"""


def make_variants(folder, n, seed=0):
    """n JPEGs: random crops of the photos, flipped at random, resized so that the longer
    side is uniform in 200..4000 px. Returns their paths."""
    rng = np.random.default_rng(seed)
    photos = [Image.open(p).convert("RGB") for p in PHOTOS]
    paths = []
    for i in range(n):
        photo = photos[i % len(photos)]
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.5, 1)), int(h * rng.uniform(0.5, 1))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        picture = photo.crop((x0, y0, x0 + cw, y0 + ch))
        if rng.random() < 0.5:
            picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        side = int(rng.uniform(200, 4000))
        scale = side / max(cw, ch)
        picture = picture.resize((max(1, round(cw * scale)), max(1, round(ch * scale))),
                                 Image.BILINEAR)
        path = os.path.join(folder, f"photo_{i:04d}.jpg")
        picture.save(path, quality=int(rng.integers(75, 96)))
        paths.append(path)
    return paths


def run_cam(paths, weights, out, batch_size):
    """(seconds, peak RSS in MB, exit code) of one vggnp.cam process over ``paths``
    (given on stdin, as ``find ... | vggnp-cam -`` would). The peak is the process's own
    VmHWM, read every 20 ms while it runs: os.wait4's ru_maxrss would include this
    script's RSS (Linux keeps the parent's across fork and exec)."""
    began = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen([sys.executable, "-m", "vggnp.cam", "-", "--weights",
                                    weights, "--out", out, "--batch-size", str(batch_size),
                                    "--quiet"], stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=errors, cwd=ROOT)
        process.stdin.write("\n".join(paths).encode() + b"\n")
        process.stdin.close()
        peak = 0
        while process.poll() is None:
            peak = max(peak, vm_hwm_mb(process.pid))
            time.sleep(0.02)
        seconds = time.perf_counter() - began
        if process.returncode:
            errors.seek(0)
            print(errors.read().decode(errors="replace"), file=sys.stderr)
    return seconds, peak, process.returncode


def vm_hwm_mb(pid):
    """Peak resident memory of process ``pid`` so far, in MB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0


def network_rate(weights, photo, repeats=10):
    """Images per second of Grad-CAM alone (median of ``repeats``), in its own process
    (NumPy set as the command sets it: ``startup.COMMAND_ENVIRONMENT``)."""
    seconds = float(subprocess.run([sys.executable, "-c", NETWORK_ONLY, weights, photo,
                                    str(repeats)], capture_output=True, text=True, check=True,
                                   cwd=ROOT, env={**COMMAND_ENVIRONMENT, **os.environ}).stdout)
    return 1 / seconds


def io_costs(paths):
    """Mean seconds per photo of what the folder run adds to the network, one thread:
    reading (decode, upright, RGB), the full-size overlay, the JPEG encoding; and the mean
    megapixels."""
    import io
    from vggnp.files.images import read_image
    from vggnp.viz.overlay import overlay
    heatmap = np.random.default_rng(0).random((14, 14))
    times, pixels = np.zeros(3), 0
    for path in paths:
        began = time.process_time()
        picture, _ = read_image(path)
        read = time.process_time()
        drawn = overlay(picture, heatmap)
        drawn_at = time.process_time()
        drawn.save(io.BytesIO(), "JPEG", quality=95)
        times += [read - began, drawn_at - read, time.process_time() - drawn_at]
        pixels += picture.width * picture.height
    return times / len(paths), pixels / len(paths) / 1e6


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--counts", type=int, nargs="+", default=[20, 200, 2000])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8])
    p.add_argument("--costs-only", action="store_true",
                   help="only the per-photo costs of reading, overlay and encoding")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        weights = random_weights_file(work)
        files = make_variants(work, min(DISTINCT, max(args.counts)))
        costs = costs_line(*io_costs(files[:50]))
        if args.costs_only:
            print(costs)
            return
        rate = network_rate(weights, files[0])
        rows = []
        for batch_size in args.batch_sizes:
            for count in args.counts:
                paths = [files[i % len(files)] for i in range(count)]
                out = os.path.join(work, f"out_{batch_size}_{count}")
                seconds, rss, code = run_cam(paths, weights, out, batch_size)
                rows.append((batch_size, count, seconds, count / seconds, rss, code))
                print(f"batch {batch_size}, {count} images: {seconds:.1f} s, "
                      f"{count / seconds:.2f} images/s, peak RSS {rss:.0f} MB, exit {code}",
                      file=sys.stderr, flush=True)
    print(report(rows, rate, args))
    print(f"\n{costs}")


def costs_line(costs, megapixels):
    return (f"Per photo (the first 50, mean {megapixels:.1f} megapixels), CPU seconds in one "
            f"thread: read {costs[0]:.3f}, overlay {costs[1]:.3f}, JPEG encode {costs[2]:.3f}.")


def report(rows, rate, args):
    m = machine()
    lines = [f"Measured {m['date']} by `python -m scripts.stream_bench "
             f"{'--counts ' + ' '.join(map(str, args.counts))} "
             f"{'--batch-sizes ' + ' '.join(map(str, args.batch_sizes))}` on {m['cpu']}, "
             f"{m['cpus']}. JPEGs of 200-4,000 px (longer side), one `python -m vggnp.cam` "
             f"process per row, paths on stdin; Grad-CAM alone: {rate:.2f} images/s "
             "(one preprocessed image, median of 10).", "",
             "| --batch-size | images | wall (whole process) | images/s | vs Grad-CAM alone "
             "| peak RSS | exit |", "|---|---|---|---|---|---|---|"]
    for batch_size, count, seconds, per_second, rss, code in rows:
        lines.append(f"| {batch_size} | {count:,} | {seconds:.1f} s | {per_second:.2f} | "
                     f"{per_second / rate:.2f} | {rss:.0f} MB | {code} |")
    for batch_size in args.batch_sizes:
        mine = {count: rss for b, count, _, _, rss, _ in rows if b == batch_size}
        if len(mine) > 1:
            small, large = min(mine), max(mine)
            lines.append(f"\nbatch {batch_size}: peak RSS at {large:,} images / at {small:,}: "
                         f"{mine[large] / mine[small]:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
