"""Read VGG16 weights from the files Keras writes, with h5py only (no TensorFlow).

Supported layouts, always mapped by layer name:

- **Legacy HDF5** (the official Keras Applications file, Keras 1; Keras 2 ``save_weights``
  and ``model.save`` to ``.h5``; Keras 3 ``model.save('x.h5')``): a root attribute
  ``layer_names``; group ``<layer>`` has an attribute ``weight_names`` listing its datasets
  (``block1_conv1_W_1:0``, ``block1_conv1/kernel:0`` or ``block1_conv1/kernel``). Full-model
  files keep this under ``model_weights/``.
- **Keras 3** ``save_weights('x.weights.h5')`` and the ``model.weights.h5`` inside a
  ``.keras`` zip: groups ``layers/conv2d_N/vars/{0,1}`` (kernel, bias); since Keras 3.6 the
  ``vars`` group carries the layer's ``name``. Older files are mapped by layer order.

:func:`read_vgg16_weights` validates before it reads any data: no link or dataset that
reads another file (HDF5 external links, external storage, virtual datasets: a weights
file could otherwise make vggnp read any file on the machine), exact VGG16 layer names,
shapes, float32; then that every value is finite. Nothing is ever unpickled: HDF5 holds
plain arrays, and a .keras file's config is read as JSON text only.
"""

import os
import re

import numpy as np

from ..nn import spec
from . import official
from .hdf5 import (WeightsError, check_values, dataset, hdf5_errors, opened_weights_file,
                   refuse_external_links, check_dataset, text)


def _kernel_and_bias(datasets):
    """Sort a layer's datasets into (kernel, bias); None if it is not such a layer."""
    if len(datasets) != 2:
        return None
    kernel, bias = sorted(datasets, key=lambda d: d.ndim, reverse=True)
    return (kernel, bias) if bias.ndim == 1 else None


def _legacy_layers(root):
    """{layer name: [datasets]} from a group with a ``layer_names`` attribute."""
    layers = {}
    for name in map(text, root.attrs["layer_names"]):
        group = root[name]
        weight_names = [text(w) for w in group.attrs.get("weight_names", [])]
        if weight_names:
            layers[name] = [dataset(group, w) for w in weight_names]
    return layers


def _keras3_layers(root):
    """{layer name: [datasets]} from Keras 3's ``layers/<class>_<N>/vars/<i>`` layout.

    Named by the ``vars`` group's ``name`` attribute (Keras >= 3.6). Older files have only
    class-based keys (``conv2d``, ``conv2d_1``, ..., ``dense_2``), numbered in layer order:
    then the k-th conv (or dense) layer gets the k-th VGG16 conv (or dense) name, which is
    only done when the counts are exactly those of VGG16.
    """
    named, by_class = {}, {}
    for key, group in root["layers"].items():
        vars_group = group.get("vars")
        if vars_group is None or len(vars_group) == 0:
            continue
        datasets = [dataset(vars_group, k) for k in sorted(vars_group, key=int)]
        if "name" in vars_group.attrs:
            named[text(vars_group.attrs["name"])] = datasets
        class_name, _, number = re.fullmatch(r"(.*?)(_(\d+))?", key).groups()
        by_class.setdefault(class_name, []).append((int(number or 0), datasets))
    if named:
        return named
    layers = {}
    for class_name, names in [("conv2d", spec.CONV_NAMES), ("dense", spec.DENSE_NAMES)]:
        found = [d for _, d in sorted(by_class.pop(class_name, []), key=lambda t: t[0])]
        if len(found) == len(names) or (class_name == "dense" and not found):
            layers.update(zip(names, found))
        else:  # not VGG16's counts: keep class-based names so the error can show them
            layers.update((f"{class_name}_{i}", d) for i, d in enumerate(found))
    for class_name, found in by_class.items():
        layers.update((f"{class_name}_{i}", d) for i, (_, d) in enumerate(found))
    return layers


def _read_config_data_format(config_json):
    """'channels_first' if any layer in a Keras model config says so, else None."""
    return "channels_first" if '"channels_first"' in (config_json or "") else None


def _layers_of(f, path):
    """{layer name: [datasets]} for any supported layout."""
    if "layer_names" in f.attrs:
        return _legacy_layers(f)
    if "model_weights" in f and "layer_names" in f["model_weights"].attrs:
        return _legacy_layers(f["model_weights"])
    if "layers" in f:
        return _keras3_layers(f)
    raise WeightsError(f"{path}: an HDF5 file, but not Keras weights "
                       f"(top-level keys: {sorted(f.keys())[:8]})")


def _check_names(layers, path, need_top):
    """Exact VGG16 layer set: all 13 convs, and fc1/fc2/predictions all or none."""
    names = list(layers)
    conv4 = sorted(n for n in names if re.fullmatch(r"block\d_conv4", n))
    n_conv = sum(kernel.ndim == 4 for kernel, _ in layers.values())
    if conv4 or n_conv == 16:
        found = f"it has {', '.join(conv4)}" if conv4 else "it has 16 conv layers"
        raise WeightsError(f"{path}: this looks like VGG19 ({found}); vggnp implements VGG16")
    unknown = sorted(set(names) - set(spec.CONV_NAMES) - set(spec.DENSE_NAMES))
    missing = [n for n in spec.CONV_NAMES if n not in names]
    if unknown or missing:
        shown = ", ".join(sorted(names)[:6]) + (", ..." if len(names) > 6 else "")
        raise WeightsError(f"{path}: not a VGG16 weights file: it has {len(names)} layers "
                           f"with weights ({shown})"
                           + (f"; missing {', '.join(missing[:3])}" if missing else "")
                           + "; another Keras model is read by --model (in Python: "
                             "vggnp.load_keras_model)")
    top = [n for n in spec.DENSE_NAMES if n in names]
    if top and len(top) != len(spec.DENSE_NAMES):
        raise WeightsError(f"{path}: a VGG16 file with only part of the classifier ({top})")
    if need_top and not top:
        raise WeightsError(f"{path}: a 'notop' VGG16 file (convolutional base only, no "
                           "fc1/fc2/predictions); the classifier needs the full weights file")
    return bool(top)


def _check_shapes(layers, path, input_size, standard):
    """Kernel/bias shapes chain through the network; with ``standard``, equal VGG16's."""
    expected = spec.standard_shapes()
    c_in = 3
    for name in spec.CONV_NAMES:
        kernel, bias = layers[name]
        if kernel.ndim == 4 and kernel.shape[2:] == (3, 3) and kernel.shape[:2] != (3, 3):
            raise WeightsError(f"{path}: the conv kernels are stored channels-first "
                               f"({name} kernel {kernel.shape}, a Theano-era file); use the "
                               "channels-last file (..._tf_dim_ordering_tf_kernels.h5)")
        if kernel.ndim != 4 or kernel.shape[:3] != (3, 3, c_in) or bias.shape != kernel.shape[3:]:
            raise WeightsError(f"{path}: {name} has kernel {kernel.shape} and bias {bias.shape}; "
                               f"VGG16 needs (3, 3, {c_in}, F) and (F,)")
        c_in = kernel.shape[3]
    d_in = (input_size[0] // 32) * (input_size[1] // 32) * c_in
    for name in spec.DENSE_NAMES:
        if name not in layers:
            break
        kernel, bias = layers[name]
        if kernel.ndim != 2 or kernel.shape[0] != d_in or bias.shape != kernel.shape[1:]:
            raise WeightsError(f"{path}: {name} has kernel {kernel.shape} and bias {bias.shape}; "
                               f"expected ({d_in}, M) and (M,)")
        d_in = kernel.shape[1]
    if standard:
        for name, (kernel, bias) in layers.items():
            if (kernel.shape, bias.shape) != expected[name]:
                raise WeightsError(f"{path}: {name} has kernel {kernel.shape}, the ImageNet "
                                   f"VGG16 has {expected[name][0]}: a VGG-shaped model of "
                                   "other widths (load it with standard=False)")


def read_vgg16_weights(path, input_size=spec.INPUT_SIZE, standard=True, need_top=False):
    """Read and validate VGG16 weights from any supported Keras file.

    path: .h5 / .weights.h5 / .keras file. input_size: (H, W) the model will see, which
    fixes fc1's input size (H//32 * W//32 * C). standard: require the ImageNet VGG16's
    widths exactly; False accepts narrower VGG-shaped models (used by the test fixture).
    need_top: refuse a file without fc1/fc2/predictions.

    Returns {layer name: (kernel, bias)} as float32 NumPy arrays; convs (3, 3, C, F), (F,),
    dense (D, M), (M,). Raises WeightsError with a description of the file otherwise.
    """
    path = os.fspath(path)
    _check_official(path)
    with opened_weights_file(path) as (f, config, base, _), hdf5_errors(path):
        refuse_external_links(f, path)
        raw = _layers_of(f, path)
        if _read_config_data_format(config):
            raise WeightsError(f"{path}: the model was built channels-first (data_format "
                               "'channels_first'); vggnp needs a channels-last model")
        layers = {}
        for name, datasets in raw.items():
            pair = _kernel_and_bias(datasets)
            if pair is None:
                raise WeightsError(f"{path}: layer {name} holds {len(datasets)} weight arrays "
                                   f"of shapes {[d.shape for d in datasets]}; not a VGG16 layer")
            layers[name] = pair
        _check_names(layers, path, need_top)
        _check_shapes(layers, path, input_size, standard)
        return _read_arrays(layers, path, base)


def _check_official(path):
    """A file with the official file's name or size must have its md5."""
    if os.path.isfile(path) and official.is_official(path) and not official.official_md5_ok(path):
        raise WeightsError(f"{path}: has the official VGG16 file's name or size, but not its "
                           f"md5 ({official.MD5}): the file is damaged (a changed byte). "
                           "Delete it and download it again (python -m vggnp.cam without "
                           "--weights fetches a fresh copy)")


def _read_arrays(layers, path, base):
    """{name: (kernel, bias) datasets} -> {name: (kernel, bias) arrays}, each float32,
    stored in this file only, finite and of a trained network's size (hdf5.check_values)."""
    arrays = {}
    for name, (kernel, bias) in layers.items():
        for d in (kernel, bias):
            check_dataset(d, path, name)
            if d.dtype != np.float32:
                raise WeightsError(f"{path}: {name} is stored as {d.dtype}, expected float32")
        try:
            arrays[name] = (_values(kernel, path, base), _values(bias, path, base))
        except OSError as e:
            raise WeightsError(f"{path}: {name} cannot be read (truncated file?): {e}") \
                from None
        for values in arrays[name]:
            check_values(values, path, name)
    return arrays


def _values(data, path, base):
    """A dataset's values. Stored contiguously and uncompressed in a plain file or an
    uncompressed .keras member (as Keras writes weights), they are memory-mapped: no copy,
    pages are read on first use and shared with the page cache. Otherwise they are read
    into memory. base: the HDF5 data's offset in ``path``, None if not mappable.
    A mapped array is handed on as a plain ndarray view of the np.memmap (which it keeps
    alive): every slice of a memmap runs its Python ``__array_finalize__``, ~1 us that a
    conv's kernel taps paid hundreds of times a pass (about 1 % of a pass's py-spy
    samples; in a whole pass's time no difference could be told from the noise,
    docs/speed.md)."""
    offset = data.id.get_offset() if base is not None and data.chunks is None else None
    nbytes = data.size * data.dtype.itemsize
    if (offset is not None and data.compression is None
            and (base + offset) % data.dtype.itemsize == 0
            and base + offset + nbytes <= os.path.getsize(path)):
        return np.asarray(np.memmap(path, dtype=data.dtype, mode="r", offset=base + offset,
                                    shape=data.shape))
    return data[()]
