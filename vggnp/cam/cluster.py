"""A ``vggnp.cam`` run on a Dask cluster (``--dask ADDRESS``, or ``main(argv,
client=...)``): the same job as on one machine, its images cut into chunks of
--batch-size, each chunk a task that a worker explains and writes (``cluster_worker``).

This process stays the run's one voice: it plans the run (the output folder, the inputs,
--resume), loads the model once to check it, keeps the results file (it appends each
image's record as its task comes back: a task run twice, after a worker died, comes back
once), and says the lines, the progress and the report. Ctrl-C and SIGTERM cancel the
tasks not yet done. The images, the model and --out must be at the same paths on every
worker (a shared file system), and the workers must have vggnp installed.
"""

import asyncio
import contextlib
import dataclasses
import os
import pickle
import queue
import threading
import time
import uuid

from .cluster_worker import explain_chunk, worker_version
from .. import __version__
from .image import settle, tell
from .settings import Stop, each_until_stopped, signals_ignored, stops_noted
from ..cli import EXIT_OUTPUT, EXIT_SOME_FAILED, EXIT_USAGE, fail, say
from ..files.results import file_stamp
from ..stream.interrupts import SIGNAL_POLL

CONNECT_TIMEOUT = 10  # seconds to reach the scheduler (Dask retries until then)


@contextlib.contextmanager
def connect(address, client=None):
    """The Dask client the run uses: ``client`` if given, else one connected to
    ``address`` (closed afterwards), else None (the run stays on this machine). A missing
    Dask, a scheduler that cannot be reached or workers that cannot run vggnp stop the run
    with one line (exit 2)."""
    if address is None and client is None:
        yield None
        return
    if client is not None:
        check_workers(client, client.scheduler.address)
        yield client
        return
    try:
        from distributed import Client
    except ImportError:
        raise Stop(fail(EXIT_USAGE, "--dask needs Dask's distributed package: pip install "
                                    "'vggnp[dask]'"))
    hold_standard_streams()
    try:
        own = _connected(Client, address)
    except Exception as e:  # noqa: BLE001 - whatever answered there is not a scheduler
        raise Stop(fail(EXIT_USAGE, f"--dask {address}: cannot reach the scheduler ({e}); "
                                    "is `dask scheduler` running there, with workers?"))
    with own:
        check_workers(own, address)
        yield own


def _connected(Client, address):
    """``Client(address)``, or TimeoutError after CONNECT_TIMEOUT + 5 s: Dask's own
    timeout covers the connection, not the handshake after it, and a port that accepts and
    never answers (the dashboard's, given by mistake) would hold the run forever."""
    box = {}

    def attempt():
        try:
            box["client"] = Client(address, timeout=CONNECT_TIMEOUT)
        except BaseException as e:  # noqa: B036 - handed to the waiting thread
            box["error"] = e
    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT + 5)
    if thread.is_alive():
        raise TimeoutError(f"no answer from a Dask scheduler in {CONNECT_TIMEOUT + 5} s")
    if "error" in box:
        raise box["error"]
    return box["client"]


def hold_standard_streams():
    """Open /dev/null on stdin, stdout or stderr where the process started with it closed
    (``>&-``): the descriptor would otherwise go to one of Dask's sockets, and a closed
    stdout's /dev/null (``cli.silence_stdout``) or a message would land on it. Python
    has already set sys.stdout (or stdin, stderr) to None then: a closed stdout is still
    noticed at the first line (exit 5)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:  # a lower one was free after all: not ours to hold
                os.close(opened)


def check_workers(client, address):
    """Stop the run (one line, exit 2) unless a worker joins within CONNECT_TIMEOUT and
    every worker can run this vggnp (installed, the same version): a task sent to a
    worker without it would fail only once it runs, and one with no worker would wait
    forever."""
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError):  # TimeoutError: an OSError since 3.11
        raise Stop(fail(EXIT_USAGE, f"--dask {address}: no worker has joined the scheduler in "
                                    f"{CONNECT_TIMEOUT} s; start them with `dask worker "
                                    f"{address}`"))
    try:
        versions = client.run(worker_version)
    except Exception as e:  # noqa: BLE001 - e.g. vggnp not importable there
        raise Stop(fail(EXIT_USAGE, f"--dask {address}: the workers cannot run vggnp "
                                    f"({type(e).__name__}: {e}); install vggnp {__version__} "
                                    "on every worker"))
    for worker, version in sorted(versions.items()):
        if version != __version__:
            raise Stop(fail(EXIT_USAGE, f"--dask {address}: the worker {worker} runs vggnp "
                                        f"{version}, this process {__version__}; install the "
                                        "same version on every worker"))


def explain_on_cluster(args, run, todo, out, client):
    """Submit one task per chunk of ``todo`` ([(path, output stem)]), and settle each
    image as its task comes back; a task that fails (its workers kept dying, a worker
    cannot load the model) or an interrupt stops the run: the tasks done by then are
    settled, the others cancelled."""
    from distributed import Variable
    # Absolute for the workers (a worker's working folder is its own), shown as given.
    whole = [(os.path.abspath(path), stem) for path, stem in todo]
    paths = {path: given for (path, _), (given, _) in zip(whole, todo)}
    if out.progress.enabled:
        say(f"vggnp.cam: {len(client.nthreads())} Dask worker(s) at "
            f"{client.scheduler.address}, chunks of {args.batch_size} image(s)")
    # What every task needs, kept by the scheduler (scattered to the workers, it would be
    # lost with them), read once per worker process and run.
    tasks = Tasks(client, Variable(f"vggnp-run-{uuid.uuid4().hex}", client=client))
    try:
        each_until_stopped(out, tasks.run(args, run, whole, out),
                           lambda future: _settle_chunk(out, future, paths))
    except Exception as e:  # noqa: BLE001 - a task failed as a whole: say it, keep the rest
        tell(out, f"vggnp.cam: the cluster run stopped: {type(e).__name__}: {e}; the "
                  "images done are listed, run the same command with --resume to go on")
        out.stop = out.stop or EXIT_SOME_FAILED
    finally:
        tasks.wind_down(out, lambda future: _settle_chunk(out, future, paths))


class Tasks:
    """The run's tasks on the cluster: submitted, handed out as each is done (a done
    callback fills a queue: O(1) a task, on this client), the rest cancelled at the end.
    shared: the Dask Variable that holds what every task needs."""

    def __init__(self, client, shared):
        self.client, self.shared, self.pending = client, shared, set()
        self._done = queue.Queue()

    def run(self, args, run, whole, out):
        """Submit a task per chunk of ``whole`` ([(absolute path, output stem)]), then
        yield each as it is done."""
        options = for_workers(args)
        stamps = {path: file_stamp(path) for path in (options.model, options.weights,
                                                      options.labels) if path is not None}
        settings = dataclasses.replace(run, model=None, own_model=None)
        # Pickled here: Dask's own serialisation of a dataclass logs a line on stderr.
        self.shared.set(pickle.dumps((settings, stamps, tuple(path for path, _ in whole))))
        own = _own_by_input(out.own)
        for chunk in (whole[i:i + args.batch_size] for i in range(0, len(whole),
                                                                  args.batch_size)):
            future = self.client.submit(
                explain_chunk, options, self.shared.name, chunk,
                {k: v for path, _ in chunk for k, v in own.get(path, {}).items()}, pure=False)
            self.pending.add(future)
            future.add_done_callback(self._done.put)
        yield from self._as_done()

    def _as_done(self):
        """Each task as it is done; NoWorkers when the scheduler has had no worker for two
        checks CONNECT_TIMEOUT apart (Dask would wait for one forever)."""
        idle, check = 0, time.monotonic() + CONNECT_TIMEOUT
        while self.pending:
            try:  # a short wait: a signal is handled only between waits (stream.interrupts)
                future = self._done.get(timeout=SIGNAL_POLL)
            except queue.Empty:
                if time.monotonic() < check:
                    continue
                check = time.monotonic() + CONNECT_TIMEOUT
                idle = 0 if self.client.nthreads() else idle + 1
                if idle == 2:
                    raise NoWorkers(f"no worker left at {self.client.scheduler.address} for "
                                    f"{2 * CONNECT_TIMEOUT} s; {len(self.pending)} task(s) "
                                    "not done")
                continue
            self.pending.discard(future)
            yield future
            idle, check = 0, time.monotonic() + CONNECT_TIMEOUT  # counted from here, as ever

    def wind_down(self, out, settle):
        """After the last task or a stop: the tasks not done are cancelled and the
        Variable deleted with Ctrl-C and SIGTERM ignored (nothing of the run is left on
        the cluster); those done are settled (their records and lines) with the handlers
        back, as ``run.close`` settles its last images: a stop there, or stdout's write
        waiting for a pipe nobody reads, leaves them to --resume (their workers' intent
        lines name their outputs). Each step apart, so that one failing (the scheduler
        gone) does not skip the others."""
        finished = []
        try:
            with signals_ignored():
                finished += [f for f in self.pending if f.status == "finished"]
                self._each(out, [lambda: self.client.cancel(
                    [f for f in self.pending if f not in finished])])
            with stops_noted(out):
                self._each(out, [lambda f=f: settle(f) for f in finished])
        finally:
            with signals_ignored():
                self._each(out, [self.shared.delete])

    @staticmethod
    def _each(out, steps):
        """Each of ``steps`` called; one that fails is said, and the next still runs."""
        for step in steps:
            try:
                step()
            except Exception as e:  # noqa: BLE001 - the run has stopped: say it, go on
                tell(out, f"vggnp.cam: note: while the cluster run ended: "
                          f"{type(e).__name__}: {e}")


class NoWorkers(Exception):
    """Every worker of the cluster is gone, and none has come back."""


def _result(future):
    """A done task's result. Its worker may have died since, the result with it: Dask
    computes it again on another worker; with none left, NoWorkers (said as the wait in
    ``Tasks._as_done`` says it), not the fetch's bare TimeoutError."""
    try:
        return future.result(timeout=3 * CONNECT_TIMEOUT)
    except TimeoutError:
        if future.client.nthreads():
            raise
        raise NoWorkers(f"no worker left at {future.client.scheduler.address} to compute "
                        "again a chunk whose result went with its worker") from None


def _own_by_input(own):
    """``own`` (``files.results.own_outputs``: {output: (input, stamp)}) by input: the
    outputs a chunk's worker may replace without --overwrite are those of its inputs."""
    by_input = {}
    for output, made in own.items():
        by_input.setdefault(made[0], {})[output] = made
    return by_input


def for_workers(args):
    """The options as a worker needs them: every path absolute (a worker's working
    folder is its own). Without --weights a worker finds VGG16's official weights in its
    own cache, as this process did."""
    absolute = {name: os.path.abspath(vars(args)[name]) for name in ("out", "model",
                                                                      "weights", "labels")
                if vars(args)[name] is not None}
    return type(args)(**(vars(args) | absolute))


def _settle_chunk(out, future, paths):
    """A chunk's messages said, then each image settled in the chunk's order; the task's
    result released (Dask would compute a lost result again while a future holds it)."""
    done = _result(future)
    future.release()
    if done.messages:
        tell(out, *done.messages)
    out.replaced.extend(done.replaced)
    for record, folder_unusable in done.records:
        record["image"] = paths.get(record["path"], record["image"])
        if folder_unusable:
            out.stop = out.stop or EXIT_OUTPUT
        settle(out, record, listed=False)
