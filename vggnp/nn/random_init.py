"""Realistic random VGG16 weights, for tests and for experiments without a download.

Random weights that look trained in scale: He-normal kernels keep activations O(1) through
all 13 convs (so ReLUs are neither all dead nor all open), and non-zero biases matter.
"""

import numpy as np

from . import spec


def random_vgg16_weights(widths=(64, 128, 256, 512, 512), dense=(4096, 4096, 1000),
                         input_size=(224, 224), convs_per_block=(2, 2, 3, 3, 3),
                         top=True, seed=0):
    """{layer name: (kernel, bias)} float32, He-normal kernels and non-zero biases.

    block1_conv1's kernel is also divided by 64, the scale of caffe-preprocessed pixels,
    so that activations are O(1) from the first layer on and He's sqrt(2 / fan_in) keeps
    them O(1) through all convs; the biases (std 0.1) then matter, as trained ones do.
    ``convs_per_block=(2, 2, 4, 4, 4)`` makes a VGG19-shaped set.
    """
    rng = np.random.default_rng(seed)
    weights, c_in = {}, 3
    for b, (filters, n) in enumerate(zip(widths, convs_per_block), 1):
        for i in range(1, n + 1):
            std = np.sqrt(2.0 / (9 * c_in)) / (64.0 if c_in == 3 else 1.0)
            kernel = rng.standard_normal((3, 3, c_in, filters), dtype=np.float32) * np.float32(std)
            bias = rng.normal(0, 0.1, filters).astype(np.float32)
            weights[f"block{b}_conv{i}"] = (kernel, bias)
            c_in = filters
    if top:
        d_in = (input_size[0] // 32) * (input_size[1] // 32) * c_in
        for name, units in zip(spec.DENSE_NAMES, dense):
            kernel = rng.standard_normal((d_in, units), dtype=np.float32) * np.float32(np.sqrt(2.0 / d_in))
            weights[name] = (kernel, rng.normal(0, 0.1, units).astype(np.float32))
            d_in = units
    return weights
