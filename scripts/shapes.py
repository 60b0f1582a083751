"""A synthetic data set where the right answer to "where is the evidence?" is known, and the
small VGG-style Keras model trained on it: the offline Grad-CAM demo and localisation test.

Each image is 64x64 RGB noise with one shape -- circle, square or triangle -- of random
size, colour and place; the class is the shape, and its bounding box is where Grad-CAM
should point.

    python -m scripts.shapes          # trains (TensorFlow), writes weights/shapes_convnet.keras,
                                      # weights/shapes_labels.txt and examples/<shape>.png

The data set itself (NumPy only, shared with the tests) is ``tests/shapes_data.py``.
"""

import os

import numpy as np

from tests.shapes_data import (CLASSES, LABELS_PATH, MODEL_PATH, ROOT, SIZE, TEST_SEED,  # noqa: F401
                               TRAIN_SEED, dataset, draw)


def build(keras):
    """Small VGG-style convnet: pairs of 3x3 convs, max-pools, global average pooling."""
    L = keras.layers
    return keras.Sequential([
        keras.Input((SIZE, SIZE, 3)), L.Rescaling(1 / 255),
        L.Conv2D(16, 3, padding="same", activation="relu"),
        L.Conv2D(16, 3, padding="same", activation="relu"), L.MaxPooling2D(2),
        L.Conv2D(32, 3, padding="same", activation="relu"),
        L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(2),
        L.Conv2D(64, 3, padding="same", activation="relu"),
        L.Conv2D(64, 3, padding="same", activation="relu"),
        L.GlobalAveragePooling2D(), L.Dense(len(CLASSES), activation="softmax"),
    ], name="shapes_convnet")


def train(n=6000, epochs=8):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from PIL import Image

    keras.utils.set_random_seed(TRAIN_SEED)
    images, labels, _ = dataset(n, TRAIN_SEED)
    model = build(keras)
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, batch_size=64, epochs=epochs, validation_split=0.1, verbose=2)
    test_images, test_labels, _ = dataset(500, TEST_SEED)
    accuracy = model.evaluate(test_images, test_labels, verbose=0)[1]
    print(f"held-out accuracy: {accuracy:.3f}")
    # Saved uncompiled: the optimizer's state would triple the file.
    clean = build(keras)
    clean.set_weights(model.get_weights())
    os.makedirs(os.path.dirname(MODEL_PATH), exist_ok=True)
    clean.save(MODEL_PATH)
    with open(LABELS_PATH, "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    rng = np.random.default_rng(7)
    for kind in CLASSES:
        picture, _ = draw(rng, kind)
        Image.fromarray(picture).save(os.path.join(ROOT, "examples", f"{kind}.png"))
    print(f"wrote {MODEL_PATH} ({os.path.getsize(MODEL_PATH) / 1e3:.0f} KB), {LABELS_PATH}, "
          f"examples/{{{','.join(CLASSES)}}}.png")


if __name__ == "__main__":
    train()
