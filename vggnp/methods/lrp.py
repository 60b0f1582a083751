"""Layer-wise Relevance Propagation and its kin: the hand-written backward pass run with
another rule at each layer (``vggnp/nn/relevance.py`` holds the rules).

    lrp               R at the logit y^c (its value, the other logits 0), passed down
                      layer by layer: each conv and dense layer by the rule its composite
                      gives it, max-pooling to the winners, average pooling in
                      proportion, ReLUs as it is                          (Bach et al. 2015)
    deep-taylor       R = max(y^c, 0) passed down by z+ at every layer (their inputs are
                      ReLU outputs, >= 0), z^B at the first     (Montavon et al. 2017)
    deconvnet         d y^c / d x with every ReLU passing max(dout, 0) instead of the
                      forward's mask                           (Zeiler & Fergus 2014)
    gradient-x-input  x * d y^c / d x (equal to LRP-0 in a ReLU network without biases)

A composite says which rule each layer takes; the names are iNNvestigate's analyzers'
without their "lrp." prefix, and zennit's EpsilonGammaBox:

    z, epsilon        LRP-0 / LRP-epsilon everywhere (epsilon: 1e-7, iNNvestigate's)
    alpha_1_beta_0,   LRP-alpha-beta everywhere; z_plus is alpha_1_beta_0 without the
    alpha_2_beta_1,   biases, as are the _IB ("ignore bias") variants
    z_plus
    w_square, flat    the w^2 and flat rules everywhere
    sequential_       dense layers epsilon = 0.1, conv layers alpha_1_beta_0 (_a) or
    preset_a/_b       alpha_2_beta_1 (_b); _flat: the first layer flat
    epsilon_gamma_box dense layers epsilon = 1e-6, conv layers gamma = 0.25, the first
                      layer z^B with the input's bounds (Montavon et al.'s recommendation
                      for VGG16; zennit's defaults)

Every map is (N, H, W, C): the signed relevance at the input, shaped as x.
"""

import numpy as np

from ..files.preprocess import preprocess
from ..nn.activation_layers import ELU, PReLU
from ..nn.graph_layers import ReLU
from ..nn.convnet_layers import BatchNorm
from ..nn.layers import Layer
from ..nn.merge_layers import Maximum, Multiply
from .gradcam import backward_seed, class_indices
from .lrp_plan import composite
from .registry import OPTION_DEFAULTS

# The rules whose every layer passes down all the relevance it gets (no bias, no epsilon;
# z+ as long as each output with relevance has a positive contribution), and how far the
# input's sum may be from the start's before a warning says so.
CONSERVING = ("z_plus", "alpha_1_beta_0_IB", "w_square", "flat", "deep_taylor")
LEAK_TOLERANCE = 1e-3
GROWTH_LIMIT = 10  # |input sum| / |start| beyond which any rule is said to be unstable


def check_relu_network(model, method):
    """ValueError (one line) unless every nonlinearity of ``model`` (but the output's
    softmax or sigmoid) is a ReLU or a max-pooling: the networks LRP's rules and the
    deconvnet are defined for."""
    for layer in model.layers[:-1]:
        relu_options = isinstance(layer, ReLU) and not (layer.plain and layer.max_value is None)
        if layer.activation_name not in (None, "relu", "linear") or relu_options:
            kind = layer.activation_name or relu_kind(layer)
            raise ValueError(f"{method} needs ReLU activations, but layer {layer.name} "
                             f"ends in {kind}")
        if isinstance(layer, (ELU, PReLU, Multiply, Maximum)):
            raise ValueError(f"{method} needs ReLU activations, but layer {layer.name} is "
                             f"a {type(layer).__name__}")


def relu_kind(layer):
    """A Keras ReLU layer with options, named by them: "ReLU6 (max_value 6)"..."""
    said = [f"{name} {value:g}" for name, value, default in (
        ("max_value", layer.max_value, None), ("negative_slope", layer.slope, 0),
        ("threshold", layer.threshold, 0)) if value != default]
    six = "ReLU6" if layer.plain and layer.max_value == 6 else "a ReLU"
    return f"{six} ({', '.join(said)}), not a plain ReLU"


def model_refusal(model, method, rule=OPTION_DEFAULTS["rule"], bounds=(0, 1), epsilon=None,
                  gamma=None):
    """Why ``method`` (lrp, deep-taylor, deconvnet) cannot explain ``model``, or None,
    before any image: its activations, and for the relevance methods each layer's rule
    (a layer without one, a BatchNormalization with no conv to fold into) and the box."""
    try:
        check_relu_network(model, "LRP" if method == "lrp" else method)
        if method in ("lrp", "deep-taylor"):
            plan = composite(model, "deep_taylor" if method == "deep-taylor" else rule,
                             bounds, epsilon, gamma)
            for layer in model.layers:
                if type(layer).relevance is Layer.relevance:
                    layer.relevance(None, None)  # raises: no rule, named
                if isinstance(layer, BatchNorm):
                    plan.rule_for(layer)  # raises unless folded
    except ValueError as e:
        return str(e)
    return None


def relevance(model, x, class_index, rule, bounds, epsilon=None, gamma=None, trace=None):
    """(class scores (N, K), classes (N,), relevance at the input (N, H, W, C)) for the
    composite ``rule`` (or "deep_taylor"). The relevance starts at the logit y^c of each
    image's class, as its value (deep_taylor: max(y^c, 0)). trace: None, a list (the
    backward's rows, each with the relevance "arriving" at a layer's output and the "sum"
    it passes down), or {"forward": [], "backward": []} for both passes; "start" (per
    image) and "start_sum" are then set too."""
    plan = composite(model, rule, bounds, epsilon, gamma)
    check_relu_network(model, "LRP" if rule != "deep_taylor" else "deep-taylor")
    steps = _passes(trace)
    # The rules read each conv's own caches; the composite folds the BatchNorms itself.
    outputs = model.forward(x, trace=steps["forward"], fold=False)
    probs = model.class_scores(outputs)
    classes = class_indices(class_index, probs)
    seed = backward_seed(outputs, classes)
    logits = model.layers[-1].z
    start = seed * logits
    if rule == "deep_taylor":
        start = np.maximum(start, 0)
    if isinstance(trace, dict):
        trace["start"] = start.sum(axis=1, dtype=np.float64)  # per image
        trace["start_sum"] = float(trace["start"].sum())
    r = model.backward(start.astype(logits.dtype), start=model.names[-1], from_logits=True,
                       relevance=plan, trace=steps["backward"])
    return probs, classes, r


def deconvnet(model, x, class_index, trace=None):
    """(class scores, classes, the deconvnet signal at the input (N, H, W, C)): the
    gradient of y^c with every ReLU passing max(dout, 0). trace: as ``relevance``'s."""
    check_relu_network(model, "deconvnet")
    return _from_logit(model, x, class_index, trace, deconvnet=True)


def gradient_x_input(model, x, class_index, trace=None):
    """(class scores, classes, x * d y^c / d x (N, H, W, C))."""
    probs, classes, grad = _from_logit(model, x, class_index, trace)
    return probs, classes, x * grad


def _passes(trace):
    """The rows of each pass a ``trace`` argument asks for: a dict of both, or a list for
    the backward pass alone (None: neither)."""
    return trace if isinstance(trace, dict) else {"forward": None, "backward": trace}


def _from_logit(model, x, class_index, trace, deconvnet=False):
    steps = _passes(trace)
    outputs = model.forward(x, trace=steps["forward"])
    probs = model.class_scores(outputs)
    classes = class_indices(class_index, probs)
    grad = model.backward(backward_seed(outputs, classes), start=model.names[-1],
                          from_logits=True, deconvnet=deconvnet, trace=steps["backward"])
    return probs, classes, grad


def conservation(steps, r, rule):
    """Per image {"start", "input", "conserving"}: the relevance it started with, its sum
    at the input (r: (N, H, W, C)), and whether the rule passes all of it down."""
    at_input = r.reshape(len(r), -1).sum(axis=1, dtype=np.float64)
    return [{"start": float(a), "input": float(b), "conserving": rule in CONSERVING}
            for a, b in zip(steps["start"], at_input)]


def conservation_warning(check):
    """The warning for one image's ``conservation`` entry, or None: a rule that conserves
    relevance whose input sum is off the start by more than LEAK_TOLERANCE of it, or any
    rule whose relevance grew past GROWTH_LIMIT times the start (a denominator near zero:
    the gamma or z rule at a layer whose outputs can be negative, say)."""
    if not check:
        return None
    start, found = check["start"], check["input"]
    if not np.isfinite(found):
        return "the relevance is not finite: the rule divides by a zero on this model"
    if abs(found) > GROWTH_LIMIT * max(abs(start), 1e-12):
        return (f"the relevance sums to {found:.4g} at the input, {abs(found / start):.3g} "
                f"times the {start:.4g} it started with: the rule is unstable on this "
                "model (a denominator near zero); --trace shows the layer; try --rule "
                "epsilon or z_plus")
    off = abs(found - start)
    if not check["conserving"] or off <= LEAK_TOLERANCE * abs(start):
        return None
    return (f"the relevance sums to {found:.4g} at the input, not the {start:.4g} it "
            f"started with (off by {100 * off / max(abs(start), 1e-12):.2g} %), though the "
            "rule passes all of it down: some output with relevance had no positive "
            "contribution; --trace shows the layer")


def relevance_sums(steps, r):
    """{layer name: the relevance sum at its output (all images of the batch together),
    ..., "input": at the input (r: (N, H, W, C))}, from the top down, of a traced
    ``relevance`` run (on a graph, what arrives at a tensor from all its consumers)."""
    sums = {row["layer"].name: row["arriving"] for row in steps["backward"]}
    sums["input"] = float(r.sum(dtype=np.float64))
    return sums


def input_bounds(mode, channels):
    """(low, high): per channel (C,), the model inputs of pixels 0 and 255 through the
    preprocessing ``mode`` (VGG16's caffe: -mean and 255 - mean of each BGR channel)."""
    ends = preprocess(np.array([[0.0] * channels, [255.0] * channels], np.float32), mode)
    return ends.min(axis=0), ends.max(axis=0)
