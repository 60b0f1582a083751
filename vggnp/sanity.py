"""Can I trust this map? The model-parameter randomisation test of Adebayo et al. (NeurIPS
2018, "Sanity Checks for Saliency Maps") on one image, in one command:

    python -m vggnp.sanity examples/chelsea.jpg --weights W
        -> ./chelsea_sanity.png (rows: methods; columns: the original map, then the map
           with the top 1, 2, ... layers re-initialised) and one verdict line per method

The math is in ``vggnp/methods/sanity_checks.py``; this module reads the command line, runs it
and writes the figure and the report.
"""

if __name__ == "__main__":  # before the heavy imports below: see startup.py
    from .startup import guard
    guard("vggnp.sanity")

import json
import os
import sys

from .cli import (EXIT_OK, EXIT_OUTPUT, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_WEIGHTS,
                  ArgumentParser, apply_process_settings, cam_layer, check_model_options,
                  check_writable, command_line, fail, file_ids, find_class, int_range, load_model,
                  model_options, refuse_to_clobber, say)
from .cli_lines import show
from .cli_run import allow_truncated_option, progress_options, run_command, step_progress
from .methods.lrp import input_bounds, model_refusal
from .methods.registry import METHODS
from .files.download import DownloadError
from .files.errors import InputError
from .files.images import read_image
from .files.preprocess import channels_refusal, model_input
from .viz.overlay import jet_picture, labelled_grid, save_image
from .viz.report import REPORT_NAME, write_sanity_report
from .methods.sanity_checks import sanity_check, undefined, verdict

DEFAULT_METHODS = "gradcam,guided-backprop,saliency"


def parse_args(argv):
    p = ArgumentParser(prog="python -m vggnp.sanity",
                       description="Re-initialise the model's layers from the top, one more "
                                   "each step, and see whether each method's map changes "
                                   "(Adebayo et al. 2018).")
    p.add_argument("image", metavar="IMG")
    p.add_argument("--methods", default=DEFAULT_METHODS, metavar="LIST",
                   help=f"comma-separated --method names (default {DEFAULT_METHODS})")
    p.add_argument("--class", dest="class_", metavar="C", help="class to explain (default: "
                                                                "the top-1)")
    p.add_argument("--layer", help="conv layer of the CAM methods (default: the last)")
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0,
                   help="seed of the random weights (default 0)")
    p.add_argument("--depth", type=int_range(1, 1000), metavar="N",
                   help="randomise only the top N layers with weights (default: all)")
    p.add_argument("--no-independent", action="store_true",
                   help="skip the independent test (one layer at a time)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    progress_options(p)
    allow_truncated_option(p)
    p.add_argument("--report", action="store_true",
                   help=f"also write {REPORT_NAME} in --out: the grid, the verdicts and "
                        "every step's similarities, for a browser")
    p.add_argument("--labels", metavar="FILE",
                   help="with --model: class names, one a line, or JSON (a list, or "
                        "{name: index})")
    model_options(p)
    args = p.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    args.methods = args.methods.split(",")
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        p.error(f"--methods: unknown {', '.join(unknown)}; methods: {', '.join(METHODS)}")
    if args.layer is not None and not any(METHODS[m].layer for m in args.methods):
        p.error(f"--layer does not apply to --methods {','.join(args.methods)}: none of them "
                "maps a conv layer (they are gradients w.r.t. the input)")
    check_model_options(p, args)
    apply_process_settings(args)
    if args.labels and not args.model:
        p.error("--labels goes with --model (VGG16 uses the ImageNet class names)")
    return args


def main(argv=None):
    args = parse_args(argv)
    return run_command("vggnp.sanity", lambda: run(args))


def run(args):
    """Check the output, load the model and the image, run the test, write and report."""
    try:
        check_writable(args.out)
    except OSError as e:
        return _fail(EXIT_OUTPUT, f"cannot write to the output folder {args.out}: {e}")
    stem = os.path.splitext(os.path.basename(args.image))[0]
    grid_path = os.path.join(args.out, f"{stem}_sanity.png")
    refusal = refuse_to_clobber([grid_path], file_ids([args.image]), args.overwrite)
    if refusal:
        return _fail(EXIT_SOME_FAILED, refusal)
    try:
        model, table, mode, _ = load_model(args.model, args.weights, args.labels,
                                           args.preprocess, "vggnp.sanity")
    except (InputError, DownloadError) as e:
        return fail(EXIT_WEIGHTS, str(e), "vggnp.sanity", e.advice)
    try:
        picture, _ = read_image(args.image, allow_truncated=args.allow_truncated)
    except InputError as e:
        return _fail(EXIT_SOME_FAILED, f"{args.image}: {e}")
    refusal = model_refusal_of(args, model, mode)
    if refusal:  # before any pass
        return _fail(EXIT_USAGE, refusal)
    x = model_input(picture, model.input_size, model.channels, mode)[None]
    for method in args.methods:  # before any map: LRP's model checks, one line
        refusal = model_refusal(model, method, bounds=input_bounds(mode, model.channels)) \
            if method in ("lrp", "deep-taylor", "deconvnet") else None
        if refusal:
            return _fail(EXIT_USAGE, refusal)
    try:
        cls = (int(model.class_scores(model.predict(x)).argmax()) if args.class_ is None
               else find_class(args.class_, table))
    except ValueError as e:
        return _fail(EXIT_USAGE, f"--class: {e}")
    try:
        layer = cam_layer(model, args.layer) if any(METHODS[m].layer for m in args.methods) \
            else None
    except ValueError as e:
        return _fail(EXIT_USAGE, str(e))
    result = sanity_check(model, x, args.methods, cls, layer, args.seed, args.depth,
                          independent=not args.no_independent, preprocess=mode,
                          progress=step_progress(args, "vggnp.sanity", lambda kind, layer: (
                              f"cascading, randomised down to {layer}" if kind == "cascading"
                              else f"{kind}, {layer} alone randomised")))
    try:
        save_image(figure(result, args.methods), grid_path, args.overwrite)
    except OSError as e:  # OutputExists (another run wrote it meanwhile), disk full...
        return _fail(EXIT_OUTPUT, f"{grid_path}: not written: {e}")
    return report_out(args, result, cls, table, grid_path)


def model_refusal_of(args, model, mode):
    """Why this model cannot be checked with these options, or None: caffe and torch
    preprocess 3 channels; scorecam weighs channels by probabilities, which a model
    ending in a linear layer does not give."""
    if channels_refusal(mode, model.channels):
        return "--" + channels_refusal(mode, model.channels)
    if "scorecam" in args.methods and model.output_activation not in ("softmax", "sigmoid"):
        return (f"--methods scorecam needs class probabilities, but the model's last layer "
                f"({model.names[-1]}) is {model.output_activation}")
    return None


def _fail(code, message):
    return fail(code, message, "vggnp.sanity")


def figure(result, methods):
    """Rows = methods; columns = the original map, then each cascading step."""
    steps = result["cascading"]
    columns = ["original"] + [f"up to\n{s['randomised'][-1]}" for s in steps]
    cells = [[_picture(result["original"][m]["abs"])]
             + [_picture(s["maps"][m]["abs"]) for s in steps] for m in methods]
    return labelled_grid(cells, methods, columns)


def _picture(abs_map):
    peak = abs_map.max()
    return jet_picture(abs_map / peak if peak > 0 else abs_map, (96, 96))


def report(result, methods, cls, table, grid_path, image):
    """The JSON report: per step, the layers randomised and each method's similarities."""
    def steps(kind):
        return [{"randomised": s["randomised"],
                 **{key: {m: s[m][key] for m in methods if key in s[m]}
                    for key in ("spearman", "spearman_signed", "ssim")}}
                for s in result[kind]]
    found = {"image": image, "class": {"index": cls, "name": table[cls][1]},
             "cascading": steps("cascading"), "independent": steps("independent"),
             "verdicts": [verdict(m, result["cascading"]) for m in methods],
             "undefined": {m: undefined(m, result["cascading"]) for m in methods
                           if undefined(m, result["cascading"])},
             "outputs": {"grid": os.path.abspath(grid_path)}}
    for kind in ("cascading", "independent"):  # no "spearman_signed" without signed maps
        found[kind] = [{k: v for k, v in step.items() if v} for step in found[kind]]
    return found


def report_out(args, result, cls, table, grid_path):
    """Print the report (JSON or lines), write report.html with --report; the exit code."""
    found = report(result, args.methods, cls, table, grid_path, args.image)
    if args.json:
        show(json.dumps(found), as_is=True)
    else:
        show(f"{args.image}: class {table[cls][1]} ({cls}); Spearman rank correlation of "
              "each map with the original, as layers are re-initialised from the top:")
        for step in found["cascading"]:
            values = ", ".join(f"{m} {_number(step['spearman'].get(m))}" for m in args.methods)
            show(f"  up to {step['randomised'][-1]:<24} {values}")
        for line in found["verdicts"]:
            show(line)
        show(f"figure: {found['outputs']['grid']}")
    if args.report:
        rows = [("command", command_line("vggnp.sanity", args.argv)), ("image", args.image),
                ("class", f"{table[cls][1]} ({cls})"), ("seed", args.seed)]
        try:
            path = write_sanity_report(args.out, found, {"title": "vggnp sanity check",
                                                         "rows": rows}, args.overwrite)
        except OSError as e:
            return _fail(EXIT_OUTPUT, f"cannot write the report in {args.out}: {e}")
        say(f"vggnp.sanity: report: {path}")
    return EXIT_OK


def _number(value):
    return "n/a" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    sys.exit(main())
