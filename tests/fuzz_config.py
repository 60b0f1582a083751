"""Config-field mutants checked against Keras (issue #27.2): a layer field of the demo model
given another value, or a field added; vggnp must either refuse the file (one line naming
the layer and field) or give Keras' own answer on it. A mutant Keras cannot load is fine
for vggnp to refuse, and a failure to accept -- except one case, on purpose: a
training-only field (an initialiser, regulariser or constraint) naming an object Keras does
not know, such as a custom one the user registers in their code: it cannot change the
output, and vggnp reads the model (counted as "training-only name").

    outcomes = check_config_mutants(keras, n=40, seed=0, folder=tmp)
    # {"refused": k, "equal": m, "both refuse": j, "different": [...], "accepted alone": [...]}

``tests/test_layer_fields.py`` runs 40 in CI; ``python -m scripts.fuzz --config 400`` more.
"""

import copy
import json
import os
import re
import zipfile

import numpy as np

from vggnp.files.hdf5 import ModelError
from vggnp.models.keras_convnet import load_keras_model

try:  # under pytest
    from fuzz_seeds import DEMO_MODEL
except ImportError:  # imported as tests.fuzz_config by python -m scripts.fuzz
    from tests.fuzz_seeds import DEMO_MODEL

PAIRS = [1, 2, [1, 1], [2, 2], [1, 2], [3, 3], [0, 0]]
VALUES = {  # field: values a mutant may give it (a field not here: ANY)
    "kernel_size": PAIRS, "strides": PAIRS, "pool_size": PAIRS, "dilation_rate": PAIRS,
    "padding": ["same", "valid", "causal", "full"], "groups": [1, 2, 4],
    "activation": ["relu", "linear", "sigmoid", "softmax", "tanh", "swish", "relu6",
                   {"class_name": "ReLU", "config": {"max_value": 6.0}},
                   {"module": "keras.layers", "class_name": "ReLU", "config": {}},
                   {"class_name": "ReLU", "config": {}},
                   {"module": "keras.activations", "class_name": "function", "config": "relu"},
                   {"class_name": "function", "config": "relu"}],
    "use_bias": [True, False], "data_format": ["channels_last", "channels_first"],
    "dtype": ["float32", "float16", "mixed_float16", "bfloat16"],
    "keepdims": [True, False], "scale": [0.5, 1.0, -2.0, [0.5, 1.0, 2.0]],
    "offset": [0.0, 1.0, -0.5], "units": [3, 4], "filters": [8, 16],
    "trainable": [False], "lora_rank": [None, 2], "quantization_config": [None, {"mode": "int8"}],
}
ANY = [None, 0, 1, -1, 2.5, "x", [], {}, True]
NEW_FIELDS = {"future_option": [1, "on"], "dilation_rate": PAIRS, "groups": [2],
              "activity_regularizer": [{"class_name": "L2", "config": {"l2": 0.1}}]}


# "layer.kernel_initializer = "x"" and the like: a name (or an object) in a training-only field
TRAINING_ONLY = re.compile(r"_(initializer|regularizer|constraint) = [\"{]")


def mutate(config, rng):
    """Change one field of one layer of ``config`` (in place); what was done, in words."""
    layers = config["config"]["layers"]
    layer = layers[int(rng.integers(len(layers)))]["config"]
    if rng.random() < 0.2:
        field = sorted(NEW_FIELDS)[int(rng.integers(len(NEW_FIELDS)))]
        choices = NEW_FIELDS[field]
    else:
        field = sorted(layer)[int(rng.integers(len(layer)))]
        choices = VALUES.get(field, ANY)
    value = choices[int(rng.integers(len(choices)))]
    layer[field] = copy.deepcopy(value)
    return f"{layer.get('name')}.{field} = {json.dumps(value)[:50]}"


def write_mutant(path, rng):
    """The demo model with one field changed, as a .keras file; what was changed."""
    with zipfile.ZipFile(DEMO_MODEL) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "config.json":
                config = json.loads(data)
                what = mutate(config, rng)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return what


def keras_answer(keras, path, x):
    """Keras' predictions on x, or None if Keras cannot load or run the file."""
    try:
        model = keras.models.load_model(path, compile=False)
        return np.asarray(model.predict(x, verbose=0))
    except Exception:
        return None


def check_config_mutants(keras, n, seed, folder):
    """Make n mutants and judge each (see the module docstring)."""
    rng = np.random.default_rng(seed)
    x = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    found = {"refused": 0, "equal": 0, "both refuse": 0, "training-only name": 0,
             "different": [], "accepted alone": []}
    for k in range(n):
        path = os.path.join(folder, f"mutant_{k}.keras")
        what = write_mutant(path, rng)
        theirs = keras_answer(keras, path, x)
        try:
            ours = load_keras_model(path).predict(x)
        except ModelError:
            found["both refuse" if theirs is None else "refused"] += 1
            continue
        if theirs is None and TRAINING_ONLY.search(what):
            found["training-only name"] += 1
        elif theirs is None:
            found["accepted alone"].append(what)
        elif theirs.shape != ours.shape or not np.allclose(ours, theirs, atol=1e-4, rtol=1e-3):
            found["different"].append(what)
        else:
            found["equal"] += 1
    return found
