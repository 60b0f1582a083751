"""The official Keras VGG16 ImageNet weights file: where it is published, its size and
md5, the cache folder it goes to, and the record of files already found intact (hashing
553 MB takes a second, so it is done once per version of a file).
"""

import hashlib
import json
import os
import sys
import tempfile

FILENAME = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
URL = f"https://storage.googleapis.com/tensorflow/keras-applications/vgg16/{FILENAME}"
SIZE = 553_467_096
MD5 = "64373286793e3c8b2b4e3219cbf3544b"


def cache_dir():
    """$VGGNP_HOME, else the platform's user cache folder + /vggnp."""
    if os.environ.get("VGGNP_HOME"):
        return os.environ["VGGNP_HOME"]
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA", os.path.expanduser("~"))
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "vggnp")


def file_md5(path):
    """md5 hex digest of a file, read in 1 MB pieces."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def is_official(path):
    """True for a file that claims to be the official weights: its name or exact size."""
    return os.path.basename(path) == FILENAME or os.path.getsize(path) == SIZE


def _stamp(path):
    """What identifies one version of a file: if any of these change, check it again."""
    info = os.stat(path)
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def _read_verified():
    try:
        with open(os.path.join(cache_dir(), "verified.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def official_md5_ok(path):
    """Does the official weights file at ``path`` still have the published md5?

    Hashing 553 MB takes about a second, so a file found intact is remembered (by size,
    modification time and inode, in the cache folder's verified.json) and hashed again
    only after it changes.
    """
    if _read_verified().get(os.path.realpath(path)) == _stamp(path):
        return True
    if file_md5(path) != MD5:
        return False
    remember_verified(path)
    return True


def remember_verified(path):
    """Record ``path`` as intact in verified.json; a read-only cache folder is no error
    (the file is then hashed at every use)."""
    verified = _read_verified()
    verified[os.path.realpath(path)] = _stamp(path)
    try:
        os.makedirs(cache_dir(), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir(), prefix=".verified-")
        with os.fdopen(fd, "w") as f:
            json.dump(verified, f)
        os.replace(tmp, os.path.join(cache_dir(), "verified.json"))
    except OSError:
        pass
