"""#27: the results file is a ledger that vggnp reads back as untrusted input: a line cut
by a crash does not swallow the next record, records of the wrong shape are skipped and
counted, and a FIFO or a symbolic link in its place is refused, never followed or hung on."""

import json
import os
import subprocess
import sys
import time

import pytest

from helpers import LABELS_PATH, MODEL_PATH, ROOT, SHAPES, run_cam
from vggnp.cam import outputs as cam_outputs
from vggnp.cam import run as cam
from vggnp.files.results import RESULTS_NAME, ResultsFile, own_outputs, valid_record

ARGS = ["--model", MODEL_PATH, "--labels", LABELS_PATH, "--quiet"]


def lines_of(folder):
    with open(os.path.join(folder, RESULTS_NAME), encoding="utf-8") as f:
        return f.read().splitlines()


def test_a_cut_last_line_does_not_swallow_the_next_record(tmp_path):
    out = tmp_path / "out"
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out)]) == 0
    with open(out / RESULTS_NAME, "a", encoding="utf-8") as f:
        f.write('{"image": "cut by a crash", "pa')  # no newline: a record cut mid-write
    assert cam.main([SHAPES[1], *ARGS, "--out", str(out)]) == 0
    lines = lines_of(out)  # each image: its intent line, then its record
    assert len(lines) == 5 and lines[2].endswith('"pa') and '"writing"' in lines[3]
    records = ResultsFile(str(out)).records()
    assert [os.path.basename(r["image"]) for r in records] == ["circle.png", "square.png"]


@pytest.mark.parametrize("junk", [
    '{"image": "a", "path": "/a", "outputs": []}', '{"overlay": null}', '"x"', "[" * 100000,
    '{"image": "a", "path": "/a", "outputs": {"overlay": null}, "class": {}, "top": []}',
    '{"image": "a", "path": "/a", "error": "x", "box": "1,2"}', "x" * (2 << 20)])
def test_junk_records_are_skipped_and_counted(tmp_path, capsys, junk):
    out = tmp_path / "out"
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out)]) == 0
    with open(out / RESULTS_NAME, "a", encoding="utf-8") as f:
        f.write(junk + "\n")
    capsys.readouterr()
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out), "--resume", "--report"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "skipped 1 line(s)" in err and "1 of 1 image(s) already done" in err
    assert os.path.isfile(out / "report.html")


def test_valid_record_checks_every_field():
    good = {"image": "a.png", "path": "/a.png", "size": 3, "mtime_ns": 4,
            "outputs": {"overlay": "/o.jpg"}, "class": {"index": 1, "name": "cat"},
            "top": [{"index": 1, "name": "cat", "score": 0.5}], "box": [1, 2, 3, 4]}
    assert valid_record(good) and valid_record({"image": "a", "path": "/a", "error": "bad"})
    for key, value in [("size", "3"), ("box", [1, 2]), ("outputs", {"overlay": None}),
                       ("top", [{"score": "high"}]), ("unknown", 1), ("class", [])]:
        assert not valid_record({**good, key: value}), key
    assert not valid_record({k: v for k, v in good.items() if k != "outputs"})


def test_a_fifo_in_its_place_is_refused_without_hanging(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / RESULTS_NAME)
    for extra in ([], ["--resume"], ["--report"]):
        result = run_cam(SHAPES[0], *ARGS, "--out", str(out), *extra, timeout=60)
        assert result.returncode == 4 and "is not a regular file" in result.stderr, extra
        assert len(result.stderr.splitlines()) == 1


def test_a_symlink_in_its_place_is_refused_not_followed(tmp_path, capsys):
    out, target = tmp_path / "out", tmp_path / "elsewhere.txt"
    out.mkdir()
    target.write_text("someone's file\n")
    os.symlink(target, out / RESULTS_NAME)
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out)]) == 4
    assert target.read_text() == "someone's file\n"
    assert "is not a regular file" in capsys.readouterr().err


def test_each_record_is_one_whole_line(tmp_path):
    results = ResultsFile(str(tmp_path))
    results.append({"image": "a\nb", "path": "/a"})
    results.append({"image": "c", "path": "/c", "error": "x"})
    assert [json.loads(line)["image"] for line in lines_of(tmp_path)] == ["a\nb", "c"]


@pytest.mark.parametrize("name", [".vggnp-tmp-99999999999999999999999-x.jpg",
                                  ".vggnp-tmp-\u00b2-x.jpg", ".vggnp-tmp-0-x.jpg",
                                  ".vggnp-tmp--x.jpg"])
def test_planted_temporary_names_neither_crash_nor_stay(tmp_path, name):
    """#27.10: a temporary name no vggnp process could have made is not ours to keep: a
    pid too large or zero names no live writer (removed), one not in ASCII digits is not a
    temporary of ours (left); a folder of such a name is left alone; the run goes on."""
    from vggnp.files.outputs import remove_stale_temps
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_bytes(b"x")
    (out / (name + ".d")).mkdir()
    ours = name.split("-")[2].isascii() and name.split("-")[2].isdigit()
    assert remove_stale_temps(str(out)) == (1 if ours else 0)
    assert (out / (name + ".d")).is_dir()
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out)]) == 0


def test_an_endless_line_on_stdin_fails_alone(tmp_path):
    """#27.12: ``- < /dev/zero`` is one line that never ends: refused at PATH_MAX, with
    the paths before it still run; no MemoryError, no hang."""
    out = tmp_path / "out"
    with open("/dev/zero", "rb") as zero:
        result = subprocess.run([sys.executable, "-m", "vggnp.cam", "-", *ARGS, "--out",
                                 str(out)], stdin=zero, capture_output=True, text=True,
                                timeout=120, cwd=ROOT)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == ["vggnp.cam: -: line 1 of stdin is longer than 4096 "
                                          "bytes, not a file name; the rest of stdin is not "
                                          "read"]
    data = (SHAPES[0] + "\n").encode() + b"x" * 10000 + b"\n" + (SHAPES[1] + "\n").encode()
    result = subprocess.run([sys.executable, "-m", "vggnp.cam", "-", *ARGS, "--out", str(out)],
                            input=data, capture_output=True, timeout=120, cwd=ROOT)
    assert result.returncode == 1 and len(os.listdir(out)) == 2  # one overlay, the results


def test_output_stems_are_the_first_free_numbers_in_linear_time():
    """#27.11: the names are what the quadratic search gave (the first free ``_n``), for
    repeats, an input already named like a numbered stem, and other extensions; 100,000
    equal names are planned in a fraction of a second (scripts/names_bench.py times it)."""
    from vggnp.cam.outputs import output_stems

    def first_free(paths):  # the old search, the reference
        stems, taken = [], set()
        for path in paths:
            stem = os.path.splitext(os.path.basename(path))[0]
            unique, n = stem, 2
            while unique in taken:
                unique, n = f"{stem}_{n}", n + 1
            taken.add(unique)
            stems.append(unique)
        return stems
    paths = ["a/cat.jpg", "b/cat.jpg", "cat_2.png", "c/cat.png", "cat_3.jpg", "d/cat.jpg",
             "cat_2_2.jpg", "e/cat_2.jpg", "dog.jpg", "f/cat.jpg"]
    assert output_stems(paths) == first_free(paths)
    many = [f"d{i}/img.png" for i in range(100000)]
    assert len(set(output_stems(many))) == 100000


def test_review_findings_on_hostile_records(tmp_path, capsys):
    """Records that passed the first checks but broke the report or --resume: a method this
    version does not know, half of --metric's fields, a lone surrogate, a success without
    its input's stamp (a missing input would count as done), an over-long line; and
    --report-inline embeds only regular files inside the folder, never a FIFO or
    /etc/hostname."""
    out = tmp_path / "out"
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out)]) == 0
    good = json.loads(lines_of(out)[1])  # [0] is the intent line
    bad = [dict(good, method="renamed-method", empty=True),
           dict(good, deletion_curve=[0.5]),
           dict(good, image="\ud800"),
           dict(good, path=SHAPES[1], size=None, mtime_ns=None),
           dict(good, outputs={"overlay": str(out / "fifo"), "thumbnail": "/etc/hostname"})]
    os.mkfifo(out / "fifo")
    with open(out / RESULTS_NAME, "a", encoding="utf-8") as f:
        for record in bad:
            f.write(json.dumps(record) + "\n")
        f.write("x" * (1 << 20) + "\n")
    assert not valid_record(bad[1]) and not valid_record(bad[2]) and not valid_record(bad[3])
    capsys.readouterr()
    code = cam.main([SHAPES[0], SHAPES[1], *ARGS, "--out", str(out), "--resume", "--report",
                     "--report-inline"])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err and "internal error" not in err, err
    assert err.count("skipped 4 line(s)") == 1  # one note, however often the file is read
    assert "1 of 2 image(s) already done" in err  # the forged stamp-less success is not
    assert (out / "report.html").is_file()
    from vggnp.viz.report import _inline_bytes
    overlay = good["outputs"]["overlay"]
    assert _inline_bytes(overlay, str(out)) == open(overlay, "rb").read()
    for elsewhere in (str(out / "fifo"), "/etc/hostname", "/dev/zero",
                      str(out / ".." / "out" / ".." / "elsewhere.txt")):
        assert _inline_bytes(elsewhere, str(out)) is None, elsewhere


def test_a_second_identical_run_replaces_its_own_outputs(tmp_path, capsys):
    """#26.1: vggnp's earlier outputs (their stamps in the results file) are replaced
    without --overwrite; a file someone changed since is not."""
    out = tmp_path / "out"
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out)]) == 0
    overlay = next(out.glob("*_cam.jpg"))
    first = overlay.stat().st_mtime_ns
    capsys.readouterr()
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out)]) == 0
    said = capsys.readouterr()
    assert "1. circle" in said.out and overlay.stat().st_mtime_ns != first
    assert f"replaced 1 file(s) that vggnp wrote in an earlier run, unchanged since: " \
           f"{overlay.name}" in said.err
    os.utime(overlay, ns=(1, 1))  # changed since vggnp wrote it: a user's file now
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out)]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err


def test_files_announced_by_an_intent_line_are_vggnps_own(tmp_path):
    """A run killed after writing an image's outputs and before its record: the intent line
    names them, so the next run may replace them (own_outputs); a file older than the
    intent, or one no intent names, is not vggnp's."""
    announced, older, other = (tmp_path / n for n in ("a.jpg", "b.jpg", "c.jpg"))
    for path in (announced, older, other):
        path.write_bytes(b"x")
    os.utime(older, ns=(1, 1))
    intent = {"image": "i.png", "path": "/i.png", "writing": [str(announced), str(older)],
              "started_ns": announced.stat().st_mtime_ns}
    assert valid_record(intent)
    assert own_outputs([intent]) == {str(announced): ("/i.png", [1, announced.stat().st_mtime_ns])}
    failed = {"image": "i.png", "path": "/i.png", "error": "not written: exists"}
    assert own_outputs([intent, failed]) == {}  # a failed write ends its intent
    assert not valid_record(dict(intent, top=[]))  # an intent holds nothing else


def test_resume_after_kill_9_finishes_the_job(tmp_path):
    """#27.8: SIGKILL once the results file holds 2, 5 and 9 lines (mid-run, while images
    are being written); --resume then exits 0 and every image has its record and outputs
    (it used to say "exists; pass --overwrite" for the image whose outputs were on disk
    without a record)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(60):
        (folder / f"img_{i:02d}.png").write_bytes(open(SHAPES[i % 3], "rb").read())
    for lines in (2, 5, 9):
        out = tmp_path / f"out{lines}"
        child = subprocess.Popen([sys.executable, "-m", "vggnp.cam", str(folder), *ARGS,
                                  "--out", str(out), "--batch-size", "1"], cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results = out / RESULTS_NAME
        while child.poll() is None and not (results.exists()
                                            and results.read_bytes().count(b"\n") >= lines):
            time.sleep(0.001)
        child.kill()
        assert child.wait() == -9, "the run ended before it was killed: use more images"
        resumed = run_cam(str(folder), *ARGS, "--out", str(out), "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert len(ResultsFile(str(out)).done()) == 60


def test_outputs_without_their_record_are_redone_by_resume(tmp_path, monkeypatch):
    """The moment a kill -9 can fall in, made certain: the first image's outputs are on
    disk and its record never written (the process dies there). --resume redoes that image
    over vggnp's own files instead of refusing them as a user's (#27.8)."""
    out = tmp_path / "out"
    append = ResultsFile.append

    def die_before_the_record(self, record, durable=True):
        if "writing" not in record:  # neither the record nor a failure: as after a kill -9
            raise KeyboardInterrupt
        append(self, record, durable)
    monkeypatch.setattr(ResultsFile, "append", die_before_the_record)
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out)]) != 0
    assert list(out.glob("*_cam.jpg")) and ResultsFile(str(out)).done() == {}
    monkeypatch.setattr(ResultsFile, "append", append)
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out), "--resume"]) == 0
    assert len(ResultsFile(str(out)).done()) == 1


def test_outputs_are_on_disk_before_their_record(tmp_path, monkeypatch):
    """Durability order of one image: each output's data is fsynced before it is named,
    its folder after (the names), the results file last (the record)."""
    synced = []
    fsync = os.fsync

    def logged(fd):
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)
    monkeypatch.setattr(os, "fsync", logged)
    out = tmp_path / "out"
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out), "--panel"]) == 0
    assert [name.startswith(".vggnp-tmp-") for name in synced] == [True, True, False, False]
    assert synced[2:] == ["out", RESULTS_NAME]


def test_a_run_of_several_images_ends_with_a_summary_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert cam.main([*SHAPES, *ARGS, "--out", str(out)]) == 0
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("vggnp.cam: 3 of 3 image(s) done, 0 failed, in ")
    assert last.endswith(f"outputs in {out}, results in {out / RESULTS_NAME}")


def test_another_input_of_the_same_name_never_replaces_an_output(tmp_path, capsys):
    """vggnp's own output is replaced only by a run on the same input: b/x.png, run after
    a/x.png into the same folder, would take its output's name; it is refused."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.png").write_bytes(open(SHAPES[2], "rb").read())
    out = tmp_path / "out"
    assert cam.main([str(tmp_path / "a" / "x.png"), *ARGS, "--out", str(out)]) == 0
    assert cam.main([str(tmp_path / "b" / "x.png"), *ARGS, "--out", str(out)]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err


def test_a_failed_write_keeps_the_file_it_replaced(tmp_path, monkeypatch, capsys):
    """A second run replaces its own overlay, then its panel meets a full disk: the new
    overlay stays (deleting it would lose both versions), and no file is said replaced."""
    out = tmp_path / "out"
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out), "--panel"]) == 0
    save_image = cam_outputs.save_image

    def full_at_the_panel(picture, path, overwrite=False):
        if path.endswith("_panel.jpg"):
            raise OSError(28, "No space left on device")
        save_image(picture, path, overwrite)
    monkeypatch.setattr(cam_outputs, "save_image", full_at_the_panel)
    capsys.readouterr()
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out), "--panel"]) == 4
    assert list(out.glob("*_cam.jpg")) and "replaced" not in capsys.readouterr().err


def test_a_metric_run_without_report_is_a_valid_record(tmp_path, capsys):
    """--metric without --report records the two AUCs and no curves: a record vggnp wrote,
    so --resume finds the image done and no line is skipped (the ledger's check required
    all four fields and skipped every such record)."""
    out = tmp_path / "out"
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out), "--metric"]) == 0
    assert len(ResultsFile(str(out)).done()) == 1
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out), "--metric", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "1 of 1 image(s) already done" in err and "skipped" not in err.split("--resume")[0]


def test_resume_explains_again_what_another_method_or_rule_made(tmp_path, capsys):
    """--resume skips an image only if its record has this run's --method (and lrp's
    --rule, --epsilon, --gamma, as given): another explains it again, and says so."""
    run = [SHAPES[0], *ARGS, "--out", str(tmp_path)]

    def resumed(*options):
        capsys.readouterr()
        assert cam.main([*run, "--resume", *options]) == 0
        err = capsys.readouterr().err
        (record,) = ResultsFile(str(tmp_path)).done().values()
        return err, record
    assert cam.main([*run, "--method", "lrp", "--rule", "z_plus"]) == 0
    err, record = resumed("--method", "lrp", "--rule", "z_plus")
    assert "1 of 1 image(s) already done, skipped" in err and "again" not in err
    for options, rule in ((("--method", "lrp", "--rule", "epsilon"), "epsilon"),
                          (("--method", "lrp", "--rule", "epsilon", "--epsilon", "0.5"),
                           "epsilon"),
                          ((), None)):  # gradcam
        err, record = resumed(*options)
        assert "0 of 1 image(s) already done" in err, options
        assert "1 image(s) done with another --method (or lrp --rule, --epsilon, --gamma) " \
            "are explained again" in err
        assert record["method"] == ("lrp" if rule else "gradcam")
        assert (record.get("rule") or {}).get("name") == rule
    assert record["outputs"]["overlay"].endswith("_cam.jpg")
    assert os.path.exists(record["outputs"]["overlay"])
