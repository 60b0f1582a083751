"""What input pattern does a filter respond to? Gradient ascent in input space (the
chapter's second technique), with vggnp's own backward pass to the input.

    python -m vggnp.filters --layer block3_conv1 --filters 16
        -> ./block3_conv1_filters.png

Start from a grey image with a little noise; repeat: loss = mean pre-activation of filter
k (a 2-pixel border left out, as in the book), g = d loss / d image by backward, then
image += step * g / rms(g) (a normalised gradient step). Shown as the book does: centred,
scaled by the standard deviation (x64, +128), clipped.
"""

if __name__ == "__main__":  # before the heavy imports below: see startup.py
    from .startup import guard
    guard("vggnp.filters")

import os
import sys

import numpy as np
from PIL import Image

from .cli import (EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, ArgumentParser, fail, int_range,
                  model_and_layer, refuse_to_clobber)
from .cli_lines import show
from .cli_run import progress_options, run_command, step_progress
from .files.preprocess import is_bgr, preprocess
from .nn.layers import Conv2D
from .viz.overlay import channel_picture, grid, save_image


# The picture is cropped by a tenth on each side; at 1024 pixels block1's activations of
# one image take 256 MB in float32, and every step runs forward and backward through them.
MIN_SIZE, MAX_SIZE = 16, 1024


def filter_pattern(model, layer, k, mode, size=128, steps=30, step=2.0, seed=0):
    """Gradient ascent on the mean pre-activation z of channel k of the conv ``layer``.

    z, not ReLU(z): a filter that is off everywhere on the starting image would otherwise
    have no gradient at all. The conv runs as a linear twin of the layer (same weights),
    fed by the layers before it. Returns (image (size, size, C): the model input found,
    losses (steps + 1,): the filter's mean z before each step and after the last).
    """
    conv = model.layer(layer)
    twin = Conv2D(layer, conv.w, conv.b, "linear", strides=conv.strides, padding=conv.padding)
    index = model.names.index(layer)
    before = model.names[index - 1] if index else None
    rng = np.random.default_rng(seed)
    rgb = rng.uniform(0.4, 0.6, (1, size, size, model.channels)) * 255
    x = preprocess(rgb, mode)
    losses = []
    for _ in range(steps + 1):
        z = twin.forward(model.forward(x, until=before) if before else x)   # (1, h, w, F)
        border = 2 if min(z.shape[1:3]) > 4 else 0  # as the book: leave the border out
        inner = (slice(None), slice(border, z.shape[1] - border),
                 slice(border, z.shape[2] - border), k)
        losses.append(float(z[inner].mean()))
        if len(losses) > steps:
            break
        dz = np.zeros_like(z)
        dz[inner] = 1 / z[inner].size                            # d loss / d z
        g = twin.backward(dz)
        if before:
            g = model.backward(g, start=before)                  # d loss / d x
        x = x + step * g / (np.sqrt(np.mean(g ** 2)) + 1e-8)
    return x[0], np.array(losses)


DEFAULT_FILTERS = 16


def main(argv=None):
    p = ArgumentParser(prog="python -m vggnp.filters",
                       description="The input patterns the filters of a layer respond to "
                                   "most, by gradient ascent.")
    p.add_argument("--layer", required=True, help="conv layer name, e.g. block3_conv1")
    p.add_argument("--filters", type=int_range(1, 4096),
                   help="the first N filters, 1..4096, at most the layer's (default "
                        f"{DEFAULT_FILTERS}, or all of a layer's fewer)")
    p.add_argument("--steps", type=int_range(0, 10_000), default=30,
                   help="gradient steps, 0..10000 (default 30)")
    p.add_argument("--size", type=int_range(MIN_SIZE, MAX_SIZE), default=128,
                   help=f"image size, {MIN_SIZE}..{MAX_SIZE} (default 128)")
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0,
                   help="random start (default 0)")
    progress_options(p)
    return run_command("vggnp.filters", lambda: filters(p, argv))


def filters(p, argv):
    args, loaded = model_and_layer(p, argv)
    if isinstance(loaded, int):
        return loaded
    model, mode, layer = loaded
    if layer.name not in model.conv_names:
        return fail(EXIT_USAGE, f"--layer {args.layer} is not a conv layer", "vggnp.filters")
    filters_here = layer.w.shape[3]
    if (args.filters or 0) > filters_here:  # fewer than asked for would pass unnoticed
        return fail(EXIT_USAGE, f"--filters {args.filters}: {args.layer} has {filters_here} "
                                f"filters; ask for 1..{filters_here}", "vggnp.filters")
    path = os.path.join(args.out, f"{args.layer}_filters.png")
    refusal = refuse_to_clobber([path], set(), args.overwrite)
    if refusal:
        return fail(EXIT_SOME_FAILED, refusal, "vggnp.filters")
    tiles, count = [], args.filters or min(DEFAULT_FILTERS, filters_here)
    progress = step_progress(args, "vggnp.filters", lambda k: f"filter {k}")
    for k in range(count):
        image, losses = filter_pattern(model, args.layer, k, mode, args.size, args.steps,
                                       seed=args.seed + k)
        crop = args.size // 10
        rgb = image[crop:-crop or None, crop:-crop or None]
        rgb = rgb[..., ::-1] if is_bgr(mode) else rgb  # caffe inputs are BGR
        tiles.append(np.stack([channel_picture(rgb[..., c]) for c in range(rgb.shape[2])],
                              axis=-1))
        show(f"filter {k}: mean pre-activation {losses[0]:.3g} -> {losses[-1]:.3g}")
        if progress:
            progress(k + 1, count, k)
    columns = min(8, len(tiles))
    planes = [grid([t[..., c] for t in tiles], columns, min_tile=1) for c in range(3)]
    save_image(Image.fromarray(np.stack(planes, axis=-1)), path, args.overwrite)
    show(f"-> {path}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
