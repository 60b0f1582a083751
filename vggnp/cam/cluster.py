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

import contextlib
import os

from .cluster_worker import explain_chunk
from .image import settle, tell
from .settings import Stop, each_until_stopped
from ..cli import EXIT_OUTPUT, EXIT_SOME_FAILED, EXIT_USAGE, fail, say

CONNECT_TIMEOUT = 10  # seconds to reach the scheduler (Dask retries until then)


@contextlib.contextmanager
def connect(address, client=None):
    """The Dask client the run uses: ``client`` if given, else one connected to
    ``address`` (closed afterwards), else None (the run stays on this machine). A missing
    Dask or a scheduler that cannot be reached stops the run with one line (exit 2)."""
    if client is not None or address is None:
        yield client
        return
    try:
        from distributed import Client
    except ImportError:
        raise Stop(fail(EXIT_USAGE, "--dask needs Dask's distributed package: pip install "
                                    "'vggnp[dask]'"))
    try:
        own = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, ValueError, TypeError) as e:  # TimeoutError is an OSError
        raise Stop(fail(EXIT_USAGE, f"--dask {address}: cannot reach the scheduler ({e}); "
                                    "is `dask scheduler` running there, with workers?"))
    with own:
        yield own


def explain_on_cluster(args, run, todo, out, client):
    """Submit one task per chunk of ``todo`` ([(path, output stem)]), and settle each
    image as its task comes back; a task that fails (its worker died too often) or an
    interrupt stops the run, the tasks not yet done cancelled."""
    from distributed import as_completed
    paths = {os.path.abspath(path): path for path, _ in todo}  # shown as given
    workers = len(client.scheduler_info()["workers"])
    if out.progress.enabled:
        say(f"vggnp.cam: {workers} Dask worker(s) at {client.scheduler.address}, chunks of "
            f"{args.batch_size} image(s)")
    inputs = client.scatter(tuple(paths), broadcast=True)
    own = _own_by_input(out.own)
    options = for_workers(args, run)
    futures = [client.submit(explain_chunk, options, run.command, chunk, inputs,
                             {k: v for path, _ in chunk for k, v in own.get(path, {}).items()},
                             pure=False)
               for chunk in _chunks(todo, args.batch_size)]
    try:
        each_until_stopped(out, as_completed(futures),
                           lambda future: _settle_chunk(out, future.result(), paths))
    except Exception as e:  # noqa: BLE001 - a task failed as a whole: say it, keep the rest
        tell(out, f"vggnp.cam: the cluster run stopped: {type(e).__name__}: {e}")
        out.stop = EXIT_SOME_FAILED
    finally:
        client.cancel(futures)


def _chunks(todo, size):
    """[(absolute path, stem)] lists of ``size`` images."""
    whole = [(os.path.abspath(path), stem) for path, stem in todo]
    return [whole[i:i + size] for i in range(0, len(whole), size)]


def _own_by_input(own):
    """``own`` (``files.results.own_outputs``: {output: (input, stamp)}) by input: the
    outputs a chunk's worker may replace without --overwrite are those of its inputs."""
    by_input = {}
    for output, made in own.items():
        by_input.setdefault(made[0], {})[output] = made
    return by_input


def for_workers(args, run):
    """The options as a worker needs them: every path absolute (a worker's working
    folder is its own), and VGG16's weights the file this process found."""
    absolute = {name: os.path.abspath(vars(args)[name]) for name in ("out", "model",
                                                                      "weights", "labels")
                if vars(args)[name] is not None}
    if args.model is None:
        absolute["weights"] = os.path.abspath(run.weights_path)
    return type(args)(**(vars(args) | absolute))


def _settle_chunk(out, done, paths):
    """A chunk's messages said, then each image settled in the chunk's order."""
    if done.messages:
        tell(out, *done.messages)
    out.replaced.extend(done.replaced)
    for record, folder_unusable in done.records:
        record["image"] = paths.get(record["path"], record["image"])
        if folder_unusable:
            out.stop = out.stop or EXIT_OUTPUT
        settle(out, record, listed=False)
