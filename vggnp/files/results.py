"""``<out>/vggnp-results.jsonl``, the results file of ``vggnp.cam``: one JSON line per
image, appended as each is done, read back by ``--resume`` and the report.

Before an image's outputs are written, an intent line names them ("writing", with the time
it started); after they are on disk, the image's record, with each output's size and mtime
("stamps"). So the file always lists what is there, and which files are vggnp's own
(:func:`own_outputs`): a later run replaces those without --overwrite, and a run killed
mid-write leaves files that the next run knows it was writing. An input counts as done by
its last record without an error: a later run that failed (say, because the outputs
existed) does not undo it (:func:`last_successes`).
"""

import errno
import functools
import json
import os
import stat

RESULTS_NAME = "vggnp-results.jsonl"


def last_successes(records):
    """{absolute input path: its last record without an error} of ``records`` (in order)."""
    return {r["path"]: r for r in records if "error" not in r and "writing" not in r}


def stamps(paths):
    """{absolute path: [size, mtime_ns]} of written files: what makes them vggnp's own."""
    return {os.path.abspath(p): list(file_stamp(p)) for p in paths}


COARSE_CLOCK_NS = 1_000_000_000  # a file system's timestamps may lag time.time_ns()


def own_outputs(records):
    """{absolute path of a file vggnp wrote and nobody changed since: (the absolute path of
    the input it was made from, its [size, mtime_ns] now)}. Read in order: an output that
    a record's "stamps" lists with the size and mtime it has now (a later record naming
    the same path decides again); or one that an intent line announced ("writing") with
    no record of that input after it (a run killed while writing), modified after the
    intent's "started_ns" and stamped by no later record. A record that failed ends the
    intent: whatever is at its paths then may be another run's (the race two runs into one
    folder can have). Only a later run on the same input may replace an own file, and only
    while its stamp is unchanged (the caller compares again before writing)."""
    own, pending, decided = {}, {}, {}
    for index, r in enumerate(records):
        if "writing" in r:
            pending[r["path"]] = (index, r)
            continue
        pending.pop(r["path"], None)
        for path, stamp in r.get("stamps", {}).items():
            decided[path] = index
            if list(file_stamp(path)) == stamp:
                own[path] = (r["path"], stamp)
            else:
                own.pop(path, None)
    for index, r in pending.values():  # file times come from a coarse clock: a tick early
        for path in r["writing"]:
            stamp = list(file_stamp(path))
            if decided.get(path, -1) < index and \
                    (stamp[1] or -1) >= r["started_ns"] - COARSE_CLOCK_NS:
                own[path] = (r["path"], stamp)
    return own


def file_stamp(path):
    """(size, mtime_ns) of a file, or (None, None): what --resume compares."""
    try:
        info = os.stat(path)
        return info.st_size, info.st_mtime_ns
    except (OSError, ValueError):  # ValueError: a name with a NUL byte
        return None, None


MAX_LINE_BYTES = 1 << 20  # a record is a few KB (curves, every method's outputs)


def _number(v):
    return type(v) in (int, float)


def _text(v):
    """A string that can be written back out (no lone surrogate from a JSON escape)."""
    if not isinstance(v, str):
        return False
    try:
        v.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _strings(v):
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def _entry(v):
    """A class entry: {"index", "wnid", "name", "score"}, each optional."""
    return isinstance(v, dict) and type(v.get("index", 0)) is int \
        and all(isinstance(v.get(k, ""), str) for k in ("wnid", "name")) \
        and _number(v.get("score", 0.0))


# The fields a record may hold, each with its check: what --resume and the report read is
# only ever what passed these (a record vggnp did not write may hold anything).
ASKED = ("model", "class", "layer", "target", "preprocess")  # ``cam.image.made_as``


def _model(v):
    """None, or [path, size, mtime_ns] (the size and mtime None for a file gone)."""
    return v is None or (isinstance(v, list) and len(v) == 3 and _text(v[0]) and all(
        x is None or type(x) is int for x in v[1:]))


FIELDS = {
    "image": _text, "path": _text,
    "size": lambda v: v is None or type(v) is int,
    "mtime_ns": lambda v: v is None or type(v) is int,
    "error": lambda v: isinstance(v, str),
    "outputs": lambda v: isinstance(v, dict) and all(_text(k) and _text(p)
                                                     for k, p in v.items()),
    "top": lambda v: isinstance(v, list) and all(_entry(e) for e in v),
    "class": _entry, "method": lambda v: isinstance(v, str),
    "layer": lambda v: isinstance(v, str), "target": lambda v: isinstance(v, str),
    "empty": lambda v: isinstance(v, bool), "model": lambda v: isinstance(v, str),
    "preprocess": lambda v: isinstance(v, str),
    "rule": lambda v: isinstance(v, dict) and isinstance(v.get("name"), str)  # --method lrp
    and all(v.get(k) is None or _number(v[k]) for k in ("epsilon", "gamma"))
    and set(v) <= {"name", "epsilon", "gamma"},
    "asked": lambda v: isinstance(v, dict) and set(v) == set(ASKED) and all(  # --resume's
        v[k] is None or isinstance(v[k], str) for k in ASKED if k != "model") and _model(
        v["model"]),
    "notes": _strings,
    "completeness": lambda v: isinstance(v, dict) and all(
        _number(v.get(k)) for k in ("attribution_sum", "score_difference", "relative_error")),
    "diagnose": lambda v: isinstance(v, dict) and _strings(v.get("lines"))
    and isinstance(v.get("suggestion"), str),
    "deletion_auc": _number, "insertion_auc": _number,
    "deletion_curve": lambda v: isinstance(v, list) and all(_number(x) for x in v),
    "insertion_curve": lambda v: isinstance(v, list) and all(_number(x) for x in v),
    "box": lambda v: v is None or (isinstance(v, list) and len(v) == 4
                                   and all(_number(x) for x in v)),
    "scale": lambda v: isinstance(v, dict) and _number(v.get("max"))
    and isinstance(v.get("units"), str),
    "writing": lambda v: isinstance(v, list) and all(_text(p) for p in v),
    "started_ns": lambda v: type(v) is int,
    "run": _text,  # a cluster run's id, on its workers' intent lines (``cam.cluster``)
    "stamps": lambda v: isinstance(v, dict) and all(
        _text(p) and isinstance(s, list) and len(s) == 2 and all(type(n) is int for n in s)
        for p, s in v.items()),
}
REQUIRED = ("image", "path")
FAITHFULNESS = ("deletion_auc", "insertion_auc", "deletion_curve", "insertion_curve")


def valid_record(record):
    """True if ``record`` is a results record as vggnp writes them: a dict with "image" and
    "path", every field it has of the right type (``FIELDS``), no other field; a success
    (no "error") also has its "outputs" (an "overlay" among them), "class", "top" and the
    input's integer "size" and "mtime_ns" (what --resume compares)."""
    if not isinstance(record, dict) or not all(k in record for k in REQUIRED):
        return False
    if not all(k in FIELDS and FIELDS[k](v) for k, v in record.items()):
        return False
    aucs, curves = ({k in record for k in pair} for pair in (FAITHFULNESS[:2], FAITHFULNESS[2:]))
    if len(aucs) > 1 or len(curves) > 1 or (True in curves and False in aucs):
        return False  # --metric's two AUCs, and with --report its two curves too, or none
    if "writing" in record or "started_ns" in record:  # an intent: those two, nothing more
        return set(record) - {"run"} == {"image", "path", "writing", "started_ns"}
    if "run" in record:  # a cluster run's id: on intent lines only
        return False
    return "error" in record or (all(k in record for k in ("outputs", "class", "top"))
                                 and "overlay" in record["outputs"]
                                 and type(record.get("size")) is int
                                 and type(record.get("mtime_ns")) is int)


class ResultsFile:
    """``<out>/vggnp-results.jsonl``: one JSON line per image, appended and flushed as each
    is done, so that it always lists what is on disk (a line is written after its outputs).

    Read as untrusted input: only a regular file (no FIFO, device or symbolic link), a line
    at most MAX_LINE_BYTES, each record checked (``valid_record``); what fails is skipped
    and counted in ``skipped``. Appended as a ledger: a line cut by a crash is ended before
    the next record, and each record is on disk (fsync) before the run says it is done."""

    def __init__(self, folder):
        self.path = os.path.join(folder, RESULTS_NAME)
        self.skipped = 0

    def check(self):
        """Refuse (OSError with a reason) a results file that is not a regular file."""
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"{self.path} is not a regular file (a link, FIFO or "
                                        "device); move it away")

    def records(self):
        """The valid records of images, in order (intent lines left out); [] if there is no
        file (see the class)."""
        return [r for r in self.entries() if "writing" not in r]

    def entries(self):
        """Every valid line, records and intents, in order; [] if there is no file."""
        records, self.skipped = [], 0
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return []
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return []
            while line := f.readline(MAX_LINE_BYTES + 1):
                overlong = len(line) > MAX_LINE_BYTES
                record = None if overlong else _parsed(line)
                while len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    line = f.readline(MAX_LINE_BYTES + 1)  # the rest of an over-long line
                if valid_record(record):
                    records.append(record)
                elif overlong or line.strip():
                    self.skipped += 1
        return records

    def done(self):
        """{absolute input path: record} of the images a run finished: the last success of
        each path (:func:`last_successes`), if every output it lists is present and inside
        this file's folder (a record naming files elsewhere is not vggnp's: it writes its
        outputs in --out)."""
        folder, real_path = os.path.dirname(self.path), functools.cache(os.path.realpath)
        return {path: r for path, r in last_successes(self.records()).items()
                if all(os.path.exists(p) and _inside(p, folder, real_path)
                       for p in r["outputs"].values())}

    def append(self, record, durable=True):
        """Add ``record`` as one line; on disk when this returns if ``durable`` (fsync: it
        survives a power cut; without, it survives the process being killed). OSError if
        it cannot be."""
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                     | os.O_NONBLOCK, 0o666)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EINVAL, f"{self.path} is not a regular file")
            # A last line cut by a crash is ended first, in the same write: one write of
            # one line with O_APPEND, so concurrent runs do not interleave lines.
            if info.st_size and os.pread(fd, 1, info.st_size - 1) != b"\n":
                line = "\n" + line
            data = line.encode("utf-8", "backslashreplace")
            while data:  # a short write (a file size limit) raises on the next one
                data = data[os.write(fd, data):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)


def _inside(path, folder, real_path):
    """True if ``path`` is in ``folder`` or below it: one of the folders above it, as
    written (".." resolved), is ``folder`` once links are resolved. So the folder may be
    named another way (through a link to it, or its real path), and a link inside it (a
    thumbnails folder kept on another disk) is its own. real_path: os.path.realpath,
    cached by the caller (most outputs share their folders)."""
    target, parent = real_path(folder), os.path.dirname(os.path.abspath(path))
    while real_path(parent) != target:
        if os.path.dirname(parent) == parent:
            return False
        parent = os.path.dirname(parent)
    return True


def _parsed(line):
    """The JSON object of one line, or None (not JSON, too deep, not UTF-8)."""
    try:
        return json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def already_done(path, done):
    """True if ``done`` (from ResultsFile.done) has this file, unchanged since."""
    record = done.get(os.path.abspath(path))
    return record is not None and [record.get("size"), record.get("mtime_ns")] == \
        list(file_stamp(path))


def made_alike(path, done, made_as):
    """True if the record ``done`` has for this file has the fields of ``made_as``
    ({field: value}; None: a field it lacks), so that --resume explains again an image done
    another way (``cam.image.made_as``)."""
    record = done.get(os.path.abspath(path), {})
    return all(record.get(k) == v for k, v in made_as.items())
