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
from ..nn.convnet_layers import Rescaling
from ..nn.graph import Graph
from ..nn.graph_layers import ReLU
from ..nn.layers import Dense
from ..nn.relevance import Affine, AlphaBeta, Epsilon, Flat, Gamma, WSquare, ZBox
from .gradcam import backward_seed, class_indices, class_scores

# The epsilon of each composite that has one, when --epsilon is not given.
EPSILONS = {"epsilon": 1e-7, "sequential_preset_a": 0.1,
            "sequential_preset_b": 0.1, "sequential_preset_a_flat": 0.1,
            "sequential_preset_b_flat": 0.1, "epsilon_gamma_box": 1e-6}
GAMMA = 0.25  # epsilon_gamma_box's, as zennit's
# The rules whose every layer passes down all the relevance it gets (no bias, no epsilon;
# z+ as long as each output with relevance has a positive contribution), and how far the
# input's sum may be from the start's before a warning says so.
CONSERVING = ("z_plus", "alpha_1_beta_0_IB", "w_square", "flat", "deep_taylor")
LEAK_TOLERANCE = 1e-3


def _everywhere(rule):
    return lambda layer, first, bounds, eps, gamma: rule(eps)


def _preset(conv_rule, first_flat):
    def pick(layer, first, bounds, eps, gamma):
        if first and first_flat:
            return Flat()
        return Epsilon(eps) if isinstance(layer, Dense) else conv_rule
    return pick


def _epsilon_gamma_box(layer, first, bounds, eps, gamma):
    if first:
        return ZBox(*bounds)
    return Epsilon(eps) if isinstance(layer, Dense) else Gamma(gamma)


def _deep_taylor(layer, first, bounds, eps, gamma):
    """Deep Taylor picks the rule by the input's domain: z^B for the image's box, z+ for
    the inputs >= 0 that every later layer gets from a ReLU (iNNvestigate likewise)."""
    return ZBox(*bounds) if first else AlphaBeta(1, 0, bias=False)


# name -> pick(layer, first, bounds, epsilon, gamma) -> the layer's rule
COMPOSITES = {
    "z": _everywhere(lambda eps: Epsilon(0.0)),
    "epsilon": _everywhere(lambda eps: Epsilon(eps)),
    "w_square": _everywhere(lambda eps: WSquare()),
    "flat": _everywhere(lambda eps: Flat()),
    "alpha_1_beta_0": _everywhere(lambda eps: AlphaBeta(1, 0)),
    "alpha_1_beta_0_IB": _everywhere(lambda eps: AlphaBeta(1, 0, bias=False)),
    "alpha_2_beta_1": _everywhere(lambda eps: AlphaBeta(2, 1)),
    "alpha_2_beta_1_IB": _everywhere(lambda eps: AlphaBeta(2, 1, bias=False)),
    "z_plus": _everywhere(lambda eps: AlphaBeta(1, 0, bias=False)),
    "sequential_preset_a": _preset(AlphaBeta(1, 0), first_flat=False),
    "sequential_preset_b": _preset(AlphaBeta(2, 1), first_flat=False),
    "sequential_preset_a_flat": _preset(AlphaBeta(1, 0), first_flat=True),
    "sequential_preset_b_flat": _preset(AlphaBeta(2, 1), first_flat=True),
    "epsilon_gamma_box": _epsilon_gamma_box,
}


class Composite:
    """Which rule each conv and dense layer of one model takes: rules {layer name: rule}."""

    def __init__(self, name, rules):
        self.name, self.rules = name, rules

    def rule_for(self, layer):
        return self.rules[layer.name]


def composite(model, name, bounds, epsilon=None, gamma=None):
    """The composite called ``name`` for ``model``'s layers. bounds: (low, high) of the
    input (numbers or (C,) arrays) for z^B; epsilon, gamma: None for the composite's own.
    The first layer is the first conv or dense layer (the one that sees the image)."""
    refused = composite_refusal(name, epsilon, gamma)
    if refused:
        raise ValueError(refused)
    pick = _deep_taylor if name == "deep_taylor" else COMPOSITES[name]
    eps = EPSILONS.get(name, 0.0) if epsilon is None else epsilon
    if name in ("deep_taylor", "epsilon_gamma_box"):
        bounds = first_layer_bounds(model, bounds)
    affine = [layer for layer in model.layers if isinstance(layer, Affine)]
    gamma = GAMMA if gamma is None else gamma
    return Composite(name, {layer.name: pick(layer, layer is affine[0], bounds, eps, gamma)
                            for layer in affine})


def composite_refusal(name, epsilon=None, gamma=None):
    """Why the composite ``name`` cannot take these parameters, or None."""
    if name not in COMPOSITES and name != "deep_taylor":
        return f"unknown LRP rule {name!r}; rules: {', '.join(COMPOSITES)}"
    if epsilon is not None and (name not in EPSILONS or not epsilon >= 0):
        return (f"--epsilon ({epsilon}) must be >= 0 and goes with the rules that have one: "
                f"{', '.join(EPSILONS)}")
    if gamma is not None and (name != "epsilon_gamma_box" or not gamma >= 0):
        return f"--gamma ({gamma}) must be >= 0 and goes with --rule epsilon_gamma_box"
    return None


def check_relu_network(model, method):
    """ValueError (one line) unless ``model`` is a chain whose hidden layers end in ReLUs
    or nothing: the networks LRP's rules and the deconvnet are defined for."""
    if isinstance(model, Graph):
        raise ValueError(f"{method} runs on chains of layers (VGG16, Sequential models); "
                         "on a graph with Add or Concatenate it is not built yet")
    for layer in model.layers[:-1]:
        if layer.activation_name not in (None, "relu", "linear") or \
                (isinstance(layer, ReLU) and not (layer.plain and layer.max_value is None)):
            kind = layer.activation_name or "a ReLU with options"
            raise ValueError(f"{method} needs ReLU activations, but layer {layer.name} "
                             f"ends in {kind}")


def relevance(model, x, class_index, rule, bounds, epsilon=None, gamma=None, trace=None):
    """(class scores (N, K), classes (N,), relevance at the input (N, H, W, C)) for the
    composite ``rule`` (or "deep_taylor"). The relevance starts at the logit y^c of each
    image's class, as its value (deep_taylor: max(y^c, 0)). trace: None, a list (the
    backward's rows, each with the "sum" of the relevance that layer passes down), or
    {"forward": [], "backward": []} for both passes; "start_sum" is then set too."""
    plan = composite(model, rule, bounds, epsilon, gamma)
    check_relu_network(model, "LRP" if rule != "deep_taylor" else "deep-taylor")
    steps = trace if isinstance(trace, dict) else {"forward": None, "backward": trace}
    outputs = model.forward(x, trace=steps["forward"])
    probs = class_scores(outputs)
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


def _from_logit(model, x, class_index, trace, deconvnet=False):
    steps = trace if isinstance(trace, dict) else {"forward": None, "backward": trace}
    outputs = model.forward(x, trace=steps["forward"])
    probs = class_scores(outputs)
    classes = class_indices(class_index, probs)
    grad = model.backward(backward_seed(outputs, classes), start=model.names[-1],
                          from_logits=True, deconvnet=deconvnet, trace=steps["backward"])
    return probs, classes, grad


def first_layer_bounds(model, bounds):
    """The box (low, high) at the first conv or dense layer's input, from the box at the
    model's input: carried through the Rescaling layers before it (Keras' Rescaling and
    Normalization); ValueError naming any other layer there."""
    low, high = (np.asarray(b, dtype=np.float64) for b in bounds)
    for layer in model.layers:
        if isinstance(layer, Affine):
            return low, high
        if not isinstance(layer, Rescaling):
            raise ValueError(f"the z^B rule needs the input's bounds at the first conv layer; "
                             f"layer {layer.name} ({type(layer).__name__}) comes before it")
        ends = np.stack([low * layer.scale + layer.offset, high * layer.scale + layer.offset])
        low, high = ends.min(axis=0), ends.max(axis=0)
    raise ValueError("the model has no conv or dense layer")


def conservation(steps, r, rule):
    """Per image {"start", "input", "conserving"}: the relevance it started with, its sum
    at the input (r: (N, H, W, C)), and whether the rule passes all of it down."""
    at_input = r.reshape(len(r), -1).sum(axis=1, dtype=np.float64)
    return [{"start": float(a), "input": float(b), "conserving": rule in CONSERVING}
            for a, b in zip(steps["start"], at_input)]


def conservation_warning(check):
    """The warning for one image's ``conservation`` entry, or None: a rule that conserves
    relevance whose input sum is off the start by more than LEAK_TOLERANCE of it."""
    if not check or not check["conserving"]:
        return None
    off = abs(check["input"] - check["start"])
    if off <= LEAK_TOLERANCE * abs(check["start"]) or not np.isfinite(off):
        return None if np.isfinite(off) else "the relevance is not finite"
    return (f"the relevance sums to {check['input']:.4g} at the input, not the "
            f"{check['start']:.4g} it started with (off by "
            f"{100 * off / max(abs(check['start']), 1e-12):.2g} %), though the rule passes "
            "all of it down: some output with relevance had no positive contribution; "
            "--trace shows the layer")


def relevance_sums(steps):
    """{layer name: the relevance sum at its output (all images of the batch together),
    ..., "input": at the input}, from the top down, of a traced ``relevance`` run."""
    sums, above = {}, steps["start_sum"]
    for row in steps["backward"]:
        sums[row["layer"].name] = above
        above = row["sum"]
    sums["input"] = above
    return sums


def input_bounds(mode, channels):
    """(low, high): per channel (C,), the model inputs of pixels 0 and 255 through the
    preprocessing ``mode`` (VGG16's caffe: -mean and 255 - mean of each BGR channel)."""
    ends = preprocess(np.array([[0.0] * channels, [255.0] * channels], np.float32), mode)
    return ends.min(axis=0), ends.max(axis=0)
