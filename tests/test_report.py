"""The HTML report (issue #17): what the page holds, escaping, size; and, in headless
Chromium (Debian's package, driven by Playwright), that it renders: every picture decoded,
no request leaving file://, no console error, sorting, the filter, a page that is not
blank."""

import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import (MODEL, ROOT, SHAPES, interruptible, reference_module, reference_program,
                     run_cam, run_module)

from vggnp.methods.registry import METHODS
from vggnp.viz.report import REPORT_NAME, write_report

HOSTILE = "<img src=x onerror=alert(1)>.png"
IN_WINDOW_LOADED = ("Array.from(document.images).filter(i => i.getBoundingClientRect().top "
                    "< window.innerHeight).every(i => i.complete)")


class Browser:
    """One headless Chromium page with everything it did recorded: the URLs it requested,
    console errors and uncaught exceptions, dialogs (an alert() would be one)."""

    def __init__(self, playwright, height=4000):
        self.browser = playwright.chromium.launch(executable_path=reference_program(
                                                      "chromium", "chromium-browser"),
                                                  args=["--no-sandbox"])
        self.page = self.browser.new_page(viewport={"width": 1400, "height": height})
        self.requests, self.errors, self.dialogs = [], [], []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def open(self, path):
        """Go to the page; wait until the pictures in the window are loaded (those below
        it load lazily, as the reader scrolls: the window is made tall enough to hold
        every picture where a test counts them)."""
        self.page.goto(Path(path).resolve().as_uri())
        self.page.wait_for_load_state("load")
        self.page.wait_for_function(IN_WINDOW_LOADED, timeout=20000)
        return self.page

    def widths(self):
        return self.page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")


@pytest.fixture(scope="module")
def playwright():
    sync_api = reference_module("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A --report run on the shapes model: three shapes and one with a hostile name, with
    --metric, --box, --trace, --diagnose and --report-all-methods."""
    folder = tmp_path_factory.mktemp("report")
    inputs = folder / "in"
    inputs.mkdir()
    for path in SHAPES:
        shutil.copy(path, inputs)
    shutil.copy(SHAPES[2], inputs / HOSTILE)
    result = run_cam(str(inputs), *MODEL, "--out", str(folder / "out"), "--report", "--metric",
                     "--box", "--trace", "--diagnose", "--report-all-methods", "--quiet")
    assert result.returncode == 0, result.stderr
    return folder / "out", result


def images_block(html_text):
    start = html_text.index('<script id="images" type="application/json">') + 44
    return json.loads(html_text[start:html_text.index("</script>", start)])


def test_the_page_holds_every_image_escaped(run_folder):
    out, result = run_folder
    assert f"report: {out / REPORT_NAME}" in result.stderr
    text = (out / REPORT_NAME).read_text(encoding="utf-8")
    assert "<img src=x" not in text  # only as \u003cimg or &lt;img
    images = images_block(text)
    names = ["circle.png", "square.png", "triangle.png", HOSTILE]  # relative to the folder
    assert sorted(i["name"] for i in images) == sorted(names)
    assert sorted(i["full"] for i in images) == sorted(str(out.parent / "in" / n) for n in names)
    hostile = next(i for i in images if i["name"].endswith(HOSTILE))
    assert "%3Cimg%20src%3Dx" in hostile["photo_link"]  # URL-encoded relative path
    for image in images:
        assert len(image["methods"]) == len(METHODS) and len(image["deletion"]) == 21
        assert image["box"] and image["top"]
        assert any(note.startswith("suggestion: ") for note in image["notes"])  # --diagnose
        assert not any(os.path.isabs(image[k]) for k in ("photo", "thumb", "overlay"))
        assert image["thumb"].startswith("thumbnails/")  # in a subfolder of --out
    assert "multiply-adds" in text.lower()  # the --trace tables


def test_a_report_of_1000_images_is_under_2_mb(tmp_path):
    """The page of 1,000 images (records as a --metric --box run writes them) stays small:
    the pictures are linked, not embedded."""
    record = {"image": "", "path": "", "class": {"index": 281, "name": "tabby", "score": 0.61},
              "top": [{"index": i, "name": f"class {i}", "score": 0.1} for i in range(5)],
              "method": "gradcam", "layer": "block5_conv3", "empty": False, "notes": [],
              "box": [10, 20, 200, 180], "deletion_auc": 0.1, "insertion_auc": 0.7,
              "deletion_curve": [0.5] * 21, "insertion_curve": [0.5] * 21}
    records = []
    for n in range(1000):
        base = tmp_path / f"photo_{n:04d}_tabby_cam"
        records.append(record | {"image": f"photos/photo_{n:04d}.jpg",
                                 "path": str(tmp_path / f"photos/photo_{n:04d}.jpg"),
                                 "outputs": {k: f"{base}{s}" for k, s in [
                                     ("overlay", ".jpg"), ("thumbnail", "_thumb.jpg"),
                                     ("photo_thumbnail", "_input_thumb.jpg")]}})
    path = write_report(tmp_path, records, {"title": "t", "rows": []})
    size = os.path.getsize(path)
    print(f"{size:,} bytes")
    assert size < 2_000_000
    assert len(images_block(Path(path).read_text(encoding="utf-8"))) == 1000


def test_inline_report_refuses_a_large_run(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(21):
        shutil.copy(SHAPES[n % 3], folder / f"{n}.png")
    result = run_cam(str(folder), *MODEL, "--out", str(tmp_path / "out"), "--report",
                     "--report-inline")
    assert result.returncode == 2 and "at most 20 images, not 21" in result.stderr
    assert not (tmp_path / "out").exists()  # a usage error makes no folder
    result = run_cam(SHAPES[0], *MODEL, "--out", str(tmp_path / "out"), "--report-inline")
    assert result.returncode == 2 and "go with --report" in result.stderr


def test_the_report_renders_in_chromium(run_folder, playwright, tmp_path):
    out, _ = run_folder
    browser = Browser(playwright)
    page = browser.open(out / REPORT_NAME)
    widths = browser.widths()
    assert len(widths) == 4 * (2 + len(METHODS)) and all(w > 0 for w in widths), widths
    assert all(url.startswith("file://") for url in browser.requests), browser.requests
    assert browser.errors == [] and browser.dialogs == []
    names = page.locator("#list h3").all_text_contents()
    assert any(name.endswith(HOSTILE) for name in names)  # shown as text, not an element
    assert page.locator('img[src="x"]').count() == 0
    assert names == sorted(names, key=lambda n: n)  # sorted by file name by default
    assert page.locator("svg.curves polyline").count() == 2 * 4
    assert "forward" in page.locator("pre").first.text_content().lower()

    page.select_option("#sort", "score")
    scores = [float(s) for s in page.locator("#list section .bars li:first-child .score")
              .all_text_contents()]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)
    images = images_block((out / REPORT_NAME).read_text(encoding="utf-8"))
    page.fill("#filter", "TRI")  # case-insensitive, part of the class name
    expected = sorted(i["name"] for i in images if "tri" in i["class"].lower())
    assert 0 < len(expected) < 4
    assert sorted(page.locator("#list h3").all_text_contents()) == expected
    page.fill("#filter", "no such class")
    assert page.locator("#list section").count() == 0
    assert page.locator("#where").text_content().startswith("0-0 of 0 image(s)")

    page.fill("#filter", "")
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB"))
    Image.fromarray(shot).save(tmp_path / "report.png")
    assert shot.std() > 20 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 500
    browser.browser.close()


def test_an_inline_report_is_one_file(playwright, tmp_path):
    """--report-inline, 3 images: report.html alone, moved elsewhere, shows every picture
    (data URIs) and requests nothing but itself."""
    result = run_cam(*SHAPES, *MODEL, "--out", str(tmp_path / "out"), "--report",
                     "--report-inline", "--quiet")
    assert result.returncode == 0, result.stderr
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(tmp_path / "out" / REPORT_NAME, alone)
    browser = Browser(playwright)
    browser.open(alone / REPORT_NAME)
    widths = browser.widths()
    assert len(widths) == 3 * 2 and all(w > 0 for w in widths), widths
    assert {url for url in browser.requests if not url.startswith("data:")} == \
        {(alone / REPORT_NAME).as_uri()}
    assert browser.errors == [] and browser.dialogs == []
    browser.browser.close()


def test_a_report_of_1000_images_opens_on_its_first_page(playwright, tmp_path):
    """1,000 records: the page shows 50, says how many there are, and pages on."""
    thumb = tmp_path / "t.jpg"
    Image.new("RGB", (32, 32), "red").save(thumb)
    records = [{"image": f"p{n:04d}.jpg", "path": str(tmp_path / f"p{n:04d}.jpg"),
                "class": {"index": n % 7, "name": f"class {n % 7}", "score": (n % 97) / 97},
                "top": [{"index": n % 7, "name": f"class {n % 7}", "score": (n % 97) / 97}],
                "method": "gradcam", "outputs": {"overlay": str(thumb),
                                                 "thumbnail": str(thumb)}}
               for n in range(1000)]
    browser = Browser(playwright, height=800)
    page = browser.open(write_report(tmp_path, records, {"title": "t", "rows": []}))
    assert page.locator("#list section").count() == 50
    assert page.locator("#where").text_content() == "1-50 of 1000 image(s), page 1 of 20"
    page.click("#next")
    assert page.locator("#list h3").first.text_content() == "p0050.jpg"
    assert browser.errors == []
    browser.browser.close()


def test_sanity_report_renders(playwright, tmp_path):
    result = run_module("vggnp.sanity", SHAPES[2], *MODEL, "--out", str(tmp_path),
                        "--report", "--no-independent")
    assert result.returncode == 0, result.stderr
    browser = Browser(playwright)
    page = browser.open(tmp_path / REPORT_NAME)
    assert browser.widths() and all(w > 0 for w in browser.widths())
    assert "gradcam" in page.locator("table").nth(1).text_content()
    assert browser.errors == [] and browser.dialogs == []
    browser.browser.close()


def test_odd_file_names_are_linked_by_their_bytes(tmp_path):
    """Names with #, ?, %, a space and a byte that is not UTF-8: the report is written,
    shows the name with an escape, and links the file by its bytes, percent-encoded."""
    folder = os.fsencode(tmp_path / "in")
    os.mkdir(folder)
    name = b"a #1?%20 \xff.png"
    shutil.copy(SHAPES[0], os.path.join(folder, name))
    result = run_cam(os.fsdecode(folder), *MODEL, "--out", str(tmp_path / "out"), "--report",
                     "--quiet")
    assert result.returncode == 0, result.stderr
    (image,) = images_block((tmp_path / "out" / REPORT_NAME).read_text(encoding="utf-8"))
    assert image["name"].endswith("a #1?%20 \\xff.png")
    assert image["photo_link"].endswith("in/a%20%231%3F%2520%20%FF.png")


def test_an_image_done_before_report_has_no_thumbnails(tmp_path):
    """docs/folders.md: an image done without --report, then skipped by --resume --report,
    has no thumbnails: its card shows the full-size overlay and no photo."""
    from vggnp.cam import run as cam
    out = tmp_path / "out"
    assert cam.main([SHAPES[0], *MODEL, "--out", str(out), "--quiet"]) == 0
    assert cam.main([SHAPES[0], SHAPES[1], *MODEL, "--out", str(out), "--quiet", "--resume",
                     "--report"]) == 0
    earlier, later = sorted(images_block((out / REPORT_NAME).read_text(encoding="utf-8")),
                            key=lambda i: i["name"] != os.path.basename(SHAPES[0]))
    assert earlier["photo"] is None and not earlier["thumb"].startswith("thumbnails/")
    assert earlier["thumb"] == earlier["overlay"]
    assert later["photo"] and later["thumb"].startswith("thumbnails/")


def test_a_method_that_fails_leaves_no_listed_output(tmp_path, monkeypatch, capsys):
    """--report-all-methods: a method that raises for an image is a note, and the results
    file lists only outputs that exist."""
    from vggnp.cam import image as cam_image, run as cam
    real = cam_image._map_of

    def failing(args, run, out, result, method):
        if method == "eigencam":
            raise RuntimeError("broken on purpose")
        return real(args, run, out, result, method)
    monkeypatch.setattr(cam_image, "_map_of", failing)
    assert cam.main([SHAPES[1], *MODEL, "--out", str(tmp_path), "--report",
                     "--report-all-methods", "--quiet", "--json"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "map_eigencam" not in record["outputs"]
    assert len(record["outputs"]) == 1 + 2 + len(METHODS) - 1  # results, overlay, report
    assert all(os.path.exists(path) for path in record["outputs"].values())
    assert any("no eigencam map (broken on purpose)" in note for note in record["notes"])


def test_an_interrupted_run_writes_the_report_of_what_is_done(vgg16_file, tmp_path):
    """Ctrl-C mid-run: exit 130, and report.html lists exactly the images the results file
    lists (the ones done)."""
    import signal
    import subprocess
    cat = os.path.join(ROOT, "examples", "chelsea.jpg")
    (tmp_path / "in").mkdir()
    paths = []
    for n in range(10):
        paths.append(str(tmp_path / "in" / f"cat_{n}.jpg"))
        shutil.copy(cat, paths[-1])
    run = subprocess.Popen([sys.executable, "-m", "vggnp.cam", *paths, "--weights", vgg16_file,
                            "--out", str(tmp_path / "out"), "--batch-size", "1", "--json",
                            "--report"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd=ROOT, preexec_fn=interruptible)
    run.stdout.readline()  # one image done
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130 and "Traceback" not in err, err
    assert f"report: {tmp_path / 'out' / REPORT_NAME}" in err
    with open(tmp_path / "out" / "vggnp-results.jsonl", encoding="utf-8") as f:
        done = {json.loads(line)["image"] for line in f}
    images = images_block((tmp_path / "out" / REPORT_NAME).read_text(encoding="utf-8"))
    assert {i["full"] for i in images} == done and 1 <= len(done) < 10


def test_the_summary_links_failures_and_the_map_opens_large(playwright, tmp_path):
    """#26.8: the top of the page says how many images are done and failed, lists each
    failure with its reason, linked to its card (on whatever page of the list it is); a
    click or Enter on an overlay opens the map large in a dialog, Escape closes it; the
    colour bar is there; names are relative to the input folder, the full path on hover."""
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(60):
        shutil.copy(SHAPES[n % 3], folder / f"{n:02d}.png")
    (folder / "zz_broken.png").write_bytes(b"not a png")
    result = run_cam(str(folder), *MODEL, "--out", str(tmp_path / "out"), "--report",
                     "--quiet")
    assert result.returncode == 1, result.stderr
    browser = Browser(playwright, height=900)
    page = browser.open(tmp_path / "out" / REPORT_NAME)
    assert page.locator("p.summary").text_content() == (
        "61 image(s) in the folder's results file: 60 done, 1 failed")
    assert page.locator(".colour-bar").count() == 1
    failure = page.locator("ul.failures li")
    assert failure.count() == 1 and failure.text_content().startswith("zz_broken.png: ")
    failure.locator("a").click()  # on the list's second page
    card = page.locator("#list section.failed")
    assert card.count() == 1 and card.is_visible()
    assert card.locator("h3").get_attribute("title") == str(folder / "zz_broken.png")
    assert page.locator("#where").text_content().startswith("51-61 of 61")
    page.locator("#list section:not(.failed) button.open").first.click()
    dialog = page.locator("dialog#large")
    assert dialog.is_visible() and dialog.locator("img").evaluate("i => i.naturalWidth") > 0
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    page.locator("#list section:not(.failed) button.open").first.focus()
    page.keyboard.press("Enter")
    assert dialog.is_visible()
    assert browser.errors == [] and browser.dialogs == []
    page.screenshot(path=str(tmp_path / "large.png"))
    browser.browser.close()


def test_a_report_replaces_only_its_own_commands(tmp_path):
    """--report replaced any report.html in --out (a user's own page, or vggnp.cam's report
    by vggnp.sanity's) without --overwrite: now only a page its own command wrote; another
    file is kept, the run says so (exit 4), and --overwrite replaces it."""
    from vggnp.viz.report import write_sanity_report
    page = tmp_path / REPORT_NAME
    page.write_text("my own notes")
    records = [{"image": "a.jpg", "path": str(tmp_path / "a.jpg"), "error": "unreadable"}]
    with pytest.raises(FileExistsError, match="exists and was not written by this command: "
                                              "pass --overwrite"):
        write_report(tmp_path, records, {"title": "t", "rows": []})
    assert page.read_text() == "my own notes"
    write_report(tmp_path, records, {"title": "t", "rows": []}, overwrite=True)
    write_report(tmp_path, records, {"title": "t", "rows": []})  # its own: replaced
    found = {"outputs": {"grid": str(tmp_path / "grid.png")}, "verdicts": []}
    with pytest.raises(FileExistsError):
        write_sanity_report(tmp_path, found, {"title": "s", "rows": []})
    assert 'content="vggnp.cam report"' in page.read_text()
    result = run_cam(SHAPES[0], *MODEL, "--out", str(tmp_path), "--report", "--quiet")
    assert result.returncode == 0, result.stderr  # vggnp.cam's page: replaced
    page.write_text("mine again")
    result = run_cam(SHAPES[1], *MODEL, "--out", str(tmp_path), "--report", "--quiet")
    assert result.returncode == 4 and "was not written by this command" in result.stderr
    assert page.read_text() == "mine again"
