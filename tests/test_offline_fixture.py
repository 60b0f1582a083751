"""The core numerics against committed TensorFlow values: runs without TensorFlow.

tests/data/ holds a narrow VGG-shaped Keras model and TF's outputs on two photos, made by
``python -m scripts.make_reference_fixture``. Same checks as test_tf_reference.py.
"""

import os

import numpy as np
import pytest

from reference_check import compare_backward, compare_forward
from vggnp import VGG16

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.fixture(scope="module")
def fixture():
    with np.load(os.path.join(DATA, "narrow_vgg16_reference.npz")) as f:
        arrays = dict(f)
    ref = {key: arrays[key] for key in ("logits", "classes", "grad_input")}
    for group in ("outputs", "grads"):
        ref[group] = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(group + "/")}
    model = VGG16.load(os.path.join(DATA, "narrow_vgg16.weights.h5"),
                       input_size=arrays["x"].shape[1:3], standard=False)
    return model, arrays["x"], ref


def test_forward_and_gradient_equal_tensorflow(fixture):
    model, x, ref = fixture
    compare_forward(model, x, ref)


@pytest.mark.parametrize("layer", ["block5_conv3", "block4_conv3"])
def test_backward_equals_tensorflow(fixture, layer):
    model, x, ref = fixture
    compare_backward(model, x, ref, layer=layer)


def test_fixture_is_not_degenerate(fixture):
    _, _, ref = fixture
    for name, a in ref["outputs"].items():
        assert 0.05 < (a > 0).mean() < 0.95, name
