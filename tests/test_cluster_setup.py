"""``vggnp.cam --dask`` before any work: the options a cluster run refuses, a scheduler
that cannot be reached or never answers, one without workers (each one line, exit 2), and
a worker's model loaded once and again when its file changes; and at its end, how the last
tasks are wound down."""

import os
import signal
import sys
import time
from types import SimpleNamespace

import pytest

from helpers import MODEL, SHAPES, reference_module, run_cam
from vggnp.cam.args import parse_args


@pytest.mark.parametrize("options, why", [
    (["--trace"], "--trace shows the passes of this process"),
    (["--scale", "raw"], "--scale raw with --dask needs --scale-max")])
def test_options_a_cluster_cannot_honour_are_refused(options, why, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args([SHAPES[0], "--dask", "tcp://127.0.0.1:8786", *options])
    assert stop.value.code == 2 and why in capsys.readouterr().err


def test_dask_without_dask_installed_is_one_line(tmp_path, monkeypatch, capsys):
    """docs/cli.md: --dask where Dask's distributed package is missing, exit 2 (its
    import made to fail, as where it is not installed)."""
    from vggnp import cam
    monkeypatch.setitem(sys.modules, "distributed", None)  # import raises ImportError
    code = cam.main([SHAPES[0], *MODEL, "--out", str(tmp_path), "--dask",
                     "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and err == ("vggnp.cam: --dask needs Dask's distributed package: pip "
                                 "install 'vggnp[dask]'\n"), err


def test_a_run_on_this_machine_does_not_import_the_cluster_code(tmp_path):
    """The cluster module (and asyncio, which it alone brings: 15 ms of every start) is
    imported for a --dask run only: a whole run in a fresh interpreter never loads it."""
    import subprocess
    probe = ("import sys; from vggnp import cam; code = cam.main(sys.argv[1:]); "
             "print(code, 'vggnp.cam.cluster' in sys.modules, 'asyncio' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe, SHAPES[0], *MODEL, "--out",
                           str(tmp_path), "--quiet"], capture_output=True, text=True)
    assert done.stdout.split()[-3:] == ["0", "False", "False"], done.stdout + done.stderr


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line(tmp_path):
    reference_module("distributed")
    result = run_cam(SHAPES[0], *MODEL, "--out", str(tmp_path), "--dask",
                     "tcp://127.0.0.1:9", timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "cannot reach the scheduler" in result.stderr


@pytest.mark.slow
def test_a_scheduler_without_workers_is_one_line(tmp_path, monkeypatch, capsys):
    distributed = reference_module("distributed")
    from vggnp.cam import cluster as cam_cluster, run
    monkeypatch.setattr(cam_cluster, "CONNECT_TIMEOUT", 1)
    with distributed.LocalCluster(n_workers=0, dashboard_address=":0") as empty, \
            distributed.Client(empty) as client:
        code = run.main([SHAPES[0], *MODEL, "--out", str(tmp_path)], client=client)
    err = capsys.readouterr().err
    assert code == 2 and "no worker has joined the scheduler in 1 s" in err, err


def test_a_worker_loads_a_model_once_and_again_when_its_file_changes(tmp_path):
    import shutil
    from vggnp.cam.cluster_worker import worker_model
    from vggnp.files.results import file_stamp
    path = str(tmp_path / "model.keras")
    shutil.copy(MODEL[1], path)
    first = worker_model(path, None, None, ((path, file_stamp(path)),))
    assert worker_model(path, None, None, ((path, file_stamp(path)),)) is first
    os.utime(path, ns=(1, 1))
    assert worker_model(path, None, None, ((path, file_stamp(path)),)) is not first
    with pytest.raises(RuntimeError, match="sees another file at"):
        worker_model(path, None, None, ((path, (1, 2)),))


@pytest.mark.slow
def test_a_port_that_never_answers_is_one_line_not_a_hang(tmp_path):
    """The dashboard's port given by mistake, or any listener that accepts and says
    nothing: Dask's own timeout covers only the connection."""
    import socket
    reference_module("distributed")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        began = time.monotonic()
        result = run_cam(SHAPES[0], *MODEL, "--out", str(tmp_path), "--dask",
                         f"tcp://127.0.0.1:{listener.getsockname()[1]}", timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot reach the scheduler" in result.stderr
    assert time.monotonic() - began < 60


def test_the_last_chunks_are_settled_with_the_handlers_back():
    """``Tasks.wind_down``: the tasks not done are cancelled with Ctrl-C ignored; those done
    are settled with the handlers back, so that a stop there (stdout's write waiting on a
    pipe nobody reads) ends the settling, its exit code noted; the run's Variable is
    deleted all the same, with Ctrl-C ignored."""
    from vggnp.cam.cluster import Tasks
    before, calls = signal.getsignal(signal.SIGINT), []
    class Future:  # as Dask's: hashable, with a status
        def __init__(self, status):
            self.status = status
    done, running = Future("finished"), Future("pending")
    client = SimpleNamespace(cancel=lambda futures: calls.append(
        ("cancel", futures, signal.getsignal(signal.SIGINT))))
    shared = SimpleNamespace(delete=lambda: calls.append(
        ("delete", signal.getsignal(signal.SIGINT))))
    tasks = Tasks(client, shared)
    tasks.pending = {done, running}

    def settle(future):
        calls.append(("settle", future, signal.getsignal(signal.SIGINT)))
        raise KeyboardInterrupt  # the stop, while the chunk's lines are written

    out = SimpleNamespace(stop=None)
    tasks.wind_down(out, settle)
    assert calls == [("cancel", [running], signal.SIG_IGN), ("settle", done, before),
                     ("delete", signal.SIG_IGN)]
    assert out.stop == 130
    assert signal.getsignal(signal.SIGINT) is before
