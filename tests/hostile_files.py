"""The damaged files of tests/test_hostile.py and test_hostile_h5.py (issue #15), made in code:
a cut GIF, a JPEG claiming 89 M pixels; .keras files rebuilt from the demo model by a
hand-written zip (KERAS_MUTANTS, BOMBS); edits of a narrow VGG16 .h5 (H5_MUTANTS, HUGE,
METADATA offsets); a model that overflows at run time. A builder returns bytes or a path, or
is a writer(path) or an edit(h5py.File)."""

import functools
import io
import json
import os
import re
import shutil
import struct
import zipfile
import zlib

import h5py
import numpy as np
from PIL import Image

from corpus import PICTURE, jpeg_bytes
from helpers import MODEL_PATH


# -- Images -----------------------------------------------------------------------------------

def _colour_table(flags):
    """Bytes of the colour table that a GIF flags byte announces."""
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _skip_sub_blocks(data, pos):
    """The position just past the GIF sub-blocks that start at ``pos``."""
    while data[pos]:
        pos += data[pos] + 1
    return pos + 1


def gif_cut_after_second_descriptor():
    """A 3-frame GIF cut right after frame 2's image descriptor: no pixels, no trailer."""
    frames = [Image.new("RGB", (64, 48), colour) for colour in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    data = buffer.getvalue()
    pos, seen = 13 + _colour_table(data[10]), 0  # header, screen descriptor, global table
    while True:
        if data[pos] == 0x21:  # an extension: label, then sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif data[pos] == 0x2C:  # an image descriptor (10 bytes), its table, LZW data
            seen += 1
            if seen == 2:
                return data[:pos + 10]
            pos = _skip_sub_blocks(data, pos + 10 + _colour_table(data[pos + 9]) + 1)
        else:
            raise AssertionError(f"unexpected GIF block {data[pos]:#x} at {pos}")


def jpeg_claiming(width, height):
    """A small real JPEG (~2.3 KB) whose SOF0 header claims width x height."""
    picture = Image.fromarray(PICTURE).resize((120, 90))
    data = bytearray(jpeg_bytes(picture))
    sof = data.index(b"\xff\xc0")  # marker, length (2), precision (1), height (2), width (2)
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def write(path, data):
    """``path``, written with the bytes ``data``."""
    with open(path, "wb") as f:
        f.write(data)
    return path


# -- .keras files, rebuilt from the demo model -----------------------------------------------

def entry(name, data, method=zipfile.ZIP_STORED, crc=None, size=None):
    """A zip member as it is stored: (name, stored bytes, method, CRC, unpacked size)."""
    return (name, data, method, zlib.crc32(data) if crc is None else crc,
            len(data) if size is None else size)


def write_zip(path, entries):
    """A zip of ``entries`` written by hand, so that a test can store what zipfile would not
    write: a wrong CRC, an unknown method, a deflate stream made elsewhere."""
    central = b""
    with open(path, "wb") as out:
        for name, data, method, crc, size in entries:
            offset = out.tell()
            # version needed, flags, method, time, date (1980-01-01), CRC, sizes
            fields = struct.pack("<HHHHHIII", 20, 0, method, 0, 0x21, crc, len(data), size)
            out.write(b"PK\x03\x04" + fields + struct.pack("<HH", len(name), 0)
                      + name.encode() + data)
            central += (b"PK\x01\x02" + struct.pack("<H", 20) + fields
                        + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, offset)
                        + name.encode())
        start = out.tell()
        out.write(central + b"PK\x05\x06"
                  + struct.pack("<HHHHIIH", 0, 0, len(entries), len(entries), len(central),
                                start, 0))
    return path


@functools.cache
def _demo_members():
    with zipfile.ZipFile(MODEL_PATH) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def demo_entries(**replace):
    """The demo model's members as stored entries; ``replace`` (a member name with its dot
    as an underscore: config_json=...) swaps one for an entry or for new bytes."""
    entries = []
    for name, data in _demo_members().items():
        new = replace.get(name.replace(".", "_"), data)
        entries.append(new if isinstance(new, tuple) else entry(name, new))
    return entries


def demo_config():
    """The demo model's config.json, parsed."""
    return json.loads(_demo_members()["config.json"])


def layer(config, name):
    """The layer called ``name`` in a Sequential config (its class_name, config...)."""
    return next(item for item in config["config"]["layers"] if item["config"]["name"] == name)


def settings(config, name):
    """The ``config`` of the layer called ``name``: kernel_size, strides, ..."""
    return layer(config, name)["config"]


def with_config(edit):
    """A writer(path) of the demo model with ``edit(config)`` applied to its config.json."""
    def writer(path):
        config = demo_config()
        edit(config)
        return write_zip(path, demo_entries(config_json=json.dumps(config).encode()))
    return writer


def with_config_bytes(data):
    """A writer(path) of the demo model with ``data`` as its config.json."""
    return lambda path: write_zip(path, demo_entries(config_json=data))


def with_weights(edit):
    """A writer(path) of the demo model with ``edit(h5py.File)`` applied to its
    model.weights.h5 (opened r+ in a temporary copy)."""
    def writer(path):
        scratch = write(str(path) + ".weights.h5", _demo_members()["model.weights.h5"])
        with h5py.File(scratch, "r+") as f:
            edit(f)
        with open(scratch, "rb") as f:
            data = f.read()
        os.remove(scratch)
        return write_zip(path, demo_entries(model_weights_h5=data))
    return writer


def with_member(name, make_entry):
    """A writer(path) of the demo model with member ``name`` replaced by make_entry(bytes)."""
    def writer(path):
        new = make_entry(_demo_members()[name])
        return write_zip(path, demo_entries(**{name.replace(".", "_"): new}))
    return writer


def flipped_byte(data):
    """config.json stored with its original CRC but one byte changed."""
    changed = bytearray(data)
    changed[len(data) // 2] ^= 0x01
    return entry("config.json", bytes(changed), crc=zlib.crc32(data))


def replace_in_h5(f, name, make):
    """Replace the object at ``name`` by what ``make(group, key)`` puts there."""
    group, key = name.rsplit("/", 1)
    del f[name]
    make(f[group], key)


def _soft_link_to_itself(group, key):
    """A soft link ``key`` in ``group`` that points at itself."""
    group[key] = h5py.SoftLink(f"{group.name}/{key}")


def input_size(height, width):
    """An edit that gives the model's input as height x width, everywhere Keras writes it."""
    def edit(config):
        shape = [None, height, width, 3]
        config["config"]["build_input_shape"] = config["build_config"]["input_shape"] = shape
        settings(config, "input_layer_1")["batch_shape"] = shape
    return edit


def _scale_to_1e400(path):
    """The demo model (at ``path``) with its first "scale" written as 1e400 in config.json."""
    text = re.sub(r'"scale": [-+0-9.e]+', '"scale": 1e400', json.dumps(demo_config()), count=1)
    assert "1e400" in text
    return write_zip(path, demo_entries(config_json=text.encode()))


CONV = "layers/conv2d/vars"  # the first conv layer (conv2d_6) of the demo model's weights
KERAS_MUTANTS = {
    # the zip archive
    "bad-crc": with_member("config.json", flipped_byte),
    "compression-method-99": with_member("config.json",
                                         lambda data: entry("config.json", data, method=99)),
    # config.json as text
    "json-100000-deep": with_config_bytes(b"[" * 100_000 + b"]" * 100_000),
    "json-invalid": with_config_bytes(_demo_members()["config.json"][:2000]),
    "json-not-utf8": with_config_bytes(
        _demo_members()["config.json"].replace(b"shapes_convnet", b"shapes_caf\xe9")),
    "scale-1e400": _scale_to_1e400,
    # config.json's structure
    "config-a-list": with_config(lambda c: c.update(config=c["config"]["layers"])),
    "config-null": with_config(lambda c: c.update(config=None)),
    "whole-config-a-list": with_config_bytes(b"[]"),
    "whole-config-null": with_config_bytes(b"null"),
    "layers-a-string": with_config(lambda c: c["config"].update(layers="conv2d_6")),
    "layer-config-null": with_config(lambda c: layer(c, "conv2d_6").update(config=None)),
    "missing-class_name": with_config(lambda c: layer(c, "conv2d_6").pop("class_name")),
    "missing-name": with_config(lambda c: settings(c, "conv2d_6").pop("name")),
    # config.json's numbers
    "strides-0": with_config(lambda c: settings(c, "conv2d_6").update(strides=[0, 0])),
    "input-0x0": with_config(input_size(0, 0)),
    "input-1x1": with_config(input_size(1, 1)),
    "input-100000x100000": with_config(input_size(100000, 100000)),
    "pool_size-0": with_config(lambda c: settings(c, "max_pooling2d_2").update(pool_size=0)),
    "pool_size-100000": with_config(
        lambda c: settings(c, "max_pooling2d_2").update(pool_size=[100000, 100000])),
    "padding-reflect": with_config(lambda c: settings(c, "conv2d_6").update(padding="reflect")),
    "kernel_size-0": with_config(lambda c: settings(c, "conv2d_6").update(kernel_size=0)),
    # model.weights.h5
    "scalar-kernel": with_weights(lambda f: replace_in_h5(
        f, f"{CONV}/0", lambda group, key: group.create_dataset(key, data=np.float32(1)))),
    "bias-a-group": with_weights(lambda f: replace_in_h5(
        f, f"{CONV}/1", lambda group, key: group.create_group(key))),
    "soft-link-loop": with_weights(lambda f: replace_in_h5(f, f"{CONV}/0",
                                                           _soft_link_to_itself)),
    "vars-key-x": with_weights(lambda f: f.move(f"{CONV}/0", f"{CONV}/x")),
}


def deflated_zeros(megabytes, head=b""):
    """An entry's (deflate stream, CRC, size) of ``head`` then zeros, ``megabytes`` MiB in
    all, made without holding them: after a full flush deflate starts afresh, so every
    MiB of zeros compresses to the same ~1 KB block."""
    mib = 1 << 20
    zeros = bytes(mib)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = head + bytes(mib - len(head))
    stream = compressor.compress(first) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(first)
    for _ in range(megabytes - 1):
        crc = zlib.crc32(zeros, crc)
    return stream + block * (megabytes - 1) + compressor.flush(), crc, megabytes * mib


BOMBS = {  # member, (MiB, first bytes: none, or HDF5's signature)
    "config.json-1.5GB": ("config.json", (1536, b"")),
    "model.weights.h5-3.5GB": ("model.weights.h5", (3338, b"\x89HDF\r\n\x1a\n")),
}


def zip_bomb(path, bomb):
    """The demo model (at ``path``) with one member replaced by the BOMBS entry ``bomb``."""
    name, (megabytes, head) = BOMBS[bomb]
    stream, crc, size = deflated_zeros(megabytes, head)
    new = entry(name, stream, zipfile.ZIP_DEFLATED, crc, size)
    return write_zip(path, demo_entries(**{name.replace(".", "_"): new}))


# -- .h5 weights: edits of a narrow VGG16 ----------------------------------------------------

def edited_copy(source, path, edit):
    """``path``, a copy of the .h5 file ``source`` with ``edit(h5py.File)`` applied."""
    shutil.copy(source, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def _set(name, index, value):
    """An edit that sets element ``index`` of dataset ``name`` to ``value``."""
    def edit(f):
        f[name][index] = value
    return edit


H5_MUTANTS = {
    "weight_names-an-integer": lambda f: f["block1_conv1"].attrs.create("weight_names", 7),
    "weight-name-a-group": lambda f: replace_in_h5(
        f, "block1_conv1/block1_conv1_b_1:0", lambda group, key: group.create_group(key)),
}
HUGE = {
    "kernel-1e38": _set("block1_conv1/block1_conv1_W_1:0", (0, 0, 0, 0), 1e38),
    "bias-3e38": _set("block1_conv1/block1_conv1_b_1:0", 0, 3e38),
}
METADATA = ["object header of /", "object header of block1_conv1",  # metadata_offsets' keys
            "object header of block1_conv1/block1_conv1_W_1:0", "TREE", "SNOD", "HEAP"]


def metadata_offsets(path):
    """{what: byte offset} of HDF5 metadata in ``path``: object headers (found through
    h5py) and the first B-tree, symbol table node and local heap (by their signatures)."""
    with h5py.File(path, "r") as f:
        offsets = {f"object header of {name}": h5py.h5o.get_info(f[name].id).addr
                   for name in ("/", "block1_conv1", "block1_conv1/block1_conv1_W_1:0")}
    with open(path, "rb") as f:
        data = f.read()
    for signature in (b"TREE", b"SNOD", b"HEAP"):
        offsets[signature.decode()] = data.index(signature)
    return offsets


# -- Weights that pass every load check but overflow at run time ------------------------------

def _overflowing(name, item):
    """Every kernel constant and positive, its root sum of squares 5e9 (under the load
    check's 1e10), biases 0: activations grow ~1e10 a layer and overflow float32."""
    if isinstance(item, h5py.Dataset):
        item[...] = 5e9 / np.sqrt(item.size) if item.ndim > 1 else 0


overflowing_model = with_weights(lambda f: f.visititems(_overflowing))  # a writer(path)
