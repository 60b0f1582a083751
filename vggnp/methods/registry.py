"""One record per explanation method: what it needs and what it gives.

The command line (which options apply), the report, the sanity checks and ``explain``
read these records; no other module keeps a list of method names. The math of each
method is in its family's module (``gradcam.py``, ``cams.py``, ``scorecam.py``,
``attribution.py``); ``explain.py`` runs a method by name.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """What one method needs and gives.

    name: the --method name. paper: who proposed it.
    layer: True if it explains a conv layer's activations A (the CAMs), False if it is a
        gradient w.r.t. the input image (it takes no --layer).
    targets: the scores it can explain, the default first: "logit" and/or "softmax" (the
        output probability); ("none",) for a map that depends on no class.
    output: "heatmap" (N, h, w) in [0, 1], or "image" (N, H, W, C) signed gradients.
    raw_units: its map before normalisation is a sum of gradient x activation terms (or a
        relevance), in the units of the score, so ``--scale raw`` can show several images
        on one scale.
    backward: "one" (one backward pass, which --trace shows), "many" (one per path point
        or noisy copy) or "none" (forward passes only).
    options: the command-line options that belong to it alone (--steps, --samples...).
    signed: the details key of its signed attribution (N, H, W, C), or None.
    cost: what one image costs, in words.
    why_target: why it explains only the targets it does (said when --target is refused).
    diverging: its image output is a signed relevance, drawn red (> 0) and blue (< 0) about
        zero, as the LRP literature draws it, rather than as a gradient picture.
    """
    name: str
    paper: str
    layer: bool
    targets: tuple = ("logit", "softmax")
    output: str = "heatmap"
    raw_units: bool = False
    backward: str = "one"
    options: tuple = ()
    signed: str = None
    cost: str = "one forward and one backward pass"
    why_target: str = ""
    diverging: bool = False

    @property
    def gives_image(self):
        """True when the output is a signed gradient image, not a heatmap."""
        return self.output == "image"


_ALL = [
    Method("gradcam", "Selvaraju et al. 2017", layer=True, raw_units=True),
    Method("gradcam++", "Chattopadhyay et al. 2018", layer=True),
    Method("hirescam", "Draelos & Carin 2020", layer=True, raw_units=True),
    Method("xgradcam", "Fu et al. 2020", layer=True, raw_units=True),
    Method("layercam", "Jiang et al. 2021", layer=True, raw_units=True),
    Method("scorecam", "Wang et al. 2020", layer=True, targets=("softmax",), backward="none",
           cost="one forward pass, then one per live channel of the layer (up to 512 more at "
                "VGG16's block5_conv3)",
           why_target="Score-CAM weighs channels by the class probability of masked images, "
                      "with no gradient"),
    Method("eigencam", "Muhammad & Yeasin 2020", layer=True, targets=("none",),
           backward="none", cost="one forward pass and an SVD",
           why_target="Eigen-CAM looks at the activations alone, with no score and no "
                      "gradient"),
    Method("guided-backprop", "Springenberg et al. 2015", layer=False, output="image",
           signed="raw"),
    Method("guided-gradcam", "Selvaraju et al. 2017", layer=True, output="image",
           signed="raw", cost="two forward and two backward passes"),
    Method("counterfactual", "Selvaraju et al. 2017, sec. 5.3", layer=True, raw_units=True),
    Method("saliency", "Simonyan et al. 2014", layer=False),
    Method("integrated-gradients", "Sundararajan et al. 2017", layer=False, backward="many",
           options=("steps",), signed="attributions",
           cost="one forward and backward pass per path step (--steps, default 64)"),
    Method("smoothgrad", "Smilkov et al. 2017", layer=False, backward="many",
           options=("samples", "noise", "seed"), signed="gradient",
           cost="one forward and backward pass per noisy copy (--samples, default 50)"),
    Method("lrp", "Bach et al. 2015; Montavon et al. 2019", layer=False, targets=("logit",),
           output="image", raw_units=True, options=("rule", "epsilon", "gamma"), diverging=True,
           cost="one forward and one relevance pass (two to four products per conv or "
                "dense layer, by its rule)",
           why_target="LRP passes the logit's value down: the relevance sums to it"),
    Method("deep-taylor", "Montavon et al. 2017", layer=False, targets=("logit",),
           output="image", diverging=True, raw_units=True,
           cost="one forward and one relevance pass",
           why_target="Deep Taylor decomposes the logit's value"),
    Method("deconvnet", "Zeiler & Fergus 2014", layer=False, targets=("logit",),
           output="image", why_target="the deconvnet starts from the logit"),
    Method("gradient-x-input", "Shrikumar et al. 2016", layer=False, targets=("logit",),
           output="image", diverging=True, raw_units=True,
           why_target="in a ReLU network without biases it is LRP-0, which starts from the "
                      "logit"),
]

METHODS = {method.name: method for method in _ALL}  # in the order of the docs' table

# The defaults of the options that belong to one method each (``Method.options``).
# rule: lrp's composite (``lrp.COMPOSITES``); epsilon, gamma: None, the composite's own.
OPTION_DEFAULTS = {"steps": 64, "samples": 50, "noise": 0.15, "seed": 0,
                   "rule": "epsilon_gamma_box", "epsilon": None, "gamma": None}


def options_for(record, options):
    """The keyword arguments among ``options`` that ``record``'s method takes: the
    options of the other methods (OPTION_DEFAULTS' keys) left out, for a caller that runs
    several methods with one set of options (``unused_options`` says those none takes)."""
    return {name: value for name, value in options.items()
            if name not in OPTION_DEFAULTS or name in record.options}


def unused_options(records, options):
    """ValueError naming the options given (not None) among ``options`` that none of
    ``records``' methods takes, each with the method that does: ignored, they would
    change nothing, silently."""
    unused = [name for name, value in options.items() if name in OPTION_DEFAULTS
              and value is not None and not any(name in r.options for r in records)]
    if unused:
        by_owner = {}
        for name in unused:
            owner = next(m.name for m in METHODS.values() if name in m.options)
            by_owner.setdefault(owner, []).append(name)
        owners = ", ".join(f"{', '.join(names)} (only {owner})"
                           for owner, names in by_owner.items())
        names = ", ".join(r.name for r in records)
        subject = f"method {names} takes" if len(records) == 1 else f"methods {names} take"
        raise ValueError(f"{subject} no {owners}")


def filled_options(record, options):
    """``options`` ({name: value or None} for OPTION_DEFAULTS' names) with each None
    replaced by its default; ValueError naming the options given (not None) that
    ``record``'s method does not take, and the method that does."""
    unused_options([record], options)
    return {name: OPTION_DEFAULTS[name] if value is None else value
            for name, value in options.items()}


def method_record(name):
    """The record of the method called ``name``; ValueError naming the methods if none."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; methods: {', '.join(METHODS)}")
    return METHODS[name]


def refusal(method, layer=None, target=None, trace=False):
    """Why ``explain`` cannot run ``method`` (a record) with these settings, or None: the
    one place that checks them (the command line adds its own options' checks)."""
    if target is not None and target not in method.targets:
        if method.targets == ("none",):
            return (f"{method.name} explains no class's score (its map is the same for "
                    f"every class): it takes no target, not {target}")
        return f"{method.name} explains the {' or '.join(method.targets)} score, not the {target}"
    if trace and method.backward == "none":
        return f"{method.name} runs forward passes only; there is no backward pass to trace"
    if layer is not None and not method.layer:
        return f"{method.name} is a gradient w.r.t. the input image; it has no layer"
    if trace and method.backward == "many":
        return (f"{method.name} makes one backward pass per point; --trace (trace=True) "
                "shows one pass: use --method saliency (method=\"saliency\")")
    return None
