"""The README gallery and its deletion/insertion AUC table, with the committed shapes model.

    python -m scripts.gallery           # docs/gallery/<method>.png (128x128 each) and the
                                        # README table between its two auc-table markers
    python -m scripts.gallery --check   # writes nothing; exit 1 if the README table or a
                                        # picture differs from a fresh run

Offline and deterministic (no download): the synthetic-shapes convnet of scripts/shapes.py
on examples/triangle.png. tests/test_gallery.py compares the README table and the pictures
with a fresh run.

The model runs in float64. The triangle lies on a flat background, so in the first max-pool
many windows hold four exactly equal values (the same patch, convolved with the same
weights) and the gradient goes to the first of them. In float32 the BLAS kernel's rounding,
which depends on the CPU (OpenBLAS' AVX2 "Haswell"/"Zen" kernels vs AVX-512 "SkylakeX") and
on the thread count, can make those values differ by one ulp and route the gradient
elsewhere: the input-gradient maps (saliency, guided backprop, guided Grad-CAM) change by up
to 9 % of their max and their deletion AUCs by up to 0.01. In float64 the table was the same
with every kernel and thread count tried.
"""

import argparse
import difflib
import os
import sys
import textwrap

import numpy as np
from PIL import Image

from scripts.shapes import MODEL_PATH, ROOT
from vggnp.methods.explain import explain, image_heatmap
from vggnp.methods.registry import METHODS
from vggnp.methods.faithfulness import deletion_insertion
from vggnp.models.keras_convnet import load_keras_model
from vggnp.methods.gradcam import normalise
from vggnp.viz.overlay import overlay, signed_picture

IMAGE = os.path.join(ROOT, "examples", "triangle.png")
OUT = os.path.join(ROOT, "docs", "gallery")
README = os.path.join(ROOT, "README.md")
BEGIN = "<!-- auc-table:"      # the opening marker line starts with this
END = "<!-- /auc-table -->"    # the closing marker line is exactly this
SIZE = (128, 128)              # each gallery picture, enlarged from 64x64 without smoothing
NOTE = ("Computed in float64: in float32, BLAS rounding (which differs between CPUs and "
        "thread counts) can break the exact ties of the flat background in the first "
        "max-pool and move the saliency and guided rows' deletion AUCs (by up to 0.01 "
        "where it was tried: `scripts/gallery.py`'s docstring).")


def gallery(model=None, dtype=np.float64):
    """A fresh run: (pictures {"input" or method: PIL image of SIZE}, aucs {method:
    (deletion AUC, insertion AUC)}). model: default the shapes model, loaded as ``dtype``."""
    model = model or load_keras_model(MODEL_PATH, dtype=dtype)
    picture = Image.open(IMAGE).convert("RGB")
    x = np.asarray(picture, dtype=dtype)[None]  # the model rescales itself
    pictures, aucs = {"input": picture.resize(SIZE, Image.NEAREST)}, {}
    for method in METHODS:
        maps, (cls,) = explain(model, x, method, batch_size=64)
        if METHODS[method].gives_image:  # drawn and scored as vggnp.cam draws and scores it
            shown = signed_picture(maps[0], "none", picture.size, METHODS[method].diverging)
            heatmap = image_heatmap(METHODS[method], maps)[0]
        else:
            shown, heatmap = overlay(picture, maps[0]), maps[0]
        pictures[method] = shown.resize(SIZE, Image.NEAREST)
        aucs[method] = deletion_insertion(model, x[0], normalise(heatmap[None])[0], cls)
    return pictures, aucs


def table_lines(aucs):
    """The Markdown lines that go between the README markers."""
    lines = textwrap.wrap(NOTE, 90) + [
        "",
        "| method | deletion AUC (lower is better) | insertion AUC (higher is better) |",
        "|---|---|---|"]
    for method in METHODS:
        deletion, insertion = aucs[method]
        lines.append(f"| {method} | {deletion:.3f} | {insertion:.3f} |")
    return lines


def save_pictures(pictures, out=OUT):
    os.makedirs(out, exist_ok=True)
    for name, picture in pictures.items():
        picture.save(os.path.join(out, f"{name}.png"))


def stale_pictures(pictures, out=OUT):
    """The names of the pictures in ``out`` whose pixels differ from ``pictures`` (or that
    are missing). Pixels, not bytes: PNG bytes change with the zlib of Pillow's build."""
    stale = []
    for name, picture in pictures.items():
        path = os.path.join(out, f"{name}.png")
        if not (os.path.exists(path) and np.array_equal(np.asarray(Image.open(path)),
                                                        np.asarray(picture))):
            stale.append(name)
    return stale


def auc_table(model=None, out=OUT, dtype=np.float64):
    """The table's Markdown lines (without the markers), from a fresh run; with ``out`` (a
    folder, default docs/gallery) also writes the gallery pictures there."""
    pictures, aucs = gallery(model, dtype)
    if out:
        save_pictures(pictures, out)
    return table_lines(aucs)


def _marker_lines(lines):
    begins = [i for i, line in enumerate(lines) if line.startswith(BEGIN)]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise ValueError(f"README.md needs one line starting with {BEGIN!r} followed by one "
                         f"line {END!r}; found {len(begins)} and {len(ends)}")
    return begins[0], ends[0]


def readme_table(text):
    """The lines between the markers in the README text."""
    lines = text.splitlines()
    begin, end = _marker_lines(lines)
    return lines[begin + 1:end]


def replace_table(text, table):
    """The README text with the lines between the markers replaced by ``table``."""
    lines = text.splitlines(keepends=True)
    begin, end = _marker_lines([line.rstrip("\r\n") for line in lines])
    newline = "\r\n" if lines[begin].endswith("\r\n") else "\n"
    return "".join(lines[:begin + 1] + [line + newline for line in table] + lines[end:])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if README.md's table or a picture in "
                        "docs/gallery differs from a fresh run")
    args = p.parse_args(argv)
    with open(README, encoding="utf-8", newline="") as f:
        committed = readme_table(f.read())  # fails before the work if a marker is missing
    pictures, aucs = gallery()
    table = table_lines(aucs)
    if args.check:
        stale = stale_pictures(pictures)
        if table != committed:
            sys.stdout.writelines(difflib.unified_diff(
                [line + "\n" for line in committed], [line + "\n" for line in table],
                "README.md (committed)", "fresh run"))
        if stale:
            print(f"pictures in docs/gallery that differ from a fresh run: {', '.join(stale)}")
        if table != committed or stale:
            print("stale: run python -m scripts.gallery")
            return 1
        print("README.md's AUC table and docs/gallery match a fresh run")
        return 0
    save_pictures(pictures)
    with open(README, encoding="utf-8", newline="") as f:  # reread: others may edit it
        text = f.read()
    new = replace_table(text, table)
    if new != text:
        with open(README, "w", encoding="utf-8", newline="") as f:
            f.write(new)
    print("\n".join(table))
    print(f"\nwrote {os.path.relpath(OUT, ROOT)}/*.png; "
          f"README.md {'updated' if new != text else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
