"""TensorFlow/Keras reference values for vggnp's tests (needs tensorflow).

Set ``TF_ENABLE_ONEDNN_OPTS=0`` before TensorFlow is imported: oneDNN's float32 kernels
give input gradients 5e-2 away from the Eigen path's (``python -m scripts.tf_paths``), and
the Eigen path equals vggnp's backward on TF's activations to ~1e-6. The gradients are computed as the keras-io Grad-CAM example does, with
``tf.GradientTape`` on a model that returns the intermediate layer's output; the class
score is the pre-softmax logit, computed from fc2's output with the predictions kernel.
"""

import numpy as np

from vggnp.nn import spec


def build_keras_vgg16(keras, weights, input_size=spec.INPUT_SIZE):
    """A Keras functional model with VGG16's layer names and the given weights.

    Unlike ``keras.applications.VGG16`` it accepts other widths and input sizes (for the
    small offline fixture). weights: {name: (kernel, bias)}; without fc1 it ends at block5_pool.
    """
    layers = keras.layers
    inputs = keras.Input(shape=(*input_size, 3), name="input_layer")
    x = inputs
    for name in spec.LAYER_NAMES:
        if name.endswith("_pool"):
            x = layers.MaxPooling2D(2, name=name)(x)
        elif name in spec.CONV_NAMES:
            x = layers.Conv2D(weights[name][0].shape[-1], 3, padding="same",
                              activation="relu", name=name)(x)
        elif "fc1" not in weights:
            break
        elif name == "flatten":
            x = layers.Flatten(name=name)(x)
        else:
            x = layers.Dense(weights[name][0].shape[-1], name=name,
                             activation="softmax" if name == "predictions" else "relu")(x)
    model = keras.Model(inputs, x, name="vgg16")
    set_weights(model, weights)
    return model


def set_weights(model, weights):
    """Copy {layer name: (kernel, bias)} into a Keras model, by layer name."""
    for name, (kernel, bias) in weights.items():
        model.get_layer(name).set_weights([kernel, bias])


def reference(tf, keras, model, x, class_indices=None, layers=("block5_conv3", "block4_conv3")):
    """TensorFlow's values for a batch x: (N, H, W, 3), preprocessed.

    Returns {"logits": (N, K), "classes": (N,), "outputs": {layer name: array} (every
    conv, pool, fc1 and fc2),
    "grads": {layer: d score / d output of that layer}, "grad_input": d score / d x}, where
    score = sum over images of logits[n, classes[n]]; classes default to TF's top-1.
    """
    names = [n for n in spec.LAYER_NAMES if n != "flatten" and n != "predictions"]
    features = keras.Model(model.inputs, {n: model.get_layer(n).output for n in names})
    head = model.get_layer("predictions")
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        outs = features(xt)
        logits = tf.matmul(outs["fc2"], head.kernel) + head.bias
        if class_indices is None:
            class_indices = tf.argmax(logits, axis=1).numpy()
        score = tf.reduce_sum(tf.gather(logits, class_indices, axis=1, batch_dims=1))
    *grads, grad_input = tape.gradient(score, [outs[n] for n in layers] + [xt])
    return {"logits": logits.numpy(), "classes": np.asarray(class_indices),
            "outputs": {n: outs[n].numpy() for n in names},
            "grads": {n: g.numpy() for n, g in zip(layers, grads)},
            "grad_input": grad_input.numpy()}


def tf_grad_cam(tf, keras, model, x, layer="block5_conv3", class_indices=None):
    """Grad-CAM as the keras-io example computes it, with the class logit as the score.

    Returns (heatmaps (N, h, w) normalised by their max, pooled gradients alpha (N, C),
    class indices (N,)).
    """
    grad_model = keras.Model(model.inputs, [model.get_layer(layer).output,
                                            model.get_layer("fc2").output])
    head = model.get_layer("predictions")
    with tf.GradientTape() as tape:
        conv_output, fc2 = grad_model(tf.constant(x))
        logits = tf.matmul(fc2, head.kernel) + head.bias  # the last layer without softmax
        if class_indices is None:
            class_indices = tf.argmax(logits, axis=1).numpy()
        class_channel = tf.gather(logits, class_indices, axis=1, batch_dims=1)
    # Gradient of the class score w.r.t. the conv layer's output feature map.
    grads = tape.gradient(class_channel, conv_output)
    # Each entry: the mean intensity of the gradient over one feature-map channel.
    pooled_grads = tf.reduce_mean(grads, axis=(1, 2))
    # Multiply each channel by "how important it is" for the class, and sum the channels.
    heatmap = tf.einsum("nhwc,nc->nhw", conv_output, pooled_grads)
    # Keep the positive part and normalise each map to [0, 1].
    heatmap = tf.maximum(heatmap, 0) / tf.reduce_max(heatmap, axis=(1, 2), keepdims=True)
    return heatmap.numpy(), pooled_grads.numpy(), np.asarray(class_indices)
