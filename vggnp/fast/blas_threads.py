"""The BLAS libraries' thread counts: a process-wide setting, made from any thread.

threadpoolctl (3.8 and later) lets one Python thread only set OpenBLAS's count: the first
that sets it, for as long as it lives; the other threads' settings are dropped without a
word (its ``OpenBLASController.set_num_threads``). vggnp sets the count from whichever
thread runs a network: ``blocks.BlockThreads.run`` limits the BLAS to one thread while its
threads multiply, and ``python -m vggnp.cam`` runs the network in the stream's worker
thread, after its main thread had set the count (``threads.use_threads``). There the limit
was dropped: each block thread's products ran on two OpenBLAS threads (four threads on two
cores) and OpenBLAS's kernel ran in place of MKL's (docs/speed.md, 2026-12-05).

So OpenBLAS's count is set here with OpenBLAS's own ``openblas_set_num_threads`` (one
count for the process in its pthreads build, which NumPy's wheels ship), and any other
library (MKL, BLIS; an OpenMP OpenBLAS, whose count is per thread) through threadpoolctl,
which sets those from any thread.
"""

import ctypes

from threadpoolctl import ThreadpoolController

# OpenBLAS's C names, as NumPy's wheels (scipy_ ... 64_), SciPy's and the distributions'
# builds spell them
_AFFIXES = [(prefix, suffix) for prefix in ("", "scipy_") for suffix in ("", "64_", "_64")]


class BlasThreads:
    """The BLAS libraries loaded when it is made (threadpoolctl finds them), whose thread
    counts ``set`` changes for the whole process, from any thread."""

    def __init__(self):
        blas = ThreadpoolController().select(user_api="blas")
        self._openblas = []     # [(get, set)]: ctypes functions of each pthreads OpenBLAS
        others = []
        for library in blas.lib_controllers:
            functions = _openblas_functions(library)
            if functions is None:
                others.append(library.filepath)
            else:
                self._openblas.append(functions)
        self._others = blas.select(filepath=others) if others else None

    def count(self):
        """The largest thread count of the libraries (1 where there are none)."""
        counts = [get() for get, _ in self._openblas]
        if self._others is not None:
            counts += [library["num_threads"] for library in self._others.info()]
        return max((n for n in counts if n), default=1)

    def set(self, count):
        """Every library on ``count`` threads from now on. Returns a function of no
        arguments that sets back the counts found (in any thread). Settings that overlap
        must be restored in turn, the last made first (as a run of blocks inside a
        stream's, inside a command's): each puts back what it found."""
        before = [(set_count, get()) for get, set_count in self._openblas]

        def restore_openblas():
            for set_count, previous in before:
                set_count(previous)
        for set_count, _ in before:
            set_count(count)
        try:
            others = None if self._others is None else self._others.limit(limits=count)
        except BaseException:
            restore_openblas()
            raise

        def restore():
            restore_openblas()
            if others is not None:
                others.restore_original_limits()
        return restore


def _openblas_functions(library):
    """(get, set) of the threadpoolctl ``library``'s thread count (``thread_functions``,
    in the library as threadpoolctl opened it: the copy loaded, never a second); None for
    another library, an OpenMP OpenBLAS, or one whose names are not found."""
    if library.internal_api != "openblas" or library.threading_layer == "openmp":
        return None
    return thread_functions(library.dynlib)


def thread_functions(openblas):
    """(get, set): ctypes functions of OpenBLAS's ``openblas_get_num_threads`` and
    ``openblas_set_num_threads`` in the loaded library ``openblas`` (a ctypes.CDLL), under
    any of the names builds give them (``_AFFIXES``); None where it has neither."""
    for prefix, suffix in _AFFIXES:  # a name not in the library: ctypes' AttributeError
        get = getattr(openblas, f"{prefix}openblas_get_num_threads{suffix}", None)
        set_count = getattr(openblas, f"{prefix}openblas_set_num_threads{suffix}", None)
        if get is not None and set_count is not None:
            get.restype, get.argtypes = ctypes.c_int, []
            set_count.restype, set_count.argtypes = None, [ctypes.c_int]
            return get, set_count
    return None
