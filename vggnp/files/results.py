"""``<out>/vggnp-results.jsonl``, the results file of ``vggnp.cam``: one JSON line per
image, appended as each is done, read back by ``--resume`` and the report.

A line is written only after the image's outputs are on disk, so the file always lists what
is there. An input counts as done by its last record without an error: a later run that
failed (say, because the outputs existed) does not undo it (:func:`last_successes`).
"""

import json
import os

RESULTS_NAME = "vggnp-results.jsonl"


def last_successes(records):
    """{absolute input path: its last record without an error} of ``records`` (in order)."""
    return {r["path"]: r for r in records if "error" not in r}


def file_stamp(path):
    """(size, mtime_ns) of a file, or (None, None): what --resume compares."""
    try:
        info = os.stat(path)
        return info.st_size, info.st_mtime_ns
    except (OSError, ValueError):  # ValueError: a name with a NUL byte
        return None, None


class ResultsFile:
    """``<out>/vggnp-results.jsonl``: one JSON line per image, appended and flushed as each
    is done, so that it always lists what is on disk (a line is written after its outputs)."""

    def __init__(self, folder):
        self.path = os.path.join(folder, RESULTS_NAME)

    def records(self):
        """Every whole line, in order (a line cut by a crash is skipped); [] if none."""
        records = []
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict) and isinstance(record.get("path"), str):
                        records.append(record)
        except OSError:
            return []
        return records

    def done(self):
        """{absolute input path: record} of the images a run finished: the last success of
        each path (:func:`last_successes`), if every output it lists is present."""
        return {path: r for path, r in last_successes(self.records()).items()
                if all(os.path.exists(p) for p in r.get("outputs", {}).values())}

    def append(self, record):
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        # One write of one line with O_APPEND: concurrent runs do not interleave lines.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            os.write(fd, line.encode("utf-8", "backslashreplace"))
        finally:
            os.close(fd)


def already_done(path, done):
    """True if ``done`` (from ResultsFile.done) has this file, unchanged since."""
    record = done.get(os.path.abspath(path))
    return record is not None and [record.get("size"), record.get("mtime_ns")] == \
        list(file_stamp(path))
