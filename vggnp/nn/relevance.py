"""Layer-wise Relevance Propagation's rules for a conv or dense layer: the same backward
pass with another rule (Bach et al. 2015; Montavon et al., "Layer-Wise Relevance
Propagation: An Overview", 2019).

A layer z_k = sum_j x_j w_jk + b_k hands the relevance R_k of its outputs down to its
inputs. Every rule here is one instance of

    R_j = sum_k  x_j rho(w_jk) / (eps_k + sum_j' x_j' rho(w_j'k) [+ rho(b_k)])  R_k

computed in four steps that reuse the layer's own forward and backward code (Montavon et
al., sec. 10.2.3; iNNvestigate's rules do the same):

    z = layer with weights rho(w) applied to x          (forward: ``pre_activation``)
    s = R / z                                           (element-wise, stabilised)
    c = layer with weights rho(w), transposed, on s      (backward: ``input_gradient``)
    R_in = x * c

Where the gradient's backward multiplies dz by W^T, LRP multiplies R / z by rho(W)^T:
that is the only change. The layer is anything with ``x`` (its last input), ``w``, ``b``,
``pre_activation(x)``, ``input_gradient(dz)``, ``with_weights(w, b)``,
``made_from_weights`` (rho(w) made once and kept) and ``kept_pre_activation`` (z of the
last forward): ``Conv2D``, ``Dense``, their fast paths and ``DepthwiseConv2D``, through
``Affine`` below; their ``pre_activation`` and ``input_gradient`` return new arrays,
which the rules add and multiply into (``_total``, ``_times``). Each rule's
``propagate(layer, r)``: r (N, ...) shaped as the layer's output -> the relevance (N, ...)
shaped as its input.
"""

import copy

import numpy as np

from .activation_functions import relu
from .dense_by_rows import DenseByRows, KernelByRows
from .made import MadeFrom

# What iNNvestigate (keras.backend.epsilon()) adds to a denominator that is exactly zero.
ZERO_GUARD = 1e-7


def stabilise(z, epsilon=0.0):
    """z + epsilon * sign(z), sign(0) = +1 (as iNNvestigate); exact zeros left after that
    become ZERO_GUARD, so that R / z is finite (their R is zero in a ReLU network).
    A new array; z is the layer's own, left as it is. Masks times numbers, not np.where
    (4 ns a value with a scalar: 19 ms against 4 on a 224x224x64 map; the same values)."""
    if epsilon:
        signed = (z >= 0).astype(z.dtype)  # 1 or 0
        signed *= 2
        signed -= 1                        # +1 or -1
        signed *= epsilon                  # +epsilon or -epsilon, rounded as z's dtype does
        z = z + signed
    guarded = (z == 0).astype(z.dtype)
    guarded *= ZERO_GUARD
    guarded += z
    return guarded


def _positive(a):
    return relu(a)


def _negative(a):
    return np.clip(a, -np.inf, 0)  # min(a, 0), as ``relu`` writes max(a, 0)


def _total(arrays):
    """The sum of fresh arrays, added into the first: no new array (at VGG16's first
    layers each is 100 MB for a batch of 8, and a fresh one faults its pages in)."""
    arrays = iter(arrays)
    total = next(arrays)
    for a in arrays:
        total += a
    return total


def _times(inputs, c):
    """inputs * c, into c (a fresh array): R_in's term x_j c_j."""
    c *= inputs
    return c


class Epsilon:
    """LRP-epsilon: rho(w) = w, z + epsilon sign(z). epsilon = 0 is LRP-0 (iNNvestigate's
    "Z" rule), whose relevance sums to the output's minus what the bias absorbs.
    r: (N, ...) at the output -> (N, ...) shaped as the layer's input x."""

    def __init__(self, epsilon=0.0):
        self.epsilon = epsilon

    def propagate(self, layer, r):
        z = layer.kept_pre_activation(r)  # the layer's own z, as its forward made it
        return _times(layer.x, layer.input_gradient(r / stabilise(z, self.epsilon)))


class Gamma:
    """LRP-gamma (Montavon et al., eq. for the lower layers): rho(w) = w + gamma w+, and the
    bias likewise b + gamma b+; favours the positive contributions. For inputs >= 0 (after
    a ReLU), as the paper states it."""

    def __init__(self, gamma=0.25):
        self.gamma = gamma

    def propagate(self, layer, r):
        twin = layer.with_weights(*layer.made_from_weights(
            ("gamma", self.gamma), lambda w, b: (w + self.gamma * _positive(w),
                                                 b + self.gamma * _positive(b))))
        s = r / stabilise(twin.pre_activation(layer.x))
        return _times(layer.x, twin.input_gradient(s))


class AlphaBeta:
    """LRP-alpha-beta: the positive contributions (x_j w_jk)+ and the negative ones apart,

        R_j = sum_k [alpha (x_j w_jk)+ / z+_k  -  beta (x_j w_jk)- / z-_k] R_k,
        z+_k = sum_j (x_j w_jk)+ [+ b+_k],   z-_k = sum_j (x_j w_jk)- [+ b-_k]

    (x w)+ = x+ w+ + x- w-, for inputs of either sign. alpha - beta = 1; alpha = 1,
    beta = 0 is z+ (with bias False). bias: whether b+ and b- join z+ and z-, as in the
    paper; iNNvestigate adds the whole bias b to both instead (its rules with bias agree
    with these only where the biases are zero)."""

    def __init__(self, alpha=1.0, beta=0.0, bias=True):
        self.alpha, self.beta, self.bias = alpha, beta, bias

    def propagate(self, layer, r):
        plus = self._part(layer, r, _positive, _negative)
        if not self.beta:
            return plus if self.alpha == 1 else self.alpha * plus
        return self.alpha * plus - self.beta * self._part(layer, r, _negative, _positive)

    def _part(self, layer, r, keep, other):
        """The relevance through the contributions x+ keep(w) + x- other(w) (with the bias
        keep(b)): (N, ...) like x."""
        x = layer.x
        signed = x.min() < 0  # after a ReLU there is no x-: half the work
        w_keep, b_keep = layer.made_from_weights(keep.__name__, lambda w, b: (keep(w), keep(b)))
        pairs = [(_positive(x) if signed else x,
                  layer.with_weights(w_keep, b_keep if self.bias else None))]
        if signed:
            w_other, _ = layer.made_from_weights(other.__name__,
                                                 lambda w, b: (other(w), other(b)))
            pairs.append((_negative(x), layer.with_weights(w_other, None)))
        z = _total(twin.pre_activation(inputs) for inputs, twin in pairs)
        s = r / stabilise(z)
        return _total(_times(inputs, twin.input_gradient(s)) for inputs, twin in pairs)


class WSquare:
    """The w^2 rule (Montavon et al. 2017, Deep Taylor): R_j = sum_k w_jk^2 / sum_j' w_j'k^2
    R_k, whatever the input; ``Flat`` is the same with every w_jk = 1 (the relevance
    spread evenly over each output's receptive field). No bias."""

    def weights(self, w):
        return w * w

    def propagate(self, layer, r):
        twin = layer.with_weights(layer.made_from_weights(
            type(self).__name__, lambda w, b: (self.weights(w), None))[0], None)
        ones = np.ones_like(layer.x)
        s = r / stabilise(twin.pre_activation(ones))  # the sum of rho(w) over j, per k
        twin.x = ones
        return twin.input_gradient(s)


class Flat(WSquare):
    """The flat rule: rho(w) = 1 (see ``WSquare``)."""

    def weights(self, w):
        return np.ones_like(w)


class ZBox:
    """The z^B rule for the first layer, whose inputs lie in a box low <= x <= high
    (Montavon et al. 2017, Deep Taylor):

        R_j = sum_k (x_j w_jk - l_j w+_jk - h_j w-_jk) / sum_j' (same) R_k

    low, high: numbers or per-channel (C,) arrays (VGG16: 0 and 255 through the
    preprocessing). No bias."""

    def __init__(self, low, high):
        self.low, self.high = low, high

    def propagate(self, layer, r):
        x = layer.x
        low = np.broadcast_to(np.asarray(self.low, x.dtype), x.shape)
        high = np.broadcast_to(np.asarray(self.high, x.dtype), x.shape)
        plus, minus = (layer.made_from_weights(part.__name__,  # part bound now: made later
                                               lambda w, b, part=part: (part(w), part(b)))[0]
                       for part in (_positive, _negative))
        terms = [(x, layer.with_weights(layer.w, None), 1),
                 (low, layer.with_weights(plus, None), -1),
                 (high, layer.with_weights(minus, None), -1)]
        z = _total(sign * twin.pre_activation(inputs) for inputs, twin, sign in terms)
        s = r / stabilise(z)
        return _total(_times(sign * inputs, twin.input_gradient(s))
                      for inputs, twin, sign in terms)


class Affine:
    """What LRP's rules need of a conv or dense layer (z = x W + b, then the activation),
    beside what its class gives (``x``, ``w``, ``b``, a ``made`` dict, ``pre_activation(x)``,
    ``input_gradient(dz)``, ``kept_pre_activation(r)``): a mixin, listed before ``Layer``
    in the layer's bases so that its ``relevance`` is the one called."""

    twin = False  # True for a copy made by with_weights: its forward never ran
    MAX_KEPT_BYTES = 2 ** 26  # larger kernels (VGG16's fc1: 411 MB) are made each time,
    # a dense one a block of rows at a time, where it is used (``dense_by_rows``)

    def with_weights(self, w, b):
        """A copy of this layer computing the same sums with kernel w and bias b (None:
        zero): z' = x w + b'. It keeps this layer's last input ``x``; its z is always
        computed again (``kept_pre_activation``). w a KernelByRows: a DenseByRows."""
        if isinstance(w, KernelByRows):
            return DenseByRows(self.x, w, b)
        twin = copy.copy(self)
        twin.w = w
        twin.b = np.zeros_like(self.b) if b is None else b
        twin.made, twin.twin = MadeFrom(), True
        return twin

    def kernel_times(self, w, scale):
        """w times scale (F,), one factor per output channel (its last axis): the kernel
        of this layer followed by a per-channel scale (a folded BatchNorm)."""
        return w * scale

    def made_from_weights(self, key, make, also=()):
        """make(w, b), made once per pair of arrays and kept on the layer (its replicas
        share it): the kernels of LRP's rules (w+, w-...), make returning (w', b'). Made
        again if w or b is replaced, as the sanity checks do, or one of ``also`` (the
        other arrays make reads: a BatchNorm's, folded in); not kept above
        MAX_KEPT_BYTES, and a dense kernel above it made by rows where it is used."""
        big = self.w.nbytes > self.MAX_KEPT_BYTES
        if big and self.w.ndim == 2:
            return KernelByRows.made(self.w, self.b, make)
        return self.made.get(key, (self.w, self.b, *also), lambda w, b, *_: make(w, b),
                             keep=not big)

    def relevance(self, r, options):
        """r: relevance at the output (N, ...) -> at the input, shaped as ``x``, by the rule
        of the pass's composite. The activation (a ReLU, or none) passes relevance as it
        is: R at z is R at the output."""
        return options.relevance.rule_for(self).propagate(self, r)
