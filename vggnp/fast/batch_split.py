"""A batch's forward pass, faster: the early layers one image at a time.

Grad-CAM needs the full forward pass and the activations of one layer; this computes the
same outputs as ``model.forward(x, keep=(layer,))`` in an order that suits the CPU's cache.
"""

import numpy as np


def forward_keeping(model, x, layer, trace=None):
    """The full forward pass, returning (probs (N, K), A = the output of ``layer``).

    A batch runs the big early layers, up to the model's ``batch_split`` (VGG16:
    block4_pool) or ``layer`` if it comes first, one image at a time, and the rest on the
    whole batch: one image's activations (12.8 MB for block1) stay in the CPU's cache where
    a batch's would not, while block5's small GEMMs grow and fc1's 411 MB of weights are
    read once per batch, not once per image.
    Backward to ``layer`` needs only the caches of the layers after it.
    """
    if len(x) == 1 or trace is not None or not model.supports_start:
        # a trace shows the plain full forward; a graph cannot start midway
        probs, kept = model.forward(x, keep=(layer,), trace=trace)
        return probs, kept[layer]
    stops = [model.names.index(name) for name in (layer, model.batch_split) if name]
    split = model.names[min(stops)]
    early = _one_at_a_time(model, x, split)
    if split == layer:
        return model.forward(early, start=split), early
    probs, kept = model.forward(early, start=split, keep=(layer,))
    return probs, kept[layer]


def forward_split(model, x):
    """x: (N, H, W, C) -> the outputs (N, K) of the full forward pass, the layers up to the
    model's ``batch_split`` one image at a time: Score-CAM's batches of masked images
    (VGG16, batch 32: 8.1 images/s against 5.4 as one batch, scripts/scorecam_bench.py)."""
    if len(x) == 1 or not model.batch_split or not model.supports_start:
        return model.forward(x)
    early = _one_at_a_time(model, x, model.batch_split)
    return model.forward(early, start=model.batch_split)


def _one_at_a_time(model, x, until):
    """The output of layer ``until`` for a batch x, run one image at a time: (N, ...)."""
    return np.concatenate([model.forward(image[None], until=until) for image in x])
