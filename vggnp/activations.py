"""Every channel of one layer for one image, tiled into one picture (the chapter's first
technique: "visualizing intermediate activations").

    python -m vggnp.activations examples/chelsea.jpg --layer block1_conv2
        -> ./chelsea_block1_conv2_activations.png

Each channel is shown as the book does: centred on its mean, scaled by its standard
deviation (x64, +128) and clipped to 0..255; an all-zero ("dead") channel stays black.
"""

if __name__ == "__main__":  # before the heavy imports below: see startup.py
    from .startup import guard
    guard("vggnp.activations")

import os
import sys

from PIL import Image

from .cli import (EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, ArgumentParser, fail, file_ids, int_range,
                  model_and_layer, refuse_to_clobber)
from .cli_lines import show
from .cli_run import allow_truncated_option, run_command
from .files.images import ImageError, read_image
from .files.preprocess import model_input
from .viz.overlay import channel_picture, grid, save_image


def main(argv=None):
    p = ArgumentParser(prog="python -m vggnp.activations",
                       description="Every channel of a layer's output for an image.")
    p.add_argument("image", metavar="IMG")
    p.add_argument("--layer", required=True, help="layer name, e.g. block1_conv2")
    p.add_argument("--columns", type=int_range(1, 1024), default=16,
                   help="tiles per row, 1..1024 (default 16)")
    allow_truncated_option(p)
    return run_command("vggnp.activations", lambda: activations(p, argv))


def activations(p, argv):
    args, loaded = model_and_layer(p, argv)
    if isinstance(loaded, int):
        return loaded
    model, mode, _ = loaded
    try:
        picture, _ = read_image(args.image, allow_truncated=args.allow_truncated)
    except ImageError as e:
        return fail(EXIT_SOME_FAILED, f"{args.image}: {e}", "vggnp.activations")
    x = model_input(picture, model.input_size, model.channels, mode)[None]
    a = model.forward(x, until=args.layer)[0]
    if a.ndim != 3:
        return fail(EXIT_USAGE, f"--layer {args.layer} has no spatial output ({a.shape})",
                    "vggnp.activations")
    tiles = [channel_picture(a[:, :, k]) for k in range(a.shape[2])]
    stem = os.path.splitext(os.path.basename(args.image))[0]
    path = os.path.join(args.out, f"{stem}_{args.layer}_activations.png")
    refusal = refuse_to_clobber([path], file_ids([args.image]), args.overwrite)
    if refusal:
        return fail(EXIT_SOME_FAILED, refusal, "vggnp.activations")
    save_image(Image.fromarray(grid(tiles, args.columns)), path, args.overwrite)
    dead = sum(not tile.any() or a[:, :, k].max() == 0 for k, tile in enumerate(tiles))
    show(f"{args.layer}: {a.shape[2]} channels of {a.shape[0]}x{a.shape[1]}, "
         f"{dead} all zero -> {path}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
