"""Sanity checks for saliency maps (Adebayo et al., NeurIPS 2018): does a map change when
the model's learned weights are replaced by random ones? A map that does not cannot be
explaining what the model learned -- it would look the same for an untrained network.

    cascading     re-initialise the layers from the top (predictions, fc2, fc1,
                  block5_conv3, ...), one more each step, and recompute every map
    independent   re-initialise one layer at a time, the others as trained

Re-initialisation as Keras initialises a new Conv2D or Dense: kernel glorot-uniform,
U(-l, l) with l = sqrt(6 / (fan_in + fan_out)) (fan = kh * kw * channels for a conv), bias
zero; seeded; the trained arrays are put back afterwards. Similarity of each map to the
original: Spearman's rank correlation (of the absolute maps, and of the signed ones where
a method has a sign) and SSIM (Wang et al. 2004; written here with SciPy's Gaussian filter).
"""

import contextlib

import numpy as np
from scipy import ndimage, stats

from .explain import FROM_A_CAM_PASS, explain, guided_times_cam, map_from_cam_pass
from .registry import METHODS, options_for, unused_options
from ..nn.layers import Conv2D, Dense
from .resize import resize_bilinear

def weight_layers(model):
    """The names of the layers with a kernel (Conv2D, Dense), from the top down."""
    return [layer.name for layer in reversed(model.layers) if isinstance(layer, (Conv2D, Dense))]


def glorot_uniform(shape, rng):
    """Keras' default kernel initializer: U(-l, l), l = sqrt(6 / (fan_in + fan_out))."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = receptive * shape[-2], receptive * shape[-1]
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


@contextlib.contextmanager
def randomised(model, names, seed=0):
    """Inside the block, the layers ``names`` have fresh Keras-initialised weights (each
    layer seeded by seed and its name, so a layer gets the same weights in every step);
    the trained arrays are back afterwards, whatever happens."""
    saved = {}
    try:
        for name in names:
            layer = model.layer(name)
            saved[name] = layer.w, layer.b
            rng = np.random.default_rng([seed, *name.encode()])
            layer.w = glorot_uniform(layer.w.shape, rng).astype(layer.w.dtype)
            layer.b = np.zeros_like(layer.b)
        yield
    finally:
        for name, (w, b) in saved.items():
            model.layer(name).w, model.layer(name).b = w, b


def maps_of(model, x, method, class_index, layer=None, **options):
    """{"abs": (H', W') map >= 0, "signed": (H', W') or absent} of one image x (1, H, W, C)."""
    details = {}
    # A randomised model's map may well be empty: no warning for that.
    maps, _ = explain(model, x, method, layer=layer if METHODS[method].layer else None,
                      class_index=class_index, details=details, batch_size=16,
                      warn_empty=False, **options_for(METHODS[method], options))
    return _abs_and_signed(METHODS[method], maps, details)


def _abs_and_signed(record, maps, details):
    """maps_of's answer from explain's maps (1, ...) and details."""
    if record.gives_image:
        details["raw"] = maps
        result = {"abs": np.abs(maps[0]).max(axis=-1)}
    else:
        result = {"abs": maps[0]}
    if record.signed:
        result["signed"] = details[record.signed][0].sum(axis=-1)
    return result


def step_maps(model, x, methods, class_index, layer=None, **options):
    """{method: maps_of(model, x, method, class_index, layer, **options)}, the same values
    for fewer passes: one Grad-CAM pass gives every map of FROM_A_CAM_PASS, and guided
    Grad-CAM is guided backprop's gradient times that Grad-CAM map (one guided pass for
    both). Each method on its own where options choose a target or a trace (a method
    that refuses them must still refuse)."""
    found = {}
    shared = [m for m in methods if m in FROM_A_CAM_PASS or m == "guided-gradcam"]
    if len(shared) > 1 and options.get("target") is None and not options.get("trace"):
        details = {}
        cams, _ = explain(model, x, "gradcam", layer=layer, class_index=class_index,
                          details=details, warn_empty=False,
                          **options_for(METHODS["gradcam"], options))
        found = {m: {"abs": map_from_cam_pass(m, details)[0]}
                 for m in shared if m in FROM_A_CAM_PASS}
        if "guided-gradcam" in methods:
            guided, _ = explain(model, x, "guided-backprop", class_index=class_index,
                                warn_empty=False,
                                **options_for(METHODS["guided-backprop"], options))
            found["guided-gradcam"] = _abs_and_signed(METHODS["guided-gradcam"],
                                                      guided_times_cam(guided, cams), {})
            if "guided-backprop" in methods:
                found["guided-backprop"] = _abs_and_signed(METHODS["guided-backprop"],
                                                           guided, {})
    return {m: found[m] if m in found else maps_of(model, x, m, class_index, layer, **options)
            for m in methods}


def spearman(a, b):
    """Spearman's rank correlation of two maps (ties ranked by their mean); None if one is
    constant (a rank correlation is then undefined)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(stats.spearmanr(a.ravel(), b.ravel())[0])


def ssim(a, b, sigma=1.5, truncate=3.5):
    """Mean structural similarity of two maps (H, W), each first scaled to [0, 1] by its
    max |.|:
        SSIM = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))
    with local means, variances and covariance under a Gaussian window (sigma 1.5, as
    Wang et al.), C1 = 0.01^2, C2 = 0.03^2 (dynamic range 1), averaged away from the
    border the window overhangs -- as scikit-image's structural_similarity(...,
    gaussian_weights=True, use_sample_covariance=False, data_range=1)."""
    a = a / max(np.abs(a).max(), 1e-12)
    b = b / max(np.abs(b).max(), 1e-12)
    border = int(truncate * sigma + 0.5)

    def blur(m):
        return ndimage.gaussian_filter(m.astype(np.float64), sigma, mode="reflect",
                                       truncate=truncate)
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
             / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))
    inner = index[border:-border or None, border:-border or None]
    return float((inner if inner.size else index).mean())


def similarities(original, changed, size):
    """{"spearman": r of the absolute maps, "spearman_signed": r or absent, "ssim": s};
    SSIM on the absolute maps upsampled to ``size`` (H, W), the model input's, so that
    its window is small against a map of any method."""
    found = {"spearman": spearman(original["abs"], changed["abs"]),
             "ssim": ssim(resize_bilinear(original["abs"], size),
                          resize_bilinear(changed["abs"], size))}
    if "signed" in original:
        found["spearman_signed"] = spearman(original["signed"], changed["signed"])
    return found


def sanity_check(model, x, methods, class_index, layer=None, seed=0, depth=None,
                 independent=True, progress=None, **options):
    """The model-parameter randomisation test for one image x (1, H, W, C) and one class.

    Returns {"original": {method: maps}, "cascading": [step, ...], "independent": [...]},
    each step {"randomised": [layer names], "maps": {method: maps}, method: similarities}.
    depth: how many layers from the top to randomise (default: all with weights).
    progress: called as progress(steps done, steps to do, the step's kind ("cascading" or
    "independent"), the last layer it randomised). options: keyword arguments of
    ``explain``; each method is given those that apply to it (``registry.options_for``),
    and one that none of them takes is refused (ValueError).
    """
    unused_options([METHODS[m] for m in methods], options)
    names = weight_layers(model)[:depth]
    original = step_maps(model, x, methods, class_index, layer, **options)
    result = {"original": original, "cascading": [], "independent": []}
    total = len(names) * (2 if independent else 1)

    def run_step(kind, randomise):
        maps = step_maps(model, x, methods, class_index, layer, **options)
        step = {"randomised": list(randomise), "maps": maps}
        step.update({m: similarities(original[m], maps[m], x.shape[1:3]) for m in methods})
        result[kind].append(step)
        if progress:
            done = len(result["cascading"]) + len(result["independent"])
            progress(done, total, kind, randomise[-1])
    # Each cascading step randomises one layer more, the layers above staying as the
    # steps before left them (the same weights: each layer's seed is its own), so that
    # each layer's random kernel is drawn once (VGG16's fc1: 103 M numbers), not once a
    # step below it (the whole cascade on VGG16 took twice as long: docs/speed.md).
    with contextlib.ExitStack() as cascade:
        for k, name in enumerate(names):
            cascade.enter_context(randomised(model, [name], seed))
            run_step("cascading", names[:k + 1])
    if independent:
        for name in names:
            with randomised(model, [name], seed):
                run_step("independent", [name])
    return result


def undefined(method, cascading):
    """Why some of ``method``'s rank correlations are undefined (None), or None if none is:
    a constant map (a black image's, say) has no ranks to correlate."""
    missing = sum(step[method]["spearman"] is None for step in cascading)
    if missing == len(cascading):
        return ("the original map is constant (an empty or flat image?), so no rank "
                "correlation with it exists")
    if missing:
        return (f"the map is constant after {missing} of {len(cascading)} steps, so no rank "
                "correlation exists there")
    return None


def verdict(method, cascading, threshold=0.5):
    """One line of what was measured: whether the map stays similar to the original (the
    Spearman rank correlation of the absolute maps >= threshold) as the layers are
    randomised from the top. "passes" if it is dissimilar from the first step, "fails" if
    it stays similar to the last, "passes below LAYER" in between; "undefined" when no
    correlation exists."""
    why = undefined(method, cascading)
    if all(step[method]["spearman"] is None for step in cascading):  # the original's fault
        return f"{method}: undefined -- {why}; this image tests nothing"
    line = _cascade_line(method, cascading, threshold)
    return f"{line} ({why}; counted as 0)" if why else line


def _cascade_line(method, cascading, t):
    scores = [step[method]["spearman"] for step in cascading]
    scores = [0.0 if s is None else s for s in scores]  # a constant map: all detail gone
    names = [step["randomised"][-1] for step in cascading]
    last = max((k for k, s in enumerate(scores) if s >= t), default=None)
    if last is None:
        return (f"{method}: passes -- Spearman {scores[0]:.2f} < {t} as soon as {names[0]} "
                "is randomised")
    if last == len(scores) - 1:
        return (f"{method}: fails -- Spearman still {scores[last]:.2f} >= {t} with every "
                f"layer down to {names[last]} randomised")
    return (f"{method}: passes below {names[last]} -- Spearman still {scores[last]:.2f} >= {t} "
            f"with the layers down to {names[last]} randomised, {scores[last + 1]:.2f} < {t} "
            f"once {names[last + 1]} is too")
