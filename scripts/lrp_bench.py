"""LRP's time on VGG16: vggnp's composites against iNNvestigate's and against vggnp's own
input gradient, one photo and a batch of 8 (issue #29).

    python -m scripts.lrp_bench [--repeats 3] [--rules epsilon,z_plus,...]

The full-size VGG16 with realistic random weights (``random_vgg16_weights(seed=0)``), the
photo examples/chelsea.jpg (8 copies for the batch). vggnp: each rule and the input
gradient (``score_gradient``, saliency's pass) timed in turn, ``--repeats`` rounds after a
warm-up (``harness.time_interleaved``). iNNvestigate 2.1.2: in a child process per batch
size (``innvestigate_reference.py``; the first ``analyze``, which builds its graph, not
timed), between two rounds of vggnp's, so that a slow spell of the machine shows as a
spread. Prints a Markdown table of medians (ms) and the ratios. Never asserted in a test.
"""

import argparse
import tempfile

import numpy as np

from scripts.harness import PHOTO, machine, time_interleaved
from scripts.innvestigate_maps import innvestigate_maps
from vggnp.methods import lrp
from vggnp.methods.attribution import score_gradient

# vggnp's rule -> iNNvestigate's analyzer; deep_taylor is --method deep-taylor.
RULES = {"epsilon": "lrp.epsilon", "z_plus": "lrp.z_plus",
         "alpha_1_beta_0": "lrp.alpha_1_beta_0", "alpha_2_beta_1": "lrp.alpha_2_beta_1",
         "sequential_preset_a": "lrp.sequential_preset_a",
         "sequential_preset_b": "lrp.sequential_preset_b",
         "epsilon_gamma_box": None, "deep_taylor": "deep_taylor.bounded"}


def vggnp_times(model, x, rules, repeats):
    """{rule or "gradient": [ms, ...]} for the batch x."""
    bounds = lrp.input_bounds("vgg16", 3)
    tasks = {rule: (lambda rule=rule: lrp.relevance(model, x, None, rule, bounds))
             for rule in rules}
    tasks["gradient"] = lambda: score_gradient(model, x, None, "logit")
    return time_interleaved(tasks, repeats)


def innvestigate_times(model, x, rules, repeats):
    bounds = [b.tolist() for b in lrp.input_bounds("vgg16", 3)]
    analyzers = {rule: (RULES[rule], {"low": bounds[0], "high": bounds[1]}
                        if rule == "deep_taylor" else {})
                 for rule in rules if RULES[rule]}
    with tempfile.TemporaryDirectory() as folder:
        found = innvestigate_maps(folder, model, x, analyzers, repeats)
    return {rule: list(1000 * found[f"{rule}_seconds"]) for rule in analyzers}


def table(rows, rules):
    lines = ["| rule | batch | vggnp (ms) | iNNvestigate (ms) | vggnp / iNNvestigate | "
             "vggnp / its input gradient |", "|---|---|---|---|---|---|"]
    for batch, (mine, theirs) in rows.items():
        gradient = np.median(mine["gradient"])
        for rule in rules:
            ours = np.median(mine[rule])
            other = np.median(theirs[rule]) if rule in theirs else None
            ratio = f"{ours / other:.2f}" if other else "(not in iNNvestigate)"
            other_text = f"{other:.0f}" if other else "-"
            lines.append(f"| {rule} | {batch} | {ours:.0f} | {other_text} | {ratio} | "
                         f"{ours / gradient:.2f} |")
        lines.append(f"| (input gradient) | {batch} | {gradient:.0f} | | | 1.00 |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rules", default=",".join(RULES))
    args = p.parse_args()
    rules = args.rules.split(",")
    import vggnp
    from vggnp.nn.random_init import random_vgg16_weights
    model = vggnp.VGG16(random_vgg16_weights(seed=0))
    photo = vggnp.load_image(PHOTO)
    rows = {}
    for batch in (1, 8):
        x = np.repeat(photo, batch, axis=0)
        mine = vggnp_times(model, x, rules, args.repeats)
        theirs = innvestigate_times(model, x, rules, args.repeats)
        again = vggnp_times(model, x, rules, args.repeats)
        rows[batch] = ({k: mine[k] + again[k] for k in mine}, theirs)
    print(machine())
    print(table(rows, rules))


if __name__ == "__main__":
    main()
