"""A box around what the map points at: the Grad-CAM paper's weakly supervised localisation
(Selvaraju et al., sec. 4.1). Pixels, not math: kept apart from the maps themselves.

    box = bounding box of the largest connected region where
          upsample(map) >= threshold * max(upsample(map))          (threshold 0.15)
"""

import numpy as np

from ..methods.resize import resize_bilinear

MAX_SIDE = 1024  # the map is upsampled to at most this many pixels a side


def box_from_map(heatmap, size, threshold=0.15):
    """heatmap: (h, w) >= 0; size: (W, H) of the image. Returns the box (x0, y0, x1, y1) in
    the image's pixels, half-open (columns x0..x1-1, rows y0..y1-1), or None for a map that
    is zero everywhere. Above MAX_SIDE pixels a side, the map is thresholded at a reduced
    size and the box scaled back (to within W / MAX_SIDE pixels)."""
    width, height = size
    scale = min(1.0, MAX_SIDE / max(width, height))
    grid = (max(1, round(height * scale)), max(1, round(width * scale)))
    up = resize_bilinear(heatmap, grid, np.float32)
    if up.max() <= 0:
        return None
    from scipy import ndimage  # here, not at the top: its import costs every run ~90 ms
    regions, count = ndimage.label(up >= threshold * up.max())   # 4-connected regions
    largest = 1 + np.bincount(regions.ravel())[1:].argmax()
    rows = np.flatnonzero((regions == largest).any(axis=1))
    cols = np.flatnonzero((regions == largest).any(axis=0))
    fx, fy = width / grid[1], height / grid[0]
    return (int(np.floor(cols[0] * fx)), int(np.floor(rows[0] * fy)),
            int(np.ceil((cols[-1] + 1) * fx)), int(np.ceil((rows[-1] + 1) * fy)))


def iou(a, b):
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
