"""Mutation fuzzing of the file funnels (issue #15): every damaged image, model, weights or
labels file either works or gets our own one-line error -- never a traceback, a hang or a
memory blow-up.

A case is a dict ``{"seed", "number", "target"[, "family"]}``. A worker process makes the
case's mutant from it (the same case always makes the same file: its random generator is
seeded with (seed, number)), runs it through the funnel the command line uses, and reports
one outcome:

    ok           the funnel returned and what came out is usable (finite, of the right shape)
    refused      the funnel raised the error of its kind (images: ImageError; models and
                 weights: WeightsError or its ModelError; labels: LabelsError), on one line,
                 naming the file (images: the command names them)
    traceback    anything else was raised: a bug (its signature: type and innermost frames)
    wrong exit   the command would not give the documented exit code and one line: an error
                 of ours of another kind, a message that is not one line or lacks the path,
                 non-finite weights accepted at load, a NaN result without an error, or the
                 worker died (a signal: a crash in C code)
    hang         no answer within ``case_seconds`` (the parent kills the worker)
    over memory  a MemoryError anywhere, even caught and translated (under the address-space
                 limit it means an allocation of gigabytes was tried), or a peak RSS over
                 ``rss_bound``

The harness is split by job: the seed file of each target (fuzz_seeds), the mutation
families of each kind (MUTATIONS in fuzz_mutations, from fuzz_bytes, fuzz_h5 and
fuzz_keras; each function's docstring says what it does), the funnels and the outcome of a
case (fuzz_funnels), the worker (fuzz_worker); here, the public API: :func:`plan`,
:func:`run_cases` (workers under RLIMIT_AS, each case timed and its peak RSS measured) and
the reports. Reproduce one case in this process, traceback and all, with :func:`show_case`.
``tests/test_fuzz.py`` runs a few hundred cases in CI; ``python -m scripts.fuzz`` thousands.
"""

import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time

try:  # under pytest, and in the worker (tests/ on the path)
    from fuzz_seeds import ROOT, TARGETS
    from fuzz_worker import show_case
except ImportError:  # imported as tests.fuzz by python -m scripts.fuzz
    from tests.fuzz_seeds import ROOT, TARGETS
    from tests.fuzz_worker import show_case


__all__ = ["OUTCOMES", "TARGETS", "failures", "plan", "report", "run_cases", "show_case",
           "summary"]

OUTCOMES = ("ok", "refused", "traceback", "wrong exit", "hang", "over memory")
FAILURES = OUTCOMES[2:]
KIND_WEIGHTS = {"image": 1, "model": 4, "weights": 3, "labels": 1, "results": 2,
                "tempname": 1}  # cases per target a round
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_worker.py")


# ---------------------------------------------------------------------------------------
# Running many cases (in the parent)

def plan(n, seed, targets=None):
    """n cases, the targets in turn, each kind KIND_WEIGHTS times a round."""
    targets = targets or [t for t, kind in TARGETS.items() if kind != "selftest"]
    cycle = [t for t in targets for _ in range(KIND_WEIGHTS.get(TARGETS[t], 1))]
    return [{"seed": seed, "number": i, "target": cycle[i % len(cycle)]} for i in range(n)]


class _Worker:
    """One worker process and the case it is on."""

    def __init__(self, memory):
        self.stderr = tempfile.TemporaryFile()
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, WORKER, str(memory)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, cwd=ROOT,
            env=env)
        self.buffer, self.case, self.mutation, self.running, self.since = b"", None, "", False, 0

    def send(self, case):
        self.case, self.mutation, self.running, self.since = case, "", False, time.monotonic()
        self.process.stdin.write((json.dumps(case) + "\n").encode())
        self.process.stdin.flush()

    def messages(self):
        """The messages that have come; None at the end of its output (it died)."""
        chunk = os.read(self.process.stdout.fileno(), 1 << 16)
        if not chunk:
            return None
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines]

    def stderr_tail(self):
        self.stderr.seek(0)
        return " | ".join(self.stderr.read().decode(errors="replace").splitlines()[-6:])[-600:]

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.stderr.close()


def _lost(worker, outcome, detail):
    """The report of the case a worker was on when it hung or died."""
    case = worker.case
    return dict(number=case["number"], target=case["target"],
                family=worker.mutation.split(":")[0],
                mutation=worker.mutation, outcome=outcome, detail=detail, signature="",
                seconds=round(time.monotonic() - worker.since, 1), rss_mb=0, leaked_fds=0)


def _death(worker):
    """(outcome, detail) for a worker that died on a case."""
    code = worker.process.wait()
    if code == -signal.SIGKILL:
        return "over memory", "the worker was killed (SIGKILL: the kernel's OOM killer?)"
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
    return "wrong exit", f"the worker died ({how}); its stderr: {worker.stderr_tail()}"


def run_cases(cases, workers=2, case_seconds=10.0, memory=3 << 30, rss_bound=1 << 30,
              progress=None, make_seconds=120.0):
    """Run ``cases`` (see ``plan``) in ``workers`` processes, each under RLIMIT_AS =
    ``memory``. A worker that takes over ``case_seconds`` on a case is killed (a hang) and
    replaced; a case whose peak RSS is over ``rss_bound`` is over memory. progress(report,
    done, total) is called after each case. Returns the reports, in the order of ``cases``."""
    todo, reports, told = list(reversed(cases)), {}, set()
    folder = tempfile.mkdtemp(prefix="vggnp-fuzz-")
    pool, selector = [], selectors.DefaultSelector()
    try:
        for _ in range(min(workers, len(cases))):
            pool.append(_start(selector, memory))
        while len(reports) < len(cases):
            for worker in pool:
                if worker.case is None and todo:
                    worker.send(dict(todo.pop(), folder=folder))
            for key, _ in selector.select(timeout=0.2):
                _read(key.data, reports, rss_bound)
            for i, worker in enumerate(pool):
                _check(worker, reports, case_seconds, make_seconds)
                if worker.case == "dead":  # hung, died or over memory: a fresh one
                    selector.unregister(worker.process.stdout)
                    worker.close()
                    pool[i] = _start(selector, memory)
            for number in sorted(set(reports) - told) if progress else ():
                told.add(number)
                progress(reports[number], len(told), len(cases))
    finally:
        for worker in pool:
            worker.close()
        shutil.rmtree(folder, ignore_errors=True)
    return [reports[case["number"]] for case in cases]


def _start(selector, memory):
    worker = _Worker(memory)
    selector.register(worker.process.stdout, selectors.EVENT_READ, worker)
    return worker


def _read(worker, reports, rss_bound):
    """Take in what ``worker`` said; one to replace (it died, or its case was over
    memory) is marked case = 'dead'."""
    messages = worker.messages()
    if messages is None:
        if worker.case is None:
            raise RuntimeError(f"a fuzz worker died between cases: {worker.stderr_tail()}")
        if not worker.running:
            raise RuntimeError(f"making the mutant of {worker.case} killed the worker: "
                               f"{worker.stderr_tail()}")
        reports[worker.case["number"]] = _lost(worker, *_death(worker))
        worker.case = "dead"
        return
    for message in messages:
        if "started" in message:
            worker.mutation, worker.running, worker.since = message["started"], True, \
                time.monotonic()
            continue
        if message["rss_mb"] << 20 > rss_bound and message["outcome"] in ("ok", "refused"):
            message["detail"] = (f"peak RSS {message['rss_mb']} MB, over {rss_bound >> 20} MB "
                                 f"(it was {message['outcome']}: {message['detail']})")
            message["outcome"] = "over memory"
        reports[message["number"]] = message
        # A fresh worker after a case over the bound: where the peak cannot be reset, the
        # next cases would seem over it too.
        worker.case = "dead" if message["outcome"] == "over memory" else None


def _check(worker, reports, case_seconds, make_seconds):
    """Kill a worker past its time: a hang of its case (or a harness error while making)."""
    if worker.case in (None, "dead"):
        return
    elapsed = time.monotonic() - worker.since
    if worker.running and elapsed > case_seconds:
        reports[worker.case["number"]] = _lost(worker, "hang", f"no answer in {case_seconds} s")
        worker.case = "dead"
    elif not worker.running and elapsed > make_seconds:
        raise RuntimeError(f"making the mutant of {worker.case} took over {make_seconds} s: "
                           f"{worker.stderr_tail()}")


# ---------------------------------------------------------------------------------------
# Reporting

def failures(reports):
    return [r for r in reports if r["outcome"] in FAILURES]


def summary(reports):
    """A table: per target, the count of each outcome, the slowest case and the most RSS."""
    rows = [["target", *OUTCOMES, "cases", "max s", "max MB"]]
    targets = sorted({r["target"] for r in reports}, key=list(TARGETS).index)
    for target in targets + ["all"]:
        mine = [r for r in reports if target in ("all", r["target"])]
        rows.append([target, *(str(sum(r["outcome"] == o for r in mine)) for o in OUTCOMES),
                     str(len(mine)), f"{max(r['seconds'] for r in mine):.2f}",
                     str(max(r["rss_mb"] for r in mine))])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    leaks = sum(r["leaked_fds"] > 0 for r in reports)
    return "\n".join(lines) + (f"\n{leaks} case(s) left file descriptors open" if leaks else "")


def report(reports):
    """Each distinct failure (outcome and signature, or detail) once: its count and first
    case, with the mutation that made it."""
    seen = {}
    for r in failures(reports):
        key = (r["outcome"], r["signature"] or re.sub(r"\d+", "N", r["detail"][:80]))
        seen.setdefault(key, []).append(r)
    lines = []
    for (outcome, sig), rs in sorted(seen.items(), key=lambda item: -len(item[1])):
        first = rs[0]
        lines.append(f"{outcome} x{len(rs)}: {sig}\n    case {first['number']} "
                     f"({first['target']}): {first['mutation']}\n    {first['detail'][:300]}")
    return "\n".join(lines)
