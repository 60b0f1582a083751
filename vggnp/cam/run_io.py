"""The main command's input and output streams: which files a run takes (files, folders,
``-`` for a list on stdin), the report on stdout (lines or JSON Lines, as each image is
done), one-line messages and the progress line on stderr, and the results file as it is
read back. Nothing here fails the run with a traceback: a closed or full stdout is
noticed and reported once, and a closed stderr swallows messages rather than move them to
stdout.
"""

import io
import itertools
import json
import os
import sys
import threading
import time

from ..cli_lines import say, silence_stdout
from ..files.errors import LINE_LIMIT, printable
from ..files.images import ImageError, check_file
from ..files.results import ResultsFile
from .outputs import method_title

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".tif",
                    ".tiff", ".bmp", ".dib", ".ppm", ".pgm", ".pbm", ".mpo", ".heic", ".heif")


def expand_inputs(items, recursive=False, stdin=None):
    """The image paths named by ``items``: files as given (whatever their name), the image
    files of a folder (sorted; its subfolders too with ``recursive``), and for ``-`` one
    path per line of stdin. Returns (paths, the files skipped in folders as not images, the
    folders that hold no image, why a list on stdin was cut short)."""
    paths, skipped, empty, refused = [], [], [], []
    for item in items:
        if item == "-":  # bytes, decoded as file names are: any name on disk comes through
            stdin = stdin or (sys.stdin.buffer if sys.stdin is not None else None)
            found, problem = stdin_paths(stdin) if stdin else (
                [], "-: stdin is closed; '-' reads the paths to explain from it, one a line")
            paths += found
            refused += [problem] if problem else []
        elif os.path.isdir(item):
            found, other = _folder_images(item, recursive)
            paths += found
            skipped += other
            if not found:
                empty.append(item)
        else:
            paths.append(item)  # a missing or odd file says why when it is read
    return paths, skipped, empty, refused


def none_readable(paths):
    """[(path, ImageError)] for each of ``paths`` where not one of them can be read (a
    mistyped name, a URL, an empty file: the reader's checks, ``images.check_file``), so
    that the run does not load (or download) the weights for nothing; [] as soon as one can
    (the others then fail as they are read, in their turn)."""
    unreadable = []
    for path in paths:
        try:
            check_file(path)
            return []
        except ImageError as e:
            unreadable.append((path, e))
    return unreadable


PATH_MAX = 4096  # Linux's; a longer line cannot name a file


def stdin_paths(source):
    """The paths on ``source`` (a binary stream: bytes, decoded as file names are), one a
    line (a Windows line end, \\r\\n, ends one too), and None; or, at a line longer than
    PATH_MAX bytes (``- < /dev/zero``), the paths before it and why the rest is not read;
    at a NUL byte, which no path holds (an image piped in: ``cat photo.jpg |``), no path
    (its first lines were bytes of the image too) and why."""
    paths = []
    for number in itertools.count(1):
        line = source.readline(PATH_MAX + 1)
        if not line:
            return paths, None
        name = line.rstrip(b"\n").removesuffix(b"\r")
        if len(name) > PATH_MAX:
            return paths, (f"-: line {number} of stdin is longer than {PATH_MAX} bytes, not "
                           "a file name; the rest of stdin is not read")
        if b"\0" in name:
            return [], (f"-: stdin is not a list of paths (line {number} holds a NUL byte: "
                        "image data?); '-' reads the paths of images, one a line")
        if line.strip():
            paths.append(os.fsdecode(name))


def _folder_images(folder, recursive):
    found, other = [], []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        for name in sorted(files):
            if name.startswith("."):
                continue
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.join(root, name))
            else:
                other.append(os.path.join(root, name))
    return found, other


STALLED = 0.1  # seconds a write to stdout has waited when a stop finds stdout stalled


class StdoutLines:
    """The results on stdout as they come: a few lines per image, or one JSON object per
    line. ``broken`` turns True when stdout is closed, a broken pipe or full."""

    def __init__(self, as_json):
        self.as_json, self.broken = as_json, False

    def image(self, record):
        text = (json.dumps(record, ensure_ascii=False) if self.as_json else
                "\n".join(printable(line, LINE_LIMIT) for line in _lines(record)))
        self._write(text + "\n")

    def _write(self, text):
        if self.broken:
            return
        began = time.monotonic()
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except (OSError, ValueError, AttributeError):
            self.broken = True
            silence_stdout()
        except BaseException:  # a stop while the write waited for a pipe nobody reads:
            if time.monotonic() - began > STALLED:  # the exit's flush of what is left
                self.broken = True                  # would wait for ever
                silence_stdout()
            raise


def _lines(r):
    if "error" in r:
        return [r["image"], f"  failed: {r['error']}"]
    lines = [r["image"]]
    for rank, t in enumerate(r["top"], 1):
        source = f", {t['wnid']}" if "wnid" in t else ""
        lines.append(f"  {rank}. {t['name']:<28} {t['score']:.4f}  ({t['index']}{source})")
    if "deletion_auc" in r:
        lines.append(f"  faithfulness: deletion AUC {r['deletion_auc']:.3f} (lower is better), "
                     f"insertion AUC {r['insertion_auc']:.3f} (higher is better)")
    if "completeness" in r:
        c = r["completeness"]
        lines.append(f"  completeness: attributions sum to {c['attribution_sum']:.4g}, "
                     f"score(image) - score(baseline) = {c['score_difference']:.4g} "
                     f"(off by {100 * c['relative_error']:.2f} %)")
    title = method_title(r["method"])
    where = f" at {r['layer']}" if "layer" in r else ""
    # The report's thumbnails are listed in the JSON and the results file, not here.
    shown = [path for key, path in r["outputs"].items()
             if key not in ("thumbnail", "photo_thumbnail") and not key.startswith("map_")]
    lines.append(f"  {title} of {r['class']['name']}{where}: " + ", ".join(shown))
    return lines


class Progress:
    """One line on stderr, rewritten in place: done/total, images/s, ETA, failures, and
    what the current image is doing (Score-CAM channels, --metric steps). Off unless
    enabled; drawn at most 5 times a second. Into a file or a pipe (--progress with stderr
    redirected) a log has no use for a line drawn over itself: a plain line every 10 s
    and at the end, with no carriage return or terminal escape."""

    def __init__(self, total, enabled):
        self.total, self.enabled = total, enabled and sys.stderr is not None
        self.in_place = self.enabled and is_terminal(sys.stderr)
        self.every = 0.2 if self.in_place else 10.0
        # Held while the line is drawn or cleared for a message: the stream's worker
        # threads report Score-CAM's channels while this thread reports images.
        self.lock = threading.RLock()
        self.done = self.failed = 0
        self.started = self.drawn = time.monotonic()
        self.detail = ""

    def image_done(self, failed=False):
        self.done += 1
        self.failed += failed
        self.detail = ""
        self._draw(force=self.done == self.total)

    def step(self, what, done, total):
        self.detail = f"{what} {done}/{total}"
        self._draw(force=done == total and self.in_place)  # a log: each 10 s, no more

    def _draw(self, force=False):
        with self.lock:
            now = time.monotonic()
            if not self.enabled or (not force and now - self.drawn < self.every):
                return
            self.drawn = now
            self._write_line(now)

    def _write_line(self, now):
        rate = self.done / max(now - self.started, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else None
        eta = "?" if eta is None else f"{int(eta) // 60}:{int(eta) % 60:02d}"
        text = (f"{self.done}/{self.total} images, {rate:.2f} images/s, ETA {eta}, "
                f"{self.failed} failed" + (f"; {self.detail}" if self.detail else ""))
        try:
            sys.stderr.write(f"\r\x1b[K{text}" if self.in_place else text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            self.enabled = False

    def clear(self):
        """Blank the line, so that a message can be printed (hold ``lock`` across both);
        redrawn at the next update."""
        with self.lock:
            self._clear()

    def _clear(self):
        if self.in_place and self.enabled:
            try:
                sys.stderr.write("\r\x1b[K")
            except (OSError, ValueError):
                self.enabled = False

    def close(self):
        """End the line (before any other message, and at the end)."""
        if self.in_place and self.enabled and self.done:
            try:
                sys.stderr.write("\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
        self.enabled = False


def is_terminal(stream):
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError):
        return False


class Tee:
    """A text stream that writes to ``stream`` and keeps a copy (``text()``): --trace's
    tables on stderr and in the report."""

    def __init__(self, stream):
        self._stream, self._copy = stream, io.StringIO()

    def write(self, text):
        self._copy.write(text)
        if self._stream is not None:
            self._stream.write(text)

    def flush(self):
        if self._stream is not None:
            self._stream.flush()

    def text(self):
        return self._copy.getvalue()


class SaidResults(ResultsFile):
    """The results file, whose lines that are not vggnp's records are counted on stderr."""

    said = False

    def entries(self):
        found = super().entries()
        if self.skipped and not self.said:  # one note a run, however often it is read
            self.said = True
            say(f"vggnp.cam: note: skipped {self.skipped} line(s) of {self.path} that are not "
                "vggnp's records (damaged or edited)")
        return found


def read_results(folder):
    """The results file of ``folder``, to read (see ``SaidResults``)."""
    return SaidResults(folder)
