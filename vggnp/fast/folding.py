"""BatchNormalization folded into the convolution before it: a speed path of a ``Graph``
(``vggnp/nn/graph.py``), which the Keras reader gives every graph it builds.

At inference a BatchNormalization is a per-channel affine map, out = z * scale + shift
(``BatchNorm``). After a convolution z = x * w + b with no activation, whose output it
alone takes, the pair is one convolution:

    out = x * w' + b',   w' = w * scale (one factor per output channel),  b' = b * scale + shift

The folded convolution writes the BatchNorm's output at once: one pass over the map less
forward (z * scale + shift) and one less backward (dout * scale). LRP's canonizers fold
the same pairs for another reason (``methods/lrp_plan.Folded``).

What it costs: the convolution's own output z is never made, so a pass folds a pair only
where nobody asks for z (the layer explained, kept or traced; ``Graph.forward``), and
w' is a second kernel kept beside w. It is made where it pays, where the map
(N * H' * W' * F values, one pass each way) is at least as large as the kernel (its
values, made once and kept): at 299x299 Xception's first 11 of its 40 BatchNorms, which
take 10 of the 14 ms its BatchNorms take, for 4.4 MB of kernels (docs/speed.md).
"""

import math

from ..nn.convnet_layers import batch_norms_after
from ..nn.graph_layers import Identity
from ..nn.layers import Conv2D
from ..nn.made import MadeFrom

MAP_PER_KERNEL = 1.0  # fold where the map has at least this many values per kernel value


class BatchNormFolds:
    """The pairs (conv layer, BatchNorm after it) a graph may fold, and the folded
    convolutions made so far (one per conv, made again when its kernel is replaced, as
    the sanity checks do). Each replica of a graph has its own: a folded conv keeps its
    pass's caches."""

    def __init__(self, pairs):
        self.pairs = {conv.name: norm for conv, norm in pairs if isinstance(conv, Conv2D)}
        self._folded = MadeFrom()  # {conv name: its folded copy}

    @classmethod
    def for_graph(cls, layers, inputs_of):
        """The pairs of a graph's layers (in order) wired by inputs_of ({layer name: the
        names of the tensors it takes}): ``Graph(..., folds=BatchNormFolds.for_graph)``."""
        return cls(batch_norms_after(layers, inputs_of))

    def __contains__(self, name):
        return name in self.pairs

    def replica(self, layers):
        """The same pairs among ``layers`` (a replica's, with caches of their own)."""
        by_name = {layer.name: layer for layer in layers}
        return BatchNormFolds([(by_name[conv], by_name[norm.name])
                               for conv, norm in self.pairs.items()])

    def forget(self, name):
        """The folded copy of conv ``name`` let go (a pass ran the conv as itself): its
        caches hold maps for nothing; the folded kernel stays (``made_from_weights``, up
        to its MAX_KEPT_BYTES)."""
        self._folded.forget(name)

    def stand_ins(self, conv, x_shape):
        """{name: layer} that compute ``conv``'s node and its BatchNorm's in a pass where
        conv's input has shape x_shape: the folded conv (writing the BatchNorm's output)
        and an Identity; {} where folding does not pay (the map smaller than the kernel).
        conv's own caches are dropped: only the folded copy's serve this pass."""
        if math.prod(conv.output_shape(x_shape)) < MAP_PER_KERNEL * conv.w.size:
            return {}
        norm = self.pairs[conv.name]
        folded = self._folded.get(conv.name, (conv.w, conv.b, *norm.statistics),
                                  lambda *arrays: norm.folded_into(conv))
        conv.forget()
        return {conv.name: folded, norm.name: Identity(norm.name)}
