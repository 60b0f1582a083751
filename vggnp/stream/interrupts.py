"""A lock that an interrupt left held: how the stream's clean-up avoids waiting for itself.

CPython runs a signal handler (Ctrl-C's KeyboardInterrupt, the command line's SIGTERM
exception) between any two bytecodes of the main thread, also between a lock's acquire
inside ``queue.Queue.get`` or ``threading.Condition.__enter__`` and the ``with`` block that
would release it (CPython issue 74174, bpo-29988). The lock then stays held by nobody: the
next ``get`` of that queue in any thread waits forever. Seen once in this project's tests:
a SIGTERM during the main thread's 50 ms polling of the reader's queue left a ``vggnp.cam``
process hung in the clean-up's drain of that queue, 40 minutes later. The clean-up asks
first (``free``) and skips what it cannot take: its threads are daemon threads, and the
process ends without them.

A second trap, the other way round: the kernel hands a signal sent to the process to any
of its threads that does not block it (a stream worker, a block thread, OpenBLAS's own).
CPython's C handler then only marks it pending; a main thread blocked on a lock (waiting
for a batch) is not woken, and the Python handler waits with it until that lock is
released -- the length of a batch, or for ever. Seen here: 1 SIGTERM in about 25 sent
while a batch ran left the command waiting for its 120 s batch. So the main thread waits
for a batch (or a cluster's task) ``SIGNAL_POLL`` at a time. Its other waits are bounded:
an image being decoded (the reader's join: up to the stream's close_wait, 5 s at most),
an output being written (the writer thread finishes it anyway), a block of a product
(milliseconds).
"""

SIGNAL_POLL = 0.1  # seconds: the main thread's wait for a batch, between looks for a signal


def free(lock, timeout=1.0):
    """True if ``lock`` (a Lock, or a Condition) can be taken within ``timeout`` seconds
    (it is released again at once); False if it cannot: left held by an interrupt (see the
    module docstring), since the stream's own threads hold it only for a moment."""
    if lock.acquire(timeout=timeout):
        lock.release()
        return True
    return False
