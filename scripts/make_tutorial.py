"""Write docs/tutorial.ipynb, the lesson: Grad-CAM on the shapes model, one step a cell.

    python -m scripts.make_tutorial            # (re)write docs/tutorial.ipynb
    python -m scripts.make_tutorial --check    # exit 1 if the committed notebook differs

The notebook is generated, never edited by hand: each step is a formula in a markdown cell
and a few lines of code that call vggnp's own functions under it. It is written without
outputs and byte for byte the same on every run (fixed cell ids, no kernel version), so
that a diff shows only what changed in the lesson; tests/test_tutorial.py runs it top to
bottom and checks that the committed file is this script's.
"""

import argparse
import os
import sys
from textwrap import dedent

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from scripts.tutorial_cells import CELLS

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NOTEBOOK = os.path.join(ROOT, "docs", "tutorial.ipynb")


def build():
    """The notebook as the text of the .ipynb file (nbformat 4.5, no outputs)."""
    nb = new_notebook()
    nb.nbformat, nb.nbformat_minor = 4, 5  # fixed: a newer nbformat must not change the file
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                  "language": "python"},
                   "language_info": {"name": "python"}}
    for cell_id, kind, source in CELLS:
        make = new_markdown_cell if kind == "md" else new_code_cell
        nb.cells.append(make(dedent(source).strip("\n"), id=cell_id))
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if docs/tutorial.ipynb differs from a "
                             "fresh build")
    args = parser.parse_args(argv)
    text = build()
    name = os.path.relpath(NOTEBOOK, ROOT)
    if args.check:
        try:
            with open(NOTEBOOK, encoding="utf-8", newline="") as f:
                same = f.read() == text
        except FileNotFoundError:
            same = False
        if not same:
            print(f"{name} is not what scripts/make_tutorial.py builds: run "
                  "python -m scripts.make_tutorial", file=sys.stderr)
            return 1
        print(f"{name} is up to date")
        return 0
    with open(NOTEBOOK, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {name} ({len(CELLS)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
