"""The commands under hostile names, options and files (issue #27, points 14 to 16): one
line per message whatever a name holds, every numeric option in range, every command
through the one error funnel, damaged and sparse AVIFs refused."""

import errno
import io
import os
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
from vggnp import (activations, cam, explain_files, filters, gradcheck, load_keras_model,
                   sanity, trace)
from vggnp.cli import ArgumentParser
from vggnp.cli_run import Terminated
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


def test_sanity_refuses_a_layer_none_of_its_methods_maps(capsys):
    """vggnp.sanity --layer with input-gradient methods only: refused as vggnp.cam refuses
    it (it was ignored)."""
    with pytest.raises(SystemExit) as stop:
        sanity.main(["x.png", "--methods", "saliency,smoothgrad", "--layer", "conv2d_7"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.splitlines()) == 1
    assert "--layer does not apply to --methods saliency,smoothgrad" in err


def test_an_output_name_too_long_is_one_line(tmp_path, capsys):
    image = tmp_path / ("i" * 240 + ".png")
    shutil.copy(SHAPES[0], image)
    code = activations.main([str(image), "--layer", "conv2d_6", "--model", MODEL_PATH,
                             "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 4 and len(err.splitlines()) == 1, err
    assert "File name too long" in err and "Traceback" not in err


def test_more_filters_than_the_layer_has_are_refused(tmp_path, capsys):
    """--filters above the layer's count: one line with the count, exit 2, no grid (it
    used to draw the filters there were, and say nothing)."""
    code = filters.main(["--layer", "conv2d_6", "--model", MODEL_PATH, "--filters", "4000",
                         "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and list(tmp_path.iterdir()) == []
    count = load_keras_model(MODEL_PATH).layer("conv2d_6").w.shape[3]
    assert err == (f"vggnp.filters: --filters 4000: conv2d_6 has {count} filters; "
                   f"ask for 1..{count}")


def test_the_default_filter_count_is_cut_to_the_layers(tmp_path, monkeypatch):
    """The default (16) is not the user's: a layer with fewer filters draws them all
    (here the default made 20 for conv2d_6's 16), where --filters 20 is refused."""
    drawn = []

    def pattern(model, layer, k, *args, **kwargs):
        drawn.append(k)
        return np.zeros((40, 40, 3), np.float32), np.zeros(1)
    monkeypatch.setattr(filters, "filter_pattern", pattern)
    monkeypatch.setattr(filters, "DEFAULT_FILTERS", 20)
    argv = ["--layer", "conv2d_6", "--model", MODEL_PATH, "--size", "40", "--quiet"]
    assert filters.main([*argv, "--out", str(tmp_path)]) == 0
    assert drawn == list(range(16)) and (tmp_path / "conv2d_6_filters.png").is_file()
    assert filters.main([*argv, "--out", str(tmp_path / "b"), "--filters", "20"]) == 2


def test_the_funnel_turns_a_bug_into_one_line(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")
    monkeypatch.setattr(filters, "filter_pattern", broken)
    code = filters.main(["--layer", "conv2d_6", "--model", MODEL_PATH, "--filters", "1",
                         "--out", "/tmp"])
    err = capsys.readouterr().err
    assert code == 1 and err.strip() == ("vggnp.filters: internal error (ZeroDivisionError: "
                                         "division by zero); please report it")


# What the funnel makes of each ending it catches (vggnp.cli_run.run_command).
ENDINGS = [(KeyboardInterrupt(), 130, "interrupted; any output is whole or absent"),
           (Terminated(), 143, "terminated; any output is whole or absent"),
           (OSError(errno.ENOSPC, "No space left on device", "out/x.png"), 4,
            "out/x.png: No space left on device"),
           (MemoryError(), 1, "out of memory; try a smaller size or fewer items"),
           (ZeroDivisionError("division by zero"), 1,
            "internal error (ZeroDivisionError: division by zero); please report it")]


# A name each command's work calls inside the funnel, made to raise there.
INSIDE_THE_WORK = {activations.main: "model_and_layer", filters.main: "model_and_layer",
                   sanity.main: "load_model", gradcheck.main: "layer_checks",
                   trace.main: "random_vgg16_weights"}


@pytest.mark.parametrize("main", INSIDE_THE_WORK, ids=lambda m: m.__module__)
def test_every_command_ends_through_the_funnel(main, monkeypatch, capsys):
    """Each command's work runs inside run_command: whatever ends it there (Ctrl-C,
    SIGTERM, a full disk, memory, a bug) is one line and the documented code. A function
    the work calls is made to raise (a closed stdout: the gradcheck test below)."""
    module = sys.modules[main.__module__]
    for raised, code, words in ENDINGS:
        def ending(*args, raised=raised, **kwargs):
            raise raised
        monkeypatch.setattr(module, INSIDE_THE_WORK[main], ending)
        assert main(COMMANDS[main]) == code
        assert capsys.readouterr().err == f"{main.__module__}: {words}\n"


def test_a_closed_stdout_ends_a_command_quietly():
    """python -m vggnp.gradcheck into a pipe closed before it prints: exit 5, and no
    traceback (nothing to say on a stdout nobody reads)."""
    child = subprocess.Popen([sys.executable, "-m", "vggnp.gradcheck"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=300) == 5 and err == "", err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("command", ["gradcheck", "trace", "activations", "filters", "sanity"])
def test_every_command_says_a_full_or_closed_stdout(command, tmp_path):
    """A new user's trial: into /dev/full the other commands said 'No space left on
    device' and exit 4 (the disk, not stdout), and with stdout closed they exited 0 with
    their results dropped (print to a closed stdout writes nothing): exit 5 and one line,
    as vggnp.cam (a pipe its reader closed stays quiet: the test above)."""
    circle = os.path.join(ROOT, "examples", "circle.png")
    extra = {"activations": [circle, "--layer", "conv2d_6"],
             "filters": ["--layer", "conv2d_6", "--filters", "1", "--steps", "1",
                         "--size", "64"],
             "sanity": [circle, "--methods", "gradcam", "--no-independent", "--json"]}
    argv = [sys.executable, "-m", f"vggnp.{command}", *extra.get(command, [])]
    if command in extra:
        argv += ["--model", MODEL_PATH] + (["--quiet"] if command != "activations" else [])
    for k, closed in enumerate((False, True)):
        out = ["--out", str(tmp_path / str(k))] if command in extra else []
        with open("/dev/full", "w") as full:
            done = subprocess.run(argv + out, cwd=ROOT, stdout=full, stderr=subprocess.PIPE,
                                  text=True, timeout=300,
                                  preexec_fn=(lambda: os.close(1)) if closed else None)
        assert done.returncode == 5 and done.stderr.splitlines()[-1] == (
            f"vggnp.{command}: stdout was closed or full: the results could not all be "
            "shown"), (closed, done.stderr)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("argv", [["vggnp.cam", "--help"], ["vggnp.cam", "--version"],
                                  ["vggnp.gradcheck", "--help"]])
def test_help_into_a_full_stdout_is_exit_5(argv):
    """argparse passes over a failed write of --help or --version: the text was lost and
    the exit code 0 (a new user's finding); now 5, as a run's."""
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 5 and done.stderr == "", done.stderr


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
    saved = dense.w, dense.b  # read-only: replaced, not changed in place
    try:
        dense.w, dense.b = np.zeros_like(saved[0]), np.zeros_like(saved[1])  # 1/3 each
        (result,) = explain_files(shapes_model, [photo])
        assert any("shared by 3 classes" in note for note in result.notes)
        dense.w = saved[0] * 1e6             # one class takes all of the softmax
        (result,) = explain_files(shapes_model, [photo])
        assert any("saturated softmax" in note for note in result.notes)
    finally:
        dense.w, dense.b = saved


def test_a_loaded_models_weights_are_read_only(shapes_model):
    """An array changed in place was not seen by what is made from it (a BatchNorm folded
    into its conv kept the old statistics: a user's in-place gamma changed nothing, and
    the top class stayed TensorFlow's old one); a loaded model's arrays are read-only,
    as VGG16's memory-mapped ones: changing one in place is an error, replacing it works
    (the test above)."""
    arrays = [a for layer in shapes_model.layers for a in layer.weights]
    assert arrays and not any(a.flags.writeable for a in arrays)
    with pytest.raises(ValueError, match="read-only"):
        shapes_model.layer(shapes_model.conv_names[0]).w[0] = 1


def test_a_model_computes_in_float32_or_float64():
    """dtype=np.int32 read the weights as integers and then called them untrained."""
    from vggnp import VGG16, load_keras_model
    for load in (load_keras_model, VGG16.load):
        with pytest.raises(ValueError, match="dtype must be float32 or float64, not int32"):
            load(MODEL_PATH, dtype=np.int32)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_starting_is_one_line(tmp_path, signum, code):
    """#27.13: Ctrl-C or SIGTERM during the imports (the first ~0.4 s) used to print a
    KeyboardInterrupt traceback or end the process with no word. At some delay the signal
    must land in the imports (measured: up to ~0.3 s here) and say the start-up line.
    Until the guard is up (~0.02 s idle; past 0.08 s once, with the machine busy) Python's
    defaults apply: the process is killed by the signal (docs/reliability.md)."""
    word = "interrupted" if signum == signal.SIGINT else "terminated"
    said = []
    for delay in (0.08, 0.15, 0.25, 0.4):
        child = subprocess.Popen([sys.executable, "-m", "vggnp.cam", SHAPES[0], *MODEL,
                                  "--out", str(tmp_path)], cwd=ROOT, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 preexec_fn=interruptible)
        time.sleep(delay)
        child.send_signal(signum)
        out, err = child.communicate(timeout=60)
        if child.returncode in (0, -signum):
            continue  # finished before the signal came, or it came before the guard was up
            # (Python's own default: killed by the signal; docs/reliability.md says so)
        assert child.returncode == code and "Traceback" not in err, err
        assert len(err.splitlines()) == 1 and word in err, err
        said.append(err)
    assert f"vggnp.cam: {word} while starting; nothing was done\n" in said, said


@pytest.mark.parametrize("environment, huge_pages", [({}, "False"),
                                                     ({"NUMPY_MADVISE_HUGEPAGE": "1"}, "True")])
def test_a_command_loads_numpy_without_huge_pages(environment, huge_pages):
    """The command's first instant (``startup.COMMAND_ENVIRONMENT``, ``cam.command``) sets
    NumPy's huge pages off before NumPy loads (they stalled passes: docs/speed.md); a
    user's own NUMPY_MADVISE_HUGEPAGE stands; ``cam.main`` called from Python leaves the
    environment as it is."""
    script = ("import sys; from vggnp.cam import command, main\n"
              "sys.argv = ['vggnp.cam', '--help']\n"
              "try:\n    {call}\nexcept SystemExit:\n    pass\n"
              "import numpy; core = getattr(numpy, '_core', None) or numpy.core\n"
              "print(core.multiarray._get_madvise_hugepage())")
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    env.update(environment, PYTHONPATH=ROOT)
    for call, expected in (("command()", huge_pages), ("main(['--help'])", "True")):
        done = subprocess.run([sys.executable, "-c", script.format(call=call)], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and done.stdout.split()[-1] == expected, done.stderr


def test_the_process_ends_with_its_code_and_its_text_flushed():
    """``startup.end_process`` (the end of ``cam.command``): what stdout and stderr still
    buffered reaches the reader, and the code is the process's; a stdout the reader has
    closed leaves the code as it was and nothing on stderr (no "Exception ignored")."""
    script = ("import sys, time; from vggnp.startup import end_process\n"
              "sys.stdout.write('lines' * {n}); sys.stderr.write('note')\n"
              "time.sleep({pause}); end_process(7)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # pipes buffer
    done = subprocess.run([sys.executable, "-c", script.format(n=1, pause=0)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (7, "lines", "note")
    reader = subprocess.Popen([sys.executable, "-c", script.format(n=1000, pause=0.5)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader.stdout.close()  # before the script flushes its 5 KB (a pipe: block-buffered)
    assert reader.wait(timeout=60) == 7 and reader.stderr.read() == b"note"


@pytest.mark.parametrize("traced", [False, True])
def test_the_command_skips_the_teardown_unless_traced(traced, tmp_path):
    """``cam.command`` ends through ``end_process``: an atexit handler (the teardown) does
    not run, and the run's code stands; under a tracer (a profiler, coverage: they write
    their files in the teardown) it runs, the code the same."""
    script = ("import atexit, os, sys\n"
              "atexit.register(lambda: os.write(2, b'teardown'))\n"
              "if {traced}:\n    sys.settrace(lambda *a: None)\n"
              "from vggnp.cam import command\n"
              "sys.argv = ['vggnp.cam', {missing!r}, '--out', {out!r}]\n"
              "sys.exit(command())")
    done = subprocess.run([sys.executable, "-c", script.format(
        traced=traced, missing=str(tmp_path / "gone.jpg"), out=str(tmp_path / "out"))],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "gone.jpg: no such file" in done.stderr, done.stderr
    assert done.stderr.endswith("teardown") == traced


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
COMMANDS = {activations.main: [SHAPES[0], "--layer", "c"], filters.main: ["--layer", "c"],
            sanity.main: [SHAPES[0], "--layer", "c"], cam.main: [SHAPES[0]],
            gradcheck.main: [], trace.main: []}


class _Parsed(BaseException):  # not an Exception: the funnel lets it through
    """Raised in place of parsing: carries the parser a command built."""


def numeric_options(main, monkeypatch):
    """The options of ``main``'s parser whose type is a number (int, float, int_range),
    read from the parser itself: a new option joins the test below without a list."""
    def caught(parser, *args, **kwargs):
        raise _Parsed(parser)
    with monkeypatch.context() as patched:
        patched.setattr(ArgumentParser, "parse_args", caught)
        patched.setattr(ArgumentParser, "parse_known_args", caught)
        try:
            main(["--help"])
        except _Parsed as parsed:
            parser = parsed.args[0]
    return sorted(action.option_strings[-1] for action in parser._actions
                  if action.type in (int, float) or
                  getattr(action.type, "__qualname__", "").startswith("int_range"))


def test_the_numeric_options_are_found_in_the_parsers(monkeypatch):
    found = {main.__module__: numeric_options(main, monkeypatch) for main in COMMANDS}
    assert found["vggnp.filters"] == ["--filters", "--seed", "--size", "--steps", "--threads"]
    assert {"--epsilon", "--gamma", "--threads", "--max-pixels"} <= set(found["vggnp.cam"])
    assert found["vggnp.gradcheck"] == []


@pytest.mark.parametrize("main", COMMANDS, ids=lambda m: m.__module__)
def test_every_numeric_option_takes_any_text_in_one_line(main, tmp_path, capsys, monkeypatch):
    """The fuzz family of the commands' options (#27.16): every numeric option given odd
    text either runs (here it then stops at the missing model, exit 3) or is a usage error
    (exit 2); always exactly one line on stderr, never a traceback."""
    for option in numeric_options(main, monkeypatch):
        for value in OPTION_VALUES:
            argv = [*COMMANDS[main], option, value, "--model",
                    str(tmp_path / "missing.keras"), "--out", str(tmp_path)]
            try:
                code = main(argv)
            except SystemExit as stop:
                code = stop.code
            err = capsys.readouterr().err
            assert code in (2, 3) and len(err.splitlines()) == 1, (option, value, code, err)
            assert "Traceback" not in err
