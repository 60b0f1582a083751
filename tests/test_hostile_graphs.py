"""#25.7: hostile graphs through the same funnel as every model file: each is one line
naming the file and the layer (exit 3 on the command line), no traceback, no hang."""

import pytest

from helpers import MODEL_PATH, SHAPES
from hostile_graphs import GRAPH_EDITS, residual
from test_model_files import rewrite_config
from vggnp.keras_model import ModelError, load_keras_model


def test_the_residual_demo_is_a_graph_vggnp_runs(tmp_path):
    import numpy as np
    rewrite_config(MODEL_PATH, tmp_path / "graph.keras", residual)
    model = load_keras_model(tmp_path / "graph.keras")
    assert type(model).__name__ == "KerasGraph" and model.inputs_of["add"] == ("conv2d_7",
                                                                               "conv2d_6")
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    assert np.isfinite(model.predict(x)).all()


@pytest.mark.parametrize("name", GRAPH_EDITS)
def test_a_hostile_graph_is_one_line(tmp_path, name):
    edit, words = GRAPH_EDITS[name]
    path = tmp_path / "bad.keras"
    rewrite_config(MODEL_PATH, path, lambda config: edit(residual(config)))
    with pytest.raises(ModelError) as refused:
        load_keras_model(path)
    message = str(refused.value)
    assert words in message and message.startswith(str(path)) and "\n" not in message


def test_a_hostile_graph_on_the_command_line_is_exit_3(tmp_path):
    from helpers import run_cam
    path = tmp_path / "cycle.keras"
    edit = GRAPH_EDITS["a cycle"][0]
    rewrite_config(MODEL_PATH, path, lambda config: edit(residual(config)))
    # a real image: a run of inputs that cannot be read stops before any model loads
    result = run_cam(SHAPES[0], "--model", str(path), "--out", str(tmp_path))
    assert result.returncode == 3
    (line,) = result.stderr.strip().splitlines()
    assert "layer conv2d_6 takes ['conv2d_8']: not all are layers before it" in line


def test_a_keras_file_cut_short_says_so(tmp_path):
    """A .keras zip cut in half has no zip directory: one line that says it may be cut
    short (a new user's trial found "not an HDF5 or .keras file" misleading)."""
    data = open(MODEL_PATH, "rb").read()
    (tmp_path / "cut.keras").write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelError, match="a zip without its directory: a .keras file cut short"):
        load_keras_model(tmp_path / "cut.keras")
