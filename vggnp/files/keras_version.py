"""Which Keras saved a model file, for the activation whose meaning changed between Keras
2 and 3: ``hard_sigmoid`` is clip(0.2 x + 0.5, 0, 1) in Keras 2 (tf.keras, tf_keras) and
clip(x / 6 + 0.5, 0, 1) in Keras 3. A .keras zip says which Keras saved it in its
metadata.json ({"keras_version": "3.15.1", ...}), an .h5 file in its ``keras_version``
attribute ("2.21.0"); both are read by ``hdf5``. Where neither says, the name is refused.
"""

import json

MAX_VERSION_BYTES = 4096  # metadata.json: {"keras_version": "3.15.1", "date_saved": ...}


def version_in_metadata(raw):
    """The keras_version text of a .keras zip's metadata.json (bytes), or None where it
    is not JSON or does not say."""
    try:
        metadata = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    version = metadata.get("keras_version") if isinstance(metadata, dict) else None
    return version if isinstance(version, str) else None


def major_version(version):
    """2 from "2.21.0", 3 from "3.15.1"; None for anything else (no version, 1.x, text)."""
    head = version.split(".")[0] if isinstance(version, str) else ""
    return int(head) if head in ("2", "3") else None
