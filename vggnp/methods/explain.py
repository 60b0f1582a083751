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

Each method is a record in ``registry.py`` (what it needs and gives) and a runner below;
the math is in ``gradcam.py``, ``cams.py``, ``scorecam.py`` and ``attribution.py``.

CAM maps are (N, h, w) at the layer's resolution and saliency, integrated-gradients and
smoothgrad (N, H, W) at the input's, each divided by its max (in [0, 1]); the guided
methods give (N, H, W, C) signed gradients in the input's channel order (see
``gradient_image``), and lrp, deep-taylor, deconvnet and gradient-x-input (N, H, W, C)
signed relevance or gradient x input, in the score's units, not divided (``lrp.py``).
"""

from dataclasses import dataclass

import numpy as np

from .arguments import check_method_arguments
from .array_checks import check_class_index, check_x
from .attribution import integrated_gradients, score_gradient, smooth_grad
from .cams import eigen_cam, raw_cam
from .empty_maps import warn_empty_maps
from .gradcam import class_indices, grad_cam, normalise
from .lrp import (conservation, deconvnet, gradient_x_input, input_bounds, relevance,
                  relevance_sums)
from .registry import filled_options, method_record
from .resize import resize_bilinear
from .scorecam import score_cam
from ..nn.trace import print_trace


def explain(model, x, method="gradcam", layer=None, class_index=None, target=None,
            batch_size=32, details=None, trace=False, progress=None,
            steps=None, samples=None, noise=None, seed=None, warn_empty=True,
            rule=None, epsilon=None, gamma=None, preprocess=None):
    """Explain the class ``class_index`` (default: each image's top-1) with ``method``.

    model: VGG16 or a KerasConvNet; x: (N, H, W, C) preprocessed. layer: the conv layer of
    the CAM methods (default: the last); the input methods (saliency, guided-backprop)
    refuse one. target: the score explained, "logit" or "softmax" (the method's record in
    ``registry.py`` says which it allows; default: the first). Returns (maps, classes):
    see the module docstring for the shapes; a map that is zero everywhere gives an EmptyMapWarning
    (unless ``warn_empty=False``: the caller says it, e.g. ``vggnp.stream``).
    details: optional dict, filled with "probs" (N, K) and, for gradient CAMs,
    "activations" and "gradients" at the layer; for scorecam "scorecam_skipped" (one count
    per image of the dead channels skipped); for integrated-gradients "attributions"
    (N, H, W, C) and "completeness" (one dict per image); for smoothgrad "gradient".
    progress: scorecam calls it as progress(channels done, channels to do).
    steps: integrated-gradients' path steps; samples, noise, seed: smoothgrad's noisy
    copies (see ``attribution``); None: OPTION_DEFAULTS', and refused with another method.
    batch_size: images per pass for the methods that make many (scorecam's masked images,
    the path points, the noisy copies).
    rule, epsilon, gamma: lrp's composite (None: OPTION_DEFAULTS') and its parameters
    (``lrp.py``; None: the composite's own), refused with any other method; preprocess:
    the mode x was preprocessed with (default: the model's), whose pixel range is the z^B
    rule's box. lrp, deep-taylor: details["relevance_sums"] ({layer: sum}, the input's
    "input"; the batch's), per image details["conservation"] (``lrp.conservation``).
    """
    record = method_record(method)
    own = filled_options(record, dict(steps=steps, samples=samples, noise=noise, seed=seed,
                                      rule=rule, epsilon=epsilon, gamma=gamma))
    check_x(model, x)
    check_class_index(model, class_index, len(x))
    target, layer = check_method_arguments(model, record, layer, target, trace, batch_size,
                                           own)
    if details is not None and not isinstance(details, dict):
        raise TypeError(f"details must be a dict (filled in) or None, not "
                        f"{type(details).__name__}")
    details = {} if details is None else details
    run = Run(model, x, method, layer, class_index, target, batch_size, details, trace,
              progress, preprocess=preprocess or model.default_preprocess, **own)
    maps, classes = RUNNERS[method](run)
    if warn_empty:
        warn_empty_maps(maps, classes, details.get("probs"), method, layer, stacklevel=2)
    return maps, classes


def image_heatmap(record, maps):
    """(N, H, W) in [0, 1], the heatmap of a method whose maps are images (N, H, W, C):
    a relevance's positive evidence (its channel sum, > 0), a gradient's magnitude (the
    largest |value| over the channels)."""
    if record.diverging:
        return normalise(np.maximum(maps.sum(axis=3), 0))
    return normalise(np.abs(maps).max(axis=3))


@dataclass
class Run:
    """The settings of one ``explain`` call, as the method runners read them."""
    model: object
    x: np.ndarray
    method: str
    layer: str
    class_index: object
    target: str
    batch_size: int
    details: dict
    trace: object
    progress: object
    steps: int
    samples: int
    noise: float
    seed: int
    rule: str
    epsilon: float
    gamma: float
    preprocess: str

    def classes_from_forward(self):
        """One forward pass: details["probs"] (N, K) and the classes (N,) to explain."""
        self.details["probs"] = self.model.class_scores(self.model.forward(self.x))
        return class_indices(self.class_index, self.details["probs"])


def _gradient_cam(run):
    """Grad-CAM and its variants: one forward and one backward pass to the layer."""
    cams, classes = grad_cam(run.model, run.x, run.layer, run.class_index, run.target,
                             run.details, run.trace, warn_empty=False)  # explain() warns
    if run.method == "gradcam":
        return cams, classes
    run.details["raw"] = raw_cam(run.method, run.details["activations"],
                                 run.details["gradients"])
    return normalise(run.details["raw"]), classes


def _guided_gradcam(run):
    """guided-backprop * Grad-CAM upsampled to the input (paper, sec. 3)."""
    cams, classes = grad_cam(run.model, run.x, run.layer, run.class_index, run.target,
                             run.details, run.trace, warn_empty=False)
    _, _, guided = score_gradient(run.model, run.x, classes, run.target, guided=True)
    return guided_times_cam(guided, cams), classes


def guided_times_cam(guided, cams):
    """Guided Grad-CAM: the guided gradient (N, H, W, C) times the Grad-CAM maps
    (N, h, w) upsampled to (H, W)."""
    up = np.stack([resize_bilinear(c, guided.shape[1:3]) for c in cams])[..., None]
    return guided * up.astype(guided.dtype, copy=False)  # float32 as every other map


def map_from_cam_pass(method, details):
    """The map (N, h, w) of ``method``, one of FROM_A_CAM_PASS, from the activations
    and gradients a Grad-CAM pass put in ``details``: what its own pass would give."""
    A = details["activations"]
    if RUNNERS[method] is _eigencam:
        return eigen_cam(A)
    return normalise(raw_cam(method, A, details["gradients"]))


def _input_gradient(run):
    """saliency (max over channels of |d y^c / d x|) and guided backprop (the gradient)."""
    probs, classes, grad = score_gradient(run.model, run.x, run.class_index, run.target,
                                          guided=(run.method == "guided-backprop"),
                                          trace=run.trace)
    run.details["probs"] = probs
    if run.method == "saliency":
        return normalise(np.abs(grad).max(axis=3)), classes
    return grad, classes


def _integrated_gradients(run):
    classes = run.classes_from_forward()
    run.details["attributions"], run.details["completeness"] = integrated_gradients(
        run.model, run.x, classes, run.target, run.steps, run.batch_size)
    return normalise(np.abs(run.details["attributions"].sum(axis=3))), classes


def _smoothgrad(run):
    classes = run.classes_from_forward()
    run.details["gradient"] = smooth_grad(run.model, run.x, classes, run.target, run.samples,
                                          run.noise, run.batch_size, run.seed)
    return normalise(np.abs(run.details["gradient"]).max(axis=3)), classes


def _scorecam(run):
    classes = run.classes_from_forward()
    run.details["scorecam_skipped"] = []
    return score_cam(run.model, run.x, run.layer, classes, run.batch_size,
                     progress=run.progress, skipped=run.details["scorecam_skipped"]), classes


def _eigencam(run):
    outputs, kept = run.model.forward(run.x, keep=(run.layer,))
    run.details["probs"] = run.model.class_scores(outputs)
    run.details["activations"] = kept[run.layer]
    return eigen_cam(kept[run.layer]), class_indices(run.class_index, run.details["probs"])


def _relevance(run):
    """lrp, deep-taylor, deconvnet, gradient-x-input: a signed map at the input."""
    steps = {"forward": [], "backward": []}
    if run.method in ("lrp", "deep-taylor"):
        bounds = input_bounds(run.preprocess, run.model.channels)
        rule = "deep_taylor" if run.method == "deep-taylor" else run.rule
        probs, classes, maps = relevance(run.model, run.x, run.class_index, rule, bounds,
                                         run.epsilon, run.gamma, trace=steps)
        run.details["relevance_sums"] = relevance_sums(steps, maps)
        run.details["conservation"] = conservation(steps, maps, rule)
    elif run.method == "deconvnet":
        probs, classes, maps = deconvnet(run.model, run.x, run.class_index, trace=steps)
    else:
        probs, classes, maps = gradient_x_input(run.model, run.x, run.class_index, steps)
    run.details["probs"] = probs
    if run.trace:
        print_trace(steps, run.model, run.x.itemsize, run.trace)
    return maps, classes


# How each method runs: (Run) -> (maps, classes). One entry per record of registry.METHODS.
RUNNERS = {"gradcam": _gradient_cam, "gradcam++": _gradient_cam, "hirescam": _gradient_cam,
           "xgradcam": _gradient_cam, "layercam": _gradient_cam,
           "counterfactual": _gradient_cam, "guided-gradcam": _guided_gradcam,
           "saliency": _input_gradient, "guided-backprop": _input_gradient,
           "integrated-gradients": _integrated_gradients, "smoothgrad": _smoothgrad,
           "scorecam": _scorecam, "eigencam": _eigencam, "lrp": _relevance,
           "deep-taylor": _relevance, "deconvnet": _relevance, "gradient-x-input": _relevance}
# The methods whose map is a function of one layer's activations A and their gradient g,
# which one Grad-CAM pass gives (``map_from_cam_pass``): the sanity checks share it.
FROM_A_CAM_PASS = tuple(m for m, runner in RUNNERS.items() if runner in (_gradient_cam,
                                                                        _eigencam))
