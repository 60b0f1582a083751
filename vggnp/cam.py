"""Command line: top-5 ImageNet classes and a Grad-CAM heatmap overlay for each image.

    python -m vggnp.cam elephant.jpg          # -> ./elephant_African_elephant_cam.jpg

Exit codes: 0 all done; 1 some images failed (the others were processed); 2 usage
error; 3 weights missing or invalid; 4 output location unusable.
"""

import json
import os
import re
import sys
import warnings
from types import SimpleNamespace

import numpy as np

from .cam_args import needs_probabilities, parse_args
from .cli import (EXIT_OK, EXIT_OUTPUT, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_WEIGHTS,
                  check_writable, fail, find_class, load_model, refuse_to_clobber)
from .diagnose import diagnose
from .explain import IMAGE_METHODS, INPUT_METHODS, TARGETS, empty_map_message, explain
from .faithfulness import deletion_insertion
from .files.download import DownloadError
from .files.images import ImageError, read_image
from .files.imagenet import top_classes
from .files.preprocess import model_input
from .files.weights import WeightsError
from .gradcam import EmptyMapWarning, normalise
from .overlay import gradient_picture, overlay, panel, save_array, save_image


def entry(index, wnid, name, score=None):
    """A class for the JSON report; ImageNet classes also carry their WordNet id."""
    fields = {"index": index, "wnid": wnid, "name": name, "score": score}
    return {k: v for k, v in fields.items() if v not in ("", None)}


def output_stems(paths):
    """'<image stem>' for each input, made unique among the inputs before any work starts:
    a/cat.jpg and b/cat.jpg (or the same file twice, or cat.jpg and cat.png) give 'cat'
    and 'cat_2', so no output of this run overwrites another."""
    stems, taken = [], set()
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        unique, n = stem, 2
        while unique in taken:
            unique, n = f"{stem}_{n}", n + 1
        taken.add(unique)
        stems.append(unique)
    return stems


def too_big_for_jpeg(size, args):
    """Why this image's outputs cannot be JPEGs (65,500 pixels a side at most), or None."""
    width, height = size
    widest = 3 * width if args.panel else width
    if args.format == "jpg" and max(widest, height) > 65500:
        return (f"{width}x{height} is too large for a JPEG output (65,500 pixels a side); "
                "use --format png")
    return None


class Stop(Exception):
    """Ends the run early with an exit code, after its one line was printed."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def main(argv=None):
    """The run, step by step: each step prints its own lines and may stop the run."""
    # File names may hold bytes that are not UTF-8; show them escaped rather than crash.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    args = parse_args(argv)
    try:
        run = prepare(args)                          # output folder, model, layer, class
        photos, x, failed = read_inputs(args, run)   # every image, or its one line
        maps, chosen, probs = explain_all(args, run, x, photos)
        results, more_failed = write_outputs(args, run, photos, x, maps, chosen, probs)
    except Stop as stop:
        return stop.code
    report(args, run, results)
    return EXIT_SOME_FAILED if failed or more_failed else EXIT_OK


def prepare(args):
    """Check the output folder, load the model, resolve --layer, --target and --class."""
    try:  # before the weights: a bad output folder should not cost a 553 MB load
        check_writable(args.out)
    except OSError as e:
        raise Stop(fail(EXIT_OUTPUT, f"cannot write to the output folder {args.out}: {e}"))
    try:
        model, table, mode, weights_path = load_model(args)
    except (WeightsError, DownloadError) as e:
        raise Stop(fail(EXIT_WEIGHTS, str(e)))
    except ValueError as e:
        raise Stop(fail(EXIT_USAGE, str(e)))
    refusal = needs_probabilities(args, model)
    if refusal:
        raise Stop(fail(EXIT_USAGE, refusal))
    layer = None  # the input methods have none
    if args.method not in INPUT_METHODS:
        layer = args.layer or model.last_conv
        if layer not in model.conv_names:
            raise Stop(fail(EXIT_USAGE, "--layer must be a conv layer of the model: "
                            + ", ".join(model.conv_names)))
    try:
        chosen_class = None if args.class_ is None else find_class(args.class_, table)
    except ValueError as e:
        raise Stop(fail(EXIT_USAGE, f"--class: {e}"))
    if mode == "vgg16" and model.channels != 3:
        raise Stop(fail(EXIT_USAGE, "--preprocess vgg16 needs a model with 3 input channels"))
    return SimpleNamespace(model=model, table=table, mode=mode, weights_path=weights_path,
                           layer=layer, target=args.target or TARGETS[args.method][0],
                           chosen_class=chosen_class)


def read_inputs(args, run):
    """Read every image (a bad one says why and is left out). Returns (photos [(path,
    output stem, picture, notes)], x (N, H, W, C) model inputs, how many failed)."""
    photos, inputs, failed = [], [], 0
    for path, stem in zip(args.images, output_stems(args.images)):
        try:
            original, notes = read_image(path, background=args.background,
                                         max_pixels=args.max_pixels,
                                         allow_truncated=args.allow_truncated)
        except ImageError as e:
            failed += 1
            fail(EXIT_SOME_FAILED, f"{path}: {e}")
            continue
        for note in notes:
            print(f"vggnp.cam: note: {path}: {note}", file=sys.stderr)
        photos.append((path, stem, original, notes))
        inputs.append(model_input(original, run.model.input_size, run.model.channels, run.mode))
    if not photos:
        raise Stop(EXIT_SOME_FAILED)
    return photos, np.stack(inputs), failed


def explain_all(args, run, x, photos):
    """The maps of every image; warnings on stderr, an empty map named by its image.
    Returns (maps, chosen classes (N,), class scores (N, K))."""
    details = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", EmptyMapWarning)  # said below, per image by name
        maps, chosen = explain(run.model, x, args.method, layer=run.layer,
                               class_index=run.chosen_class, target=run.target,
                               batch_size=args.batch_size, details=details,
                               trace=sys.stderr if args.trace else False)
    for w in caught:
        print(f"vggnp.cam: warning: {w.message}", file=sys.stderr)
    for n in np.flatnonzero(~maps.reshape(len(maps), -1).any(axis=1)):
        cls = chosen[n]
        print(f"vggnp.cam: warning: {photos[n][0]}: " + empty_map_message(
            args.method, f"{run.table[cls][1]} ({cls})", run.layer), file=sys.stderr)
    if args.diagnose:
        for n, (path, *_), cls in zip(range(len(x)), photos, chosen):
            lines, suggestion = diagnose(run.model, x[n:n + 1], run.layer, cls)
            print(f"vggnp.cam: diagnose {path}:", *lines, f"suggestion: {suggestion}",
                  sep="\n  ", file=sys.stderr)
    return maps, chosen, details["probs"]


def write_outputs(args, run, photos, x, maps, chosen, probs):
    """Each image's outputs (refused if they would clobber) and its result for the report.
    Returns (results, how many images failed)."""
    results, failed = [], 0
    for n, (photo, cls, top_k) in enumerate(zip(photos, chosen,
                                                top_classes(probs, run.table, args.top))):
        path, stem, original, notes = photo
        written = output_paths(args, stem, run.table[cls][1])
        refusal = (refuse_to_clobber(written.values(), args.images, args.overwrite)
                   or too_big_for_jpeg(original.size, args))
        if refusal:
            failed += 1
            fail(EXIT_SOME_FAILED, f"{path}: not written: {refusal}")
            continue
        heatmap = maps[n]
        if args.method in IMAGE_METHODS:  # a gradient image: its magnitude is the heatmap
            heatmap = normalise(np.abs(maps[n:n + 1]).max(axis=3))[0]
        scores = {}
        if args.metric:
            scores = dict(zip(("deletion_auc", "insertion_auc"),
                              deletion_insertion(run.model, x[n], heatmap, cls)))
        try:
            save_pictures(args, run, original, maps[n], heatmap, cls, top_k, written)
        except OSError as e:
            if e.errno is not None:  # disk full, permissions...: the folder is the problem
                raise Stop(fail(EXIT_OUTPUT, f"cannot write {written['overlay']}: {e}"))
            failed += 1  # an encoder error: this image only
            fail(EXIT_SOME_FAILED, f"{path}: cannot encode the output: {e}")
            continue
        results.append({"image": path, "top": [entry(*t) for t in top_k],
                        "class": entry(int(cls), *run.table[cls]), "method": args.method,
                        **({"layer": run.layer} if run.layer else {}), "target": run.target,
                        "empty": not maps[n].any(), **scores, "notes": notes,
                        "outputs": written})
    return results, failed


def output_paths(args, stem, class_name):
    """{"overlay": path, ["panel": path], ["heatmap": path]} for one image."""
    safe_name = re.sub(r"[^\w.-]", "_", class_name)  # a --labels name may hold / or spaces
    suffix = "cam" if args.method == "gradcam" else args.method
    base = os.path.join(args.out, f"{stem}_{safe_name}_{suffix}")
    written = {"overlay": f"{base}.{args.format}"}
    if args.panel:
        written["panel"] = f"{base}_panel.{args.format}"
    if args.save_heatmap:
        written["heatmap"] = f"{base}.npy"
    return written


def save_pictures(args, run, original, raw_map, heatmap, cls, top_k, written):
    """Write the overlay (or gradient picture), the panel and the raw map as asked."""
    if args.method in IMAGE_METHODS:
        picture = gradient_picture(raw_map, run.mode, original.size)
    else:
        picture = overlay(original, heatmap, alpha=args.alpha)
    save_image(picture, written["overlay"])
    if args.panel:
        lines = [f"{i + 1}. {name} {s:.3f}" for i, (_, _, name, s) in enumerate(top_k)]
        lines.append(f"{method_title(args.method)}: {run.table[cls][1]} ({cls})"
                     + (f" at {run.layer}" if run.layer else ""))
        save_image(panel(original, heatmap, picture, lines), written["panel"])
    if args.save_heatmap:
        save_array(raw_map.astype(np.float32), written["heatmap"])


def method_title(method):
    return "Grad-CAM" if method == "gradcam" else method


def report(args, run, results):
    """The results on stdout: one JSON document, or a few lines per image."""
    if args.json:
        json.dump({"weights": os.path.abspath(run.weights_path), "images": results},
                  sys.stdout, indent=2)
        print()
        return
    for r in results:
        print(f"{r['image']}")
        for rank, t in enumerate(r["top"], 1):
            source = f", {t['wnid']}" if "wnid" in t else ""
            print(f"  {rank}. {t['name']:<28} {t['score']:.4f}  ({t['index']}{source})")
        if "deletion_auc" in r:
            print(f"  faithfulness: deletion AUC {r['deletion_auc']:.3f} (lower is "
                  f"better), insertion AUC {r['insertion_auc']:.3f} (higher is better)")
        where = f" at {r['layer']}" if "layer" in r else ""
        print(f"  {method_title(r['method'])} of {r['class']['name']}{where}: "
              + ", ".join(r["outputs"].values()))


if __name__ == "__main__":
    sys.exit(main())
