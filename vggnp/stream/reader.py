"""The reading side of ``vggnp.stream``: each input read and preprocessed in a thread of its
own, ahead of the network, within a budget of decoded pixels; and ``ImageResult``, what
the stream hands out per input."""

import os
import queue
import threading
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .interrupts import free
from ..files.images import read_image
from ..files.preprocess import FLAT_BELOW, grey_level_spread, model_input

READER_WAIT = 5  # seconds a stopped reader is waited for while it decodes an image, at most


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


def picture_of_array(source):
    """An RGB picture of ``source``, an array of uint8 pixels (H, W), (H, W, 3) or
    (H, W, 4); ValueError for anything else (a float array cast to uint8 gave a black
    image, explained without a word; negative values wrapped round)."""
    if not isinstance(source, np.ndarray):
        raise TypeError(f"a source must be a path, a PIL image or a NumPy array of pixels, "
                        f"not {type(source).__name__}")
    if source.dtype != np.uint8 or not (source.ndim == 2 or (
            source.ndim == 3 and source.shape[2] in (3, 4))) or 0 in source.shape:
        raise ValueError(f"a picture array must be uint8 pixels (0..255) of shape (H, W), "
                         f"(H, W, 3) or (H, W, 4), not {source.dtype} {source.shape}; for "
                         "values in [0, 1]: (a * 255).round().astype(np.uint8)")
    return Image.fromarray(np.ascontiguousarray(source)).convert("RGB")


class Reader:
    """Reads and preprocesses the inputs in a thread, ``ahead`` at most waiting; iterate
    it for ImageResults carrying ``x`` (or ``error``)."""

    WAITING = "the reader waits for pixels"  # what iterating yields then; never an image
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
                item.picture = picture_of_array(source)
            item.x = model_input(item.picture, model.input_size, model.channels, mode)
            if grey_level_spread(item.x, mode) < FLAT_BELOW:
                item.notes.append("the image is one flat colour: its map can show only the "
                                  "network's border effects, not the image")
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
        """The items read, in order; ``Reader.WAITING`` when none is ready because the
        reader waits for the pixel budget (the consumer should then finish what it holds).
        It polls (every 50 ms) rather than block: the pixels come back when the caller
        releases its pictures, from any thread and at any time, and until then the
        consumer must keep handing out the batches that finish."""
        while True:
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                if self._budget.waiting:
                    yield Reader.WAITING
                continue
            if item is self._END:
                return
            if item.index == -1:
                raise item.error
            yield item

    def stop(self, wait=READER_WAIT):
        """Stop reading (the consumer is done or interrupted) and release what waits,
        waiting up to ``wait`` seconds for an image being decoded; a queue whose lock an
        interrupt left held is left as it is (``interrupts``)."""
        self._stopped.set()
        self._budget.open()
        if not free(self._queue.mutex):
            return
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=wait)


class Budget:
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
        """Let every waiting reader through (the stream is closing), unless an interrupt
        left the budget's lock held (``interrupts``: the reader is then a daemon thread
        left waiting)."""
        if not free(self._changed):
            return
        with self._changed:
            self._opened = True
            self._changed.notify_all()
