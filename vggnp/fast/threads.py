"""What the commands ask of the operating system: freed heap memory kept for the next pass
and handed back once a batch (Linux glibc only; elsewhere nothing), and the cores shared
among the network's workers.

(Lowering the reader's and writer's thread priority was tried and measured: at nice 10 a
folder of 200 photos ran at 2.06 images/s, at the process's priority 2.31, in consecutive
runs of scripts/stream_bench.py; so they run at the process's priority.)"""

import ctypes
import functools
import os
import time

from .blas_threads import BlasThreads
from .blocks import BLOCKS


# glibc's largest mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX), and the free space
# at the heap's top it keeps rather than hands back: a batch-1 pass frees and allocates
# arrays of up to 13 MB (block1's) a few dozen times, about 60 MB at once.
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 256 << 20
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # malloc.h's mallopt parameters


def keep_freed_memory():
    """Make glibc keep the memory a pass frees for the next pass's arrays: arrays of up to
    MMAP_THRESHOLD_BYTES come from the heap (not each from a fresh mmap), and up to
    TRIM_THRESHOLD_BYTES freed at the heap's top stay there. glibc's own thresholds adapt
    upwards only as far as the largest array freed so far (13 MB for VGG16's block1), so
    the heap kept shrinking and every pass faulted its block1 arrays in again: 9,435 page
    faults an input gradient's pass, about 20 with these settings; block1's forward and
    backward 6-10 ms faster in the network (``python -m scripts.layer_times``,
    docs/speed.md). A process-wide setting, for the commands
    (``cli.apply_process_settings``), not for a library's caller. Returns True where glibc
    took both."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def give_memory_back():
    """Hand freed heap memory back to the system (glibc's ``malloc_trim``), once a batch.

    Decoded photos of ever different sizes, allocated and freed by several threads, leave
    free holes in glibc's heaps that stay resident: from 20 to 200 photos, peak RSS grew
    11 % without this and 3 % with it (scripts/stream_bench.py, one run each).
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _libc():
    """glibc, loaded on first use; None elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None



def cores():
    """The CPU cores this process may use: those it may run on (its affinity, as
    ``taskset`` or a container's cpuset sets it), and no more than its cgroup's CPU quota
    (``docker --cpus 2`` on a 64-core host is 2), not the machine's count."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(count, quota)) if quota else count


def free_cores(sample=0.05, read=None, busy=None):
    """``cores()`` less those that other work keeps busy right now, at least 1: the BLAS
    threads that will not wait on each other. On a busy machine two threads meet at a
    barrier after each of the network's many matrix products, and one of them, sharing
    its core with another process, comes late each time: with one spinning process per
    core, Grad-CAM on VGG16 took 687 ms on two threads and 339 on one (docs/speed.md).
    The machine's busy cores are read from /proc/stat twice, ``sample`` seconds apart
    (Linux; elsewhere, or unreadable: none busy), less this process's own CPU time
    meanwhile (OpenBLAS's threads spin for a while after NumPy loads it: counted, they
    made an idle machine look busy). busy: a ``BusyCores`` begun earlier (the first
    reading; the time since counts towards ``sample``). read: returns the "cpu" line's
    counters (for tests)."""
    return (busy or BusyCores(read)).free_cores(sample)


class BusyCores:
    """The first of ``free_cores``' two readings, taken when made: a command makes it
    before it loads its model, so that the loading takes the place of the sample's sleep
    (50 ms of each run's start: docs/speed.md, 2026-12-05); the loading's own CPU time is
    taken off as the rest of this process's. read: as free_cores'."""

    def __init__(self, read=None):
        self._read = read or _cpu_times
        self._began, self._cpu = time.monotonic(), time.process_time()
        self._first = self._read()

    def free_cores(self, sample=0.05):
        """free_cores() from the reading when this was made to now, after ``sample``
        seconds at least since then (the rest slept; no sleep where nothing was read)."""
        if self._first is None:
            return cores()
        time.sleep(max(0.0, sample - (time.monotonic() - self._began)))
        second = self._read()
        wall = time.monotonic() - self._began
        if second is None:
            return cores()
        own = (time.process_time() - self._cpu) / wall if wall >= 0.01 else 0.0
        busy = machine_busy_cores(self._first, second) - own
        return max(1, min(cores(), round((os.cpu_count() or 1) - busy)))


def machine_busy_cores(first, second):
    """Cores busy between two readings of /proc/stat's "cpu" line (user, nice, system,
    idle, iowait, irq, softirq, steal, ...: jiffies summed over the machine's CPUs):
    (1 - idle share) x the machine's CPU count."""
    spent = [b - a for a, b in zip(first, second)]
    total = sum(spent[:8])
    idle = spent[3] + spent[4]
    return 0.0 if total <= 0 else (1 - idle / total) * (os.cpu_count() or 1)


def _cpu_times(path="/proc/stat"):
    """The counters of /proc/stat's first ("cpu") line, or None."""
    try:
        with open(path) as f:
            fields = f.readline().split()
        return [int(v) for v in fields[1:9]] if fields and fields[0] == "cpu" else None
    except (OSError, ValueError):
        return None


def _cgroup_quota(path="/sys/fs/cgroup/cpu.max"):
    """The cgroup v2 CPU quota in cores, rounded up ("max": none, None)."""
    try:
        with open(path) as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else -(-int(quota) // int(period))
    except (OSError, ValueError):
        return None


def use_threads(count, blocks=None):
    """From now on every BLAS call of this process runs on at most ``count`` threads (a
    process-wide setting, ``blas_threads``), and the products that VGG16's layers cut into
    blocks on ``blocks`` (default: count) of vggnp's own threads (``blocks.BLOCKS``).
    Returns a function of no arguments that sets the BLAS's counts back."""
    BLOCKS.use(blocks or count)
    return BlasThreads().set(count)


class SharedBlasThreads:
    """From now until ``restore()``, each BLAS call uses (the BLAS's threads // workers)
    threads, at least 1: ``workers`` threads running matrix products at once then share
    the cores instead of each starting a thread per core. A process-wide setting
    (``blas_threads``: OpenBLAS, MKL or BLIS, whichever NumPy and SciPy loaded); change
    it back only when no other thread is inside a BLAS call."""

    def __init__(self, workers):
        self._restore, self._blocks = None, BLOCKS.count
        if workers > 1:
            BLOCKS.use(1)  # each worker's products on its own thread
            blas = BlasThreads()
            self._restore = blas.set(max(1, blas.count() // workers))

    def restore(self):
        if self._restore is not None:
            self._restore()
            self._restore = None
            BLOCKS.use(self._blocks)
