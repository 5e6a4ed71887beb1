"""Conjugate gradients for symmetric positive definite systems.

Hestenes & Stiefel (1952). The iteration and stopping test follow
``scipy.sparse.linalg.cg`` (unpreconditioned): stop before an iteration when
``||r|| < max(rtol ||b||, atol)``; one operator application per iteration.
``p^T A p <= 0`` stops with status ``indefinite`` (the matrix is not SPD).
"""

from __future__ import annotations

import numpy as np

from .._linalg import axpy, op_S, square_start, square_stop, twin, xpby
from ._square import SquareRun

__all__ = ["solve"]


@twin
def _cg_loop(P, b, x, tol, maxiter, tmp, callback, hist):
    n = b.size
    r = np.empty(n)
    q = np.empty(n)
    p = np.zeros(n)
    nmv, bnorm, rn = square_start(P, b, x, r, q, tmp, hist)
    nh = 1
    rho_prev = 1.0
    it = 0
    while True:
        code = square_stop(rn, tol, it, maxiter)
        if code >= 0:
            break
        rho = np.dot(r, r)
        if it > 0:
            xpby(r, rho / rho_prev, p)
        else:
            p[:] = r
        op_S(P, p, q, tmp)
        nmv += 1
        pq = np.dot(p, q)
        if not pq > 0.0:
            code = 3 if pq == pq else 5  # NaN (the operator returned NaN or inf): nonfinite, not indefinite
            break
        alpha = rho / pq
        axpy(alpha, p, x)
        axpy(-alpha, q, r)
        rho_prev = rho
        it += 1
        rn = np.sqrt(np.dot(r, r))
        hist[nh] = rn / bnorm
        nh += 1
        if callback is not None:
            callback(x)
    return x, code, it, nh, nmv


def solve(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None, callback=None):
    """Solve ``A x = b`` (A symmetric positive definite) by conjugate gradients.

    Parameters
    ----------
    A : ndarray, LinearOperator, sparse matrix, or ``op.normal()``, shape (n, n)
        The system; ``op.normal()`` / ``NormalOperator(op)`` of a dense or matrix-free
        gravbench operator runs fully compiled.
    b : array_like, shape (n,)
        Right-hand side.
    x0 : array_like, shape (n,), optional
        Start (zeros).
    rtol, atol : float
        Stop when ``||b - A x|| < max(rtol ||b||, atol)`` (SciPy's rule).
    maxiter : int, optional
        Iterations (default ``10 n``, as SciPy).
    callback : callable, optional
        ``callback(xk)`` after each iteration (runs the Python driver).

    Returns
    -------
    Result
        ``niter`` iterations = operator applications after the initial residual.

    Examples
    --------
    >>> import numpy as np
    >>> from gravbench.solvers import cg
    >>> res = cg(np.array([[4.0, 1.0], [1.0, 3.0]]), np.array([1.0, 2.0]), rtol=1e-10)
    >>> res.converged, res.niter, np.round(res.x, 6).tolist()
    (True, 2, [0.090909, 0.636364])
    """
    run = SquareRun(A, b, x0, rtol, atol, maxiter, callback, lambda n: 10 * n)
    triv = run.trivial()
    if triv is not None:
        return triv
    hist = np.zeros(run.maxiter + 2)
    x, code, it, nh, nmv = run.call(_cg_loop, run.b, run.x, run.tol, run.maxiter, run.sys.tmp,
                                    run.callback, hist)
    return run.result(x, code, it, hist, nh, nmv, {})
