"""The gradient CAMs beside Grad-CAM, and Eigen-CAM: each a few lines on the activations
A (N, h, w, C) of a conv layer and their gradient g = d y^c / d A (N, h, w, C).

    gradcam          L = ReLU(sum_k a_k A^k),  a_k = mean_ij g^k_ij          (Selvaraju et al.)
    counterfactual   L = ReLU(sum_k a_k A^k),  a_k = -mean_ij g^k_ij         (paper, sec. 5.3:
                     the regions whose removal would make the model more confident)
    xgradcam         L = ReLU(sum_k a_k A^k),  a_k = sum_ij (A^k_ij / sum_ab A^k_ab) g^k_ij
                     (Fu et al.: each gradient weighted by its share of the activation)
    gradcam++        L = ReLU(sum_k w_k A^k),  w_k = sum_ij alpha^k_ij ReLU(g^k_ij),
                     alpha^k_ij = g^2 / (2 g^2 + sum_ab A^k_ab g^3)   (Chattopadhyay et al.,
                     closed form for the score exp(y^c): its derivatives are powers of g)
    hirescam         L = ReLU(sum_k g^k * A^k)   (element-wise; Draelos & Carin)
    layercam         L = ReLU(sum_k ReLU(g^k) * A^k)   (Jiang et al.; works at shallow layers)
    eigencam         L = ReLU(M v_1),  M = A as (hw, C) with each channel's mean removed,
                     v_1 its first right singular vector, signed so that L agrees with
                     the mean activation (Muhammad & Yeasin; no gradient, no class)

The first four differ only in the channel weights a_k (pytorch-grad-cam's
``get_cam_weights``): :data:`CHANNEL_WEIGHTS` holds one function per method.
"""

import numpy as np

from .gradcam import gradcam_weights, normalise, weighted_channels


def counterfactual_weights(A, g):
    """a_k = -mean_ij g^k_ij: (N, C)."""
    return -gradcam_weights(g)


def xgradcam_weights(A, g):
    """a_k = sum_ij (A^k_ij / sum_ab A^k_ab) g^k_ij: (N, C); a dead channel's share is 0."""
    total = A.sum(axis=(1, 2), keepdims=True)                               # (N, 1, 1, C)
    share = A / np.where(total != 0, total, 1)
    return (share * g).sum(axis=(1, 2))


def gradcam_pp_weights(A, g):
    """w_k = sum_ij alpha^k_ij ReLU(g^k_ij), alpha = g^2 / (2 g^2 + sum_ab A^k_ab g^3): (N, C).

    Computed as alpha = 1 / (2 + S g), S = sum_ab A^k_ab, with g^2 cancelled (0 where g or
    the denominator is 0): g^2 and g^3 underflow in float32 once |g| < 1e-19 (a softmax
    target of a class with p ~ 1e-22), which emptied the map."""
    denominator = 2 + A.sum(axis=(1, 2), keepdims=True) * g
    usable = (g != 0) & (denominator != 0)
    alpha = np.where(usable, 1 / np.where(usable, denominator, 1), 0)
    return (alpha * np.maximum(g, 0)).sum(axis=(1, 2))


CHANNEL_WEIGHTS = {"gradcam": lambda A, g: gradcam_weights(g),
                   "counterfactual": counterfactual_weights,
                   "xgradcam": xgradcam_weights,
                   "gradcam++": gradcam_pp_weights}


def raw_cam(method, activations, gradients):
    """The gradient-based CAMs from A (N, h, w, C) and g = dy/dA (N, h, w, C), ReLU
    applied, before normalisation: (N, h, w)."""
    A, g = activations, gradients
    if method in CHANNEL_WEIGHTS:
        raw = weighted_channels(A, CHANNEL_WEIGHTS[method](A, g))
    elif method == "hirescam":
        raw = (g * A).sum(axis=3)
    elif method == "layercam":
        raw = (np.maximum(g, 0) * A).sum(axis=3)
    else:
        raise ValueError(f"{method!r} is not a gradient CAM")
    return np.maximum(raw, 0)


def eigen_cam(activations):
    """Eigen-CAM maps (N, h, w) from A (N, h, w, C): the projection of each position's
    centred activation vector on the first principal direction, signed to agree with the
    mean activation over channels, ReLU, divided by its max."""
    maps = []
    for A in activations:
        M = A.reshape(-1, A.shape[-1]).astype(np.float64)
        M = M - M.mean(axis=0)                         # centre each channel
        _, _, vt = np.linalg.svd(M, full_matrices=False)
        projection = M @ vt[0]                          # (h*w,)
        if projection @ (A.mean(axis=-1).ravel() - A.mean()) < 0:
            projection = -projection                    # an SVD's sign is arbitrary
        maps.append(np.maximum(projection, 0).reshape(A.shape[:2]).astype(A.dtype))
    return normalise(np.stack(maps))
