"""An HTML report of a run that opens from disk in any browser, with no server and no
network: one page, plain HTML + CSS + a little vanilla JavaScript, all inside the file.

    write_report(folder, records, run)               # -> <folder>/report.html
    write_sanity_report(folder, found, run)

records: one dict per image, as the results file ``vggnp-results.jsonl`` holds them
(``vggnp.files.results.ResultsFile``). The images travel as one JSON block that the page's script
(``data/report.js``) shows 50 at a time, sorted and filtered in the browser; pictures are
linked by relative, URL-encoded path (small thumbnails; the full-size outputs one click
away), so a report of thousands of images stays small. With ``inline``, pictures are
data URIs instead: one self-contained file, for a few images (``INLINE_LIMIT``).

Everything that comes from outside (file names, class names, labels, notes, the command
line) is escaped: ``html.escape`` here, ``textContent`` in the script. File names that are
not UTF-8 (kept by Python as lone surrogates) are shown with ``\\xff`` escapes and linked
by their bytes, percent-encoded.
"""

import base64
import html
import json
import math
import os
import stat
from importlib import resources
from urllib.parse import quote

from ..methods.attribution import completeness_warning
from ..methods.empty_maps import empty_map_message
from ..methods.registry import METHODS
from .colour_keys import colour_keys
from ..files.outputs import replace_own
from ..files.results import last_successes

REPORT_NAME = "report.html"
INLINE_LIMIT = 20       # --report-inline: above this many images the file would be huge
THUMBNAIL_SIDE = 320    # the pictures shown on the page, longer side in pixels
SUMMARY_FAILURES = 100  # failures listed by name at the top of the page
MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


def write_report(folder, records, run, inline=False, overwrite=False):
    """Write ``<folder>/report.html`` for ``records`` (the results file's lines: the last
    line of each input counts), replacing one that vggnp.cam wrote (another file only with
    ``overwrite``: ``files.outputs.replace_own``). run: {"title", "rows": [(label, value)],
    "trace": text or None}. Returns its path."""
    shown = shown_records(records)
    base = _common_folder([r.get("path", "") for r in shown])
    images = [dict(image_entry(record, folder, inline), id=k,
                   name=shown_text(_relative(record.get("path", ""), base)))
              for k, record in enumerate(shown)]
    sections = [summary_section(images)]
    if run.get("trace"):
        sections.append(f"<h2>Trace</h2>\n<pre>{html.escape(run['trace'])}</pre>")
    return _write_page(folder, dict(run, generator="vggnp.cam"), sections, images, overwrite)


def write_sanity_report(folder, found, run, overwrite=False):
    """``<folder>/report.html`` of a sanity check (found: ``vggnp.sanity.report``'s JSON
    report): the grid picture, the verdicts and each step's similarities."""
    sections = [f'<h2>Maps as layers are randomised</h2>\n<img class="grid" src="'
                f'{_link(found["outputs"]["grid"], folder, False)}" alt="the sanity grid">',
                "<h2>Verdicts</h2>\n<ul>" + "".join(f"<li>{html.escape(v)}</li>"
                                                  for v in found["verdicts"]) + "</ul>"]
    for kind in ("cascading", "independent"):
        if found.get(kind):
            sections.append(f"<h2>{kind.capitalize()} randomisation</h2>\n"
                            + _similarity_table(found[kind]))
    return _write_page(folder, dict(run, generator="vggnp.sanity"), sections, None, overwrite)


def shown_records(records):
    """One record per input path, as ``--resume`` counts them: its last success (a later
    run that failed because the outputs existed does not undo it), else its last line."""
    latest = {record["path"]: record for record in records}
    succeeded = last_successes(records)
    return [succeeded.get(path, record) for path, record in latest.items()]


def image_entry(record, folder, inline=False):
    """What the page's script needs of one image (every path a relative URL)."""
    outputs = record.get("outputs", {})
    shown_class = record.get("class", {})

    def link(key):
        return _link(outputs[key], folder, inline) if key in outputs else None
    entry = {"name": shown_text(record.get("image")), "full": shown_text(record.get("path")),
             "error": record.get("error"),
             "class": shown_class.get("name"), "index": shown_class.get("index"),
             "score": shown_class.get("score"), "method": record.get("method"),
             "layer": record.get("layer"),
             "top": [[t.get("name", str(t.get("index"))), t.get("score", 0.0)]
                     for t in record.get("top", [])],
             "photo": link("photo_thumbnail"), "thumb": link("thumbnail") or link("overlay"),
             "overlay": None if inline else link("overlay"),
             "photo_link": None if inline else _link(record.get("path"), folder, False),
             "panel": None if inline else link("panel"), "box": record.get("box"),
             "notes": record.get("notes", []) + _diagnosis(record),
             "warnings": warnings_of(record)}
    if "deletion_curve" in record:
        entry.update(deletion=record["deletion_curve"], insertion=record["insertion_curve"],
                     auc=[record["deletion_auc"], record["insertion_auc"]])
    methods = [(key[len("map_"):], link(key)) for key in outputs if key.startswith("map_")]
    if methods:
        entry["methods"] = methods
    return entry


def summary_section(images):
    """The top of the page: how many images the results file lists, done and failed, each
    failure with its reason and a link to its card, and the colours of the maps."""
    failed = [image for image in images if image["error"]]
    items = "".join(f'<li><a href="#image-{image["id"]}">{html.escape(image["name"])}</a>: '
                    f'{html.escape(shown_text(image["error"]))}</li>'
                    for image in failed[:SUMMARY_FAILURES])
    more = len(failed) - SUMMARY_FAILURES
    if more > 0:
        items += f"<li>and {more} more (sort or filter the list below)</li>"
    listing = f'<ul class="failures">{items}</ul>' if failed else ""
    return (f'<h2>Summary</h2>\n<p class="summary">{len(images)} image(s) in the folder\'s '
            f'results file: {len(images) - len(failed)} done, '
            f'<span class="{"error" if failed else ""}">{len(failed)} failed</span></p>'
            f'{listing}\n{colour_keys(images)}')



def _common_folder(paths):
    """The deepest folder holding every path (shown names are relative to it), or ""."""
    folders = [os.path.dirname(p) for p in paths if isinstance(p, str) and os.path.isabs(p)]
    try:
        return os.path.commonpath(folders) if len(folders) == len(paths) and folders else ""
    except ValueError:  # paths on different drives (Windows)
        return ""


def _relative(path, base):
    return os.path.relpath(path, base) if base and isinstance(path, str) else str(path)


def warnings_of(record):
    """The warnings the command line said about this image, as sentences."""
    found = []
    if record.get("empty") and record.get("method") in METHODS:  # a method of this version
        shown_class = record.get("class", {})
        ranked = record.get("top") or [{}]
        top = shown_class.get("index") is not None and \
            ranked[0].get("index") == shown_class.get("index") and \
            (len(ranked) < 2 or ranked[1].get("score") != ranked[0].get("score"))
        found.append(empty_map_message(record.get("method"), f"{shown_class.get('name')} "
                                       f"({shown_class.get('index')})", record.get("layer"),
                                       top=top, cli=True))
    missed = completeness_warning(record.get("completeness"))
    if missed:
        found.append(f"integrated gradients: {missed}")
    return found


def _diagnosis(record):
    """--diagnose's lines and suggestion, as notes."""
    found = record.get("diagnose")
    if not found:
        return []
    return [f"diagnose: {line}" for line in found["lines"]] + [
        f"suggestion: {found['suggestion']}"]


def _link(path, folder, inline):
    """A URL for the file ``path`` from a page in ``folder``: relative and URL-encoded,
    or (inline) a data URI of its bytes; None if there is no such file."""
    if not path:
        return None
    if inline:
        data = _inline_bytes(path, folder)
        if data is None:
            return None
        data = base64.b64encode(data).decode("ascii")
        mime = MIME.get(os.path.splitext(path)[1].lower(), "application/octet-stream")
        return f"data:{mime};base64,{data}"
    return quote(os.fsencode(os.path.relpath(os.path.abspath(path), os.path.abspath(folder))))


MAX_INLINE_BYTES = 64 << 20  # a picture of vggnp's is a few MB at most


def _inline_bytes(path, folder):
    """The bytes of an output to embed (--report-inline), or None: only a regular file
    inside ``folder`` (a record may name any path: never a FIFO, a device, a link or a
    file elsewhere on the machine), at most MAX_INLINE_BYTES."""
    try:
        real, home = os.path.realpath(path), os.path.realpath(folder)
        if os.path.commonpath([real, home]) != home:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except (OSError, ValueError):
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_INLINE_BYTES:
            return None
        return f.read(MAX_INLINE_BYTES + 1)


def shown_text(value):
    """``value`` as text for the page: a name that is not UTF-8 (lone surrogates, as
    Python decodes such file names) with its odd bytes as \\xNN escapes."""
    return str(value).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _write_page(folder, run, sections, images, overwrite):
    path = os.path.join(folder, REPORT_NAME)
    page = _page(run, sections, images)
    # surrogates left anywhere (a note quoting a file name) become \udcff, not an error
    replace_own(path, lambda f: f.write(page.encode("utf-8", "backslashreplace")),
                _generator(run["generator"]).encode(), overwrite)
    return path


def _generator(command):  # the page's mark of its command, which replace_own looks for
    return f'<meta name="generator" content="{command} report">'


def _page(run, sections, images):
    """The whole HTML document. images: the entries for the script, or None (no list)."""
    rows = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(shown_text(value))}"
                   f"</td></tr>" for label, value in run.get("rows", []))
    listing = ""
    if images is not None:
        listing = f"""
<h2>Images</h2>
<div class="controls">
  <label>Class <input id="filter" type="search" placeholder="filter by class name"></label>
  <label>Sort by <select id="sort">
    <option value="name">file name</option><option value="class">class</option>
    <option value="score">score (highest first)</option></select></label>
  <button id="previous" type="button">previous</button>
  <button id="next" type="button">next</button>
  <span id="where"></span>
</div>
<div id="list"></div>
<dialog id="large" aria-label="the map, large"></dialog>
<script id="images" type="application/json">{_json_in_html(images)}</script>
<script>{_asset("report.js")}</script>"""
    title = html.escape(run.get("title", "vggnp report"))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{_generator(run["generator"])}
<title>{title}</title>
<style>{_asset("report.css")}</style>
</head>
<body>
<h1>{title}</h1>
<table class="run">{rows}</table>
{chr(10).join(sections)}{listing}
</body>
</html>
"""


def _json_in_html(value):
    """JSON that cannot end its <script> block early: <, > and & as \\u escapes."""
    text = json.dumps(_finite(value), ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(value):
    """``value`` with NaN and infinities as None: JSON.parse refuses them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _similarity_table(steps):
    """Rows = steps (the layers randomised so far), columns = each method's Spearman and
    SSIM with its original map."""
    methods = list(steps[0]["spearman"])
    head = "".join(f"<th>{html.escape(m)} Spearman</th><th>{html.escape(m)} SSIM</th>"
                   for m in methods)
    rows = "".join(
        f"<tr><td>{html.escape(', '.join(step['randomised']))}</td>"
        + "".join(f"<td>{_number(step['spearman'].get(m))}</td>"
                  f"<td>{_number(step.get('ssim', {}).get(m))}</td>" for m in methods)
        + "</tr>" for step in steps)
    return f'<table class="run"><tr><th>randomised</th>{head}</tr>{rows}</table>'


def _number(value):
    return "-" if value is None else f"{value:.2f}"


def _asset(name):
    return resources.files("vggnp").joinpath("data", name).read_text(encoding="utf-8")
