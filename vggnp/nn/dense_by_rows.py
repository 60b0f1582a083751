"""LRP's kernels for a dense layer too big to keep a second copy of (VGG16's fc1: 25088 x
4096, 411 MB), made where a product uses them, a block of rows at a time.

A rule's kernel rho(w) (w+, w-, w + gamma w+, a BatchNorm folded in...) is made from w
value by value, so a block of its rows is made from the same rows of w alone. Its two
products with it add up, and cut, by rows:

    z  = x rho(w) + rho(b)   = sum over row blocks J of  x[:, J] rho(w[J])  + rho(b)
    dx = dz rho(w)^T         = the blocks  dz rho(w[J])^T  side by side

Each block (ROW_BLOCK_BYTES) is made, then read by its product while it is in the CPU's
cache: per product, one pass over w. Cut by columns instead, each block's rows are
strided across memory: fc1's z+ rule took 138-191 ms at batch 1 that way, against 58-101
by rows of 1 MB (2026-12-04, a timer around fc1's ``relevance`` in ``explain(..., "lrp",
rule="z_plus")`` on VGG16 with realistic random weights; the whole method: docs/speed.md).
"""

import numpy as np

ROW_BLOCK_BYTES = 2 ** 20  # fc1: 64 rows; 2 ** 18, 22, 24 took longer (2026-12-04)


class KernelByRows:
    """rho(w) (D, M) of a dense kernel w, never held whole: ``blocks()`` makes it a block
    of rows at a time. source: w itself, or another KernelByRows (a rule's kernel of a
    kernel already folded); make(w_rows, b) -> (rho(w_rows), rho(b)), called each time a
    block is used: it must not read anything that changes meanwhile (a loop variable)."""

    def __init__(self, source, b, make):
        self.source, self.b, self.make = source, b, make
        self.shape, self.dtype = source.shape, source.dtype

    @classmethod
    def made(cls, w, b, make):
        """(rho(w) as a KernelByRows, rho(b)): what ``made_from_weights`` gives for it."""
        return cls(w, b, make), make(w[:0], b)[1]

    def rows(self, rows):
        """rho(w)[rows]: made from the same rows of the source."""
        source = self.source.rows(rows) if isinstance(self.source, KernelByRows) \
            else self.source[rows]
        return self.make(source, self.b)[0]

    def blocks(self):
        """(rows, rho(w)[rows]) for each block of rows, in order."""
        d, m = self.shape
        step = max(1, ROW_BLOCK_BYTES // (m * np.dtype(self.dtype).itemsize))
        for k in range(0, d, step):
            rows = slice(k, min(d, k + step))
            yield rows, self.rows(rows)


class DenseByRows:
    """A dense layer z = x w + b whose kernel w is a KernelByRows, with what LRP's rules
    ask of a layer (``relevance.Affine``'s interface): its products by blocks of rows.
    x: (N, ..., D) its input; b: (M,) or None (zero). Never run forward: z is computed."""

    twin = True

    def __init__(self, x, w, b):
        self.x, self.w = x, w
        self.b = np.zeros(w.shape[1], w.dtype) if b is None else b

    def pre_activation(self, x):
        """z = x w + b: (N, ..., D) -> (N, ..., M), a new array (as Dense's: (N, 1, 1, C)
        after a pooling that keeps its axes)."""
        z = np.empty((*x.shape[:-1], self.w.shape[1]), np.result_type(x, self.w.dtype))
        z[:] = self.b
        for rows, block in self.w.blocks():
            z += x[..., rows] @ block
        return z

    def input_gradient(self, dz):
        """dx = dz w^T: (N, ..., M) -> (N, ..., D), a new array."""
        dx = np.empty((*dz.shape[:-1], self.w.shape[0]), np.result_type(dz, self.w.dtype))
        for rows, block in self.w.blocks():
            dx[..., rows] = dz @ block.T
        return dx

    def kept_pre_activation(self, r):
        return self.pre_activation(self.x)

    def made_from_weights(self, key, make, also=()):
        """(rho(w), rho(b)) of this kernel, made by rows when used (``make(w, b)``, which
        may read ``also``: made anew each time, never stale)."""
        return KernelByRows(self.w, self.b, make), make(self.w.rows(slice(0, 0)), self.b)[1]

    def with_weights(self, w, b):
        return DenseByRows(self.x, w, b)
