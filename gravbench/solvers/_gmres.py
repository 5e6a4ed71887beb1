"""Restarted GMRES with modified Gram-Schmidt Arnoldi and Givens rotations.

Saad & Schultz (1986). The loop follows ``scipy.sparse.linalg.gmres``
(unpreconditioned) step for step so iteration counts and residual histories
compare: the inner loop stops when the Givens residual estimate falls below
an adaptive tolerance (SciPy gh-8400 control), each cycle ends with a true
residual ``b - A x`` (one more application, counted in ``n_matvec`` but not
in ``niter``), and a happy breakdown (``h_{j+1,j} <= eps ||A v_j||``) ends
the run. ``maxiter`` counts restart cycles, as in SciPy.
"""

from __future__ import annotations

import numpy as np

from .._linalg import check_int, combine, givens_column, mgs, op_S, square_start, square_stop, twin, upper_solve
from ._square import SquareRun

__all__ = ["solve"]

HIST_CAP = 200_000


@twin
def _gmres_loop(P, b, x, tol, restart, maxiter, tmp, callback, hist):
    n = b.size
    eps = 2.220446049250313e-16
    V = np.empty((restart + 1, n))
    h = np.zeros((restart + 1, restart))     # h[i, j]: Hessenberg row i, column j (rotated in place)
    cs = np.zeros(restart)
    sn = np.zeros(restart)
    S = np.zeros(restart + 1)
    w = np.empty(n)
    q = np.empty(n)
    r = np.empty(n)
    nmv, bnorm, rnorm = square_start(P, b, x, r, q, tmp, hist)
    nh = 1
    inner = 0
    code = square_stop(rnorm, tol, 0, maxiter)     # maxiter == 0: no cycle, status 1 as below
    if code >= 0:
        return x, code, inner, nh, nmv
    ptol_max_factor = 1.0
    ptol = bnorm * min(1.0, tol / bnorm)
    presid = 0.0
    code = 1
    for cycle in range(maxiter):
        V[0] = r / rnorm
        S[:] = 0.0
        S[0] = rnorm
        breakdown = False
        col = 0
        for col in range(restart):
            op_S(P, V[col], w, tmp)
            nmv += 1
            h0 = np.sqrt(np.dot(w, w))
            mgs(V, w, h, col)
            h1 = np.sqrt(np.dot(w, w))
            h[col + 1, col] = h1
            V[col + 1] = w
            if h1 <= eps * h0:
                h[col + 1, col] = 0.0
                breakdown = True
            else:
                V[col + 1] *= 1.0 / h1
            presid = givens_column(h, cs, sn, S, col)
            inner += 1
            if nh < hist.size:
                hist[nh] = presid / bnorm
                nh += 1
            if callback is not None:
                callback(presid / bnorm)
            if presid <= ptol or breakdown:
                break
        if h[col, col] == 0.0:
            S[col] = 0.0
        y = upper_solve(h, S, col + 1)
        combine(y, V, col + 1, x)
        op_S(P, x, q, tmp)
        nmv += 1
        r[:] = b - q
        rnorm = np.sqrt(np.dot(r, r))
        if not np.isfinite(rnorm):
            code = 5
            break
        if rnorm <= tol:
            code = 0
            break
        elif breakdown:
            code = 2
            break
        elif presid <= ptol:
            ptol_max_factor = max(eps, 0.25 * ptol_max_factor)
        else:
            ptol_max_factor = min(1.0, 1.5 * ptol_max_factor)
        ptol = presid * min(ptol_max_factor, tol / rnorm)
    return x, code, inner, nh, nmv


def solve(A, b, x0=None, *, rtol=1e-5, atol=0.0, restart=30, maxiter=None, callback=None):
    """Solve ``A x = b`` by restarted GMRES.

    Parameters
    ----------
    A : ndarray, LinearOperator, sparse matrix, or ``op.normal()``, shape (n, n)
        Any nonsingular square system (need not be symmetric).
    b : array_like, shape (n,)
    x0 : array_like, shape (n,), optional
    rtol, atol : float
        Stop when ``||b - A x|| <= max(rtol ||b||, atol)`` (true residual, SciPy's rule).
    restart : int
        Krylov dimension per cycle (capped at n, as SciPy).
    maxiter : int, optional
        Restart cycles (default ``10 n``, as SciPy).
    callback : callable, optional
        ``callback(pr_norm)`` after each inner iteration with the relative residual
        estimate (SciPy's ``callback_type="pr_norm"``); runs the Python driver.

    Returns
    -------
    Result
        ``niter``: inner iterations; ``residuals``: ``[||r0||/||b||]`` then the
        Givens estimates per inner iteration (kept up to 200000 entries);
        ``status`` ``breakdown`` when Arnoldi broke down before the tolerance.

    Examples
    --------
    >>> import numpy as np
    >>> from gravbench.solvers import gmres
    >>> A = np.array([[3.0, 1.0, 0.0], [-1.0, 2.0, 1.0], [0.0, 1.0, 4.0]])
    >>> res = gmres(A, np.ones(3), rtol=1e-12)
    >>> res.converged, res.niter, bool(np.allclose(A @ res.x, 1.0))
    (True, 3, True)
    """
    run = SquareRun(A, b, x0, rtol, atol, maxiter, callback, lambda n: 10 * n)
    restart = min(check_int("restart", restart, 30), run.sys.n)
    triv = run.trivial()
    if triv is not None:
        return triv
    hist = np.zeros(min(run.maxiter * restart, HIST_CAP) + 2)
    x, code, it, nh, nmv = run.call(_gmres_loop, run.b, run.x, run.tol, restart, run.maxiter,
                                       run.sys.tmp, run.callback, hist)
    return run.result(x, code, it, hist, nh, nmv, {"restart": restart})
