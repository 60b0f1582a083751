"""Explain a stream of images, as many as there are, in bounded memory.

    for result in explain_files(model, paths, method="gradcam", batch_size=8):
        ...  # one ImageResult per input, as soon as its batch is done

The pipeline is read -> batch -> explain: a reader thread decodes the next images while the
network runs on the current batch (Pillow and the BLAS release the GIL). Memory is bounded
by a budget of decoded pixels (``pixel_budget``): the reader waits while the pictures not
yet released would exceed it (one picture is always allowed, however large). A result's
picture is released when the caller asks for the next result, or, with
``hold_pictures``, when the caller calls ``result.release()`` (e.g. after writing it). One input that cannot be read, or that breaks the
explanation, gives a result with ``error`` set; the others go on.
"""

import os
import queue
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .explain import explain
from .files.images import ImageError, read_image
from .files.preprocess import model_input
from .gradcam import EmptyMapWarning
from .system import give_memory_back


@dataclass
class ImageResult:
    """One input's outcome. index: its position in the input sequence; source: the path (or
    the array or picture) given. On success: picture (upright RGB, full size), probs (K,)
    class scores, class_index, map (as ``explain`` returns it for one image), x (the model
    input, H x W x C), empty (the map is zero everywhere), notes; details: per-method extras
    (``scorecam_skipped``). On failure: error (an ImageError, or the unexpected exception).
    release(): give the picture's pixels back to the reader's budget (idempotent)."""
    index: int
    source: object
    picture: Image.Image = None
    notes: list = field(default_factory=list)
    probs: np.ndarray = None
    class_index: int = None
    map: np.ndarray = None
    x: np.ndarray = None
    empty: bool = False
    details: dict = field(default_factory=dict)
    error: Exception = None
    _budget: object = None

    def release(self):
        if self._budget is not None and self.picture is not None:
            self._budget.give_back(self.picture.width * self.picture.height)
        self._budget = None


PIXEL_BUDGET = 24_000_000  # decoded pixels in flight: ~72 MB of RGB, two 12 MP photos


def explain_files(model, sources, method="gradcam", mode=None, layer=None,
                  class_index=None, target=None, batch_size=8, read_options=None,
                  progress=None, pixel_budget=PIXEL_BUDGET, hold_pictures=False, trace=False,
                  method_options=None):
    """Yield one :class:`ImageResult` per item of ``sources`` (paths, PIL pictures or
    (H, W, 3) uint8 arrays), in input order within a batch, failures as soon as found.

    model, method, layer, class_index, target: as :func:`vggnp.explain.explain`; mode: the
    preprocessing (``files.preprocess.preprocess``; default: the model's own
    ``default_preprocess``, as the command line chooses); read_options: keyword arguments of
    ``files.images.read_image`` (background, max_pixels, allow_truncated); progress:
    passed on to ``explain`` (Score-CAM calls it per batch of masked images).
    pixel_budget, hold_pictures: see the module docstring. trace: as ``explain``'s (the
    tables of each batch's passes). method_options: more keyword arguments of ``explain``
    (steps, samples, noise, seed).
    EmptyMapWarning is not raised here: ``result.empty`` says it; integrated-gradients'
    completeness check is in ``result.details["completeness"]``.
    """
    budget = _Budget(pixel_budget)
    reader = _Reader(sources, model, mode or model.default_preprocess, read_options or {},
                     batch_size, budget)

    def run(batch):
        if not batch:
            return []
        give_memory_back()
        options = dict(layer=layer, class_index=class_index, target=target,
                       batch_size=batch_size, progress=progress, trace=trace,
                       **(method_options or {}))
        return _handed_out(_explained(model, batch, method, options), hold_pictures)
    try:
        batch = []
        for item in reader:
            if item is None:  # the reader waits for pixels: run what has come so far
                yield from run(batch)
                batch = []
            elif item.error is not None:
                yield from _handed_out([item], hold_pictures)
            else:
                batch.append(item)
                if len(batch) == batch_size:
                    yield from run(batch)
                    batch = []
        yield from run(batch)
    finally:
        reader.stop()


def _handed_out(results, hold):
    """Yield each result; unless ``hold``, release its picture when the next is asked for."""
    for result in results:
        yield result
        if not hold:
            result.release()


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


def _explain_batch(model, batch, method, options):
    """Fill in the results of ``batch`` (ImageResults with their model inputs);
    options: keyword arguments of ``explain``."""
    details = {}
    # An overflow (weights of a damaged model, a strange input) shows as non-finite
    # scores below, said once per image, rather than as NumPy's RuntimeWarning lines.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", EmptyMapWarning)  # result.empty says it
        maps, classes = explain(model, np.stack([item.x for item in batch]), method,
                                details=details, **options)
    for n, item in enumerate(batch):
        if not (np.isfinite(details["probs"][n]).all() and np.isfinite(maps[n]).all()):
            item.error = ImageError("the model's class scores for this image are not finite "
                                    "(an overflow inside the network): the model's weights "
                                    "are not those of a trained network, or the input is "
                                    "far from what it was trained on")
            continue
        item.probs, item.class_index, item.map = details["probs"][n], int(classes[n]), maps[n]
        item.empty = not maps[n].any()
        for key in ("scorecam_skipped", "completeness", "raw"):
            if key in details:
                item.details[key] = details[key][n]


class _Reader:
    """Reads and preprocesses the inputs in a thread, ``ahead`` at most waiting; iterate
    it for ImageResults carrying ``x`` (or ``error``)."""

    _END = object()

    def __init__(self, sources, model, mode, read_options, ahead, budget):
        self._queue = queue.Queue(maxsize=ahead)
        self._budget = budget
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                         args=(sources, model, mode, read_options))
        self._thread.start()

    def _run(self, sources, model, mode, read_options):
        try:
            for index, source in enumerate(sources):
                if self._stopped.is_set():
                    return
                self._put(self._read(index, source, model, mode, read_options, self._budget,
                                     self._stopped))
        except BaseException as e:  # the sources' own iterator broke: end the stream
            self._put(ImageResult(index=-1, source=None, error=e))
        finally:
            self._put(self._END)

    @staticmethod
    def _read(index, source, model, mode, read_options, budget, stopped):
        item = ImageResult(index=index, source=source)
        try:
            if isinstance(source, (str, bytes, os.PathLike)):
                item.picture, item.notes = read_image(source, **read_options)
            elif isinstance(source, Image.Image):
                item.picture = source.convert("RGB")
            else:
                item.picture = Image.fromarray(np.asarray(source, dtype=np.uint8)).convert("RGB")
            item.x = model_input(item.picture, model.input_size, model.channels, mode)
        except Exception as e:  # ImageError, or a bug of ours: this input only
            item.error, item.picture = e, None
            return item
        budget.take(item.picture.width * item.picture.height, stopped)
        item._budget = budget
        return item

    def _put(self, item):
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self):
        """The items read, in order; None when none is ready because the reader waits for
        the pixel budget (the consumer should then finish what it holds)."""
        while True:
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                if self._budget.waiting:
                    yield None
                continue
            if item is self._END:
                return
            if item.index == -1:
                raise item.error
            yield item

    def stop(self):
        """Stop reading (the consumer is done or interrupted) and release what waits."""
        self._stopped.set()
        self._budget.open()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)


class _Budget:
    """Decoded pixels in flight, at most ``limit`` (but always one picture, however big)."""

    def __init__(self, limit):
        self.limit, self.used, self._opened, self.waiting = limit, 0, False, False
        self._changed = threading.Condition()

    def take(self, pixels, stopped):
        """Wait until ``pixels`` fit (or nothing is in flight, or the stream stops)."""
        with self._changed:
            self.waiting = True
            self._changed.wait_for(lambda: self._opened or stopped.is_set() or self.used == 0
                                   or self.used + pixels <= self.limit)
            self.waiting = False
            self.used += pixels

    def give_back(self, pixels):
        with self._changed:
            self.used -= pixels
            self._changed.notify_all()

    def open(self):
        """Let every waiting reader through (the stream is closing)."""
        with self._changed:
            self._opened = True
            self._changed.notify_all()


__all__ = ["ImageError", "ImageResult", "explain_files"]
