"""docs/math.md's table of backprop on a graph: the residual graph's input gradient, split
by the two paths the image takes (through the convolutions, and through the skip into
the ``Add``), their sum and finite differences:

    python -m scripts.dag_table          # print the table and the sentence after it
    python -m scripts.dag_table --write  # put them into docs/math.md

The graph is ``vggnp.nn.graph_gradcheck.residual_graph`` (float64); x and dL/dy are
seeded. The skip's share is what the ``Add`` passes back to the image: the gradient at
the Add's output (``backward(stop="add")``); the convolutions' share is the rest.
``tests/test_docs.py::test_the_dag_table_is_what_the_script_prints`` checks that
math.md holds what this prints.
"""

import argparse
import os
import re
import sys
import textwrap

import numpy as np

from scripts.cli_synopsis import write_block
from vggnp.nn.gradcheck import numerical_gradient, relative_error
from vggnp.nn.graph_gradcheck import residual_graph

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MATH = os.path.join(ROOT, "docs", "math.md")
BLOCK = re.compile(r"(<!-- dag: python -m scripts.dag_table --write -->\n)(.*?)"
                   r"(<!-- end of dag -->)", re.S)


def gradient_paths(seed=0):
    """{"through the convolutions", "through the skip (`Add`)", "their sum (vggnp)",
    "finite differences"}: dL/dx (N, H, W, C) each, for one seeded x and dL/dy."""
    rng = np.random.default_rng(seed)
    model = residual_graph()
    x = rng.standard_normal((2, 5, 6, 3))
    dout = rng.standard_normal(model.forward(x.copy()).shape)
    whole = model.backward(dout)
    skip = model.backward(dout, stop="add")  # what the Add passes to each of its inputs
    numeric = numerical_gradient(lambda v: model.forward(v), x.copy(), dout)
    return {"through the convolutions": whole - skip, "through the skip (`Add`)": skip,
            "their sum (vggnp)": whole, "finite differences": numeric}


def table(paths):
    """The markdown table (the first three pixels of row 0, channel 0) and the sentence
    with each path's relative error against finite differences."""
    lines = ["| path | dL/dx |", "|---|---|"]
    for name, d in paths.items():
        lines.append(f"| {name} | " + ", ".join(f"{v:.4f}" for v in d[0, 0, :3, 0]) + " |")
    numeric = paths["finite differences"]
    errors = [relative_error(paths[name], numeric) for name in list(paths)[:3]]
    e_sum = f"{errors[2]:.0e}".replace("e-0", "e-")  # 1e-9, not 1e-09
    sentence = (f"The sum agrees with finite differences to a relative error of {e_sum}; "
                f"either path alone is off by {errors[1]:.2f} (the skip) or {errors[0]:.2f} "
                "(the convolutions).")
    return "\n".join(lines) + "\n\n" + textwrap.fill(sentence, 90) + "\n"


def main(argv=None):
    """Print the block, or with --write put it into docs/math.md."""
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--write", action="store_true", help="update docs/math.md")
    text = table(gradient_paths())
    if not args.parse_args(argv).write:
        print(text)
        return 0
    return 0 if write_block(MATH, BLOCK, text) else 1


if __name__ == "__main__":
    sys.exit(main())
