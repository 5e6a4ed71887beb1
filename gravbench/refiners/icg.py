"""ICG: the regularised, weighted conjugate gradient with adaptive alpha (docs/algorithms.md).

After Zhdanov's re-weighted regularised CG (Zhdanov, *Geophysical Inverse
Theory and Regularization Problems*, 2002, ch. 5): minimises

    P(rho) = ||W_d (A rho - g)||^2 + alpha ||W_m (rho - rho_ref)||^2

with every weight kept as a vector: ``W_d = 1/sigma`` and ``W_m^2`` either the
sensitivity weighting ``sqrt(sum_i A_ij^2)`` or the depth weighting
``(z + z0)^-beta`` (normalised to mean 1). One iteration::

    l     = A^T W_d^2 r + alpha W_m^2 (rho - rho_ref)      r = A rho - g
    beta  = ||l||^2 / ||l_prev||^2   (0 first and after alpha changes or a clipping projection)
    p     = l + beta p_prev
    k     = (p . l) / (||W_d A p||^2 + alpha ||W_m p||^2)
    rho  -= k p ;  r -= k A p                               (A p reused: 1 A + 1 A^T)

alpha starts at ``alpha0_frac * ||W_d r0||^2 / ||W_m (rho0 - rho_ref)||^2``;
when ``rho0 = rho_ref`` (the default: the start is the reference) the model
term vanishes at the first step and alpha is the Rayleigh ratio
``||W_d A p0||^2 / ||W_m p0||^2`` of the first direction, which costs nothing
extra. alpha is multiplied by ``q`` (0.25) whenever the misfit
``||W_d r||^2`` falls by less than the fraction ``stall`` in one step.
Stops: the discrepancy target ``||W_d r||^2 <= chi N`` (with ``sigma``),
``||r|| / ||g|| <= rtol``, or ``maxiter``. ``bounds`` projects rho onto
``[lo, hi]`` after each step; a projection that clips recomputes ``r`` (one
more ``A``, counted) and restarts the conjugacy.
"""

from __future__ import annotations

import numpy as np

from .._linalg import (add_reg, axpy, check_vector, misfit_start, misfit_stop, op_A, op_At, project, twin, wdot,
                      xpby)
from ._common import (DEFAULT_BOUNDS, bounded_variant, budget, check_tol, discrepancy_target, finish, hist_buffer,
                      model_weights2, prepare, profile_settings, start_model)

__all__ = ["refine", "refine_bounded", "DEFAULT_BOUNDS"]


@twin
def _icg_loop(P, g, x, xref, wd, wm2, alpha0, afrac, q, stall, chi_target, rtol, maxiter, lo, hi, bounded, hist,
              alphas):
    N = g.size
    n = x.size
    r = np.empty(N)
    Ap = np.empty(N)
    t = np.empty(N)
    l = np.empty(n)
    p = np.zeros(n)
    gnorm = misfit_start(P, g, x, r, hist)
    nA = 1
    nAt = 0
    wd2 = wd * wd
    nh = 1
    t[:] = wd * r
    phi = np.dot(t, t)
    dm = x - xref
    md = wdot(wm2, dm, dm)
    alpha = alpha0
    if alpha < 0.0 and md > 0.0:
        alpha = afrac * phi / md
    alphas[0] = alpha
    reset = True
    ll_prev = 1.0
    it = 0
    while True:
        code = misfit_stop(phi, chi_target, hist[nh - 1], rtol, it, maxiter)
        if code >= 0:
            break
        t[:] = wd2 * r
        op_At(P, t, l)
        nAt += 1
        if alpha > 0.0:
            add_reg(alpha, wm2, x, xref, l)
        ll = np.dot(l, l)
        if ll == 0.0:
            code = 6
            break
        if reset:
            p[:] = l
        else:
            xpby(l, ll / ll_prev, p)
        op_A(P, p, Ap)
        nA += 1
        t[:] = wd * Ap
        dA = np.dot(t, t)
        mp = wdot(wm2, p, p)
        if alpha < 0.0:                    # rho0 = rho_ref: Rayleigh ratio of the first direction
            alpha = afrac * dA / mp if mp > 0.0 else 0.0
            alphas[0] = alpha
        den = dA + alpha * mp
        if not den > 0.0:
            code = 2
            break
        k = np.dot(p, l) / den
        axpy(-k, p, x)
        r -= k * Ap
        reset = False
        if bounded:
            if project(x, lo, hi):
                op_A(P, x, r)
                nA += 1
                r -= g
                reset = True
        t[:] = wd * r
        phi_new = np.dot(t, t)
        ll_prev = ll
        if phi_new > (1.0 - stall) * phi:
            alpha *= q
            reset = True
        phi = phi_new
        it += 1
        alphas[it] = alpha
        hist[nh] = np.sqrt(np.dot(r, r)) / gnorm
        nh += 1
    return x, r, code, it, nh, nA, nAt, alpha


PROFILES = {
    "default": dict(rtol=1e-6, maxiter=100, q=0.25),
    "paper": dict(rtol=1e-6, maxiter=100, q=0.25),
}


def refine(op, g, x0=None, *, sigma=None, rtol=None, maxiter=None, profile="default", weighting="sensitivity",
           beta=1.0, z0=None, rho_ref=None, alpha=None, alpha0_frac=1.0, q=None, stall=0.01, chi=1.0,
           bounds=None):
    """Regularised weighted CG with adaptive alpha (ICG).

    Parameters
    ----------
    op : gravbench operator, LinearOperator or ndarray, shape (N, n)
        Forward operator, mGal per kg/m^3.
    g : array_like, shape (N,)
        Data, mGal.
    x0 : array_like, shape (n,) or (nz, nx), optional
        Starting model, kg/m^3 (zeros).
    sigma : float or array_like (N,), optional
        Noise std, mGal: ``W_d = 1/sigma`` and the discrepancy stop.
    rtol : float
        Stop when ``||A x - g|| / ||g|| <= rtol`` (default 1e-6).
    maxiter : int
        Iterations (default 100).
    profile : {"default", "paper"}
        Both: 100 iterations, residual 1e-6, q = 0.25 (the paper's settings).
    weighting : {"sensitivity", "depth", "none"}
        Model weights ``W_m``.
    beta, z0 : float
        Depth weighting ``(d + z0)^-beta`` (d the cell-centre depth below the highest
        station, m; z0 default half the top cell), see :func:`gravbench.refiners._common.depth_weights`.
    rho_ref : array_like, optional
        Reference model, kg/m^3 (default: ``x0``).
    alpha : float, optional
        Fixed initial alpha (skips the automatic choice).
    alpha0_frac : float
        Factor on the automatic initial alpha.
    q : float
        Decay of alpha when the misfit stalls (0 < q < 1; default 0.25).
    stall : float
        The misfit "stalls" when it falls by less than this fraction in a step.
    chi : float
        Discrepancy factor: stop at ``||W_d r||^2 <= chi N``.
    bounds : (lo, hi), optional
        Projection bounds, kg/m^3 (scalars or per cell; None for open).

    Returns
    -------
    Result
        ``info``: ``alpha0``, ``alpha`` (final), ``alphas`` (history), ``weighting``.
    """
    prof = profile_settings(PROFILES, profile)
    s = prepare(op, g, x0, sigma)
    rtol, maxiter = budget(prof, rtol, maxiter)
    q = check_tol("q", prof["q"] if q is None else q, positive=True)
    if q >= 1.0:
        raise ValueError(f"q must be in (0, 1), got {q!r}")
    stall = check_tol("stall", stall)
    afrac = check_tol("alpha0_frac", alpha0_frac, positive=True)
    alpha0 = -1.0 if alpha is None else check_tol("alpha", alpha)
    xref = s.x0.copy() if rho_ref is None else check_vector("rho_ref", rho_ref, s.n, allow_2d=s.shape)
    wm2 = model_weights2(s.op, s.n, weighting, beta, z0)
    x, lo, hi, bounded = start_model(s, bounds)
    hist = hist_buffer(maxiter)
    alphas = np.zeros(maxiter + 1)
    x, r, code, it, nh, nA, nAt, alpha_end = s.call(
        _icg_loop, s.g, x, xref, s.wd, wm2, alpha0, afrac, q, stall, discrepancy_target(s, chi), rtol, maxiter,
        lo, hi, bounded, hist, alphas)
    info = {"profile": profile, "weighting": weighting, "alpha0": float(alphas[0]), "alpha": float(alpha_end),
            "alphas": alphas[:it + 1].copy(), "bounded": bounded, "q": q}
    return finish(s, x, code, it, hist, nh, nA, nAt, info, r=r)


refine_bounded = bounded_variant(refine, 'picg', 'icg', 'Projected ICG')
