"""Deep fuzzing of the file funnels (issue #15): thousands of seeded mutants of every file
kind, as tests/test_fuzz.py runs a few hundred in CI.

    python -m scripts.fuzz --cases 5000 --seed 7
    python -m scripts.fuzz --seed 7 --show 1234 --keep /tmp/case1234   # one case, its traceback

Each case is a mutant of a seed file (an image of each format, the demo .keras model, a
narrow VGG16 .h5, the demo labels) run through the funnel the command line uses, in a
worker process under an address-space limit, timed and its peak RSS measured (see
tests/fuzz.py for what each outcome means, tests/fuzz_mutations.py for the mutations).
Prints the count of each outcome per target (ok / refused (our error) / tracebacks / wrong
exit / hangs / over memory), then each distinct failure once with the mutation of its
first case. Exits 1 if any case was a traceback, a wrong exit, a hang or over memory.
"""

import argparse
import os
import sys
import tempfile
import time

from tests.fuzz import TARGETS, failures, plan, report, run_cases, show_case, summary


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m scripts.fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=5000, help="how many cases (default 5000)")
    p.add_argument("--seed", type=int, default=7, help="the run's seed (CI uses 15)")
    p.add_argument("--kinds", nargs="+", choices=["image", "model", "weights", "labels",
                                                  "results", "tempname"],
                   help="only these file kinds (default: all)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--case-seconds", type=float, default=10.0,
                   help="a case with no answer after this long is a hang (default 10)")
    p.add_argument("--memory-gb", type=float, default=3.0,
                   help="each worker's address-space limit (default 3)")
    p.add_argument("--rss-mb", type=int, default=1024,
                   help="a case whose peak RSS is over this is over memory (default 1024)")
    p.add_argument("--show", type=int, metavar="N",
                   help="make case N and run it in this process, showing its traceback")
    p.add_argument("--keep", metavar="DIR", help="with --show: where to write the mutant")
    p.add_argument("--config", type=int, metavar="N",
                   help="instead: N config-field mutants of the demo model, each checked "
                        "against Keras (needs TensorFlow; tests/fuzz_config.py)")
    return p.parse_args(argv)


def show(args, cases):
    """Run one case in this process (no limits): its mutation, then its result or traceback."""
    case = next(c for c in cases if c["number"] == args.show)
    folder = args.keep or tempfile.mkdtemp(prefix="vggnp-fuzz-case-")
    os.makedirs(folder, exist_ok=True)
    print(show_case(case, folder)[2])
    return 0


def progress(every):
    began = time.monotonic()

    def tell(report, done, total):
        if report["outcome"] in ("traceback", "wrong exit", "hang", "over memory"):
            print(f"  case {report['number']} ({report['target']}): {report['outcome']}: "
                  f"{report['signature'] or report['detail'][:100]}", flush=True)
        if done % every == 0 or done == total:
            print(f"{done}/{total} cases, {time.monotonic() - began:.0f} s", flush=True)
    return tell


def config_mutants(args):
    """--config N: vggnp refuses each mutant or equals Keras on it."""
    import tensorflow as tf  # only here: the file kinds need no TensorFlow
    from tests.fuzz_config import check_config_mutants
    with tempfile.TemporaryDirectory() as folder:
        found = check_config_mutants(tf.keras, args.config, args.seed, folder)
    for outcome, value in found.items():
        print(f"{outcome:>20}: {value if isinstance(value, int) else len(value)}")
        for what in value if isinstance(value, list) else ():
            print(f"{'':>22}{what}")
    return 1 if found["different"] or found["accepted alone"] else 0


def main(argv=None):
    args = parse(argv)
    if args.config:
        return config_mutants(args)
    targets = [t for t, kind in TARGETS.items() if kind in (args.kinds or [kind])
               and kind != "selftest"]
    if args.show is not None:
        return show(args, plan(args.show + 1, args.seed, targets))
    cases = plan(args.cases, args.seed, targets)
    began = time.monotonic()
    reports = run_cases(cases, workers=args.workers, case_seconds=args.case_seconds,
                        memory=int(args.memory_gb * (1 << 30)), rss_bound=args.rss_mb << 20,
                        progress=progress(max(1, args.cases // 20)))
    print(f"\n{len(cases)} cases, seed {args.seed}, {args.workers} workers, "
          f"{time.monotonic() - began:.0f} s\n")
    print(summary(reports))
    refused_late = sum(r["detail"].startswith("explain:") for r in reports)
    print(f"({refused_late} of the refused loaded, then failed the image with one line)")
    if failures(reports):
        print(f"\nfailures:\n{report(reports)}")
    return 1 if failures(reports) else 0


if __name__ == "__main__":
    sys.exit(main())
