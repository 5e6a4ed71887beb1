"""Gradient descent on the (weighted) data misfit, optionally projected onto bounds.

Minimises ``phi(x) = ||W_d (A x - g)||^2``, gradient ``2 A^T W_d^2 (A x - g)``.
Default: steepest descent with the exact line search step
``t = ||d||^2 / ||W_d A d||^2`` along ``d = A^T W_d^2 r`` (no tuning); the
``paper`` profile uses the seed's fixed learning rate, tolerance 1e-6 on the
relative decrease of phi, 100 iterations. The seed's rate 1e-5 was set for its
own unscaled ``A`` (largest eigenvalue of ``A^T A`` about 347, so
``2 lr lambda_max`` about 6.9e-3); gravbench's ``A`` is in mGal per kg/m^3
(``lambda_max`` about 4e-5), where 1e-5 would not move the model. So the
``paper`` step keeps the seed's *effective* step: ``step = 1e-5 * 347 /
lambda_max`` with ``lambda_max`` of ``A^T W_d^2 A`` estimated by
:data:`POWER_ITERATIONS` power iterations (counted products). One ``A`` and
one ``A^T`` product per iteration (``A d`` updates the residual); a
projection that clips recomputes the residual (one more ``A``, counted).
"""

from __future__ import annotations

import numpy as np

from .._linalg import axpy, misfit_start, misfit_stop, op_A, op_At, project, twin
from ._common import (DEFAULT_BOUNDS, bounded_variant, budget, check_tol, discrepancy_target, finish, hist_buffer,
                      prepare, profile_settings, start_model)

__all__ = ["refine", "refine_bounded", "lambda_max", "DEFAULT_BOUNDS", "SEED_LR", "SEED_LAMBDA_MAX"]


@twin
def _gd_loop(P, g, x, wd, step, rtol, ftol, chi_target, maxiter, lo, hi, bounded, hist):
    N = g.size
    n = x.size
    r = np.empty(N)
    Ad = np.empty(N)
    d = np.empty(n)
    t = np.empty(N)
    gnorm = misfit_start(P, g, x, r, hist)
    nA = 1
    nAt = 0
    nh = 1
    rw = wd * r
    phi = np.dot(rw, rw)
    it = 0
    while True:
        code = misfit_stop(phi, chi_target, hist[nh - 1], rtol, it, maxiter)
        if code >= 0:
            break
        t[:] = wd * rw
        op_At(P, t, d)
        nAt += 1
        op_A(P, d, Ad)
        nA += 1
        if step > 0.0:
            tk = 2.0 * step
        else:
            wAd = wd * Ad
            den = np.dot(wAd, wAd)
            if den <= 0.0:
                code = 6     # zero gradient or A d = 0: stationary
                break
            tk = np.dot(d, d) / den
        axpy(-tk, d, x)
        r -= tk * Ad
        if bounded:
            if project(x, lo, hi):
                op_A(P, x, r)
                nA += 1
                r -= g
        rw = wd * r
        phi_new = np.dot(rw, rw)
        it += 1
        hist[nh] = np.sqrt(np.dot(r, r)) / gnorm
        nh += 1
        if ftol > 0.0 and phi - phi_new <= ftol * phi:
            code = 0 if phi_new <= phi else 6
            phi = phi_new
            break
        phi = phi_new
    return x, r, code, it, nh, nA, nAt


PROFILES = {
    "default": dict(step=None, rtol=1e-6, ftol=0.0, maxiter=100),
    "paper": dict(step="seed", rtol=0.0, ftol=1e-6, maxiter=100),
}

#: The seed code's learning rate and the largest eigenvalue of its (unscaled) ``A^T A`` (docs/paper.md).
SEED_LR = 1e-5
SEED_LAMBDA_MAX = 347.0
#: Power iterations for ``lambda_max`` of the paper step (from a fixed start: deterministic).
POWER_ITERATIONS = 20


def _apply(op, v, adjoint=False):
    if isinstance(op, np.ndarray):
        return op.T @ v if adjoint else op @ v
    return np.asarray(op.rmatvec(v) if adjoint else op.matvec(v), dtype=np.float64)


def lambda_max(op, wd=None, iterations=POWER_ITERATIONS):
    """Largest eigenvalue of ``A^T W_d^2 A`` by power iteration, (mGal per kg/m^3)^2 (after weighting).

    Parameters
    ----------
    op : operator or ndarray, shape (N, n)
    wd : ndarray (N,), optional
        Data weights ``1 / sigma`` (ones).
    iterations : int
        Power iterations from a fixed, seeded start (each: one ``A`` and one ``A^T`` product).

    Returns
    -------
    float
        The Rayleigh quotient of the last iterate: a lower bound that converges
        to ``lambda_max`` (within 1 % after a few iterations for gravity kernels,
        whose top eigenvalue is well separated).
    """
    N, n = op.shape
    w2 = np.ones(N) if wd is None else np.asarray(wd, dtype=np.float64) ** 2
    v = np.random.default_rng(12345).standard_normal(n)
    v /= np.linalg.norm(v)
    lam = 0.0
    for _ in range(int(iterations)):
        u = _apply(op, w2 * _apply(op, v), adjoint=True)
        lam = float(np.dot(v, u))
        nu = float(np.linalg.norm(u))
        if nu == 0.0:
            return 0.0
        v = u / nu
    return lam


def refine(op, g, x0=None, *, sigma=None, rtol=None, maxiter=None, profile="default", step=None, ftol=None,
           chi=1.0, bounds=None):
    """Gradient descent / projected gradient on ``||W_d (A x - g)||^2``.

    Parameters
    ----------
    op : gravbench operator, LinearOperator or ndarray, shape (N, n)
        Forward operator, mGal per kg/m^3.
    g : array_like, shape (N,)
        Data, mGal.
    x0 : array_like, shape (n,) or (nz, nx), optional
        Starting model, kg/m^3 (zeros).
    sigma : float or array_like (N,), optional
        Noise std, mGal: weights ``W_d = 1/sigma`` and the discrepancy stop
        ``||W_d r||^2 <= chi N``.
    rtol : float
        Stop when ``||A x - g|| / ||g|| <= rtol``.
    maxiter : int
        Iterations (default 100).
    profile : {"default", "paper"}
        ``paper``: the seed's effective fixed step (``step = 1e-5 * 347 /
        lambda_max``, see the module docstring), ``ftol`` 1e-6, 100 iterations.
    step : float, optional
        Fixed learning rate on the gradient ``2 A^T W_d^2 r``, (kg/m^3)^2 per
        mGal^2 (after weighting); None = the profile's (exact line search by default).
    ftol : float
        Stop when phi falls by less than ``ftol * phi`` in one step.
    chi : float
        Discrepancy factor (target ``chi * N``).
    bounds : (lo, hi), optional
        Project onto ``lo <= x <= hi`` (kg/m^3; scalars or per cell) after each step.

    Returns
    -------
    Result
    """
    prof = profile_settings(PROFILES, profile)
    s = prepare(op, g, x0, sigma)
    step = prof["step"] if step is None else check_tol("step", step, positive=True)
    extra = 0
    lam = None
    if step == "seed":  # the seed's 2 lr lambda_max, rescaled to this operator
        lam = lambda_max(s.op, s.wd)
        extra = POWER_ITERATIONS
        if not lam > 0:
            raise ValueError("profile='paper': A^T W_d^2 A has no positive eigenvalue (op is zero?)")
        step = SEED_LR * SEED_LAMBDA_MAX / lam
    rtol, maxiter = budget(prof, rtol, maxiter)
    ftol = check_tol("ftol", prof["ftol"] if ftol is None else ftol)
    x, lo, hi, bounded = start_model(s, bounds)
    hist = hist_buffer(maxiter)
    x, r, code, it, nh, nA, nAt = s.call(_gd_loop, s.g, x, s.wd, 0.0 if step is None else float(step),
                                           rtol, ftol, discrepancy_target(s, chi), maxiter, lo, hi, bounded, hist)
    info = {"profile": profile, "step": "line-search" if step is None else step, "bounded": bounded}
    if lam is not None:
        info["lambda_max"] = lam
        info["effective_step"] = 2.0 * step * lam  # 2 lr lambda_max, the seed's ~6.9e-3
    # the power iterations' products were counted by the operator itself (push only the loop's)
    res = finish(s, x, code, it, hist, nh, nA, nAt, info, r=r)
    if extra:
        import dataclasses

        res = dataclasses.replace(res, n_matvec=res.n_matvec + extra, n_rmatvec=res.n_rmatvec + extra)
    return res


refine_bounded = bounded_variant(refine, 'pgd', 'gd', 'Projected gradient')
