"""Keras convnets of the kinds readers of the book train, for the tests of ``vggnp.keras_model``:
built in Keras 3 or Keras 2 (tf_keras) with the same realistic random weights, and a
TensorFlow Grad-CAM (GradientTape) to compare with.

    model = build(keras, "vgg16_head")      # or "scratch", "zoo"
"""

import numpy as np

from vggnp.nn.random_init import random_vgg16_weights

INPUT_SHAPES = {"scratch": (150, 150, 3), "zoo": (64, 80, 3), "vgg16_head": (150, 150, 3)}


def build(keras, kind):
    """A Sequential model of ``kind``, built with ``keras`` (the keras or tf_keras module)."""
    L, shape = keras.layers, INPUT_SHAPES[kind]
    if kind == "scratch":  # the book's cats-vs-dogs convnet, with a Rescaling layer
        layers = [L.Rescaling(1 / 255), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
                  L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2),
                  L.Conv2D(128, 3, activation="relu"), L.MaxPooling2D(2),
                  L.Conv2D(128, 3, activation="relu"), L.MaxPooling2D(2),
                  L.Flatten(), L.Dropout(0.5), L.Dense(512, activation="relu"),
                  L.Dense(1, activation="sigmoid")]
    elif kind == "zoo":  # every other supported layer and option
        layers = [L.Rescaling(1 / 127.5, offset=-1),
                  L.Conv2D(8, 5, strides=2, padding="same", use_bias=False),
                  L.BatchNormalization(), L.Activation("relu"),
                  L.AveragePooling2D(pool_size=3, strides=2, padding="same"),
                  L.Conv2D(16, 3, activation="relu"),
                  L.MaxPooling2D(pool_size=3, strides=2, padding="same"),
                  L.Conv2D(16, (1, 3), padding="same"), L.Activation("relu"),
                  L.GlobalAveragePooling2D(), L.Dropout(0.3), L.Dense(5, activation="softmax")]
    else:  # the book's VGG16 conv base with a new dense head
        base = keras.applications.VGG16(weights=None, include_top=False, input_shape=shape)
        layers = [base, L.Flatten(), L.Dense(256, activation="relu"), L.Dropout(0.5),
                  L.Dense(1, activation="sigmoid")]
    model = keras.Sequential([keras.Input(shape), *layers])
    set_random_weights(model, seed=0)
    return model


def leaf_layers(model):
    """The model's layers with nested models inlined (input layers left out)."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from leaf_layers(layer)
        elif type(layer).__name__ != "InputLayer":
            yield layer


def set_random_weights(model, seed):
    """He-normal kernels and N(0, 0.1) biases (VGG16 base: vggnp's random VGG16, made for
    caffe-scale inputs); batch-norm statistics that are not the identity."""
    rng = np.random.default_rng(seed)
    vgg16 = random_vgg16_weights(top=False, seed=seed)
    for layer in leaf_layers(model):
        values = layer.get_weights()
        if not values:
            continue
        if layer.name in vgg16:
            layer.set_weights(list(vgg16[layer.name]))
        elif type(layer).__name__ == "BatchNormalization":
            c = values[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c),
                               rng.normal(0, 0.3, c), rng.uniform(0.3, 2.0, c)])
        else:
            kernel = values[0]
            fan_in = int(np.prod(kernel.shape[:-1]))
            new = [rng.normal(0, np.sqrt(2 / fan_in), kernel.shape)]
            if len(values) == 2:
                new.append(rng.normal(0, 0.1, values[1].shape))
            layer.set_weights([v.astype(np.float32) for v in new])


def tf_grad_cam(tf, model, x, layer_name, class_index):
    """Grad-CAM as keras-io computes it, layer by layer in eager mode with GradientTape.

    The score is the logit of ``class_index`` (the last Dense before its activation;
    for one sigmoid unit: +z for class 1, -z for class 0). Returns (outputs, heatmaps).
    """
    leaves = list(leaf_layers(model))
    with tf.GradientTape() as tape:
        a = tf.constant(x)
        for layer in leaves[:-1]:
            a = layer(a, training=False)
            if layer.name == layer_name:
                conv = a
                tape.watch(conv)
        last = leaves[-1]
        logits = tf.matmul(a, last.kernel) + last.bias
        if logits.shape[1] == 1:
            score = logits[:, 0] * (1.0 if class_index == 1 else -1.0)
        else:
            score = logits[:, class_index]
    grads = tape.gradient(score, conv)
    weights = tf.reduce_mean(grads, axis=(1, 2))
    cam = tf.nn.relu(tf.einsum("nhwc,nc->nhw", conv, weights)).numpy()
    cam /= np.maximum(cam.max(axis=(1, 2), keepdims=True), 1e-30)
    return model.predict(x, verbose=0), cam


def tf_graph_grad_cam(tf, model, x, layer, logits_layer, class_index):
    """Grad-CAM by GradientTape on any Keras model, a graph too: the score is the
    pre-activation of the Dense ``logits_layer`` (its input times its kernel plus its
    bias, also where Keras folds the softmax into the layer). Returns heatmaps (N, h, w)."""
    dense = model.get_layer(logits_layer)
    probe = tf.keras.Model(model.inputs, [model.get_layer(layer).output, dense.input])
    with tf.GradientTape() as tape:
        conv, features = probe(tf.constant(x))
        score = (tf.matmul(features, dense.kernel) + dense.bias)[:, class_index]
    weights = tf.reduce_mean(tape.gradient(score, conv), axis=(1, 2))
    cam = tf.nn.relu(tf.einsum("nhwc,nc->nhw", conv, weights)).numpy()
    return cam / np.maximum(cam.max(axis=(1, 2), keepdims=True), 1e-30)


def grad_cams_equal(tf, model, ours, x, layers, classes, logits_layer="predictions"):
    """Assert that vggnp's Grad-CAM of ``ours`` equals TensorFlow's of ``model`` within
    1e-4 at every layer of ``layers`` for every class of ``classes`` (an empty map too,
    as TF's, without its warning); returns how many of TF's maps were not zero."""
    import warnings
    from vggnp import grad_cam
    from vggnp import EmptyMapWarning
    nonzero = 0
    for layer in layers:
        for c in classes:
            cam = tf_graph_grad_cam(tf, model, x, layer, logits_layer, c)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EmptyMapWarning)
                maps, _ = grad_cam(ours, x, layer=layer, class_index=c)
            assert np.abs(maps - cam).max() <= 1e-4, (layer, c)
            nonzero += cam.max() > 0
    return nonzero
