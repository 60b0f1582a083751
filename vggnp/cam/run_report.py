"""How a ``vggnp.cam`` run ends: its last lines and exit code (``ending``), and its report
(``--report``): every image its results file lists, with the run's settings at the top;
written after an interrupt too, by a ``--resume`` that found nothing left to do, and by a
run of which not one input could be read."""

import os
import time

from ..cli import (EXIT_INTERRUPTED, EXIT_OK, EXIT_OUTPUT, EXIT_SOME_FAILED, EXIT_STDOUT,
                   EXIT_TERMINATED)
from ..cli_lines import say
from .image import failed, settle, tell
from .run_io import Progress, StdoutLines
from .state import RunState
from ..viz.report import write_report


def nothing_to_do(args, command, failed_inputs, results):
    """A run with no image left to explain (--resume of a finished folder): its report
    still written, as asked. Returns the exit code."""
    out = RunState(lines=StdoutLines(args.json), results=results,
                   progress=Progress(0, False))
    if args.report:
        write_report_of(args, out, [("command", command),
                                    ("this run", "nothing to do: every image was done")])
    return out.stop or (EXIT_SOME_FAILED if failed_inputs else EXIT_OK)


def only_unreadable(args, command, unreadable, failed_inputs, results):
    """A run of which not one input can be read (a mistyped name, a URL), ``unreadable``
    [(path, ImageError)]: each fails as the reader fails it -- its line, its record in the
    results file, its JSON line -- without the model being loaded (or downloaded) for
    nothing; then the last lines (the ``failed_inputs`` refused before, empty folders, in
    the tally as in any run) and the report, as asked. Returns the exit code."""
    out = RunState(lines=StdoutLines(args.json), results=results,
                   progress=Progress(len(unreadable), False), refused=failed_inputs)
    began = time.time()
    for path, error in unreadable:
        record = {"image": path, "path": os.path.abspath(path), "size": None, "mtime_ns": None}
        settle(out, failed(out, record, error), listed=False)
    if args.report:
        write_report_of(args, out, [("command", command),
                                    ("this run", out.counts(len(unreadable), "written"))])
    return ending(args, began, out, len(unreadable))


def write_run_report(args, run, out, total):
    """<out>/report.html of every image the results file lists (this run's and earlier
    ones'); said in one line. Written after an interrupt too: it shows what is done."""
    try:
        size = f"{os.path.getsize(run.weights_path) / 1e6:.1f} MB"
    except OSError as e:  # the file went away during the run
        size = e.strerror
    rows = [("command", run.command), ("model", f"{run.weights_path} ({size})"),
            ("method", args.method), ("layer", run.layer or "(the input)"),
            ("preprocess", run.mode),
            ("target", run.target), ("started", time.strftime("%Y-%m-%d %H:%M:%S",
                                                              time.localtime(run.began))),
            ("wall time", f"{time.time() - run.began:.1f} s"),
            ("this run", out.counts(total, "written"))]
    write_report_of(args, out, rows)


def write_report_of(args, out, rows):
    """Write the report with the header ``rows``; said in one line, a failure too."""
    try:
        path = write_report(args.out, out.results.records(), {
            "title": "vggnp report", "rows": rows,
            "trace": out.trace.text() if out.trace else None}, inline=args.report_inline,
            overwrite=args.overwrite)
    except OSError as e:
        tell(out, f"vggnp.cam: cannot write the report in {args.out}: {e}")
        out.stop = out.stop or EXIT_OUTPUT
        return
    except Exception as e:  # noqa: BLE001 - a record we did not foresee: say it in one line
        tell(out, f"vggnp.cam: the report was not written: internal error "
                  f"({type(e).__name__}: {e}); please report it")
        out.stop = out.stop or EXIT_SOME_FAILED
        return
    tell(out, f"vggnp.cam: report: {path}")


def ending(args, began, out, total):
    """The last lines and the exit code of a run of ``total`` images begun at ``began``
    (time.time())."""
    out.progress.close()
    if out.replaced:
        shown = ", ".join(os.path.basename(p) for p in out.replaced[:3])
        more = f" and {len(out.replaced) - 3} more" if len(out.replaced) > 3 else ""
        say(f"vggnp.cam: note: replaced {len(out.replaced)} file(s) that vggnp wrote in an "
            f"earlier run, unchanged since: {shown}{more} (any other file needs --overwrite)")
    if total > 1 and not out.stop and not out.lines.broken:
        seconds = time.time() - began
        say(f"vggnp.cam: {out.counts(total, 'done')}, in {seconds:.1f} s "
            f"({out.written / max(seconds, 1e-9):.2f} images/s); outputs in {args.out}, "
            f"results in {out.results.path}")
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
    if out.lines.broken:
        say(f"vggnp.cam: stdout was closed or full: {out.counts(total, 'done')}; the "
            f"results are in {out.results.path}")
        return EXIT_STDOUT
    return EXIT_SOME_FAILED if out.failed or out.refused else EXIT_OK
