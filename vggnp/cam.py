"""Command line: top-5 ImageNet classes and a Grad-CAM heatmap overlay for each image.

    python -m vggnp.cam elephant.jpg          # -> ./elephant_African_elephant_cam.jpg
    python -m vggnp.cam photos/ --recursive --out maps/ --resume

Images stream through (read -> batch -> explain -> write -> report): memory stays bounded,
each image's result is printed (and appended to ``<out>/vggnp-results.jsonl``) when it is
done, and a run stopped by Ctrl-C or SIGTERM leaves only whole files and can be resumed.

Exit codes: 0 all done; 1 some images failed (the others were processed); 2 usage
error; 3 weights missing or invalid; 4 output location unusable; 5 stdout closed or full;
130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""

import errno
import os
import signal
import sys
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from .cam_args import needs_probabilities, parse_args
from .cam_io import (Progress, Report, ResultsFile, already_done, expand_inputs, file_stamp,
                     is_terminal)
from .boxes import box_from_map
from .cam_outputs import (an_input, entry, file_ids, on_raw_scale, output_paths, output_stems,
                          save_pictures, too_big_for_jpeg)
from .cli import (EXIT_OK, EXIT_OUTPUT, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_WEIGHTS,
                  check_writable, fail, find_class, load_model, refuse_to_clobber, say,
                  warnings_as_notes)
from .diagnose import diagnose
from .explain import IMAGE_METHODS, INPUT_METHODS, TARGETS, empty_map_message
from .faithfulness import deletion_insertion
from .files.download import DownloadError
from .files.imagenet import top_classes
from .files.images import ImageError
from .files.outputs import OutputExists, remove_stale_temps
from .files.errors import InputError
from .gradcam import normalise
from .stream import PIXEL_BUDGET, background_thread, explain_files

EXIT_STDOUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 5, 130, 143
COMPLETENESS_TOLERANCE = 0.01  # integrated gradients: |sum - score difference| / |difference|
# Errors that say the output folder is unusable (the run stops, exit 4); any other error
# while writing (a name too long, a character the file system refuses) fails one image.
FOLDER_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                 errno.EIO, errno.EFBIG, errno.ENOENT}


class Stop(Exception):
    """Ends the run early with an exit code, after its one line was printed."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt: no ``except Exception`` swallows it."""


def _terminated(signum, frame):
    raise Terminated()


def main(argv=None):
    """The run, step by step: each step prints its own lines and may stop the run."""
    # File names may hold bytes that are not UTF-8; show them escaped rather than crash.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    args = parse_args(argv)
    warnings_as_notes("vggnp.cam")
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        todo = plan(args)                       # output folder, inputs, --resume
        if not todo:
            return EXIT_SOME_FAILED if args.failed_inputs else EXIT_OK
        run = prepare(args)                     # model, layer, class
        return process(args, run, todo)         # read, explain, write, report
    except Stop as stop:
        return stop.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Terminated:
        return EXIT_TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)


def plan(args):
    """Check --out, clean what a killed run left there, list the inputs and drop those
    --resume finds done. Returns [(path, output stem)]."""
    try:  # before the weights: a bad output folder should not cost a 553 MB load
        check_writable(args.out)
    except OSError as e:
        raise Stop(fail(EXIT_OUTPUT, f"cannot write to the output folder {args.out}: {e}"))
    removed = remove_stale_temps(args.out)
    if removed:
        say(f"vggnp.cam: note: removed {removed} temporary file(s) left in {args.out} by a "
            "run that was killed")
    paths, skipped, empty = expand_inputs(args.images, args.recursive)
    if skipped:
        say(f"vggnp.cam: note: skipped {skipped} file(s) in the folders that are not images")
    for folder in empty:
        fail(EXIT_SOME_FAILED, f"{folder}: a folder with no image files"
             + ("" if args.recursive else " (--recursive also searches its subfolders)"))
    args.failed_inputs = len(empty)
    todo = list(zip(paths, output_stems(paths)))
    if args.resume:
        done = ResultsFile(args.out).done()
        todo = [(path, stem) for path, stem in todo if not already_done(path, done)]
        say(f"vggnp.cam: --resume: {len(paths) - len(todo)} of {len(paths)} image(s) already "
            "done, skipped")
    elif not paths:
        raise Stop(EXIT_SOME_FAILED if empty else fail(EXIT_SOME_FAILED, "no images to explain"))
    return todo


def prepare(args):
    """Load the model, resolve --layer, --target and --class."""
    try:
        model, table, mode, weights_path = load_model(args)
    except (InputError, DownloadError) as e:  # weights, model or labels file
        raise Stop(fail(EXIT_WEIGHTS, str(e)))
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


def process(args, run, todo):
    """Stream the images through the network; write each one's outputs in a second thread
    while the next batch runs; report each as it is done. Returns the exit code."""
    progress = Progress(len(todo), not args.quiet and (args.progress or is_terminal(sys.stderr)))
    out = SimpleNamespace(report=Report(args.json), results=ResultsFile(args.out),
                          progress=progress, failed=args.failed_inputs, written=0, stop=None,
                          debug=args.debug, taken=set(), scale={"max": args.scale_max},
                          inputs=file_ids(path for path, _ in todo) if args.overwrite else set())
    stems = [stem for _, stem in todo]
    reading = {"background": args.background, "max_pixels": args.max_pixels,
               "allow_truncated": args.allow_truncated}
    stream = explain_files(
        run.model, [path for path, _ in todo], args.method, run.mode, run.layer,
        run.chosen_class, run.target, args.batch_size, reading,
        progress=lambda k, n: progress.step("scorecam channels", k, n), hold_pictures=True,
        pixel_budget=PIXEL_BUDGET, trace=sys.stderr if args.trace else False,
        method_options=dict(steps=args.steps, samples=args.samples, noise=args.noise,
                            seed=args.seed))
    pending = deque()
    with ThreadPoolExecutor(max_workers=1, initializer=background_thread) as writer:
        try:
            for result in stream:
                pending.append(handle(args, run, out, result, stems[result.index], writer))
                finish(out, pending, keep=args.batch_size)
                if out.report.broken or out.stop:
                    break
        except KeyboardInterrupt:
            out.stop = EXIT_INTERRUPTED
        except Terminated:
            out.stop = EXIT_TERMINATED
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the outputs under way finish
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            stream.close()
            finish(out, pending, keep=0)
            signal.signal(signal.SIGINT, signal.default_int_handler)
    return ending(args, out, len(todo))


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
        record, future = _failed(out, record, e), None
    if future is None:
        result.release()  # nothing to write: its pixels go back to the reader at once
    else:  # written: its pixels go back, even while this thread waits for the next batch
        future.add_done_callback(lambda _: result.release())
    return record, future, result


def _handled(args, run, out, result, stem, writer, record):
    path = result.source
    if result.error is not None:
        return _failed(out, record, result.error), None
    cls, name = result.class_index, run.table[result.class_index][1]
    for note in result.notes:
        _tell(out, f"vggnp.cam: note: {path}: {note}")
    if "scorecam_skipped" in result.details:
        result.notes.append(f"scorecam skipped {result.details['scorecam_skipped']} channels "
                            f"that are zero everywhere at {run.layer}")
    if result.empty:
        _tell(out, f"vggnp.cam: warning: {path}: "
              + empty_map_message(args.method, f"{name} ({cls})", run.layer))
    completeness = result.details.get("completeness")
    if completeness and completeness["relative_error"] > COMPLETENESS_TOLERANCE:
        _tell(out, f"vggnp.cam: warning: {path}: the attributions sum to "
              f"{completeness['attribution_sum']:.4g} but the score changed by "
              f"{completeness['score_difference']:.4g} from the baseline (off by "
              f"{100 * completeness['relative_error']:.1f} %); pass --steps "
              f"{2 * args.steps} for a closer path integral")
    written = output_paths(args, stem, name, out.taken)
    refusal = (refuse_to_clobber(written.values(), [], args.overwrite)
               or an_input(written.values(), out.inputs)
               or too_big_for_jpeg(result.picture.size, args))
    if refusal:
        return _failed(out, record, ImageError(f"not written: {refusal}")), None
    heatmap = result.map
    if args.method in IMAGE_METHODS:  # a gradient image: its magnitude is the heatmap
        heatmap = normalise(abs(result.map[None]).max(axis=3))[0]
    if args.diagnose:
        lines, suggestion = diagnose(run.model, result.x[None], run.layer, cls)
        _tell(out, "\n  ".join([f"vggnp.cam: diagnose {path}:", *lines,
                                f"suggestion: {suggestion}"]))
    top_k = top_classes(result.probs[None], run.table, args.top)[0]
    record.update(top=[entry(*t) for t in top_k], **{"class": entry(cls, *run.table[cls])},
                  method=args.method, **({"layer": run.layer} if run.layer else {}),
                  target=run.target, empty=result.empty, model=os.path.abspath(run.weights_path),
                  **({"completeness": completeness} if completeness else {}))
    if args.metric:
        record.update(zip(("deletion_auc", "insertion_auc"), deletion_insertion(
            run.model, result.x, heatmap, cls, batch_size=args.batch_size,
            progress=lambda k, n: out.progress.step("--metric steps", k, n))))
    box = None
    if args.box:
        box = box_from_map(heatmap, result.picture.size, args.box_threshold)
        record["box"] = list(box) if box else None
    raw_map, scale = result.map, None
    if args.scale == "raw":
        raw_map = result.details["raw"]
        heatmap, scale = on_raw_scale(raw_map, out.scale, run.target)
        record["scale"] = scale
    record.update(notes=result.notes, outputs=written)
    return record, writer.submit(_write, out.results, record, args, run, result.picture,
                                 raw_map, heatmap, cls, top_k, written, box, scale)


def _write(results, record, *picture_args):
    """In the writer thread: the outputs, then at once their line in the results file, so
    that a run killed at any moment has listed every image whose outputs are on disk."""
    save_pictures(*picture_args)
    results.append(record)


def finish(out, pending, keep):
    """Report the oldest images whose outputs are written, until at most ``keep`` wait."""
    while pending and (len(pending) > keep or pending[0][1] is None or pending[0][1].done()):
        record, future, result = pending[0]
        # Wait while it is still listed: an interrupt here leaves it for the final finish.
        error = future.exception() if future is not None else None
        pending.popleft()
        if error is not None:
            if isinstance(error, OSError) and error.errno in FOLDER_ERRORS:  # not this image:
                out.stop = out.stop or EXIT_OUTPUT                          # the folder
            record = _failed(out, record, error)
        elif "error" not in record:
            out.written += 1
        out.failed += "error" in record
        try:
            if "error" in record:  # a success was listed by the writer (``_write``)
                out.results.append(record)
        except OSError as e:  # the results file cannot grow: the folder is the problem
            if not out.stop:
                _tell(out, f"vggnp.cam: cannot write {out.results.path}: {e}")
            out.stop = out.stop or EXIT_OUTPUT
        if "error" not in record or out.report.as_json:
            out.report.image(record)
        out.progress.image_done(failed="error" in record)


def _failed(out, record, error):
    """The record of an image that failed (it lists no outputs); says why on stderr."""
    message = _reason(error, out.debug)
    _tell(out, f"vggnp.cam: {record['image']}: {message}")
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


def ending(args, out, total):
    """The last line and the exit code."""
    out.progress.close()
    if out.stop in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        say(f"vggnp.cam: {'interrupted' if out.stop == EXIT_INTERRUPTED else 'terminated'}: "
            f"{out.written} of {total} image(s) done; run the same command with --resume "
            "to go on")
        return out.stop
    if out.stop == EXIT_OUTPUT:
        say(f"vggnp.cam: stopped: {args.out} cannot be written any more; {out.written} of "
            f"{total} image(s) done (listed in {out.results.path})")
    if out.stop:
        return out.stop
    if out.report.broken:
        say(f"vggnp.cam: stdout was closed or full: stopped after {out.written} of {total} "
            f"image(s); the results are in {out.results.path}")
        return EXIT_STDOUT
    return EXIT_SOME_FAILED if out.failed else EXIT_OK


def _tell(out, line):
    out.progress.clear()
    say(line)


if __name__ == "__main__":
    sys.exit(main())
