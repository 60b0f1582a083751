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


def build(layers, data, input_shape):
    """The tf_keras Sequential model of the spec, with its weights; its last Dense is
    linear (iNNvestigate explains the logits)."""
    model = tf_keras.Sequential([tf_keras.Input(input_shape)])
    for i, spec in enumerate(layers):
        kind = spec["kind"]
        if kind == "conv":
            w = data[f"w{i}"]
            model.add(tf_keras.layers.Conv2D(w.shape[3], w.shape[:2], strides=spec["strides"],
                                             padding=spec["padding"],
                                             activation=spec["activation"]))
        elif kind == "dense":
            model.add(tf_keras.layers.Dense(data[f"w{i}"].shape[1],
                                            activation=spec["activation"]))
        elif kind == "maxpool":
            model.add(tf_keras.layers.MaxPooling2D(spec["pool"], spec["strides"],
                                                   spec["padding"]))
        elif kind == "flatten":
            model.add(tf_keras.layers.Flatten())
        elif kind == "gap":
            model.add(tf_keras.layers.GlobalAveragePooling2D())
        else:
            raise ValueError(f"unknown layer kind {kind}")
        if kind in ("conv", "dense"):
            model.layers[-1].set_weights([data[f"w{i}"], data[f"b{i}"]])
    return model


def main(source, target, repeats=0):
    data = np.load(source)
    layers = json.loads(str(data["layers"]))
    x = data["x"]
    model = build(layers, data, x.shape[1:])
    out = {}
    for key, name, kwargs in json.loads(str(data["analyzers"])):
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
