"""#25: models of Keras Applications, built by Keras with realistic random weights (batch
norm statistics included) and saved by Keras 3, read by vggnp and compared with
TensorFlow at several layers: MobileNetV2 (depthwise convolutions, ReLU6, zero padding,
residual Adds), Xception (separable convolutions) and ResNet50. Every model of the
issue's list, in float64 and float32: test_application_models.py. A model with a layer
vggnp does not have is refused by name."""

import numpy as np
import pytest

from keras_convnets import grad_cams_equal, leaf_layers
from vggnp import load_keras_model


def realistic_weights(keras, model, seed=0):
    """He-normal kernels, small biases; batch norm with gamma ~ 1, beta ~ 0.1, moving
    means ~ 0.3 and variances in 0.5..2 (not Keras' initial 0 and 1)."""
    rng = np.random.default_rng(seed)
    for layer in leaf_layers(model):  # a nested base's layers too
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            c = weights[0].shape  # gamma and beta only when scale and center are on
            weights = ([rng.uniform(0.5, 1.5, c)] * layer.scale + [rng.normal(0, 0.1, c)]
                       * layer.center + [rng.normal(0, 0.3, c), rng.uniform(0.5, 2.0, c)])
        elif isinstance(layer, keras.layers.Normalization) and weights:
            c = weights[0].shape  # an input normalised by its own statistics (EfficientNet)
            weights = [rng.uniform(0.3, 0.6, c), rng.uniform(0.04, 0.09, c), weights[2]]
        else:
            weights = [rng.standard_normal(w.shape) * (np.sqrt(2 / np.prod(w.shape[:-1]))
                                                       if w.ndim > 1 else 0.05)
                       for w in weights]
        layer.set_weights([w.astype(np.float32) for w in weights])
        if isinstance(layer, keras.layers.Normalization) and weights:
            layer.finalize_state()  # Keras 3 computes with a copy made here (or on loading)


def calibrate_batch_norms(keras, model, x):
    """Every batch norm's moving statistics set to those of its input on the images x
    (N, H, W, C), as training leaves them, so that deep random networks keep a signal
    that depends on the image (with arbitrary statistics, EfficientNetB0's logits were the
    same for every image and d logit / d input ~1e-16). Dropout is off meanwhile."""
    norms = [layer for layer in leaf_layers(model)
             if isinstance(layer, keras.layers.BatchNormalization)]
    dropouts = [layer for layer in leaf_layers(model)
                if isinstance(layer, keras.layers.Dropout)]
    rates = [layer.rate for layer in dropouts]
    for layer in norms:
        layer.momentum = 0.0  # the moving average becomes this batch's statistics
    for layer in dropouts:  # else random (EfficientNetB0's drop-connect): another model
        layer.rate = 0.0    # each run, its sigmoid output 7e-9 in one, 3e-4 in another
    model(x, training=True)
    for layer in norms:
        layer.momentum = 0.99
    for layer, rate in zip(dropouts, rates):
        layer.rate = rate


def test_mobilenet_v2_equals_tensorflow(tf, tmp_path):
    keras = tf.keras
    model = keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), alpha=0.35,
                                           classes=5)
    realistic_weights(keras, model)
    model.save(tmp_path / "mobilenet_v2.keras")
    ours = load_keras_model(tmp_path / "mobilenet_v2.keras")
    assert type(ours).__name__ == "KerasGraph" and ours.last_conv == "Conv_1"
    x = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    theirs = model.predict(x, verbose=0)
    assert np.abs(ours.predict(x) - theirs).max() <= 1e-5 * max(1, np.abs(theirs).max())
    # Grad-CAM at conv, depthwise and expanding layers, every class
    compared = grad_cams_equal(tf, model, ours, x, ("Conv_1", "block_16_depthwise",
                                                    "block_15_expand", "block_3_depthwise"),
                               range(5))
    assert compared >= 8  # measured: 10 of the 20 maps are not zero


def test_xception_equals_tensorflow(tf, tmp_path):
    """The model of Keras' own Grad-CAM example (SeparableConv2D, residual Adds of strided
    1x1 convolutions, max pools), 71x71 (its smallest input), realistic random weights."""
    keras = tf.keras
    model = keras.applications.Xception(weights=None, input_shape=(71, 71, 3), classes=4)
    realistic_weights(keras, model)
    model.save(tmp_path / "xception.keras")
    ours = load_keras_model(tmp_path / "xception.keras")
    assert ours.last_conv == "block14_sepconv2"
    assert ours.default_layer == "block14_sepconv2_act"  # as Keras' Grad-CAM example
    x = np.random.default_rng(1).uniform(-1, 1, (2, 71, 71, 3)).astype(np.float32)
    theirs = model.predict(x, verbose=0)
    assert np.abs(ours.predict(x) - theirs).max() <= 1e-5 * max(1, np.abs(theirs).max())
    compared = grad_cams_equal(tf, model, ours, x, ("block14_sepconv2_act", "block14_sepconv2",
                                                    "block13_sepconv2",
                                                    "block4_sepconv1", "block1_conv1"), range(4))
    assert compared >= 14  # measured: 18 of the 20 have a non-zero map for an image


def test_resnet50_equals_tensorflow(tf, tmp_path):
    """ResNet50 (ZeroPadding2D, strided convolutions, 16 residual Adds), 32x32: its logits
    (its softmax saturates with random weights, so the logits are compared) and Grad-CAM."""
    keras = tf.keras
    model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=3)
    realistic_weights(keras, model)
    model.save(tmp_path / "resnet50.keras")
    ours = load_keras_model(tmp_path / "resnet50.keras")
    assert ours.default_layer == "conv5_block3_out"
    x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    dense = model.get_layer("predictions")
    features = tf.keras.Model(model.inputs, dense.input)(tf.constant(x))
    theirs = (tf.matmul(features, dense.kernel) + dense.bias).numpy()
    assert np.abs(ours.logits(x) - theirs).max() <= 1e-4 * np.abs(theirs).max()
    compared = grad_cams_equal(tf, model, ours, x, ("conv5_block3_out", "conv5_block3_3_conv",
                                                    "conv4_block6_2_conv",
                                                    "conv2_block1_0_conv"), range(3))
    assert compared >= 7  # measured: 9 of the 12


@pytest.mark.parametrize("build, refused", [
    (lambda k: k.applications.ConvNeXtTiny(weights=None, input_shape=(32, 32, 3),
                                           classes=3), "LayerNormalization"),
])
def test_models_vggnp_cannot_read_yet_are_refused_by_name(tf, tmp_path, build, refused):
    from vggnp.keras_model import ModelError
    build(tf.keras).save(tmp_path / "m.keras")
    with pytest.raises(ModelError, match=f"is of class {refused}, which vggnp does not support"):
        load_keras_model(tmp_path / "m.keras")
