"""Opening Keras weight files safely: the checks every reader of an HDF5 or .keras file
shares (the VGG16 weights reader, ``weights.py``, and the model reader, ``model_files.py``).

A weights file is data, never code, and never a way to read other files: HDF5 external
links, external storage and virtual datasets are refused before any value is read.
"""

import io
import os
import zipfile

import h5py
import numpy as np


class WeightsError(ValueError):
    """A weights file that vggnp cannot use; the message says what the file looks like."""


class ModelError(WeightsError):
    """A model file vggnp cannot use; the message says what it holds and why."""


def text(value):
    """HDF5 attributes come back as str, bytes or fixed-length byte strings (np.bytes_)."""
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def open_weights_file(path):
    """Open ``path`` as HDF5; returns (h5py.File, model config JSON or None, and whether
    its datasets can be memory-mapped from ``path``: not for a .keras zip)."""
    if not os.path.exists(path):
        raise WeightsError(f"{path}: weights file not found")
    if os.path.isdir(path):
        raise WeightsError(f"{path}: is a directory, not a weights file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            if "model.weights.h5" not in members:
                raise WeightsError(f"{path}: a zip file without model.weights.h5 "
                                   f"(holds {members[:5]}), not a Keras 3 .keras file")
            if archive.getinfo("model.weights.h5").file_size > 4 << 30:  # VGG16: 553 MB
                raise WeightsError(f"{path}: its model.weights.h5 unpacks to more than 4 GB; "
                                   "not VGG16")
            config = archive.read("config.json").decode() if "config.json" in members else None
            # Read into memory: h5py needs random access, which a zip member does not give.
            return (h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r"), config,
                    False)
    if not h5py.is_hdf5(path):
        with open(path, "rb") as f:
            head = f.read(64)
        hint = " (an HTML page: a failed download?)" if b"<" in head[:16] else ""
        raise WeightsError(f"{path}: not an HDF5 or .keras file{hint}; starts with {head[:32]!r}")
    f = h5py.File(path, "r")
    config = f.attrs.get("model_config")
    return f, (text(config) if config is not None else None), True


def refuse_external_links(f, path):
    """An external link makes h5py open another file when the link is followed."""
    # The visit stops at the first callback that returns something (raising inside it
    # would leave h5py's lock in a bad state).
    found = f.visititems_links(
        lambda name, link: (name, link) if isinstance(link, h5py.ExternalLink) else None)
    if found:
        name, link = found
        raise WeightsError(f"{path}: {name} is an HDF5 external link to "
                           f"{link.filename}:{link.path}; refused (Keras never writes them, "
                           "and they read other files on this machine)")


def refuse_other_files(dataset, path, name):
    """External storage and virtual datasets take their bytes from other files."""
    if dataset.external is not None:
        raise WeightsError(f"{path}: {name} keeps its values in external files "
                           f"({dataset.external[0][0]!r}...); refused")
    if dataset.is_virtual:
        raise WeightsError(f"{path}: {name} is a virtual dataset (its values live in "
                           "other files); refused")


def all_finite(a):
    """True if no value is NaN or infinite. A NaN or inf makes the sum NaN or inf, so a
    finite sum proves it without a full-size boolean array; only an overflowing sum of
    finite values needs the elementwise check."""
    return bool(np.isfinite(a.sum()) or np.isfinite(a).all())
