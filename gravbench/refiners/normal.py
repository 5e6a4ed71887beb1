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

``Result.residuals`` holds the data misfit ``||A x - g|| / ||g||`` at the start
and the end; the solver's normal-equation history is ``info["normal_residuals"]``.
"""

from __future__ import annotations

import numpy as np

from .. import solvers as _solvers
from ..solvers._engine import NormalOperator
from ._common import check_tol, finish, prepare, profile_settings

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


def _refine(method, op, g, x0, sigma, rtol, maxiter, profile, **opts):
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
    res = solver(NormalOperator(s.op, w2), rhs, x0=s.x0, rtol=rtol, maxiter=maxiter, **prof)
    r = _apply(s.op, res.x) - s.g                          # final misfit: one A
    hist = np.array([np.linalg.norm(r0) / s.gnorm, np.linalg.norm(r) / s.gnorm])
    code = {"converged": 0, "maxiter": 1, "breakdown": 2, "nonfinite": 5}.get(res.status, 1)
    info = {"profile": profile, "engine": res.info.get("engine"), "normal_residuals": res.residuals,
            "normal_status": res.status, "rtol": rtol, "maxiter": maxiter, **prof}
    # the solver already pushed its compiled products into op's counters; the three extra
    # products above were counted by op itself (or are plain matrix products for an ndarray)
    return finish(s, res.x, code, res.niter, hist, 2, res.n_matvec + 2, res.n_rmatvec + 1, info, r=r, push=False)


def refine_gmres(op, g, x0=None, *, sigma=None, rtol=None, maxiter=None, profile="default", restart=None):
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

    Returns
    -------
    Result
    """
    return _refine("gmres", op, g, x0, sigma, rtol, maxiter, profile, restart=restart)


def refine_lgmres(op, g, x0=None, *, sigma=None, rtol=None, maxiter=None, profile="default", inner_m=None,
                  outer_k=None):
    """LGMRES on ``A^T W_d^2 A x = A^T W_d^2 g`` (see module docstring for profiles).

    Parameters as :func:`refine_gmres`; ``maxiter`` counts outer iterations,
    ``inner_m`` the Arnoldi steps per outer iteration and ``outer_k`` the
    augmentation vectors kept.
    """
    return _refine("lgmres", op, g, x0, sigma, rtol, maxiter, profile, inner_m=inner_m, outer_k=outer_k)
