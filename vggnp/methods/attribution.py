"""Gradients of the class score with respect to the input image, and two ways of making
them more trustworthy: Integrated Gradients and SmoothGrad.

With F(x) the score of class c (the logit y^c, or the probability with target "softmax"):

    saliency      S = max over channels of |dF/dx|                      (Simonyan et al.)
    integrated    IG_i = (x_i - x'_i) * (1/m) sum_{k=1..m} dF/dx_i (x' + a_k (x - x')),
    gradients     a_k = (k - 1/2) / m: the midpoint rule for the path integral from the
                  baseline x' (zeros in the model's input space) to x  (Sundararajan et al.)
    smoothgrad    G = (1/n) sum_{s=1..n} dF/dx (x + e_s),  e_s ~ N(0, sigma^2),
                  sigma = noise * (max x - min x)                        (Smilkov et al.)

Completeness (Integrated Gradients' axiom): sum_i IG_i = F(x) - F(x') exactly in the limit
m -> infinity; :func:`integrated_gradients` reports how close m steps come.
"""

import numpy as np

from .gradcam import backward_seed, class_indices
from ..nn.trace import print_trace

# The completeness check's tolerance: |attribution sum - score difference| / |difference|
# above it is worth a warning (more path steps close it).
COMPLETENESS_TOLERANCE = 0.01
FLOAT32_GRAIN = 1e-6  # a score's relative rounding in float32, with a margin (eps 1.2e-7)


def completeness_warning(completeness, steps=None):
    """The warning for a completeness check ({"attribution_sum", "score_difference",
    "relative_error"}) off by more than the tolerance, or None. steps: the path steps
    used, to suggest twice as many."""
    if not completeness or completeness.get("relative_error", 0) <= COMPLETENESS_TOLERANCE:
        return None
    more = (f"pass --steps {2 * steps} (steps={2 * steps}) for a closer path integral"
            if steps else "more --steps (steps=) would close it")
    return (f"the attributions sum to {completeness['attribution_sum']:.4g} but the score "
            f"changed by {completeness['score_difference']:.4g} from the baseline (off by "
            f"{100 * completeness['relative_error']:.1f} %); {more}")


def score_gradient(model, x, class_index, target, guided=False, trace=False):
    """(class scores (N, K), classes (N,), d y^c / d x (N, H, W, C)); trace: True or a
    file prints both passes layer by layer."""
    steps = {"forward": [], "backward": []} if trace else {"forward": None, "backward": None}
    outputs = model.forward(x, trace=steps["forward"])
    probs = model.class_scores(outputs)
    classes = class_indices(class_index, probs)
    grad = model.backward(backward_seed(outputs, classes), start=model.names[-1],
                          from_logits=(target == "logit"),
                          guided=guided, trace=steps["backward"])
    if trace:
        print_trace(steps, model, outputs.itemsize, trace)
    return probs, classes, grad


def target_scores(model, outputs, classes, target):
    """F(x) (N,), the score the backward pass differentiates, from the last forward: the
    logit z_c (one sigmoid unit: z for class 1, -z for class 0) or the probability."""
    rows = np.arange(len(classes))
    if target == "softmax":
        return model.class_scores(outputs)[rows, classes]
    z = model.layers[-1].z  # the output layer's pre-activation (a Dense or an Activation)
    if z.shape[1] == 1:  # +z or -z: the seed's sign (the one place that convention lives)
        return z[:, 0] * backward_seed(z, classes)[:, 0]
    return z[rows, classes]


def path_points(x, baseline, steps, start=0, stop=None):
    """Points start..stop-1 of the m = steps points x' + a_k (x - x') of the midpoint
    rule, a_k = (k + 1/2) / m, k = 0..m-1. x, baseline: (H, W, C) -> (stop - start, H, W, C)."""
    a = (np.arange(start, steps if stop is None else stop, dtype=np.float64) + 0.5) / steps
    return (baseline + a[:, None, None, None] * (x - baseline)).astype(x.dtype)


def _mean_gradient(model, points, count, c, target, batch_size):
    """The mean of dF_c/dx over ``count`` points, made ``batch_size`` at a time by
    points(start, stop) -> (stop - start, H, W, C): a batch in memory, never all."""
    total = 0.0
    for start in range(0, count, batch_size):
        batch = points(start, min(start + batch_size, count))
        _, _, grad = score_gradient(model, batch, np.full(len(batch), c), target)
        total = total + grad.sum(axis=0, dtype=np.float64)
    return total / count


def completeness_check(total, score, baseline_score):
    """IG's completeness: the attributions' sum ``total`` against F(x) - F(baseline).
    relative_error: |total - difference| / |difference|, but over no less than
    FLOAT32_GRAIN x the larger |score|: a saturated score changes by 0, and a sum of
    1e-10 is then float32's noise, not a path too coarse."""
    difference = score - baseline_score
    scale = max(abs(difference), FLOAT32_GRAIN * max(abs(score), abs(baseline_score)), 1e-12)
    return {"attribution_sum": total, "score_difference": difference,
            "relative_error": abs(total - difference) / scale}


def integrated_gradients(model, x, classes, target="logit", steps=64, batch_size=8):
    """IG attributions (N, H, W, C) of each image's class, and per image the completeness
    check {"attribution_sum", "score_difference", "relative_error"}
    (``completeness_check``).

    The baseline is the zero input in the model's input space (for VGG16's caffe
    preprocessing, the ImageNet mean colour; for x / 255, black)."""
    attributions, completeness = [], []
    for image, c in zip(x, classes):
        baseline = np.zeros_like(image)
        mean = _mean_gradient(model, lambda a, b: path_points(image, baseline, steps, a, b),
                              steps, c, target, batch_size)
        attribution = ((image - baseline) * mean).astype(x.dtype)
        ends = np.stack([image, baseline])
        scores = target_scores(model, model.forward(ends), np.array([c, c]), target)
        completeness.append(completeness_check(float(attribution.sum(dtype=np.float64)),
                                               float(scores[0]), float(scores[1])))
        attributions.append(attribution)
    return np.stack(attributions), completeness


def smooth_grad(model, x, classes, target="logit", samples=50, noise=0.15, batch_size=8,
                seed=0):
    """SmoothGrad: the mean gradient (N, H, W, C) over ``samples`` noisy copies of each
    image, sigma = noise * (max - min of the image). Each image draws its noise from its
    own generator seeded by ``seed``: the same image gives the same map whatever else is
    in its batch."""
    means = []
    for image, c in zip(x, classes):
        rng = np.random.default_rng(seed)
        sigma = noise * float(image.max() - image.min())

        def noisy(start, stop):  # drawn in order, a batch at a time: the same draws
            return image + rng.normal(0, sigma, (stop - start, *image.shape)).astype(x.dtype)
        means.append(_mean_gradient(model, noisy, samples, c, target, batch_size)
                     .astype(x.dtype))
    return np.stack(means)
