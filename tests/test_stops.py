"""A stopped run (Ctrl-C, SIGTERM): prompt whichever thread the signal reaches, no wait
for a result that would be dropped, and the count, the results file and stdout in agreement."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import MODEL, ROOT, SHAPES, interruptible
from vggnp import cam


# A batch that takes two minutes, and the signals for the worker thread that runs it alone
# (the main thread blocks them before any import, so the threads it starts -- OpenBLAS's,
# the block threads -- block them too, but the worker unblocks them): the kernel may pick
# any thread that does not block a signal, and this one it must pick.
SLOW_BATCH = """
import signal, sys, time
STOPS = {signal.SIGINT, signal.SIGTERM}
signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
import vggnp.stream.workers as workers
def under_way(*args, **kwargs):
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
    print("under way", file=sys.stderr, flush=True)
    time.sleep(120)
workers.explain = under_way
from vggnp.cam import command
sys.exit(command())
"""


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_run_does_not_wait_for_the_batch_under_way(tmp_path, signum, code):
    """A stop while a batch runs: the command ends at once (exit 130 or 143, one line),
    as that batch's result would not be written anyway (the stream used to wait up to 30
    s for it, then drop it; a library caller's stream still waits: ``close_wait``). The
    signal comes to the worker's thread: the main thread, waiting for the batch, must
    look for it (``stream.interrupts``; before, 1 stop in ~25 hung so)."""
    child = subprocess.Popen([sys.executable, "-c", SLOW_BATCH, SHAPES[0], *MODEL, "--out",
                              str(tmp_path)], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, preexec_fn=interruptible)
    try:
        assert child.stderr.readline().strip() == "under way"
        began = time.monotonic()
        child.send_signal(signum)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()  # a hung one (it blocks the signals in its main thread)
        child.communicate()
    assert child.returncode == code and "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and "0 of 1 image(s) done" in err
    assert time.monotonic() - began < 10


SLOW_READ = """
import sys, time
import vggnp.stream.reader as reader
def decoding(*args, **kwargs):
    print("decoding", file=sys.stderr, flush=True)
    time.sleep(120)
reader.read_image = decoding
from vggnp.cam import command
sys.exit(command())
"""


def test_a_stopped_run_does_not_wait_for_an_image_being_decoded(tmp_path):
    """The reader thread decoding a huge image: a stopped command ends without waiting
    for it (up to 5 s before; a daemon thread, the process ends next)."""
    child = subprocess.Popen([sys.executable, "-c", SLOW_READ, SHAPES[0], *MODEL, "--out",
                              str(tmp_path)], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, preexec_fn=interruptible)
    try:
        assert child.stderr.readline().strip() == "decoding"
        time.sleep(1)  # the main thread in the stream's loop, waiting for the image
        began = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == 130 and "Traceback" not in err, err
    assert time.monotonic() - began < 4


def test_a_run_in_a_callers_process_still_waits_for_its_batch(tmp_path, monkeypatch):
    """cam.main called from Python (a notebook, a test): its process goes on, so a stopped
    run waits for the batch under way (the stream's CLOSE_WAIT) and gives the BLAS
    threads back; only ``cam.command`` (the process ends next) does not wait."""
    from vggnp.cam import run as cam_run
    from vggnp.stream.batches import CLOSE_WAIT
    waits = []

    def stream(*args, close_wait, **kwargs):
        waits.append(close_wait)
        return iter(())
    monkeypatch.setattr(cam_run, "explain_files", stream)
    cam.main([SHAPES[0], *MODEL, "--out", str(tmp_path)])
    assert waits == [CLOSE_WAIT]


def test_an_idle_pool_ends_at_once_and_a_busy_one_is_waited_for():
    """Workers.close: idle threads take their stop within IDLE_END; a batch under way is
    waited for up to ``wait`` seconds, and the close says whether every thread ended."""
    import threading
    import types
    from vggnp.stream import workers
    release = threading.Event()
    idle = workers.Workers([None, None], "gradcam", {})
    assert idle.close(wait=0) is True
    busy = workers.Workers([None], "gradcam", {})
    original, workers.explain = workers.explain, lambda *a, **k: release.wait(30)
    try:
        busy.submit([types.SimpleNamespace(x=np.zeros(1))])
        time.sleep(0.2)  # taken by the thread
        began = time.monotonic()
        assert busy.close(wait=0.5) is False
        assert 0.5 <= time.monotonic() - began < 5
    finally:
        release.set()
        workers.explain = original


def test_an_images_record_and_its_lines_are_not_cut_apart():
    """A signal while an image is being settled (its record appended, its lines printed,
    the progress moved on) is delivered after all three: a Ctrl-C between them once left
    the results file listing an image that stdout never showed; one that comes while the
    lines are written (a write that may block) stops at once."""
    import os
    import types
    from vggnp.cam.image import settle
    from vggnp.cli_run import Terminated, raise_terminated
    steps = []

    def append(record):
        steps.append("record")
        os.kill(os.getpid(), signal.SIGTERM)  # the stop comes now
    out = types.SimpleNamespace(
        written=0, failed=0, stop=None, results=types.SimpleNamespace(append=append),
        lines=types.SimpleNamespace(as_json=True, image=lambda r: steps.append("lines")),
        progress=types.SimpleNamespace(image_done=lambda failed: steps.append("progress")))
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        with pytest.raises(Terminated):
            settle(out, {"image": "a.jpg"}, listed=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert steps == ["record", "lines", "progress"] and out.written == 1
    steps.clear()

    def blocked_write(record):  # stdout's reader stopped reading: the write waits...
        steps.append("lines")
        os.kill(os.getpid(), signal.SIGTERM)  # ...and a stop must end it
        steps.append("written")
    out.results.append, out.lines.image = steps.append, blocked_write
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        with pytest.raises(Terminated):
            settle(out, {"image": "b.jpg"}, listed=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert steps == [{"image": "b.jpg"}, "lines"]
    assert signal.getsignal(signal.SIGTERM) is previous  # every stand-in gone


def test_deferred_signals_leave_the_handlers_as_they_were():
    """DeferredSignals: the handlers are back after the block."""
    from vggnp.cli_run import DeferredSignals
    before = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}
    with DeferredSignals():
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    assert {n: signal.getsignal(n) for n in before} == before


def test_a_stop_ends_a_run_whose_stdout_nobody_reads(tmp_path):
    """stdout a pipe whose reader stopped reading (full at 64 KB: ~110 images' JSON lines):
    the write waits; SIGTERM ends the run all the same (the last outputs were settled with
    signals ignored: only kill -9 stopped it), and its exit does not wait on the pipe."""
    import shutil
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(300):
        shutil.copy(SHAPES[0], folder / f"c{k:03d}.png")
    child = subprocess.Popen([sys.executable, "-m", "vggnp.cam", str(folder), *MODEL, "--out",
                              str(tmp_path / "out"), "--batch-size", "1", "--json"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=interruptible)
    try:
        time.sleep(6)  # the pipe full, the run waiting on it (or done: nothing to stop)
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert child.returncode in (0, 143), child.returncode
