"""The bundled ImageNet class index and decode_predictions."""

import hashlib
import os

import numpy as np
import pytest

import vggnp
from vggnp.files.imagenet import class_index, classes, decode_predictions


def test_class_index_file_is_byte_identical_to_keras():
    path = os.path.join(os.path.dirname(vggnp.__file__), "data", "imagenet_class_index.json")
    with open(path, "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == "c2c37ea517e94d9795004a39431a14cb"
    assert len(classes()) == 1000
    assert classes()[386] == ("n02504458", "African_elephant")


def test_class_lookup():
    assert class_index(386) == class_index("386") == 386
    assert class_index("African_elephant") == class_index("african elephant") == 386
    assert class_index("n02504458") == 386
    with pytest.raises(ValueError, match="unknown"):
        class_index("unicorn")
    with pytest.raises(ValueError, match="out of range"):
        class_index(1000)


def test_decode_predictions_top_k():
    probs = np.zeros((2, 1000), np.float32)
    probs[0, [386, 101, 7]] = [0.7, 0.2, 0.1]
    probs[1, 285] = 1.0
    top = decode_predictions(probs, top=3)
    assert top[0] == [(386, "n02504458", "African_elephant", pytest.approx(0.7)),
                      (101, "n01871265", "tusker", pytest.approx(0.2)),
                      (7, "n01514668", "cock", pytest.approx(0.1))]
    assert top[1][0][:3] == (285, "n02124075", "Egyptian_cat")
    with pytest.raises(ValueError):
        decode_predictions(np.zeros((1, 10)))
