"""VGG16 as vggnp runs it: the lesson's network (``vggnp/nn/vgg16.py``) with the fast conv
path, loaded from a Keras weights file.

    model = VGG16.load("weights.h5")       # any supported Keras file (vggnp/files/weights.py)
"""

import numpy as np

from ..fast.blocks import BLOCKS
from ..fast.layers import FastConv2D, FastDense
from ..fast.pooling import FastMaxPool2D
from ..files.weights import read_vgg16_weights
from ..nn import spec
from ..nn.network import model_dtype
from ..nn.vgg16 import VGG16 as TextbookVGG16


class VGG16(TextbookVGG16):
    """VGG16 whose convs are ``FastConv2D`` (the same sums as the textbook ``Conv2D``,
    faster), sharing one padded-input workspace: the layers run one at a time; its dense
    layers ``FastDense``, its pools ``FastMaxPool2D``; every product of the convs and dense
    layers cut into blocks for the process's threads (``fast/blocks.py``: ``BLOCKS``, set
    by ``use_threads``)."""

    block_threads = True

    def __init__(self, weights, input_size=spec.INPUT_SIZE):
        self._workspace = {}
        super().__init__(weights, input_size)

    def conv_layer(self, name, w, b):
        return FastConv2D(name, w, b, activation="relu", buffers=self._workspace, threads=BLOCKS)

    def dense_layer(self, name, w, b, activation):
        return FastDense(name, w, b, activation=activation, threads=BLOCKS)

    def pool_layer(self, name):
        return FastMaxPool2D(name, threads=BLOCKS)

    @classmethod
    def load(cls, path, dtype=np.float32, input_size=spec.INPUT_SIZE, standard=True,
             need_top=False):
        """Load any supported Keras weights file (see ``vggnp.files.weights``).

        dtype: float32 (default) or float64 (for gradient checks). standard=False accepts
        VGG-shaped models of other widths. need_top: refuse a notop file up front.
        """
        dtype = model_dtype(dtype)
        weights = read_vgg16_weights(path, input_size=input_size, standard=standard,
                                     need_top=need_top)
        weights = {name: (k.astype(dtype, copy=False), b.astype(dtype, copy=False))
                   for name, (k, b) in weights.items()}
        return cls(weights, input_size=input_size)
