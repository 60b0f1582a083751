"""Score-CAM (Wang et al. 2020): channels weighed by how much each one, used as a mask on
the input, raises the class probability; forward passes only.

    L = ReLU(sum_k s_k A^k),  s = softmax over k of p^c(x * H^k),  H^k = A^k upsampled to the
    input and scaled to [0, 1]
"""

import numpy as np

from ..fast.batch_split import forward_split
from .gradcam import normalise
from .resize import resize_bilinear


def score_cam(model, x, layer, classes, batch_size=32, skip_dead=True, progress=None,
              skipped=None):
    """Score-CAM maps (N, h, w): forward passes only, the masked inputs in batches.

    skip_dead: a channel whose activation is zero everywhere adds s_k * A^k = 0 to the map;
    its softmax term only rescales every weight alike, which the division by the max
    cancels, so its forward pass is skipped (the same map, to rounding; test_explain.py).
    progress: called as progress(channels done, channels to do) after each batch.
    skipped: a list, given one count per image of the channels skipped.
    """
    maps = []
    for image, c in zip(x, classes):
        A = model.forward(image[None], until=layer)[0]                   # (h, w, C)
        channels = [k for k in range(A.shape[2]) if not skip_dead or A[:, :, k].any()]
        if skipped is not None:
            skipped.append(A.shape[2] - len(channels))
        masks = []
        for k in channels:
            up = resize_bilinear(A[:, :, k], image.shape[:2])
            span = up.max() - up.min()
            masks.append((up - up.min()) / span if span > 0 else np.zeros_like(up))
        scores = []
        for start in range(0, len(masks), batch_size):
            batch = np.stack(masks[start:start + batch_size])[..., None] * image
            outputs = forward_split(model, batch.astype(x.dtype))
            scores.append(model.class_scores(outputs)[:, c])
            if progress:
                progress(min(start + batch_size, len(masks)), len(masks))
        if not channels:  # every channel is dead: the map is empty
            maps.append(np.zeros(A.shape[:2], A.dtype))
            continue
        scores = np.concatenate(scores)
        weights = np.exp(scores - scores.max())
        weights /= weights.sum()                                          # softmax over k
        maps.append(np.maximum(A[:, :, channels] @ weights, 0))
    return normalise(np.stack(maps))
