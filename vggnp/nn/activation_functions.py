"""The activation functions: the last step of a Conv2D, Dense or Activation layer (not
layers of the chain themselves), each with ``forward(z, inplace)`` and ``backward(dout,
guided)``; its layer passes on whether the pass is guided (see ``BackwardPass`` in
``layers.py``). ``ACTIVATIONS`` maps Keras' activation names to them, and vggnp's own
names for a Keras name whose meaning depends on the Keras version (``KERAS_VERSIONED``)."""

import math

import numpy as np


def relu(x, out=None):
    """max(x, 0) elementwise for float x, written as np.clip(x, 0, inf): the same values
    but for the sign of a zero (-0.0 stays -0.0, which compares and adds as 0), and NumPy
    (2.4) runs ``maximum`` against a number in a loop about 3x slower than clip's
    (``python -m scripts.relu_bench``)."""
    return np.clip(x, 0, np.inf, out=out)


class ReLU:
    """out = max(x, 0);  dx = dout * (x > 0).  Shapes: any -> same.

    forward(x, inplace=True) writes the result into x (for a layer's own temporary z).
    backward(dout, guided=True) is guided backpropagation (Springenberg et al.): the
    gradient passes only where the input AND the incoming gradient are positive,
    dx = max(dout, 0) * (x > 0).
    """

    def forward(self, x, inplace=False):
        self.out = relu(x, out=x if inplace else None)
        return self.out

    def keep_output(self, out):
        """Keep ``out`` as the forward's output where max(x, 0) was taken elsewhere (a fast
        conv takes it in its blocks of rows, while each is in cache); returns out."""
        self.out = out
        return out

    def backward(self, dout, guided=False):
        # (x > 0) == (out > 0), made here rather than kept by forward: a forward with no
        # backward (most layers of a Grad-CAM) never pays for the mask, in time or memory.
        return relu_gradient(dout, self.out, guided)


def relu_gradient(dout, out, guided=False, into=None):
    """ReLU's dx = dout * (out > 0); guided: max(dout, 0) * (out > 0). dout, out: any
    shape, the same; into: where dx goes (default a new array). Multiplied, never
    ``dout[~mask] = 0``: that would write into the caller's array."""
    gradient = relu(dout) if guided else dout
    return np.multiply(gradient, out > 0, out=into)


class Softmax:
    """Softmax over the last axis. z: (N, K) -> p: (N, K) (or (..., K) -> (..., K)).

    p = exp(z - max z) / sum(exp(z - max z))   (shifting by the max avoids overflow)
    dz = p * (dp - sum(dp * p))                (the softmax Jacobian applied to dp)

    The Jacobian sends a constant added to dp to 0, so backward first takes dp[top], the
    top class's entry, off every dp: then the top class's own term, dp[top] (1 - p[top]),
    is summed from the other classes' small p instead of from 1 - p[top], which float32
    rounds to 0 once p[top] > 1 - 6e-8 (VGG16 on a clear photo; its softmax-target maps
    were then made of the other classes' terms alone).
    """

    def forward(self, z, inplace=False):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        self.p = e / e.sum(axis=-1, keepdims=True)
        return self.p

    def backward(self, dp, guided=False):
        top = np.take_along_axis(dp, self.p.argmax(axis=-1)[..., None], axis=-1)
        dp = dp - top
        return self.p * (dp - (dp * self.p).sum(axis=-1, keepdims=True))


def sigmoid(z):
    """z: any shape -> (s(z), s(-z)) = (1 / (1 + exp(-z)), 1 - s(z)), each from
    e = exp(-|z|) as (1 or e) / (1 + e): exp never overflows, and a small value keeps its
    relative precision ((1 + tanh(z / 2)) / 2 in float32 rounds s below 6e-8 to a
    multiple of 6e-8: 3e-8 for 7e-9, 1e-3 off at s = 3e-5). The numerators are max(e, 1)
    and max(e, 0) picked by z's sign: with np.where and a scalar the whole took 18 ms on a
    112x112x96 map, these passes 8-9 (EfficientNet's swish slopes run it on every map)."""
    z = np.asarray(z)
    e = np.empty(z.shape, np.result_type(z.dtype, 1.0))  # float, filled in place
    np.abs(z, out=e)
    np.negative(e, out=e)
    np.exp(e, out=e)
    total = e + 1
    positive = np.greater_equal(z, 0, out=np.empty_like(e))  # 1 where z >= 0, else 0
    p = np.maximum(e, positive)
    p /= total
    np.subtract(1, positive, out=positive)  # now 1 where z < 0
    q = np.maximum(e, positive)
    q /= total
    return p, q


class Sigmoid:
    """p = s(z) = 1 / (1 + exp(-z));  dz = dp * p * (1 - p), 1 - p = s(-z) kept apart so
    that it does not round to 0 where p rounds to 1.  Shapes: any -> same."""

    def forward(self, z, inplace=False):
        self.p, self.q = sigmoid(z)
        return self.p

    def backward(self, dp, guided=False):
        return dp * self.p * self.q


class Identity:
    """out = x;  dx = dout.  Keras' ``activation='linear'``."""

    def forward(self, x, inplace=False):
        return x

    def backward(self, dout, guided=False):
        return dout


class ReLU6(ReLU):
    """out = min(max(x, 0), 6);  dx = dout * (0 < x < 6) (MobileNet's relu6). Guided as
    ReLU: max(dout, 0) * (0 < x < 6). 0 < x < 6 exactly where 0 < out < 6: the output
    says it, so forward keeps no copy of x."""

    def forward(self, x, inplace=False):
        self.out = np.clip(x, 0, 6, out=x if inplace else None)
        return self.out

    def backward(self, dout, guided=False):
        mask = (self.out > 0) & (self.out < 6)
        return (relu(dout) if guided else dout) * mask


class Smooth:
    """An activation that is not piecewise linear: out = f(x), dx = dout * f'(x), f' made
    from x kept by the forward when a backward asks for it (a Grad-CAM at the top layer,
    a Score-CAM or a prediction never does: EfficientNetB0's swish slopes were a fifth of
    its forward). Guided backpropagation is defined on ReLUs (a gradient passes where
    the input and the gradient are positive); at these functions vggnp's guided pass
    passes the plain gradient, as a network with no ReLU there would. Each subclass
    gives value(x) = f(x) and slope(x) = f'(x), same shape and dtype as x."""

    def forward(self, x, inplace=False):
        self.x = np.asarray(x)
        return self.value(self.x)

    def backward(self, dout, guided=False):
        return dout * self.slope(self.x)


class Swish(Smooth):
    """swish = silu: f = x s(x) = x / (1 + exp(-x)), s the sigmoid;
    f' = s(x) (1 + x (1 - s(x))), 1 - s(x) = s(-x) (``sigmoid``)."""

    @staticmethod
    def value(x):
        # exp(-x) overflows to inf below x = -88.7 (float32): f is then -0 where it is
        # -2e-37 or less in size (stored by the x s(x) form, 3 ms slower a large map).
        # One array for all four steps: fresh ones cost 16 % more on a 112x112x96 map.
        out = np.negative(x)
        with np.errstate(over="ignore"):
            np.exp(out, out=out)
        out += 1
        return np.divide(x, out, out=out)

    @staticmethod
    def slope(x):
        s, one_minus_s = sigmoid(x)
        return s * (1 + x * one_minus_s)


class HardSigmoid(Smooth):
    """Keras 3's hard_sigmoid: f = clip(x / 6 + 1/2, 0, 1);  f' = 1/6 on -3 < x < 3.
    A file's "hard_sigmoid" is this one when Keras 3 saved it (``KERAS_VERSIONED``)."""

    @staticmethod
    def value(x):
        return np.clip(x / 6 + 0.5, 0, 1).astype(x.dtype)

    @staticmethod
    def slope(x):
        return ((x > -3) & (x < 3)).astype(x.dtype) / 6


class HardSigmoidKeras2(Smooth):
    """Keras 2's hard_sigmoid (tf.keras, tf_keras): f = clip(0.2 x + 1/2, 0, 1);
    f' = 0.2 on -2.5 < x < 2.5. A file's "hard_sigmoid" is this one when Keras 2 saved it."""

    @staticmethod
    def value(x):
        return np.clip(0.2 * x + 0.5, 0, 1).astype(x.dtype)

    @staticmethod
    def slope(x):
        return (0.2 * ((x > -2.5) & (x < 2.5))).astype(x.dtype)


class HardSwish(Smooth):
    """hard_silu = hard_swish (MobileNetV3): f = x h(x), h = clip(x / 6 + 1/2, 0, 1);
    f' = h(x) + x h'(x), h' = 1/6 on -3 < x < 3."""

    @staticmethod
    def value(x):
        return x * HardSigmoid.value(x)

    @staticmethod
    def slope(x):
        return HardSigmoid.value(x) + x * ((x > -3) & (x < 3)) / 6


class GELU(Smooth):
    """Keras' gelu (approximate=False): f = x Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2 the
    normal CDF;  f' = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi). (erfc, not
    1 + erf, which cancels to 0 in float32 below x = -6.)"""

    @staticmethod
    def cdf(x):
        from scipy.special import erfc
        return (0.5 * erfc(-x / math.sqrt(2))).astype(x.dtype)

    @staticmethod
    def value(x):
        return x * GELU.cdf(x)

    @staticmethod
    def slope(x):
        return (GELU.cdf(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)).astype(x.dtype)


class Tanh(Smooth):
    """f = tanh x;  f' = 1 - tanh^2 x = 4 e / (1 + e)^2, e = exp(-2 |x|): the second form,
    as 1 - t t rounds to 0 in float32 from |x| = 9 on (8.2e-9 at 10)."""

    @staticmethod
    def value(x):
        return np.tanh(x)

    @staticmethod
    def slope(x):
        e = np.exp(-2 * np.abs(x))
        return 4 * e / ((1 + e) * (1 + e))


class ELU(Smooth):
    """f = x for x > 0, alpha (e^x - 1) else;  f' = 1, or alpha e^x. (Keras' elu: alpha 1.)
    e^x - 1 as ``expm1``: near 0 the difference loses float32's digits (40 % at -1e-7)."""

    alpha, scale = 1.0, 1.0

    def value(self, x):
        out = np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0))) * self.scale
        return out.astype(x.dtype)

    def slope(self, x):
        return (np.where(x > 0, 1, self.alpha * np.exp(np.minimum(x, 0))) *
                self.scale).astype(x.dtype)


class SELU(ELU):
    """selu = scale * elu(x, alpha), Klambauer et al.'s constants (Keras' selu)."""

    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


ACTIVATIONS = {"relu": ReLU, "softmax": Softmax, "sigmoid": Sigmoid, "linear": Identity,
               "relu6": ReLU6, "swish": Swish, "silu": Swish, "hard_silu": HardSwish,
               "hard_swish": HardSwish, "gelu": GELU, "tanh": Tanh, "elu": ELU, "selu": SELU,
               "hard_sigmoid (Keras 2)": HardSigmoidKeras2,
               "hard_sigmoid (Keras 3)": HardSigmoid}
# A name Keras changed the meaning of: {name: {Keras major version: vggnp's name}}. A file's
# name is replaced by the one its keras_version says (files/keras_version.py).
KERAS_VERSIONED = {"hard_sigmoid": {2: "hard_sigmoid (Keras 2)", 3: "hard_sigmoid (Keras 3)"}}

