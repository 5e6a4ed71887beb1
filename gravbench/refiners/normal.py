"""GMRES and LGMRES on the normal equations ``A^T W_d^2 A x = A^T W_d^2 g``.

Matrix-free: the normal operator applies ``A`` then ``A^T`` (never formed;
:func:`gravbench.solvers.NormalOperator`), and for dense / matrix-free
gravbench operators the whole Krylov iteration runs in numba
(:func:`gravbench.solvers.gmres`, :func:`gravbench.solvers.lgmres`). The seed
paper used SciPy's ``gmres`` / ``lgmres`` this way, from the CNN output.

Profiles (``maxiter`` counts restart cycles / outer iterations, as SciPy):

* ``paper``: GMRES rtol 1e-6, maxiter 5000 (restart 20, SciPy's default);
  LGMRES inner_m 30, outer_k 50, rtol 1e-6, maxiter 5000;
* ``default``: rtol 1e-6, GMRES restart 30 x 10 cycles; LGMRES inner_m 30,
  outer_k 3, 10 outer iterations (~300 normal products: the normal equations of
  a gravity problem are too ill-conditioned to reach 1e-6 in any useful time).

Discrepancy stop (when ``sigma`` is given, ``discrepancy=True``): the normal
equations of noisy data have the noise in their solution, so running to a
small ``rtol`` fits the noise (chi2 well below 1). With ``sigma`` the refiner
stops at the first iterate whose reduced chi-squared ``||W_d (A x - g)||^2 / N``
is at most the upper edge of the success band ``1 + 2 sqrt(2/N)``
(:func:`gravbench.metrics.success_band`); if that iterate overshoots
below the band, it steps back along the segment from the previous iterate to
the point where ``chi2 = chi`` (1 by default: a quadratic in the step, solved
exactly), so the result lies in the band whenever the iteration reaches it.
GMRES runs one restart cycle at a time (restarted GMRES is exactly a chain of
one-cycle runs); LGMRES keeps augmentation vectors across outer iterations, so
its iterate after ``k`` outer iterations is recomputed from ``x0`` with
``maxiter = k``, ``k`` doubling and then bisected (every product is counted).
The profiles' ``rtol`` and iteration caps still apply; without ``sigma``
(noise-free data) nothing changes.

``Result.residuals`` holds the data misfit ``||A x - g|| / ||g||`` at the start
and the end; the solver's normal-equation history is ``info["normal_residuals"]``.
"""

from __future__ import annotations

import numpy as np

from .. import solvers as _solvers
from .._linalg.normal import NormalOperator
from ._common import check_tol, finish, prepare, profile_settings
from ..metrics import success_band

__all__ = ["refine_gmres", "refine_lgmres"]

PROFILES = {
    "gmres": {"default": dict(rtol=1e-6, maxiter=10, restart=30), "paper": dict(rtol=1e-6, maxiter=5000, restart=20)},
    "lgmres": {"default": dict(rtol=1e-6, maxiter=10, inner_m=30, outer_k=3),
               "paper": dict(rtol=1e-6, maxiter=5000, inner_m=30, outer_k=50)},
}


def _apply(op, v, adjoint=False):
    if isinstance(op, np.ndarray):
        return op.T @ v if adjoint else op @ v
    return np.asarray(op.rmatvec(v) if adjoint else op.matvec(v), dtype=np.float64)


def _chi2(s, r):
    return float(np.sum((r * s.wd) ** 2) / s.N)


def _backtrack(s, x_prev, r_prev, x, r, chi):
    """The point on [x_prev, x] where chi2 = chi (chi2(x_prev) > chi >= chi2(x)): exact root of a quadratic."""
    a_vec, b_vec = s.wd * r_prev, s.wd * (r - r_prev)
    a2, ab, b2 = float(a_vec @ a_vec), float(a_vec @ b_vec), float(b_vec @ b_vec)
    c = a2 - chi * s.N
    if b2 <= 0.0:
        return x, r
    disc = max(ab * ab - b2 * c, 0.0)
    t = (-ab - np.sqrt(disc)) / b2  # the first crossing from above along the segment
    if not (0.0 <= t <= 1.0):
        t = (-ab + np.sqrt(disc)) / b2
    t = float(min(max(t, 0.0), 1.0))
    return x_prev + t * (x - x_prev), r_prev + t * (r - r_prev)


def _discrepancy(method, solver, nop, rhs, s, r0, rtol, maxiter, chi, prof):
    """Run ``solver`` to the first entry into the success band (see the module docstring)."""

    lo, hi = success_band(s.N)
    counts = {"nA": 0, "nAt": 0, "niter": 0}
    hist_normal = []

    def misfit(x):
        counts["nA"] += 1
        return _apply(s.op, x) - s.g

    r_prev = r0
    if _chi2(s, r0) <= hi:  # already at (or below) the noise level: do not move
        return s.x0, r0, 0, "discrepancy", counts, hist_normal

    def one(x_start, k):
        res = solver(nop, rhs, x0=x_start, rtol=rtol, maxiter=k, **prof)
        counts["nA"] += res.n_matvec
        counts["nAt"] += res.n_rmatvec
        hist_normal.extend(np.asarray(res.residuals).tolist())
        return res

    if method == "gmres":  # restarted GMRES == a chain of one-cycle runs
        x = s.x0
        for k in range(int(maxiter)):
            res = one(x, 1)
            counts["niter"] += res.niter
            x_new = res.x
            r_new = misfit(x_new)
            if _chi2(s, r_new) <= hi:
                if _chi2(s, r_new) < lo:
                    x_new, r_new = _backtrack(s, x, r_prev, x_new, r_new, chi)
                return x_new, r_new, counts["niter"], "discrepancy", counts, hist_normal
            if res.status != "maxiter":
                return x_new, r_new, counts["niter"], res.status, counts, hist_normal
            x, r_prev = x_new, r_new
        return x, r_prev, counts["niter"], "maxiter", counts, hist_normal
    # LGMRES: iterate k recomputed from x0; k doubles, then bisection for the first k in the band
    cache = {0: (s.x0, r0, 0, "maxiter")}

    def at(k):
        if k not in cache:
            res = one(s.x0, k)
            cache[k] = (res.x, misfit(res.x), res.niter, res.status)
        return cache[k]

    k_lo, k = 0, 1
    while True:
        k = min(k, int(maxiter))
        x_k, r_k, it_k, st_k = at(k)
        if _chi2(s, r_k) <= hi:
            break
        if st_k != "maxiter" or k >= int(maxiter):  # converged / broke down / out of budget above the band
            return x_k, r_k, it_k, st_k, counts, hist_normal
        k_lo, k = k, 2 * k
    while k - k_lo > 1:  # invariant: chi2(k_lo) > hi >= chi2(k)
        mid = (k_lo + k) // 2
        if _chi2(s, at(mid)[1]) <= hi:
            k = mid
        else:
            k_lo = mid
    x_k, r_k, it_k, _ = cache[k]
    if _chi2(s, r_k) < lo:
        xp, rp = cache[k_lo][0], cache[k_lo][1]
        x_k, r_k = _backtrack(s, xp, rp, x_k, r_k, chi)
    return x_k, r_k, it_k, "discrepancy", counts, hist_normal


def _refine(method, op, g, x0, sigma, rtol, maxiter, profile, discrepancy=True, chi=1.0, **opts):
    prof = dict(profile_settings(PROFILES[method], profile))
    for k, v in opts.items():
        if v is not None:
            prof[k] = v
    s = prepare(op, g, x0, sigma)
    prof_rtol, prof_maxiter = prof.pop("rtol"), prof.pop("maxiter")
    rtol = check_tol("rtol", prof_rtol if rtol is None else rtol)
    maxiter = prof_maxiter if maxiter is None else maxiter
    w2 = None if s.sigma is None else s.wd ** 2
    gw = s.g if w2 is None else s.g * w2
    rhs = _apply(s.op, gw, adjoint=True)                  # A^T W^2 g: one A^T
    r0 = _apply(s.op, s.x0) - s.g                          # starting misfit: one A
    solver = _solvers.gmres if method == "gmres" else _solvers.lgmres
    if s.sigma is not None and discrepancy:
        chi = float(check_tol("chi", chi, positive=True))
        x, r, niter, status, cnt, nh = _discrepancy(method, solver, NormalOperator(s.op, w2), rhs, s, r0, rtol,
                                                    int(maxiter), chi, prof)
        hist = np.array([np.linalg.norm(r0) / s.gnorm, np.linalg.norm(r) / s.gnorm])
        code = {"discrepancy": 4, "converged": 0, "maxiter": 1, "breakdown": 2, "nonfinite": 5}.get(status, 1)
        info = {"profile": profile, "normal_residuals": np.asarray(nh), "normal_status": status, "rtol": rtol,
                "maxiter": maxiter, "discrepancy": True, **prof}
        return finish(s, x, code, niter, hist, 2, cnt["nA"] + 1, cnt["nAt"] + 1, info, r=r, push=False)
    res = solver(NormalOperator(s.op, w2), rhs, x0=s.x0, rtol=rtol, maxiter=maxiter, **prof)
    r = _apply(s.op, res.x) - s.g                          # final misfit: one A
    hist = np.array([np.linalg.norm(r0) / s.gnorm, np.linalg.norm(r) / s.gnorm])
    code = {"converged": 0, "maxiter": 1, "breakdown": 2, "nonfinite": 5}.get(res.status, 1)
    info = {"profile": profile, "engine": res.info.get("engine"), "normal_residuals": res.residuals,
            "normal_status": res.status, "rtol": rtol, "maxiter": maxiter, **prof}
    # the solver already pushed its compiled products into op's counters; the three extra
    # products above were counted by op itself (or are plain matrix products for an ndarray)
    return finish(s, res.x, code, res.niter, hist, 2, res.n_matvec + 2, res.n_rmatvec + 1, info, r=r, push=False)


def refine_gmres(op, g, x0=None, *, sigma=None, rtol=None, maxiter=None, profile="default", restart=None,
                 discrepancy=True, chi=1.0):
    """Restarted GMRES on ``A^T W_d^2 A x = A^T W_d^2 g`` (see module docstring for profiles).

    Parameters
    ----------
    op : gravbench operator, LinearOperator or ndarray, shape (N, n)
    g : array_like, shape (N,)
        Data, mGal.
    x0 : array_like, shape (n,) or (nz, nx), optional
        Start, kg/m^3.
    sigma : float or array_like (N,), optional
        Noise std, mGal: data weights ``W_d = 1/sigma``.
    rtol : float
        Relative tolerance on the normal-equation residual.
    maxiter : int
        Restart cycles.
    restart : int
        Krylov dimension per cycle.
    discrepancy : bool
        With ``sigma``: stop at the first entry into the success band (module docstring).
    chi : float
        Backtracking target ``chi2 = chi`` when an iterate overshoots below the band.

    Returns
    -------
    Result
    """
    return _refine("gmres", op, g, x0, sigma, rtol, maxiter, profile, discrepancy, chi, restart=restart)


def refine_lgmres(op, g, x0=None, *, sigma=None, rtol=None, maxiter=None, profile="default", inner_m=None,
                  outer_k=None, discrepancy=True, chi=1.0):
    """LGMRES on ``A^T W_d^2 A x = A^T W_d^2 g`` (see module docstring for profiles).

    Parameters as :func:`refine_gmres`; ``maxiter`` counts outer iterations,
    ``inner_m`` the Arnoldi steps per outer iteration and ``outer_k`` the
    augmentation vectors kept; ``discrepancy`` and ``chi`` as :func:`refine_gmres`.
    """
    return _refine("lgmres", op, g, x0, sigma, rtol, maxiter, profile, discrepancy, chi, inner_m=inner_m,
                   outer_k=outer_k)
