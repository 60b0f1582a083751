"""Which Keras saved a model file, for the activation whose meaning changed between Keras
2 and 3: ``hard_sigmoid`` is clip(0.2 x + 0.5, 0, 1) in Keras 2 (tf.keras, tf_keras) and
clip(x / 6 + 0.5, 0, 1) in Keras 3. A .keras zip says which Keras saved it in its
metadata.json ({"keras_version": "3.15.1", ...}), an .h5 file in its ``keras_version``
attribute ("2.21.0"); both are read by ``hdf5``. Where neither says, the name is refused.
"""

import json

MAX_VERSION_BYTES = 64  # "3.15.1"
MAX_METADATA_BYTES = 64 << 10  # {"keras_version": "3.15.1", "date_saved": ...}: 60 bytes


def version_text(value):
    """A keras_version as text ("3.15.1"); None where there is none; for anything else (a
    number, an array, bytes that are not UTF-8, a text over MAX_VERSION_BYTES) a
    description in angle brackets ("<the int64 3>"), which names no Keras version.
    Lenient: most files never need it (only ``hard_sigmoid`` does, and is refused there
    when it names no Keras 2 or 3)."""
    if value is None:
        return None
    if isinstance(value, bytes):  # h5py gives bytes or numpy.bytes_ for some attributes
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return "<bytes that are not UTF-8 text>"
    if not isinstance(value, str):
        return f"<the {type(value).__name__} {str(value)[:20]}>"
    return value if len(value) <= MAX_VERSION_BYTES else f"<a text of {len(value):,} characters>"


def version_in_metadata(archive, info):
    """The keras_version of a .keras zip's metadata.json (``info``: its zipfile.ZipInfo,
    or None), or None where there is none, it is encrypted, over MAX_METADATA_BYTES or
    not JSON. A damaged member (its CRC) raises zipfile.BadZipFile, as any member's."""
    if info is None or info.flag_bits & 1 or info.file_size > MAX_METADATA_BYTES:
        return None
    try:
        metadata = json.loads(archive.read(info).decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return version_text(metadata.get("keras_version")) if isinstance(metadata, dict) else None


def major_version(version):
    """2 from "2.21.0", 3 from "3.15.1"; None for anything else (no version, 1.x, text)."""
    head = version.split(".")[0] if isinstance(version, str) else ""
    return int(head) if head in ("2", "3") else None
