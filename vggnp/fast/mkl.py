"""Intel MKL, where ``pip install 'vggnp[mkl]'`` put it: its ILP64 gemm for ``gemm.py``.

The ``mkl`` wheel (Linux x86_64) installs its libraries into the environment's lib folder.
``libmkl_rt``, the one library loaded here, loads the others when first called: its
threading layer (here the sequential one: vggnp's block threads are the threads) and the
kernels for the CPU. Where one of those is missing MKL prints "Intel MKL FATAL ERROR" and
ends the process, which no ``except`` can catch, so they are looked for beforehand. The
threading layer is process-wide: where another library has loaded MKL already (NumPy
built on MKL, conda's), it is that library's, and vggnp leaves MKL alone.
"""

import ctypes
import os
import site
import sys

MKL_THREADING_SEQUENTIAL = 1   # mkl_service.h's
# What libmkl_rt loads itself: the sequential layer, the core, and the CPU kernels of
# every wheel since 2021 (def: any x86-64; avx2; avx512)
LOADED_BY_RT = ("core", "sequential", "def", "avx2", "avx512")
_LOADED = []  # the libmkl_rt this process loaded here (MKL is then ours, found again)


def library_paths():
    """The libmkl_rt files of this environment's lib folder, newest first, then those of
    the user's (``pip install --user``) where Python reads the user's site."""
    folders = [sys.prefix] + ([site.getuserbase()] if site.ENABLE_USER_SITE else [])
    found = []
    for folder in folders:
        lib = os.path.join(folder, "lib")
        names = os.listdir(lib) if os.path.isdir(lib) else []
        found += sorted((os.path.join(lib, name) for name in names
                         if name.startswith("libmkl_rt.so.")), reverse=True)
    return found


def load():
    """(sgemm, dgemm, version, why_not): MKL's ``cblas_sgemm_64`` and ``cblas_dgemm_64``
    (ctypes functions, no signature set yet) on its sequential layer, and its version;
    or (None, None, "", why it is not used, in words)."""
    paths = library_paths()
    if not paths:
        return None, None, "", "not installed (pip install 'vggnp[mkl]', Linux x86_64)"
    entry = paths[0]
    folder, suffix = os.path.dirname(entry), entry[entry.index(".so."):]
    lacking = [f"libmkl_{name}{suffix}" for name in LOADED_BY_RT
               if not os.path.exists(os.path.join(folder, f"libmkl_{name}{suffix}"))]
    if lacking:
        return None, None, "", f"{entry}: {lacking[0]} is not beside it (a broken install)"
    if loaded_already():
        return None, None, "", "loaded in this process already, by another library"
    try:
        mkl = ctypes.CDLL(entry)
        _LOADED.append(entry)
        sgemm, dgemm = mkl.cblas_sgemm_64, mkl.cblas_dgemm_64
        layer, describe = mkl.MKL_Set_Threading_Layer, mkl.MKL_Get_Version_String
    except (OSError, AttributeError) as e:
        return None, None, "", f"{entry}: {e}"
    if layer(MKL_THREADING_SEQUENTIAL) != MKL_THREADING_SEQUENTIAL:
        return None, None, "", "its sequential layer was refused"
    text = ctypes.create_string_buffer(200)
    describe(text, len(text))
    words = text.value.decode(errors="replace").split()
    return sgemm, dgemm, words[words.index("Version") + 1] if "Version" in words else "", ""


def loaded_already():
    """True where an MKL library is mapped into this process and ``load`` did not load it
    (read from /proc/self/maps; False where that cannot be read: not Linux, where the
    wheel is not either)."""
    if _LOADED:
        return False
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any("/libmkl_" in line for line in maps)
    except OSError:
        return False
