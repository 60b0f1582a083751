"""The main job when something fails mid-stream (issue #14): a stdout or stderr that
closes or fills, one bad image among good ones, a batch that breaks, a full disk, a failed
download, a panel that cannot be written, a lock an interrupt left held."""

import errno
import os
import subprocess
import sys

import pytest
from PIL import Image

from helpers import (MODEL, MODEL_PATH, ROOT, SHAPES, copies, done_images, json_lines,
                     outputs_in, records)

from vggnp.cam import image as cam_image, run as cam


@pytest.mark.parametrize("redirect", ["| head -c1 >/dev/null", ">&-", ">/dev/full"])
def test_stdout_that_fails_ends_the_run_with_exit_5_and_its_tally(tmp_path, redirect):
    """docs/folders.md: exit 5, no traceback, and one last line on stderr with the run's
    tally and where the results file is; every output listed in it."""
    paths = copies(tmp_path / "in", SHAPES, 30)
    command = (f"{sys.executable} -m vggnp.cam {' '.join(paths)} --model {MODEL_PATH} "
               f"--out {tmp_path / 'out'} --batch-size 1 --json 2>{tmp_path / 'err'} "
               f"{redirect}; echo ${{PIPESTATUS[0]}} >{tmp_path / 'code'}")
    subprocess.run(["bash", "-c", command], timeout=300, cwd=ROOT)
    err = (tmp_path / "err").read_text()
    assert int((tmp_path / "code").read_text()) == 5, err
    assert "Traceback" not in err and "Exception ignored" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("vggnp.cam: stdout was closed or full: ") and \
        " image(s) done, 0 failed; the results are in " in last, last
    listed = {os.path.basename(p) for r in records(tmp_path / "out")
              for p in r.get("outputs", {}).values()}
    assert listed == set(outputs_in(tmp_path / "out"))


def test_a_closed_stdout_lends_its_number_to_no_file_the_run_opens():
    """Started with fd 1 closed, a command's first file must not become fd 1: the run
    points fd 1 at /dev/null once it sees stdout gone (``silence_stdout``), and an output's
    temporary file holding that number was turned into /dev/null (its fsync failed,
    EINVAL: the test above failed about one run in twelve). Python still sees no stdout."""
    code = ("from vggnp.startup import guard; guard('vggnp.cam'); import os, sys; "
            "fd = os.open(os.devnull, os.O_RDONLY); "
            "sys.stderr.write(f'{fd} {sys.stdout is None}')")
    done = subprocess.run(["bash", "-c", f"{sys.executable} -c \"{code}\" >&-"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    fd, stdout_gone = done.stderr.split()
    assert int(fd) > 2 and stdout_gone == "True", done.stderr


def test_closed_stderr_keeps_stdout_pure_json(tmp_path):
    missing = str(tmp_path / "missing.png")
    command = (f"{sys.executable} -m vggnp.cam {SHAPES[0]} {missing} --model {MODEL_PATH} "
               f"--out {tmp_path / 'out'} --json --progress 2>&-")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 1
    lines = json_lines(result.stdout)  # every line is JSON: no message strayed here
    by_image = {r["image"]: r for r in lines}  # a failure is reported when found
    assert sorted(by_image) == sorted([SHAPES[0], missing]) and len(lines) == 2
    assert "no such file" in by_image[missing]["error"] and "error" not in by_image[SHAPES[0]]


def test_one_broken_image_among_good_ones(tmp_path, monkeypatch, capsys):
    paths = copies(tmp_path / "in", SHAPES, 5)
    real = cam_image.save_pictures

    def breaks_on_the_third(args, run, pictures):
        if pictures.original.size == (64, 64) and pictures.written["overlay"].count("img_002"):
            raise TypeError("unsupported operand")
        return real(args, run, pictures)
    monkeypatch.setattr(cam_image, "save_pictures", breaks_on_the_third)
    code = cam.main([*paths, *MODEL, "--out", str(tmp_path / "out"), "--batch-size", "2"])
    err = capsys.readouterr().err
    assert code == 1
    assert (f"vggnp.cam: {paths[2]}: internal error (TypeError: unsupported operand); "
            "please report it") in err and "Traceback" not in err
    assert len(outputs_in(tmp_path / "out")) == 4
    assert cam.main([*paths, *MODEL, "--out", str(tmp_path / "debug"), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_a_batch_that_breaks_fails_only_its_culprit(tmp_path, monkeypatch, capsys):
    from vggnp.stream import workers as stream
    paths = copies(tmp_path / "in", SHAPES, 4)
    real = stream.explain

    def explain_unless_flat(model, x, *a, **k):
        if (x == 255).all(axis=(1, 2, 3)).any():
            raise ValueError("a flat image broke the math")
        return real(model, x, *a, **k)
    Image.new("RGB", (64, 64), "white").save(paths[1])
    monkeypatch.setattr(stream, "explain", explain_unless_flat)
    code = cam.main([*paths, *MODEL, "--out", str(tmp_path / "out"), "--batch-size", "4",
                     "--json"])
    assert code == 1
    done = [r["image"] for r in done_images(capsys.readouterr().out)]
    assert done == [paths[0], paths[2], paths[3]]


def test_disk_full_mid_run_exits_4_with_what_was_written(tmp_path, monkeypatch, capsys):
    """The third image to be written meets a full disk: the run stops with exit 4, the two
    written before it are reported and listed, the one that failed is not (with two
    workers the images finish in any order, so they are told apart by their outputs)."""
    paths = copies(tmp_path / "in", SHAPES, 4)
    real = cam_image.save_pictures
    calls, refused = [], []

    def disk_full_at_the_third(*a):
        calls.append(1)
        if len(calls) == 3:
            refused.append(a[2].written["overlay"])  # save_pictures(args, run, pictures)
            raise OSError(28, "No space left on device")
        return real(*a)
    monkeypatch.setattr(cam_image, "save_pictures", disk_full_at_the_third)
    code = cam.main([*paths, *MODEL, "--out", str(tmp_path / "out"), "--batch-size", "1",
                     "--json"])
    captured = capsys.readouterr()
    assert code == 4 and "No space left on device" in captured.err
    done = done_images(captured.out)
    written = sorted(r["image"] for r in done)  # in flight when it stopped: finished, kept
    assert len(written) >= 2 and refused[0] not in [r["outputs"]["overlay"] for r in done]
    assert sorted(r["image"] for r in records(tmp_path / "out") if "error" not in r) == written
    assert len(outputs_in(tmp_path / "out")) == len(written)


def test_closed_stderr_during_a_failed_download(tmp_path, monkeypatch, capsys):
    """Offline, with stderr closed: exit 3, and nothing of the download reaches stdout."""
    from vggnp.files import download as dl
    monkeypatch.setenv("VGGNP_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(dl, "URL", "http://127.0.0.1:9/vgg16.h5")  # nothing listens there
    monkeypatch.setattr(sys, "stderr", None)
    assert cam.main([SHAPES[0], "--out", str(tmp_path / "out")]) == 3
    assert capsys.readouterr().out == ""


def test_a_failed_panel_takes_its_overlay_with_it(tmp_path, monkeypatch, capsys):
    from vggnp.cam import outputs as cam_outputs
    real = cam_outputs.save_image

    def panel_fails(picture, path, overwrite=False):
        if "_panel" in str(path):
            raise OSError(errno.ENAMETOOLONG, "File name too long", str(path))
        return real(picture, path, overwrite)
    monkeypatch.setattr(cam_outputs, "save_image", panel_fails)
    assert cam.main([SHAPES[0], *MODEL, "--out", str(tmp_path / "out"), "--panel"]) == 1
    assert outputs_in(tmp_path / "out") == []  # no overlay without its panel


def test_the_clean_up_does_not_wait_for_a_lock_an_interrupt_left_held():
    """An interrupt between a queue lock's acquire and its release leaves the lock held by
    nobody (vggnp.stream.interrupts); the reader's and the pool's clean-up then return
    within seconds instead of waiting for it forever (a run hung so once)."""
    import time
    from vggnp.stream.reader import Budget, Reader
    from vggnp.stream.workers import Workers
    reader = Reader(iter(()), None, None, {}, 1, Budget(10))
    pool = Workers([], "gradcam", {})
    reader._queue.mutex.acquire()  # as the interrupted get() left it
    reader._budget._changed.acquire()
    pool._tasks.mutex.acquire()
    began = time.monotonic()
    reader.stop()
    assert pool.close(wait=1) is False
    assert time.monotonic() - began < 10
