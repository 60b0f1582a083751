"""One task of a cluster run (``--dask``), on a Dask worker: a chunk of images read from
the file system all workers share, explained, and their outputs written into --out by the
same code and rules as on one machine (``image.handle``: nothing clobbered, each file
whole or absent, the intent line in the results file before the outputs it names).

The records go back to the client, which alone appends them to the results file: a task
that a dying worker left half done is run again on another worker, and its images are
listed once. The outputs the dead worker had written are announced by its intent lines,
so the task run again may replace them (``OwnOutputs``), as a resumed run does.
"""

import asyncio
import contextlib
import dataclasses
import functools
import os
import pickle
import threading
from concurrent.futures import Future

from .image import failed, handle
from .run_io import Progress
from .settings import folder_unusable, stream_options
from .state import RunState
from ..cli import file_ids, load_model
from ..fast.threads import use_threads
from ..files.download import DownloadError
from ..files.errors import InputError
from ..files.results import ResultsFile, file_stamp, own_outputs
from ..stream.batches import explain_files

# A worker's task threads set up its process one at a time: the run's settings fetched
# through one worker client, its one model loaded once, the BLAS threads set before the
# first task of this process computes.
_setting_up = threading.Lock()


@dataclasses.dataclass
class ChunkDone:
    """What a task sends back. records: [(record, the folder is unusable)] in the
    chunk's order, each a success (with its outputs' stamps) or a failure (with its
    "error"); messages: the lines the client says on stderr; replaced: vggnp's own
    earlier files that were replaced."""
    records: list
    messages: list
    replaced: list


def explain_chunk(args, shared, chunk, own):
    """Explain and write one chunk. args: the client's options, paths made absolute;
    shared: the name of the run's Dask Variable (``run_shared``); chunk: [(absolute
    image path, output stem)]; own: the client's ``own_outputs`` for this chunk's inputs.
    Returns a ChunkDone."""
    with _setting_up:
        settings, stamps, inputs = run_shared(shared)
        model = worker_model(args.model, args.weights, args.preprocess, tuple(stamps.items()))
        blas_threads(args.threads or 1)
    run = dataclasses.replace(settings, model=model, own_model=model.replica())
    ledger = IntentsOnly(args.out, shared)
    out = RunState(lines=None, results=ledger, progress=Progress(0, False), debug=args.debug,
                   scale={"max": args.scale_max}, inputs=_input_ids(inputs, settings.began),
                   own=OwnOutputs(own, ledger), messages=[])
    done = []
    with contextlib.closing(explain_files(
            model, [path for path, _ in chunk], args.method, run.mode, run.layer,
            run.chosen_class, run.target, hold_pictures=True, **stream_options(args))) as stream:
        for result in stream:
            record, future, _ = handle(args, run, out, result, chunk[result.index][1], Inline())
            error = future.exception() if future is not None else None
            if error is not None:
                record = failed(out, record, error)
            elif future is not None:
                record = ledger.kept.pop()  # the record ``_write`` made: with the stamps
            done.append((record, folder_unusable(error)))
    return ChunkDone(records=done, messages=out.messages, replaced=out.replaced)


@functools.lru_cache(maxsize=1)
def run_shared(name):
    """What every task of the run needs, read once per worker process from the
    scheduler's Variable ``name``: (the client's RunSettings without its model, {model
    file: its (size, mtime_ns) on the client}, the run's input paths: no output may
    replace one)."""
    from distributed import Variable
    try:  # a Variable deleted meanwhile (the run stopped) would be waited for forever
        return pickle.loads(Variable(name).get(timeout=60))
    except (TimeoutError, asyncio.TimeoutError):  # the same since Python 3.11
        raise RuntimeError(f"the run's settings ({name}) are gone from the scheduler: the "
                           "run has ended") from None


@functools.lru_cache(maxsize=1)
def blas_threads(count):
    """Each BLAS call of this worker process on ``count`` threads, set once per count: a
    process-wide setting, not to be changed while another task thread is inside a BLAS
    call. No block threads: a worker's task threads compute at once, and a run of blocks
    sets the BLAS to one thread under the others' products (``fast/blocks.py``)."""
    return use_threads(count, blocks=1)


def worker_version():
    """The vggnp version this worker runs (the client checks it before the first task)."""
    from .. import __version__
    return __version__


def worker_model(model, weights, preprocess, stamps):
    """The network, loaded once per worker process for these files (``stamps``: each
    file's (size, mtime_ns) as the client sees it; VGG16's official weights are found in
    the worker's own cache). A worker that sees another file at a path stops the task:
    the run would explain with a model the client did not check. Called under
    ``_setting_up``."""
    for path, stamp in stamps:
        here = tuple(file_stamp(path))
        if here != tuple(stamp):
            raise RuntimeError(f"this worker sees another file at {path} than the client "
                               f"(size, mtime {here} here, {tuple(stamp)} there): every "
                               "worker must see the same files at the same paths")
    return _loaded(model, weights, preprocess, stamps)


@functools.lru_cache(maxsize=1)
def _loaded(model, weights, preprocess, stamps):
    """load_model's network; the stamps are part of the key: a changed file loads anew."""
    try:
        return load_model(model, weights, None, preprocess, "vggnp.cam")[0]
    except (InputError, DownloadError) as e:
        raise RuntimeError(f"this worker cannot load the model: {e}") from None


@functools.lru_cache(maxsize=1)
def _input_ids(paths, run_began):
    """The file ids of the run's inputs, found once per run (``run_began``: the run's
    start, which tells runs with the same inputs apart) on this worker: its device
    numbers are its own."""
    return file_ids(paths)


class IntentsOnly(ResultsFile):
    """The results file as a worker writes it: an intent line, marked with the run's
    id, is appended at once (it must be on disk before the outputs it names); an image's
    record is kept in ``kept`` for the client to append."""

    def __init__(self, folder, run_id):
        super().__init__(folder)
        self.kept, self.run_id = [], run_id

    def append(self, record, durable=True):
        if "writing" in record:
            super().append(record | {"run": self.run_id}, durable)
        else:
            self.kept.append(record)


class OwnOutputs(dict):
    """The client's ``own_outputs`` for this chunk, and, read from the results file (once)
    when an output about to be written exists and is not among them, the outputs that
    this run's workers announced (a worker of this run died while writing them). Another
    run's intent lines are not read: two runs into one folder at once must not replace
    each other's files."""

    def __init__(self, known, results):
        super().__init__(known)
        self._results, self._read = results, False

    def get(self, path, default=None):
        if path not in self and not self._read and os.path.lexists(path):
            self._read = True
            ours = [e for e in self._results.entries() if e.get("run") == self._results.run_id]
            self.update(own_outputs(ours))
        return super().get(path, default)


class Inline:
    """A writer that runs each job at once, in this thread (``handle`` hands its
    outputs to a writer; a task has no next batch to overlap them with)."""

    def submit(self, job, *args):
        future = Future()
        try:
            future.set_result(job(*args))
        except Exception as e:  # noqa: BLE001 - the image's failure, said by the caller
            future.set_exception(e)
        return future
