"""#27: the results file is a ledger that vggnp reads back as untrusted input: a line cut
by a crash does not swallow the next record, records of the wrong shape are skipped and
counted, and a FIFO or a symbolic link in its place is refused, never followed or hung on."""

import json
import os
import subprocess
import sys

import pytest

from helpers import LABELS_PATH, MODEL_PATH, ROOT, SHAPES, run_cam
from vggnp.cam import run as cam
from vggnp.files.results import RESULTS_NAME, ResultsFile, valid_record

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
    its input's stamp (a missing input would count as done), outputs outside --out, an
    over-long line; and
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
    # Neither the forged stamp-less success nor the last record of SHAPES[0], whose
    # outputs are a FIFO and /etc/hostname (outside --out), counts as done.
    assert "0 of 2 image(s) already done" in err
    assert (out / "report.html").is_file()
    from vggnp.viz.report import _inline_bytes
    overlay = good["outputs"]["overlay"]
    assert _inline_bytes(overlay, str(out)) == open(overlay, "rb").read()
    for elsewhere in (str(out / "fifo"), "/etc/hostname", "/dev/zero",
                      str(out / ".." / "out" / ".." / "elsewhere.txt")):
        assert _inline_bytes(elsewhere, str(out)) is None, elsewhere


def test_stdin_that_is_not_a_list_of_paths(tmp_path):
    """A new user's trial: an image piped to '-' (cat photo.jpg |) made 132 'no such file'
    lines and failed records; a closed stdin was an internal error; a Windows line end
    was kept in the name."""
    run = [sys.executable, "-m", "vggnp.cam", "-", *ARGS, "--out", str(tmp_path / "out")]
    with open(SHAPES[0], "rb") as image:
        result = subprocess.run(run, stdin=image, capture_output=True, text=True,
                                timeout=120, cwd=ROOT)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.strip() == (
        "vggnp.cam: -: stdin is not a list of paths (line 3 holds a NUL byte: image data?); "
        "'-' reads the paths of images, one a line")
    closed = subprocess.run(run, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=120, cwd=ROOT, preexec_fn=lambda: os.close(0))
    assert closed.returncode == 1 and closed.stderr.strip() == (
        "vggnp.cam: -: stdin is closed; '-' reads the paths to explain from it, one a line")
    windows = subprocess.run(run, input=(SHAPES[0] + "\r\n").encode(), capture_output=True,
                             timeout=120, cwd=ROOT)
    assert windows.returncode == 0, windows.stderr
