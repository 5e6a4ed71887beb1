"""CGLS: conjugate gradients on the (weighted, damped) least-squares problem.

Minimises ``||W_d (A x - g)||^2 + damp^2 ||x - x0||^2``. With ``B = W_d A``,
``b = W_d (g - A x0)`` and ``x = x0 + y`` this is CG on
``(B^T B + damp^2 I) y = B^T b`` without forming ``B^T B`` (Hestenes & Stiefel
1952; Bjorck, *Numerical Methods for Least Squares Problems*, 1996, 7.4).
In exact arithmetic the iterates equal LSQR's (Paige & Saunders 1982) at the
same iteration count, which the tests check against
``scipy.sparse.linalg.lsqr``. One ``A`` and one ``A^T`` product per iteration.

Stops: the discrepancy principle ``||W_d (A x - g)||^2 <= chi N`` when
``sigma`` is given (status ``discrepancy``), the normal-equation residual
``||B^T r - damp^2 y|| <= rtol ||B^T b||`` (``converged``), or ``maxiter``.
"""

from __future__ import annotations

import numpy as np

from .._linalg import axpy, misfit_stop, op_A, op_At, twin, xpby
from ._common import budget, check_tol, discrepancy_target, finish, hist_buffer, prepare, profile_settings

__all__ = ["refine"]


@twin
def _cgls_loop(P, g, x0, wd, shift, rtol, chi_target, maxiter, hist):
    N = g.size
    n = x0.size
    r = np.empty(N)
    q = np.empty(N)
    t = np.empty(N)
    s = np.empty(n)
    op_A(P, x0, r)
    nA = 1
    r -= g
    r *= -wd                     # r = W_d (g - A x0) = b - B y, y = 0
    t[:] = wd * r
    op_At(P, t, s)
    nAt = 1
    y = np.zeros(n)
    p = s.copy()
    gamma = np.dot(s, s)
    snorm0 = np.sqrt(gamma)
    gnorm = np.sqrt(np.dot(g, g))
    t[:] = r / wd
    hist[0] = np.sqrt(np.dot(t, t)) / gnorm
    nh = 1
    it = 0
    while True:
        if not np.isfinite(gamma):
            code = 5
            break
        code = misfit_stop(np.dot(r, r), chi_target, np.sqrt(gamma), rtol * snorm0, it, maxiter)
        if code >= 0:
            break
        op_A(P, p, q)
        nA += 1
        q *= wd
        delta = np.dot(q, q) + shift * np.dot(p, p)
        if delta <= 0.0:
            code = 2
            break
        alpha = gamma / delta
        axpy(alpha, p, y)
        r -= alpha * q
        t[:] = wd * r
        op_At(P, t, s)
        nAt += 1
        if shift > 0.0:
            axpy(-shift, y, s)
        gamma_new = np.dot(s, s)
        beta = gamma_new / gamma
        gamma = gamma_new
        xpby(s, beta, p)
        it += 1
        t[:] = r / wd
        hist[nh] = np.sqrt(np.dot(t, t)) / gnorm
        nh += 1
    x = x0 + y
    t[:] = -r / wd               # A x - g
    return x, t, code, it, nh, nA, nAt


PROFILES = {"default": dict(rtol=1e-6, maxiter=200), "paper": dict(rtol=1e-6, maxiter=100)}


def refine(op, g, x0=None, *, sigma=None, rtol=None, maxiter=None, profile="default", damp=0.0, chi=1.0):
    """CGLS on ``||W_d (A x - g)||^2 + damp^2 ||x - x0||^2``.

    Parameters
    ----------
    op : gravbench operator, LinearOperator or ndarray, shape (N, n)
        Forward operator, mGal per kg/m^3.
    g : array_like, shape (N,)
        Data, mGal.
    x0 : array_like, shape (n,) or (nz, nx), optional
        Starting model and damping centre, kg/m^3 (zeros).
    sigma : float or array_like (N,), optional
        Noise std, mGal: weights ``W_d = 1/sigma`` and the discrepancy stop.
    rtol : float
        Normal-equation residual tolerance (default 1e-6).
    maxiter : int
        Iterations (default 200; ``paper`` profile 100).
    damp : float
        Damping (Tikhonov) factor, in the units of ``W_d A`` (as ``lsqr``'s ``damp``).
    chi : float
        Discrepancy factor: stop when ``||W_d r||^2 <= chi N``.

    Returns
    -------
    Result
        ``info["damp"]``; the model is ``Result.x`` (kg/m^3, flat).
    """
    prof = profile_settings(PROFILES, profile)
    s = prepare(op, g, x0, sigma)
    rtol, maxiter = budget(prof, rtol, maxiter)
    damp = check_tol("damp", damp)
    hist = hist_buffer(maxiter)
    x, r, code, it, nh, nA, nAt = s.call(_cgls_loop, s.g, s.x0, s.wd, damp * damp, rtol,
                                             discrepancy_target(s, chi), maxiter, hist)
    return finish(s, x, code, it, hist, nh, nA, nAt, {"profile": profile, "damp": damp}, r=r)
