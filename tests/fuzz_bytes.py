"""Byte-level mutations of the fuzz harness (issue #15), for every file kind, and the edits
of image headers.

A byte edit is ``(data, rng, target) -> (new data, what was done)``; :func:`bytes_family`
makes a mutation family of one. Half of the offsets are taken near the file's structure
(:func:`hot_spots`: PNG chunks, JPEG markers, GIF blocks, zip records, HDF5 objects, lines).
Also the helpers every mutation module uses: :func:`pick` and :func:`write_file`.
"""

import re
import struct
import zlib

import numpy as np

try:  # under pytest, and in the worker (tests/ on the path)
    from fuzz_seeds import IMAGE_FORMATS
except ImportError:  # imported as tests.fuzz_bytes by python -m scripts.fuzz
    from tests.fuzz_seeds import IMAGE_FORMATS


def pick(rng, items):
    """One of ``items`` (any objects, unlike rng.choice)."""
    items = list(items)
    return items[int(rng.integers(len(items)))]


def write_file(path, data):
    """Write ``data`` (bytes) to the file ``path``."""
    with open(path, "wb") as f:
        f.write(data)


def bytes_family(edit):
    """A family from a byte edit (data, rng, target) -> (data, what)."""
    def family(path, data, rng, target):
        data, what = edit(data, rng, target)
        write_file(path, data)
        return what
    family.__doc__ = edit.__doc__
    return family


# ---------------------------------------------------------------------------------------
# Mutations of bytes: each (data, rng, target) -> (new data, what was done)

def hot_spots(data, target):
    """Offsets where a file's structure is: chunk, marker, block and record starts."""
    if target in IMAGE_FORMATS:
        return image_structure(data, target)
    if target == "labels":
        return [m.start() for m in re.finditer(b"\n", data)]
    signatures = [b"TREE", b"HEAP", b"SNOD", b"OHDR", b"OCHK", b"GCOL", b"\x89HDF",
                  b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"]
    return sorted(m.start() for s in signatures for m in re.finditer(re.escape(s), data))


def _offset(data, rng, target):
    """A random offset in ``data``; half the time near one of its hot spots."""
    spots = hot_spots(data, target)
    if spots and rng.random() < 0.5:
        return int(np.clip(pick(rng, spots) + rng.integers(-4, 64), 0, len(data) - 1))
    return int(rng.integers(len(data)))


def flip(data, rng, target):
    """XOR 1-8 bytes (half of them near the file's structure) with random non-zero values."""
    data = bytearray(data)
    where = sorted({_offset(data, rng, target) for _ in range(int(rng.integers(1, 9)))})
    for i in where:
        data[i] ^= int(rng.integers(1, 256))
    return bytes(data), f"flip bytes at {where}"


def truncate(data, rng, target):
    """Cut the file at a random offset (keeping at least one byte)."""
    cut = int(rng.integers(1, len(data)))
    return data[:cut], f"truncate to {cut} of {len(data)} bytes"


def cut(data, rng, target):
    """Cut the file at, or a few bytes after, a structure boundary (a GIF frame's image
    descriptor, a PNG chunk, a JPEG marker, a zip record, an HDF5 object...)."""
    spots = [s for s in hot_spots(data, target) if s > 0] or [len(data) // 2]
    at = int(np.clip(pick(rng, spots) + rng.integers(0, 12), 1, len(data) - 1))
    return data[:at], f"cut at {at} of {len(data)} bytes (near a structure boundary)"


def insert(data, rng, target):
    """Insert a run at an offset: random bytes, a repeated byte, or a copy of nearby bytes."""
    at = _offset(data, rng, target)
    n = int(rng.integers(1, 65))
    run, what = pick(rng, [(rng.bytes(n), "random"), (bytes([0]) * n * 64, "zero"),
                           (bytes([255]) * n, "0xff"), (data[at:at + n], "copied")])
    return data[:at] + run + data[at:], f"insert {len(run)} {what} bytes at {at}"


def delete(data, rng, target):
    """Remove a run of 1-64 bytes at an offset."""
    at = _offset(data, rng, target)
    n = int(rng.integers(1, 65))
    return data[:at] + data[at + n:], f"delete {min(n, len(data) - at)} bytes at {at}"


# ---------------------------------------------------------------------------------------
# Image headers

SIZES = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 255, 256, 4095, 9459, 32767, 32768,
         65535, 65536, 100_000, 89_478_485, 2**31 - 1, 2**31, 2**32 - 1, -1, -30, -2**31]


def gif_blocks(data):
    """(image descriptor offsets, block offsets) of a GIF: walks its blocks."""
    def table(flags):
        return 3 << ((flags & 7) + 1) if flags & 0x80 else 0
    at, descriptors, blocks = 13 + table(data[10]), [], []
    while at < len(data) and data[at] != 0x3B:
        blocks.append(at)
        if data[at] == 0x21:  # extension: label, then sub-blocks
            at += 2
        elif data[at] == 0x2C:  # image descriptor, local colour table, LZW code size
            descriptors.append(at)
            at += 10 + table(data[at + 9]) + 1
        else:
            break
        while at < len(data) and data[at]:
            at += data[at] + 1
        at += 1
    return descriptors, blocks


def _tiff_fields(data):
    """The size and strip fields of a little-endian TIFF's first IFD."""
    ifd = struct.unpack_from("<I", data, 4)[0]
    names = {256: "width", 257: "height", 258: "bits", 259: "compression", 273: "strip offset",
             277: "samples", 278: "rows per strip", 279: "strip bytes"}
    fields = [("first IFD", 4, "<I")]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", data, entry)
        if tag in names:
            fields.append((names[tag], entry + 8, "<H" if kind == 3 else "<I"))
    return fields


def header_fields(data, target):
    """[(name, offset, struct format)] of the size (and like) fields of a seed image."""
    if target == "png":
        return [("width", 16, ">I"), ("height", 20, ">I"), ("bit depth", 24, "B"),
                ("colour type", 25, "B"), ("interlace", 28, "B")]
    if target.startswith("jpeg"):
        sof = re.search(b"\xff[\xc0\xc1\xc2]", data).start()
        return [("precision", sof + 4, "B"), ("height", sof + 5, ">H"),
                ("width", sof + 7, ">H"), ("components", sof + 9, "B")]
    if target == "gif":
        fields = [("screen width", 6, "<H"), ("screen height", 8, "<H")]
        for n, d in enumerate(gif_blocks(data)[0]):
            fields += [(f"frame {n} left", d + 1, "<H"), (f"frame {n} width", d + 5, "<H"),
                       (f"frame {n} height", d + 7, "<H")]
        return fields
    if target == "bmp":
        return [("pixel offset", 10, "<I"), ("width", 18, "<i"), ("height", 22, "<i"),
                ("bits", 28, "<H"), ("compression", 30, "<I")]
    if target == "tiff":
        return _tiff_fields(data)
    if target == "webp":
        vp8 = data.find(b"\x9d\x01\x2a")
        return [("RIFF size", 4, "<I"), ("chunk size", 16, "<I"), ("width", vp8 + 3, "<H"),
                ("height", vp8 + 5, "<H")]
    return [("count", 4, "<H"), ("width", 6, "B"), ("height", 7, "B"), ("bits", 12, "<H"),
            ("size", 14, "<I"), ("offset", 18, "<I")]  # ico


def image_structure(data, target):
    """Offsets of an image's chunks (PNG), markers (JPEG), blocks and frame descriptor ends
    (GIF), else of its header fields."""
    if target == "png":
        spots, at = [], 8
        while at + 8 <= len(data):
            spots.append(at)
            at += struct.unpack_from(">I", data, at)[0] + 12
        return spots
    if target.startswith("jpeg"):
        return [m.start() for m in re.finditer(b"\xff[^\x00\xff]", data)]
    if target == "gif":
        descriptors, blocks = gif_blocks(data)
        return sorted(blocks + [d + 10 for d in descriptors])
    return [offset for _, offset, _ in header_fields(data, target)]


def _odd_value(rng, fmt, current):
    """A value for a header field of struct format ``fmt``: from SIZES, near the current
    one, or random; always one the field can hold."""
    bits = 8 * struct.calcsize(fmt)
    low, high = (-2 ** (bits - 1), 2 ** (bits - 1) - 1) if fmt[-1].islower() else (0, 2**bits - 1)
    choices = [v for v in SIZES if low <= v <= high] + [current + 1, current - 1, current * 2]
    value = pick(rng, choices) if rng.random() < 0.8 else int(rng.integers(low, high + 1))
    return int(np.clip(value, low, high))


def header(data, rng, target):
    """Set one or two header fields (image sizes, frame sizes, bit depths, offsets) to odd
    values; for PNG, the IHDR's CRC is mostly made right again."""
    data = bytearray(data)
    fields = header_fields(data, target)
    done = []
    for _ in range(1 + int(rng.random() < 0.3)):
        name, offset, fmt = pick(rng, fields)
        value = _odd_value(rng, fmt, struct.unpack_from(fmt, data, offset)[0])
        struct.pack_into(fmt, data, offset, value)
        done.append(f"{name}={value}")
    return _png_crc(data, rng, target, done)


CLAIMS = [(9459, 9459), (89_478_485, 1), (1, 89_478_485), (65535, 65535), (16383, 16383),
          (4000, 4000), (20000, 4000), (30000, 30000), (100_000, 100_000), (255, 255)]


def claim(data, rng, target):
    """Claim a big size: the width and height fields (of the image, or of the GIF's screen
    or a frame) set together, e.g. 9459x9459 or 89,478,485x1, the data left as it is."""
    data = bytearray(data)
    fields = {name: (offset, fmt) for name, offset, fmt in header_fields(data, target)}
    prefix = pick(rng, sorted({name[:-len("width")] for name in fields if name.endswith("width")}))
    written = []
    for name, value in zip((prefix + "width", prefix + "height"), pick(rng, CLAIMS)):
        offset, fmt = fields[name]
        bits = 8 * struct.calcsize(fmt) - (1 if fmt[-1].islower() else 0)
        written.append(min(value, 2**bits - 1))  # what the field can hold
        struct.pack_into(fmt, data, offset, written[-1])
    return _png_crc(data, rng, target, [f"{prefix}size {written[0]}x{written[1]}"])


def _png_crc(data, rng, target, done):
    """For a PNG, mostly make the IHDR's CRC right again (else the edit is caught there)."""
    if target == "png" and rng.random() < 0.85:
        struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
        done.append("(CRC fixed)")
    return bytes(data), " ".join(done)
