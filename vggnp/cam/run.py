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

import contextlib
import os
import signal
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor, wait

from .args import parse_args
from .image import failed, handle, made_as, settle
from ..files.results import already_done, made_alike, own_outputs
from .run_report import ending, nothing_to_do, only_unreadable, write_run_report
from .run_io import (Progress, StdoutLines, Tee, expand_inputs, is_terminal, none_readable,
                     read_results)
from .outputs import THUMBNAILS, output_stems
from .state import RunState
from .settings import (Stop, each_until_stopped, folder_unusable, prepare, signals_ignored,
                       stops_noted, stream_options)
from ..cli import (EXIT_INTERRUPTED, EXIT_OUTPUT, EXIT_SOME_FAILED, EXIT_TERMINATED,
                   EXIT_USAGE, check_writable, command_line, fail, file_ids, say,
                   warnings_as_notes)
from ..cli_run import Terminated, cwd_gone, raise_terminated
from ..files.errors import printable
from ..files.outputs import remove_stale_temps
from ..viz.report import INLINE_LIMIT
from ..stream.batches import CLOSE_WAIT, PIXEL_BUDGET, explain_files
from ..fast.blocks import BLOCKS
from ..fast.threads import cores

def main(argv=None, client=None, process_ends=False):
    """The run, step by step: each step prints its own lines and may stop the run.
    client: a ``dask.distributed.Client`` to run on, as ``--dask ADDRESS`` does.
    process_ends: the process ends when this returns (``cam.command``): a stopped run then
    does not wait for the batch under way (``RunSettings.stop_wait``)."""
    # File names may hold bytes that are not UTF-8; show them escaped rather than crash.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    args = parse_args(argv)
    warnings_as_notes("vggnp.cam")
    gone = cwd_gone("vggnp.cam")
    if gone:
        return gone
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        results = read_results(args.out)        # one reader: one note of lines skipped
        todo, failed_inputs = plan(args, results)   # output folder, inputs, --resume
        if not todo:
            return nothing_to_do(args, command_line("vggnp.cam", argv), failed_inputs,
                                 results)
        unreadable = none_readable([path for path, _ in todo])  # a typo loads no weights
        if unreadable:
            return only_unreadable(args, command_line("vggnp.cam", argv), unreadable,
                                   failed_inputs, results)
        with cluster_for(args.dask, client) as cluster:  # None: on this machine
            run = prepare(args, command_line("vggnp.cam", argv),  # model, layer, class
                          stop_wait=0 if process_ends else CLOSE_WAIT)
            return process(args, run, todo, failed_inputs, results, cluster)
    except Stop as stop:
        return stop.code
    except KeyboardInterrupt:  # while planning or loading: the stream says its own
        return fail(EXIT_INTERRUPTED, "interrupted before any image; nothing was written")
    except Terminated:
        return fail(EXIT_TERMINATED, "terminated before any image; nothing was written")
    except Exception as e:  # noqa: BLE001 - a bug of ours: one line (--debug: traceback)
        if args.debug:
            raise
        return fail(EXIT_SOME_FAILED, f"internal error ({type(e).__name__}: {e}); please "
                    "report it (--debug shows the traceback)")
    finally:
        signal.signal(signal.SIGTERM, previous)


def plan(args, results):
    """Check --out, clean what a killed run left there, list the inputs and drop those
    --resume finds done. Returns ([(path, output stem)], the number of inputs that failed
    already: folders with no image)."""
    made = [folder for folder in (args.out, os.path.join(args.out, THUMBNAILS))
            if args.report and not os.path.isdir(folder)]
    try:  # before the weights: a bad output folder should not cost a 553 MB load
        check_writable(args.out)
        if args.report:
            check_writable(os.path.join(args.out, THUMBNAILS))
    except OSError as e:
        raise Stop(fail(EXIT_OUTPUT, f"cannot write to the output folder {args.out}: {e}"))
    try:
        results.check()
    except OSError as e:
        raise Stop(fail(EXIT_OUTPUT, f"cannot use the output folder {args.out}: {e.strerror}"))
    removed = remove_stale_temps(args.out) + remove_stale_temps(
        os.path.join(args.out, THUMBNAILS))
    if removed:
        say(f"vggnp.cam: note: removed {removed} temporary file(s) left in {args.out} by a "
            "run that was killed")
    paths, skipped, empty, refused = expand_inputs(args.images, args.recursive)
    if args.report_inline:
        check_inline_limit(args, results, paths, made)
    if skipped:  # named, a few: a photo with an odd extension is found among them
        named = ", ".join(printable(p) for p in skipped[:3]) + (", ..." if skipped[3:] else "")
        say(f"vggnp.cam: note: skipped {len(skipped)} file(s) in the folders that are not "
            f"images by their extension ({named}); name a file to read it whatever its name")
    for folder in empty:
        fail(EXIT_SOME_FAILED, f"{folder}: a folder with no image files"
             + ("" if args.recursive else " (--recursive also searches its subfolders)"))
    for reason in refused:
        fail(EXIT_SOME_FAILED, reason)
    todo = list(zip(paths, output_stems(paths)))
    if args.resume and paths:
        todo = not_done_yet(args, results, todo)
    elif not paths:
        raise Stop(EXIT_SOME_FAILED if empty or refused else fail(
            EXIT_SOME_FAILED, "no images to explain" + (": stdin ('-') named no file (one "
                                                        "path a line)" if "-" in args.images
                                                        else "")))
    return todo, len(empty) + len(refused)


def check_inline_limit(args, results, paths, made):
    """Stop (exit 2) if --report-inline would hold more pictures than INLINE_LIMIT: the
    report shows the folder's earlier images too. A usage error leaves nothing behind:
    the folders this run ``made`` are removed (if still empty)."""
    held = {r["path"] for r in results.records()} | {os.path.abspath(p) for p in paths}
    if len(held) > INLINE_LIMIT:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        raise Stop(fail(EXIT_USAGE, f"--report-inline holds every picture in one file: at "
                        f"most {INLINE_LIMIT} images, not {len(held)} (this run's and those "
                        f"{args.out} already lists); use --report, whose page links the "
                        "pictures"))


def not_done_yet(args, results, todo):
    """--resume: the (path, stem) pairs of ``todo`` that the results file does not list as
    done, unchanged and made the same way (``made_as``); says how many were skipped and
    how many are explained again because another --method or --rule made them."""
    done, made = results.done(), made_as(args)
    finished = [already_done(path, done) for path, _ in todo]  # one stat per input
    alike = [f and made_alike(path, done, made) for f, (path, _) in zip(finished, todo)]
    say(f"vggnp.cam: --resume: {sum(alike)} of {len(todo)} image(s) already done, skipped")
    again = sum(finished) - sum(alike)
    if again:
        say(f"vggnp.cam: --resume: {again} image(s) done another way (--method, lrp's "
            "--rule, --epsilon, --gamma, --model, --class, --layer, --target or --preprocess) "
            "are explained again")
    return [item for item, skip in zip(todo, alike) if not skip]


def cluster_for(address, client):
    """``cluster.connect(address, client)``, or, for a run on this machine alone, a context
    giving None: the cluster module (asyncio, ssl: 15 ms of every start) is imported
    only for a cluster run."""
    if address is None and client is None:
        return contextlib.nullcontext()
    from .cluster import connect
    return connect(address, client)


def process(args, run, todo, failed_inputs, results, client=None):
    """Explain the images here (``explain_here``) or on a Dask cluster (``client``:
    ``cluster.explain_on_cluster``), report each as it is done, then the report and the
    last lines. Returns the exit code."""
    progress = Progress(len(todo), not args.quiet and (args.progress or is_terminal(sys.stderr)))
    out = RunState(lines=StdoutLines(args.json), results=results, progress=progress,
                   refused=failed_inputs, debug=args.debug, scale={"max": args.scale_max},
                   inputs=file_ids(path for path, _ in todo),
                   own=own_outputs(results.entries()),
                   trace=Tee(sys.stderr) if args.trace else None)
    if client is not None:
        from .cluster import explain_on_cluster
        explain_on_cluster(args, run, todo, out, client)
    else:
        explain_here(args, run, todo, out)
    if args.report:
        write_run_report(args, run, out, len(todo))
    return ending(args, run.began, out, len(todo))


def explain_here(args, run, todo, out):
    """Stream the images through the network; write each one's outputs in a second thread
    while the next batch runs."""
    stems = [stem for _, stem in todo]
    count = workers(args, len(todo))
    if out.progress.enabled or args.trace:
        blocks = BLOCKS.count if count == 1 else 1  # two batches at once: one thread each
        blocks = f" and {blocks} block thread(s) for VGG16" if run.model.block_threads else ""
        say(f"vggnp.cam: {run.threads} BLAS thread(s){blocks} (--threads; default: the "
            f"{cores()} core(s) this process may use, the BLAS's less those busy with other "
            f"work), {count} batch(es) at once")
    stream = explain_files(
        run.model, [path for path, _ in todo], args.method, run.mode, run.layer,
        run.chosen_class, run.target, hold_pictures=True, pixel_budget=PIXEL_BUDGET,
        progress=lambda k, n: out.progress.step("scorecam channels", k, n),
        trace=out.trace or False, workers=count, close_wait=run.stop_wait,
        **stream_options(args))
    pending = deque()
    with ThreadPoolExecutor(max_workers=1) as writer:
        def step(result):
            pending.append(handle(args, run, out, result, stems[result.index], writer))
            finish(out, pending, keep=args.batch_size)
        try:
            each_until_stopped(out, stream, step)
        finally:
            close(stream, out, pending)


def close(stream, out, pending):
    """After the last image or a stop: the outputs under way are written to the end with
    Ctrl-C and SIGTERM ignored (the writer thread: a second at most), then, with the
    handlers back, their records and lines are settled and the stream closed. A stop
    there leaves the rest to --resume: a second Ctrl-C, or one while stdout's write waits
    for a pipe nobody reads (settled with signals ignored, that run could not be
    stopped but by kill -9). The stream waits ``run.stop_wait`` for a batch under way,
    whose result is not written: none where the process ends next (the workers are
    daemon threads that only compute; 18.7 s of a Ctrl-C'd run went to that wait once)."""
    with signals_ignored():
        wait([future for _, future, _ in pending if future is not None])
    with stops_noted(out):
        try:
            finish(out, pending, keep=0)
        finally:
            stream.close()


def workers(args, count):
    """Batches run at once: two (each with half the cores) when there is more than one
    batch to run, one otherwise, and one with --trace (two tables would interleave). Two
    on a busy machine too (the cores are counted, not the free ones, unless --threads
    says): two batches on one BLAS thread each do not wait on each other, and take a
    larger share of the busy cores than one."""
    return 2 if (args.threads or cores()) >= 2 and count > args.batch_size and \
        not args.trace else 1


def finish(out, pending, keep):
    """Report the oldest images whose outputs are written, until at most ``keep`` wait."""
    while pending and (len(pending) > keep or pending[0][1] is None or pending[0][1].done()):
        record, future, result = pending[0]
        # Wait while it is still listed: an interrupt here leaves it for the final finish.
        error = future.exception() if future is not None else None
        pending.popleft()
        if error is not None:
            if folder_unusable(error):  # not this image: the folder
                out.stop = out.stop or EXIT_OUTPUT
            record = failed(out, record, error)
        settle(out, record, listed="error" not in record)  # a success: listed by ``_write``
