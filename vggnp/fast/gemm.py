"""out += a @ b in place: the one matrix product NumPy cannot do, for ``direct_conv`` (and
out = a @ b into a block of a larger array, for ``winograd``).

BLAS computes ``C = alpha * A @ B + beta * C``; NumPy's ``@`` always uses beta = 0 (it can
only overwrite), so summing nine products into one output block would need a temporary
and an extra pass per product. This module calls a BLAS with beta = 1 through ``ctypes``:
Intel MKL where it is installed (``pip install 'vggnp[mkl]'``; with its sgemm VGG16's
passes ran about 1.1x faster than with OpenBLAS's on an AVX-512 Xeon, docs/speed.md), else
the very OpenBLAS NumPy uses; VGGNP_GEMM=openblas picks OpenBLAS where both are there.
- MKL runs on its sequential layer, for the products made where OpenBLAS runs one thread
  (``blas_functions``), and OpenBLAS is NumPy's own, so no second pool of BLAS threads
  competes with vggnp's (a second OpenBLAS, such as SciPy's, keeps its own threads
  spinning after each call; measured: the two fought over the two cores, block1_conv1
  10 -> 44 ms after the dense layers, docs/speed.md);
- ctypes releases the GIL during the call, as NumPy does, so the stream's two worker
  threads multiply at the same time (SciPy's BLAS wrappers hold the GIL: two threads took
  as long as one after the other).
NumPy's wheels (PyPI, 2.x) ship OpenBLAS with 64-bit integers and the symbol names
``scipy_cblas_sgemm64_``; where that library is not found (another NumPy build), or its
answer to a small product at load time is wrong, ``matmul_add`` falls back to
``out += a @ b``: the same result, slower.
"""

import ctypes
import os
import threading
from typing import NamedTuple

import numpy as np

from . import blas_threads, mkl

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112   # cblas.h's enum values


def matmul_add(a, b, out):
    """out += a @ b.   a: (M, K), b: (K, N), out: (M, N); one dtype, float32 or float64.

    a and out must have adjacent columns (rows may lie apart, as slices of a larger
    array); b may be C- or F-contiguous (a transposed view: BLAS's transpose flag). For
    anything else, or with no usable BLAS, NumPy's ``out += a @ b``. Returns out.
    """
    return _gemm(a, b, out, 1.0)


def matmul_into(a, b, out):
    """out = a @ b (BLAS's beta = 0), the arrays as ``matmul_add``'s: out may be a block of
    columns of a larger array, written in place (NumPy's ``matmul(out=)`` would multiply
    into a temporary and copy). Returns out."""
    return _gemm(a, b, out, 0.0)


def _gemm(a, b, out, beta):
    """out = a @ b + beta * out, beta 0 or 1, through BLAS where it reads the arrays."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] \
            or out.shape != (a.shape[0], b.shape[1]):
        raise ValueError(f"matmul: shapes {a.shape} @ {b.shape} into {out.shape}")
    if not out.flags.writeable:
        raise ValueError("matmul: out is read-only")
    gemm = blas_functions().get(out.dtype)
    if gemm is not None and _blas_add(gemm, a, b, out, beta):
        return out
    if beta:
        out += a @ b
    else:
        out[...] = a @ b
    return out


def _blas_add(gemm, a, b, out, beta=1.0):
    """out = a @ b + beta * out through the ctypes function gemm; False (nothing done) if
    the arrays' layout is not one BLAS reads in place."""
    rows_a, rows_out = _row_stride(a), _row_stride(out)
    b_trans, ldb = _b_layout(b)
    if a.dtype != out.dtype or b.dtype != out.dtype or None in (rows_a, rows_out, ldb):
        return False
    (m, k), n = a.shape, b.shape[1]
    if m and n and k:
        gemm(ROW_MAJOR, NO_TRANS, b_trans, m, n, k, 1.0, a.ctypes.data, rows_a,
             b.ctypes.data, ldb, beta, out.ctypes.data, rows_out)
    elif not beta:
        out[...] = 0
    return True


def _row_stride(m):
    """Elements from one row of the 2-D array m to the next, if its columns are adjacent
    and its rows do not overlap; else None."""
    item = m.itemsize
    if m.ndim != 2 or m.strides[0] % item or m.strides[1] % item:
        return None
    rows, columns = m.strides[0] // item, m.strides[1] // item
    if m.shape[1] > 1 and columns != 1:
        return None
    if m.shape[0] <= 1:
        return max(m.shape[1], 1)
    return rows if rows >= max(m.shape[1], 1) else None


def _b_layout(b):
    """(transpose flag, leading dimension) that hands b to row-major BLAS without a copy."""
    rows = _row_stride(b)
    if rows is not None:
        return NO_TRANS, rows
    columns = _row_stride(b.T)                   # a transposed view: b.T has adjacent columns
    return (TRANS, columns) if columns is not None else (None, None)


_FINDING = threading.Lock()  # two threads may make their first product at once
_FOUND = {}                  # "libraries": what libraries() found (forget() clears it)


class Libraries(NamedTuple):
    """The gemm functions found, each {dtype: ctypes gemm} ({} where not found)."""
    choice: str         # VGGNP_GEMM's: "auto", "openblas" or "numpy"
    openblas: dict      # NumPy's own OpenBLAS
    threads: object     # its openblas_get_num_threads (ctypes), or None
    mkl: dict           # Intel MKL's, sequential; {} also where VGGNP_GEMM is not auto
    mkl_version: str
    mkl_absent: str     # why there is no MKL, in words ("" where there is)

    def functions(self, name):
        """{dtype: gemm} of the library ``name``, "mkl" or "openblas"."""
        return {"mkl": self.mkl, "openblas": self.openblas}[name]


CHOICES = ("auto", "openblas", "numpy")


def choice():
    """VGGNP_GEMM, the A/B switch of ``python -m scripts.gemm_ab``: "auto" (unset: MKL
    where installed, see ``blas_functions``), "openblas" (MKL left out) or "numpy"
    (NumPy's ``out += a @ b``); ValueError for anything else (the commands refuse it)."""
    value = os.environ.get("VGGNP_GEMM", "") or "auto"
    if value not in CHOICES:
        raise ValueError(f"the environment variable VGGNP_GEMM is {value!r}: it may be "
                         f"{', '.join(CHOICES)} (or unset)")
    return value


def libraries():
    """The Libraries, found once, on first use (not at import: loading a library is work
    an ``import vggnp`` should not do), by the first of the threads that ask at once."""
    found = _FOUND.get("libraries")
    if found is None:
        with _FINDING:
            if "libraries" not in _FOUND:
                _FOUND["libraries"] = _find(choice())
            found = _FOUND["libraries"]
    return found


def forget():
    """Find the libraries again at the next product (after VGGNP_GEMM changed)."""
    _FOUND.clear()


def _find(chosen):
    """The Libraries for VGGNP_GEMM's ``chosen``: NumPy's OpenBLAS, and MKL unless left
    out (``mkl.load``), each function checked on a small product."""
    openblas, threads = _numpy_blas()
    if chosen != "auto":  # numpy's way loads no MKL either
        return Libraries(chosen, openblas, threads, {}, "", f"left out (VGGNP_GEMM={chosen})")
    sgemm, dgemm, version, absent = mkl.load()
    found = _checked(sgemm, dgemm) if sgemm is not None else {}
    if sgemm is not None and not found:
        absent = "its answer to a small product was wrong"
    return Libraries(chosen, openblas, threads, found, version, absent)


def blas_functions():
    """{dtype: ctypes gemm} that ``matmul_add`` calls now: MKL's where it is installed and
    NumPy's OpenBLAS runs one thread (a product on one of ``blocks.BLOCKS``' threads,
    which run theirs with one BLAS thread each, or a one-thread setting: the same
    parallelism, a faster kernel); else NumPy's own OpenBLAS's, on its threads (a Keras
    graph's products, on the caller's thread). {} where there is neither, or with
    VGGNP_GEMM=numpy, and ``matmul_add`` then takes NumPy's ``out += a @ b``."""
    found = libraries()
    if found.choice == "numpy":
        return {}
    if found.mkl and found.threads is not None and found.threads() == 1:
        return found.mkl
    return found.openblas


def path():
    """Which GEMM ``matmul_add`` runs on this machine, in words (``python -m vggnp.trace
    --paths`` prints it)."""
    found = libraries()
    if found.choice == "numpy" or not found.openblas:
        why = "VGGNP_GEMM=numpy" if found.choice == "numpy" else \
            "NumPy's own OpenBLAS not found by ctypes"
        return f"NumPy's out += a @ b ({why}); {kernels()}"
    if found.mkl:
        way = (f"Intel MKL {found.mkl_version} (sequential) where NumPy's OpenBLAS runs one "
               "thread (vggnp's block threads), else NumPy's own OpenBLAS on its threads")
    else:
        way = f"NumPy's own OpenBLAS (Intel MKL: {found.mkl_absent})"
    dtypes = sorted(np.dtype(d).name for d in {**found.mkl, **found.openblas})
    return f"{way}, through ctypes, beta = 1 ({', '.join(dtypes)}); {kernels()}"


def kernels():
    """Which kernels NumPy's BLAS runs, in words. OpenBLAS picks them from the CPU when it
    loads, unless the environment variable OPENBLAS_CORETYPE names them; on an AVX-512
    CPU the AVX2 (Haswell) kernels run float32 products at about half the speed of the
    AVX-512 (SkylakeX) ones (docs/speed.md, ``python -m scripts.blas_kernels``)."""
    from threadpoolctl import threadpool_info
    ours = {os.path.realpath(path) for path in mkl.library_paths()}  # matmul_add's
    libraries = [lib for lib in threadpool_info() if lib["user_api"] == "blas"
                 and os.path.realpath(lib["filepath"]) not in ours]
    # threadpoolctl reports an architecture for OpenBLAS and BLIS only
    found = ", ".join(f"{lib['internal_api']} {lib.get('architecture') or ''}".strip()
                      for lib in libraries) or "unknown"
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if not forced:
        return f"BLAS kernels: {found} (chosen by the BLAS)"
    chose = any(lib["internal_api"] == "openblas" and
                (lib.get("architecture") or "").lower() == forced.lower() for lib in libraries)
    return (f"BLAS kernels: {found} (set by OPENBLAS_CORETYPE={forced})" if chose else
            f"BLAS kernels: {found} (OPENBLAS_CORETYPE={forced} is set)")


def _numpy_blas():
    """NumPy's OpenBLAS: ({dtype: gemm} of those that add a small product correctly, its
    openblas_get_num_threads); ({}, None) where the library or its symbols are not found."""
    from threadpoolctl import threadpool_info
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    paths = [lib["filepath"] for lib in threadpool_info()
             if lib["internal_api"] == "openblas" and os.path.dirname(lib["filepath"]) == libs]
    try:
        blas = ctypes.CDLL(paths[0])
        get_threads, _ = blas_threads.thread_functions(blas)  # None: TypeError
        return _checked(blas.scipy_cblas_sgemm64_, blas.scipy_cblas_dgemm64_), get_threads
    except (IndexError, OSError, AttributeError, TypeError):
        return {}, None


def _checked(sgemm, dgemm):
    """{dtype: gemm} of the ILP64 cblas functions sgemm and dgemm (64-bit sizes), given
    their ctypes signature, those that add a small product correctly."""
    checked = {}
    for dtype, gemm, scalar in ((np.dtype(np.float32), sgemm, ctypes.c_float),
                                (np.dtype(np.float64), dgemm, ctypes.c_double)):
        gemm.restype = None
        gemm.argtypes = ([ctypes.c_int] * 3 + [ctypes.c_int64] * 3
                         + [scalar, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                            ctypes.c_int64, scalar, ctypes.c_void_p, ctypes.c_int64])
        # fixed numbers, not numpy.random's: importing it took 10 ms of every process
        a, b = np.sin(np.arange(12.0)).reshape(3, 4), np.cos(np.arange(8.0)).reshape(4, 2)
        a, b = a.astype(dtype), b.astype(dtype)
        out = np.ones((3, 2), dtype)
        if _blas_add(gemm, a, b.T.copy().T, out) and np.allclose(out, 1 + a @ b, atol=1e-5):
            checked[dtype] = gemm
    return checked
