"""Every channel of one layer for one image, tiled into one picture (the chapter's first
technique: "visualizing intermediate activations").

    python -m vggnp.activations examples/chelsea.jpg --layer block1_conv2
        -> ./chelsea_block1_conv2_activations.png

Each channel is shown as the book does: centred on its mean, scaled by its standard
deviation (x64, +128) and clipped to 0..255; an all-zero ("dead") channel stays black.
"""

import argparse
import os
import sys

import numpy as np
from PIL import Image

from .cam import (EXIT_OK, EXIT_OUTPUT, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_WEIGHTS,
                  check_writable, fail, load_model, model_input, refuse_to_clobber)
from .download import DownloadError
from .images import ImageError, read_image
from .overlay import save_image
from .preprocess import PREPROCESS_MODES
from .weights import WeightsError


def channel_picture(a):
    """(h, w) activations -> uint8 (h, w): (a - mean) / std * 64 + 128, clipped."""
    a = a - a.mean()
    std = a.std()
    return np.uint8(np.clip(a / std * 64 + 128 if std > 0 else a, 0, 255))


def grid(tiles, columns, gap=1, min_tile=32):
    """Tile equal-size uint8 images (h, w) into one grid picture, upscaled (nearest) so
    that a tile is at least ``min_tile`` pixels tall; grey gaps between tiles."""
    scale = max(1, -(-min_tile // tiles[0].shape[0]))
    tiles = [np.kron(t, np.ones((scale, scale), np.uint8)) for t in tiles]
    h, w = tiles[0].shape
    rows = -(-len(tiles) // columns)
    canvas = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), 160, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = tile
    return canvas


def model_options(p):
    """--weights / --model / --preprocess, as in vggnp.cam."""
    p.add_argument("--weights", metavar="PATH", help="VGG16 weights (default: the official "
                                                     "ImageNet file, downloaded once)")
    p.add_argument("--model", metavar="PATH", help="your own Keras convnet (model.save file)")
    p.add_argument("--preprocess", choices=PREPROCESS_MODES,
                   help="input scaling (default: as vggnp.cam chooses)")
    p.add_argument("--out", default=".", metavar="DIR", help="output folder (default: .)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")


def model_and_layer(p, argv):
    """Add the model options to the parser ``p``, parse ``argv``, check the output folder,
    load the model and find --layer. Returns (args, (model, preprocess mode, layer)), or
    (args, an exit code) after printing why."""
    model_options(p)
    args = p.parse_args(argv)
    args.labels = None
    if args.model and args.weights:
        p.error("--model and --weights exclude each other")
    try:
        check_writable(args.out)
    except OSError as e:
        return args, fail(EXIT_OUTPUT, f"cannot write to the output folder {args.out}: {e}")
    try:
        model, _, mode, _ = load_model(args)
        return args, (model, mode, model.layer(args.layer))
    except (WeightsError, DownloadError) as e:
        return args, fail(EXIT_WEIGHTS, str(e))
    except KeyError as e:
        return args, fail(EXIT_USAGE, f"--layer: {e.args[0]}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m vggnp.activations",
                                description="Every channel of a layer's output for an image.")
    p.add_argument("image", metavar="IMG")
    p.add_argument("--layer", required=True, help="layer name, e.g. block1_conv2")
    p.add_argument("--columns", type=int, default=16, help="tiles per row (default 16)")
    args, loaded = model_and_layer(p, argv)
    if isinstance(loaded, int):
        return loaded
    model, mode, _ = loaded
    try:
        picture, _ = read_image(args.image)
    except ImageError as e:
        return fail(EXIT_SOME_FAILED, f"{args.image}: {e}")
    a = model.forward(model_input(picture, model, mode)[None], until=args.layer)[0]
    if a.ndim != 3:
        return fail(EXIT_USAGE, f"--layer {args.layer} has no spatial output ({a.shape})")
    tiles = [channel_picture(a[:, :, k]) for k in range(a.shape[2])]
    stem = os.path.splitext(os.path.basename(args.image))[0]
    path = os.path.join(args.out, f"{stem}_{args.layer}_activations.png")
    refusal = refuse_to_clobber([path], [args.image], args.overwrite)
    if refusal:
        return fail(EXIT_SOME_FAILED, refusal)
    save_image(Image.fromarray(grid(tiles, args.columns)), path)
    dead = sum(not tile.any() or a[:, :, k].max() == 0 for k, tile in enumerate(tiles))
    print(f"{args.layer}: {a.shape[2]} channels of {a.shape[0]}x{a.shape[1]}, "
          f"{dead} all zero -> {path}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
