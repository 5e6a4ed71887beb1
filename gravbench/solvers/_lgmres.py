"""LGMRES: restarted GMRES augmented with approximations of the error.

Baker, Jessup & Manteuffel (2005). Follows ``scipy.sparse.linalg.lgmres``
(unpreconditioned, ``store_outer_Av=True``, ``prepend_outer_v=False``): each
outer iteration runs ``inner_m`` Arnoldi steps on the current residual plus
one step per stored augmentation vector ``z = dx / ||dx||`` (the last
``outer_k`` corrections), whose ``A z`` is kept from the previous cycle and
costs no application. The Hessenberg least-squares problem is updated with
Givens rotations (SciPy updates a QR factorisation; the residual estimates
are the same). ``maxiter`` counts outer iterations, as in SciPy.
"""

from __future__ import annotations

import numpy as np

from .._linalg import axpy, check_int, combine, givens_column, mgs, op_S, twin, upper_solve
from ._square import SquareRun

__all__ = ["solve"]

HIST_CAP = 200_000


@twin
def _lgmres_loop(P, b, x, tol, inner_m, outer_k, maxiter, tmp, callback, hist):
    n = b.size
    eps = 2.220446049250313e-16
    mmax = inner_m + outer_k
    V = np.empty((mmax + 1, n))
    Z = np.empty((mmax, n))
    OZ = np.empty((max(outer_k, 1), n))
    OAZ = np.empty((max(outer_k, 1), n))
    nout = 0
    H = np.zeros((mmax + 1, mmax))
    R = np.zeros((mmax + 1, mmax))
    cs = np.zeros(mmax)
    sn = np.zeros(mmax)
    S = np.zeros(mmax + 1)
    w = np.empty(n)
    r = np.empty(n)
    bnorm = np.sqrt(np.dot(b, b))
    ptol_max_factor = 1.0
    nmv = 0
    inner = 0
    nh = 0
    code = 1
    for k_outer in range(maxiter):
        op_S(P, x, r, tmp)
        nmv += 1
        r -= b                              # r = A x - b
        if callback is not None:
            callback(x)
        r_norm = np.sqrt(np.dot(r, r))
        if k_outer == 0:
            hist[0] = r_norm / bnorm
            nh = 1
        if not np.isfinite(r_norm):
            code = 5
            break
        if r_norm <= tol:
            code = 0
            break
        V[0] = r * (-1.0 / r_norm)
        ptol = min(ptol_max_factor, tol / r_norm)
        m = inner_m + nout
        S[:] = 0.0
        S[0] = 1.0
        breakdown = False
        res = np.nan
        j = 0
        for j in range(m):
            if j >= m - nout:
                idx = j - (m - nout)
                Z[j] = OZ[idx]
                w[:] = OAZ[idx]
            else:
                Z[j] = V[j]
                op_S(P, V[j], w, tmp)
                nmv += 1
                inner += 1
            w_norm = np.sqrt(np.dot(w, w))
            mgs(V, w, H, j)
            hn = np.sqrt(np.dot(w, w))
            H[j + 1, j] = hn
            if hn > 0.0 and np.isfinite(1.0 / hn):
                w *= 1.0 / hn
            if not (hn > eps * w_norm):
                breakdown = True
            V[j + 1] = w
            for i in range(j + 2):
                R[i, j] = H[i, j]
            res = givens_column(R, cs, sn, S, j)
            if j < m - nout and nh < hist.size:
                hist[nh] = res * r_norm / bnorm
                nh += 1
            if res < ptol or breakdown:
                break
        if not np.isfinite(R[j, j]):
            code = 5
            break
        y = upper_solve(R, S, j + 1)
        y *= r_norm
        if not np.all(np.isfinite(y)):
            code = 5
            break
        if res > ptol:
            ptol_max_factor = min(1.0, 1.5 * ptol_max_factor)
        else:
            ptol_max_factor = max(1e-16, 0.25 * ptol_max_factor)
        dx = np.zeros(n)
        combine(y, Z, j + 1, dx)
        nx = np.sqrt(np.dot(dx, dx))
        if nx > 0.0 and outer_k > 0:
            hy = np.zeros(j + 2)
            for i in range(j + 2):
                for k in range(j + 1):
                    hy[i] += H[i, k] * y[k]
            ax = np.zeros(n)
            combine(hy, V, j + 2, ax)
            if nout == outer_k:
                for i in range(outer_k - 1):
                    OZ[i] = OZ[i + 1]
                    OAZ[i] = OAZ[i + 1]
                nout -= 1
            OZ[nout] = dx / nx
            OAZ[nout] = ax / nx
            nout += 1
        axpy(1.0, dx, x)
    return x, code, inner, nh, nmv


def solve(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None, callback=None, inner_m=30, outer_k=3):
    """Solve ``A x = b`` by LGMRES.

    Parameters
    ----------
    A : ndarray, LinearOperator, sparse matrix, or ``op.normal()``, shape (n, n)
    b : array_like, shape (n,)
    x0 : array_like, shape (n,), optional
    rtol, atol : float
        Stop when ``||b - A x|| <= max(rtol ||b||, atol)`` (checked on the true
        residual at the start of each outer iteration, as SciPy).
    maxiter : int, optional
        Outer iterations (default 1000, as SciPy).
    callback : callable, optional
        ``callback(xk)`` at the start of each outer iteration (SciPy's); runs the Python driver.
    inner_m : int
        Arnoldi steps per outer iteration (default 30).
    outer_k : int
        Augmentation vectors kept (default 3; the paper profile uses 50).

    Returns
    -------
    Result
        ``niter``: inner Arnoldi steps that applied the operator; ``n_matvec`` adds
        one true residual per outer iteration; ``residuals``: initial relative
        residual then the inner estimates.

    Examples
    --------
    >>> import numpy as np
    >>> from gravbench.solvers import lgmres
    >>> A = np.array([[3.0, 1.0, 0.0], [-1.0, 2.0, 1.0], [0.0, 1.0, 4.0]])
    >>> res = lgmres(A, np.ones(3), rtol=1e-12)
    >>> res.converged, bool(np.allclose(A @ res.x, 1.0))
    (True, True)
    """
    run = SquareRun(A, b, x0, rtol, atol, maxiter, callback, lambda n: 1000)
    inner_m = check_int("inner_m", inner_m, 30)
    outer_k = check_int("outer_k", outer_k, 3, minimum=0)
    triv = run.trivial()
    if triv is not None:
        return triv
    hist = np.zeros(min(run.maxiter * inner_m, HIST_CAP) + 2)
    x, code, it, nh, nmv = run.call(_lgmres_loop, run.b, run.x, run.tol, inner_m, outer_k,
                                        run.maxiter, run.sys.tmp, run.callback, hist)
    return run.result(x, code, it, hist, nh, nmv, {"inner_m": inner_m, "outer_k": outer_k})
