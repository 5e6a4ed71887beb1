"""``A^T A`` (or ``A^T diag(w2) A``) as a square LinearOperator, never formed."""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator, aslinearoperator

__all__ = ["NormalOperator", "normal_of"]


class NormalOperator(LinearOperator):
    """``A^T A`` (or ``A^T diag(w2) A``) of a forward operator as a square ``LinearOperator``.

    Never formed: each product is one ``A`` and one ``A^T`` application (the
    operator's own ``normal_matvec`` when it has one and there are no weights).
    Solvers recognise it (``op.normal()`` of a gravbench operator is one) and run
    the whole iteration in numba for dense and matrix-free float64 gravbench
    operators.

    Parameters
    ----------
    op : LinearOperator or ndarray, shape (N, n)
        The forward operator ``A``.
    w2 : array_like, shape (N,), optional
        Data weights squared (``1 / sigma^2``, mGal^-2).
    dtype : numpy dtype, optional
        dtype of the products (default float64).
    """

    def __init__(self, op, w2=None, dtype=np.float64):
        if len(getattr(op, "shape", ())) != 2:
            raise ValueError(f"op must be a 2D operator or matrix, got {type(op).__name__}")
        N, n = op.shape
        if w2 is not None and np.shape(w2) != (N,):
            raise ValueError(f"w2 must have shape ({N},), got {np.shape(w2)}")
        super().__init__(dtype=np.dtype(dtype), shape=(n, n))
        self.op = op
        self.w2 = None if w2 is None else np.ascontiguousarray(w2, dtype=np.float64)
        self._L = op if hasattr(op, "rmatvec") else aslinearoperator(op)

    def _matvec(self, v):
        v = np.ravel(v)
        if self.w2 is None and hasattr(self.op, "normal_matvec"):
            return self.op.normal_matvec(v)
        u = self._L.matvec(v)
        if self.w2 is not None:
            u = u * self.w2
        return self._L.rmatvec(u)

    def _rmatvec(self, v):
        return self._matvec(v)

    def __repr__(self):
        return f"<NormalOperator of {self.op!r}>"


def normal_of(A):
    """``(op, w2)`` if ``A`` is a :class:`NormalOperator` (``op.normal()`` included), else None."""
    if isinstance(A, NormalOperator):
        return A.op, A.w2
    return None
