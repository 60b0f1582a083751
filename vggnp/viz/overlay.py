"""Pixels, kept apart from the math: colour map, overlay, panel, saving.

The overlay is drawn as in the chapter and the keras-io Grad-CAM example: the heatmap is
scaled to 0..255, coloured with the "jet" colour map, multiplied by alpha (0.4) and added
to the photo, and the sum is rescaled to 0..255.
"""

import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..files.outputs import write_new
from ..files.preprocess import is_bgr
from ..methods.resize import resize_bilinear

# matplotlib's "jet" (matplotlib/_cm.py, _jet_data): per channel, (x, value) points that
# are linearly interpolated. Tabulated at 256 points as matplotlib's ListedColormap does.
_JET_POINTS = {
    "red": [(0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)],
    "green": [(0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)],
    "blue": [(0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)],
}


def jet_table(n=256):
    """(n, 3) float64 RGB values in [0, 1], equal to matplotlib's jet(np.arange(n))[:, :3]."""
    x = np.linspace(0.0, 1.0, n)
    return np.stack([np.interp(x, *zip(*_JET_POINTS[c])) for c in ("red", "green", "blue")],
                    axis=1)


_JET_UINT8 = np.uint8(np.round(255 * jet_table()))  # (256, 3): level -> RGB
_JET_PALETTE = _JET_UINT8.ravel().tolist()  # as Pillow wants a palette: r0 g0 b0 r1 ...


def heat_levels(heatmap):
    """heatmap: (H, W) in [0, 1] -> (H, W) uint8 levels round(255 * value)."""
    return np.round(255 * np.clip(heatmap, 0, 1)).astype(np.uint8)


def colorize(heatmap):
    """heatmap: (H, W) in [0, 1] -> (H, W, 3) uint8 jet colours (quantised to 256 levels)."""
    return np.take(_JET_UINT8, heat_levels(heatmap), axis=0)


def jet_picture(heatmap, size):
    """heatmap: (h, w) in [0, 1] -> PIL RGB image of size (W, H): the map resized bilinearly
    (as :func:`resize.resize_bilinear`), then coloured (colorize).

    Done by Pillow in C, a few milliseconds a megapixel: resize the 8-bit levels
    round(255 * heatmap) (one level from resizing the float map), then look each level up
    in the jet palette. The scalar map is resized first and coloured after, so
    colours are never blended.
    """
    if size[0] < heatmap.shape[1] or size[1] < heatmap.shape[0]:
        # Pillow shrinks with a wider (antialiasing) filter: tiny photos take the NumPy path.
        return Image.fromarray(colorize(resize_bilinear(heatmap, size[::-1])))
    levels = Image.fromarray(heat_levels(heatmap)).resize(size, Image.BILINEAR)
    levels.putpalette(_JET_PALETTE)  # "L" -> "P": the levels become palette indices
    return levels.convert("RGB")


def overlay(image, heatmap, alpha=0.4):
    """Superimpose a heatmap on a photo, at the photo's full size.

    image: PIL image (any size). heatmap: (h, w) in [0, 1] at layer resolution.
    Returns a PIL RGB image of the photo's size: rescale(alpha * jet(heatmap) + photo),
    where rescale maps the min..max of the sum to 0..255 (as keras.utils.array_to_img).

    In 8 bits with Pillow's C loops (a 12-megapixel photo in ~0.15 s, not ~1 s of NumPy
    float passes): photo + alpha * jet = (1 + alpha) * blend(photo, jet, alpha / (1 + alpha)),
    and the factor (1 + alpha) cancels in the rescale; so blend, find min and max, stretch
    with a 256-entry table. Within 2 levels of the float formula at alpha 0.4, 3 at
    alpha 1 (tests/test_overlay.py). A photo that is not a PIL image, or a heatmap that is
    not one (h, w) map of finite values, is a TypeError or ValueError naming it.
    """
    _check_overlay_arguments(image, heatmap)
    photo = image if image.mode == "RGB" else image.convert("RGB")
    mixed = Image.blend(photo, jet_picture(heatmap, photo.size), alpha / (1 + alpha))
    counts = np.reshape(mixed.histogram(), (3, 256)).sum(axis=0)  # how many of each value
    low, high = np.flatnonzero(counts)[[0, -1]]
    scale = 255 / (high - low) if high > low else 1
    stretch = np.clip(np.round((np.arange(256) - low) * scale), 0, 255).astype(int).tolist()
    return mixed.point(stretch * 3)


def _check_overlay_arguments(image, heatmap):
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL image (vggnp.read_image(path)[0]), not "
                        f"{type(image).__name__}")
    heatmap = np.asarray(heatmap)
    if heatmap.ndim != 2 or heatmap.dtype.kind not in "biuf" or 0 in heatmap.shape:
        raise ValueError(f"heatmap must be one map (h, w) of numbers, not {heatmap.dtype} "
                         f"{heatmap.shape} (a batch's maps: overlay each, heatmaps[0])")
    if not np.isfinite(heatmap).all():
        raise ValueError("heatmap holds NaN or infinite values")


def draw_box(picture, box):
    """Draw ``box`` (x0, y0, x1, y1), half-open pixel coordinates, on ``picture`` (in
    place): a white line inside a black one, visible on any colour, 0.5 % of the longer
    side thick (at least 1 pixel each)."""
    x0, y0, x1, y1 = box
    width = max(1, round(max(picture.size) / 200))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline="black", width=2 * width)
    if x1 - x0 > 2 * width and y1 - y0 > 2 * width:  # room for the white line inside
        draw.rectangle((x0 + width, y0 + width, x1 - 1 - width, y1 - 1 - width),
                       outline="white", width=width)
    return picture


def panel(image, heatmap, overlay_image, lines=(), bar=None):
    """original | heatmap | overlay side by side, with text lines (e.g. the top-5) below;
    bar: (max, units) adds a colour bar, 0 to max, for maps on a raw scale."""
    w, h = image.size
    coloured = jet_picture(heatmap, (w, h))
    font = ImageFont.load_default()
    line_height = 14
    # At least as wide as the text, so that a tiny image's panel still shows its top-5.
    text_width = max([font.getlength(line) for line in lines], default=0)
    width = max(3 * w, int(text_width) + 12, 300 if bar else 0)
    height = h + line_height * len(lines) + 8 + (2 * line_height + 12 if bar else 0)
    canvas = Image.new("RGB", (width, height), "white")
    for i, picture in enumerate([image.convert("RGB"), coloured, overlay_image]):
        canvas.paste(picture, (i * w, 0))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((6, h + 4 + i * line_height), line, fill="black", font=font)
    if bar:
        top = h + 8 + line_height * len(lines)
        strip = np.repeat(_JET_UINT8[None], 10, axis=0)            # (10, 256, 3): 0 .. max
        canvas.paste(Image.fromarray(strip), (6, top))
        draw.text((6, top + 12), "0", fill="black", font=font)
        label = f"{bar[0]:.3g} ({bar[1]} units)"
        draw.text((262 - font.getlength(label), top + 12), label, fill="black", font=font)
    return canvas


def labelled_grid(cells, row_titles, column_titles, cell=96):
    """Pictures in rows and columns with a title over each column and before each row
    (the sanity checks' figure: methods down, randomisation steps across).
    cells: rows of PIL images (resized to ``cell`` x ``cell``)."""
    font = ImageFont.load_default()
    left = int(max(font.getlength(t) for t in row_titles)) + 8
    top = 30  # two lines of column title
    canvas = Image.new("RGB", (left + len(column_titles) * (cell + 4),
                               top + len(row_titles) * (cell + 4)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(column_titles):
        for k, part in enumerate(title.split("\n")[:2]):
            draw.text((left + c * (cell + 4), 2 + 13 * k), part[:16], fill="black", font=font)
    for r, (title, row) in enumerate(zip(row_titles, cells)):
        y = top + r * (cell + 4)
        draw.text((4, y + cell // 2 - 6), title, fill="black", font=font)
        for c, picture in enumerate(row):
            canvas.paste(picture.resize((cell, cell), Image.BILINEAR), (left + c * (cell + 4), y))
    return canvas


def save_image(image, path, overwrite=False):
    """Save as PNG or JPEG by the extension, safely (``files.outputs.write_new``: never half
    a file; an existing file only with overwrite, else OutputExists)."""
    ext = os.path.splitext(path)[1].lower()
    formats = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
    if ext not in formats:
        raise ValueError(f"{path}: output must end in .png, .jpg or .jpeg")
    options = {"quality": 95} if formats[ext] == "JPEG" else {}
    write_new(path, lambda f: image.save(f, formats[ext], **options), overwrite)


def save_array(array, path, overwrite=False):
    """Save a NumPy array as .npy, safely (as :func:`save_image`)."""
    write_new(path, lambda f: np.save(f, array), overwrite)


def gradient_image(gradient):
    """A signed gradient (H, W, C) as a picture, as keras-io and pytorch-grad-cam show it:
    centred on grey, one standard deviation = 0.1, clipped to [0, 1]. (Their std + 1e-5
    faded a gradient of std 1e-6, a softmax target's, to near grey: a zero gradient is
    the only one left unscaled here.)"""
    g = gradient - gradient.mean()
    std = g.std()
    return np.clip((g / std if std > 0 else g) * 0.1 + 0.5, 0, 1)


def gradient_picture(gradient, mode, size):
    """A gradient (H, W, C) w.r.t. the model input as an RGB picture of ``size`` (W, H)."""
    picture = gradient_image(gradient)
    if is_bgr(mode):
        picture = picture[..., ::-1]  # caffe inputs are BGR
    if picture.shape[2] == 1:
        picture = np.repeat(picture, 3, axis=2)
    return Image.fromarray(np.uint8(np.round(255 * picture))).resize(size, Image.BILINEAR)


def relevance_picture(relevance, size, top=None):
    """A signed relevance (H, W, C) at the input as an RGB picture of ``size`` (W, H): its
    sum over the channels, red where positive, blue where negative, white at zero, both
    sides scaled by ``top`` (default: the largest |value|; the "bwr" map of the LRP
    literature):
        v = clip(r / top, -1, 1);  (R, G, B) = (1 + min(v, 0), 1 - |v|, 1 - max(v, 0))"""
    r = relevance.sum(axis=2, dtype=np.float64)
    top = np.abs(r).max() if top is None else top
    v = np.clip(r / top, -1, 1) if top > 0 else r
    rgb = np.stack([1 + np.minimum(v, 0), 1 - np.abs(v), 1 - np.maximum(v, 0)], axis=2)
    return Image.fromarray(np.uint8(np.round(255 * rgb))).resize(size, Image.BILINEAR)


def signed_picture(image_map, mode, size, diverging, top=None):
    """The picture of a method whose map is an image (H, W, C): a relevance's diverging
    colours (on the scale ``top``: --scale raw), or a gradient's grey-centred picture."""
    return relevance_picture(image_map, size, top) if diverging else \
        gradient_picture(image_map, mode, size)


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
