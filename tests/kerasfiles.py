"""Test helper: Keras 1-layout HDF5 files written by hand (the official file's layout).

No TensorFlow here, so the weight-file tests run without it.
"""

import h5py
import numpy as np
# Every file layout vggnp reads; tests/conftest.py's keras_files fixture writes each.
FORMATS = ["keras1_official_layout.h5", "keras2_save_weights.h5", "keras2_model_save.h5",
           "keras3.weights.h5", "keras3_model_save.h5", "keras3.keras"]


def write_keras1_h5(path, weights, channels_first=False):
    """Write ``weights`` in the layout of the official Keras Applications file.

    Root attribute ``layer_names`` (fixed-length byte strings), one group per layer whose
    ``weight_names`` attribute lists datasets ``<layer>_W_1:0`` and ``<layer>_b_1:0`` stored
    directly in the group. channels_first stores kernels (F, C, KH, KW), as Theano did.
    """
    names = ["input_1"] + list(weights) + [f"block{b}_pool" for b in range(1, 6)] + ["flatten"]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in names], dtype="S")
        f.attrs["backend"] = b"theano" if channels_first else b"tensorflow"
        f.attrs["keras_version"] = b"1.2.2"
        for name in names:
            group = f.create_group(name)
            if name not in weights:
                group.attrs["weight_names"] = np.array([], dtype="S")
                continue
            kernel, bias = weights[name]
            if channels_first and kernel.ndim == 4:
                kernel = kernel.transpose(3, 2, 0, 1)
            wnames = [f"{name}_W_1:0", f"{name}_b_1:0"]
            group.attrs["weight_names"] = np.array([w.encode() for w in wnames], dtype="S")
            group.create_dataset(wnames[0], data=kernel)
            group.create_dataset(wnames[1], data=bias)


def write_keras3_weights_h5(path, weights, with_names=True):
    """Write ``weights`` as Keras 3's ``save_weights('x.weights.h5')`` does.

    Groups ``layers/conv2d``, ``layers/conv2d_1``, ... ``layers/dense_2``, each with
    ``vars/0`` (kernel) and ``vars/1`` (bias). Keras >= 3.6 puts the layer name in the
    ``vars`` group's ``name`` attribute; ``with_names=False`` writes an older file.
    """
    counts = {}
    with h5py.File(path, "w") as f:
        for name, (kernel, bias) in weights.items():
            kind = "conv2d" if kernel.ndim == 4 else "dense"
            n = counts[kind] = counts.get(kind, -1) + 1
            group = f.create_group(f"layers/{kind}" + (f"_{n}" if n else "") + "/vars")
            if with_names:
                group.attrs["name"] = name
            group["0"], group["1"] = kernel, bias
