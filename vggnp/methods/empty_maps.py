"""A map that is zero everywhere: the warning, and why it happened, for each method.

An empty map is not an error (a class the model does not predict often has no positive
evidence at a layer), but it is never shown as a silent blank: the library warns
(``EmptyMapWarning``), the commands print a note. Both say the same sentence, naming
what to try as the reader would pass it: ``layer=`` in Python, ``--layer`` on the
command line.
"""

import warnings

import numpy as np

from .registry import method_record


class EmptyMapWarning(RuntimeWarning):
    """A map is zero everywhere: nothing at the layer speaks for the class."""


def is_top(scores, c):
    """Whether class c has the highest of ``scores`` (K,), alone (a tie is not a choice)."""
    scores = np.asarray(scores)
    return bool(scores[c] == scores.max() and np.count_nonzero(scores == scores.max()) == 1)


def _option(name, value=None, *, cli):
    """How to say an option to the reader: '--layer', '--method gradcam' on the command
    line; 'layer=', 'method="gradcam"' in Python."""
    if cli:
        return f"--{name}" + (f" {value}" if value else "")
    return f"{name}=" + (f'"{value}"' if value else "")


def empty_map_message(method, class_name, layer, *, top, cli=False):
    """Why a map is zero everywhere, in one sentence, for the method that made it.
    class_name: how to name the class (an index, or "tabby (281)"); top: whether it is
    the image's top-1 class, alone (``is_top``): the advice depends on it; cli: name the
    options as the commands take them (else as ``explain`` does)."""
    if method in ("lrp", "deep-taylor"):
        start = "max(logit, 0)" if method == "deep-taylor" else "the logit"
        return (f"the {method} map of class {class_name} is zero everywhere: no relevance "
                f"reaches the input ({start} is 0, or the rules drop it on the way)")
    if not method_record(method).layer:
        return (f"the {method} map of class {class_name} is zero everywhere: the score's "
                "gradient w.r.t. the input vanishes (a saturated or dead network)")
    of_class = "" if method == "eigencam" else f" of class {class_name}"  # eigencam has none
    start = f"the {method} map{of_class} at {layer} is zero everywhere: "
    another_layer = "another " + _option("layer", cli=cli)
    if method == "eigencam":  # no class in it
        return start + ("the activations' first principal component is nowhere positive; "
                        f"try {another_layer}")
    if method == "counterfactual":
        return start + ("no location has evidence against the class (usual for a class the "
                        f"model is sure of); try {another_layer}, or "
                        + _option("method", "gradcam", cli=cli))
    why, advice = (("though it is the model's top class: an untrained or saturated model, "
                    "or a layer whose features argue against it", "try") if top else
                   ("common for a class the model does not predict", "try the top-1 class,"))
    return start + (f"no location has positive weighted evidence for the class ({why}); "
                    f"{advice} {another_layer}, or " + _option("method", "counterfactual",
                                                                cli=cli))


def warn_empty_maps(maps, classes, probs, method, layer, stacklevel):
    """An EmptyMapWarning for each map of ``maps`` (N, ...) that is zero everywhere; probs
    (N, K) the class scores (None: the top class unknown), classes (N,)."""
    for n in np.flatnonzero(~maps.reshape(len(maps), -1).any(axis=1)):
        top = probs is not None and is_top(probs[n], classes[n])
        warnings.warn(f"image {n}: " + empty_map_message(method, classes[n], layer, top=top),
                      EmptyMapWarning, stacklevel=stacklevel + 1)
