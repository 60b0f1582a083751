"""Explain a stream of images, as many as there are, in bounded memory.

    for result in explain_files(model, paths, method="gradcam", batch_size=8):
        ...  # one ImageResult per input, as soon as its batch is done

The pipeline is read -> batch -> explain: a reader thread (``reader.py``) decodes the
next images while the network runs on the current batch (Pillow and the BLAS release the
GIL). With ``workers=2`` two batches run at once (``workers.py``), each on its own replica
of the network
(shared weights, own caches) with half the BLAS threads: one network's matrix products
leave the cores idle in between (im2col copies, ReLU, pooling, Python), two fill each
other's gaps (``scripts/stream_bench.py`` measures the whole command).

Memory is bounded by a budget of decoded pixels (``pixel_budget``): the reader waits while
the pictures not yet released would exceed it (one picture is always allowed, however
large), and a batch is cut once its pictures hold a share of the budget, so that every
worker's batch and the next one fit in it. A result's picture is released when the caller
asks for the next result, or, with ``hold_pictures``, when the caller calls
``result.release()`` (e.g. after writing it). One input that cannot be read, or that
breaks the explanation, gives a result with ``error`` set; the others go on.
"""

from collections import deque
from concurrent.futures import FIRST_COMPLETED, wait

from ..fast.threads import SharedBlasThreads, give_memory_back
from ..files.images import ImageError
from ..methods.arguments import check_stream_arguments
from .interrupts import SIGNAL_POLL
from .reader import READER_WAIT, Budget, ImageResult, Reader
from .workers import Workers

PIXEL_BUDGET = 24_000_000  # decoded pixels in flight: ~96 MB (Pillow keeps RGB in 4 bytes)
CLOSE_WAIT = 30  # seconds a closed stream waits for its batches under way (a Score-CAM
                 # batch can take minutes: then the threads are left to end by themselves);
                 # the command line, which ends after a stop, waits for none


def explain_files(model, sources, method="gradcam", mode=None, layer=None,
                  class_index=None, target=None, batch_size=8, read_options=None,
                  progress=None, pixel_budget=PIXEL_BUDGET, hold_pictures=False, trace=False,
                  method_options=None, workers=1, close_wait=CLOSE_WAIT):
    """Yield one :class:`ImageResult` per item of ``sources`` (paths, PIL pictures, uint8
    arrays: ``reader.picture_of_array``; ``result.index`` is its position), a batch's
    results in input order as soon as the batch is done, failures to read as soon as
    found. With one worker that is input order; with two, a small batch may overtake a
    larger one. model, method, layer, target: as :func:`vggnp.methods.explain.explain`;
    class_index: None, one class for all, or one per source (sources a list); mode: the
    preprocessing (default: the model's own, as the command line's); read_options: keyword
    arguments of ``files.images.read_image`` (background, max_pixels, allow_truncated);
    progress: passed on to ``explain`` (Score-CAM's per batch). pixel_budget,
    hold_pictures: see the module docstring. trace: as ``explain``'s (the
    tables of each batch's passes). method_options: more keyword arguments of ``explain``
    (steps, samples, noise, seed, rule, epsilon, gamma: the method's own; another's is
    refused). workers: batches run at once, each in a thread of its own on a
    ``model.replica()`` (``model`` stays free for the caller), with the BLAS's threads
    shared out among them while the stream is open (a process-wide setting: ``blas_threads``);
    the command line runs 2 on a folder, 1 on one batch. ``progress`` is called from those
    threads. close_wait: seconds a closed stream waits for the batches under way before it
    returns (the BLAS threads are given back if they ended by then), and for an image being
    decoded (READER_WAIT at most). No EmptyMapWarning here: ``result.empty`` says it;
    integrated-gradients' completeness check is in ``result.details["completeness"]``.
    """
    check_stream_arguments(model, sources, method, layer, class_index, target, trace,
                           batch_size, workers, mode, method_options or {}, read_options or {})
    mode = mode or model.default_preprocess
    options = dict(layer=layer, class_index=class_index, target=target, batch_size=batch_size,
                   progress=progress, trace=trace, preprocess=mode, **(method_options or {}))
    # Replicas even for one worker: a batch still running after the caller stopped the
    # stream (a break, Ctrl-C) must not write into the caller's own model's caches.
    replicas = [model.replica() for _ in range(workers)]
    blas = pool = reader = None
    try:  # from the first thread started: a Ctrl-C at any point stops what was started
        blas = SharedBlasThreads(workers)
        pool = Workers(replicas, method, options)
        reader = Reader(sources, model, mode, read_options or {}, batch_size,
                        Budget(pixel_budget))
        yield from _run(reader, pool, batch_size, pixel_budget / (workers + 1), workers,
                        hold_pictures)
    finally:
        try:
            if reader is not None:
                reader.stop(wait=min(close_wait, READER_WAIT))
        finally:  # the workers stopped even if a second Ctrl-C ends the reader's wait
            # Given back once no worker runs (no BLAS call, no run of blocks under way: the
            # settings unwind in turn, ``BlasThreads.set``).
            if blas is not None and (pool is None or pool.close(wait=close_wait)):
                blas.restore()


def _run(reader, pool, batch_size, batch_pixels, workers, hold):
    """Cut the reader's images into batches (``batch_size`` images, or once they hold
    ``batch_pixels``), hand them to ``pool``, and yield the results as batches finish."""
    pending = deque()  # batches under way, oldest first

    def submit(batch):
        if batch:
            give_memory_back()
            pending.append(pool.submit(batch))
    batch = []
    for item in reader:
        if item is Reader.WAITING:  # run what has come so far: the reader waits for pixels
            submit(batch)
            batch = []
        elif item.error is not None:
            yield from _handed_out([item], hold)
        else:
            batch.append(item)
            if len(batch) == batch_size or _pixels(batch) > batch_pixels:
                submit(batch)
                batch = []
        yield from _finished(pending, workers, hold)
    submit(batch)
    yield from _finished(pending, 0, hold)


def _pixels(batch):
    return sum(item.picture.width * item.picture.height for item in batch)


def _finished(pending, keep, hold):
    """Yield the results of every batch of ``pending`` that is done (oldest first among
    them), waiting while more than ``keep`` are under way. Not in input order: a batch
    that waited for the one before it would keep its pictures, and so the reader's
    pixel budget, while a worker idles."""
    while pending:
        done = [future for future in pending if future.done()]
        if not done and len(pending) <= keep:
            return
        if not done:
            wait(pending, timeout=SIGNAL_POLL, return_when=FIRST_COMPLETED)  # interrupts
            continue
        for future in done:
            pending.remove(future)
            yield from _handed_out(future.result(), hold)


def _handed_out(results, hold):
    """Yield each result; unless ``hold``, release its picture when the next is asked for."""
    for result in results:
        yield result
        if not hold:
            result.release()


__all__ = ["ImageError", "ImageResult", "explain_files"]
