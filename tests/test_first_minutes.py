"""#26, the first ten minutes: the small edges a newcomer meets (a URL as input, a typo in
--class or --layer, --version, the installed script's name), and the synopsis in
docs/cli.md, which is generated from the parser."""

import json
import os
import subprocess
import sys
import time

import pytest

from helpers import MODEL, MODEL_PATH, ROOT, SHAPES
from scripts.cli_synopsis import BLOCK, synopsis
from vggnp import VGG16, activations, cam, filters, load_keras_model, sanity
from vggnp.cam import run as cam_run
from vggnp.cli import prog_name
from vggnp.files.imagenet import class_index


def test_a_url_input_says_urls_are_not_fetched(tmp_path, capsys):
    url = "https://example.com/cat.jpg"
    assert cam_run.main([url, *MODEL, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{url}: a URL: vggnp reads image files and does not download them; save it " \
           f"first (curl -LO '{url}')" in err


@pytest.mark.parametrize("model", [[], MODEL])
def test_inputs_that_cannot_be_read_are_said_before_any_weights_load(model, tmp_path,
                                                                     monkeypatch, capsys):
    """A new user's trial: a mistyped image name with the default VGG16 and no weights
    cached was told to download 553 MB (or downloaded them) before hearing the name was
    wrong. Where not one input can be read (a missing file, a URL, a dangling link, an
    empty file; beside a folder with no image): each fails as the reader fails it -- its
    line, its JSON line, its record in the results file -- then the run's summary with the
    refused folder counted, exit 1, no model loaded (its loader made to fail the test)."""
    from vggnp.cam import settings
    monkeypatch.setattr(settings, "load_model", lambda *a, **k: pytest.fail("loaded"))
    monkeypatch.setenv("VGGNP_HOME", str(tmp_path / "empty"))
    missing, url = str(tmp_path / "elephnat.jpg"), "https://example.com/cat.jpg"
    link, empty = tmp_path / "link.jpg", tmp_path / "empty.jpg"
    link.symlink_to(tmp_path / "nowhere.jpg")
    empty.write_bytes(b"")
    inputs, folder = [missing, url, str(link), str(empty)], tmp_path / "no images"
    folder.mkdir()
    out = tmp_path / "out"
    assert cam_run.main([*inputs, str(folder), *model, "--out", str(out), "--json"]) == 1
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert err[0].startswith(f"vggnp.cam: {folder}: a folder with no image files")
    assert err[1] == f"vggnp.cam: {missing}: no such file"
    assert err[2].startswith(f"vggnp.cam: {url}: a URL: vggnp reads image files")
    assert err[3].startswith(f"vggnp.cam: {link}: a symbolic link to") and len(err) == 6
    assert err[5].startswith("vggnp.cam: 0 of 4 image(s) done, 4 failed, 1 other input(s) "
                             "refused")
    shown = [json.loads(line) for line in captured.out.splitlines()]
    recorded = [json.loads(line) for line in (out / "vggnp-results.jsonl").read_text().splitlines()]
    assert [r["image"] for r in shown] == [r["image"] for r in recorded] == inputs
    assert all(r["error"] for r in recorded)


def test_a_missing_input_beside_a_real_one_fails_in_its_turn(tmp_path, capsys):
    """One input exists: the run goes on, the missing one failing as it is read (a line,
    and its record in the results file), the other explained."""
    missing = str(tmp_path / "gone.png")
    assert cam_run.main([SHAPES[0], missing, *MODEL, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{missing}: no such file" in err and "1 of 2 image(s) done, 1 failed" in err


@pytest.mark.parametrize("typo, near", [("tabby_ca", "'tabby'"),
                                        ("african elefant", "'African_elephant'")])
def test_an_imagenet_class_typo_gets_the_nearest_names(typo, near):
    with pytest.raises(ValueError, match=f"did you mean {near}"):
        class_index(typo)


def test_class_and_layer_typos_get_the_nearest_names(tmp_path, capsys):
    assert cam_run.main([SHAPES[0], *MODEL, "--class", "circel", "--out", str(tmp_path)]) == 2
    assert "unknown class 'circel' (did you mean 'circle'?)" in capsys.readouterr().err
    assert cam_run.main([SHAPES[0], *MODEL, "--layer", "conv2d_1", "--out",
                         str(tmp_path)]) == 2
    assert "--layer: no layer 'conv2d_1' (did you mean 'conv2d_11'" in \
        capsys.readouterr().err
    assert activations.main([SHAPES[0], "--layer", "conv2d_66", "--model", MODEL_PATH,
                             "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vggnp.activations: --layer: no layer 'conv2d_66' (did you mean "
                          "'conv2d_6'")


@pytest.mark.parametrize("main", [cam.main, activations.main, filters.main, sanity.main])
def test_every_command_has_version(main, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("vggnp 0.")


def test_the_installed_script_names_itself(monkeypatch):
    monkeypatch.setattr("sys.argv", [os.path.join("venv", "bin", "vggnp-cam")])
    assert prog_name("vggnp.cam") == "vggnp-cam"
    monkeypatch.setattr("sys.argv", ["/x/vggnp/cam/__main__.py"])
    assert prog_name("vggnp.cam") == "python -m vggnp.cam"


def test_the_docs_synopsis_is_the_parsers():
    """docs/cli.md's synopsis is what ``python -m scripts.cli_synopsis`` prints: every
    option of the parser, none that it lacks (run it with --write after a change)."""
    with open(os.path.join(ROOT, "docs", "cli.md"), encoding="utf-8") as f:
        block = BLOCK.search(f.read())
    assert block and block.group(2) == synopsis()


def test_sanity_says_each_step_and_the_time_left(tmp_path, capsys):
    """#26.5: vggnp.sanity printed nothing for minutes; with --progress (or on a terminal)
    each randomisation step is one stderr line with its layer and the time left."""
    assert sanity.main([SHAPES[0], "--model", MODEL_PATH, "--out", str(tmp_path), "--depth",
                        "2", "--no-independent", "--progress", "--methods", "gradcam"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("vggnp.sanity: step 1/2 (cascading, randomised down to "
                               "dense_1) done; about 0:0")
    assert lines[1].startswith("vggnp.sanity: step 2/2 (cascading, randomised down to "
                               "conv2d_11) done")


def test_threads_are_chosen_and_said(tmp_path, capsys):
    """#26.6: --threads N limits the BLAS, and --progress says how many threads run."""
    from threadpoolctl import threadpool_info
    from vggnp.fast.threads import cores, use_threads
    try:
        assert cam_run.main([*SHAPES[:2], *MODEL, "--out", str(tmp_path), "--threads", "1",
                             "--progress"]) == 0
        # A Keras model's products are not cut into VGG16's blocks: no block threads said
        # (it said "and 1 block thread(s) for VGG16" for any model).
        assert ("vggnp.cam: 1 BLAS thread(s) (--threads; " in capsys.readouterr().err)
        assert VGG16.block_threads and not load_keras_model(MODEL_PATH).block_threads
        assert all(lib["num_threads"] == 1 for lib in threadpool_info()
                   if lib["user_api"] == "blas")
    finally:
        use_threads(cores())


def test_the_default_thread_count_leaves_out_the_cores_other_work_keeps_busy(monkeypatch):
    """free_cores: the machine's busy cores from two readings of /proc/stat (user, nice,
    system, idle, iowait, irq, softirq, steal), taken off cores(), at least 1."""
    from vggnp.fast import threads
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "cores", lambda: 2)
    readings = {"idle": ([0] * 8, [1, 0, 0, 99, 0, 0, 0, 0]),     # 1 % busy
                "one": ([0] * 8, [40, 0, 10, 50, 0, 0, 0, 0]),      # 1 of 2 cores busy
                "all": ([0] * 8, [90, 0, 5, 3, 0, 0, 0, 2])}        # both busy
    for load, want in (("idle", 2), ("one", 1), ("all", 1)):
        pair = iter(readings[load])
        assert threads.free_cores(sample=0, read=lambda: next(pair)) == want, load
    assert threads.free_cores(sample=0, read=lambda: None) == 2  # not Linux: none busy


@pytest.mark.parametrize("second, free", [([50, 0, 0, 50, 0, 0, 0, 0], 2),
                                          ([90, 0, 10, 0, 0, 0, 0, 0], 1)],
                         ids=["this process alone", "another busy process"])
def test_a_reading_begun_before_the_model_loads_takes_the_loading_as_its_sample(
        monkeypatch, second, free):
    """BusyCores (a command's, made before it loads its model): the time since it was
    made counts towards the sample (no sleep after a loading longer than the sample), and
    this process's own CPU time meanwhile (the loading's) is not taken for other work:
    one core of two busy, all of it this process's, leaves both free; both busy, one of
    them another process's, one."""
    from vggnp.fast import threads
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "cores", lambda: 2)
    pair, slept = iter(([0] * 8, second)), []
    clock = {"wall": 100.0, "cpu": 7.0}

    class Clock:  # the loading: 0.2 s of the wall clock, one core busy all along
        monotonic = staticmethod(lambda: clock["wall"])
        process_time = staticmethod(lambda: clock["cpu"])
        sleep = staticmethod(slept.append)
    monkeypatch.setattr(threads, "time", Clock)
    busy = threads.BusyCores(read=lambda: next(pair))
    clock["wall"] += 0.2
    clock["cpu"] += 0.2
    assert busy.free_cores(sample=0.05) == free
    assert slept == [0.0]


def test_the_default_thread_count_is_one_beside_a_busy_process_per_core():
    """The real /proc/stat, with one spinning process per core (the benchmark's "busy")."""
    from vggnp.fast.threads import free_cores
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(os.cpu_count())]
    try:
        time.sleep(0.5)  # every spinner running
        assert free_cores(sample=0.2) == 1
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


@pytest.mark.parametrize("text, quota", [("150000 100000\n", 2), ("max 100000\n", None),
                                         ("200000 100000", 2), ("junk", None)])
def test_the_default_thread_count_honours_the_cgroup_quota(tmp_path, text, quota):
    from vggnp.fast.threads import _cgroup_quota
    (tmp_path / "cpu.max").write_text(text)
    assert _cgroup_quota(str(tmp_path / "cpu.max")) == quota


def test_filters_says_each_filter_and_the_time_left(tmp_path, capsys):
    assert filters.main(["--layer", "conv2d_6", "--model", MODEL_PATH, "--filters", "2",
                         "--steps", "2", "--out", str(tmp_path), "--progress"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("vggnp.filters: step 1/2 (filter 0) done; about 0:0")
    assert lines[1].startswith("vggnp.filters: step 2/2 (filter 1) done")


def test_the_explained_class_carries_its_score(tmp_path, capsys):
    """The report sorts by the explained class's score: the record must carry it (with
    --model it was missing, and "sort by score" did nothing)."""
    assert cam_run.main([SHAPES[1], *MODEL, "--out", str(tmp_path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert record["class"]["score"] == record["top"][0]["score"] > 0.5


def test_a_class_out_of_range_or_named_twice(tmp_path, capsys):
    """A new user's trial: --class 3 of three classes said only 'unknown class', and a
    labels file naming two classes alike took the first of them silently."""
    assert cam_run.main([SHAPES[0], *MODEL, "--class", "3", "--out", str(tmp_path)]) == 2
    assert "the classes are circle, square, triangle, or an index 0..2" in \
        capsys.readouterr().err
    labels = tmp_path / "labels.txt"
    labels.write_text("a\na\nc\n")
    assert cam_run.main([SHAPES[0], "--model", MODEL[1], "--labels", str(labels), "--class",
                         "A", "--out", str(tmp_path)]) == 2
    assert "class 'A' names classes 0, 1: pass its index" in capsys.readouterr().err
