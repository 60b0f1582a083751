"""#27: the outputs a run writes and the records that name them: a second run replaces
only its own files, an output is on disk (synced) before its record, a run killed with
-9 or failing between the two is finished by --resume, and a failed write keeps the file
it replaced."""

import json
import os
import shutil
import subprocess
import sys
import time

from helpers import LABELS_PATH, MODEL_PATH, ROOT, SHAPES, run_cam
from vggnp.cam import outputs as cam_outputs
from vggnp.cam import run as cam
from vggnp.files.results import RESULTS_NAME, ResultsFile, own_outputs, valid_record

ARGS = ["--model", MODEL_PATH, "--labels", LABELS_PATH, "--quiet"]


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
        assert "1 image(s) done another way (--method, lrp's --rule, --epsilon, --gamma, " \
            "--model, --class, --layer, --target or --preprocess) are explained again" in err
        assert record["method"] == ("lrp" if rule else "gradcam")
        assert (record.get("rule") or {}).get("name") == rule
    assert record["outputs"]["overlay"].endswith("_cam.jpg")
    assert os.path.exists(record["outputs"]["overlay"])


def test_resume_explains_again_what_another_model_or_class_made(tmp_path, capsys):
    """A new user's trial: --resume took an image explained by another model (a copy
    with the dense layer negated: another top class) or for another --class as done,
    and the map asked for was never made (exit 0)."""
    run = [SHAPES[0], "--labels", LABELS_PATH, "--quiet", "--out", str(tmp_path)]
    other = tmp_path / "other.keras"
    shutil.copyfile(MODEL_PATH, other)
    assert cam.main([*run, "--model", MODEL_PATH]) == 0
    for options in (("--model", MODEL_PATH, "--class", "2"), ("--model", str(other)),
                    ("--model", MODEL_PATH, "--layer", "conv2d_10")):
        capsys.readouterr()
        assert cam.main([*run, "--resume", "--overwrite", *options]) == 0
        assert "0 of 1 image(s) already done" in capsys.readouterr().err, options
        (record,) = ResultsFile(str(tmp_path)).done().values()
        assert record["asked"]["model"][0] == os.path.abspath(options[1])
    assert cam.main([*run, "--resume", "--model", MODEL_PATH, "--layer", "conv2d_10"]) == 0
    assert "1 of 1 image(s) already done, skipped" in capsys.readouterr().err
    for stamp, done in ((None, "0 of 1"), (None, "1 of 1"), ((1, 1), "0 of 1")):
        if stamp:
            os.utime(other, ns=stamp)  # the same name, another file: another model
        assert cam.main([*run, "--resume", "--overwrite", "--model", str(other)]) == 0
        assert f"{done} image(s) already done" in capsys.readouterr().err, stamp


def test_a_record_naming_files_outside_the_folder_is_not_done(tmp_path, capsys):
    """The results file is untrusted input: a record whose outputs are elsewhere (present,
    but not in --out) does not make --resume skip the image; a folder reached through a
    link is the same folder."""
    out, link = tmp_path / "out", tmp_path / "link"
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out)]) == 0
    link.symlink_to(out)
    assert list(ResultsFile(str(link)).done()) == [os.path.abspath(SHAPES[0])]
    ledger = out / RESULTS_NAME
    record = json.loads(ledger.read_text().splitlines()[-1])
    elsewhere = tmp_path / "elsewhere.jpg"
    elsewhere.write_bytes(b"x")
    ledger.write_text(json.dumps(dict(record, outputs={"overlay": str(elsewhere)})) + "\n")
    assert ResultsFile(str(out)).done() == {}
    capsys.readouterr()
    assert cam.main([SHAPES[0], *ARGS, "--out", str(out), "--resume", "--overwrite"]) == 0
    assert "0 of 1 image(s) already done" in capsys.readouterr().err
    assert elsewhere.read_bytes() == b"x"
    # A link inside the folder is the folder's: thumbnails kept on another disk
    # (a reviewer's finding: every --resume redid every image).
    other = tmp_path / "other"
    other.mkdir()
    (other / "t.jpg").write_bytes(b"x")
    (out / "thumbs").symlink_to(other)
    for written in (out, link):  # as a run given --out one way or the other wrote it
        ledger.write_text(json.dumps(dict(record, outputs={
            "overlay": str(written / "thumbs" / "t.jpg")})) + "\n")
        for read in (out, link):
            assert list(ResultsFile(str(read)).done()) == [os.path.abspath(SHAPES[0])]
