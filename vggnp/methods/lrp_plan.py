"""Which LRP rule each layer of a model takes: the composites by name
(``lrp.py`` runs them), which layers see the image (z^B's), and the BatchNormalization
layers folded into the conv before them.
"""

import numbers

import numpy as np

from ..nn.convnet_layers import Rescaling, Reshape, batch_norms_after
from ..nn.graph import IMAGE, Graph
from ..nn.graph_layers import ZeroPadding2D
from ..nn.layers import Dense, Flatten
from ..nn.relevance import Affine, AlphaBeta, Epsilon, Flat, Gamma, WSquare, ZBox

# The epsilon of each composite that has one, when --epsilon is not given.
EPSILONS = {"epsilon": 1e-7, "sequential_preset_a": 0.1,
            "sequential_preset_b": 0.1, "sequential_preset_a_flat": 0.1,
            "sequential_preset_b_flat": 0.1, "epsilon_gamma_box": 1e-6}
GAMMA = 0.25  # epsilon_gamma_box's, as zennit's


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
    """Which rule each conv and dense layer of one model takes, and each BatchNormalization
    folded into the conv before it: rules {layer name: rule}."""

    def __init__(self, name, rules):
        self.name, self.rules = name, rules

    def rule_for(self, layer):
        if layer.name not in self.rules:  # a BatchNormalization with no conv to fold into
            raise ValueError(f"LRP has no rule for layer {layer.name} "
                             f"({type(layer).__name__}): it does not follow a conv or dense "
                             "layer of its own that it could be folded into")
        return self.rules[layer.name]


def composite(model, name, bounds, epsilon=None, gamma=None):
    """The composite called ``name`` for ``model``'s layers. bounds: (low, high) of the
    input (numbers or (C,) arrays) for z^B; epsilon, gamma: None for the composite's own.
    The first layers are the conv or dense layers that see the image (``first_layers``);
    a BatchNormalization right after a conv (or dense) layer that feeds it alone is
    folded into it (``Folded``), as zennit's canonizers do."""
    refused = composite_refusal(name, epsilon, gamma)
    if refused:
        raise ValueError(refused)
    pick = _deep_taylor if name == "deep_taylor" else COMPOSITES[name]
    eps = EPSILONS.get(name, 0.0) if epsilon is None else epsilon
    if name in ("deep_taylor", "epsilon_gamma_box"):
        bounds = first_layer_bounds(model, bounds)
    first, gamma = first_layers(model), GAMMA if gamma is None else gamma
    rules = {layer.name: pick(layer, layer.name in first, bounds, eps, gamma)
             for layer in model.layers if isinstance(layer, Affine)}
    for kernel, norm in foldable(model):
        rules[kernel], rules[norm.name] = Folded(rules[kernel], norm), Pass()
    return Composite(name, rules)


def composite_refusal(name, epsilon=None, gamma=None):
    """Why the composite ``name`` cannot take these parameters, or None."""
    if name not in COMPOSITES and name != "deep_taylor":
        return f"unknown LRP rule {name!r}; rules: {', '.join(COMPOSITES)}"
    if epsilon is not None and name not in EPSILONS:
        return f"rule {name} has no epsilon; the rules with one: {', '.join(EPSILONS)}"
    if gamma is not None and name != "epsilon_gamma_box":
        return f"rule {name} has no gamma; only epsilon_gamma_box has one"
    for option, value in (("epsilon", epsilon), ("gamma", gamma)):
        if value is not None and (isinstance(value, bool) or not isinstance(
                value, numbers.Real) or not 0 <= value < np.inf):  # nan and inf fail too
            return f"{option} must be a finite number >= 0, not {value!r}"
    return None




class Pass:
    """The rule of a BatchNormalization folded into the layer before it: relevance passes
    through it whole (the folded layer's rule accounts for it)."""

    def propagate(self, layer, r):
        return r


class Folded:
    """A conv (or dense) layer's rule applied to the layer with the BatchNormalization
    after it folded in: w' = w * scale, b' = b * scale + shift (``BatchNorm``'s), the one
    affine map that the pair computes."""

    def __init__(self, rule, norm):
        self.rule, self.norm = rule, norm

    def propagate(self, layer, r):
        return self.rule.propagate(self.norm.folded_into(layer), r)


def inputs_of(model):
    """{layer name: (the names of the tensors it takes)}: a graph's own, or a chain's."""
    if isinstance(model, Graph):
        return model.inputs_of
    names = [IMAGE, *model.names]
    return {name: (names[k],) for k, name in enumerate(model.names)}


# What may stand between the image and a first layer: z^B's box goes through them
# (Rescaling maps it, zero padding must lie inside it, the reshapes keep it).
SEE_THROUGH = (Rescaling, ZeroPadding2D, Flatten, Reshape)


def first_layers(model):
    """The names of the conv and dense layers that see the image: through nothing but
    SEE_THROUGH layers (iNNvestigate's is_input_layer looks through the reshapes)."""
    before, first, wiring = {IMAGE}, set(), inputs_of(model)
    for layer in model.layers:
        if not all(name in before for name in wiring[layer.name]):
            continue
        if isinstance(layer, Affine):
            first.add(layer.name)
        elif isinstance(layer, SEE_THROUGH):
            before.add(layer.name)
    return first


def foldable(model):
    """[(conv or dense layer name, the BatchNorm after it)] where the BatchNorm takes that
    layer's output alone and the layer has no activation of its own."""
    return [(layer.name, norm) for layer, norm in batch_norms_after(model.layers,
                                                                      inputs_of(model))]


def first_layer_bounds(model, bounds):
    """The box (low, high) at the first conv or dense layer's input, from the box at the
    model's input: carried through the Rescaling layers before it (Keras' Rescaling and
    Normalization) and ZeroPadding2D (whose zeros must lie in the box); ValueError
    naming any other layer there."""
    low, high = (np.asarray(b, dtype=np.float64) for b in bounds)
    for layer in model.layers:
        if isinstance(layer, Affine):
            return low, high
        if isinstance(layer, (Flatten, Reshape)) or (isinstance(layer, ZeroPadding2D)
                                                     and (low <= 0).all() and (high >= 0).all()):
            continue
        if not isinstance(layer, Rescaling):
            raise ValueError(f"the z^B rule needs the input's bounds at the first conv layer; "
                             f"layer {layer.name} ({type(layer).__name__}) comes before it")
        ends = np.stack([low * layer.scale + layer.offset, high * layer.scale + layer.offset])
        low, high = ends.min(axis=0), ends.max(axis=0)
    raise ValueError("the model has no conv or dense layer")
