"""One image from the network to its outputs, for ``vggnp.cam``: its notes and warnings,
the checks before writing, --diagnose, --metric, --box, --scale raw, the outputs handed to
the writer thread; and the one line said when an image fails."""

import os
import sys
import time
import traceback

import numpy as np

from ..methods.attribution import completeness_warning
from ..methods.lrp import conservation_warning
from ..viz.boxes import box_from_map
from ..files.results import file_stamp, stamps
from .state import Pictures
from .outputs import (entry, on_raw_scale, output_paths, relevance_scale, save_pictures,
                          thumbnail, too_big_for_jpeg)
from ..cli import EXIT_OUTPUT, refuse_to_clobber, say
from ..cli_run import DeferredSignals
from ..methods.diagnose import diagnose
from ..methods.empty_maps import empty_map_message, is_top
from ..methods.explain import explain, image_heatmap
from ..methods.registry import METHODS
from ..methods.faithfulness import auc, deletion_insertion_curves
from ..files.imagenet import top_classes
from ..files.images import ImageError
from ..files.outputs import OutputExists, sync_folder
from ..viz.overlay import overlay, signed_picture



def made_as(args):
    """The record's fields that say how its map was made, as --resume compares them:
    the method and, for lrp, the rule (None: not given); "asked": the model file (path,
    size and mtime: a file trained again under the same name is another model; None: the
    official weights) and --class, --layer, --target, --preprocess as given (None: the
    default), so that a map made for another model or class is not taken as done."""
    rule = {"name": args.rule, "epsilon": args.epsilon, "gamma": args.gamma}
    model = args.model or args.weights
    return {"method": args.method,
            "rule": rule if "rule" in METHODS[args.method].options else None,
            "asked": {"model": [os.path.abspath(model), *file_stamp(model)] if model else None,
                      "class": args.class_, "layer": args.layer, "target": args.target,
                      "preprocess": args.preprocess}}


def handle(args, run, out, result, stem, writer):
    """One image from the network: its notes, warnings, --diagnose and --metric (here,
    where the model is), then its outputs handed to the writer thread. Returns
    (record, future or None, result)."""
    size, mtime = file_stamp(result.source)
    record = {"image": result.source, "path": os.path.abspath(result.source), "size": size,
              "mtime_ns": mtime}
    try:
        record, future = _handled(args, run, out, result, stem, writer, record)
    except Exception as e:  # a bug of ours in --metric, --diagnose...: this image only
        record, future = failed(out, record, e), None
    if future is None:
        result.release()  # nothing to write: its pixels go back to the reader at once
    else:  # written: its pixels go back, even while this thread waits for the next batch
        future.add_done_callback(lambda _: result.release())
    return record, future, result


def _handled(args, run, out, result, stem, writer, record):
    path = result.source
    if result.error is not None:
        return failed(out, record, result.error), None
    cls, name = result.class_index, run.table[result.class_index][1]
    _say_notes(args, run, out, result, f"{name} ({cls})")
    completeness = result.details.get("completeness")
    written = output_paths(args, stem, name, out.taken)
    mine = {os.path.abspath(p) for p in written.values()  # this input's, and unchanged
            if out.own.get(os.path.abspath(p)) == (record["path"], list(file_stamp(p)))}
    refusal = (refuse_to_clobber(written.values(), out.inputs, args.overwrite, mine)
               or too_big_for_jpeg(result.picture.size, args))
    if refusal:
        return failed(out, record, ImageError(f"not written: {refusal}")), None
    heatmap = result.map
    if METHODS[args.method].gives_image:
        heatmap = image_heatmap(METHODS[args.method], result.map[None])[0]
    if args.diagnose:
        lines, suggestion = diagnose(run.own_model, result.x[None], run.layer, cls)
        tell(out, f"vggnp.cam: diagnose {path}:", *(f"  {line}" for line in lines),
             f"  suggestion: {suggestion}")
        record["diagnose"] = {"lines": lines, "suggestion": suggestion}
    top_k = top_classes(result.probs[None], run.table, args.top)[0]
    record.update(top=[entry(*t) for t in top_k],
                  **{"class": entry(cls, *run.table[cls], float(result.probs[cls]))},
                  **({"layer": run.layer} if run.layer else {}),
                  target=run.target, empty=result.empty, model=os.path.abspath(run.weights_path),
                  preprocess=run.mode,
                  **({"completeness": completeness} if completeness else {}),
                  **{k: v for k, v in made_as(args).items() if v is not None})
    raw_map, heatmap, box, scale = _extras(args, run, out, result, heatmap, record)
    method_maps = every_method(args, run, out, result, written) if args.report_all_methods \
        else None
    record.update(notes=result.notes, outputs=written)
    replace = frozenset(p for p in written.values()
                        if args.overwrite or os.path.abspath(p) in mine)
    pictures = Pictures(result.picture, raw_map, heatmap, cls, top_k, written, box, scale,
                        method_maps, replace)
    replacing = [] if args.overwrite else [p for p in written.values() if os.path.lexists(p)]
    return record, writer.submit(_write, out.results, record, args, run, pictures,
                                 lambda: out.replaced.extend(replacing))


def every_method(args, run, out, result, written):
    """--report-all-methods: {"map_<method>": thumbnail-size picture} of each method's map
    of this image's class (the chosen method's is the stream's). A method that fails here
    (no probabilities to explain, a map that is not finite...) is left out with a note,
    and its name taken off ``written``, so the results file lists only what is written."""
    small = thumbnail(result.picture)
    pictures = {}
    for method in METHODS:
        key = f"map_{method}"
        try:
            found = result.map if method == args.method else _map_of(args, run, out, result,
                                                                      method)
            if not np.isfinite(found).all():
                raise ValueError("the map is not finite")
        except Exception as e:  # noqa: BLE001 - one thumbnail less, the image goes on
            result.notes.append(f"--report-all-methods: no {method} map ({e})")
            del written[key]
            continue
        if METHODS[method].gives_image:
            pictures[key] = signed_picture(found, run.mode, small.size,
                                           METHODS[method].diverging)
        else:
            pictures[key] = overlay(small, found, alpha=args.alpha)
    return pictures


def _map_of(args, run, out, result, method):
    """One image's ``method`` map of its class, on this thread's own model replica."""
    with np.errstate(all="ignore"):
        maps, _ = explain(run.own_model, result.x[None], method,
                          layer=run.layer if METHODS[method].layer else None,
                          class_index=result.class_index, batch_size=args.batch_size,
                          preprocess=run.mode, warn_empty=False,
                          progress=lambda k, n: out.progress.step(
                              f"--report-all-methods {method}", k, n))
    return maps[0]


def _say_notes(args, run, out, result, class_name):
    """The image's notes, and the warnings about its map, on stderr."""
    path = result.source
    if "scorecam_skipped" in result.details:  # a note like the others: before they are said
        result.notes.append(f"scorecam skipped {result.details['scorecam_skipped']} channels "
                            f"that are zero everywhere at {run.layer}")
    for note in result.notes:
        tell(out, f"vggnp.cam: note: {path}: {note}")
    if result.empty:
        tell(out, f"vggnp.cam: warning: {path}: "
              + empty_map_message(args.method, class_name, run.layer,
                                  top=is_top(result.probs, result.class_index), cli=True))
    # an empty map already says that no relevance reached the input
    conservation = None if result.empty else result.details.get("conservation")
    for missed in (completeness_warning(result.details.get("completeness"), args.steps),
                   conservation_warning(conservation)):
        if missed:
            tell(out, f"vggnp.cam: warning: {path}: {missed}")


def _extras(args, run, out, result, heatmap, record):
    """--metric, --box and --scale raw, added to ``record``. Returns the map to save, the
    heatmap to draw, the box and the scale."""
    if args.metric:
        deletion, insertion = deletion_insertion_curves(
            run.own_model, result.x, heatmap, result.class_index, batch_size=args.batch_size,
            progress=lambda k, n: out.progress.step("--metric steps", k, n))
        record.update(deletion_auc=auc(deletion), insertion_auc=auc(insertion))
        if args.report:  # the curves themselves, for the report's plots
            record.update(deletion_curve=[round(float(v), 4) for v in deletion],
                          insertion_curve=[round(float(v), 4) for v in insertion])
    box = None
    if args.box:
        box = box_from_map(heatmap, result.picture.size, args.box_threshold)
        record["box"] = list(box) if box else None
    raw_map, scale = result.map, None
    if args.scale == "raw" and METHODS[args.method].gives_image:  # a relevance's colours
        scale = record["scale"] = relevance_scale(raw_map, out.scale)
    elif args.scale == "raw":
        raw_map = result.details["raw"]
        heatmap, scale = on_raw_scale(raw_map, out.scale, run.target)
        record["scale"] = scale
    return raw_map, heatmap, box, scale


def _write(results, record, args, run, pictures, replaced):
    """In the writer thread: an intent line naming the outputs, the outputs, then at once
    their record with their stamps, so that a run killed at any moment has listed every
    image whose outputs are on disk, and every file it was writing; then ``replaced()``
    (vggnp's own earlier files that this write replaced are counted only once it is
    done)."""
    paths = list(pictures.written.values())
    results.append({"image": record["image"], "path": record["path"],
                    "writing": [os.path.abspath(p) for p in paths],
                    "started_ns": time.time_ns()}, durable=False)
    save_pictures(args, run, pictures)
    for folder in {os.path.dirname(os.path.abspath(p)) for p in paths}:
        sync_folder(folder)  # the outputs' names on disk before the record that lists them
    results.append(record | {"stamps": stamps(paths)})
    replaced()


def settle(out, record, listed):
    """One image done: counted, its record appended to the results file unless ``listed``
    there already, its lines on stdout, the progress line moved on. A signal while it is
    counted and recorded waits until its lines are out (the count, the record and stdout
    agree); one while they are written, which may block, stops at once."""
    with DeferredSignals() as signals:
        if "error" not in record:
            out.written += 1
        out.failed += "error" in record
        try:
            if not listed:
                out.results.append(record)
        except OSError as e:  # the results file cannot grow: the folder is the problem
            if not out.stop:
                tell(out, f"vggnp.cam: cannot write {out.results.path}: {e}")
            out.stop = out.stop or EXIT_OUTPUT
        with signals.at_once():
            if "error" not in record or out.lines.as_json:
                out.lines.image(record)
            out.progress.image_done(failed="error" in record)


def failed(out, record, error):
    """The record of an image that failed (it lists no outputs); says why on stderr."""
    message = _reason(error, out.debug)
    tell(out, f"vggnp.cam: {record['image']}: {message}")
    return {k: v for k, v in record.items() if k != "outputs"} | {"error": message}


def _reason(error, debug):
    """What went wrong with one image, in one line."""
    if isinstance(error, OutputExists):
        return f"not written: {error.filename} exists; pass --overwrite to replace it"
    if isinstance(error, ImageError):
        return str(error)
    if isinstance(error, OSError):
        return (f"not written: {error}" if error.errno is not None
                else f"cannot encode the output: {error}")
    if debug and sys.stderr is not None:
        traceback.print_exception(error)
    return f"internal error ({type(error).__name__}: {error}); please report it"


def tell(out, *lines):
    """Lines on stderr, the progress line cleared first; each line made printable alone.
    On a cluster's worker (``out.messages`` a list) the lines are kept for the client to
    say."""
    if out.messages is not None:
        out.messages.extend(lines)
        return
    with out.progress.lock:
        out.progress.clear()
        for line in lines:
            say(line)
