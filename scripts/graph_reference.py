"""The measured errors of vggnp against TensorFlow on every Keras Applications model of
issue #25 (the models, sizes and weights of tests/test_application_models.py), as a
Markdown table: float64 (vggnp against a float64 twin of the Keras model: the same
computation) and float32 (vggnp and TF, each against that float64 result).

    python -m scripts.graph_reference [MODEL ...]       # needs TensorFlow; ~2 minutes

Columns: max |difference| / max |reference| for the logits and d logit / d input (class
0), max |difference| for the Grad-CAM map (in [0, 1]) at the default layer.
"""

import os
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # TF's Eigen path, as the tests
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def measure(tf, name, folder):
    """{column: error} of one model."""
    from test_application_models import MODELS, built, float64, ours, relative, tf_reference
    keras = tf.keras
    model, twin, ours32, ours64, x = built(keras, name, Path(folder))
    x64, default = x.astype("float64"), MODELS[name][2]
    with float64(keras):
        logits64, cam64, d64 = tf_reference(tf, keras, twin, x64, default, 0)
    logits, cam, d = tf_reference(tf, keras, model, x, default, 0)
    truth_cam, truth_d = ours(ours64, x64, default, 0)
    our_cam, our_d = ours(ours32, x, default, 0)
    truth_logits, our_logits = ours64.logits(x64), ours32.logits(x)
    return {"layers": len(ours32.names), "default layer": default,
            "f64 logits": relative(truth_logits, logits64),
            "f64 map": abs(truth_cam - cam64).max(), "f64 dx": relative(truth_d, d64),
            "f32 logits vggnp / TF": (relative(our_logits, truth_logits),
                                      relative(logits, truth_logits)),
            "f32 map vggnp / TF": (abs(our_cam - truth_cam).max(),
                                   abs(cam - truth_cam).max()),
            "f32 dx vggnp / TF": (relative(our_d, truth_d), relative(d, truth_d))}


def cell(value):
    if isinstance(value, tuple):
        return " / ".join(f"{v:.1e}" for v in value)
    return f"{value:.1e}" if isinstance(value, float) else str(value)


def main(names):
    import tensorflow as tf
    from test_application_models import MODELS
    warnings.simplefilter("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names or MODELS:
            row = measure(tf, name, folder)
            rows.append([name] + [cell(v) for v in row.values()])
            print(f"measured {name}", file=sys.stderr, flush=True)
    header = ["model"] + list(row)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
