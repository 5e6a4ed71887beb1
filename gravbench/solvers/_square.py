"""The square-system driver shared by cg, gmres, lgmres and steepest descent.

:class:`SquareRun` validates one solve (system, ``b``, ``x0``, tolerances, budget,
callback) and decides how it runs: compiled (a packed matrix, or the normal
equations of a dense / matrix-free float64 gravbench operator) or as the Python
twin (any other ``LinearOperator``, or when a callback is given). The loops
themselves are written once with the hooks of :mod:`gravbench._linalg`.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from .._linalg import (EMPTY1, MODE_MATRIX, NormalOperator, check_callback, check_int, check_tol, check_vector,
                       normal_of, pack_gravity, pack_matrix, single_thread_blas)
from ..forward.operators import GravityOperator
from ._result import make_result

__all__ = ["Square", "SquareRun"]


class Square:
    """A square system prepared for a solver: packed tuple or Python operator, counters."""

    def __init__(self, A, name="A"):
        self.grav = None        # operator whose counters we update (normal equations)
        self.normal = False
        self.compiled = False
        self.P = None
        self.tmp = EMPTY1
        self.ctx = single_thread_blas()
        if isinstance(A, GravityOperator):
            raise ValueError(f"{name} must be square, got a {A.shape[0]}x{A.shape[1]} forward operator; "
                             f"pass op.normal() (or gravbench.solvers.NormalOperator(op)) for A^T A x = A^T b")
        nrm = normal_of(A)
        if nrm is not None:
            op, w2 = nrm
            self.grav = op
            self.normal = True
            self.n = op.shape[1]
            P = pack_gravity(op, w2)
            if P is not None:
                self.P, self.compiled = P, True
                self.tmp = np.empty(op.shape[0])
                self.ctx = single_thread_blas()
            else:
                self.P = A
            return
        if isinstance(A, np.ndarray):
            M = A
            if M.ndim != 2 or M.shape[0] != M.shape[1]:
                raise ValueError(f"{name} must be a square matrix, got shape {M.shape}")
            if not np.issubdtype(M.dtype, np.number) or np.iscomplexobj(M):
                raise ValueError(f"{name} must be a real floating matrix, got dtype {M.dtype}")
            if not np.all(np.isfinite(M)):
                raise ValueError(f"{name} contains NaN or inf")
            self.n = M.shape[0]
            self.P, self.compiled = pack_matrix(M.astype(np.float64, copy=False)), True
            return
        try:
            L = A if isinstance(A, LinearOperator) else aslinearoperator(A)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{name} must be an ndarray, a sparse matrix or a LinearOperator, got "
                             f"{type(A).__name__}") from e
        if L.shape[0] != L.shape[1]:
            raise ValueError(f"{name} must be square, got shape {L.shape}")
        self.n = L.shape[0]
        self.P = L

    @property
    def engine(self):
        return "numba" if self.compiled else "python"

    def account(self, nmv):
        """Counts for the Result; in compiled mode push them into the gravbench operator's counters."""
        if self.normal:
            if self.compiled and hasattr(self.grav, "n_matvec"):
                self.grav.n_matvec += int(nmv)
                self.grav.n_rmatvec += int(nmv)
            return int(nmv), int(nmv)
        return int(nmv), 0


class SquareRun:
    """Validated inputs of one square solve: system, b, x0, tolerance, budget."""

    def __init__(self, A, b, x0, rtol, atol, maxiter, callback, default_maxiter):
        self.t0 = time.perf_counter()
        self.sys = Square(A)
        n = self.sys.n
        self.b = check_vector("b", b, n)
        self.x = np.zeros(n) if x0 is None else check_vector("x0", x0, n)
        rtol = check_tol("rtol", rtol)
        atol = check_tol("atol", atol)
        self.bnorm = float(np.linalg.norm(self.b))
        self.tol = max(atol, rtol * self.bnorm)
        self.maxiter = check_int("maxiter", maxiter, default_maxiter(n), minimum=0)
        self.callback = check_callback(callback)
        # a callback cannot be called from compiled code: run the Python twin then
        self.compiled = self.sys.compiled and self.callback is None
        if self.sys.compiled and not self.compiled:
            self.P = _PyMatrix(self.sys)
        else:
            self.P = self.sys.P

    def call(self, kernel, *args):
        """Run ``kernel`` (a :class:`Twin`) compiled or in Python, under the operator's BLAS limit."""
        with self.sys.ctx:
            return kernel(self.compiled, self.P, *args)

    def result(self, x, code, niter, hist, nh, nmv, info):
        if self.compiled:
            nm, nr = self.sys.account(nmv)
        else:
            nm, nr = (int(nmv), int(nmv) if self.sys.normal else 0)
        info = dict(info)
        info.setdefault("engine", "numba" if self.compiled else "python")
        return make_result(x, code, niter, hist, nh, nm, nr, self.t0, info)

    def trivial(self):
        """b = 0: x = 0 solves it exactly (SciPy returns the same)."""
        if self.bnorm == 0.0:
            return self.result(np.zeros_like(self.b), 0, 0, np.zeros(1), 1, 0, {})
        return None


class _PyMatrix:
    """Python-side application of a packed system (used when a callback forces the Python twin)."""

    def __init__(self, sys):
        self.sys = sys
        P = sys.P
        if P[0] == MODE_MATRIX:
            M = P[1]
            self.matvec = lambda v: M @ v
        else:
            op = sys.grav
            w2 = P[10] if P[10].size == op.shape[0] else None
            L = NormalOperator(op, w2)
            self.matvec = L.matvec
