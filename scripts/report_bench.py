"""How big the report of a large run is, and how fast it opens (issue #17).

    python -m scripts.report_bench              # 1,000 images
    python -m scripts.report_bench --count 200 --opens 5
    python -m scripts.report_bench --screenshot docs/report.png    # the README's picture

Makes a folder of ``--count`` shapes images (64x64 PNGs of scripts/shapes.py's held-out
kind), runs ``python -m vggnp.cam FOLDER --model weights/shapes_convnet.keras --report``
on it, then opens report.html in headless Chromium (Debian's ``chromium``, driven by
Playwright) ``--opens`` times, each in a fresh page, and times it from navigation until
the first page of 50 images is drawn and the pictures in the window decoded. Prints the HTML's size
and the median, min and max time. A benchmark, not a test: timings need an idle machine.
With ``--screenshot``, instead: a report of the three shapes in examples/ (--metric, --box,
--report-all-methods), its window saved as a PNG.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from scripts.harness import machine
from scripts.shapes import LABELS_PATH, MODEL_PATH, ROOT, dataset

# The first page's cards are drawn and the pictures in the window decoded (the others
# load lazily, as the reader scrolls).
FIRST_PAGE_DRAWN = ("document.querySelectorAll('#list section').length > 0 && "
                    "Array.from(document.images).filter(i => i.getBoundingClientRect().top "
                    "< window.innerHeight).every(i => i.complete && i.naturalWidth > 0)")


def make_folder(folder, count, seed=7):
    images, _, _ = dataset(count, seed)
    for n, image in enumerate(images):
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
            os.path.join(folder, f"shape_{n:04d}.png"))


def open_times(report, opens):
    """Seconds from navigation until the first page is drawn, one per fresh page."""
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("report_bench: chromium not found (apt-get install chromium)")
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(opens):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            began = time.perf_counter()
            page.goto(Path(report).resolve().as_uri())
            page.wait_for_function(FIRST_PAGE_DRAWN, timeout=60000)
            times.append(time.perf_counter() - began)
            page.close()
        browser.close()
    return times


def screenshot(path):
    """The README's picture of a report: three shapes, every option that adds to it."""
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory() as out:
        shapes = [f"examples/{n}.png" for n in ("circle", "square", "triangle")]
        subprocess.run([sys.executable, "-m", "vggnp.cam", *shapes, "--model",
                        os.path.relpath(MODEL_PATH, ROOT), "--labels",
                        os.path.relpath(LABELS_PATH, ROOT), "--out", out, "--report", "--metric",
                        "--box", "--report-all-methods", "--quiet"],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                        args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 760})
            page.goto(Path(out, "report.html").as_uri())
            page.wait_for_function(FIRST_PAGE_DRAWN, timeout=60000)
            page.screenshot(path=path)
            browser.close()
    print(f"wrote {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--opens", type=int, default=5)
    p.add_argument("--screenshot", metavar="PNG", help="save a picture of a small report")
    args = p.parse_args(argv)
    if args.screenshot:
        screenshot(args.screenshot)
        return
    with tempfile.TemporaryDirectory() as work:
        folder, out = os.path.join(work, "in"), os.path.join(work, "out")
        os.makedirs(folder)
        make_folder(folder, args.count)
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vggnp.cam", folder, "--model", MODEL_PATH,
                        "--labels", LABELS_PATH, "--out", out, "--report", "--quiet"],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        run_seconds = time.perf_counter() - began
        report = os.path.join(out, "report.html")
        size = os.path.getsize(report)
        times = open_times(report, args.opens)
    m = machine()
    print(f"Measured {m['date']} by `python -m scripts.report_bench --count {args.count} "
          f"--opens {args.opens}` on {m['cpu']}, {m['cpus']}: the run of {args.count:,} "
          f"shapes images with --report took {run_seconds:.1f} s; report.html is "
          f"{size / 1e6:.2f} MB; opening it in headless Chromium until its first page of 50 "
          f"images is drawn took {np.median(times):.2f} s (median of {args.opens}; "
          f"min {min(times):.2f}, max {max(times):.2f}).")


if __name__ == "__main__":
    main()
