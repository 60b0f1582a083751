"""The mutations of the fuzz harness (issue #15): the families of each file kind
(MUTATIONS), with their weights, and :func:`make_mutant`, which writes a case's mutant.

The same case always makes the same file: its random generator is seeded with
(seed, number). Each family's docstring says what it does; the byte edits are in
fuzz_bytes, the HDF5 edits in fuzz_h5, the .keras edits in fuzz_keras. Here: odd labels
texts, and files that are not regular files.
"""

import json
import os
import warnings

import numpy as np

try:  # under pytest, and in the worker (tests/ on the path)
    from fuzz_bytes import (bytes_family, claim, cut, delete, flip, header, insert, pick, truncate,
                            write_file)
    from fuzz_h5 import attribute_edit, dataset_edit, h5_family, link_edit
    from fuzz_keras import graph_family, json_family, member_family, zip_family
    from fuzz_seeds import SUFFIXES, TARGETS
except ImportError:  # imported as tests.fuzz_mutations by python -m scripts.fuzz
    from tests.fuzz_bytes import (bytes_family, claim, cut, delete, flip, header, insert, pick,
                                  truncate, write_file)
    from tests.fuzz_h5 import attribute_edit, dataset_edit, h5_family, link_edit
    from tests.fuzz_keras import graph_family, json_family, member_family, zip_family
    from tests.fuzz_seeds import SUFFIXES, TARGETS


LABEL_TEXTS = {
    "a UTF-16 BOM": lambda d: b"\xff\xfe" + d, "UTF-16": lambda d: d.decode().encode("utf-16"),
    "a UTF-8 BOM": lambda d: b"\xef\xbb\xbf" + d, "CRLF": lambda d: d.replace(b"\n", b"\r\n"),
    "CR": lambda d: d.replace(b"\n", b"\r"), "blank lines only": lambda d: b"\n \n\t\n",
    "a 4th name": lambda d: d + b"extra\n", "2 names": lambda d: b"circle\nsquare\n",
    "a NUL": lambda d: b"ci\x00rcle\nsquare\ntriangle\n",
    "a surrogate": lambda d: b"\xed\xa0\x80\nsquare\ntriangle\n",
    "a 1 MB line": lambda d: b"x" * (1 << 20) + b"\nsquare\ntriangle\n",
    "5 MB": lambda d: b"ab\n" * ((5 << 20) // 3), "no last newline": lambda d: d.rstrip(b"\n"),
    "non-ASCII (valid)": lambda d: "cïrcle\nsquäre\n三角\n".encode(),
}


def text_family(path, data, rng, target):
    """Labels text that is odd: BOMs, UTF-16, line ends, blank lines, too few or many
    names, NUL, a surrogate, a 1 MB line, 5 MB (over the cap)."""
    what = pick(rng, LABEL_TEXTS)
    write_file(path, LABEL_TEXTS[what](data))
    return what


def special_family(path, data, rng, target):
    """Not a regular file where the file should be: a FIFO, /dev/zero, /dev/urandom, a
    directory, a dangling link, a link loop, an empty file; or a link to the seed (valid)."""
    what = pick(rng, ["fifo", "/dev/zero", "/dev/urandom", "directory", "dangling link",
                      "link loop", "empty file", "link to the file"])
    if what == "fifo":
        os.mkfifo(path)
    elif what == "directory":
        os.mkdir(path)
    elif what == "empty file":
        write_file(path, b"")
    elif what == "link loop":
        os.symlink(path + ".b", path)
        os.symlink(path, path + ".b")
    else:
        if what == "link to the file":
            write_file(path + ".real", data)
        os.symlink({"dangling link": path + ".missing",
                    "link to the file": path + ".real"}.get(what, what), path)
    return what


VALUES = [None, 0, -1, 2 ** 70, 1.5, 1e308, "x", "", [], {}, [1, "a"], {"overlay": None},
          True, "\ud800", "/etc/hostname", "../../x.jpg", [[[[[]]]]], {"max": "1"}]


def record_family(path, data, rng, target):
    """One record of a results file edited as JSON: a field given a value of another type
    (null, a huge integer, a lone surrogate, a path outside the folder...), a field
    deleted, an unknown field added, a line repeated, or nested 100,000 deep."""
    lines = [json.loads(line) for line in data.decode().splitlines()]
    k = int(rng.integers(len(lines)))
    record = lines[k]
    what = pick(rng, ["value", "value", "value", "delete", "unknown", "repeat", "deep"])
    field = pick(rng, sorted(record))
    if what == "value":
        value = VALUES[int(rng.integers(len(VALUES)))]
        if isinstance(record[field], dict) and record[field] and rng.random() < 0.5:
            inner = pick(rng, sorted(record[field]))  # one level down: outputs, class...
            record[field][inner] = value
            field = f"{field}.{inner}"
        else:
            record[field] = value
        what = f"{field} = {value!r:.30}"
    elif what == "delete":
        del record[field]
        what = f"no {field}"
    elif what == "unknown":
        record["future_field"] = 1
    text = [json.dumps(line) for line in lines]
    if what == "repeat":
        text.insert(k, text[k])
    elif what == "deep":
        text[k] = "[" * 100_000 + "]" * 100_000
    write_file(path, ("\n".join(text) + "\n").encode())
    return f"line {k}: {what}"


TEMP_NAMES = [b".vggnp-tmp-99999999999999999999999-x.jpg", ".vggnp-tmp-\u00b2-x.jpg".encode(),
              b".vggnp-tmp-0-x.jpg", b".vggnp-tmp--1-x.jpg", b".vggnp-tmp-", b".vggnp-tmp-1",
              b".vggnp-tmp-\xff\xfe-x.jpg", b".vggnp-tmp-1-" + b"x" * 240, b".vggnp-tmp-\n-x"]


def name_family(path, data, rng, target):
    """A planted temporary name: a pid too large, not ASCII digits, 0, negative, missing,
    not UTF-8, a long name, a newline (the funnel also plants it as a folder)."""
    name = TEMP_NAMES[int(rng.integers(len(TEMP_NAMES)))]
    write_file(path, name)
    return repr(name)[:60]


BYTES = {"flip": (3, bytes_family(flip)), "truncate": (2, bytes_family(truncate)),
         "cut": (2, bytes_family(cut)), "insert": (1, bytes_family(insert)),
         "delete": (1, bytes_family(delete)), "special": (1, special_family)}
MUTATIONS = {  # kind: {family: (weight, function(path, seed bytes, rng, target) -> what)}
    "image": {**BYTES, "header": (4, bytes_family(header)), "claim": (2, bytes_family(claim))},
    "model": {**BYTES, "json": (8, json_family), "zip": (3, zip_family),
              "member": (4, member_family), "graph": (6, graph_family)},
    "weights": {**BYTES, "attribute": (3, h5_family(attribute_edit)),
                "dataset": (4, h5_family(dataset_edit)), "link": (2, h5_family(link_edit))},
    "labels": {**BYTES, "text": (4, text_family)},
    "results": {**BYTES, "record": (8, record_family)},
    "tempname": {**{k: v for k, v in BYTES.items() if k != "special"},
                 "name": (4, name_family)},
    "selftest": {},
}


def make_mutant(case, folder, context):
    """Write the case's mutant in a new folder under ``folder``; (path, family, what)."""
    rng = np.random.default_rng([case["seed"], case["number"]])
    target = case["target"]
    families = MUTATIONS[TARGETS[target]]
    family = case.get("family") or pick(rng, [f for f, (w, _) in families.items()
                                              for _ in range(w)])
    here = os.path.join(folder, str(case["number"]))
    os.mkdir(here)
    path = os.path.join(here, "mutant" + SUFFIXES[target])
    if target == "selftest":
        write_file(path, family.encode())
        return path, family, family
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        what = families[family][1](path, context.seeds[target], rng, target)
    return path, family, f"{family}: {what}"
