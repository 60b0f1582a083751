"""The synthetic shapes data set, NumPy only: each image is 64x64 RGB noise with one shape
-- circle, square or triangle -- of random size, colour and place; the class is the shape,
and its bounding box is where Grad-CAM should point. ``scripts/shapes.py`` trains the
committed model on it (TensorFlow); the tests draw held-out images from it, and play the
pointing game.
"""

import os

import numpy as np

CLASSES = ["circle", "square", "triangle"]
SIZE = 64
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")  # the repository
MODEL_PATH = os.path.join(ROOT, "weights", "shapes_convnet.keras")
LABELS_PATH = os.path.join(ROOT, "weights", "shapes_labels.txt")
TRAIN_SEED, TEST_SEED = 0, 12345  # held-out images come from another seed


def shape_mask(kind, cx, cy, r, size=SIZE):
    """(size, size) bool: a circle of radius r, a square of half-side r, or an upright
    triangle inscribed in that square, centred at (cx, cy)."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    if kind == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 <= r ** 2
    inside = (np.abs(x - cx) <= r) & (np.abs(y - cy) <= r)
    if kind == "square":
        return inside
    # triangle: apex at the top centre, base at the bottom of the square
    return inside & (np.abs(x - cx) <= (y - (cy - r)) / 2)


def draw(rng, kind, size=SIZE):
    """One image with a ``kind`` shape: (uint8 (size, size, 3), box (x0, y0, x1, y1))."""
    r = rng.uniform(6, 12)
    cx, cy = rng.uniform(r + 1, size - r - 1, 2)
    image = rng.normal(128, 40, (size, size, 3))
    colour = rng.uniform(0, 255, 3)
    while np.abs(colour - 128).mean() < 60:  # keep the shape visible against the noise
        colour = rng.uniform(0, 255, 3)
    image[shape_mask(kind, cx, cy, r, size)] = colour
    box = (cx - r, cy - r, cx + r, cy + r)
    return np.uint8(np.clip(np.round(image), 0, 255)), box


def dataset(n, seed):
    """n images (n, 64, 64, 3) uint8, their classes (n,) and boxes (n, 4)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), n)
    images, boxes = zip(*(draw(rng, CLASSES[c]) for c in labels))
    return np.stack(images), labels, np.array(boxes)


def box_mask(box, size=SIZE):
    """(size, size) bool: the pixels whose centres lie in the box (x0, y0, x1, y1), edges
    included -- the box of the pointing game."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    x0, y0, x1, y1 = box
    return (x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1)


def pointing_hit(heatmap, box, size=SIZE):
    """The pointing game: is the heatmap's maximum, upsampled to the image, inside the box?"""
    from vggnp.viz.overlay import resize_bilinear
    full = resize_bilinear(heatmap, (size, size))
    y, x = np.unravel_index(np.argmax(full), full.shape)
    return bool(box_mask(box, size)[y, x])


def chance_hit_rate(boxes, size=SIZE):
    """The pointing game's chance level: the expected hit rate of a uniformly random pixel,
    i.e. the mean fraction of the image's pixels that are in the box (``box_mask``).

    Not the maximum of a random low-resolution map upsampled with ``resize_bilinear``: with
    half-pixel sampling every interior output pixel blends neighbouring cells, while the
    clamped border strip copies the edge cells unblended, so such maxima land mostly on the
    border, which the boxes (kept 1 px inside the image) hardly reach."""
    return float(np.mean([box_mask(box, size).mean() for box in boxes]))
