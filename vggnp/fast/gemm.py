"""out += a @ b in place: the one matrix product NumPy cannot do, for ``direct_conv``.

BLAS computes ``C = alpha * A @ B + beta * C``; NumPy's ``@`` always uses beta = 0 (it can
only overwrite), so summing nine products into one output block would need a temporary
and an extra pass per product. This module calls the very BLAS NumPy uses, with beta = 1,
through ``ctypes``:
- the same library, so its threads are NumPy's (a second OpenBLAS, such as SciPy's, keeps
  its own threads spinning after each call; measured: the two fought over the two cores,
  block1_conv1 10 -> 44 ms after the dense layers, docs/speed.md);
- ctypes releases the GIL during the call, as NumPy does, so the stream's two worker
  threads multiply at the same time (SciPy's BLAS wrappers hold the GIL: two threads took
  as long as one after the other).
NumPy's wheels (PyPI, 2.x) ship OpenBLAS with 64-bit integers and the symbol names
``scipy_cblas_sgemm64_``; where that library is not found (another NumPy build), or its
answer to a small product at load time is wrong, ``matmul_add`` falls back to
``out += a @ b``: the same result, slower.
"""

import ctypes
import functools
import os
import threading

import numpy as np

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112   # cblas.h's enum values


def matmul_add(a, b, out):
    """out += a @ b.   a: (M, K), b: (K, N), out: (M, N); one dtype, float32 or float64.

    a and out must have adjacent columns (rows may lie apart, as slices of a larger
    array); b may be C- or F-contiguous (a transposed view: BLAS's transpose flag). For
    anything else, or with no usable BLAS, NumPy's ``out += a @ b``. Returns out.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] \
            or out.shape != (a.shape[0], b.shape[1]):
        raise ValueError(f"matmul_add: shapes {a.shape} @ {b.shape} into {out.shape}")
    if not out.flags.writeable:
        raise ValueError("matmul_add: out is read-only")
    gemm = blas_functions().get(out.dtype)
    if gemm is None or not _blas_add(gemm, a, b, out):
        out += a @ b
    return out


def _blas_add(gemm, a, b, out):
    """out += a @ b through the ctypes function gemm; False (nothing done) if the arrays'
    layout is not one BLAS reads in place."""
    rows_a, rows_out = _row_stride(a), _row_stride(out)
    b_trans, ldb = _b_layout(b)
    if a.dtype != out.dtype or b.dtype != out.dtype or None in (rows_a, rows_out, ldb):
        return False
    (m, k), n = a.shape, b.shape[1]
    if m and n and k:
        gemm(ROW_MAJOR, NO_TRANS, b_trans, m, n, k, 1.0, a.ctypes.data, rows_a,
             b.ctypes.data, ldb, 1.0, out.ctypes.data, rows_out)
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


_FINDING = threading.Lock()  # two stream workers may make their first product at once


@functools.cache
def _found_blas():
    with _FINDING:
        return _numpy_blas()


def blas_functions():
    """{dtype: ctypes gemm} of NumPy's own OpenBLAS, found and checked on first use (not at
    import: loading a library is work an ``import vggnp`` should not do); {} where there
    is none, and ``matmul_add`` then takes NumPy's ``out += a @ b``. The environment
    variable VGGNP_GEMM=numpy takes that way on purpose: the A/B switch of
    ``python -m scripts.gemm_ab``."""
    if os.environ.get("VGGNP_GEMM") == "numpy":
        return {}
    return _found_blas()


def path():
    """Which GEMM ``matmul_add`` runs on this machine, in words (``python -m vggnp.trace
    --paths`` prints it)."""
    found = sorted(np.dtype(d).name for d in blas_functions())
    if found:
        way = f"NumPy's own OpenBLAS through ctypes, beta = 1 ({', '.join(found)})"
    else:
        way = "NumPy's out += a @ b (NumPy's own BLAS was not found by ctypes)"
    return f"{way}; {kernels()}"


def kernels():
    """Which kernels NumPy's BLAS runs, in words. OpenBLAS picks them from the CPU when it
    loads, unless the environment variable OPENBLAS_CORETYPE names them; on an AVX-512
    CPU the AVX2 (Haswell) kernels run float32 products at about half the speed of the
    AVX-512 (SkylakeX) ones (docs/speed.md, ``python -m scripts.blas_kernels``)."""
    from threadpoolctl import threadpool_info
    libraries = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
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
    """NumPy's OpenBLAS as ctypes functions {dtype: gemm}, those that add a small product
    correctly; {} where the library or its symbols are not found."""
    from threadpoolctl import threadpool_info
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    paths = [lib["filepath"] for lib in threadpool_info()
             if lib["internal_api"] == "openblas" and os.path.dirname(lib["filepath"]) == libs]
    try:
        blas = ctypes.CDLL(paths[0])
        found = {np.dtype(np.float32): (blas.scipy_cblas_sgemm64_, ctypes.c_float),
                 np.dtype(np.float64): (blas.scipy_cblas_dgemm64_, ctypes.c_double)}
    except (IndexError, OSError, AttributeError):
        return {}
    checked, r = {}, np.random.default_rng(0)
    for dtype, (gemm, scalar) in found.items():
        gemm.restype = None
        gemm.argtypes = ([ctypes.c_int] * 3 + [ctypes.c_int64] * 3
                         + [scalar, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                            ctypes.c_int64, scalar, ctypes.c_void_p, ctypes.c_int64])
        a, b = r.standard_normal((3, 4)).astype(dtype), r.standard_normal((4, 2)).astype(dtype)
        out = np.ones((3, 2), dtype)
        if _blas_add(gemm, a, b.T.copy().T, out) and np.allclose(out, 1 + a @ b, atol=1e-5):
            checked[dtype] = gemm
    return checked

