"""Compare vggnp with TensorFlow reference values (from scripts/tf_reference.py).

Two comparisons, because float32 max-pooling is ambiguous at near-ties. Real photos have
windows whose two largest values agree to ~1e-6 relative (uniform regions); which of
them is larger is then decided by rounding, which differs between any two float32
implementations, and the gradient of that window goes to a different position.
- ``compare_forward`` runs vggnp end to end and compares the logits and every layer
  output (1e-4); the gradients w.r.t. block5_conv3 and block4_conv3 elementwise outside
  near-tied windows and by window sum inside them (where any routing is right; 1e-4);
  and the gradient w.r.t. the input, where the few windows routed the other way (and a
  pre-activation within rounding of 0) show, within ``input_tol`` (5e-2).
- ``compare_backward`` runs each vggnp layer's forward on TensorFlow's own input to that
  layer, so that every cache (ReLU masks, max-pool argmax) holds TF's values, then runs
  vggnp's backward: the gradients w.r.t. the layer and the input must then equal TF's
  elementwise (1e-4). (A pre-activation within rounding of 0 is the same ambiguity for
  ReLU: its mask is taken from TF too.)
All errors are relative to the max |value| of TF's tensor (``relative_to_max``).
"""

import numpy as np


NEAR_TIE = 1e-5  # relative gap between a window's two largest values counted as a tie


def relative_to_max(actual, expected):
    """max |actual - expected| / max |expected|: the error on the scale of the tensor."""
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def _windows(a):
    """(N, H, W, C) -> (N, H//2, W//2, C, 4): the 2x2 max-pool windows."""
    n, h, w, c = a.shape
    a = a[:, :h // 2 * 2, :w // 2 * 2]
    return a.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(
        n, h // 2, w // 2, c, 4)


def near_tied_windows(activation):
    """Boolean (N, H//2, W//2, C): windows whose two largest values are positive and
    within NEAR_TIE of each other (relative)."""
    top2 = np.sort(_windows(activation), axis=-1)[..., 2:]
    return (top2[..., 1] > 0) & (top2[..., 1] - top2[..., 0] <= NEAR_TIE * top2[..., 1])


def dlogits(ref):
    dlogits = np.zeros_like(ref["logits"])
    dlogits[np.arange(len(dlogits)), ref["classes"]] = 1  # d score / d logits
    return dlogits


def compare_forward(model, x, ref, layers=("block5_conv3", "block4_conv3"), tol=1e-4,
                    input_tol=5e-2):
    """vggnp end to end: logits, every layer output, d score / d each of ``layers`` (conv
    layers each followed by a pool, deepest first), elementwise outside near-tied windows
    and by window sum inside them, and d score / d input within ``input_tol``.
    Returns ({what: relative error}, {layer: number of near-tied windows})."""
    _, outputs = model.forward(x, keep=tuple(ref["outputs"]))
    errors = {"logits": relative_to_max(model.layer("predictions").z, ref["logits"])}
    for name, expected in ref["outputs"].items():
        errors[name] = relative_to_max(outputs[name], expected)
    grad, start, ties = dlogits(ref), "predictions", {}
    for layer in layers:
        grad = model.backward(grad, start=start, stop=layer, from_logits=start == "predictions")
        start = layer
        tied = near_tied_windows(ref["outputs"][layer])
        ours, theirs = _windows(grad), _windows(ref["grads"][layer])
        scale = np.abs(ref["grads"][layer]).max()
        errors["grad_" + layer] = float(max(
            np.abs(ours - theirs)[~tied].max(),
            np.abs(ours.sum(-1) - theirs.sum(-1))[tied].max(initial=0)) / scale)
        ties[layer] = int(tied.sum())
    grad_input = model.backward(grad, start=start, from_logits=start == "predictions")
    errors["grad_input"] = relative_to_max(grad_input, ref["grad_input"])
    for what, error in errors.items():
        assert error <= (input_tol if what == "grad_input" else tol), (what, error)
    return errors, ties


def use_tf_activations(model, x, ref):
    """Fill every vggnp layer's cache from TensorFlow's activations (as if vggnp's forward
    had computed exactly TF's values), so that a backward routes as TF's does."""
    layer_input = x
    for layer_ in model.layers:
        out = layer_.forward(layer_input)
        if layer_.name in ref["outputs"]:
            out = ref["outputs"][layer_.name]
            if layer_.activation_name == "relu":
                # A pre-activation within rounding of 0 can have either sign; take TF's
                # (the ReLU's backward masks by its kept output).
                layer_.activation.out = out
        layer_input = out  # flatten only reshapes: its own output is TF's, reshaped
    # every cache is filled, as by model.forward
    model._first_run, model._last_run = 0, len(model.layers) - 1


def compare_backward(model, x, ref, layer="block5_conv3", tol=1e-4):
    """vggnp's backward on TensorFlow's activations: d score / d ``layer`` and d score /
    d input, elementwise within ``tol``. Returns {what: relative error}."""
    use_tf_activations(model, x, ref)
    grad_layer = model.backward(dlogits(ref), start="predictions", stop=layer, from_logits=True)
    errors = {"grad_" + layer: relative_to_max(grad_layer, ref["grads"][layer]),
              "grad_input": relative_to_max(model.backward(grad_layer, start=layer),
                                            ref["grad_input"])}
    for what, error in errors.items():
        assert error <= tol, (what, error)
    return errors

