"""The worker of the fuzz harness (issue #15): ``python tests/fuzz_worker.py MEMORY``, under
an address-space limit of MEMORY bytes, makes and runs the cases it is sent, timing each
and measuring its peak RSS. :func:`show_case` runs one case in this process instead.
"""

import json
import os
import resource
import shutil
import sys
import time

from vggnp.models.keras_convnet import load_keras_model

try:  # under pytest, and in the worker (tests/ on the path)
    from fuzz_funnels import RUNNERS, judge
    from fuzz_mutations import make_mutant
    from fuzz_seeds import DEMO_MODEL, TARGETS, make_seed
except ImportError:  # imported as tests.fuzz_worker by python -m scripts.fuzz
    from tests.fuzz_funnels import RUNNERS, judge
    from tests.fuzz_mutations import make_mutant
    from tests.fuzz_seeds import DEMO_MODEL, TARGETS, make_seed


class Context:
    """What every case needs, made once per worker: the seed files and the demo model
    (which explains the image mutants)."""

    def __init__(self):
        self.seeds = {target: make_seed(target) for target in TARGETS}
        self.demo = load_keras_model(DEMO_MODEL)


def _reset_peak():
    """Make the peak RSS start again from the current RSS (Linux: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # then the peak is the worker's so far: an over-estimate, never missed


def _peak_mb():
    """The peak RSS since ``_reset_peak``, in MB: VmHWM of /proc/self/status, which
    clear_refs resets (getrusage's ru_maxrss is not reset, and a worker started by a big
    process -- pytest with TensorFlow loaded -- inherits its parent's across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _open_fds():
    """How many file descriptors this process has open (Linux; 0 elsewhere)."""
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


def run_case(case, folder, context, started=lambda what: None):
    """Make the case's mutant, say ``started(what)``, run it; returns its report (a dict)."""
    path, family, mutation = make_mutant(case, folder, context)
    started(mutation)
    fds = _open_fds()
    _reset_peak()
    began = time.perf_counter()
    outcome, detail, sig = judge(TARGETS[case["target"]], path, context)
    report = dict(number=case["number"], target=case["target"], family=family,
                  mutation=mutation, outcome=outcome, signature=sig,
                  detail=detail.replace(path, os.path.basename(path))[:500],
                  seconds=round(time.perf_counter() - began, 3),
                  rss_mb=_peak_mb(),
                  leaked_fds=_open_fds() - fds)
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    return report


def show_case(case, folder):
    """Make the case's mutant in ``folder`` (kept) and run it in this process, letting
    whatever it raises through (the full traceback). Returns (path, what, result)."""
    context = Context()
    shutil.rmtree(os.path.join(folder, str(case["number"])), ignore_errors=True)
    path, _, what = make_mutant(case, folder, context)
    print(f"case {case['number']} ({case['target']}): {what}\nmutant: {path}", flush=True)
    return path, what, RUNNERS[TARGETS[case["target"]]](path, context)


def worker_main(memory):
    """A worker: ``python tests/fuzz_worker.py MEMORY`` (bytes of address space). Reads
    cases on stdin, one JSON object a line; for each, writes {"started": what} then its
    report on the stdout it was given (what the libraries print goes to stderr)."""
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    context = Context()
    for line in sys.stdin:
        case = json.loads(line)
        report = run_case(case, case["folder"], context,
                          lambda what: answers.write(json.dumps({"started": what}) + "\n"))
        answers.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    worker_main(int(sys.argv[1]))
