"""``python -m vggnp.cam`` end to end on the real photos in examples/, as a user runs it."""

import errno
import os
import re
import shlex
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

from helpers import NARROW_WIDTHS, ROOT, done_images, outputs_in, run_cam
from kerasfiles import write_keras1_h5
from vggnp.cam import run as cam
from vggnp.files import download as dl
from vggnp.nn.random_init import random_vgg16_weights

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
CAT, COFFEE = os.path.join(EXAMPLES, "chelsea.jpg"), os.path.join(EXAMPLES, "coffee.jpg")


@pytest.fixture(scope="module")
def weights_file(vgg16_file):
    return vgg16_file


def test_json_run_writes_every_output(weights_file, tmp_path):
    result = run_cam(CAT, COFFEE, "--weights", weights_file, "--out", str(tmp_path),
                     "--json", "--panel", "--save-heatmap")
    assert result.returncode == 0, result.stderr
    images = done_images(result.stdout)
    assert [r["image"] for r in images] == [CAT, COFFEE]
    for r, photo in zip(images, (CAT, COFFEE)):
        scores = [t["score"] for t in r["top"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)
        assert r["class"]["index"] == r["top"][0]["index"] and r["layer"] == "block5_conv3"
        stem = os.path.splitext(os.path.basename(photo))[0]
        assert r["outputs"]["overlay"] == str(tmp_path / f"{stem}_{r['class']['name']}_cam.jpg")
        with Image.open(photo) as original, Image.open(r["outputs"]["overlay"]) as picture:
            assert picture.size == original.size
        with Image.open(r["outputs"]["panel"]) as picture:
            assert picture.size[0] == 3 * original.size[0]
        heatmap = np.load(r["outputs"]["heatmap"])
        assert heatmap.shape == (14, 14) and 0 <= heatmap.min() and heatmap.max() == 1


def test_human_output_chosen_class_png(weights_file, tmp_path):
    result = run_cam(CAT, "--weights", weights_file, "--out", str(tmp_path),
                     "--class", "Egyptian_cat", "--format", "png", "--layer", "block4_conv3")
    assert result.returncode == 0, result.stderr
    assert "1. " in result.stdout and "Grad-CAM of Egyptian_cat at block4_conv3" in result.stdout
    with Image.open(tmp_path / "chelsea_Egyptian_cat_cam.png") as picture:
        assert picture.format == "PNG"


def test_a_bad_image_does_not_stop_the_others(weights_file, tmp_path):
    missing = str(tmp_path / "missing.jpg")
    result = run_cam(missing, CAT, "--weights", weights_file, "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "missing.jpg" in result.stderr and "Traceback" not in result.stderr
    assert len(outputs_in(tmp_path / "out")) == 1


def test_bad_weights_exit_3(tmp_path):
    page = tmp_path / "weights.h5"
    page.write_text("<!DOCTYPE html><html>404</html>")
    result = run_cam(CAT, "--weights", str(page), "--out", str(tmp_path))
    assert result.returncode == 3 and "HTML page" in result.stderr
    notop = {k: v for k, v in random_vgg16_weights(top=False).items()}
    write_keras1_h5(tmp_path / "notop.h5", notop)
    result = run_cam(CAT, "--weights", str(tmp_path / "notop.h5"), "--out", str(tmp_path))
    assert result.returncode == 3 and "notop" in result.stderr


@pytest.mark.parametrize("args", [["--layer", "block5_pool"], ["--class", "unicorn"],
                                  ["--alpha", "2"], []])
def test_usage_errors_exit_2(args):
    with pytest.raises(SystemExit) as info:
        cam.parse_args(args if not args else [CAT, *args])
    assert info.value.code == 2


def test_offline_first_run_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VGGNP_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(dl, "URL", "http://127.0.0.1:9/vgg16.h5")  # nothing listens there
    assert cam.main([CAT, "--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "http://127.0.0.1:9/vgg16.h5" in err and "--weights" in err
    assert str(tmp_path / "cache") in err and "\\n" not in err  # lines, not escaped ones
    demo = err.splitlines()[-1]
    assert demo.startswith("  Offline now, the demo model runs: python -m vggnp.cam --model ")
    assert os.listdir(tmp_path / "cache") == []  # no lock file, no partial download
    command = shlex.split(demo.split("runs: ", 1)[1])
    assert command[:3] == ["python", "-m", "vggnp.cam"]
    assert cam.main([*command[3:], "--out", str(tmp_path / "demo")]) == 0  # it does run


def only_overlay(report):
    (r,) = done_images(report)
    return r["outputs"]["overlay"]


def test_existing_output_needs_overwrite(weights_file, tmp_path):
    first = run_cam(CAT, "--weights", weights_file, "--out", str(tmp_path), "--json")
    path = only_overlay(first.stdout)
    with open(path, "wb") as f:
        f.write(b"an older result")
    again = run_cam(CAT, "--weights", weights_file, "--out", str(tmp_path))
    assert again.returncode == 1 and "--overwrite" in again.stderr
    with open(path, "rb") as f:
        assert f.read() == b"an older result"  # untouched
    replaced = run_cam(CAT, "--weights", weights_file, "--out", str(tmp_path), "--overwrite")
    assert replaced.returncode == 0
    with Image.open(path) as picture:
        assert picture.format == "JPEG"


def test_an_input_is_never_overwritten(weights_file, tmp_path):
    first = run_cam(CAT, "--weights", weights_file, "--out", str(tmp_path), "--json")
    produced = only_overlay(first.stdout)
    before = open(produced, "rb").read()
    # The cat's output path is now also an input: refused even with --overwrite.
    result = run_cam(CAT, produced, "--weights", weights_file, "--out", str(tmp_path),
                     "--overwrite")
    assert result.returncode == 1 and "is one of the input images" in result.stderr
    assert open(produced, "rb").read() == before


def test_same_names_from_different_folders_do_not_collide(weights_file, tmp_path):
    for folder in ("a", "b"):
        os.makedirs(tmp_path / folder)
        with open(CAT, "rb") as src, open(tmp_path / folder / "cat.jpg", "wb") as dst:
            dst.write(src.read())
    Image.open(CAT).save(tmp_path / "a" / "cat.png")
    inputs = [str(tmp_path / "a" / "cat.jpg"), str(tmp_path / "b" / "cat.jpg"),
              str(tmp_path / "a" / "cat.jpg"), str(tmp_path / "a" / "cat.png")]
    result = run_cam(*inputs, "--weights", weights_file, "--out", str(tmp_path / "out"),
                     "--json")
    assert result.returncode == 0, result.stderr
    images = done_images(result.stdout)
    paths = [r["outputs"]["overlay"] for r in images]
    expected = [f"{stem}_{r['class']['name']}_cam.jpg"
                for stem, r in zip(["cat", "cat_2", "cat_3", "cat_4"], images)]
    assert [os.path.basename(p) for p in paths] == expected
    assert outputs_in(tmp_path / "out") == sorted(os.path.basename(p) for p in paths)


def test_symlink_at_output_is_replaced_not_followed(weights_file, tmp_path):
    first = run_cam(CAT, "--weights", weights_file, "--out", str(tmp_path / "out"), "--json")
    path = only_overlay(first.stdout)
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    os.remove(path)
    os.symlink(target, path)
    result = run_cam(CAT, "--weights", weights_file, "--out", str(tmp_path / "out"),
                     "--overwrite")
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "keep me" and not os.path.islink(path)


def test_unusable_output_folder_exits_4_before_loading_weights(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be")
    for out in (str(blocker), f"{blocker}{os.sep}"):
        result = run_cam(CAT, "--weights", str(tmp_path / "missing.h5"), "--out", out)
        assert result.returncode == 4 and result.stderr.strip() == (
            f"vggnp.cam: cannot write to the output folder {out}: {blocker} exists and is "
            "not a folder")


@pytest.mark.parametrize("code, words", [
    (errno.EACCES, "Permission denied (choose another folder with --out)"),
    (errno.EROFS, "Read-only file system (choose another folder with --out)"),
    (errno.ENOSPC, "No space left on device (free space or choose another folder with --out)")])
def test_an_unwritable_output_folder_says_what_to_do(tmp_path, monkeypatch, code, words):
    """The probe's own error named the probe ('[Errno 13] Permission denied:
    '/out/.vggnp-tmp-...''): the reason, and what to do, instead (as root here, a
    read-only folder cannot be made: the probe is made to fail)."""
    import vggnp.cli

    def refused(folder, suffix=""):
        raise OSError(code, os.strerror(code), os.path.join(folder, ".vggnp-tmp-1"))
    monkeypatch.setattr(vggnp.cli, "temporary_file", refused)
    with pytest.raises(OSError) as caught:
        vggnp.cli.check_writable(str(tmp_path))
    assert str(caught.value) == words


def test_damaged_official_file_exit_3(weights_file, tmp_path):
    """A file with the official name is held to the official md5 (here: other weights)."""
    official = tmp_path / dl.FILENAME
    official.symlink_to(weights_file)
    result = run_cam(CAT, "--weights", str(official), "--out", str(tmp_path / "out"))
    assert result.returncode == 3 and "not its md5" in result.stderr
    assert "Traceback" not in result.stderr and os.listdir(tmp_path / "out") == []


def _nan_copy(source, path):
    shutil.copyfile(source, path)
    with h5py.File(path, "r+") as f:
        f["fc2/fc2_W_1:0"][5, 7] = np.nan


BAD_WEIGHTS = {  # name -> (make(path, full-size file), what the message must say)
    "missing": (lambda p, full: None, "weights file not found"),
    "truncated": (lambda p, full: p.write_bytes(open(full, "rb").read(200_000)),
                  "cannot be read|truncated"),
    "html": (lambda p, full: p.write_text("<!DOCTYPE html><html>Sign in</html>"), "HTML page"),
    "nan": (lambda p, full: _nan_copy(full, p), "fc2 contains NaN"),
    "vgg19": (lambda p, full: write_keras1_h5(p, random_vgg16_weights(
        convs_per_block=(2, 2, 4, 4, 4), **NARROW_WIDTHS)), "looks like VGG19"),
    "notop": (lambda p, full: write_keras1_h5(p, random_vgg16_weights(top=False, **NARROW_WIDTHS)),
              "notop"),
    "channels_first": (lambda p, full: write_keras1_h5(p, random_vgg16_weights(**NARROW_WIDTHS),
                                                       channels_first=True), "channels-first"),
    "narrow": (lambda p, full: write_keras1_h5(p, random_vgg16_weights(**NARROW_WIDTHS)),
               "other widths"),
}


@pytest.mark.parametrize("case", list(BAD_WEIGHTS))
def test_each_bad_weights_file_exit_3(weights_file, tmp_path, case):
    make, message = BAD_WEIGHTS[case]
    path = tmp_path / f"{case}.h5"
    make(path, weights_file)
    result = run_cam(CAT, "--weights", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vggnp.cam: {path}: ")
    assert re.search(message, lines[0]) and os.listdir(tmp_path / "out") == []


def test_a_clone_named_vggnp_imports_from_its_parent_folder(tmp_path):
    """#26.2: from the folder that holds a clone named vggnp, ``import vggnp`` must be the
    package, not the clone's folder taken as a namespace package (__file__ None), and the
    command must run (the installed vggnp, editable or not, is a regular package that wins)."""
    os.symlink(ROOT, tmp_path / "vggnp")
    script = "import vggnp; print(vggnp.__file__); from vggnp import grad_cam"
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("__init__.py"), done
    ran = subprocess.run([sys.executable, "-m", "vggnp.cam", "vggnp/examples/circle.png",
                          "--model", "vggnp/weights/shapes_convnet.keras", "--out", "o",
                          "--report"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0 and "report:" in ran.stderr, ran.stderr
