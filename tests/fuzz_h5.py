"""HDF5 mutations of the fuzz harness (issue #15): attributes, datasets and links of an
HDF5 file edited with h5py, for the VGG16 .h5 weights and the .keras model's
model.weights.h5 member.

An HDF5 edit is ``(open file, rng) -> what was done`` (H5_EDITS); :func:`edit_h5` applies
one to the bytes of a file, :func:`h5_family` makes a mutation family of one.
"""

import io

import h5py
import numpy as np

try:  # under pytest, and in the worker (tests/ on the path)
    from fuzz_bytes import bytes_family, pick
except ImportError:  # imported as tests.fuzz_h5 by python -m scripts.fuzz
    from tests.fuzz_bytes import bytes_family, pick


def h5_items(f):
    """(group names, dataset names) of an open file; the root is the first group."""
    groups, datasets = ["/"], []
    f.visititems(lambda name, obj: (datasets if isinstance(obj, h5py.Dataset)
                                    else groups).append(name))
    return groups, datasets


def _odd_attribute(current, groups, datasets, rng):
    """(what, value) to put in place of an attribute value ``current``."""
    choices = [("an integer", 7), ("a float", 2.5), ("NaN", np.float64("nan")),
               ("a byte string", b"x"), ("a str", "x"), ("an empty list", np.array([], "S1")),
               ("integers", np.arange(3)), ("2-D names", np.array([[b"a", b"b"]])),
               ("not UTF-8", np.array([b"\xff\xfe"])),
               ("a group's name", np.array([pick(rng, groups).encode()])),
               ("5,000 names", np.array([b"x%d" % i for i in range(5000)]))]
    if datasets:
        choices.append(("a dataset's path", np.array([pick(rng, datasets).encode()])))
    names = list(current) if isinstance(current, np.ndarray) and current.dtype.kind in "SO" \
        and current.ndim == 1 else []
    if names:
        choices += [("one name dropped", np.array(names[:-1] or [b""])),
                    ("a name added", np.array(names + [b"nope"])),
                    ("a name twice", np.array(names + names[:1])),
                    ("reversed", np.array(names[::-1])),
                    ("as str", np.array([_text(n) for n in names], dtype=h5py.string_dtype())),
                    ("names with ../", np.array([b"../" + bytes(n) for n in names]))]
    return pick(rng, choices)


def _text(name):
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def attribute_edit(f, rng):
    """Give an attribute (layer_names, weight_names, a layer's name, backend...) a value of
    another type, other names, or delete it; or add a layer_names/weight_names."""
    groups, datasets = h5_items(f)
    owners = [n for n in groups + datasets if len(f[n].attrs)]
    if not owners or rng.random() < 0.1:
        owner, key = pick(rng, groups), pick(rng, ["layer_names", "weight_names", "name"])
        current = None
    else:
        owner = pick(rng, owners)
        key = pick(rng, sorted(f[owner].attrs))
        current = f[owner].attrs[key]
        if rng.random() < 0.15:
            del f[owner].attrs[key]
            return f"delete attribute {key} of {owner}"
    what, value = _odd_attribute(current, groups, datasets, rng)
    f[owner].attrs[key] = value
    return f"attribute {key} of {owner} = {what}"


def _replace(f, name, **create):
    """Put a new dataset at ``name`` (h5py create_dataset arguments)."""
    del f[name]
    f.create_dataset(name, **create)


DATASET_EDITS = {  # what: (file, name, its values) -> None
    "a group": lambda f, n, d: (f.__delitem__(n), f.create_group(n)),
    "a scalar": lambda f, n, d: _replace(f, n, data=np.float32(1.5)),
    "a string": lambda f, n, d: _replace(f, n, data="x"),
    "float64": lambda f, n, d: _replace(f, n, data=d.astype(np.float64)),
    "float16": lambda f, n, d: _replace(f, n, data=d.astype(np.float16)),
    "int32": lambda f, n, d: _replace(f, n, data=d.astype(np.int32)),
    "complex64": lambda f, n, d: _replace(f, n, data=d.astype(np.complex64)),
    "bool": lambda f, n, d: _replace(f, n, data=d > 0),
    "reversed shape": lambda f, n, d: _replace(f, n, data=d.reshape(d.shape[::-1])),
    "flattened": lambda f, n, d: _replace(f, n, data=d.ravel()),
    "one value short": lambda f, n, d: _replace(f, n, data=d.ravel()[:-1]),
    "an extra axis": lambda f, n, d: _replace(f, n, data=d[None]),
    "empty": lambda f, n, d: _replace(f, n, data=np.zeros((0,) + d.shape[1:], d.dtype)),
    "huge, never written": lambda f, n, d: _replace(f, n, shape=(100_000, 100_000), dtype="f4"),
    "huge last axis, chunked": lambda f, n, d: _replace(
        f, n, shape=d.shape[:-1] + (2**28,), dtype="f4", chunks=d.shape[:-1] + (1024,)),
    "NaN fill, never written": lambda f, n, d: _replace(f, n, shape=d.shape, dtype="f4",
                                                       fillvalue=np.nan),
    "gzip (valid)": lambda f, n, d: _replace(f, n, data=d, compression="gzip"),
    "lzf, shuffle, fletcher32 (valid)": lambda f, n, d: _replace(
        f, n, data=d, compression="lzf", shuffle=True, fletcher32=True),
    "external storage": lambda f, n, d: _replace(f, n, shape=d.shape, dtype="f4",
                                                 external=[("/etc/passwd", 0, 1 << 20)]),
}
VALUE_EDITS = {"one inf": np.inf, "one NaN": np.nan, "one 3e38": 3e38, "one -3e38": -3e38,
               "all 1e38": 1e38, "all 1e20": 1e20, "all 1e9": 1e9, "all 1e-45": 1e-45}


def dataset_edit(f, rng):
    """Replace a weight dataset (DATASET_EDITS: a group, a scalar, another dtype or shape,
    a huge or never-written one, compressed, stored outside the file) or change its values
    (VALUE_EDITS: inf, NaN, float32's extremes, denormals)."""
    name = pick(rng, h5_items(f)[1])
    values = f[name][()]
    if rng.random() < 0.3 and values.dtype == np.float32 and values.size:
        what = pick(rng, VALUE_EDITS)
        flat = values.ravel()
        if what.startswith("one"):
            flat[int(rng.integers(flat.size))] = VALUE_EDITS[what]
        else:
            flat[:] = np.float32(VALUE_EDITS[what])
        f[name][...] = flat.reshape(values.shape)
    else:
        what = pick(rng, DATASET_EDITS)
        DATASET_EDITS[what](f, name, values)
    return f"dataset {name}: {what}"


def link_edit(f, rng):
    """Replace a dataset or group by a link: to itself, in a loop of two, dangling, to
    another object, to another file; or delete or move it."""
    groups, datasets = h5_items(f)
    name = pick(rng, groups[1:] + datasets)
    others = [n for n in (datasets if name in datasets else groups[1:]) if n != name
              and not n.startswith(name + "/") and not name.startswith(n + "/")] or [name]
    what = pick(rng, ["itself", "loop", "dangling", "another", "external", "hard", "delete",
                      "move"])
    if what == "move":
        f.move(name, name + "_moved")
        return f"move {name}"
    other = pick(rng, others)
    del f[name]
    link = {"itself": h5py.SoftLink("/" + name), "loop": h5py.SoftLink("/loop"),
            "dangling": h5py.SoftLink("/nowhere"), "another": h5py.SoftLink("/" + other),
            "external": h5py.ExternalLink("/etc/passwd", "/x")}.get(what)
    if what == "loop":
        f["loop"] = h5py.SoftLink("/" + name)
    if what == "hard" and other != name:
        f[name] = f[other]
    elif link is not None:
        f[name] = link
    return f"{name}: {what}" + (f" ({other})" if what in ("another", "hard") else "")


H5_EDITS = [attribute_edit, dataset_edit, link_edit]


def edit_h5(data, edit, rng):
    """Apply ``edit`` (one of H5_EDITS) to the HDF5 file in ``data``; (bytes, what)."""
    buffer = io.BytesIO(data)
    with h5py.File(buffer, "r+") as f:
        what = edit(f, rng)
    return buffer.getvalue(), what


def h5_family(edit):
    """A family from an HDF5 edit (f, rng) -> what: a byte edit through ``edit_h5``."""
    def as_bytes(data, rng, target):
        return edit_h5(data, edit, rng)
    as_bytes.__doc__ = edit.__doc__
    return bytes_family(as_bytes)
