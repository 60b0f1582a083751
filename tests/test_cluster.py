"""``vggnp.cam --dask``: the same job on a Dask cluster (a LocalCluster of 2 worker
processes here): the same outputs and records as on one machine, a resume after an
interrupted cluster run, and a worker killed while writing (its images done again
elsewhere, nothing lost, nothing listed twice)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import MODEL, ROOT, SHAPES, done_images, interruptible, reference_module, run_cam

@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes (1 thread each) and a client of it."""
    distributed = reference_module("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local, \
            distributed.Client(local) as client:
        yield client


def folder_of(tmp_path, n):
    """A folder of ``n`` copies of the shapes images, named as a camera would."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(n):
        source = SHAPES[i % len(SHAPES)]
        (folder / f"img_{i:03d}.png").write_bytes(open(source, "rb").read())
    return folder


def ledger(out):
    """(records, intent lines) of ``out``'s results file."""
    with open(os.path.join(out, "vggnp-results.jsonl"), encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return [r for r in lines if "writing" not in r], [r for r in lines if "writing" in r]


def assert_each_image_listed_once(out, folder):
    """Every image of ``folder`` has one success record, with its outputs on disk."""
    records, _ = ledger(out)
    names = sorted(os.path.basename(r["path"]) for r in records if "error" not in r)
    assert names == sorted(os.listdir(folder))
    for r in records:
        assert all(os.path.exists(p) for p in r["outputs"].values()), r


def test_a_cluster_run_gives_the_outputs_and_records_of_a_run_here(tmp_path, cluster):
    folder = folder_of(tmp_path, 9)
    here = run_cam(str(folder), *MODEL, "--out", str(tmp_path / "here"), "--json",
                   "--save-heatmap", "--report", "--batch-size", "2")
    there = run_cam(str(folder), *MODEL, "--out", str(tmp_path / "there"), "--json",
                    "--save-heatmap", "--report", "--batch-size", "2",
                    "--dask", cluster.scheduler.address)
    assert here.returncode == there.returncode == 0, there.stderr
    mine = {r["image"]: r for r in done_images(here.stdout)}
    theirs = {r["image"]: r for r in done_images(there.stdout)}
    assert sorted(mine) == sorted(theirs) and len(mine) == 9
    for image, r in theirs.items():
        want = mine[image]
        for key in ("method", "layer", "target", "notes", "empty"):
            assert r[key] == want[key], (image, key)
        for got, expected in zip([r["class"], *r["top"]], [want["class"], *want["top"]]):
            assert (got["index"], got["name"]) == (expected["index"], expected["name"])
            # float32 rounding: the workers' BLAS runs on 1 thread, the run here on 2
            assert got["score"] == pytest.approx(expected["score"], rel=1e-4, abs=1e-7)
        assert {k: os.path.basename(p) for k, p in r["outputs"].items()} == \
            {k: os.path.basename(p) for k, p in want["outputs"].items()}
        assert np.allclose(np.load(r["outputs"]["heatmap"]),
                           np.load(want["outputs"]["heatmap"]), atol=1e-6)
    assert sorted(os.listdir(tmp_path / "here")) == sorted(os.listdir(tmp_path / "there"))
    records, intents = ledger(tmp_path / "there")
    assert len(records) == len(intents) == 9  # each image once, each announced once
    assert "report: " in there.stderr


def slow_images(seconds):
    """On a worker: each image takes ``seconds`` more (a run long enough to interrupt)."""
    from vggnp.cam import cluster_worker
    original = cluster_worker.handle

    def handle(*args):
        time.sleep(seconds)
        return original(*args)
    cluster_worker.handle = handle


@pytest.mark.slow
def test_an_interrupted_cluster_run_is_resumed(tmp_path, cluster):
    folder = folder_of(tmp_path, 24)
    out = tmp_path / "out"
    cluster.run(slow_images, 0.25)
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "vggnp.cam", str(folder), *MODEL, "--out", str(out),
             "--batch-size", "2", "--dask", cluster.scheduler.address], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=interruptible)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
                os.path.exists(out / "vggnp-results.jsonl") and len(ledger(out)[0]) >= 4):
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        cluster.restart()  # the workers as they were: no slow images, no tasks left
    assert child.returncode == 130, stderr
    assert "run the same command with --resume" in stderr
    done_before = len(ledger(out)[0])
    assert 4 <= done_before < 24
    again = run_cam(str(folder), *MODEL, "--out", str(out), "--batch-size", "2", "--resume",
                    "--dask", cluster.scheduler.address)
    assert again.returncode == 0, again.stderr
    assert "already done, skipped" in again.stderr
    assert_each_image_listed_once(out, folder)


def die_while_writing(marker):
    """On one worker: the process ends at once (as if killed) after its first image's
    outputs are on disk and announced, before its task comes back."""
    from vggnp.cam import image

    def sync_folder(folder):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(1)
    image.sync_folder = sync_folder


@pytest.mark.slow
def test_a_worker_killed_while_writing_loses_nothing_and_lists_nothing_twice(tmp_path,
                                                                          cluster):
    folder = folder_of(tmp_path, 12)
    out, marker = tmp_path / "out", tmp_path / "killed"
    victim = sorted(cluster.scheduler_info()["workers"])[0]
    cluster.run(die_while_writing, str(marker), workers=[victim])
    try:
        result = run_cam(str(folder), *MODEL, "--out", str(out), "--batch-size", "2",
                         "--dask", cluster.scheduler.address, timeout=300)
    finally:
        cluster.restart()
    assert marker.exists()  # the worker did die with an image written, not yet listed
    assert result.returncode == 0, result.stderr
    assert_each_image_listed_once(out, folder)
    records, intents = ledger(out)
    assert len(records) == 12 and len(intents) == 13  # the dead worker's write was redone
    assert "replaced 1 file(s) that vggnp wrote in an earlier run" in result.stderr


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line(tmp_path):
    reference_module("distributed")
    result = run_cam(SHAPES[0], *MODEL, "--out", str(tmp_path), "--dask",
                     "tcp://127.0.0.1:9", timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "cannot reach the scheduler" in result.stderr
