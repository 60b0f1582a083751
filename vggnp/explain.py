"""Every map of the paper and the chapter, from the one hand-written backward pass.

With A^k the activations of a conv layer (channel k, position ij) and g^k = d y^c / d A^k
the gradient of the class score y^c (the logit, as Grad-CAM), for one image:

    gradcam          L = ReLU(sum_k a_k A^k),  a_k = mean_ij g^k_ij          (Selvaraju et al.)
    counterfactual   L = ReLU(sum_k a_k A^k),  a_k = -mean_ij g^k_ij         (paper, sec. 5.3:
                     the regions whose removal would make the model more confident)
    hirescam         L = ReLU(sum_k g^k * A^k)   (element-wise; Draelos & Carin)
    xgradcam         L = ReLU(sum_k a_k A^k),  a_k = sum_ij (A^k_ij / sum_ab A^k_ab) g^k_ij
                     (Fu et al.: each gradient weighted by its share of the activation)
    eigencam         L = ReLU(M v_1),  M = A as (hw, C) with each channel's mean removed,
                     v_1 its first right singular vector, signed so that L agrees with
                     the mean activation (Muhammad & Yeasin; no gradient, no class)
    layercam         L = ReLU(sum_k ReLU(g^k) * A^k)   (Jiang et al.; works at shallow layers)
    gradcam++        L = ReLU(sum_k w_k A^k),  w_k = sum_ij alpha^k_ij ReLU(g^k_ij),
                     alpha^k_ij = g^2 / (2 g^2 + sum_ab A^k_ab g^3)   (Chattopadhyay et al.,
                     closed form for the score exp(y^c): its derivatives are powers of g)
    scorecam         L = ReLU(sum_k s_k A^k),  s = softmax over k of p^c(x * H^k), H^k = A^k
                     upsampled to the input and scaled to [0, 1]   (Wang et al.; forward only)
    saliency         S = max over channels of |d y^c / d x|       (Simonyan et al.)
    integrated-      |sum over channels of IG|, IG = (x - x') * mean of d y^c / d x on
      gradients      the straight path from x' = 0 to x     (Sundararajan et al.; attribution.py)
    smoothgrad       max over channels of |mean of d y^c / d x at x + noise|
                     (Smilkov et al.; attribution.py)
    guided-backprop  d y^c / d x with each ReLU passing only positive gradients (Springenberg)
    guided-gradcam   guided-backprop * Grad-CAM upsampled to the input (paper, sec. 3)

CAM maps are (N, h, w) at the layer's resolution and saliency, integrated-gradients and
smoothgrad (N, H, W) at the input's, each
divided by its max (in [0, 1]); the guided methods give (N, H, W, C) signed gradients in the
input's channel order (see ``gradient_image``).
"""

import warnings

import numpy as np

from .attribution import integrated_gradients, score_gradient, smooth_grad
from .gradcam import EmptyMapWarning, class_indices, class_scores, conv_layer, grad_cam, normalise
from .resize import resize_bilinear

METHODS = ["gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "scorecam",
           "eigencam", "guided-backprop", "guided-gradcam", "counterfactual", "saliency",
           "integrated-gradients", "smoothgrad"]
IMAGE_METHODS = ["guided-backprop", "guided-gradcam"]  # gradients, not heatmaps
# Methods that never look at a conv layer: their maps are gradients w.r.t. the input.
INPUT_METHODS = ["saliency", "guided-backprop", "integrated-gradients", "smoothgrad"]
# The score each method explains: the gradient methods differentiate the logit or the
# output probability (``target``); Score-CAM weighs channels by the output probability of
# masked images, with no gradient, so only "softmax" describes it; Eigen-CAM looks at the
# activations alone ("none": the same map for every class).
TARGETS = {method: {"scorecam": ("softmax",), "eigencam": ("none",)}.get(method,
                                                                        ("logit", "softmax"))
           for method in METHODS}


# The CAMs whose map before normalisation is a sum of gradient x activation terms, i.e. in
# the units of the score (logit or probability): --scale raw can show them on one scale.
RAW_METHODS = ["gradcam", "hirescam", "xgradcam", "layercam", "counterfactual"]


def raw_cam(method, activations, gradients):
    """The gradient-based CAMs from A (N, h, w, C) and g = dy/dA (N, h, w, C), ReLU
    applied, before normalisation: (N, h, w)."""
    A, g = activations, gradients
    if method == "gradcam":
        raw = np.einsum("nhwc,nc->nhw", A, g.mean(axis=(1, 2)))
    elif method == "counterfactual":
        raw = np.einsum("nhwc,nc->nhw", A, -g.mean(axis=(1, 2)))
    elif method == "hirescam":
        raw = (g * A).sum(axis=3)
    elif method == "xgradcam":
        total = A.sum(axis=(1, 2), keepdims=True)                           # (N, 1, 1, C)
        share = A / np.where(total != 0, total, 1)     # a dead channel's share is 0
        raw = np.einsum("nhwc,nc->nhw", A, (share * g).sum(axis=(1, 2)))
    elif method == "layercam":
        raw = (np.maximum(g, 0) * A).sum(axis=3)
    elif method == "gradcam++":
        g2, g3 = g ** 2, g ** 3
        denominator = 2 * g2 + A.sum(axis=(1, 2), keepdims=True) * g3
        alpha = np.where(denominator != 0, g2 / np.where(denominator != 0, denominator, 1), 0)
        weights = (alpha * np.maximum(g, 0)).sum(axis=(1, 2))              # (N, C)
        raw = np.einsum("nhwc,nc->nhw", A, weights)
    else:
        raise ValueError(f"{method!r} is not a gradient CAM")
    return np.maximum(raw, 0)


def eigen_cam(activations):
    """Eigen-CAM maps (N, h, w) from A (N, h, w, C): the projection of each position's
    centred activation vector on the first principal direction, signed to agree with the
    mean activation over channels, ReLU, divided by its max."""
    maps = []
    for A in activations:
        M = A.reshape(-1, A.shape[-1]).astype(np.float64)
        M = M - M.mean(axis=0)                         # centre each channel
        _, _, vt = np.linalg.svd(M, full_matrices=False)
        projection = M @ vt[0]                          # (h*w,)
        if projection @ (A.mean(axis=-1).ravel() - A.mean()) < 0:
            projection = -projection                    # an SVD's sign is arbitrary
        maps.append(np.maximum(projection, 0).reshape(A.shape[:2]).astype(A.dtype))
    return normalise(np.stack(maps))


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
            scores.append(class_scores(model.forward(batch.astype(x.dtype)))[:, c])
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


def explain(model, x, method="gradcam", layer=None, class_index=None, target=None,
            batch_size=32, details=None, trace=False, progress=None, steps=64, samples=50,
            noise=0.15, seed=0, warn_empty=True):
    """Explain the class ``class_index`` (default: each image's top-1) with ``method``.

    model: VGG16 or a KerasConvNet; x: (N, H, W, C) preprocessed. layer: the conv layer of
    the CAM methods (default: the last); the input methods (saliency, guided-backprop)
    refuse one. target: the score explained, "logit" or "softmax" (see ``TARGETS``;
    default: the first the method allows). Returns (maps, classes): see the module
    docstring for the shapes; a map that is zero everywhere gives an EmptyMapWarning
    (unless ``warn_empty=False``: the caller says it, e.g. ``vggnp.stream``).
    details: optional dict, filled with "probs" (N, K) and, for gradient CAMs,
    "activations" and "gradients" at the layer; for scorecam "scorecam_skipped" (one count
    per image of the dead channels skipped); for integrated-gradients "attributions"
    (N, H, W, C) and "completeness" (one dict per image); for smoothgrad "gradient".
    progress: scorecam calls it as progress(channels done, channels to do).
    steps: integrated-gradients' path steps; samples, noise, seed: smoothgrad's noisy
    copies (see ``attribution``). batch_size: images per pass for the methods that make
    many (scorecam's masked images, the path points, the noisy copies).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
    target = target or TARGETS[method][0]
    if target not in TARGETS[method]:
        raise ValueError(f"{method} explains the {' or '.join(TARGETS[method])} score, "
                         f"not the {target}")
    if trace and method in ("scorecam", "eigencam"):
        raise ValueError(f"{method} runs forward passes only; there is no backward pass to "
                         "trace")
    if layer is not None and method in INPUT_METHODS:
        raise ValueError(f"{method} is a gradient w.r.t. the input image; it has no layer")
    if method not in INPUT_METHODS:
        layer = conv_layer(model, layer)
    details = {} if details is None else details
    if trace and method in ("integrated-gradients", "smoothgrad"):
        raise ValueError(f"{method} makes one backward pass per point; --trace shows one "
                         "pass: use --method saliency")
    maps, classes = _explain(model, x, method, layer, class_index, target, batch_size,
                             details, trace, progress,
                             dict(steps=steps, samples=samples, noise=noise, seed=seed))
    for n in np.flatnonzero(~maps.reshape(len(maps), -1).any(axis=1)) if warn_empty else ():
        warnings.warn(f"image {n}: " + empty_map_message(method, classes[n], layer),
                      EmptyMapWarning, stacklevel=2)
    return maps, classes


def empty_map_message(method, class_name, layer):
    """Why a map is zero everywhere, in one sentence, for the method that made it.
    class_name: how to name the class (an index, or "tabby (281)")."""
    if method in INPUT_METHODS:
        return (f"the {method} map of class {class_name} is zero everywhere: the score's "
                "gradient w.r.t. the input vanishes (a saturated or dead network)")
    other = "gradcam" if method == "counterfactual" else "counterfactual"
    return (f"the {method} map of class {class_name} at {layer} is zero everywhere: no "
            "location has positive weighted evidence for the class (common for a class the "
            f"model does not predict); try the top-1 class, another --layer, or --method "
            f"{other}")


def _explain(model, x, method, layer, class_index, target, batch_size, details, trace,
             progress, options):
    """explain() without the checks and the empty-map warning."""
    if method in ("integrated-gradients", "smoothgrad"):
        probs = class_scores(model.forward(x))
        details["probs"] = probs
        classes = class_indices(class_index, probs)
        if method == "smoothgrad":
            details["gradient"] = smooth_grad(model, x, classes, target, options["samples"],
                                              options["noise"], batch_size, options["seed"])
            return normalise(np.abs(details["gradient"]).max(axis=3)), classes
        details["attributions"], details["completeness"] = integrated_gradients(
            model, x, classes, target, options["steps"], batch_size)
        return normalise(np.abs(details["attributions"].sum(axis=3))), classes
    if method in ("saliency", "guided-backprop"):
        probs, classes, grad = score_gradient(model, x, class_index, target,
                                               guided=(method == "guided-backprop"),
                                               trace=trace)
        details["probs"] = probs
        if method == "saliency":
            return normalise(np.abs(grad).max(axis=3)), classes
        return grad, classes
    if method == "scorecam":
        probs = class_scores(model.forward(x))
        details["probs"] = probs
        classes = class_indices(class_index, probs)
        details["scorecam_skipped"] = []
        return score_cam(model, x, layer, classes, batch_size, progress=progress,
                         skipped=details["scorecam_skipped"]), classes
    if method == "eigencam":
        outputs, kept = model.forward(x, keep=(layer,))
        details["probs"] = class_scores(outputs)
        details["activations"] = kept[layer]
        return eigen_cam(kept[layer]), class_indices(class_index, details["probs"])
    # explain() warns, once per map
    cams, classes = grad_cam(model, x, layer, class_index, target, details, trace,
                             warn_empty=False)
    if method == "gradcam":
        return cams, classes
    if method == "guided-gradcam":
        _, _, guided = score_gradient(model, x, classes, target, guided=True)
        up = np.stack([resize_bilinear(c, x.shape[1:3]) for c in cams])[..., None]
        return guided * up, classes
    details["raw"] = raw_cam(method, details["activations"], details["gradients"])
    return normalise(details["raw"]), classes
