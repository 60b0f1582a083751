"""Is a map faithful to the model? Deletion and insertion curves (Petsiuk et al., RISE).

Rank the input pixels by the map (upsampled to the input), most important first. Deletion:
remove them in that order -- set to 0, which after mean-subtracting preprocessing is the
mean colour -- and follow the class score: a faithful map makes it fall fast (low area
under the curve). Insertion: start from the blank image and put the pixels back: the
score should rise fast (high area). Scores are class probabilities, one forward pass
per step, all steps of a curve in one batch.
"""

import numpy as np

from .resize import resize_bilinear


def curve(model, x, heatmap, class_index, steps=20, insert=False, batch_size=None,
          progress=None):
    """x: (H, W, C) one preprocessed image; heatmap: (h, w). Returns the class scores
    after 0, 1/steps, ..., 1 of the pixels were deleted (or inserted): (steps + 1,).
    batch_size: steps per forward pass (default all); progress(steps done, steps)."""
    h, w = x.shape[:2]
    order = np.argsort(-resize_bilinear(heatmap, (h, w)).ravel(), kind="stable")
    batch = []
    for step in range(steps + 1):
        chosen = np.zeros(h * w, dtype=bool)
        chosen[order[:round(step * h * w / steps)]] = True
        keep = chosen if insert else ~chosen
        batch.append(x * keep.reshape(h, w, 1))
    batch = np.stack(batch).astype(x.dtype)
    size = batch_size or len(batch)
    scores = []
    for start in range(0, len(batch), size):
        scores.append(model.class_scores(model.predict(batch[start:start + size]))[:, class_index])
        if progress:
            progress(min(start + size, len(batch)), len(batch))
    return np.concatenate(scores)


def auc(scores):
    """Area under a curve sampled at evenly spaced fractions 0..1 (trapezoid rule)."""
    scores = np.asarray(scores, dtype=np.float64)
    return float((scores[1:] + scores[:-1]).sum() / (2 * (len(scores) - 1)))


def deletion_insertion(model, x, heatmap, class_index, steps=20, batch_size=None,
                       progress=None):
    """(deletion AUC, insertion AUC) of ``heatmap`` for ``class_index`` on image x.
    progress(steps done, steps of both curves) after each forward pass."""
    deletion, insertion = deletion_insertion_curves(model, x, heatmap, class_index, steps,
                                                    batch_size, progress)
    return auc(deletion), auc(insertion)


def deletion_insertion_curves(model, x, heatmap, class_index, steps=20, batch_size=None,
                              progress=None):
    """(deletion curve, insertion curve), each (steps + 1,) class scores: see ``curve``.
    progress(steps done, steps of both curves) after each forward pass."""
    total = 2 * (steps + 1)

    def done(offset):
        return (lambda k, _: progress(offset + k, total)) if progress else None
    return (curve(model, x, heatmap, class_index, steps, False, batch_size, done(0)),
            curve(model, x, heatmap, class_index, steps, True, batch_size, done(steps + 1)))
