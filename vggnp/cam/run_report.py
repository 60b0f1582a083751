"""The report of a ``vggnp.cam`` run (``--report``): every image its results file lists,
with the run's settings at the top; written after an interrupt too, and by a ``--resume``
that found nothing left to do."""

import os
import time

from ..cli import EXIT_OK, EXIT_OUTPUT, EXIT_SOME_FAILED
from ..viz.report import write_report
from .image import tell
from .run_io import Progress, StdoutLines
from .state import RunState


def nothing_to_do(args, command, failed_inputs, results):
    """A run with no image left to explain (--resume of a finished folder): its report
    still written, as asked. Returns the exit code."""
    out = RunState(lines=StdoutLines(args.json), results=results,
                   progress=Progress(0, False))
    if args.report:
        write_report_of(args, out, [("command", command),
                                    ("this run", "nothing to do: every image was done")])
    return out.stop or (EXIT_SOME_FAILED if failed_inputs else EXIT_OK)


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
