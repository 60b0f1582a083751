"""Grad-CAM (Selvaraju et al., arXiv 1610.02391), from vggnp's own backward pass.

For a class c and a conv layer with activations A^k (k = channel):
    alpha_k = mean over (i, j) of  d y^c / d A^k_ij        (eq. 1: global-average-pooled gradient)
    L^c     = ReLU( sum_k alpha_k A^k )                    (eq. 2)
y^c is the class's logit, before the softmax, as in the paper and the keras-io example:
the softmax couples all classes and saturates, so its gradient can vanish for a confident
prediction. ``target="softmax"`` (the output probability) is there to compare.

A binary classifier with one sigmoid unit p (Keras' cats-vs-dogs) has two classes: class 1
scores p, with logit z; class 0 scores 1 - p, whose logit is -z. So "dog" (1) backpropagates
+1 from z and "cat" (0) backpropagates -1: both maps exist.
"""

import numpy as np

from .array_checks import check_class_index, check_x
from .empty_maps import warn_empty_maps
from ..fast.batch_split import forward_keeping
from ..files.errors import did_you_mean
from ..nn.trace import print_trace


def conv_layer(model, layer=None):
    """The name of the layer to explain: ``layer``, checked, or the model's default (a
    chain's last conv; a graph's last feature map before its global pooling): the one
    check of a CAM's layer (the commands say its ValueError as their --layer error)."""
    layer = layer or model.default_layer
    maps = model.map_names
    if layer not in maps:
        raise ValueError(f"a CAM needs a conv layer (a feature map), not {layer!r}"
                         f"{did_you_mean(layer, maps)}; the model's: {last_names(maps)}")
    return layer


def last_names(names, shown=12):
    """``names`` for a message: all of them, or for more than ``shown`` (a graph has
    hundreds) how many and the last ``shown``, those nearest the output."""
    listed = ", ".join(names[-shown:])
    return listed if len(names) <= shown else f"{len(names)} in all, the last: {listed}"


def backward_seed(outputs, classes):
    """Where the backward pass starts: d y^c / d outputs (N, K) for each image's class c, a
    one-hot on c; for one sigmoid unit (N, 1), +1 for class 1 and -1 for class 0, whose
    logit is -z. With ``from_logits`` the same seed is d y^c / d logits."""
    if outputs.shape[1] == 1:
        return np.where(classes == 1, 1.0, -1.0)[:, None].astype(outputs.dtype)
    seed = np.zeros_like(outputs)
    seed[np.arange(len(classes)), classes] = 1
    return seed


def gradcam_weights(gradients):
    """alpha_k = mean over (i, j) of d y^c / d A^k_ij (eq. 1): "a vector where each entry
    is the mean intensity of the gradient over a specific feature map channel" (keras-io).
    gradients: (N, h, w, C) -> (N, C)."""
    return gradients.mean(axis=(1, 2))


def weighted_channels(activations, weights):
    """sum_k w_k A^k: A (N, h, w, C), w (N, C) -> (N, h, w), before the ReLU."""
    return np.einsum("nhwc,nc->nhw", activations, weights)


def normalise(raw):
    """Each map divided by its max, so that it lies in [0, 1]; an all-zero map stays zero
    instead of becoming NaN (the keras-io example's 0/0). raw: (N, ...) >= 0."""
    peak = raw.reshape(len(raw), -1).max(axis=1)
    return raw / np.where(peak > 0, peak, 1).reshape(-1, *[1] * (raw.ndim - 1))


def class_indices(class_index, probs):
    """None -> each image's top-1; an int or a sequence -> one per image. (N,) ints."""
    n, k = probs.shape
    if class_index is None:
        return probs.argmax(axis=1)
    indices = np.broadcast_to(np.asarray(class_index, dtype=int), (n,))
    if indices.min() < 0 or indices.max() >= k:
        raise ValueError(f"class index {class_index} out of range 0..{k - 1}")
    return indices.copy()


def grad_cam(model, x, layer=None, class_index=None, target="logit", details=None,
             trace=False, warn_empty=True):
    """Grad-CAM heatmaps for a batch.

    model: a vggnp VGG16 with its classifier, or a KerasConvNet. x: (N, H, W, C)
    preprocessed images. layer: any conv layer name (default: the last, block5_conv3 for
    VGG16). class_index: None (top-1 of each image), an int, or one per image. target:
    "logit" (default) or "softmax" (the output probability, softmax or sigmoid). Each
    argument is checked before any pass (``array_checks``): one error naming it.
    Returns (heatmaps, class_indices): heatmaps (N, h, w) at the layer's resolution
    (14x14 for block5_conv3 on 224x224), each divided by its max so that it lies in
    [0, 1]; class_indices (N,). An all-zero map stays zero (with a warning), never NaN.
    details: an optional dict, filled with "probs" (N, K) (class scores, see
    ``Network.class_scores``), "activations" A (N, h, w, C),
    "gradients" dy/dA (N, h, w, C), "weights" alpha (N, C) and "raw" (N, h, w), the map
    before normalisation. trace: True (or an open file) prints a table per pass, layer by
    layer (``vggnp.trace``), and fills details["trace"] = {"forward": [...], "backward": [...]}.
    """
    check_x(model, x)  # explain checks them too: this is also called on its own
    check_class_index(model, class_index, len(x))
    layer = conv_layer(model, layer)
    if target not in ("logit", "softmax"):
        raise ValueError(f"target must be 'logit' or 'softmax', not {target!r}")
    steps = ({"forward": [], "backward": [], "stop": layer} if trace else
             {"forward": None, "backward": None})
    outputs, activations = forward_keeping(model, x, layer, steps["forward"])
    probs = model.class_scores(outputs)
    classes = class_indices(class_index, probs)

    # d y^c / d A: start from a one-hot on the class and walk back to the layer only.
    gradients = model.backward(backward_seed(outputs, classes), start=model.names[-1],
                               stop=layer, from_logits=(target == "logit"),
                               trace=steps["backward"])

    weights = gradcam_weights(gradients)                                   # (N, C), eq. 1
    # Weighted sum of the channels, then ReLU: only evidence *for* the class -- eq. 2.
    raw = np.maximum(weighted_channels(activations, weights), 0)           # (N, h, w)

    heatmaps = normalise(raw)
    if warn_empty:
        warn_empty_maps(raw, classes, probs, "gradcam", layer, stacklevel=2)
    if trace:  # the teaching tables, on request only
        print_trace(steps, model, outputs.itemsize, trace)
    if details is not None:
        details.update(probs=probs, activations=activations, gradients=gradients,
                       weights=weights, raw=raw, **({"trace": steps} if trace else {}))
    return heatmaps, classes
