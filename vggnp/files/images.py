"""Read whatever image file a user points the CLI at, or say in one line why not.

:func:`read_image` returns the picture as a person sees it, at its own size, in RGB:
- upright: the EXIF orientation tag (phones write 6 or 8) is applied;
- the first frame of an animated GIF/WebP/PNG or a multi-picture (MPO) JPEG, with a note;
- transparency (RGBA, LA, palette or grey with a transparent colour) composited onto a
  background colour, white by default -- dropping alpha, as Keras does, shows whatever
  colour the transparent pixels happen to hold, often black;
- 16-bit and float images scaled to 0..255 (Pillow's own conversion clips them: a 16-bit
  photo comes out white); NaN or infinite pixels are an error;
- decompression bombs (a header that claims more than ``max_pixels``) refused before any
  pixel is decoded; truncated files refused unless ``allow_truncated``.
Only regular files are opened: a named pipe would block, a directory cannot be read.

For a plain RGB, grey or palette file this is exactly ``vggnp.preprocess.load_img``'s
picture (Keras' ``load_img``), so the model sees the same input as in Keras.
"""

import contextlib
import errno
import os
import stat

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

MAX_PIXELS = 89_478_485  # Pillow's default limit: about 0.25 GB as 8-bit RGB

# Brands of the ISO media container that mean HEIC/HEIF (iPhone photos).
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")


class ImageError(ValueError):
    """An input that cannot be used as an image; the message is one line, for the user."""


def check_file(path):
    """Raise ImageError unless ``path`` is a regular, non-empty file. Nothing else is ever
    opened: opening a named pipe waits for a writer that may never come."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except PermissionError:
        raise ImageError("permission denied (cannot reach the file)") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ImageError("a symbolic link loop") from None
        raise ImageError(f"cannot access the file ({e.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError("a directory, not an image (name it on the command line to take "
                         "the images in it)")
    if not stat.S_ISREG(info.st_mode):
        raise ImageError("not a regular file (a named pipe, socket or device); "
                         "save the image to a file first")
    if info.st_size == 0:
        raise ImageError("an empty file (0 bytes)")


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
    check_file(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            with _pillow_limits(allow_truncated), Image.open(f) as img:
                width, height = img.size  # from the header: nothing decoded yet
                if width * height > max_pixels:
                    raise ImageError(f"claims {width}x{height} = {width * height:,} pixels, "
                                     f"over the limit of {max_pixels:,} (a decompression "
                                     "bomb?); pass --max-pixels N to allow it")
                notes = []
                frames = getattr(img, "n_frames", 1)
                if frames > 1:
                    img.seek(0)
                    notes.append(f"{img.format} with {frames} frames: the first frame is used")
                img.load()
                upright = ImageOps.exif_transpose(img)
                return _to_rgb(upright, background), notes
    except UnidentifiedImageError:
        if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
            raise ImageError("a HEIC/HEIF photo, which Pillow cannot read; convert it to "
                             "JPEG or PNG") from None
        raise ImageError(f"not an image format Pillow can read (starts with {head[:8]!r}); "
                         "convert it to JPEG or PNG") from None
    except PermissionError:
        raise ImageError("permission denied (the file is not readable)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        if isinstance(e, ImageError):
            raise
        # Pillow: "image file is truncated", "broken PNG file", "unrecognized data stream"...
        raise ImageError(f"damaged or truncated image ({e}); pass --allow-truncated to use "
                         "the part that decodes") from None


def _to_rgb(img, background):
    """Any Pillow mode -> RGB, by the rules in the module docstring."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(to_8bit(np.asarray(img), img.mode)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        behind = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        return Image.alpha_composite(behind, rgba).convert("RGB")
    return img.convert("RGB")  # 1-bit, grey, palette, CMYK, YCbCr, RGB


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
