"""How far apart TensorFlow's two CPU paths are, and how far vggnp is from each.

    python -m scripts.tf_paths

TensorFlow's default CPU kernels are oneDNN's (``TF_ENABLE_ONEDNN_OPTS=1``); the tests take
their reference from the Eigen kernels (``=0``, set in tests/conftest.py). The switch is
read when TensorFlow is imported, so each path runs in its own subprocess. Both compute,
as the tests do, on ``keras.applications.VGG16(weights=None)`` with the realistic random
weights ``random_vgg16_weights(seed=0)`` and the two photos in examples/: the logits, the
output of block5_conv3, d logit / d block5_conv3 and d logit / d input (top-1 class) and
the Grad-CAM map (block5_conv3, top-1, scaled to [0, 1]). vggnp runs end to end in
float32. Prints max |a - b| / max |b| for each tensor as a Markdown table; d logit /
d block5_conv3 also with the near-tied block5_pool windows (two largest values within
1e-5 relative, where float32 rounding decides which one gets the gradient) compared by
their sum, as tests/reference_check.py does.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

from vggnp import VGG16, grad_cam, load_image
from vggnp.nn.random_init import random_vgg16_weights

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PHOTOS = [os.path.join(ROOT, "examples", name) for name in ("chelsea.jpg", "coffee.jpg")]
TENSORS = ["logits", "block5_conv3", "grad_block5_conv3", "grad_input", "gradcam"]
PATHS = {"Eigen": "0", "oneDNN": "1"}  # TF_ENABLE_ONEDNN_OPTS


def photos():
    return np.concatenate([load_image(p) for p in PHOTOS])  # equals Keras' preprocessing


def tf_values(out):
    """In a fresh process: TensorFlow's values, saved to ``out`` (.npz)."""
    import keras
    import tensorflow as tf

    from tests.tf_reference import reference, set_weights, tf_grad_cam

    model = keras.applications.VGG16(weights=None)
    set_weights(model, random_vgg16_weights(seed=0))
    x = photos()
    ref = reference(tf, keras, model, x, layers=("block5_conv3",))
    cam, _, classes = tf_grad_cam(tf, keras, model, x)
    np.savez(out, logits=ref["logits"], block5_conv3=ref["outputs"]["block5_conv3"],
             grad_block5_conv3=ref["grads"]["block5_conv3"], grad_input=ref["grad_input"],
             gradcam=cam, classes=classes)


def vggnp_values():
    model = VGG16(random_vgg16_weights(seed=0))
    x = photos()
    _, kept = model.forward(x, keep=("block5_conv3",))
    logits = model.layer("predictions").z
    classes = logits.argmax(axis=1)
    dlogits = np.zeros_like(logits)
    dlogits[np.arange(len(x)), classes] = 1
    grad_b5 = model.backward(dlogits, start="predictions", stop="block5_conv3",
                             from_logits=True)
    grad_input = model.backward(grad_b5, start="block5_conv3")
    cam, _ = grad_cam(model, x, layer="block5_conv3")
    return dict(logits=logits, block5_conv3=kept["block5_conv3"], grad_block5_conv3=grad_b5,
                grad_input=grad_input, gradcam=cam, classes=classes)


def relative_to_max(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def windows(a):
    """(N, H, W, C) -> (N, H/2, W/2, C, 4): the 2x2 max-pool windows."""
    n, h, w, c = a.shape
    return a.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(
        n, h // 2, w // 2, c, 4)


def by_window_sum(b, a, name):
    """relative_to_max of d logit / d block5_conv3, near-tied windows (in b's activations)
    compared by their sum."""
    top2 = np.sort(windows(b["block5_conv3"]), axis=-1)[..., 2:]
    tied = (top2[..., 1] > 0) & (top2[..., 1] - top2[..., 0] <= 1e-5 * top2[..., 1])
    ours, theirs = windows(a[name]), windows(b[name])
    return float(max(np.abs(ours - theirs)[~tied].max(),
                     np.abs(ours.sum(-1) - theirs.sum(-1))[tied].max(initial=0))
                 / np.abs(b[name]).max()), int(tied.sum())


def main():
    values = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path, flag in PATHS.items():
            out = os.path.join(tmp, path + ".npz")
            env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=flag, TF_CPP_MIN_LOG_LEVEL="2")
            subprocess.run([sys.executable, "-m", "scripts.tf_paths", "--worker", out],
                           env=env, cwd=ROOT, check=True)
            values[path] = dict(np.load(out))
    values["vggnp"] = vggnp_values()
    for name, v in values.items():
        print(f"top-1 classes, {name}: {v['classes'].tolist()}")
    pairs = [("oneDNN", "Eigen"), ("vggnp", "Eigen"), ("vggnp", "oneDNN")]
    print("\n| tensor (max abs difference / max abs value) | "
          + " | ".join(f"{a} vs {b}" for a, b in pairs) + " |")
    print("|---" * (len(pairs) + 1) + "|")
    for tensor in TENSORS:
        print(f"| {tensor} | " + " | ".join(
            f"{relative_to_max(values[a][tensor], values[b][tensor]):.1e}" for a, b in pairs)
            + " |")
        if tensor == "grad_block5_conv3":
            cells = [by_window_sum(values[b], values[a], tensor) for a, b in pairs]
            print(f"| {tensor}, near-tied windows by sum | " + " | ".join(
                f"{error:.1e} ({ties} tied)" for error, ties in cells) + " |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        tf_values(sys.argv[2])
    else:
        main()
