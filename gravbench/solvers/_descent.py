"""Steepest descent with exact line search for symmetric positive definite systems.

Minimises ``x^T A x / 2 - b^T x``: ``x += (r^T r / r^T A r) r`` (Saad 2003,
5.3.1). One operator application per iteration (``A r`` also updates the
residual). Stops like :func:`gravbench.solvers.cg`; ``r^T A r <= 0`` gives
status ``indefinite``.
"""

from __future__ import annotations

import numpy as np

from .._linalg import axpy, op_S, square_start, square_stop, twin
from ._square import SquareRun

__all__ = ["solve", "steepest_descent"]


@twin
def _sd_loop(P, b, x, tol, maxiter, tmp, callback, hist):
    n = b.size
    r = np.empty(n)
    q = np.empty(n)
    nmv, bnorm, rn = square_start(P, b, x, r, q, tmp, hist)
    nh = 1
    it = 0
    while True:
        code = square_stop(rn, tol, it, maxiter)
        if code >= 0:
            break
        op_S(P, r, q, tmp)
        nmv += 1
        rq = np.dot(r, q)
        if not rq > 0.0:
            code = 3 if rq == rq else 5  # NaN from the operator: nonfinite, not indefinite
            break
        alpha = rn * rn / rq
        axpy(alpha, r, x)
        axpy(-alpha, q, r)
        it += 1
        rn = np.sqrt(np.dot(r, r))
        hist[nh] = rn / bnorm
        nh += 1
        if callback is not None:
            callback(x)
    return x, code, it, nh, nmv


def solve(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None, callback=None):
    """Solve ``A x = b`` (A SPD) by steepest descent with exact line search.

    Parameters and result as :func:`gravbench.solvers.cg` (default ``maxiter``: ``10 n``).

    Examples
    --------
    >>> import numpy as np
    >>> from gravbench.solvers import steepest_descent
    >>> res = steepest_descent(np.diag([1.0, 2.0]), np.array([1.0, 1.0]), rtol=1e-8)
    >>> res.converged, np.allclose(res.x, [1.0, 0.5])
    (True, True)
    """
    run = SquareRun(A, b, x0, rtol, atol, maxiter, callback, lambda n: 10 * n)
    triv = run.trivial()
    if triv is not None:
        return triv
    hist = np.zeros(run.maxiter + 2)
    x, code, it, nh, nmv = run.call(_sd_loop, run.b, run.x, run.tol, run.maxiter, run.sys.tmp,
                                    run.callback, hist)
    return run.result(x, code, it, hist, nh, nmv, {})


steepest_descent = solve
