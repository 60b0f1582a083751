"""iNNvestigate's maps for a chain of layers, in a process of their own.

    python -m scripts.innvestigate_reference IN.npz OUT.npz [REPEATS]

iNNvestigate 2.1.2 needs the legacy tf_keras and TensorFlow's graph mode, both settings of
the whole process (``TF_USE_LEGACY_KERAS=1``, ``disable_eager_execution``): the test that
reads these maps (``tests/test_lrp_reference.py``) and the benchmark that times them
(``scripts/lrp_bench.py``) run this script in a child process.

IN.npz: "layers" (a JSON list: {"kind": conv|maxpool|flatten|dense|gap, ...}), each
layer's "w{i}", "b{i}", the input "x" (N, H, W, C) and "analyzers" (a JSON list of
[key, iNNvestigate analyzer name, keyword arguments]). OUT.npz: for each key the map
(N, H, W, C) as "{key}" and, as "{key}_sums" (T, N), the sums of the relevance kept at
each tensor of the model, in the model's order (the input first). REPEATS (default 0):
then also "{key}_seconds", the time of each of that many more ``analyze`` calls (the
first, which builds the analyzer's graph, not among them).
"""

import json
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.compat.v1.disable_eager_execution()

import innvestigate  # noqa: E402
import tf_keras  # noqa: E402


def make_layer(spec, i, data):
    """One tf_keras layer of the spec (its weights set once it is built)."""
    kind, k = spec["kind"], tf_keras.layers
    if kind == "conv":
        w = data[f"w{i}"]
        return k.Conv2D(w.shape[3], w.shape[:2], strides=spec["strides"],
                        padding=spec["padding"], activation=spec["activation"])
    if kind == "dense":
        return k.Dense(data[f"w{i}"].shape[1], activation=spec["activation"])
    if kind == "maxpool":
        return k.MaxPooling2D(spec["pool"], spec["strides"], spec["padding"])
    simple = {"flatten": k.Flatten, "gap": k.GlobalAveragePooling2D, "add": k.Add,
              "concat": k.Concatenate}
    if kind == "activation":
        return k.Activation(spec["activation"])
    if kind in simple:
        return simple[kind]()
    raise ValueError(f"unknown layer kind {kind}")


def build(layers, data, input_shape):
    """The tf_keras model of the spec, with its weights: Sequential for a chain, a
    Functional model where a spec names its "inputs" (indices of earlier layers, -1 the
    image). Its last Dense is linear (iNNvestigate explains the logits)."""
    graph = any("inputs" in spec for spec in layers)
    image = tf_keras.Input(input_shape)
    model = None if graph else tf_keras.Sequential([image])
    tensors = []
    for i, spec in enumerate(layers):
        layer = make_layer(spec, i, data)
        if graph:
            args = [image if j < 0 else tensors[j] for j in spec["inputs"]]
            tensors.append(layer(args if len(args) > 1 else args[0]))
        else:
            model.add(layer)
        if spec["kind"] in ("conv", "dense"):
            layer.set_weights([data[f"w{i}"], data[f"b{i}"]])
    return tf_keras.Model(image, tensors[-1]) if graph else model


def main(source, target, repeats=0):
    data = np.load(source)
    layers = json.loads(str(data["layers"]))
    x = data["x"]
    out = {}
    for key, name, kwargs in json.loads(str(data["analyzers"])):
        # Each analyzer in a graph of its own: in one graph, each analyzer took longer to
        # build than the one before (a narrow VGG16's sixth 35 s, alone 6 s).
        tf_keras.backend.clear_session()
        model = build(layers, data, x.shape[1:])
        # input_t_gradient fails in 2.1.2 on this TensorFlow (its Multiply gets a list):
        # the gradient analyzer's map times x is the same product
        times_x = name == "input_t_gradient"
        analyzer = innvestigate.create_analyzer("gradient" if times_x else name, model,
                                                reverse_keep_tensors=not times_x, **kwargs)
        out[key] = analyzer.analyze(x) * (x if times_x else 1)
        seconds = []
        for _ in range(int(repeats)):
            began = time.perf_counter()
            analyzer.analyze(x)
            seconds.append(time.perf_counter() - began)
        out[f"{key}_seconds"] = np.array(seconds)
        if times_x:
            continue
        kept = [value for _, value in analyzer._reversed_tensors]  # sorted by node
        out[f"{key}_sums"] = np.array([v.reshape(len(x), -1).sum(axis=1, dtype=np.float64)
                                       for v in kept])
    np.savez(target, **out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
