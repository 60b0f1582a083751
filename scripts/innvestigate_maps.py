"""The parent's side of ``innvestigate_reference.py``: a vggnp chain written as layer specs
and arrays, iNNvestigate run on it in a child process, its maps read back. Used by
``tests/test_lrp_reference.py`` and ``scripts/lrp_bench.py``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from vggnp.nn.convnet_layers import Activation, GlobalAvgPool2D, Rescaling
from vggnp.nn.graph import IMAGE, Graph
from vggnp.nn.layers import Conv2D, Dense, Flatten, MaxPool2D
from vggnp.nn.merge_layers import Add, Concatenate

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def layer_spec(layer, last):
    """The JSON-able spec of one layer (``innvestigate_reference.make_layer`` builds it)."""
    if isinstance(layer, Conv2D):
        return {"kind": "conv", "strides": list(layer.strides), "padding": layer.padding,
                "activation": layer.activation_name}
    if isinstance(layer, Dense):
        return {"kind": "dense", "activation": "linear" if last else layer.activation_name}
    if isinstance(layer, MaxPool2D):
        return {"kind": "maxpool", "pool": list(layer.pool_size),
                "strides": list(layer.strides), "padding": layer.padding}
    kinds = {Flatten: "flatten", GlobalAvgPool2D: "gap", Add: "add", Concatenate: "concat"}
    if isinstance(layer, Activation):
        return {"kind": "activation", "activation": layer.activation_name}
    if type(layer) in kinds:
        return {"kind": kinds[type(layer)]}
    raise ValueError(f"no spec for {type(layer).__name__}")


def layer_specs(model):
    """(JSON-able specs, {name: array}) of the model after any leading Rescaling; for a
    graph each spec also lists its "inputs" (indices of earlier specs, -1 the image)."""
    specs, arrays, index = [], {}, {IMAGE: -1}
    for layer in model.layers:
        if isinstance(layer, Rescaling) and not specs:
            index[layer.name] = -1
            continue
        i = index[layer.name] = len(specs)
        specs.append(layer_spec(layer, layer is model.layers[-1]))
        if isinstance(model, Graph):
            specs[-1]["inputs"] = [index[name] for name in model.inputs_of[layer.name]]
        if isinstance(layer, (Conv2D, Dense)):
            arrays[f"w{i}"], arrays[f"b{i}"] = layer.w, layer.b
    return specs, arrays


def innvestigate_maps(folder, model, x, analyzers, repeats=0):
    """{key: map, key_sums: (T, N)[, key_seconds]} from iNNvestigate for model's chain, run
    in a child process. x: the input of the first layer after a leading Rescaling;
    analyzers: {key: (iNNvestigate's name, keyword arguments)}; folder: for the files."""
    specs, arrays = layer_specs(model)
    source, target = Path(folder) / "in.npz", Path(folder) / "out.npz"
    np.savez(source, layers=json.dumps(specs), x=x, **arrays,
             analyzers=json.dumps([[k, name, kw] for k, (name, kw) in analyzers.items()]))
    done = subprocess.run([sys.executable, "-m", "scripts.innvestigate_reference",
                           str(source), str(target), str(repeats)], capture_output=True,
                          text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"iNNvestigate failed: {done.stderr[-3000:]}")
    return dict(np.load(target))
