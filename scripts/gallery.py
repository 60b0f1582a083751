"""The README gallery: one image through every method, with the committed shapes model.

    python -m scripts.gallery      # -> docs/gallery/<method>.png (128x128 each)

Offline and deterministic (no download): the synthetic-shapes convnet of scripts/shapes.py
on examples/triangle.png; the deletion/insertion AUCs are printed as a Markdown table.
"""

import os

import numpy as np
from PIL import Image

from scripts.shapes import MODEL_PATH, ROOT
from vggnp.cam import gradient_picture
from vggnp.explain import IMAGE_METHODS, METHODS, explain
from vggnp.faithfulness import deletion_insertion
from vggnp.keras_model import load_keras_model
from vggnp.overlay import overlay

IMAGE = os.path.join(ROOT, "examples", "triangle.png")
OUT = os.path.join(ROOT, "docs", "gallery")


def main():
    model = load_keras_model(MODEL_PATH)
    picture = Image.open(IMAGE).convert("RGB")
    x = np.asarray(picture, dtype=np.float32)[None]  # the model rescales itself
    os.makedirs(OUT, exist_ok=True)
    picture.resize((128, 128), Image.NEAREST).save(os.path.join(OUT, "input.png"))
    print("| method | deletion AUC (lower is better) | insertion AUC (higher is better) |")
    print("|---|---|---|")
    for method in METHODS:
        maps, (cls,) = explain(model, x, method, batch_size=64)
        if method in IMAGE_METHODS:
            shown = gradient_picture(maps[0], "none", picture.size)
            heatmap = np.abs(maps[0]).max(axis=2)
        else:
            shown, heatmap = overlay(picture, maps[0]), maps[0]
        shown.resize((128, 128), Image.NEAREST).save(os.path.join(OUT, f"{method}.png"))
        deletion, insertion = deletion_insertion(model, x[0], heatmap / max(heatmap.max(), 1e-30),
                                                 cls)
        print(f"| {method} | {deletion:.3f} | {insertion:.3f} |")


if __name__ == "__main__":
    main()
