"""Every option either does what it says for the chosen method or is refused (exit 2), the
report names only the layer and target really used, and an empty map never passes in
silence (issue #12, points 6 and 7). Offline: the committed shapes model and variants of it
written here."""

import io
import json
import os
import re
import warnings
import zipfile

import h5py
import numpy as np
import pytest

from helpers import LABELS_PATH, MODEL_PATH, ROOT, done_images, run_cam
from vggnp.methods.explain import explain
from vggnp.methods.registry import METHODS
from vggnp import EmptyMapWarning
from vggnp.keras_model import load_keras_model

TRIANGLE = os.path.join(ROOT, "examples", "triangle.png")


def model_variant(path, weights=None, config=None):
    """A copy of the shapes model at ``path`` with weights[h5 dataset] = new value and
    config(cfg) applied to its config.json."""
    with zipfile.ZipFile(MODEL_PATH) as source:
        members = {name: source.read(name) for name in source.namelist()}
    if config:
        cfg = json.loads(members["config.json"])
        config(cfg)
        members["config.json"] = json.dumps(cfg).encode()
    if weights:
        buffer = io.BytesIO(members["model.weights.h5"])
        with h5py.File(buffer, "r+") as f:
            for key, value in weights.items():
                f[key][...] = value
        members["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    return str(path)


def grey_model(tmp_path):
    """The shapes model taking one channel: its first kernel's colours summed."""
    path = model_variant(tmp_path / "grey.keras", config=lambda cfg: cfg["config"]["layers"][0][
        "config"].update(batch_shape=[None, 64, 64, 1]))
    with zipfile.ZipFile(path) as source:
        members = {name: source.read(name) for name in source.namelist()}
    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "r+") as f:
        kernel = f["layers/conv2d/vars/0"][...].sum(axis=2, keepdims=True)
        del f["layers/conv2d/vars/0"]
        f["layers/conv2d/vars/0"] = kernel
    members["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    return path


def dead_model(tmp_path):
    """The last conv (conv2d_11) switched off: zero kernel, bias -1, so its ReLU output is
    zero everywhere and every method's map is empty."""
    return model_variant(tmp_path / "dead.keras", {"layers/conv2d_5/vars/0": 0.0,
                                                   "layers/conv2d_5/vars/1": -1.0})


def linear_model(tmp_path):
    """The shapes model with its last Dense made linear: its outputs are logits."""
    def linear(cfg):
        cfg["config"]["layers"][-1]["config"]["activation"] = "linear"
    return model_variant(tmp_path / "linear.keras", config=linear)


# The issue's own example first: refused before any weights are looked for (offline).
@pytest.mark.parametrize("args, message", [
    (["--method", "saliency", "--layer", "block4_conv3"],
     "--layer does not apply to --method saliency"),
    (["--method", "guided-backprop", "--layer", "block5_conv3"],
     "--layer does not apply to --method guided-backprop"),
    (["--method", "scorecam", "--target", "logit"],
     "--target logit does not apply to --method scorecam"),
    (["--method", "scorecam", "--trace"], "--trace does not apply to --method scorecam"),
    (["--method", "guided-gradcam", "--alpha", "0.5"],
     "--alpha does not apply to --method guided-gradcam"),
    (["--method", "saliency", "--diagnose"],
     "--diagnose reports on a gradient CAM's weights at a conv layer"),
    (["--method", "eigencam", "--diagnose"], "--method eigencam has no gradient"),
])
def test_an_option_that_would_be_ignored_is_refused(args, message, tmp_path):
    result = run_cam(TRIANGLE, "--out", str(tmp_path), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, not argparse's usage
    assert os.listdir(tmp_path) == []


def option_applies(option, method):
    """Whether ``option`` does something for ``method`` (a Method), as docs/cli.md's list
    says it in words (written again here, from the registry's fields)."""
    return {"--alpha": not method.gives_image, "--layer": method.layer,
            "--diagnose": method.layer and method.backward != "none",
            "--rule": method.name == "lrp",
            "--epsilon": method.name == "lrp", "--gamma": method.name == "lrp",
            "--steps": method.name == "integrated-gradients",
            **{o: method.name == "smoothgrad" for o in ("--samples", "--noise", "--seed")}
            }[option]


@pytest.mark.parametrize("option, value", [("--alpha", "0.5"), ("--layer", "block5_conv3"),
                                           ("--diagnose", None), ("--rule", "epsilon"),
                                           ("--epsilon", "0.1"), ("--gamma", "0.1"),
                                           ("--steps", "8"), ("--samples", "4"),
                                           ("--noise", "0.1"), ("--seed", "3")])
def test_each_option_is_refused_with_every_method_it_does_nothing_for(option, value, capsys):
    """docs/cli.md's list, for every method of the registry (the command line parsed in
    process: the refusals come before any file is read)."""
    from vggnp.cam.args import parse_args
    for method in METHODS.values():
        extra = ["--rule", "epsilon_gamma_box"] if option == "--gamma" else []
        argv = [TRIANGLE, "--method", method.name, option, *([value] if value else [])]
        if option_applies(option, method):
            parse_args(argv + extra)
            continue
        with pytest.raises(SystemExit) as stop:
            parse_args(argv)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and len(err.splitlines()) == 1, (method.name, err)
        assert option in err and method.name in err, err


@pytest.mark.parametrize("args, message", [
    (["--metric"], "--metric needs class probabilities, but the model's last layer "
                   "(dense_1) is linear"),
    (["--target", "softmax"], "--target softmax needs class probabilities"),
    (["--method", "scorecam"], "--method scorecam needs class probabilities"),
])
def test_probabilities_of_a_linear_model_are_refused(args, message, tmp_path):
    result = run_cam(TRIANGLE, "--model", linear_model(tmp_path), "--out", str(tmp_path),
                     *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    result = run_cam(TRIANGLE, "--model", linear_model(tmp_path), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr  # the logit target still works


def test_every_command_refuses_what_the_model_cannot_take(tmp_path, capsys):
    """Refused before any pass with one line and exit 2 (they were internal errors, or a
    Score-CAM weighed by logits): caffe or torch for a grey-level model, in every command
    that reads an image; Score-CAM in vggnp.sanity for a model ending in a linear layer."""
    from vggnp import activations, filters, sanity
    grey = grey_model(tmp_path)
    assert load_keras_model(grey).channels == 1
    out = ["--out", str(tmp_path / "out")]
    for main, argv in ((activations.main, [TRIANGLE, "--layer", "conv2d_6"]),
                       (filters.main, ["--layer", "conv2d_6"]),
                       (sanity.main, [TRIANGLE, "--methods", "gradcam"])):
        assert main([*argv, "--model", grey, "--preprocess", "torch", *out]) == 2
        err = capsys.readouterr().err
        assert err.strip().endswith("--preprocess torch needs 3 channels (its means are per "
                                    "colour), not 1: a grey-level model takes tf, rescale or "
                                    "none"), err
    assert run_cam(TRIANGLE, "--model", grey, "--preprocess", "caffe", *out).returncode == 2
    code = sanity.main([TRIANGLE, "--model", linear_model(tmp_path), "--methods",
                        "gradcam,scorecam", *out])
    assert code == 2 and "--methods scorecam needs class probabilities, but the model's " \
        "last layer (dense_1) is linear" in capsys.readouterr().err


def test_python_refuses_a_softmax_target_of_a_linear_model(tmp_path):
    """explain's softmax target (scorecam's only one) needs probabilities: a model ending
    in a linear layer is refused (scorecam weighed its channels by logits and said
    "softmax"); the logit target works."""
    model = load_keras_model(linear_model(tmp_path))
    x = np.zeros((1, 64, 64, 3), np.float32)
    for method, target in (("scorecam", None), ("gradcam", "softmax")):
        with pytest.raises(ValueError, match=f"{method} with target softmax needs class "
                                             "probabilities, but the model's last layer"):
            explain(model, x, method, target=target)
    explain(model, x, "gradcam", warn_empty=False)


def test_report_names_only_the_layer_and_target_used(tmp_path):
    def report(*args):
        result = run_cam(TRIANGLE, "--model", MODEL_PATH, "--labels", LABELS_PATH,
                         "--out", str(tmp_path), "--overwrite", *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    (saliency,) = done_images(report("--json", "--method", "saliency"))
    assert "layer" not in saliency and saliency["target"] == "logit"
    assert " at " not in report("--method", "saliency")
    (scorecam,) = done_images(report("--json", "--method", "scorecam"))
    assert scorecam["layer"] == "conv2d_11" and scorecam["target"] == "softmax"
    (gradcam,) = done_images(report("--json", "--target", "softmax", "--layer", "conv2d_9"))
    assert gradcam["layer"] == "conv2d_9" and gradcam["target"] == "softmax"
    assert not gradcam["empty"]


def readme_heatmap_rows():
    """{method: the README's words for what --save-heatmap writes}, from its table."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        table = f.read().split("| `--method` | `--save-heatmap` writes")[1].split("\n\n")[0]
    rows = []
    for line in table.splitlines()[2:]:
        methods, says = line.strip("|").split("|")
        rows += [(name, says.strip()) for name in re.findall(r"`([a-z+-]+)`", methods)]
    return rows


README_HEATMAPS = dict(readme_heatmap_rows())
# The README's shapes on the shapes model: conv2d_11's 16x16, the 64x64 RGB input.
SHAPES_OF = {"`(h, w)`": (16, 16), "`(H, W)`": (64, 64), "`(H, W, C)`": (64, 64, 3)}


def test_the_readme_heatmap_table_names_every_method_once():
    assert sorted(name for name, _ in readme_heatmap_rows()) == sorted(METHODS)
    for name, says in README_HEATMAPS.items():  # a normalised map that --scale raw changes
        if "in [0, 1]" in says:
            assert ("with `--scale raw`, in the score's units" in says) == \
                METHODS[name].raw_units, name


@pytest.mark.parametrize("method", list(METHODS))
def test_saved_heatmap_is_what_the_readme_says(tmp_path, method):
    says = README_HEATMAPS[method]
    result = run_cam(TRIANGLE, "--model", MODEL_PATH, "--out", str(tmp_path), "--json",
                     "--method", method, "--save-heatmap")
    assert result.returncode == 0, result.stderr
    (image,) = done_images(result.stdout)
    saved = np.load(image["outputs"]["heatmap"])
    assert saved.shape == SHAPES_OF[says.split("` ")[0] + "`"] and saved.dtype == np.float32
    if "signed" in says:
        assert saved.min() < 0 < saved.max()
    if "in [0, 1]" in says:
        assert saved.min() >= 0 and saved.max() == 1
    if ">= 0" in says:
        assert saved.min() >= 0 < saved.max()
    assert [word in says for word in ("signed", "in [0, 1]", ">= 0")].count(True) == 1, says


@pytest.mark.slow  # in-process, but seconds: the full suite's
def test_every_method_warns_of_an_empty_map(tmp_path):
    model = load_keras_model(dead_model(tmp_path))
    x = np.zeros((2, 64, 64, 3), np.float32) + 200
    for method in METHODS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            maps, classes = explain(model, x, method, batch_size=64)
        assert not maps.any(), method
        said = [str(w.message) for w in caught if w.category is EmptyMapWarning]
        assert len(said) == 2 and all("zero everywhere" in s for s in said), (method, said)
        assert said[0].startswith("image 0: ") and said[1].startswith("image 1: ")


@pytest.mark.parametrize("method", METHODS)
def test_cli_says_which_map_is_empty(tmp_path, method):
    result = run_cam(TRIANGLE, "--model", dead_model(tmp_path), "--labels", LABELS_PATH,
                     "--out", str(tmp_path), "--json", "--method", method, "--class", "circle")
    assert result.returncode == 0, result.stderr
    (image,) = done_images(result.stdout)
    assert image["empty"] is True
    lines = result.stderr.splitlines()
    # Score-CAM's note on the channels it skipped reaches stderr like every note (#24)
    notes = [line for line in lines if line.startswith("vggnp.cam: note: ")]
    assert notes == ([f"vggnp.cam: note: {TRIANGLE}: scorecam skipped 64 channels that are "
                      "zero everywhere at conv2d_11"] if method == "scorecam" else [])
    lines = [line for line in lines if line not in notes]
    where = " at conv2d_11" if METHODS[method].layer else ""
    of_class = "" if method == "eigencam" else " of class circle (0)"  # eigencam has none
    assert lines == [f"vggnp.cam: warning: {TRIANGLE}: the {method} map{of_class}"
                     f"{where} is zero everywhere" + lines[0].split("zero everywhere", 1)[1]]
