"""What the stream asks of the operating system: lower-priority I/O threads and freed heap
memory handed back. Linux (glibc) only; elsewhere both do nothing."""

import ctypes
import os
import threading


def give_memory_back():
    """Hand freed heap memory back to the system (glibc's ``malloc_trim``), once a batch.

    Decoded photos of ever different sizes, allocated and freed by several threads, leave
    free holes in glibc's heaps that stay resident: from 20 to 200 photos, peak RSS grew
    11 % without this and 3 % with it (scripts/stream_bench.py, one run each).
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def background_thread():
    """Lower the calling thread's priority (Linux: a thread has its own nice value).

    Grad-CAM keeps both cores of a small machine busy with BLAS threads that must meet at
    every matrix product; a reader or writer thread that takes a core from one of them
    stalls both. At nice 10 it runs when a core would otherwise wait."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # not Linux, or not allowed: run as is
        pass


def _libc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()
