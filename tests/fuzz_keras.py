"""Mutations of .keras files for the fuzz harness (issue #15): the zip itself, its
config.json edited as JSON (fuzz_json), its model.weights.h5 member edited as HDF5 (fuzz_h5).

Each family is ``(path, seed bytes, rng, target) -> what was done``: :func:`json_family`,
:func:`zip_family` (a record field, or the zip rebuilt), :func:`member_family` and
:func:`graph_family` (the demo model made a graph, then broken).
"""

import io
import json
import re
import struct
import warnings
import zipfile

import numpy as np

try:  # under pytest, and in the worker (tests/ on the path)
    from fuzz_bytes import pick, write_file
    from fuzz_h5 import H5_EDITS, edit_h5
    from fuzz_json import edit_config
    from hostile_graphs import GRAPH_EDITS, residual
except ImportError:  # imported as tests.fuzz_keras by python -m scripts.fuzz
    from tests.fuzz_bytes import pick, write_file
    from tests.fuzz_h5 import H5_EDITS, edit_h5
    from tests.fuzz_json import edit_config
    from tests.hostile_graphs import GRAPH_EDITS, residual


def zip_members(data):
    """[(name, compression, bytes)] of the zip in ``data``."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, i.compress_type, z.read(i)) for i in z.infolist()]


def make_zip(members, padding=None):
    """A zip of [(name, compression, bytes)]. padding: (member name, n) appends n zero
    bytes to that member, written in 1 MB pieces (a zip bomb without holding it)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as z:
        warnings.simplefilter("ignore")  # duplicate names are one of the mutations
        for name, method, content in members:
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            pieces = padding[1] >> 20 if padding and padding[0] == name else 0
            with z.open(info, "w", force_zip64=pieces > 0) as member:
                member.write(content)
                for _ in range(pieces):
                    member.write(bytes(1 << 20))
    return buffer.getvalue()


def json_family(path, data, rng, target):
    """Edit config.json as JSON (JSON_EDITS, or the whole text) and zip the model again."""
    members = zip_members(data)
    i = next(i for i, (name, _, _) in enumerate(members) if name == "config.json")
    name, method, text = members[i]
    text, what = edit_config(text, rng)
    members[i] = (name, method, text)
    write_file(path, make_zip(members))
    return "config.json: " + what


def graph_family(path, data, rng, target):
    """The demo model made a graph (hostile_graphs.residual: a residual Add), then broken
    one of hostile_graphs' ways (a cycle, missing layers and nodes, duplicate names, a
    fan-in of thousands, shapes that do not fit, nesting too deep), and/or edited as JSON
    (fuzz_json) afterwards; zipped again."""
    members = zip_members(data)
    i = next(i for i, (name, _, _) in enumerate(members) if name == "config.json")
    config = residual(json.loads(members[i][2]))
    what = "a residual graph"
    if rng.random() < 0.6:
        name = pick(rng, GRAPH_EDITS)
        GRAPH_EDITS[name][0](config)
        what += ", " + name
    text = json.dumps(config).encode()
    if rng.random() < 0.5:
        text, edit = edit_config(text, rng)
        what += ", then " + edit
    members[i] = (members[i][0], members[i][1], text)
    write_file(path, make_zip(members))
    return "config.json: " + what


ZIP_RECORDS = {b"PK\x03\x04": "local header", b"PK\x01\x02": "directory entry",
               b"PK\x05\x06": "end record"}
ZIP_FIELDS = {  # record signature: {field: (offset in the record, struct format)}
    b"PK\x03\x04": {"flags": (6, "<H"), "method": (8, "<H"), "crc": (14, "<I"),
                    "compressed size": (18, "<I"), "size": (22, "<I"), "name length": (26, "<H"),
                    "extra length": (28, "<H")},
    b"PK\x01\x02": {"flags": (8, "<H"), "method": (10, "<H"), "crc": (16, "<I"),
                    "compressed size": (20, "<I"), "size": (24, "<I"), "name length": (28, "<H"),
                    "extra length": (30, "<H"), "local offset": (42, "<I")},
    b"PK\x05\x06": {"entries": (10, "<H"), "directory size": (12, "<I"),
                    "directory offset": (16, "<I"), "comment length": (20, "<H")},
}
ZIP_VALUES = [0, 1, 2, 6, 8, 9, 12, 14, 99, 0xFFFF, 2**31, 0xFFFFFFFF]


def zip_field(data, rng):
    """Set one field of one zip record (local header, directory entry, end record) to an odd
    value: compression method, CRC, sizes, flags (encrypted...), offsets, counts."""
    records = [(sig, m.start()) for sig in ZIP_FIELDS for m in re.finditer(re.escape(sig), data)]
    sig, at = pick(rng, records)
    field, (offset, fmt) = pick(rng, ZIP_FIELDS[sig].items())
    current = struct.unpack_from(fmt, data, at + offset)[0]
    high = 2 ** (8 * struct.calcsize(fmt)) - 1
    value = int(np.clip(pick(rng, ZIP_VALUES + [current + 1, current - 1, current // 2]), 0, high))
    data = bytearray(data)
    struct.pack_into(fmt, data, at + offset, value)
    return bytes(data), f"{ZIP_RECORDS[sig]} at {at}: {field} {current} -> {value}"


def zip_rewrite(members, rng):
    """Rebuild the zip otherwise: a member dropped, renamed, doubled or added; members
    compressed (deflate, bzip2, lzma: all valid); a config.json or model.weights.h5 that
    unzips to much more than it holds (a zip bomb)."""
    i = int(rng.integers(len(members)))
    name, method, content = members[i]
    method_names = {zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                    zipfile.ZIP_LZMA: "lzma"}
    choice = pick(rng, ["drop", "rename", "double", "add", "compress", "bomb"])
    if choice == "drop":
        return members[:i] + members[i + 1:], None, f"drop {name}"
    if choice == "rename":
        new = pick(rng, [name.upper(), "x/" + name, "../" + name, name + "\x00", ""])
        return members[:i] + [(new, method, content)] + members[i + 1:], None, \
            f"rename {name} to {new!r}"
    if choice == "double":
        return members + [(name, method, pick(rng, [b"{}", content[:100], content]))], None, \
            f"{name} twice"
    if choice == "add":
        return members + [(pick(rng, ["extra.bin", "../../evil", "/abs"]), 0, rng.bytes(99))], \
            None, "an extra member"
    if choice == "compress":
        new = pick(rng, list(method_names))
        return [(n, new, c) for n, _, c in members], None, f"all members {method_names[new]}"
    target = pick(rng, ["config.json", "model.weights.h5"])
    size = pick(rng, [16 << 20, 64 << 20, 512 << 20])
    deflated = [(n, zipfile.ZIP_DEFLATED if n == target else m, c) for n, m, c in members]
    return deflated, (target, size), f"{target} deflated, {size >> 20} MB of zeros appended"


def zip_family(path, data, rng, target):
    """Damage the zip itself: one record field (zip_field), or rebuilt (zip_rewrite)."""
    if rng.random() < 0.5:
        data, what = zip_field(data, rng)
        write_file(path, data)
        return what
    members, padding, what = zip_rewrite(zip_members(data), rng)
    write_file(path, make_zip(members, padding))
    return what


def member_family(path, data, rng, target):
    """Edit the .keras file's model.weights.h5 with an HDF5 edit (H5_EDITS); zip again."""
    members = zip_members(data)
    i = next(i for i, (name, _, _) in enumerate(members) if name == "model.weights.h5")
    name, method, content = members[i]
    content, what = edit_h5(content, pick(rng, H5_EDITS), rng)
    members[i] = (name, method, content)
    write_file(path, make_zip(members))
    return "model.weights.h5: " + what
