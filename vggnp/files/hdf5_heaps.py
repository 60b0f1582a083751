"""HDF5's global heap, checked before a variable-length value is read from it.

HDF5 keeps variable-length strings (an attribute written from a Python ``str``: the
``model_config`` or ``keras_version`` of some files) in "global heap collections":

    "GCOL", version 1, 3 reserved bytes, the collection's size (8 bytes, little-endian),
    then objects: index (2), reference count (2), reserved (4), size (8), the data
    padded to 8 bytes; index 0 is the free space, whose size counts its own header.

libhdf5 (1.14, ``H5HG__cache_heap_deserialize``) steps from one object to the next by
its size, until the collection's end. A free-space object of size 0 never moves it on:
reading any string of that collection hangs the process inside the C library, where no
Python signal handler runs (the fuzz harness found one: a collection's size field grown
from 4096 to 33280, so that the walk reached zeros). So, before the first such read, each
collection in the file is walked here the same way and one that would not end, or would
step past its end, is refused. Only files whose attributes that vggnp reads are
variable-length are scanned: Keras itself writes them as fixed-length strings, so a
553 MB weights file is not read once more for this.
"""

import contextlib
import io

import h5py

SIGNATURE = b"GCOL"
HEADER = 16         # signature, version, reserved, the collection's size
OBJECT_HEADER = 16  # index, reference count, reserved, size
# The attributes the readers take a value from (weights.py, keras_convnet.py, hdf5.py).
READ = ("keras_version", "model_config", "layer_names", "weight_names", "name")
# Heap objects walked in one file at most: a file Keras or h5py writes has a handful, a
# hostile one could hold many collections each claiming the whole file.
MAX_OBJECTS = 1 << 20


class _TooMany(Exception):
    """More than MAX_OBJECTS heap objects in one file's walks."""


def check_global_heaps(f, source, path, error):
    """Raise ``error`` (one line naming ``path``) if a global heap collection of the
    HDF5 data in ``source`` (a path, or the seekable binary file h5py reads ``f`` from)
    would make libhdf5 loop forever; nothing is read unless ``f`` has a variable-length
    attribute among READ."""
    if not reads_the_heap(f):
        return
    with _stream(source) as stream:
        stream.seek(0, io.SEEK_END)
        size, left = stream.tell(), [MAX_OBJECTS]
        for start in list(_signatures(stream)):  # all found first: _walk moves the stream
            try:
                why = _walk(stream, start, size, left)
            except _TooMany:
                raise error(f"{path}: more than {MAX_OBJECTS:,} HDF5 global heap objects "
                            "to check; not a file Keras writes") from None
            if why:
                raise error(f"{path}: damaged HDF5 global heap at byte {start:,} ({why}); "
                            "reading its strings would never end")
        stream.seek(0)


def reads_the_heap(f):
    """Whether an attribute of READ, on the file or any group in it, is variable-length
    (its value is kept in a global heap collection)."""
    def variable(item):
        for name in READ:
            if name in item.attrs:
                kind = item.attrs.get_id(name).get_type()
                if isinstance(kind, h5py.h5t.TypeVlenID) or (
                        isinstance(kind, h5py.h5t.TypeStringID) and kind.is_variable_str()):
                    return True
        return False
    return variable(f) or f.visititems(
        lambda _, item: True if isinstance(item, h5py.Group) and variable(item) else None) \
        is not None


@contextlib.contextmanager
def _stream(source):
    if isinstance(source, str):
        with open(source, "rb") as stream:
            yield stream
    else:
        yield source


def _signatures(stream, block=1 << 22):
    """Byte offsets of every "GCOL" in the stream (a collection, or four such bytes in
    data: _walk tells them apart where it matters)."""
    stream.seek(0)
    offset, tail = 0, b""
    while chunk := stream.read(block):
        window = tail + chunk
        found = window.find(SIGNATURE)
        while found != -1:
            yield offset - len(tail) + found
            found = window.find(SIGNATURE, found + 1)
        offset += len(chunk)
        tail = window[-(len(SIGNATURE) - 1):]


def _walk(stream, start, file_size, left=None):
    """Why libhdf5's walk of the collection at ``start`` would not end, or None (also for
    one it cannot read at all: that is an error of its own, not a hang). Reads each
    object's header only (a collection may claim the whole file). left: [objects this
    file may still walk], counted down; _TooMany past it."""
    stream.seek(start)
    head = stream.read(HEADER)
    size = int.from_bytes(head[8:16], "little") if len(head) == HEADER else 0
    if head[4:5] != b"\x01" or size < HEADER or start + size > file_size:
        return None
    left = [MAX_OBJECTS] if left is None else left
    at = HEADER
    while at + OBJECT_HEADER <= size:  # a tail too small for a header is free space
        left[0] -= 1
        if left[0] < 0:
            raise _TooMany()
        stream.seek(start + at)
        header = stream.read(OBJECT_HEADER)
        index = int.from_bytes(header[:2], "little")
        length = int.from_bytes(header[8:16], "little")
        step = OBJECT_HEADER + -(-length // 8) * 8 if index else length
        if step == 0:
            return f"a free-space object of size 0 at byte {start + at:,}"
        if at + step > size:
            return f"an object of {length:,} bytes past the collection's end"
        at += step
    return None
