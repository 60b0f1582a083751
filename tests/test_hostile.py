"""Hostile and damaged files (issue #15): every example the issue lists, made in code by
tests/hostile_files.py.

Each file goes through the funnel the CLI uses -- ``read_image``, ``load_keras_model``,
``read_vgg16_weights``, ``read_labels`` -- and must end in vggnp's own error, one line that
names the file, within SECONDS: never a library exception, a hang, a memory blow-up (the
files that claim gigabytes run in a child process whose peak RSS is measured) or a NaN.
Some go through ``python -m vggnp.cam`` as a user runs them: exit 3 for a weights, model or
labels file; a failed image (exit 1, the other images processed) for an image.

- images: a GIF cut after frame 2's image descriptor, a PNG and a JPEG whose headers claim
  89 M pixels;
- .keras files, rebuilt from the demo model (weights/shapes_convnet.keras): a damaged zip,
  a crafted config.json, a crafted model.weights.h5, and zip bombs;
- .h5 weights: tests/test_hostile_h5.py;
- a named pipe, /dev/zero and /dev/urandom given as --weights, --model and --labels;
- a model that passes every load check but overflows at run time: its image fails.
"""

import os
import re

import pytest

from corpus import bomb_png
from helpers import LABELS_PATH, MODEL_PATH, ROOT, outputs_in, run_cam
from hostile_checks import assert_exit_3, refusal, refused_in_child, within
from hostile_files import (BOMBS, KERAS_MUTANTS, demo_entries, gif_cut_after_second_descriptor,
                           jpeg_claiming, overflowing_model, write, write_zip, zip_bomb)
from vggnp.files.hdf5 import ModelError, WeightsError
from vggnp.files.images import ImageError, read_image
from vggnp.models.keras_convnet import load_keras_model

EXAMPLES = os.path.join(ROOT, "examples")
GOOD_IMAGES = [os.path.join(EXAMPLES, name) for name in ("circle.png", "square.png")]
DEMO = ["--model", MODEL_PATH, "--labels", LABELS_PATH]


# -- Images -----------------------------------------------------------------------------------

def test_gif_cut_after_second_frame_is_first_frame_or_failed(tmp_path):
    path = write(tmp_path / "cut.gif", gif_cut_after_second_descriptor())
    with within():
        try:
            image, notes = read_image(path)
        except ImageError as e:
            assert "\n" not in str(e)
        else:
            assert image.size == (64, 48) and image.mode == "RGB"
            assert len(notes) == 1 and "first frame" in notes[0], notes


def test_gif_cut_among_good_images_via_cli(tmp_path):
    gif = write(tmp_path / "cut.gif", gif_cut_after_second_descriptor())
    with within():
        result = run_cam(GOOD_IMAGES[0], str(gif), GOOD_IMAGES[1], *DEMO,
                         "--out", str(tmp_path / "out"), timeout=60)
    assert "Traceback" not in result.stderr
    assert result.returncode in (0, 1), result.stderr
    if result.returncode == 1:
        assert f"vggnp.cam: {gif}: " in result.stderr
    made = os.listdir(tmp_path / "out")
    for good in ("circle", "square"):
        assert any(name.startswith(good + "_") for name in made), made


@pytest.mark.parametrize("name, data", [
    ("claims_89478485x1.png", bomb_png(89_478_485, 1)),  # exactly Pillow's pixel limit
    ("claims_9459x9459.jpg", jpeg_claiming(9459, 9459)),
], ids=["png-89478485x1", "jpeg-9459x9459"])
def test_big_claims_refused_fast_with_bounded_memory(tmp_path, name, data):
    path = write(tmp_path / name, data)
    with pytest.raises(ImageError, match="claims"):
        read_image(path)
    refused_in_child("vggnp.files.images.read_image", "vggnp.files.images.ImageError", path)


# -- .keras files, rebuilt from the demo model -----------------------------------------------

def test_rebuilt_demo_model_loads(tmp_path):
    """The control: the demo model rebuilt by these helpers, unchanged, loads."""
    model = load_keras_model(write_zip(tmp_path / "same.keras", demo_entries()))
    assert model.outputs == 3


@pytest.mark.parametrize("mutant", list(KERAS_MUTANTS))
def test_keras_mutant_refused(tmp_path, mutant):
    path = KERAS_MUTANTS[mutant](tmp_path / f"{mutant}.keras")
    refusal(load_keras_model, path, WeightsError)  # ModelError is a WeightsError


def test_bad_crc_says_the_zip_is_damaged(tmp_path):
    path = KERAS_MUTANTS["bad-crc"](tmp_path / "bad-crc.keras")
    assert "zip archive is damaged" in refusal(load_keras_model, path, ModelError)


@pytest.mark.parametrize("mutant", ["bad-crc", "json-100000-deep", "json-not-utf8",
                                    "scale-1e400", "input-100000x100000", "soft-link-loop"])
def test_keras_mutant_exit_3_via_cli(tmp_path, mutant):
    path = KERAS_MUTANTS[mutant](tmp_path / f"{mutant}.keras")
    with within():
        result = run_cam(GOOD_IMAGES[0], "--model", str(path), "--labels", LABELS_PATH,
                         "--out", str(tmp_path / "out"), timeout=60)
    assert_exit_3(result, path)


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_zip_bomb_member_refused_with_bounded_memory(tmp_path, bomb):
    path = zip_bomb(tmp_path / "bomb.keras", bomb)
    output = refused_in_child("vggnp.models.keras_convnet.load_keras_model",
                              "vggnp.files.hdf5.WeightsError", path)
    assert output.startswith(f"refused: {path}: ")


# -- Named pipes and devices as weights, model or labels --------------------------------------

@pytest.mark.parametrize("option", ["--weights", "--model", "--labels"])
@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "/dev/urandom"])
def test_special_file_exit_3_fast(tmp_path, option, special):
    path = special
    if special == "fifo":
        path = str(tmp_path / "pipe.h5")
        os.mkfifo(path)
    model = ["--model", MODEL_PATH] if option == "--labels" else []
    with within():
        result = run_cam(GOOD_IMAGES[0], *model, option, path, "--out",
                         str(tmp_path / "out"), timeout=30)
    assert_exit_3(result, path)


# -- Weights that pass every load check but overflow at run time ------------------------------

def test_run_time_overflow_fails_the_image_cleanly(tmp_path):
    path = overflowing_model(tmp_path / "overflowing.keras")
    load_keras_model(path)  # passes every load check
    with within():
        result = run_cam(GOOD_IMAGES[0], "--model", str(path), "--labels", LABELS_PATH,
                         "--out", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "RuntimeWarning" not in result.stderr
    assert not re.search(r"\b(nan|inf)\b", result.stdout, re.IGNORECASE), result.stdout
    lines = [line for line in result.stderr.splitlines() if GOOD_IMAGES[0] in line]
    assert len(lines) == 1 and "not finite" in lines[0], result.stderr
    assert outputs_in(tmp_path / "out") == []  # no meaningless overlay


def test_a_flipped_byte_inside_the_stored_weights_is_refused_by_its_crc(tmp_path):
    """#27: Keras stores model.weights.h5 uncompressed and vggnp reads it in place; one
    byte flipped in its middle must fail the zip's CRC-32 (as Keras' load_model does),
    not load a slightly different model."""
    import struct
    import zipfile
    from vggnp.files.errors import InputError
    info = zipfile.ZipFile(MODEL_PATH).getinfo("model.weights.h5")
    assert info.compress_type == zipfile.ZIP_STORED
    data = bytearray(open(MODEL_PATH, "rb").read())
    names, extra = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + names + extra + info.file_size // 2] ^= 0xFF
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(bytes(data))
    load_keras_model(MODEL_PATH)  # the original loads
    with pytest.raises(InputError, match="Bad CRC-32 for file 'model.weights.h5'"):
        load_keras_model(str(damaged))


@pytest.mark.parametrize("text, names", [
    ('{\n  "circle": 0,\n  "square": 1,\n  "triangle": 2\n}\n', ["circle", "square", "triangle"]),
    ('{"triangle": 2, "circle": 0, "square": 1}', ["circle", "square", "triangle"]),
    ('["circle", "square", "triangle"]', ["circle", "square", "triangle"]),
    ("\ufeffcircle\nsquare\ntriangle\n", ["circle", "square", "triangle"]),
])
def test_labels_json_and_a_byte_order_mark(tmp_path, text, names):
    """#27: Keras' class_indices written one entry per line is JSON, not three names like
    '"triangle": 2}'; a UTF-8 byte-order mark is not part of the first name."""
    from vggnp.files.labels import read_labels
    path = tmp_path / "labels.json"
    path.write_text(text, encoding="utf-8")
    assert read_labels(str(path), 3) == names


@pytest.mark.parametrize("text", ["circle\0\nsquare\ntriangle\n", "circle\nsq\x1b[2Juare\n"
                                  "triangle\n"])
def test_a_label_with_a_control_character_is_refused(tmp_path, text):
    """A fuzz run: a NUL in a class name was accepted (and shown in the JSON)."""
    from vggnp.files.labels import LabelsError, read_labels
    path = tmp_path / "labels.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LabelsError, match="holds a control character"):
        read_labels(str(path), 3)


@pytest.mark.parametrize("text", ['{"circle": 0, "square": 0, "triangle": 1}',
                                  '{"circle": "0"}', '[1, 2, 3]', '{"circle": 0,', '[' * 100000])
def test_labels_json_that_is_neither_list_nor_class_indices_is_refused(tmp_path, text):
    from vggnp.files.labels import LabelsError, read_labels
    path = tmp_path / "labels.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LabelsError, match="--labels .*JSON"):
        read_labels(str(path), 3)
