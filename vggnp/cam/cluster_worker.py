"""One task of a cluster run (``--dask``), on a Dask worker: a chunk of images read from
the file system all workers share, explained, and their outputs written into --out by the
same code and rules as on one machine (``image.handle``: nothing clobbered, each file
whole or absent, the intent line in the results file before the outputs it names).

The records go back to the client, which alone appends them to the results file: a task
that a dying worker left half done is run again on another worker, and its images are
listed once. The outputs the dead worker had written are announced by its intent lines,
so the task run again may replace them (``OwnOutputs``), as a resumed run does.
"""

import argparse
import dataclasses
import functools
import os
import threading
from concurrent.futures import Future

from .image import failed, handle
from .run_io import Progress
from .settings import FOLDER_ERRORS, Stop, prepare, stream_options
from .state import RunState
from ..cli import file_ids
from ..files.results import ResultsFile, file_stamp, own_outputs
from ..stream.batches import explain_files

# The options that decide the model a worker loads: a task with other values loads again.
MODEL_OPTIONS = ("model", "weights", "labels", "preprocess", "layer", "class_", "method",
                 "target", "threads")
_loaded = {}                # {model options: RunSettings}: one model per worker process
_loading = threading.Lock()
_mine = threading.local()   # this worker thread's replica (its own layer caches)


@dataclasses.dataclass
class ChunkDone:
    """What a task sends back. records: [(record, the folder is unusable)] in the
    chunk's order, each a success (with its outputs' stamps) or a failure (with its
    "error"); messages: the lines the client says on stderr; replaced: vggnp's own
    earlier files that were replaced."""
    records: list
    messages: list
    replaced: list


def explain_chunk(args, command, chunk, inputs, own):
    """Explain and write one chunk. args: the client's options, paths made absolute;
    chunk: [(absolute image path, output stem)]; inputs: the run's input paths, a tuple
    (no output may replace one; their file ids are this machine's, found here); own: the
    client's ``own_outputs`` for this chunk's inputs. Returns a ChunkDone."""
    run = settings(args, command)
    ledger = IntentsOnly(args.out)
    out = RunState(lines=None, results=ledger, progress=Progress(0, False), debug=args.debug,
                   scale={"max": args.scale_max}, inputs=_input_ids(inputs),
                   own=OwnOutputs(own, ledger), messages=[])
    stream = explain_files(run.model, [path for path, _ in chunk], args.method, run.mode,
                           run.layer, run.chosen_class, run.target, hold_pictures=True,
                           **stream_options(args))
    done = []
    for result in stream:
        record, future, _ = handle(args, run, out, result, chunk[result.index][1], Inline())
        error = future.exception() if future is not None else None
        if error is not None:
            record = failed(out, record, error)
        elif future is not None:
            record = ledger.kept.pop()  # the record ``_write`` made: with the stamps
        done.append((record, isinstance(error, OSError) and error.errno in FOLDER_ERRORS))
    return ChunkDone(records=done, messages=out.messages, replaced=out.replaced)


def settings(args, command):
    """This worker thread's RunSettings: the model loaded once per worker process (again
    when a task names other options, or the file changed since: size and mtime), and a
    replica of it for each of the worker's threads."""
    key = tuple(repr(vars(args)[name]) for name in MODEL_OPTIONS) + tuple(
        file_stamp(path) for path in (args.model, args.weights, args.labels) if path)
    mine = vars(_mine).get("run")
    if mine is not None and mine[0] == key:
        return mine[1]
    with _loading:
        if key not in _loaded:
            _loaded.clear()
            _loaded[key] = _prepared(args, command)
        run = _loaded[key]
    run = dataclasses.replace(run, model=run.model.replica(), own_model=run.model.replica())
    _mine.run = (key, run)
    return run


def _prepared(args, command):
    """prepare() on this worker, with one BLAS thread per task thread unless --threads
    says otherwise (Dask's own convention: its Nanny starts workers with
    OPENBLAS_NUM_THREADS=1, and a worker's parallelism is its threads and processes;
    more would oversubscribe the cores, which costs several times the time here)."""
    threads = args.threads or 1
    try:
        return prepare(argparse.Namespace(**(vars(args) | {"threads": threads})), command)
    except Stop as stop:  # its line went to this worker's log
        raise RuntimeError(f"the worker could not load the model {args.model or args.weights} "
                           f"(exit {stop.code}; the worker's log says why): every worker "
                           "must see the same file at the same path") from None


@functools.lru_cache(maxsize=1)
def _input_ids(paths):
    """The file ids of the run's inputs, found once per run on this worker."""
    return file_ids(paths)


class IntentsOnly(ResultsFile):
    """The results file as a worker writes it: an intent line is appended at once (it
    must be on disk before the outputs it names); an image's record is kept in ``kept``
    for the client to append."""

    def __init__(self, folder):
        super().__init__(folder)
        self.kept = []

    def append(self, record, durable=True):
        if "writing" in record:
            super().append(record, durable)
        else:
            self.kept.append(record)


class OwnOutputs(dict):
    """The client's ``own_outputs`` for this chunk, read again from the results file
    (once) when an output about to be written exists and is not among them: a worker that
    died while writing it announced it there after the client read the file."""

    def __init__(self, known, results):
        super().__init__(known)
        self._results, self._read = results, False

    def get(self, path, default=None):
        if path not in self and not self._read and os.path.lexists(path):
            self._read = True
            self.update(own_outputs(self._results.entries()))
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
