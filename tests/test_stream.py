"""The main job as a stream (issue #14): folders and stdin, results as they come, the results
file and --resume, Ctrl-C / SIGTERM / kill -9, outputs safe under concurrency, progress, two
workers and the pixel budget. Streams that fail and images that break: test_stream_failures.py."""

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import (MODEL, MODEL_PATH, ROOT, SHAPES, copies, done_images, interruptible,
                     outputs_in, records, run_cam)

from vggnp.cam import run as cam, settings as cam_settings
from vggnp.files.outputs import TEMP_PREFIX, OutputExists, write_new

CAT = os.path.join(ROOT, "examples", "chelsea.jpg")


def test_folder_input_skips_other_files(tmp_path):
    copies(tmp_path / "in", SHAPES, 3)
    (tmp_path / "in" / "README.txt").write_text("not an image")
    copies(tmp_path / "in" / "sub", SHAPES, 2)
    result = run_cam(str(tmp_path / "in"), *MODEL, "--out", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    assert len(done_images(result.stdout)) == 3
    assert ("skipped 1 file(s) in the folders that are not images by their extension "
            f"({tmp_path / 'in' / 'README.txt'}); name a file to read it") in result.stderr
    deep = run_cam(str(tmp_path / "in"), "--recursive", *MODEL, "--out",
                   str(tmp_path / "deep"), "--json")
    assert len(done_images(deep.stdout)) == 5
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run_cam(str(empty), *MODEL, "--out", str(tmp_path / "none"))
    assert nothing.returncode == 1 and "a folder with no image files" in nothing.stderr
    # the summary counts images, and the folder apart (it said "1 of 2 done, 2 failed")
    mixed = run_cam(str(empty), SHAPES[0], str(tmp_path / "missing.png"), *MODEL, "--out",
                    str(tmp_path / "mixed"))
    assert mixed.returncode == 1
    assert "vggnp.cam: 1 of 2 image(s) done, 1 failed, 1 other input(s) refused, in " in \
        mixed.stderr


def test_paths_from_stdin(tmp_path):
    paths = copies(tmp_path / "in", SHAPES, 4)
    result = subprocess.run([sys.executable, "-m", "vggnp.cam", "-", *MODEL, "--out",
                             str(tmp_path / "out"), "--json"], input="\n".join(paths) + "\n",
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert [r["image"] for r in done_images(result.stdout)] == paths
    # an empty list (a find that matched nothing) says where it looked
    empty = subprocess.run([sys.executable, "-m", "vggnp.cam", "-", *MODEL, "--out",
                            str(tmp_path / "none")], input="", capture_output=True, text=True,
                           timeout=300, cwd=ROOT)
    assert empty.returncode == 1 and empty.stderr.strip() == (
        "vggnp.cam: no images to explain: stdin ('-') named no file (one path a line)")


def slow_run(tmp_path, n=12, *extra):
    """A run of n copies of the cat through the full-size VGG16 (a second or so each), one
    image per batch, started in the background."""
    paths = copies(tmp_path / "in", [CAT], n)
    return subprocess.Popen([sys.executable, "-m", "vggnp.cam", *paths, "--out",
                             str(tmp_path / "out"), "--batch-size", "1", "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, preexec_fn=interruptible)


def test_results_come_while_the_run_goes_on(vgg16_file, tmp_path):
    run = slow_run(tmp_path, 12, "--weights", vgg16_file)
    try:
        first = json.loads(run.stdout.readline())
        assert run.poll() is None  # later images still pending
        assert os.path.isfile(first["outputs"]["overlay"])
        assert [r["image"] for r in records(tmp_path / "out")][:1] == [first["image"]]
    finally:
        run.kill()
        run.communicate()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_leaves_whole_files_and_a_true_results_file(vgg16_file, tmp_path,
                                                                      sig, code):
    run = slow_run(tmp_path, 12, "--weights", vgg16_file, "--panel")
    run.stdout.readline()  # one image done
    run.send_signal(sig)
    out, err = run.communicate(timeout=120)
    assert run.returncode == code, err
    assert "Traceback" not in err and "--resume" in err.splitlines()[-1]
    folder = tmp_path / "out"
    assert not [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]
    listed = {os.path.basename(p) for r in records(folder) for p in r["outputs"].values()}
    assert listed == set(outputs_in(folder)) and 2 <= len(listed) < 24
    for name in listed:
        with Image.open(folder / name) as picture:
            picture.load()  # every file on disk is whole
    again = run_cam(str(tmp_path / "in"), "--weights", vgg16_file, "--out", str(folder),
                    "--panel", "--resume", "--json")
    assert again.returncode == 0, again.stderr
    assert len(done_images(again.stdout)) == 12 - len(listed) // 2
    assert f"{len(listed) // 2} of 12 image(s) already done" in again.stderr


def test_leftovers_of_a_killed_run_are_removed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / f"{TEMP_PREFIX}{dead.pid}-abcd.jpg"
    stale.write_bytes(b"half a JPEG")
    alive = out / f"{TEMP_PREFIX}{os.getpid()}-efgh.jpg"  # a run still writing: kept
    alive.write_bytes(b"being written")
    result = run_cam(SHAPES[0], *MODEL, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "removed 1 temporary file(s)" in result.stderr
    assert not stale.exists() and alive.exists()


def test_resume_of_a_finished_folder_does_no_work(tmp_path, monkeypatch, capsys):
    copies(tmp_path / "in", SHAPES, 4)
    args = [str(tmp_path / "in"), *MODEL, "--out", str(tmp_path / "out")]
    assert cam.main(args) == 0
    capsys.readouterr()

    def no_work(*a, **k):
        raise AssertionError("the network ran")
    monkeypatch.setattr(cam, "explain_files", no_work)
    monkeypatch.setattr(cam_settings, "load_model", no_work)
    assert cam.main([*args, "--resume"]) == 0
    assert "4 of 4 image(s) already done" in capsys.readouterr().err
    monkeypatch.undo()
    os.utime(tmp_path / "in" / "img_001.png", ns=(1, 1))  # changed since: done again
    assert cam.main([*args, "--resume", "--overwrite", "--json"]) == 0
    (again,) = done_images(capsys.readouterr().out)
    assert again["image"].endswith("img_001.png")


def test_a_name_taken_meanwhile_is_never_replaced(tmp_path):
    """Another process creates the output between our write and our rename: we fail with
    'exists', its file stays, and no temporary file is left."""
    path = tmp_path / "x_triangle_cam.jpg"

    def write_while_another_run_wins(f):
        f.write(b"ours")
        path.write_bytes(b"theirs")
    with pytest.raises(OutputExists):
        write_new(str(path), write_while_another_run_wins)
    assert path.read_bytes() == b"theirs" and os.listdir(tmp_path) == [path.name]


def test_two_runs_with_same_named_inputs_into_one_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(SHAPES[2], a / "x.png")
    Image.open(SHAPES[2]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(b / "x.png")
    runs = [subprocess.Popen([sys.executable, "-m", "vggnp.cam", str(folder / "x.png"), *MODEL,
                              "--out", str(tmp_path / "out"), "--json"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for folder in (a, b)]
    outcomes = [run.communicate(timeout=300) + (run.returncode,) for run in runs]
    won = [o for o in outcomes if o[2] == 0]
    lost = [o for o in outcomes if o[2] == 1]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert "exists; pass --overwrite" in lost[0][1]
    (winner,) = done_images(won[0][0])
    with open(winner["outputs"]["overlay"], "rb") as f:
        assert f.read()  # the winner's file, whole
    listed = [r for r in records(tmp_path / "out") if "error" not in r]
    assert [r["image"] for r in listed] == [winner["image"]]


def test_outputs_are_readable_by_others_under_umask_022(tmp_path):
    result = subprocess.run([sys.executable, "-m", "vggnp.cam", SHAPES[0], *MODEL, "--out",
                             str(tmp_path / "out"), "--panel", "--save-heatmap"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT,
                            preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0, result.stderr
    for name in os.listdir(tmp_path / "out"):
        assert os.stat(tmp_path / "out" / name).st_mode & 0o777 == 0o644, name


def test_progress_line_when_asked(tmp_path, monkeypatch, capsys):
    """On a terminal, one line drawn over itself, with what the image under way is doing;
    into a file or a pipe (a log), a plain line every 10 s and at the end: a new user's
    Score-CAM run wrote a line each 40-70 ms, one per image's last channel."""
    from vggnp.cam import run_io
    monkeypatch.setattr(run_io, "is_terminal", lambda stream: True)
    line = run_io.Progress(2, True)
    line.step("scorecam channels", 49, 49)
    assert capsys.readouterr().err == (
        "\r\x1b[K0/2 images, 0.00 images/s, ETA ?, 0 failed; scorecam channels 49/49")
    monkeypatch.undo()
    result = run_cam(SHAPES[0], SHAPES[1], *MODEL, "--out", str(tmp_path / "a"), "--progress",
                     "--method", "scorecam", "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    # stderr is a pipe here: whole lines, none drawn over another, the last at the end
    assert "\r" not in result.stderr and "\x1b" not in result.stderr
    lines = [k for k in result.stderr.splitlines() if k.endswith(" failed")]  # progress's
    assert lines == ["2/2 images, " + lines[-1].split(", ", 1)[1]], lines
    quiet = run_cam(SHAPES[0], *MODEL, "--out", str(tmp_path / "b"), "--progress", "--quiet")
    assert "images/s" not in quiet.stderr
    plain = run_cam(SHAPES[0], *MODEL, "--out", str(tmp_path / "c"))  # stderr is a pipe
    assert "images/s" not in plain.stderr


def test_a_small_pixel_budget_bounds_the_pictures_in_flight(tmp_path):
    """The reader never holds more decoded pixels than the budget (one picture always
    passes), partial batches run instead of waiting, and the maps do not change."""
    from vggnp.models.keras_convnet import load_keras_model
    from vggnp.stream.batches import explain_files
    model = load_keras_model(MODEL_PATH)
    paths = copies(tmp_path / "in", SHAPES, 7)
    free = [(r.class_index, r.map) for r in explain_files(model, paths, mode="none",
                                                          batch_size=4)]
    held, peak = [], 0
    for r in explain_files(model, paths, mode="none", batch_size=4, pixel_budget=64 * 64 * 2,
                           hold_pictures=True):
        held.append(r)
        peak = max(peak, r._budget.used)  # every decoded picture not yet released
        for h in held[:-1]:
            h.release()
    assert peak <= 64 * 64 * 2
    assert [(r.class_index, r.map.tolist()) for r in held] == \
        [(c, m.tolist()) for c, m in free]


def test_two_workers_give_what_one_gives_and_give_the_blas_threads_back(tmp_path):
    """workers=2: every image once, each with the map one worker gives (up to float32
    rounding: the BLAS runs on fewer threads), the BLAS threads shared out while it runs
    and restored afterwards."""
    from threadpoolctl import threadpool_info
    from vggnp.models.keras_convnet import load_keras_model
    from vggnp.stream.batches import explain_files

    from vggnp.fast.threads import cores, use_threads

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    use_threads(cores())  # an earlier command in this process, on a busy machine, set fewer
    model = load_keras_model(MODEL_PATH)
    paths = copies(tmp_path / "in", SHAPES, 11)
    before = blas_threads()
    one = {r.index: r for r in explain_files(model, paths, batch_size=2)}
    two, during = {}, []
    for r in explain_files(model, paths, batch_size=2, workers=2):
        two[r.index] = r
        during.append(blas_threads())
    assert sorted(two) == sorted(one) == list(range(11))
    for index, r in one.items():
        assert two[index].error is None and two[index].class_index == r.class_index
        assert np.allclose(two[index].map, r.map, atol=1e-5)
    assert during[0] == [max(1, n // 2) for n in before]
    assert blas_threads() == before
    if (os.cpu_count() or 1) >= 2:  # else halving 1 thread is 1, and this proved nothing
        assert max(before) >= 2  # MKL's sequential layer, where loaded, reports 1

    stream = explain_files(model, paths, batch_size=2, workers=2)
    next(stream)
    stream.close()  # a caller that stops early: threads waited for, BLAS threads back
    assert blas_threads() == before


def test_the_command_line_runs_two_workers_on_a_folder_only(monkeypatch):
    """Two batches at once when there is more than one batch to run (and two cores, or
    --threads 2, busy or not); one for a single batch, one with --trace, whose tables
    would interleave, and one with --threads 1."""
    from vggnp.cam.args import parse_args
    monkeypatch.setattr(cam, "cores", lambda: 2)
    args = parse_args(["x.jpg", "--batch-size", "4"])
    assert cam.workers(args, 5) == 2 and cam.workers(args, 4) == 1
    assert cam.workers(parse_args(["x.jpg", "--batch-size", "4", "--trace"]), 9) == 1
    assert cam.workers(parse_args(["x.jpg", "--batch-size", "4", "--threads", "1"]), 9) == 1
    monkeypatch.setattr(cam, "cores", lambda: 1)
    assert cam.workers(args, 9) == 1


def test_the_command_line_under_a_tight_pixel_budget(tmp_path, monkeypatch, capsys):
    """Pictures held for writing go back to the budget from the writer thread: a budget of
    two pictures cannot stall a run of batches of four."""
    monkeypatch.setattr(cam, "PIXEL_BUDGET", 64 * 64 * 2)
    paths = copies(tmp_path / "in", SHAPES, 9)
    assert cam.main([*paths, *MODEL, "--out", str(tmp_path / "out"), "--batch-size", "4",
                     "--json"]) == 0
    assert len(done_images(capsys.readouterr().out)) == 9


def test_resume_after_a_run_that_found_the_outputs_there(tmp_path, capsys):
    """A rerun without --resume that fails each image with "exists" (the outputs were
    changed since, so they are no longer vggnp's own) must not undo what the first run
    recorded: --resume still finds every image done."""
    copies(tmp_path / "in", SHAPES, 3)
    args = [str(tmp_path / "in"), *MODEL, "--out", str(tmp_path / "out")]
    assert cam.main(args) == 0
    for name in outputs_in(tmp_path / "out"):
        os.utime(tmp_path / "out" / name, ns=(1, 1))  # as if a user had put them there
    assert cam.main(args) == 1 and "exists" in capsys.readouterr().err
    assert cam.main([*args, "--resume"]) == 0
    assert "3 of 3 image(s) already done" in capsys.readouterr().err


def test_explain_files_preprocesses_as_the_model_wants():
    """The Python API's default preprocessing is the model's own (the shapes model rescales
    by itself), as on the command line."""
    from vggnp.models.keras_convnet import load_keras_model
    from vggnp.stream.batches import explain_files
    model = load_keras_model(MODEL_PATH)
    assert [r.class_index for r in explain_files(model, SHAPES)] == [0, 1, 2]


def test_resume_from_another_folder_and_a_name_too_long(tmp_path, monkeypatch, capsys):
    """Outputs are recorded with absolute paths (--resume works from anywhere); a name the
    file system refuses fails that image alone, the run goes on."""
    long_name = tmp_path / "in" / ("a" * 240 + ".png")
    paths = copies(tmp_path / "in", SHAPES, 2)
    shutil.copy(SHAPES[0], long_name)
    monkeypatch.chdir(tmp_path)
    assert cam.main([str(long_name), *paths, *MODEL, "--out", "out", "--panel"]) == 1
    err = capsys.readouterr().err
    assert "File name too long" in err and "stopped" not in err
    assert len(outputs_in(tmp_path / "out")) == 4  # the two others, overlay and panel
    monkeypatch.chdir(tmp_path / "out")
    assert cam.main([*paths, *MODEL, "--out", ".", "--panel", "--resume"]) == 0
    assert "2 of 2 image(s) already done" in capsys.readouterr().err


def test_stdin_names_that_are_not_utf8(tmp_path):
    name = os.fsencode(str(tmp_path)) + b"/caf\xe9.png"
    shutil.copy(SHAPES[0], name)
    result = subprocess.run([sys.executable, "-m", "vggnp.cam", "-", *MODEL, "--out",
                             str(tmp_path / "out")], input=name + b"\n", capture_output=True,
                            timeout=300, cwd=ROOT, env={**os.environ, "PYTHONUTF8": "0",
                                                        "LC_ALL": "C.UTF-8"})
    assert result.returncode == 0, result.stderr
    assert len(outputs_in(tmp_path / "out")) == 1


def test_names_that_would_meet_get_a_number(tmp_path, capsys):
    """"p" explained as "sea lion" and "p_sea" as "lion" would both be p_sea_lion_cam."""
    labels = tmp_path / "labels.txt"
    labels.write_text("sea lion\nsea\nlion\n")
    shutil.copy(SHAPES[0], tmp_path / "p.png")
    shutil.copy(SHAPES[0], tmp_path / "p_sea.png")
    code = cam.main([str(tmp_path / "p.png"), str(tmp_path / "p_sea.png"), "--model",
                     MODEL_PATH, "--labels", str(labels), "--out", str(tmp_path / "out"),
                     "--class", "0", "--json"])
    assert code == 0
    first = done_images(capsys.readouterr().out)
    assert len({r["outputs"]["overlay"] for r in first}) == 2
