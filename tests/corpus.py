"""The odd and broken inputs users have on their disks, made in code (nothing binary is
committed): ``make_corpus(folder)`` writes them and returns what the CLI must do with each.

Each case is (file name, expected): expected is ``("ok", note or None)`` -- an overlay is
written, and the note, if any, is printed once -- or ``("fail", part of the message)``.
"""

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

# A photo-like RGB picture: smooth colours, so that JPEG keeps them.
_Y, _X = np.mgrid[0:60, 0:80]
PICTURE = np.stack([_X * 3, _Y * 4, 255 - _X * 3], axis=-1).astype(np.uint8)


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width=65500, height=65500):
    """A valid PNG header that claims width x height grey pixels, with almost no data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))


def jpeg_bytes(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, **options)
    return buffer.getvalue()


def with_orientation(image, orientation):
    """A JPEG whose pixels are stored so that EXIF ``orientation`` makes them ``image``."""
    stored = image.transpose({6: Image.Transpose.ROTATE_90,
                              8: Image.Transpose.ROTATE_270}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg_bytes(stored, exif=exif)


def _save(image, path, fmt=None, **options):
    image.save(path, fmt, **options)


_RGB = Image.fromarray(PICTURE)
_RGBA = _RGB.copy()
_RGBA.putalpha(Image.fromarray(np.uint8(_X * 3)))
_PALETTE = _RGB.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
_GREY16 = Image.fromarray(np.uint16(_X * 800))  # up to 63200: Pillow would clip to white
_FLOATS = Image.fromarray(np.float32(_Y / 59.0))
_NAN = np.float32(_Y / 59.0)
_NAN[3, 3] = np.nan

# name -> (writer(path), expected): ("ok", None or its notes) or ("fail", the reason)
OK = ("ok", None)
FLAT = "the image is one flat colour: its map can show only the network's border effects"
CASES = {
    "rgba.png": (lambda p: _save(_RGBA, p), OK),
    "grey_alpha.png": (lambda p: _save(_RGBA.convert("LA"), p), OK),
    "palette_transparent.png": (lambda p: _save(_PALETTE, p, transparency=0), OK),
    "grey.jpg": (lambda p: _save(_RGB.convert("L"), p), OK),
    "one_bit.png": (lambda p: _save(_RGB.convert("1"), p), OK),
    "cmyk.jpg": (lambda p: _save(_RGB.convert("CMYK"), p, "JPEG"), OK),
    "progressive.jpg": (lambda p: _save(_RGB, p, "JPEG", progressive=True), OK),
    "grey16.png": (lambda p: _save(_GREY16, p), OK),
    "float.tiff": (lambda p: _save(_FLOATS, p), OK),
    "exif6.jpg": (lambda p: _write(p, with_orientation(_RGB, 6)), OK),
    "exif8.jpg": (lambda p: _write(p, with_orientation(_RGB, 8)), OK),
    "animated.gif": (lambda p: _animate(p),
                     ("ok", ("GIF with 3 frames: the first frame is used", FLAT))),
    "animated.webp": (lambda p: _animate(p),
                      ("ok", "WEBP with 3 frames: the first frame is used")),
    "stereo.mpo": (lambda p: _animate(p, "MPO", 2),
                   ("ok", ("MPO with 2 frames: the first frame is used", FLAT))),
    "one_pixel.png": (lambda p: _save(Image.new("RGB", (1, 1), "orange"), p), ("ok", FLAT)),
    "flat.png": (lambda p: _save(Image.new("RGB", (50, 40), (128, 128, 128)), p),
                 ("ok", FLAT)),
    "line.png": (lambda p: _save(Image.new("RGB", (10000, 1), "navy"), p), ("ok", FLAT)),
    "with space.jpg": (lambda p: _save(_RGB, p), OK),
    "café_猫.jpg": (lambda p: _save(_RGB, p), OK),
    os.fsdecode(b"latin1_caf\xe9.jpg"): (lambda p: _save(_RGB, p, "JPEG"), OK),
    "-dash.jpg": (lambda p: _save(_RGB, p), OK),
    "nan.tiff": (lambda p: _save(Image.fromarray(_NAN), p),
                 ("fail", "an image (mode F) with NaN or infinite pixels")),
    "bomb.png": (lambda p: _write(p, bomb_png()),
                 ("fail", "claims 65500x65500 = 4,290,250,000 pixels")),
    "truncated.jpg": (lambda p: _write(p, jpeg_bytes(_RGB)[:1500]),
                      ("fail", "truncated image (image file is truncated")),
    "empty.jpg": (lambda p: _write(p, b""), ("fail", "an empty file (0 bytes)")),
    "text.jpg": (lambda p: _write(p, b"this is not a JPEG\n"),
                 ("fail", "not an image format Pillow can read")),
    "photo.heic": (lambda p: _write(p, b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(200)),
                   ("fail", "a HEIC/HEIF photo")),
    "folder.jpg": (os.mkdir, ("fail", "a folder with no image files")),
    "pipe.jpg": (os.mkfifo, ("fail", "not a regular file (a named pipe, socket or device), "
                                     "not an image; save it to a file first")),
    "loop.jpg": (lambda p: os.symlink(os.path.basename(p), p), ("fail", "a symbolic link loop")),
    "missing.jpg": (lambda p: None, ("fail", "no such file")),
    "dangling.jpg": (lambda p: os.symlink(p + ".gone", p),
                     ("fail", "a symbolic link to '")),
}


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _animate(path, fmt=None, frames=3):
    colours = [Image.new("RGB", (64, 48), c) for c in ("red", "green", "blue")][:frames]
    colours[0].save(path, fmt, save_all=True, append_images=colours[1:])


def make_corpus(folder):
    """Write every case of CASES into ``folder``; returns [(path, expected), ...]."""
    cases = []
    for name, (write, expected) in CASES.items():
        path = os.path.join(folder, name)
        write(path)
        cases.append((path, expected))
    return cases
