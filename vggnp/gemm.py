"""Matrix products through SciPy's BLAS wrapper: the one BLAS all of the network's large
products go through (the convs' and the dense layers', forward and backward).

Why not NumPy's ``a @ b``, which calls a BLAS too:
- It cannot add into an existing array (BLAS's ``C = alpha*A@B + beta*C`` with beta = 1).
  ``fast_conv`` sums nine products into one output block in place.
- NumPy and SciPy each ship their own copy of OpenBLAS, each with its own threads, which
  keep spinning for a while after a call. With the convs in SciPy's and the dense layers
  in NumPy's, each library's threads fought the other's for the two cores (measured in
  the network: block1_conv1 10 -> 44 ms after the dense layers, fc1 17 -> 34 ms after
  the convs). One library for all large products avoids it.
"""

import importlib.machinery
import importlib.util
import os
import sys

import numpy as np


def _load_fblas():
    """SciPy's BLAS wrappers (``sgemm``, ``dgemv``...): the extension module behind the
    public ``scipy.linalg.blas``.

    Imported through ``scipy.linalg``, it first runs that whole package's ``__init__``:
    160-180 ms here (array-API shims that import numpy.f2py and numpy.testing), more than
    a forward pass, paid by every one-photo run. The module alone loads in a few ms.
    So, while ``scipy.linalg`` is not imported yet, the module is loaded from its file
    and registered under its own name (a later ``import scipy.linalg`` then finds and
    uses this very module); otherwise, or where the file is not found, the public one.
    """
    if "scipy.linalg" not in sys.modules:
        import scipy
        folder = os.path.join(os.path.dirname(scipy.__file__), "linalg")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "_fblas" + suffix)
            if os.path.isfile(path):
                spec = importlib.util.spec_from_file_location("scipy.linalg._fblas", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules["scipy.linalg._fblas"] = module
                return module
    from scipy.linalg import blas
    return blas


_BLAS = _load_fblas()
_PREFIX = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}


def get_blas_funcs(name, arrays):
    """The BLAS routine ``name`` ("gemm", "gemv") for the arrays' dtype (float32: sgemm,
    float64: dgemm; one dtype for all)."""
    dtypes = {np.dtype(a.dtype) for a in arrays}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _PREFIX:
        raise ValueError(f"matmul: float32 or float64 arrays of one dtype, not {dtypes}")
    return getattr(_BLAS, _PREFIX[dtypes.pop()] + name)


def matmul(a, b, out=None, accumulate=False):
    """out = a @ b, or out += a @ b in place with ``accumulate``.

    a: (M, K), b: (K, N), out: (M, N) C-contiguous (made when not given); float32 or
    float64, one dtype for all three. Returns out.

    BLAS is column-major: the C-contiguous (M, N) out is the column-major (N, M) out.T, so
    BLAS is asked for out.T = b.T @ a.T, each operand passed as the column-major array it
    already is (a C-contiguous b is a column-major b.T; an F-contiguous one, a transposed
    view such as w.T, is column-major as it stands and passed with BLAS's transpose flag).
    Nothing is copied.
    """
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    if a.shape[0] == 1:  # one row: a matrix-vector product, which BLAS's gemm runs slower
        _vector_times_matrix(a[0], b, out[0], accumulate)
        return out
    gemm = get_blas_funcs("gemm", (a, b, out))
    (b_blas, trans_b), (a_blas, trans_a) = _column_major_of_transpose(b), \
        _column_major_of_transpose(a)
    result = gemm(1.0, b_blas, a_blas, beta=1.0 if accumulate else 0.0, c=out.T,
                  overwrite_c=True, trans_a=trans_b, trans_b=trans_a)
    if not np.may_share_memory(result, out):  # the wrapper wrote into a copy instead
        raise ValueError("matmul: out must be C-contiguous and of the operands' dtype")
    return out


def _column_major_of_transpose(m):
    """(array, transpose flag) that BLAS reads, without a copy, as m.T."""
    if m.flags.c_contiguous:
        return m.T, 0            # C-contiguous m: m.T is column-major already
    return m, 1                  # column-major m (or a copy the wrapper makes): op = m.T


def _vector_times_matrix(v, b, out, accumulate):
    """out (N,) (+)= v (K,) @ b (K, N) with BLAS's gemv (measured for fc1, 25088 x 4096:
    gemv 18 ms, gemm with one column 75-110 ms)."""
    gemv = get_blas_funcs("gemv", (v, b, out))
    b_blas, trans = _column_major_of_transpose(b)
    result = gemv(1.0, b_blas, v, beta=1.0 if accumulate else 0.0, y=out,
                  overwrite_y=True, trans=trans)
    if not np.may_share_memory(result, out):
        raise ValueError("matmul: out must be C-contiguous and of the operands' dtype")


def dot(a, b):
    """sum(a * b) of two 1-D arrays of one dtype, as a float: BLAS's dot for float32 and
    float64 (the weights' checks read 553 MB with it; NumPy's ``np.dot`` would wake
    NumPy's own BLAS threads just before the forward), ``np.dot`` for other dtypes."""
    if a.dtype == b.dtype and a.dtype in _PREFIX:
        return float(get_blas_funcs("dot", (a, b))(a, b))
    return float(np.dot(a, b))
