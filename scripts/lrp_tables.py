"""The LRP tables of the docs, measured on the trained shapes model (weights/) and the
three committed shape photos (examples/):

    python -m scripts.lrp_tables          # print both
    python -m scripts.lrp_tables --write  # put them into docs/math.md and docs/trust.md

- conservation (docs/math.md): the relevance sum at the output of every layer, from the
  logit down to the input, for each composite, on examples/circle.png;
- sanity (docs/trust.md): the cascading randomisation test (Adebayo et al. 2018) of each
  composite, Spearman's rank correlation of the |map| with the original's after the
  top 1, 2, ... weight layers are re-initialised, the median over the three photos.

``tests/test_lrp.py`` checks that the docs hold these numbers (to 1e-3).
"""

import argparse
import os
import re
import sys

import numpy as np

from scripts.cli_synopsis import write_block
from vggnp.files.images import read_image
from vggnp.files.preprocess import model_input
from vggnp.methods.explain import explain
from vggnp.methods.sanity_checks import sanity_check
from vggnp.models.keras_convnet import load_keras_model

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = os.path.join(ROOT, "weights", "shapes_convnet.keras")
PHOTOS = [os.path.join(ROOT, "examples", f"{name}.png")
          for name in ("circle", "square", "triangle")]
# (column title, method, rule)
COLUMNS = [("z", "lrp", "z"), ("epsilon", "lrp", "epsilon"), ("z_plus", "lrp", "z_plus"),
           ("alpha_2_beta_1", "lrp", "alpha_2_beta_1"),
           ("epsilon_gamma_box", "lrp", "epsilon_gamma_box"),
           ("sequential_preset_a", "lrp", "sequential_preset_a"),
           ("deep-taylor", "deep-taylor", None), ("gradient-x-input", "gradient-x-input", None)]
DOCS = {"conservation": "math.md", "sanity": "trust.md"}


def block(name):
    """The generated block called ``name`` in its doc: marker line, table, end marker."""
    return re.compile(rf"(<!-- {name}: python -m scripts.lrp_tables --write -->\n)(.*?)"
                      rf"(<!-- end of {name} -->)", re.S)


def photo(model, path):
    picture = read_image(path)[0]
    return model_input(picture, model.input_size, model.channels,
                       model.default_preprocess)[None]


def conservation(model):
    """{column: {layer or "input": relevance sum at its output}}; the logit first."""
    x = photo(model, PHOTOS[0])
    found = {}
    for title, method, rule in COLUMNS[:-1]:
        details = {}
        explain(model, x, method, details=details, **({"rule": rule} if rule else {}))
        found[title] = details["relevance_sums"]
    return found


def conservation_table(model):
    found = conservation(model)
    titles = list(found)
    rows = list(next(iter(found.values())))
    lines = ["| relevance at the output of | " + " | ".join(titles) + " |",
             "|---" * (len(titles) + 1) + "|"]
    for row in rows:
        label = f"{row} (the logit)" if row == rows[0] else row
        lines.append(f"| {label} | " + " | ".join(f"{found[t][row]:.4g}" for t in titles)
                     + " |")
    return "\n".join(lines) + "\n"


def sanity(model):
    """{column: [median Spearman after each cascading step]}, [layers randomised]."""
    scores, names = {}, None
    for title, method, rule in COLUMNS:
        per_photo = []
        for path in PHOTOS:
            result = sanity_check(model, photo(model, path), [method], None,
                                  independent=False, **({"rule": rule} if rule else {}))
            steps = result["cascading"]
            names = [step["randomised"][-1] for step in steps]
            per_photo.append([0.0 if step[method]["spearman"] is None
                              else step[method]["spearman"] for step in steps])
        scores[title] = np.median(np.array(per_photo), axis=0)
    return scores, names


def sanity_table(model):
    scores, names = sanity(model)
    lines = ["| map | " + " | ".join(f"down to {n}" for n in names) + " |",
             "|---" * (len(names) + 1) + "|"]
    for title, values in scores.items():
        lines.append(f"| {title} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    return "\n".join(lines) + "\n"


def tables():
    model = load_keras_model(MODEL)
    return {"conservation": conservation_table(model), "sanity": sanity_table(model)}


def main(argv=None):
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--write", action="store_true", help="update the docs")
    write = args.parse_args(argv).write
    for name, table in tables().items():
        if not write:
            print(table)
            continue
        if not write_block(os.path.join(ROOT, "docs", DOCS[name]), block(name), table):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
