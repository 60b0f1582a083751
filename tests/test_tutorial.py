"""The lesson notebook, docs/tutorial.ipynb: committed without outputs, exactly what
scripts/make_tutorial.py builds, and it runs top to bottom, offline, without an error.

nbformat, nbclient and ipykernel are in the test extra; a missing one fails these tests
(an import error), never skips them.
"""

import os
import time

import pytest

import nbformat
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

from scripts.make_tutorial import NOTEBOOK, ROOT, build


def test_committed_notebook_is_the_scripts_without_outputs():
    """Compared cell by cell (id, kind, source), not byte for byte: another nbformat
    version may write the same notebook with other whitespace."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    fresh = nbformat.reads(build(), as_version=4)
    assert [(c.id, c.cell_type, c.source) for c in nb.cells] == \
        [(c.id, c.cell_type, c.source) for c in fresh.cells], \
        "docs/tutorial.ipynb is stale: python -m scripts.make_tutorial"
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)


def python3_kernel():
    """A kernel manager for ipykernel run by this very interpreter (sys.executable).

    With no kernel folders to search, jupyter_client falls back to ipykernel's built-in
    "python3" spec, whose command is this Python: a "python3" spec installed elsewhere
    (~/.local/share/jupyter, /usr/share/jupyter) cannot send the notebook to another
    Python that lacks vggnp, and a fresh venv needs no ``ipykernel install``."""
    return KernelManager(kernel_name="python3",
                         kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))


@pytest.mark.slow  # it starts a notebook kernel: a process (the fast tier is in-process)
def test_notebook_runs_top_to_bottom():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, km=python3_kernel(), kernel_name="python3", timeout=120,
                            resources={"metadata": {"path": ROOT}})  # cwd: the repository
    began = time.perf_counter()
    client.execute()  # raises CellExecutionError at the first cell that fails
    seconds = time.perf_counter() - began
    print(f"docs/tutorial.ipynb ran in {seconds:.1f} s")

    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    for step in ("equals model.forward(x): True", "im2col + GEMM == loops: True",
                 "equals vggnp.grad_cam: True", "relative error"):
        assert step in text, step
    assert any("image/png" in out.get("data", {}) for out in outputs)  # the overlay drawn
    # The VGG16 section runs only where VGGNP_WEIGHTS names a file; else it says so.
    weights = os.path.expanduser(os.environ.get("VGGNP_WEIGHTS", ""))
    assert os.path.isfile(weights) or "VGG16 section skipped" in text
