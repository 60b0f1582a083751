"""Grad-CAM localises on a trained model (issue #6): the committed synthetic-shapes convnet
(weights/shapes_convnet.keras, made by ``python -m scripts.shapes``), pointing game on
held-out images drawn by the same code with another seed. No TensorFlow needed."""

import os

import numpy as np
import pytest

from helpers import done_images, run_cam
from scripts.shapes import (CLASSES, LABELS_PATH, MODEL_PATH, ROOT, SIZE, TEST_SEED,
                            chance_hit_rate, dataset, pointing_hit)
from vggnp import grad_cam
from vggnp.keras_model import load_keras_model

N = 300


@pytest.fixture(scope="module")
def shapes_model():
    return load_keras_model(MODEL_PATH)


def test_pointing_game(shapes_model):
    """The README's figures, exactly (everything here is deterministic): 300/300 classified
    right, 300/300 maxima in the box; chance 8.0 % (a uniformly random pixel)."""
    images, labels, boxes = dataset(N, TEST_SEED)
    x = images.astype(np.float32)  # the model rescales by 1/255 itself
    assert shapes_model.default_preprocess == "none"
    probs = shapes_model.predict(x)
    correct = int(np.sum(probs.argmax(axis=1) == labels))
    heatmaps, _ = grad_cam(shapes_model, x, class_index=labels)  # the true class
    hits = sum(pointing_hit(h, box) for h, box in zip(heatmaps, boxes))
    # Chance level: a uniformly random pixel hits the box with probability box area / image
    # area (exact, mean over the 300 boxes) ...
    chance = chance_hit_rate(boxes)
    # ... and one seeded draw of such pixels, scored by pointing_hit itself (a one-hot map at
    # full resolution, which resize_bilinear leaves unchanged).
    rng = np.random.default_rng(0)
    random_hits = 0
    for (py, px), box in zip(rng.integers(0, SIZE, (N, 2)), boxes):
        one_hot = np.zeros((SIZE, SIZE))
        one_hot[py, px] = 1
        random_hits += pointing_hit(one_hot, box)
    report = (f"accuracy {correct}/{N}, pointing game {hits}/{N}, chance (box area) "
              f"{chance:.3f}, random pixel {random_hits}/{N}")
    print(report)
    assert correct == N, report
    assert hits == N, report
    assert round(chance, 3) == 0.080, report
    assert random_hits == 28, report


def test_offline_demo_command(tmp_path):
    """The README's command: no download, names from the labels file."""
    image = os.path.join(ROOT, "examples", "triangle.png")
    result = run_cam("--model", MODEL_PATH, "--labels", LABELS_PATH, image,
                     "--out", str(tmp_path), "--json", "--panel")
    assert result.returncode == 0, result.stderr
    (report,) = done_images(result.stdout)
    assert report["top"][0]["name"] == "triangle" and report["class"]["name"] == "triangle"
    assert sorted(t["name"] for t in report["top"]) == sorted(CLASSES)
    assert os.path.isfile(tmp_path / "triangle_triangle_cam.jpg")


def test_model_cli_class_by_label_and_errors(tmp_path):
    image = os.path.join(ROOT, "examples", "triangle.png")

    def cam(*args):
        return run_cam("--model", MODEL_PATH, image, "--out", str(tmp_path), *args)

    result = cam("--labels", LABELS_PATH, "--class", "Circle", "--format", "png")
    assert result.returncode == 0, result.stderr
    assert os.path.isfile(tmp_path / "triangle_circle_cam.png")  # the map for "circle"
    result = cam()  # no labels: class_<index>
    assert result.returncode == 0 and os.path.isfile(tmp_path / "triangle_class_2_cam.jpg")
    two = tmp_path / "two.txt"
    two.write_text("a\nb\n")
    result = cam("--labels", str(two))  # a labels file that does not fit: exit 3, as a model
    assert result.returncode == 3 and "has 2 names, the model has 3 classes" in result.stderr
    for args, message in [(["--class", "hexagon"], "unknown class 'hexagon'"),
                          (["--layer", "dense"], "--layer must be a conv layer of the model"),
                          (["--weights", MODEL_PATH], "exclude each other")]:
        result = cam(*args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
