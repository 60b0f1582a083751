"""Read whatever image file a user points the CLI at, or say in one line why not.

:func:`read_image` returns the picture as a person sees it, at its own size, in RGB:
- upright: the EXIF orientation tag (phones write 6 or 8) is applied;
- the first frame of an animated GIF/WebP/PNG or a multi-picture (MPO) JPEG, with a note;
- transparency (RGBA, LA, palette or grey with a transparent colour) composited onto a
  background colour, white by default -- dropping alpha, as Keras does, shows whatever
  colour the transparent pixels happen to hold, often black;
- 16-bit and float images scaled to 0..255 (Pillow's own conversion clips them: a 16-bit
  photo comes out white); NaN or infinite pixels are an error;
- decompression bombs (a header that claims more than ``max_pixels``, or more pixels than
  a file of its size can hold) refused before any pixel is decoded; truncated files
  refused unless ``allow_truncated``; whatever else Pillow raises on a damaged file
  becomes an ImageError.
Only regular files are opened: a named pipe would block, a directory cannot be read.

For a plain RGB, grey or palette file this is exactly ``vggnp.preprocess.load_img``'s
picture (Keras' ``load_img``), so the model sees the same input as in Keras.
"""

import contextlib
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import InputError, check_regular_file, said

MAX_PIXELS = 89_478_485  # Pillow's default limit: about 0.25 GB as 8-bit RGB

# Brands of the ISO media container that mean HEIC/HEIF (iPhone photos).
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")


class ImageError(InputError):
    """An input that cannot be used as an image; the message is one line, for the user."""


def check_file(path):
    """Raise ImageError unless ``path`` is a regular, non-empty file (see
    ``errors.check_regular_file``); returns its size in bytes. A URL that is not a file
    gets its own reason: vggnp does not download images."""
    try:
        return check_regular_file(path, ImageError, "an image")
    except ImageError as e:
        if str(path).lower().startswith(("http://", "https://", "ftp://")):
            raise ImageError("a URL: vggnp reads image files and does not download them; "
                             f"save it first (curl -LO '{path}') and name the file") from None
        if os.path.isdir(path):  # only a folder's images can be taken from it
            raise ImageError(f"{e} (python -m vggnp.cam takes the images in a folder "
                             "named on its command line; in Python, list its files)") from None
        raise


@contextlib.contextmanager
def _pillow_limits(allow_truncated):
    """Pillow's two module-wide switches, set for one read and restored after: its own
    bomb check is replaced by ours (which honours --max-pixels), and truncated files are
    decoded only when asked."""
    saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, allow_truncated
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


def read_image(path, background=(255, 255, 255), max_pixels=MAX_PIXELS,
               allow_truncated=False):
    """Open an image file as an upright RGB PIL image at its own size.

    background: RGB colour that transparent pixels are composited onto.
    Returns (image, notes): notes are one-line remarks for the user (e.g. that only the
    first of 12 frames is used). Raises ImageError with the reason.
    """
    size = check_file(path)
    try:
        with _BoundedReads(open(path, "rb", buffering=0), size) as f:
            head = f.read(16)
            with _pillow_limits(allow_truncated), Image.open(f) as img:
                _check_claim(img, size, max_pixels)  # from the header: nothing decoded yet
                notes = _first_frame(img)
                img.load()
                ImageOps.exif_transpose(img, in_place=True)  # a copy of 12 MP costs 5 ms
                return _to_rgb(img, background), notes
    except ImageError:
        raise
    except UnidentifiedImageError:
        if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
            raise ImageError("a HEIC/HEIF photo, which Pillow cannot read; convert it to "
                             "JPEG or PNG") from None
        raise ImageError(f"not an image format Pillow can read (starts with {head[:8]!r}); "
                         "convert it to JPEG or PNG") from None
    except PermissionError:
        raise ImageError("permission denied (the file is not readable)") from None
    except MemoryError:
        raise ImageError("too large to decode in the memory this machine has; make it "
                         "smaller") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        # Pillow: "image file is truncated", "broken PNG file", "unrecognized data stream"...
        # Only a file cut short has a readable part worth using: a damaged one decodes to
        # garbage with LOAD_TRUNCATED_IMAGES, which a model still classifies confidently.
        if "truncated" in said(e):
            raise ImageError(f"truncated image ({said(e)}); pass --allow-truncated (in "
                             "Python: allow_truncated=True) to use the part that decodes") \
                from None
        if "truncated" in said(e).lower():  # "Truncated File Read": cut inside the header
            raise ImageError(f"cut off before its pixels ({said(e)}): nothing in it "
                             "decodes; copy or download it again") from None
        raise ImageError(f"damaged image ({said(e)}); re-save it from an image editor, "
                         "or take it again from where it came") from None
    except _PILLOW_CRASHES as e:  # Pillow's decoders on crafted or damaged files
        raise ImageError(f"damaged image: Pillow cannot decode it ({type(e).__name__}: "
                         f"{said(e)}); re-save it from an image editor") from None


class _BoundedReads(io.BufferedReader):
    """A file whose read(n) never asks for more bytes than the file has left. Pillow reads
    a chunk's declared length at once, and Python allocates n bytes before it reads: a PNG
    chunk whose damaged length says 4 GB would ask for 4 GB to read 100 bytes."""

    def __init__(self, raw, size):
        super().__init__(raw)
        self.size = size

    def read(self, n=-1):
        if n is not None and n > 0:
            n = max(0, min(n, self.size - self.tell()))
        return super().read(n)


# What else Pillow's plugins raise on damaged headers (seen in fuzzing, tests/fuzz.py).
# RuntimeError: the AVIF decoder's "Failed to decode frame 0" on a damaged file.
_PILLOW_CRASHES = (IndexError, KeyError, TypeError, AttributeError, ZeroDivisionError,
                   OverflowError, RecursionError, NotImplementedError, RuntimeError,
                   struct.error, zlib.error)

# The most pixels one byte of each format can decode to, with a margin: deflate expands at
# most 1032:1 and a PNG pixel takes at least 1 bit (8,256); GIF's LZW emits at most 4,096
# pixels per 12-bit code (2,731); a Huffman-coded JPEG spends at least 1 bit on each 8x8
# block (512); BMP run-length codes give at most 255 pixels per 2 bytes (128).
MOST_PIXELS_PER_BYTE = {"PNG": 8256, "GIF": 4096, "JPEG": 4096, "MPO": 4096, "BMP": 256}
# Any other format (AVIF, WebP, ...): a real photo takes far more than a bit per 4,096
# pixels; an image this sparse is a flat fill, damaged, or made to exhaust memory.
OTHER_PIXELS_PER_BYTE = 4096
# TIFF by compression: raw data holds a mode's bits per pixel exactly; LZW, deflate and
# PackBits as PNG at most; CCITT fax codes (a blank page in a few bytes) as any other format.
TIFF_RAW_BITS = {"1": 1, "L": 8, "P": 8, "LA": 16, "I;16": 16, "RGB": 24, "YCbCr": 24,
                 "RGBA": 32, "CMYK": 32, "I": 32, "F": 32}
TIFF_BOUNDED = ("tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits", "jpeg",
                "tiff_jpeg")
SPARSE_FROM = 16_000_000  # below this, decoding a damaged file costs little anyway


def _check_claim(img, file_size, max_pixels):
    """Refuse, before decoding, a header that claims more pixels than allowed or than a
    file of this size can hold (a tiny file claiming 89 M pixels would decode for a minute
    into garbage)."""
    width, height = img.size
    pixels = width * height
    if pixels > max_pixels:
        raise ImageError(f"claims {width}x{height} = {pixels:,} pixels, over the limit of "
                         f"{max_pixels:,} (a decompression bomb?); pass --max-pixels N (in "
                         "Python: max_pixels=N) to allow it")
    if pixels == 0:
        raise ImageError(f"claims a size of {width}x{height} pixels; the file is damaged")
    most = MOST_PIXELS_PER_BYTE.get(img.format, OTHER_PIXELS_PER_BYTE)
    if img.format == "TIFF":
        compression = img.info.get("compression")
        most = (8 / TIFF_RAW_BITS.get(img.mode, 8) if compression == "raw"
                else 8256 if compression in TIFF_BOUNDED else OTHER_PIXELS_PER_BYTE)
    if most and pixels > SPARSE_FROM and pixels > most * file_size:
        raise ImageError(f"claims {width}x{height} = {pixels:,} pixels in {file_size:,} "
                         f"bytes, more than a {img.format} file can hold (at most {most:,g} "
                         "pixels a byte): damaged, or a decompression bomb; re-save it from "
                         "an image editor")


def _first_frame(img):
    """Go to the first frame of an animation; notes for the user."""
    try:
        frames = getattr(img, "n_frames", 1)  # Pillow reads every frame's header for this
    except (OSError, EOFError, ValueError) + _PILLOW_CRASHES:
        img.seek(0)
        return [f"{img.format}: the frames after the first are damaged; the first frame "
                "is used"]
    if frames > 1:
        img.seek(0)
        return [f"{img.format} with {frames} frames: the first frame is used"]
    return []


def _to_rgb(img, background):
    """Any Pillow mode -> RGB, by the rules in the module docstring."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(to_8bit(np.asarray(img), img.mode)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        behind = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        return Image.alpha_composite(behind, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")  # 1-bit, grey, palette, CMYK...


def to_8bit(values, mode):
    """Integer or float pixel values -> uint8, scaled, never clipped.

    values: (H, W) from a 16-bit, 32-bit integer or float image. 16-bit values are divided
    by 65535 (the type's full range); 32-bit integers in 0..65535 likewise; floats in
    [0, 1] are multiplied by 255 and floats in [0, 255] kept; anything else is stretched
    so that its min becomes 0 and its max 255.
        out = round(255 * (v - lo) / (hi - lo))
    """
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).all():
        raise ImageError(f"an image (mode {mode}) with NaN or infinite pixels; fix or re-export it")
    low, high = float(v.min()), float(v.max())
    if mode.startswith("I;16") or (mode == "I" and low >= 0 and high <= 65535):
        lo, hi = 0.0, 65535.0
    elif mode == "F" and low >= 0 and high <= 1:
        lo, hi = 0.0, 1.0
    elif mode == "F" and low >= 0 and high <= 255:
        lo, hi = 0.0, 255.0
    else:
        lo, hi = low, high if high > low else low + 1  # a flat image maps to 0
    return np.uint8(np.round(255 * (v - lo) / (hi - lo)))
