"""Layers the Keras Applications graphs use beside VGG16's (issue #25): a depthwise
convolution, zero padding and Keras' ReLU layer with its options (MobileNet's ReLU6).
One small class each, forward and backward beside each other, shapes NHWC. (PReLU and
ELU: ``activation_layers.py``.)
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .activation_functions import relu
from .im2col import windows
from .layers import PLAIN, Conv2D, Layer


class DepthwiseConv2D(Conv2D):
    """Keras' DepthwiseConv2D: every input channel c convolved on its own with M kernels
    (the depth multiplier), w: (KH, KW, C, M), b: (C*M,):

        z[n, y, x, c*M + m] = sum_{i, j} xpad[n, s*y + i, s*x + j, c] w[i, j, c, m] + b[c*M + m]

    then the activation. With no sum over channels there is no matrix product to make, and
    im2col would copy the map KH*KW times for nothing: forward contracts a view of every
    window with the kernel (``pre_activation``). Backward, per kernel offset (i, j), with
    the shifted map (every window's pixel at (i, j), a view: ``im2col.windows``):
        dxpad[n, s*y + i, s*x + j, c] += sum_m dz[n, y, x, c, m] w[i, j, c, m]
        dW[i, j, c, m] = sum_{n, y, x} xpad[n, s*y + i, s*x + j, c] dz[n, y, x, c, m]

    LRP's rules act on the weights it has (Conv2D's ``relevance``): each output takes its
    relevance from its own channel's window, as a Conv2D whose kernel is zero across
    channels would, but for the flat rule, whose ones stay on the channel's own taps
    (``test_a_depthwise_conv_passes_relevance_per_channel``)."""

    def __init__(self, name, w, b=None, activation="linear", strides=(1, 1), padding="same"):
        super().__init__(name, w, None, activation, strides, padding)
        self.use_bias = b is not None
        self.b = np.zeros(w.shape[2] * w.shape[3], w.dtype) if b is None else b

    def transient_forward(self, x):
        """forward(x) for a caller that reads the output at once and lets it go
        (SeparableConv2D's d): a fast layer may write it into memory it reuses."""
        return self.forward(x)

    def _shifted(self, padded, shape):
        """(i, j, view): the padded map's pixel at offset (i, j) of every window."""
        _, h, w, _ = shape
        kh, kw = self.w.shape[:2]
        return windows(padded, kh, kw, self.strides, h, w)

    def _padded(self, x):
        (top, bottom), (left, right) = self.pads(x.shape)
        return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))

    def pre_activation(self, x):
        """z (N, H', W', C*M), a new array: every window of the padded input as a view
        (N, H', W', C, KH, KW) -- ``sliding_window_view``, no copy -- contracted with the
        kernel by one einsum (its C loop reads each window in place: one pass, no
        temporaries)."""
        n, h, w, cm = self.output_shape(x.shape)
        kh, kw, c, m = self.w.shape
        sh, sw = self.strides
        views = sliding_window_view(self._padded(x), (kh, kw), axis=(1, 2))
        views = views[:, :sh * (h - 1) + 1:sh, :sw * (w - 1) + 1:sw]
        if m == 1:  # one kernel per channel, as in every Keras Applications model
            z = np.einsum("nhwcij,ijc->nhwc", views, self.w[..., 0])
        else:
            z = np.einsum("nhwcij,ijcm->nhwcm", views, self.w).reshape(n, h, w, cm)
        if self.b.any():  # a separable conv's depthwise has none: a pass over z saved
            z += self.b
        return z

    def output_shape(self, x_shape):
        n, h, w, _ = super().output_shape(x_shape)
        return (n, h, w, self.w.shape[2] * self.w.shape[3])

    def kernel_times(self, w, scale):
        """w (KH, KW, C, M) times scale (C*M,), one factor per output channel c*M + m."""
        return w * scale.reshape(w.shape[2:])

    def param_gradients(self, dz):
        c, m = self.w.shape[2:]
        dz5 = dz.reshape(*dz.shape[:3], c, m)
        self.dw = np.empty_like(self.w)
        for i, j, view in self._shifted(self._padded(self.x), dz.shape):
            self.dw[i, j] = (np.einsum("nhwc,nhwcm->cm", view, dz5) if m > 1 else
                             np.einsum("nhwc,nhwc->c", view, dz)[:, None])
        self.db = dz.reshape(-1, c * m).sum(axis=0)

    def input_gradient(self, dz):
        c, m = self.w.shape[2:]
        dz5 = dz.reshape(*dz.shape[:3], c, m)
        (top, bottom), (left, right) = self.pads(self.x.shape)
        n, h, w, _ = self.x.shape
        dxp = np.zeros((n, h + top + bottom, w + left + right, c), dz.dtype)
        for i, j, view in self._shifted(dxp, dz.shape):
            view += (dz5[..., 0] * self.w[i, j, :, 0] if m == 1 else
                     np.einsum("nhwcm,cm->nhwc", dz5, self.w[i, j]))
        return dxp[:, top:top + h, left:left + w, :]


class ZeroPadding2D(Layer):
    """Keras' ZeroPadding2D: ((top, bottom), (left, right)) rows and columns of zeros;
    backward is the slice of dout where the input was (the padding gets no gradient)."""

    relevance = Layer.gradient_relevance

    def __init__(self, name, padding):
        super().__init__(name)
        (self.top, self.bottom), (self.left, self.right) = padding

    def forward(self, x):
        return np.pad(x, ((0, 0), (self.top, self.bottom), (self.left, self.right), (0, 0)))

    def backward(self, dout, options=PLAIN):
        h, w = dout.shape[1] - self.top - self.bottom, dout.shape[2] - self.left - self.right
        return dout[:, self.top:self.top + h, self.left:self.left + w, :]


class ReLU(Layer):
    """Keras' ReLU layer, with its options (MobileNetV2: max_value 6):

        f(x) = min(x, max_value)                 for x >= threshold
        f(x) = negative_slope * (x - threshold)  for x < threshold
        f'(x) = 1 between threshold and max_value, negative_slope below, 0 above max_value

    A guided pass (guided backpropagation) also drops the negative gradients, as every
    ReLU of vggnp does."""

    def __init__(self, name, max_value=None, negative_slope=0.0, threshold=0.0):
        super().__init__(name)
        self.max_value, self.slope, self.threshold = max_value, negative_slope, threshold
        self.plain = negative_slope == 0 and threshold == 0  # ReLU, ReLU6: one pass

    def forward(self, x):
        if self.plain:  # the output says where the gradient passes: 0 < out < max_value
            top = np.inf if self.max_value is None else self.max_value
            self.x, self.out = None, np.clip(x, 0, top)  # one pass, as ``relu``
            return self.out
        self.x = x
        out = np.where(x < self.threshold, self.slope * (x - self.threshold), x)
        if self.max_value is not None:
            np.minimum(out, self.max_value, out=out)
        self.out = out
        return out

    def relevance(self, r, options):
        """A plain ReLU passes relevance whole, as a conv's own ReLU and an Activation
        layer do (iNNvestigate masks it here: R * (out > 0)); ``lrp.check_relu_network``
        refuses the ReLUs with options."""
        return r

    def backward(self, dout, options=PLAIN):
        if options.deconvnet:  # a plain ReLU only: lrp.check_relu_network
            return relu(dout)
        if self.plain:
            passes = self.out > 0
            if self.max_value is not None:
                passes &= self.out < self.max_value
            dx = dout * passes
        else:
            dx = np.where(self.x < self.threshold, self.slope * dout, dout)
            if self.max_value is not None:
                dx = np.where(self.x > self.max_value, 0, dx)
        return relu(dx) if options.guided else dx


class SeparableConv2D(Conv2D):
    """Keras' SeparableConv2D (Xception's convolution): a depthwise convolution of every
    input channel (``DepthwiseConv2D``, w_d: (KH, KW, C, M), no bias), then a pointwise
    1x1 convolution mixing the C*M channels into F (w_p: (1, 1, C*M, F)), the bias (F,)
    and the activation:

        d = depthwise(x),  z = d @ W_p + b
        dd = dz @ W_p^T,   dW_p = d^T dz,  db = sum of dz,  dx and dW_d from dd as
        DepthwiseConv2D's backward

    A conv layer for the CAMs, as Conv2D (``conv_names``)."""

    relevance = Layer.relevance  # LRP: no rule tested for it yet, refused by name

    def __init__(self, name, depthwise, pointwise, b=None, activation="linear", strides=(1, 1),
                 padding="same"):
        """depthwise: its kernel (KH, KW, C, M), or a DepthwiseConv2D layer (a dilated one:
        ``sparse_kernels``), whose strides and padding then stand."""
        super().__init__(name, pointwise, b, activation, (1, 1), "valid")
        self.depthwise = depthwise if isinstance(depthwise, DepthwiseConv2D) else \
            DepthwiseConv2D(f"{name}/depthwise", depthwise, None, "linear", strides, padding)

    def replica(self, workspace):
        twin = super().replica(workspace)
        twin.depthwise = self.depthwise.replica(workspace)  # caches of its own
        return twin

    @property
    def weights(self):
        return (*self.depthwise.weights, *super().weights)

    def with_weights(self, w, b):
        twin = super().with_weights(w, b)
        twin.depthwise = self.depthwise.replica(None)  # its caches its own
        return twin

    def forget(self):
        super().forget()
        self.depthwise.forget()

    def pre_activation(self, x):
        """z (N, H', W', F), a new array. d is not kept: only dW_p needs it, and it is
        made again there (Xception's 36 kept d maps held 27 MB through every pass)."""
        d = self.depthwise.transient_forward(x)
        f = self.w.shape[3]
        z = (d.reshape(-1, d.shape[3]) @ self.w.reshape(-1, f)).reshape(*d.shape[:3], f)
        if self.b.any():  # Xception's have none (a BatchNorm follows): a pass saved
            z += self.b
        return z

    def output_shape(self, x_shape):
        return (*self.depthwise.output_shape(x_shape)[:3], self.w.shape[3])

    def param_gradients(self, dz):
        f = self.w.shape[3]
        d = self.depthwise.transient_forward(self.x)  # the forward's d, made again
        self.dw = (d.reshape(-1, d.shape[3]).T @ dz.reshape(-1, f)).reshape(self.w.shape)
        self.db = dz.reshape(-1, f).sum(axis=0)
        self.depthwise.param_gradients(self._depthwise_gradient(dz))

    def input_gradient(self, dz):
        return self.depthwise.input_gradient(self._depthwise_gradient(dz))

    def _depthwise_gradient(self, dz):
        """dd = dz @ W_p^T: (N, H', W', F) -> (N, H', W', C*M)."""
        f = self.w.shape[3]
        return (dz.reshape(-1, f) @ self.w.reshape(-1, f).T).reshape(*dz.shape[:3], -1)


class Cropping2D(ZeroPadding2D):
    """Keras' Cropping2D: ((top, bottom), (left, right)) rows and columns cut off; backward
    pads dout back with zeros (the cut-off pixels had no effect): ZeroPadding2D reversed."""

    def forward(self, x):
        h, w = x.shape[1] - self.top - self.bottom, x.shape[2] - self.left - self.right
        return x[:, self.top:self.top + h, self.left:self.left + w, :]

    def backward(self, dout, options=PLAIN):
        return ZeroPadding2D.forward(self, dout)


class Identity(Layer):
    """Keras' Identity layer: out = x, dx = dout."""

    relevance = Layer.gradient_relevance

    def forward(self, x):
        return x

    def backward(self, dout, options=PLAIN):
        return dout


class ConstantOp(Layer):
    """An operation of a tensor and a number that Keras 3 records in a graph when code
    writes ``x + 3.0`` or ``x * (1 / 6)`` (MobileNetV3's hard sigmoid, ReLU6(x + 3) / 6):

        add: out = x + c,  dx = dout;     multiply: out = x * c,  dx = dout * c
    """

    def __init__(self, name, op, constant):
        super().__init__(name)
        if op not in ("add", "multiply"):
            raise ValueError(f"operation {op!r}: add or multiply")
        self.op, self.constant = op, constant

    def forward(self, x):
        out = x + self.constant if self.op == "add" else x * self.constant
        return out.astype(x.dtype, copy=False)

    def backward(self, dout, options=PLAIN):
        return dout if self.op == "add" else dout * self.constant
