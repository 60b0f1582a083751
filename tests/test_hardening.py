"""The commands under hostile names, options and files (issue #27, points 14 to 16): one
line per message whatever a name holds, every numeric option in range, every command
through the one error funnel, damaged and sparse AVIFs refused."""

import io
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from helpers import MODEL, MODEL_PATH, ROOT, SHAPES, interruptible
from test_model_files import rewrite_config
from vggnp import activations, cam, explain_files, filters, sanity
from vggnp.files.errors import LINE_LIMIT, printable
from vggnp.files.images import ImageError, read_image


def test_printable_escapes_control_characters_and_cuts_long_names():
    assert printable("a\nb\r\x1b[31m\x9b\u2028\tc é") == r"a\nb\r\x1b[31m\x9b\u2028\tc é"
    assert printable("evil\u202egpj.exe") == r"evil\u202egpj.exe"  # no reversed name
    cut = printable("x" * 1_000_000)
    assert len(cut) <= 300 and "characters cut" in cut and cut.startswith("x")


def test_a_forged_input_name_prints_as_one_escaped_line(tmp_path, capsys):
    name = str(tmp_path / "missing\nvggnp.cam: all 1 image(s) done\x1b[2J.png")
    assert cam.main([name, *MODEL, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err
    lines = [line for line in err.splitlines() if "missing" in line]
    assert len(lines) == 1 and r"missing\nvggnp.cam: all 1 image(s) done\x1b[2J.png" in lines[0]


def test_a_huge_layer_name_makes_a_short_error_line(tmp_path, capsys):
    bad = tmp_path / "bad.keras"

    def rename(config):
        layer = config["config"]["layers"][2]
        layer["class_name"], layer["config"]["name"] = "Custom", "conv\n" + "n" * 500_000
    rewrite_config(MODEL_PATH, bad, rename)
    assert cam.main([SHAPES[0], "--model", str(bad), "--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and len(err) <= LINE_LIMIT + 1
    assert "characters cut" in err and r"conv\nnnn" in err


@pytest.mark.parametrize("main, argv, message", [
    (activations.main, ["x.png", "--layer", "c", "--columns", "0"], "0 is outside 1..1024"),
    (activations.main, ["x.png", "--layer", "c", "--columns", "-3"], "outside"),
    (filters.main, ["--layer", "c", "--filters", "0"], "--filters: 0 is outside 1..4096"),
    (filters.main, ["--layer", "c", "--filters", "-2"], "outside"),
    (filters.main, ["--layer", "c", "--steps", "-1"], "--steps: -1 is outside 0..10000"),
    (filters.main, ["--layer", "c", "--size", "0"], "--size: 0 is outside 16..1024"),
    (filters.main, ["--layer", "c", "--size", "1"], "outside"),
    (filters.main, ["--layer", "c", "--size", "60000"], "outside"),
    (filters.main, ["--layer", "c", "--seed", "x"], "not an integer: 'x'"),
    (sanity.main, ["x.png", "--seed", "-1"], "--seed: -1 is outside 0..4294967295"),
    (sanity.main, ["x.png", "--depth", "0"], "--depth: 0 is outside"),
])
def test_numeric_options_have_ranges(capsys, main, argv, message):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and message in err


def test_an_output_name_too_long_is_one_line(tmp_path, capsys):
    image = tmp_path / ("i" * 240 + ".png")
    shutil.copy(SHAPES[0], image)
    code = activations.main([str(image), "--layer", "conv2d_6", "--model", MODEL_PATH,
                             "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 4 and len(err.splitlines()) == 1, err
    assert "File name too long" in err and "Traceback" not in err


def test_the_funnel_turns_a_bug_into_one_line(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")
    monkeypatch.setattr(filters, "filter_pattern", broken)
    code = filters.main(["--layer", "conv2d_6", "--model", MODEL_PATH, "--filters", "1",
                         "--out", "/tmp"])
    err = capsys.readouterr().err
    assert code == 1 and err.strip() == ("vggnp.filters: internal error (ZeroDivisionError: "
                                         "division by zero); please report it")


def _avif(size, rng=None):
    pixels = (rng.integers(0, 255, (*size, 3), dtype=np.uint8) if rng is not None
              else np.full((*size, 3), 90, np.uint8))
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "AVIF")
    return bytearray(out.getvalue())


def test_a_damaged_avif_is_a_damaged_image(tmp_path):
    data = _avif((64, 64), np.random.default_rng(0))
    data[98:106] = bytes(8)  # inside the header's item boxes: libavif refuses to decode
    path = tmp_path / "damaged.avif"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="damaged image: Pillow cannot decode it"):
        read_image(path)


def test_a_sparse_avif_is_refused_before_decoding(tmp_path, monkeypatch):
    """The declared-size rule of the other formats, for AVIF: 2000x2000 pixels in under a
    kilobyte (the bound applies from SPARSE_FROM pixels, lowered here to keep it quick)."""
    monkeypatch.setattr("vggnp.files.images.SPARSE_FROM", 1_000_000)
    path = tmp_path / "flat.avif"
    path.write_bytes(bytes(_avif((2000, 2000))))
    with pytest.raises(ImageError, match="more than a AVIF file can hold"):
        read_image(path)
    small = tmp_path / "photo.avif"
    small.write_bytes(bytes(_avif((64, 64), np.random.default_rng(1))))
    assert read_image(small)[0].size == (64, 64)


def test_flat_images_and_tied_or_saturated_scores_are_noted(shapes_model):
    """Issue #27.6-7: a one-colour image, a top score shared by every class, and a softmax
    saturated to 1.0 each come with a note (stderr, the JSON and the report carry the
    record's notes)."""
    flat, photo = np.full((64, 64, 3), 200, np.uint8), np.asarray(Image.open(SHAPES[0]))
    (result,) = explain_files(shapes_model, [flat])
    assert any("one flat colour" in note for note in result.notes)
    (result,) = explain_files(shapes_model, [photo])
    assert result.notes == []
    dense = shapes_model.layers[-1]
    saved = dense.w.copy(), dense.b.copy()
    try:
        dense.w[:], dense.b[:] = 0, 0           # every class scores 1/3
        (result,) = explain_files(shapes_model, [photo])
        assert any("shared by 3 classes" in note for note in result.notes)
        dense.w[:] = saved[0] * 1e6             # one class takes all of the softmax
        (result,) = explain_files(shapes_model, [photo])
        assert any("saturated softmax" in note for note in result.notes)
    finally:
        dense.w[:], dense.b[:] = saved


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_starting_is_one_line(tmp_path, signum, code):
    """#27.13: Ctrl-C or SIGTERM during the imports (the first ~0.4 s) used to print a
    KeyboardInterrupt traceback or end the process with no word."""
    for delay in (0.08, 0.15):
        child = subprocess.Popen([sys.executable, "-m", "vggnp.cam", SHAPES[0], *MODEL,
                                  "--out", str(tmp_path)], cwd=ROOT, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 preexec_fn=interruptible)
        time.sleep(delay)
        child.send_signal(signum)
        out, err = child.communicate(timeout=60)
        if child.returncode == 0:
            continue  # finished before the signal came: nothing to see at this delay
        assert child.returncode == code and "Traceback" not in err, err
        assert len(err.splitlines()) == 1 and ("interrupted" in err or "terminated" in err)


def test_a_deleted_working_folder_is_one_line(tmp_path):
    """#27.13: run from a folder that was deleted: one line, exit 4 (not FileNotFoundError
    from os.path.abspath)."""
    gone = tmp_path / "gone"
    gone.mkdir()
    script = (f"import os, sys; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); "
              f"sys.path.insert(0, {ROOT!r}); from vggnp.cam import main; "
              f"sys.exit(main([{SHAPES[0]!r}, '--model', {MODEL_PATH!r}]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 4 and "Traceback" not in done.stderr, done.stderr
    assert "the current folder no longer exists" in done.stderr


OPTION_VALUES = ["0", "-1", "1", "2", "4096", "99999999999999999999", "1e3", "nan", "inf",
                 "-0", " 3", "x", "", "0x10", "\u0663"]  # the last: an Arabic-Indic 3
NUMERIC_OPTIONS = {
    activations.main: ["--columns"],
    filters.main: ["--filters", "--steps", "--size", "--seed"],
    sanity.main: ["--seed", "--depth"],
    cam.main: ["--batch-size", "--top", "--steps", "--samples", "--noise", "--seed",
               "--alpha", "--scale-max", "--box-threshold", "--max-pixels"],
}


@pytest.mark.parametrize("main", NUMERIC_OPTIONS, ids=lambda m: m.__module__)
def test_every_numeric_option_takes_any_text_in_one_line(main, tmp_path, capsys):
    """The fuzz family of the commands' options (#27.16): every numeric option given odd
    text either runs (here it then stops at the missing model, exit 3) or is a usage error
    (exit 2); always exactly one line on stderr, never a traceback."""
    positional = [] if main is filters.main else [SHAPES[0]]
    for option in NUMERIC_OPTIONS[main]:
        for value in OPTION_VALUES:
            argv = [*positional, "--layer", "c", option, value, "--model",
                    str(tmp_path / "missing.keras"), "--out", str(tmp_path)]
            if main is cam.main:
                argv.remove("--layer"), argv.remove("c")
            try:
                code = main(argv)
            except SystemExit as stop:
                code = stop.code
            err = capsys.readouterr().err
            assert code in (2, 3) and len(err.splitlines()) == 1, (option, value, code, err)
            assert "Traceback" not in err
