"""One product in independent blocks, handed to vggnp's own threads as they free up, each
multiplying with one BLAS thread (issue #28.2: robust when the machine is busy).

OpenBLAS splits each matrix product among its threads in equal shares and waits for all
of them at the end. A conv layer is nine such products per block of rows, so VGG16's
Grad-CAM meets hundreds of these barriers; on a machine where another process shares a
core, the thread on that core comes late to every one of them, and two threads ran slower
than one (Grad-CAM beside a spinning process per core: 496-687 ms against 329-357,
docs/speed.md). Here a layer's work is cut into a few independent blocks (``direct_conv``'s
rows of output, a dense kernel's rows, an im2col product's rows) and each of
``count`` threads takes the next block when it is done with its last one: a thread that is
descheduled takes fewer blocks, and nobody waits for it until the layer's end. On an idle
machine it took as long as OpenBLAS's own two threads (docs/speed.md).

    BLOCKS.use(2)              # what ``threads.use_threads`` does
    BLOCKS.run([task, ...])    # each task a function of no arguments; returns when all ran

Tasks must write disjoint parts of their outputs; they run in any order. A layer cuts its
products for the runner it was built with: ``BLOCKS`` for VGG16's (``models/vgg16.py``),
whose forward and input-gradient products are all cut (Winograd's too; not the
parameter gradients'), and so are its pools, ReLU masks and padded copies, in
bands of rows (``pooling.py``, ``layers.FastConv2D``, ``direct_conv.padded_copy``);
``INLINE`` (the caller's thread, BLAS as set) for the Keras graphs', where products that
are not cut (strided im2col convs, pointwise convs) run on OpenBLAS's threads, and
switching those between 2 threads and 1 around each cut product made ResNet50's forward
about 1.6x slower.
"""

import queue
import threading
from functools import partial

import numpy as np
from .blas_threads import BlasThreads

BLOCKS_PER_THREAD = 4


def rows_per_block(rows, threads):
    """Rows a block when ``rows`` are cut for ``threads`` threads: BLOCKS_PER_THREAD
    blocks a thread, so that a thread that comes late takes fewer (at least one row)."""
    return max(1, -(-rows // (BLOCKS_PER_THREAD * threads)))


class BlockThreads:
    """``count`` threads for ``run``'s blocks: the caller's and count - 1 helpers. The
    helpers are daemon threads, as the stream's workers (``stream/workers.py``): a
    process that ends (Ctrl-C) does not wait for them."""

    def __init__(self):
        self.count, self._helpers, self._blas = 1, [], None
        self._jobs = queue.SimpleQueue()  # what the helpers run: each run's drain
        self._running = threading.Lock()  # one run at a time (see ``run``)

    def use(self, count):
        """From now on ``run`` uses ``count`` threads (1: the caller's alone). Helpers are
        started as needed (before the count is raised: a run meanwhile finds them) and
        kept, idle on the queue, when count falls. The BLAS libraries a run limits are
        found again at the next run: those loaded by then (a command sets its count once
        its model is loaded)."""
        count = max(1, int(count))
        while len(self._helpers) < count - 1:
            helper = threading.Thread(target=self._serve, daemon=True, name="vggnp-blocks")
            helper.start()
            self._helpers.append(helper)
        self.count = count
        self._blas = None

    def _serve(self):
        """A helper's life: run the drains that ``_drain_on_threads`` queues, for ever."""
        while True:
            self._jobs.get()()

    def run(self, tasks):
        """Run every task; with count > 1, on count threads that each take the next task as
        they finish one, BLAS limited to one thread meanwhile (a process-wide setting,
        restored after). A second caller while a run is under way runs its tasks itself,
        one after another: nothing waits on another's run; but the BLAS's count is then
        one for its products too, so that count > 1 is for one computing thread (the
        stream's two workers and a cluster worker's task threads set it to 1). The BLAS
        libraries limited are those loaded at the first run since ``use`` (``blas_threads``;
        MKL's sequential functions, loaded later by ``gemm``, need no limit). A task's
        exception is raised here once every thread has stopped taking this run's tasks."""
        tasks = list(tasks)
        if self.count == 1 or len(tasks) < 2 or not self._running.acquire(blocking=False):
            for task in tasks:
                task()
            return
        try:
            blas = self._blas = self._blas or BlasThreads()  # use() may clear it meanwhile
            restore = blas.set(1)
            try:
                self._drain_on_threads(tasks)
            finally:
                restore()
        finally:
            self._running.release()

    def matmul(self, a, b):
        """a @ b, a: (M, K), b: (K, N) -> (M, N), cut into blocks of a's rows;
        one product for one thread (OpenBLAS's threads then share it, as NumPy's ``@``)."""
        if self.count == 1:
            return a @ b
        out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
        self.run(partial(np.matmul, a[rows], b, out=out[rows])
                 for rows in self.row_slices(a.shape[0]))
        return out

    def row_slices(self, rows):
        """Slices cutting ``rows`` rows into this runner's tasks: one, all rows, for one
        thread; else BLOCKS_PER_THREAD a thread (``rows_per_block``)."""
        step = rows if self.count == 1 else rows_per_block(rows, self.count)
        return [slice(k, k + step) for k in range(0, rows, max(step, 1))]

    def _drain_on_threads(self, tasks):
        """Every task of the list ``tasks`` run by this thread and count - 1 helpers, each
        taking the next; after a failure (or Ctrl-C) in any of them, none takes another."""
        pending, taking, failures = iter(tasks), threading.Lock(), []

        def drain():
            while True:
                with taking:
                    task = None if failures else next(pending, None)
                if task is None:
                    return
                try:
                    task()
                except BaseException as e:
                    failures.append(e)
                    raise

        def helper(done):
            try:
                drain()
            except BaseException:  # in failures: raised in the caller's thread, by run
                pass
            finally:
                done.set()
        dones = [threading.Event() for _ in range(min(self.count, len(tasks)) - 1)]
        for done in dones:
            self._jobs.put(partial(helper, done))
        try:
            drain()
        finally:
            for done in dones:  # every helper done before BLAS's thread count is restored
                done.wait()
        if failures:  # a helper's (the caller's own was raised by drain above)
            raise failures[0]


BLOCKS = BlockThreads()  # the process's: set by threads.use_threads, read by VGG16's layers
INLINE = BlockThreads()  # count 1 for ever: every task on the caller's thread
