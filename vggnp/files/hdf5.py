"""Opening Keras weight files safely: the checks every reader of an HDF5 or .keras file
shares (the VGG16 weights reader, ``weights.py``, and the model reader,
``vggnp/models/keras_convnet.py``).

A weights file is data, never code, and never a way to read other files: HDF5 external
links, external storage and virtual datasets are refused before any value is read.
"""

import contextlib
import lzma
import math
import os
import shutil
import struct
import tempfile
import zipfile
import zlib

import h5py
import numpy as np

from .errors import InputError, check_regular_file, said
from .hdf5_heaps import check_global_heaps
from .zip_window import Window, check_crc
from .keras_version import version_in_metadata, version_text


class WeightsError(InputError):
    """A weights file that vggnp cannot use; the message says what the file looks like."""


class ModelError(WeightsError):
    """A model file vggnp cannot use; the message says what it holds and why."""


MAX_WEIGHTS_BYTES = 4 << 30  # VGG16's: 553 MB
MAX_CONFIG_BYTES = 8 << 20  # VGG16's config: 20 KB
MAX_NORM = 1e10  # root sum of squares of one weight array (float32 overflows near 3e38)


def text(value):
    """HDF5 attributes come back as str, bytes or fixed-length byte strings (np.bytes_)."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    if not isinstance(value, str):
        raise TypeError(f"a {type(value).__name__} where a name was expected")
    return value


@contextlib.contextmanager
def opened_weights_file(path, what="weights file", error=None):
    """Open ``path`` (HDF5, or a .keras zip holding model.weights.h5) for reading.

    Yields (h5py.File, model config JSON or None, base, keras_version text or None, as
    ``keras_version`` reads it): ``base`` is the byte offset of
    the HDF5 data within ``path`` when its datasets can be memory-mapped from ``path``
    (a plain file, or a .keras member stored uncompressed), else None. Only regular files
    are opened; whatever zipfile or h5py raise on a damaged file becomes ``error``
    (WeightsError, or ModelError for a model file).
    """
    error = error or WeightsError
    try:
        with _opened(path, what) as opened:
            yield opened
    except WeightsError as e:  # as the caller's own error class (the message is the same)
        raise e if isinstance(e, error) else error(str(e)) from None


@contextlib.contextmanager
def _opened(path, what):
    if not os.path.lexists(path):
        raise WeightsError(f"{path}: {what} not found")
    check_regular_file(path, lambda reason: WeightsError(f"{path}: {reason}"), f"a {what}")
    with contextlib.ExitStack() as stack:
        if zipfile.is_zipfile(path):
            f, config, base, version = _open_keras_zip(path, stack)
        elif h5py.is_hdf5(path):
            f, base = stack.enter_context(_hdf5(path, path)), 0
            with hdf5_errors(path):
                check_global_heaps(f, path, path, WeightsError)  # before any string
                version = version_text(f.attrs.get("keras_version"))
            config = _config_attribute(f, path)
        else:
            with open(path, "rb") as raw:
                head = raw.read(64)
            hint = (" (an HTML page: a failed download?)" if b"<" in head[:16] else
                    " (a zip without its directory: a .keras file cut short?)"
                    if head.startswith(b"PK\x03\x04") else "")
            raise WeightsError(f"{path}: not an HDF5 or .keras file{hint}; starts with "
                               f"{head[:32]!r}")
        yield f, config, base, version


def _hdf5(source, path):
    try:
        return h5py.File(source, "r")
    except (OSError, ValueError, RuntimeError) as e:
        raise WeightsError(f"{path}: cannot be read as HDF5 ({said(e)}); the file is "
                           "damaged or truncated") from None


def _config_attribute(f, path):
    """The ``model_config`` attribute of a Keras .h5 file (text), or None."""
    with hdf5_errors(path):
        if "model_config" not in f.attrs:
            return None
        if f.attrs.get_id("model_config").get_storage_size() > MAX_CONFIG_BYTES:
            raise WeightsError(f"{path}: its model_config is over {MAX_CONFIG_BYTES:,} "
                               "bytes; not a Keras model file")
        return text(f.attrs["model_config"])


def _open_keras_zip(path, stack):
    """(h5py.File of model.weights.h5, config.json or None, base, keras_version or None)."""
    try:
        archive = stack.enter_context(zipfile.ZipFile(path))
        members = {info.filename: info for info in archive.infolist()}
        if "model.weights.h5" not in members:
            raise WeightsError(f"{path}: a zip file without model.weights.h5 (holds "
                               f"{list(members)[:5]}), not a Keras 3 .keras file")
        weights, config = members["model.weights.h5"], members.get("config.json")
        for info, limit in ((weights, MAX_WEIGHTS_BYTES), (config, MAX_CONFIG_BYTES)):
            if info is not None:
                _check_member(info, limit, path)
        version = version_in_metadata(archive, members.get("metadata.json"))
        config = archive.read(config).decode("utf-8") if config is not None else None
        with archive.open(weights) as member:
            if member.read(8) != b"\x89HDF\r\n\x1a\n":
                raise WeightsError(f"{path}: its model.weights.h5 is not an HDF5 file; not "
                                   "a Keras model file")
        source, base = _member(archive, weights, path, stack)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError,
            zlib.error, lzma.LZMAError, OSError, ValueError, RuntimeError, struct.error) as e:
        if isinstance(e, InputError):
            raise
        if isinstance(e, UnicodeDecodeError):
            raise WeightsError(f"{path}: its config.json is not UTF-8 text; not a Keras "
                               "model file") from None
        raise WeightsError(f"{path}: not a usable Keras model file: the zip archive is "
                           f"damaged ({said(e)})") from None
    f = stack.enter_context(_hdf5(source, path))
    with hdf5_errors(path):
        check_global_heaps(f, source, path, WeightsError)
    return f, config, base, version


MAX_RATIO = 100  # weights hardly compress (float32 noise), JSON 5-10:1; zeros 1000:1


def _check_member(info, limit, path):
    """Refuse, from the zip directory alone, an encrypted member, one that would unpack to
    more than ``limit`` bytes or one compressed more than MAX_RATIO:1 (a zip bomb)."""
    if info.flag_bits & 1:
        raise WeightsError(f"{path}: its {info.filename} is encrypted; Keras never encrypts "
                           "a model file")
    if info.file_size > limit:
        raise WeightsError(f"{path}: its {info.filename} unpacks to {info.file_size:,} bytes, "
                           f"over the limit of {limit:,}; not a Keras model file")
    if info.file_size > 1 << 20 and info.file_size > MAX_RATIO * info.compress_size:
        raise WeightsError(f"{path}: its {info.filename} unpacks to {info.file_size:,} bytes "
                           f"from {info.compress_size:,} (over {MAX_RATIO}:1, a zip bomb?); "
                           "not a Keras model file")


def _member(archive, info, path, stack):
    """A zip member as something h5py can open, and its offset in ``path`` if stored.

    h5py needs random access. A member stored uncompressed (as Keras writes them) is a
    window onto the zip file itself: nothing is copied and the weights can be
    memory-mapped. A compressed one is unpacked, in blocks, to an unnamed temporary file
    (zipfile checks its CRC at the end): never whole in memory."""
    if info.compress_type == zipfile.ZIP_STORED:
        raw = stack.enter_context(open(path, "rb"))
        raw.seek(info.header_offset)
        header = raw.read(30)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header of {info.filename}")
        names, extra = struct.unpack("<HH", header[26:30])
        start = info.header_offset + 30 + names + extra
        if start + info.file_size > os.fstat(raw.fileno()).st_size:
            raise zipfile.BadZipFile(f"{info.filename} runs past the end of the file")
        window = Window(raw, start, info.file_size)
        check_crc(window, info)
        return window, start
    copy = stack.enter_context(tempfile.TemporaryFile())
    with archive.open(info) as member:
        shutil.copyfileobj(member, copy, 1 << 20)
    copy.seek(0)
    return copy, None


@contextlib.contextmanager
def hdf5_errors(path, error=WeightsError):
    """Translate what h5py raises on a damaged or crafted file into one line. h5py turns
    HDF5's errors into OSError, RuntimeError (a failed link visit), KeyError or
    ValueError; a name attribute of the wrong type, or a group where a dataset belongs,
    gives TypeError or AttributeError."""
    try:
        yield
    except InputError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError,
            IndexError, RecursionError) as e:
        raise error(f"{path}: damaged, or not laid out as Keras writes it "
                    f"({type(e).__name__}: {said(e)})") from None


def refuse_external_links(f, path):
    """An external link makes h5py open another file when the link is followed."""
    # HDF5's own recursive link visit (H5Lvisit), which stops at the first callback that
    # returns something: on damaged metadata it raises a plain RuntimeError, where h5py's
    # visititems_links would look each link up again and fail inside its lock (SystemError).
    found = f.id.links.visit(
        lambda name, info: name if info.type == h5py.h5l.TYPE_EXTERNAL else None, info=True)
    if found:
        name = found.decode("utf-8", "replace")
        link = f.get(name, getlink=True)  # the link itself: nothing is followed
        raise WeightsError(f"{path}: {name} is an HDF5 external link to "
                           f"{link.filename}:{link.path}; refused (Keras never writes them, "
                           "and they read other files on this machine)")


def dataset(group, key):
    """group[key], which must be a dataset (a crafted file can put a group there)."""
    found = group[key]
    if not isinstance(found, h5py.Dataset):
        raise TypeError(f"{group.name}/{key} is a {type(found).__name__}, not a dataset")
    return found


def check_dataset(data, path, name):
    """A weight dataset must keep its values in this file (external storage and virtual
    datasets take their bytes from other files), and hold them: a chunked dataset whose
    chunks were never written reads as zeros of any declared size, so a tiny file could
    make vggnp allocate gigabytes."""
    if data.external is not None:
        raise WeightsError(f"{path}: {name} keeps its values in external files "
                           f"({data.external[0][0]!r}...); refused")
    if data.is_virtual:
        raise WeightsError(f"{path}: {name} is a virtual dataset (its values live in "
                           "other files); refused")
    declared, stored = data.size * data.dtype.itemsize, data.id.get_storage_size()
    if declared > MAX_WEIGHTS_BYTES or stored * (1032 if data.compression else 1) < declared:
        raise WeightsError(f"{path}: {name} declares {declared:,} bytes of values but the "
                           f"file stores {stored:,}; the file is damaged or crafted")


def check_values(values, path, name, error=WeightsError):
    """Refuse weights that are NaN, infinite, or of a size no trained network has.

    One pass, as fast as reading them: the sum of squares (a BLAS dot product) is NaN or
    inf if any value is, and over MAX_NORM ** 2 if any |value| is over MAX_NORM. Only when
    it fails are the values looked at again, for the message."""
    flat = np.ravel(values)
    with np.errstate(all="ignore"):  # an overflow is what this looks for
        squares = float(np.dot(flat, flat)) if flat.dtype.kind == "f" else float("nan")
    if math.isfinite(squares) and squares <= MAX_NORM ** 2:
        return
    if not np.isfinite(flat).all():
        raise error(f"{path}: {name} contains NaN or infinite values; the file is damaged")
    raise error(f"{path}: the weights of {name} reach {np.abs(flat).max():.3g} (root sum "
                f"of squares over {MAX_NORM:.0e}); this is not a trained model")
