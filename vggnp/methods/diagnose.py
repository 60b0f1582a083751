"""Why is this heatmap empty or odd? A report with the numbers that usually explain it.

For one image and class: softmax saturation of the class, the share of negative channel
weights alpha_k, the fraction of dead (all-zero) channels at the layer, and how the map
changes with the target (logit vs softmax), the pooling of the gradients (mean vs sum) and
the layer (the last conv vs the last conv of the block before), with a suggestion.
"""


import numpy as np

from .gradcam import grad_cam, normalise
from .resize import resize_bilinear


def _similarity(a, b):
    """Correlation of two maps after resizing both to the larger grid (1: same picture)."""
    size = max(a.shape, b.shape)
    a, b = resize_bilinear(a, size).ravel(), resize_bilinear(b, size).ravel()
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _earlier_conv(model, layer):
    """The last conv layer at a higher resolution than ``layer`` (block4_conv3 for
    block5_conv3), or None."""
    before = [n for n in model.conv_names if model.names.index(n) < model.names.index(layer)]
    pools = [n for n in model.names[:model.names.index(layer)] if "pool" in n]
    if not pools:
        return None
    candidates = [n for n in before if model.names.index(n) < model.names.index(pools[-1])]
    return candidates[-1] if candidates else None


def diagnose(model, x, layer=None, class_index=None):
    """x: (1, H, W, C). Returns (lines of the report, the suggestion)."""
    layer = layer or model.default_layer
    # errstate and warn_empty, not warnings.catch_warnings: that one changes the filters
    # of the whole process, under the stream's worker threads.
    with np.errstate(all="ignore"):
        d = {}
        (heatmap,), (cls,) = grad_cam(model, x, layer, class_index, details=d, warn_empty=False)
        soft = {}
        (soft_map,), _ = grad_cam(model, x, layer, cls, target="softmax", details=soft,
                                  warn_empty=False)
        earlier = _earlier_conv(model, layer)
        other = grad_cam(model, x, earlier, cls, warn_empty=False)[0][0] if earlier else None
    p = float(d["probs"][0, cls])
    saturation = _saturation(model, d["probs"][0], cls)
    alpha = d["weights"][0]
    negative = float(np.mean(alpha < 0))
    A, g = d["activations"][0], d["gradients"][0]
    dead = float(np.mean(A.reshape(-1, A.shape[-1]).max(axis=0) == 0))
    summed = np.maximum(A @ g.sum(axis=(0, 1)), 0)  # sum instead of mean pooling
    summed = normalise(summed[None])[0]
    empty = not heatmap.any()
    peak = tuple(int(i) for i in np.unravel_index(np.argmax(heatmap), heatmap.shape))
    lines = [
        (f"class {cls}: logit {p:.4g} (the model outputs logits: no softmax to saturate)"
         if saturation is None else
         f"class {cls}: probability {p:.6f}; the softmax gradient scales with p(1-p) = "
         f"{saturation:.2e}" + (" -- saturated" if saturation < 1e-3 else "")),
        f"channel weights alpha at {layer}: {negative:.0%} negative "
        f"(their channels count against the class)",
        f"dead channels at {layer} (zero everywhere for this image): {dead:.0%}",
        "map: " + ("EMPTY (no location has positive weighted evidence)" if empty else
                   f"peak at {peak} of {heatmap.shape}"),
        f"logit vs softmax target: correlation {_similarity(heatmap, soft_map):.3f}"
        + (" (softmax map empty)" if not soft_map.any() else ""),
        f"mean vs sum pooling of the gradients: max difference "
        f"{np.abs(summed - heatmap).max():.1e} (the scale cancels in the normalisation)",
    ]
    if other is not None:
        lines.append(f"{layer} vs {earlier}: correlation {_similarity(heatmap, other):.3f}")
    return lines, _suggestion(empty, negative, saturation, dead, layer, earlier)


def _saturation(model, scores, c):
    """p (1 - p) of class c, scores (K,) the model's probabilities; None for logits. 1 - p
    as the other classes' sum: float32's 1 - p is 0 once p rounds to 1."""
    if model.output_activation not in ("softmax", "sigmoid"):
        return None
    return float(scores[c]) * float(np.delete(scores, c).astype(np.float64).sum())


def _suggestion(empty, negative, saturation, dead, layer, earlier):
    """The one thing to try, from what ``diagnose`` measured (fractions, p (1 - p) or
    None)."""
    if empty and negative >= 0.5:
        return ("this layer's evidence is against the class: try --method "
                "counterfactual (what argues against it), or the top-1 class")
    if saturation is not None and saturation < 1e-3:
        return ("the softmax is saturated: keep --target logit (the default); a "
                "softmax target's gradient nearly vanishes here")
    if empty:
        return f"the map is empty at {layer}: try --layer {earlier or 'an earlier layer'}"
    if dead >= 0.5:
        return f"most channels are dead at {layer}: try an earlier layer"
    return "nothing odd found: the map shows where the layer's evidence is"
