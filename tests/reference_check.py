"""Compare vggnp with TensorFlow reference values (from tests/tf_reference.py).

Float32 rounding decides two things in a forward, differently in any two implementations
(their sums run in other orders): which of a max-pool window's two largest values is
larger when they agree to ~1e-6 relative (uniform regions of real photos), and the sign
of a ReLU input within rounding of 0. Each sends the gradient of a whole neighbourhood
elsewhere. So:
- ``compare_forward`` runs vggnp end to end and compares the logits and every layer
  output (1e-4); then, where rounding decides, it takes TF's decision
  (``align_rounding_choices``: near-tied windows, and ReLU units whose signs differ,
  asserted to lie within rounding of 0) and compares the gradients w.r.t. block5_conv3,
  block4_conv3 and the input (1e-4; the first two also by window sum in near-tied
  windows, where any routing is right).
- ``compare_backward`` runs each vggnp layer's forward on TensorFlow's own input to that
  layer, so that every cache (ReLU masks, max-pool argmax) holds TF's values, then runs
  vggnp's backward: the gradients w.r.t. the layer and the input must then equal TF's
  elementwise (1e-4). (A pre-activation within rounding of 0 is the same ambiguity for
  ReLU: its mask is taken from TF too.)
All errors are relative to the max |value| of TF's tensor (``relative_to_max``).
"""

import numpy as np

from vggnp.fast.direct_conv import correlate_same
from vggnp.nn.layers import Conv2D, Dense, MaxPool2D


NEAR_TIE = 1e-5  # relative gap between a window's two largest values counted as a tie
KINK = 1e-5  # |ReLU output| / the layer's max within which float32 rounding picks the sign


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


def align_rounding_choices(model, ref):
    """Where float32 rounding decides, take TensorFlow's decision, in the caches of the
    last forward (the layers of ``ref["outputs"]`` whose kept arrays have TF's shapes;
    each must first agree with TF's output within 1e-4, asserted):
    - a ReLU whose input vggnp's forward and TF's put on opposite sides of 0: vggnp's
      pre-activation there and TF's output must both lie within KINK of the layer's max
      (asserted, so a real difference still fails); vggnp's kept output takes TF's value;
    - a near-tied max-pool window (``near_tied_windows`` of TF's input to the pool): the
      pool's kept input and output take TF's values, so its gradient goes where TF's goes.
    Any change in the order of a convolution's sums (vggnp's fast path against TF's
    kernels) moves a few of these to the other side, and each changes the gradient of a
    whole neighbourhood below it. Returns ({layer: ReLU units}, {pool: windows})."""
    kinks, ties = {}, {}
    for index, name in enumerate(model.names):
        layer, theirs = model.layer(name), ref["outputs"].get(name)
        if theirs is None:
            continue
        if isinstance(layer, (Conv2D, Dense)) and layer.activation_name == "relu" \
                and layer.activation.out.shape == theirs.shape:
            units = _align_relu(layer, theirs)
            if units:
                kinks[name] = units
        before = ref["outputs"].get(model.names[index - 1]) if index else None
        if isinstance(layer, MaxPool2D) and before is not None and layer.x.shape == before.shape:
            windows = _align_pool(layer, before, theirs)
            if windows:
                ties[name] = windows
    return kinks, ties


def _align_relu(layer, theirs):
    """TF's output where its ReLU mask differs from vggnp's; returns the units changed."""
    ours = layer.activation.out
    assert relative_to_max(ours, theirs) <= 1e-4, layer.name
    differ = (ours > 0) != (theirs > 0)
    if not differ.any():
        return 0
    pre = (correlate_same(layer.x, layer.w, {}, bias=layer.b) if isinstance(layer, Conv2D)
           else layer.z)                                  # vggnp's own ReLU input
    largest = max(np.abs(pre[differ]).max(), np.abs(theirs[differ]).max())
    assert largest <= KINK * np.abs(theirs).max(), (layer.name, "ReLU sign", largest)
    ours[differ] = theirs[differ]
    return int(differ.sum())


def _align_pool(layer, before, theirs):
    """TF's values in the pool's near-tied windows; returns the windows changed. First the
    pool's output is taken again from its input: a ReLU unit that ``_align_relu`` set to
    TF's 0 may have been its window's maximum (a window of zeros and one positive unit
    rounded above 0), and the kept maximum would then match nothing in the window, whose
    gradient went nowhere (seen with Winograd F(4x4)'s rounding, ``vggnp/fast/winograd.py``)."""
    assert relative_to_max(layer.x, before) <= 1e-4, layer.name
    n, h, w, c = layer.x.shape                          # VGG16's 2x2 windows, stride 2
    layer.out[...] = np.asarray(layer.x).reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    tied = near_tied_windows(before)                     # (N, H/2, W/2, C)
    if tied.any():
        inside = np.repeat(np.repeat(tied, 2, axis=1), 2, axis=2)
        layer.x[inside] = before[inside]
        layer.out[tied] = theirs[tied]
    return int(tied.sum())


def tf_rounding_choices(monkeypatch, model, ref):
    """From now on, each ``model.backward`` first takes TF's choices where rounding
    decides (:func:`align_rounding_choices`) in the forward before it: for tests that
    compare what a whole method returns (its own forward and backward) with TF's. Returns
    the list that collects each backward's (kinks, ties)."""
    backward, seen = model.backward, []

    def aligned_backward(*args, **kwargs):
        seen.append(align_rounding_choices(model, ref))
        return backward(*args, **kwargs)

    monkeypatch.setattr(model, "backward", aligned_backward)
    return seen


def dlogits(ref):
    dlogits = np.zeros_like(ref["logits"])
    dlogits[np.arange(len(dlogits)), ref["classes"]] = 1  # d score / d logits
    return dlogits


def compare_forward(model, x, ref, layers=("block5_conv3", "block4_conv3"), tol=1e-4):
    """vggnp end to end: logits, every layer output, d score / d each of ``layers`` (conv
    layers each followed by a pool, deepest first), elementwise outside near-tied windows
    and by window sum inside them, and d score / d input, all within ``tol``, after taking
    TF's choices where float32 rounding decides (:func:`align_rounding_choices`).
    Returns ({what: relative error}, {layer: number of near-tied windows}, what
    ``align_rounding_choices`` changed: ({layer: ReLU units}, {pool: windows}))."""
    _, outputs = model.forward(x, keep=tuple(ref["outputs"]))
    errors = {"logits": relative_to_max(model.layer("predictions").z, ref["logits"])}
    for name, expected in ref["outputs"].items():
        errors[name] = relative_to_max(outputs[name], expected)
    kinks, aligned = align_rounding_choices(model, ref)
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
        assert error <= tol, (what, error)
    return errors, ties, (kinks, aligned)


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

