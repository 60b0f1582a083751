"""The stream's workers: one thread per network replica, each explaining one batch at a time.

Why not ``concurrent.futures.ThreadPoolExecutor``: its threads are not daemon threads, and
the interpreter waits for them at exit, so a Ctrl-C during a long batch (Score-CAM: minutes)
would hang the process until the batch ends; and each thread must own one replica of the
network (its own layer caches) for its whole life. This pool hands out the same
``concurrent.futures.Future`` objects, so the consumer waits on them as on an executor's.
"""

import queue
import threading
import time
from concurrent.futures import Future

import numpy as np

from .interrupts import free
from ..files.images import ImageError
from ..methods.explain import explain


IDLE_END = 0.1  # seconds: a thread waiting for work ends within microseconds of its stop


class Workers:
    """One daemon thread per model replica, each explaining one batch at a time.

    Daemon threads: a process that ends (Ctrl-C) does not wait for a long batch under way
    (it only computes; the files are written by the caller)."""

    def __init__(self, models, method, options):
        self._tasks = queue.Queue()
        self._threads = [threading.Thread(target=self._serve, args=(model, method, options),
                                          daemon=True) for model in models]
        for thread in self._threads:
            thread.start()

    def submit(self, batch):
        """A Future of ``batch`` explained (its ImageResults filled in)."""
        future = Future()
        self._tasks.put((future, batch))
        return future

    def _serve(self, model, method, options):
        while (task := self._tasks.get()) is not None:
            future, batch = task
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(_explained(model, batch, method, options))
                except BaseException as e:  # noqa: B036 - handed to the consumer's thread
                    future.set_exception(e)

    def close(self, wait):
        """Cancel what has not started, and wait up to ``wait`` seconds for the batches
        under way (an idle thread is given IDLE_END to take its stop and end). Returns True
        if every thread has ended (False too when an interrupt left the task queue's lock
        held: ``interrupts``)."""
        if not free(self._tasks.mutex):
            return False
        while True:
            try:
                self._tasks.get_nowait()[0].cancel()
            except queue.Empty:
                break
        for _ in self._threads:
            self._tasks.put(None)
        deadline = time.monotonic() + wait
        for thread in self._threads:
            thread.join(max(IDLE_END, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)


def _explained(model, batch, method, options):
    """The batch's results; if the batch as a whole raises, each image alone, so that
    only the image at fault fails."""
    try:  # Exception only: Ctrl-C and SIGTERM (BaseException) end the stream
        _explain_batch(model, batch, method, options)
    except Exception:
        for item in batch:
            try:
                _explain_batch(model, [item], method, options)
            except Exception as e:
                item.error = e
    return batch


def score_notes(probs):
    """Notes on scores (K,) whose order means little: a top score shared by several classes
    (the top class is then the first of them by index), or a softmax saturated in float32:
    the top scores exactly 1 and every other class exactly 0 (their logits are so far apart
    that exp underflows; the classes after the first are then listed in index order)."""
    top = probs.max()
    tied = int((probs == top).sum())
    if tied > 1:
        return [f"the top score {top:.4g} is shared by {tied} classes: the top class is "
                "the first of them by index, not the model's choice"]
    if top == 1.0 and np.count_nonzero(probs) == 1:
        return ["a saturated softmax: the top class scores exactly 1 and every other class "
                "exactly 0 in float32, so the classes after the first are in index order, "
                "not the model's"]
    return []


def _explain_batch(model, batch, method, options):
    """Fill in the results of ``batch`` (ImageResults with their model inputs);
    options: keyword arguments of ``explain``."""
    details = {}
    if np.ndim(options.get("class_index")) == 1:  # one class per source: this batch's
        options = dict(options, class_index=[options["class_index"][item.index]
                                             for item in batch])
    # An overflow (weights of a damaged model, a strange input) shows as non-finite
    # scores below, said once per image, rather than as NumPy's RuntimeWarning lines
    # (np.errstate holds for this thread only). result.empty says an empty map.
    with np.errstate(all="ignore"):
        maps, classes = explain(model, np.stack([item.x for item in batch]), method,
                                details=details, warn_empty=False, **options)
    for n, item in enumerate(batch):
        if not (np.isfinite(details["probs"][n]).all() and np.isfinite(maps[n]).all()):
            item.error = ImageError("the model's class scores for this image are not finite "
                                    "(an overflow inside the network): the model's weights "
                                    "are not those of a trained network, or the input is "
                                    "far from what it was trained on")
            continue
        item.probs, item.class_index, item.map = details["probs"][n], int(classes[n]), maps[n]
        item.empty = not maps[n].any()
        item.notes.extend(score_notes(item.probs))
        for key in ("scorecam_skipped", "completeness", "conservation", "raw"):
            if key in details:
                item.details[key] = details[key][n]
