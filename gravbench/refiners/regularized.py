"""Model-space regularised inversion: smooth (L2), sparse (IRLS), compact and focusing.

Minimises

.. math::

    \\Phi(m) = \\|W_d (A m - g)\\|^2 + \\beta\\,\\phi_m(m),\\qquad
    \\phi_m = \\alpha_s \\sum_j v_j w_j |m_j - m^{ref}_j|^p
            + \\alpha_x \\ell^2 \\sum_f v_f w_f |(D_x m)_f|^{q_x}
            + \\alpha_z \\ell^2 \\sum_f v_f w_f |(D_z m)_f|^{q_z}

(``p``-th powers as in SimPEG's ``Sparse`` and Lawson's norms, so
``p = q = 2`` is the L2 / Tikhonov objective with smallness and smoothness),
subject to bounds ``lo <= m <= hi``. Here ``W_d = diag(1/sigma)``; ``v`` are cell
(or dual-cell, for the faces) areas divided by their mean; ``w`` the cell
weighting (sensitivity weights ``sqrt(sum_i (W_d A)_ij^2) / area_j`` divided by
their maximum, SimPEG's default, or Li & Oldenburg depth weights
``(z + z0)^(-beta_z)``), averaged onto the faces for the gradient terms; ``D_x``,
``D_z`` first-order differences between cell centres of the (possibly
non-uniform) grid, 1/m; ``ell`` the smallest cell size (SimPEG's default length
scale, so that all three alphas = 1 weight the terms comparably).

Algorithm
---------
1. **beta search (L2 phase).** ``beta_0 = beta0_ratio * ||W_d A x||^2 / x^T R x``
   for a seeded random ``x`` (SimPEG's ``BetaEstimate_ByEig``). For each beta the
   quadratic problem is solved by projected Gauss-Newton-CG (the active set of
   variables at a bound whose gradient points outward is frozen, preconditioned
   CG on the free variables -- Jacobi by default, or ``precond="amg"``: a PyAMG
   smoothed-aggregation V-cycle of the sparse ``diag(A^T W_d^2 A) + beta R`` --
   and a projected backtracking step), warm-started from the previous beta.
   ``smooth`` solves each beta to ``cg_rtol = 1e-4`` (<= 60 CG iterations): a
   loosely solved first beta gives a misfit that a later, better solved beta
   contradicts, and the bracketing search then stalls (at n = 400 it took 33 beta
   steps and 2002 products; solved to 1e-4 it takes 1 step and 48 products).
   Beta is divided by ``cooling`` until the reduced chi-squared
   ``chi2 = ||W_d r||^2 / N`` is at or below the target band, then set by regula
   falsi (Illinois variant) on ``log chi2`` vs ``log beta`` until
   :func:`gravbench.metrics.is_success` holds and ``chi2`` is not below
   ``1 - 2 sqrt(2/N)`` (the discrepancy principle: fit to the noise, not below it).
2. **IRLS (only when some norm < 2).** Each term's values ``f`` (``m - m_ref``,
   ``D_x m``, ``D_z m``) get Lawson / Ekblom weights
   ``r = lam (f^2 + eps^2)^(p/2 - 1)`` (``lam`` as SimPEG's ``irls_scaled``: the
   term's largest gradient ``r f`` stays at its L2 value ``max|f|``, so the terms keep
   their balance while ``eps`` is cooled), with ``eps`` starting at the
   ``eps_percentile`` percentile of ``|f|`` at the L2 model and divided by
   ``eps_cooling`` every iteration down to ``eps_floor`` times its start (the
   cooled threshold of SimPEG's ``UpdateIRLS``). Every iteration rescales beta
   by ``1 / chi2`` (clipped to [1/4, 4]) to hold the misfit at the target and
   takes ``gn_iter`` projected GN-CG steps. It stops once ``eps`` is at its floor,
   ``phi_m`` changed by less than ``irls_tol`` (relative) and chi2 is in the
   band, or after ``max_irls`` iterations; a few beta corrections with frozen
   weights then bring chi2 into the band if it is not.

All products with ``A`` go through the operator (dense, matrix-free or FFT:
n = 1000 runs on the FFT operator); the regularisation products, gradients and
IRLS weights are Numba loops (:mod:`._regularization`).

Variants (registered refiner names)
-----------------------------------
All share :data:`DEFAULTS`; :data:`VARIANTS` overrides per variant.

============  =================================================  ===========================================
name          norms (s, x, z) and own settings                   reference
============  =================================================  ===========================================
smooth        (2, 2, 2); CG <= 60 per step, 1e-4                   Li & Oldenburg (1998); SimPEG's
                                                                 ``WeightedLeastSquares``
sparse        (0, 1, 1); CG <= 10 per step                       Fournier & Oldenburg (2019); SimPEG's
                                                                 ``Sparse`` + ``UpdateIRLS``
compact       (0, 2, 2) with alpha_x = alpha_z = 0 (no           Last & Kubik (1983) minimum volume
              smoothness); ``irls_scale="eps"``; CG <= 10
focusing      (2, 0, 0); CG <= 10                                Portniaguine & Zhdanov (1999) minimum
                                                                 gradient support
============  =================================================  ===========================================

The defaults were tuned on a validation set of 12 ``blocks`` models (n = 50,
1 % noise, seed 1011) and frozen before the held-out comparison in
reports/classical.md (seed 4047): ``eps_cooling`` 3 (1.5: worse, 4: equal),
``max_irls`` 15, CG <= 10 per IRLS step, SimPEG's weight scaling for
``sparse`` (mean model error 0.759 vs 0.780 with ``eps^(2-p)``) but not for
``compact`` (1.300 vs 0.844).

References
----------
Li, Y. & Oldenburg, D. W. (1998). 3-D inversion of gravity data. Geophysics 63(1), 109-119.
Last, B. J. & Kubik, K. (1983). Compact gravity inversion. Geophysics 48(6), 713-721.
Portniaguine, O. & Zhdanov, M. S. (1999). Focusing geophysical inversion images. Geophysics 64(3), 874-887.
Fournier, D. & Oldenburg, D. W. (2019). Inversion using spatially variable mixed lp norms. GJI 218(1), 268-282.
Ekblom, H. (1973). Calculation of linear best Lp-approximations. BIT 13, 292-300.
Lawson, C. L. (1961). Contributions to the theory of linear least maximum approximation. PhD thesis, UCLA.
Cockett, R. et al. (2015). SimPEG: an open source framework for simulation and gradient based parameter
estimation in geophysical applications. Computers & Geosciences 85, 142-154.

Examples
--------
>>> import numpy as np, gravbench as gb
>>> prob = gb.Problem.paper(n=12)
>>> op = prob.operator("dense")
>>> rho = np.zeros(prob.shape); rho[3:7, 4:8] = 300.0
>>> g = op.matvec(rho.ravel())
>>> res = gb.refiners.run("sparse", op, g, sigma=0.01 * np.abs(g).max())
>>> bool(res.info["success"])
True
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from scipy.sparse.linalg import LinearOperator

from . import _regularization as _r
from .._linalg import single_thread_blas
from ._common import check_bounds, check_int, check_tol, finish, layer_depth_weights, prepare
from ..metrics import chi2_threshold, is_success

__all__ = ["refine", "refine_smooth", "refine_sparse", "refine_compact", "refine_focusing", "VARIANTS",
           "DEFAULTS"]

#: Default options shared by every variant (tuned on a validation set of ``blocks`` models, n = 50, 1 % noise,
#: frozen before measuring: see reports/classical.md).
DEFAULTS = {
    "alphas": (1.0, 1.0, 1.0),
    "weighting": "sensitivity",
    "beta0_ratio": 10.0,
    "cooling": 8.0,
    "cg_maxiter": 30,
    "cg_rtol": 1e-3,
    "gn_iter": 1,
    "max_irls": 15,
    "eps_percentile": 98.0,
    "eps_cooling": 3.0,
    "eps_floor": 1e-2,
    "irls_tol": 1e-2,
    "max_beta": 30,
    "irls_scale": "gradient",
    "precond": "jacobi",
}

#: The IRLS schedules of :func:`refine` (option ``recipe``).
RECIPES = ("default", "simpeg")

#: ``recipe="simpeg"``: the settings of SimPEG's ``UpdateIRLS`` run to convergence (``percentile=100``,
#: ``irls_cooling_factor=1.2``, ``f_min_change=1e-4``, up to 150 IRLS iterations) and its gravity
#: tutorials' CG budget (30 per Gauss-Newton step); no threshold floor.
SIMPEG_RECIPE = {"eps_percentile": 100.0, "eps_cooling": 1.2, "irls_tol": 1e-4, "max_irls": 150, "cg_maxiter": 30,
                 "eps_floor": 1e-300}

#: variant name -> its own defaults (norms and alphas)
VARIANTS = {
    "smooth": {"norms": (2.0, 2.0, 2.0), "cg_maxiter": 60, "cg_rtol": 1e-4},
    "sparse": {"norms": (0.0, 1.0, 1.0), "cg_maxiter": 10},
    "compact": {"norms": (0.0, 2.0, 2.0), "alphas": (1.0, 0.0, 0.0), "cg_maxiter": 10, "irls_scale": "eps"},
    "focusing": {"norms": (2.0, 0.0, 0.0), "cg_maxiter": 10},
}


#: preconditioners of the inner CG (see :meth:`_Problem.preconditioner`)
PRECONDITIONERS = ("amg", "jacobi")


class _Problem:
    """Operator, data weights and the regularisation pieces of one run (all vectors)."""

    def __init__(self, s, geo, cellw, alphas, mref, lo, hi):
        self.s = s
        self.op = s.op
        self.wd2 = s.wd ** 2
        self.g = s.g
        self.nz, self.nx = geo["dz"].size, geo["dx"].size
        self.hx, self.hz = geo["hx"], geo["hz"]
        nz, nx = self.nz, self.nx
        ell2 = float(min(geo["dx"].min(), geo["dz"].min())) ** 2
        mean_area = float(geo["area"].mean())
        w = cellw.reshape(nz, nx)
        self.base_s = alphas[0] * (geo["area"] / mean_area * w).ravel()
        self.base_x = alphas[1] * ell2 * (geo["area_x"] / mean_area * 0.5 * (w[:, 1:] + w[:, :-1])).ravel()
        self.base_z = alphas[2] * ell2 * (geo["area_z"] / mean_area * 0.5 * (w[1:, :] + w[:-1, :])).ravel()
        self.rs = np.ones(self.base_s.size)
        self.rx = np.ones(self.base_x.size)
        self.rz = np.ones(self.base_z.size)
        self.mref = mref
        self.lo, self.hi = lo, hi
        self.nA = 0
        self.nAt = 0
        self._tmp = np.empty(nz * nx)
        self.n = nz * nx
        self.precond = "jacobi"
        self.amg_min = 0
        self.n_amg = 0
        self._D = None
        self._pc = None
        self._wver = 0
        self.update_weights()

    def update_weights(self):
        self._wver += 1
        self.ws = self.base_s * self.rs
        self.wx = self.base_x * self.rx
        self.wz = self.base_z * self.rz

    # products --------------------------------------------------------------------
    def A(self, v):
        self.nA += 1
        op = self.op
        return op @ v if isinstance(op, np.ndarray) else np.asarray(op.matvec(v), dtype=np.float64)

    def At(self, u):
        self.nAt += 1
        op = self.op
        return op.T @ u if isinstance(op, np.ndarray) else np.asarray(op.rmatvec(u), dtype=np.float64)

    def R(self, v, out=None):
        return _r.reg_apply(v, self.nz, self.nx, self.ws, self.wx, self.wz, self.hx, self.hz, out=out)

    def phi_m(self, x):
        """The current (reweighted) quadratic ``phi_m`` at x."""
        d = x - self.mref
        fx, fz = _r.gradients(x, self.nz, self.nx, self.hx, self.hz)
        return float(np.dot(self.ws * d, d) + np.dot(self.wx * fx, fx) + np.dot(self.wz * fz, fz))

    def objective(self, x, r, beta):
        return float(np.dot(self.wd2 * r, r)) + beta * self.phi_m(x)

    # preconditioners of the Gauss-Newton Hessian A^T W_d^2 A + beta R ----------------
    def reg_diag(self):
        """The diagonal of R (the smallness weights plus each face's two gradient weights), (n,)."""
        dR = self.ws.copy()
        wx_ = self.wx / np.repeat(self.hx[None, :] ** 2, self.nz, axis=0).ravel()
        wz_ = self.wz / np.repeat(self.hz[:, None] ** 2, self.nx, axis=1).ravel()
        dR2 = dR.reshape(self.nz, self.nx)
        wx2, wz2 = wx_.reshape(self.nz, self.nx - 1), wz_.reshape(self.nz - 1, self.nx)
        dR2[:, :-1] += wx2
        dR2[:, 1:] += wx2
        dR2[:-1, :] += wz2
        dR2[1:, :] += wz2
        return dR

    def reg_matrix(self):
        """R as a sparse CSR matrix: ``diag(ws) + D_x^T diag(wx) D_x + D_z^T diag(wz) D_z``."""
        import scipy.sparse as sp

        nz, nx = self.nz, self.nx
        if self._D is None:
            ihx, ihz = 1.0 / self.hx, 1.0 / self.hz
            e = np.ones(nx - 1)
            dx1 = sp.diags([-e, e], [0, 1], shape=(nx - 1, nx)) if nx > 1 else sp.csr_matrix((0, nx))
            e = np.ones(nz - 1)
            dz1 = sp.diags([-e, e], [0, 1], shape=(nz - 1, nz)) if nz > 1 else sp.csr_matrix((0, nz))
            Dx = sp.kron(sp.identity(nz), sp.diags(ihx) @ dx1).tocsr()
            Dz = sp.kron(sp.diags(ihz) @ dz1, sp.identity(nx)).tocsr()
            self._D = (Dx, Dz)
        Dx, Dz = self._D
        R = sp.diags(self.ws) + Dx.T @ sp.diags(self.wx) @ Dx + Dz.T @ sp.diags(self.wz) @ Dz
        return R.tocsr()

    def preconditioner(self, beta, diagH0):
        """``z = M^-1 r`` on the free cells, for ``M = diag(A^T W_d^2 A) + beta R``.

        ``precond="jacobi"`` uses the diagonal of M; ``"amg"`` one V-cycle of a PyAMG smoothed-aggregation
        hierarchy of the sparse M (built once per beta / weights and reused by the CG iterations; symmetric
        Gauss-Seidel smoothing, so the preconditioner is symmetric). R carries the smoothness coupling that
        worsens with the grid, and the data term is a smooth (numerically low-rank) operator, so CG on
        ``M^-1 H`` needs about as many iterations as there are data-resolved modes, not a number growing with n.
        """
        key = (float(beta), self._wver)
        if self._pc is not None and self._pc[0] == key:
            return self._pc[1]
        dM = diagH0 + beta * self.reg_diag()
        if self.precond == "jacobi" or self.n < self.amg_min:
            Minv_d = 1.0 / dM

            def apply(res, free):
                z = Minv_d * res
                if free is not None:
                    z[~free] = 0.0
                return z
        else:
            import pyamg
            import scipy.sparse as sp

            M = (self.reg_matrix() * beta + sp.diags(diagH0)).tocsr()
            ml = pyamg.smoothed_aggregation_solver(M, symmetry="hermitian", max_coarse=500)
            self.n_amg += 1

            def apply(res, free):
                if free is not None:
                    res = np.where(free, res, 0.0)
                z = ml.solve(res, x0=np.zeros_like(res), tol=1e-30, maxiter=1, cycle="V")
                if free is not None:
                    z[~free] = 0.0
                return z
        self._pc = (key, apply)
        return apply

    # one projected Gauss-Newton-CG step -------------------------------------------
    def gn_step(self, x, r, beta, diagH0, cg_maxiter, cg_rtol, bounded):
        """One projected GN-CG step from x (r = A x - g); returns (x, r, cg iterations)."""
        d = x - self.mref
        grad = self.At(self.wd2 * r) + beta * (self.R(x) - self.ws * self.mref)
        if bounded:
            active = ((x <= self.lo) & (grad > 0)) | ((x >= self.hi) & (grad < 0))
            free = ~active
        else:
            free = None
        b = -grad
        if free is not None:
            b[~free] = 0.0
        Minv = self.preconditioner(beta, diagH0)
        p = np.zeros_like(x)
        res = b.copy()
        z = Minv(res, free)
        dirn = z.copy()
        rz = float(np.dot(res, z))
        bnorm = math.sqrt(float(np.dot(b, b)))
        it = 0
        if bnorm > 0:
            for it in range(1, cg_maxiter + 1):
                Ad = self.A(dirn)
                Hd = self.At(self.wd2 * Ad) + beta * self.R(dirn)
                if free is not None:
                    Hd[~free] = 0.0
                dHd = float(np.dot(dirn, Hd))
                if dHd <= 0:
                    break
                a = rz / dHd
                p += a * dirn
                res -= a * Hd
                if math.sqrt(float(np.dot(res, res))) <= cg_rtol * bnorm:
                    break
                z = Minv(res, free)
                rz_new = float(np.dot(res, z))
                dirn = z + (rz_new / rz) * dirn
                rz = rz_new
        del d
        if not bounded:
            xn = x + p
            return xn, self.A(xn) - self.g, it
        # projected backtracking (Armijo on the projected step)
        f0 = self.objective(x, r, beta)
        t = 1.0
        for _ in range(8):
            xn = np.clip(x + t * p, self.lo, self.hi)
            rn = self.A(xn) - self.g
            if self.objective(xn, rn, beta) <= f0 + 1e-4 * float(np.dot(grad, xn - x)):
                return xn, rn, it
            t *= 0.5
        return x, r, it


def _check_norms(norms):
    try:
        ns = tuple(float(v) for v in norms)
    except (TypeError, ValueError):
        raise ValueError(f"norms must be three numbers (p_s, q_x, q_z) in [0, 2], got {norms!r}") from None
    if len(ns) != 3 or not all(0.0 <= v <= 2.0 for v in ns):
        raise ValueError(f"norms must be three numbers (p_s, q_x, q_z) in [0, 2], got {norms!r}")
    return ns


def _check_alphas(alphas):
    try:
        a = tuple(float(v) for v in alphas)
    except (TypeError, ValueError):
        raise ValueError(f"alphas must be three numbers (alpha_s, alpha_x, alpha_z) >= 0, got {alphas!r}") from None
    if len(a) != 3 or not all(math.isfinite(v) and v >= 0 for v in a) or sum(a) == 0:
        raise ValueError(f"alphas must be three finite numbers (alpha_s, alpha_x, alpha_z) >= 0, not all zero, "
                         f"got {alphas!r}")
    return a


def _grid_of(s, x_edges, z_edges):
    prob = getattr(s.op, "problem", None)
    if x_edges is None or z_edges is None:
        if prob is None:
            raise ValueError("x_edges and z_edges (cell edges, m) are needed when op is not a gravbench operator")
        x_edges, z_edges = prob.grid.x_edges, prob.grid.z_edges
    geo = _r.cell_geometry(x_edges, z_edges)
    if geo["dx"].size * geo["dz"].size != s.n:
        raise ValueError(f"x_edges/z_edges describe {geo['dz'].size} x {geo['dx'].size} cells but the operator has "
                         f"{s.n} columns")
    return geo, prob


def _cell_weights(s, geo, prob, weighting, depth_beta, z0):
    if weighting == "sensitivity":
        return _r.sensitivity_weights(s.op, s.wd, geo["area"].ravel())
    if weighting == "depth":
        check_tol("depth_beta", depth_beta)
        top = float(np.min(prob.survey.z)) if prob is not None else 0.0   # a matrix with edges: stations at 0
        # the whole grid (active cells are embedded in it here): depth_weights' formula per layer
        w = np.repeat(layer_depth_weights(geo["zc"], geo["dz"][0], top, depth_beta, z0), geo["dx"].size)
        return w / w.max()
    if weighting == "none":
        return np.ones(s.n)
    raise ValueError(f"weighting must be one of ('sensitivity', 'depth', 'none'), got {weighting!r}")


def _one_blas_thread(f):
    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        with single_thread_blas():
            return f(*args, **kwargs)

    return wrapped


@_one_blas_thread
def refine(op, g, x0=None, *, sigma=None, rtol=None, maxiter=None, profile="default", norms=(0.0, 1.0, 1.0),
           alphas=None, mref=None, bounds=None, weighting=None, depth_beta=1.0, z0=None, chi=1.0, beta0=None,
           beta0_ratio=None, cooling=None, cg_maxiter=None, cg_rtol=None, gn_iter=None, max_irls=None,
           eps=None, eps_percentile=None, eps_cooling=None, eps_floor=None, irls_tol=None, max_beta=None,
           irls_scale=None, recipe=None, precond=None, x_edges=None, z_edges=None, seed=0):
    """Regularised inversion with smallness, x and z smoothness, lp norms by IRLS, bounds.

    Parameters
    ----------
    op : gravbench operator, LinearOperator or ndarray, shape (N, n)
        Forward operator, mGal per kg/m^3 (dense, matrix-free or FFT).
    g : array_like, shape (N,)
        Data, mGal.
    x0 : array_like, shape (n,) or (nz, nx), optional
        Start and (unless ``mref`` is given) reference model, kg/m^3 (zeros).
    sigma : float or array_like (N,)
        Noise standard deviation, mGal. Required: beta is set by the discrepancy principle.
    rtol : float, optional
        Checked (finite, >= 0) but not used: accepted for the common refiner signature (the stopping rules are
        the discrepancy band and IRLS).
    maxiter : int, optional
        Budget of Gauss-Newton steps over both phases (default ``max_beta + max_irls + 10``).
    profile : {"default", "paper"}
        Both use :data:`DEFAULTS` (the seed paper has no such method).
    norms : (p_s, q_x, q_z), each in [0, 2]
        Norms of the smallness and of the x and z gradient terms (2, 2, 2 = L2).
    alphas : (alpha_s, alpha_x, alpha_z), optional
        Term weights (>= 0), default (1, 1, 1); the gradient terms are also scaled by the smallest cell
        size squared, m^2.
    mref : array_like, optional
        Reference model, kg/m^3 (default: ``x0``, so ``cnn -> sparse`` regularises towards the CNN model).
    bounds : (lo, hi), optional
        Density bounds, kg/m^3 (scalars or per cell; None for open). Held exactly.
    weighting : {"sensitivity", "depth", "none"}
        Cell weighting of every term (default ``sensitivity``).
    depth_beta, z0 : float
        Depth weighting ``(z + z0)^(-depth_beta)``; z0 in m (default half the top cell), ``depth_beta`` 1.
    chi : float
        Discrepancy target factor: the target is ``chi2 = chi`` (1), accepted inside the success band.
    beta0 : float, optional
        Initial trade-off parameter (default from ``beta0_ratio``).
    beta0_ratio, cooling, cg_maxiter, cg_rtol, gn_iter, max_irls, eps_percentile, eps_cooling, eps_floor, irls_tol, max_beta
        Algorithm settings (see the module docstring; defaults in :data:`DEFAULTS`).
    precond : {"jacobi", "amg"}
        Preconditioner of the inner CG (default ``jacobi``; ``amg`` needs PyAMG and measured no fewer CG
        iterations on block data at n = 400, see docs/algorithms.md).
    irls_scale : {"eps", "gradient"}
        Scale of the IRLS weights (:func:`._regularization.irls_weights`): ``eps^(2-p)``, or SimPEG's
        ``irls_scaled`` rule (the term's largest gradient kept at its L2 value).
    eps : (eps_s, eps_x, eps_z), optional
        Fixed starting IRLS thresholds (kg/m^3 and kg/m^3 per m) instead of the percentile rule.
    recipe : {"default", "simpeg"}
        The IRLS schedule. ``"default"``: as in the module docstring. ``"simpeg"``: SimPEG's
        ``UpdateIRLS`` schedule (see :data:`SIMPEG_RECIPE`): thresholds start at the largest ``|m|`` (over the
        smallest cell size for the gradient terms) and are divided by 1.2 every iteration with no floor,
        the gradient terms are reweighted by the total gradient ``|D_x m| + |D_z m|`` (SimPEG's
        ``gradient_type="total"``), beta is moved half-way towards the discrepancy target only when chi2 is
        more than 10 % off it, and IRLS stops once ``phi_m`` changes by less than ``irls_tol`` (1e-4) with chi2
        within 10 % of the target, or after ``max_irls`` (150) iterations.
    x_edges, z_edges : array_like, optional
        Cell edges, m (taken from ``op.problem`` for gravbench operators).
    seed : int
        Seed of the random vector of the beta_0 estimate.

    Returns
    -------
    Result
        ``x`` (kg/m^3); ``niter`` = Gauss-Newton steps; ``residuals`` = ``||A x - g|| / ||g||`` per step;
        ``info``: ``beta``, ``chi2``, ``success`` (:func:`gravbench.metrics.is_success`), ``norms``,
        ``n_beta`` and ``n_irls`` (steps of each phase), ``n_cg`` (CG iterations), ``eps`` (final thresholds),
        ``phi_d``, ``phi_m``.
    """

    if profile not in ("default", "paper"):
        raise ValueError(f"profile must be one of ('default', 'paper'), got {profile!r}")
    recipe = "default" if recipe is None else recipe
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {recipe!r}")
    emb = _ActiveEmbedding.of(op) if x_edges is None and z_edges is None else None
    if emb is not None:
        # a ground surface: the smoothness terms need the grid, so run on the whole grid with the inactive
        # cells decoupled (no smoothness across air faces, zero columns of A, zero start and reference):
        # they stay exactly 0, and the active-cell values are returned
        kw = {k: v for k, v in locals().items() if k not in ("op", "g", "x0", "emb")}
        kw["mref"] = emb.embed(mref, "mref")
        kw["bounds"] = emb.embed_bounds(bounds)
        res = refine(emb, g, emb.embed(x0, "x0"), **kw)
        return dataclasses.replace(res, x=np.ascontiguousarray(res.x[emb.index]))
    D = DEFAULTS if recipe == "default" else {**DEFAULTS, **SIMPEG_RECIPE}
    if rtol is not None:
        check_tol("rtol", rtol)
    ns = _check_norms(norms)
    al = _check_alphas(D["alphas"] if alphas is None else alphas)
    weighting = D["weighting"] if weighting is None else weighting
    s = prepare(op, g, x0, sigma)
    if s.sigma is None:
        raise ValueError("sigma (the noise standard deviation, mGal) is required: beta is chosen by the "
                         "discrepancy principle")
    geo, prob = _grid_of(s, x_edges, z_edges)
    if geo["dx"].size < 2 or geo["dz"].size < 2:
        raise ValueError("the grid must have at least 2 cells in x and in z")
    beta0_ratio = check_tol("beta0_ratio", D["beta0_ratio"] if beta0_ratio is None else beta0_ratio, positive=True)
    cooling = float(D["cooling"] if cooling is None else cooling)
    if not cooling > 1:
        raise ValueError(f"cooling must be > 1, got {cooling}")
    cg_maxiter = check_int("cg_maxiter", cg_maxiter, D["cg_maxiter"], minimum=1)
    cg_rtol = check_tol("cg_rtol", D["cg_rtol"] if cg_rtol is None else cg_rtol, positive=True)
    gn_iter = check_int("gn_iter", gn_iter, D["gn_iter"], minimum=1)
    max_irls = check_int("max_irls", max_irls, D["max_irls"], minimum=0)
    max_beta = check_int("max_beta", max_beta, D["max_beta"], minimum=1)
    maxiter = check_int("maxiter", maxiter, max_beta + max_irls * gn_iter + 10, minimum=1)
    eps_percentile = float(D["eps_percentile"] if eps_percentile is None else eps_percentile)
    if not 0 < eps_percentile <= 100:
        raise ValueError(f"eps_percentile must be in (0, 100], got {eps_percentile}")
    eps_cooling = float(D["eps_cooling"] if eps_cooling is None else eps_cooling)
    if not eps_cooling >= 1:
        raise ValueError(f"eps_cooling must be >= 1, got {eps_cooling}")
    eps_floor = check_tol("eps_floor", D["eps_floor"] if eps_floor is None else eps_floor, positive=True)
    irls_tol = check_tol("irls_tol", D["irls_tol"] if irls_tol is None else irls_tol, positive=True)
    chi = check_tol("chi", chi, positive=True)
    irls_scale = D["irls_scale"] if irls_scale is None else irls_scale
    if irls_scale not in _r.IRLS_SCALES:
        raise ValueError(f"irls_scale must be one of {_r.IRLS_SCALES}, got {irls_scale!r}")
    precond = D["precond"] if precond is None else precond
    if precond not in PRECONDITIONERS:
        raise ValueError(f"precond must be one of {PRECONDITIONERS}, got {precond!r}")
    lo, hi, bounded = check_bounds(bounds, s.n)
    mref_v = s.x0.copy() if mref is None else np.asarray(mref, dtype=np.float64).ravel()
    if mref_v.shape != (s.n,) or not np.all(np.isfinite(mref_v)):
        raise ValueError(f"mref must be a finite model of {s.n} cells (kg/m^3), got shape {np.shape(mref)}")
    cellw = _cell_weights(s, geo, prob, weighting, depth_beta, z0)
    P = _Problem(s, geo, cellw, al, mref_v, lo, hi)
    P.precond = precond
    air = getattr(s.op, "inactive_mask", None)
    if air is not None:                     # no smoothness across a face that touches an inactive cell
        P.base_x[(air[:, 1:] | air[:, :-1]).ravel()] = 0.0
        P.base_z[(air[1:, :] | air[:-1, :]).ravel()] = 0.0
        P.update_weights()
    N = s.N
    target = chi * N
    lower = (2.0 - chi2_threshold(N)) * chi * N   # chi2 below 1 - 2 sqrt(2/N): over-fitted

    def ok(phi_d):
        return is_success(phi_d / N / chi, N) and phi_d >= lower

    x = np.clip(s.x0, lo, hi) if bounded else s.x0.copy()
    r = P.A(x) - s.g
    diagH0 = _r.weighted_column_sq_norms(s.op, s.wd)
    hist = [float(np.linalg.norm(r) / s.gnorm)]
    if beta0 is None:
        v = np.random.default_rng(seed).standard_normal(s.n)
        Av = P.A(v)
        beta = beta0_ratio * float(np.dot(P.wd2 * Av, Av)) / max(float(np.dot(v, P.R(v))), 1e-300)
    else:
        beta = check_tol("beta0", beta0, positive=True)
    steps = 0
    n_cg = 0
    n_beta = 0
    code = 1

    def step(x, r, beta):
        nonlocal steps, n_cg
        x, r, it = P.gn_step(x, r, beta, diagH0, cg_maxiter, cg_rtol, bounded)
        steps += 1
        n_cg += it
        hist.append(float(np.linalg.norm(r) / s.gnorm))
        return x, r

    def search_beta(x, r, beta, budget):
        """Beta cooling then regula falsi on log chi2 to land in the band (weights frozen)."""
        nonlocal n_beta
        hi_pt = lo_pt = None        # (log beta, log phi_d) with phi_d above / below target
        side = None
        t = math.log(target)
        for _ in range(budget):
            x, r = step(x, r, beta)
            n_beta += 1
            phi_d = float(np.dot(P.wd2 * r, r))
            if ok(phi_d) or steps >= maxiter:
                return x, r, beta, phi_d
            pt = (math.log(beta), math.log(phi_d))
            new_side = phi_d > target
            # Illinois rule: when the same end is replaced twice running, halve the other end's misfit
            # offset, so regula falsi cannot stall against one stale end
            if side is not None and new_side == side:
                if new_side and lo_pt is not None:
                    lo_pt = (lo_pt[0], t + 0.5 * (lo_pt[1] - t))
                elif not new_side and hi_pt is not None:
                    hi_pt = (hi_pt[0], t + 0.5 * (hi_pt[1] - t))
            side = new_side
            if new_side:
                hi_pt = pt
            else:
                lo_pt = pt
            if hi_pt is not None and lo_pt is not None:
                (b1, f1), (b2, f2) = hi_pt, lo_pt
                lb = b1 + (t - f1) * (b2 - b1) / (f2 - f1) if f2 != f1 else 0.5 * (b1 + b2)
                lb = min(max(lb, min(b1, b2) + 0.05 * abs(b2 - b1)), max(b1, b2) - 0.05 * abs(b2 - b1))
                beta = math.exp(lb)
            elif hi_pt is not None:
                beta /= cooling
            else:
                beta *= cooling
        return x, r, beta, float(np.dot(P.wd2 * r, r))

    x, r, beta, phi_d = search_beta(x, r, beta, max_beta)
    n_irls = 0
    eps_now = [None, None, None]
    sparse = any(v < 2.0 for v in ns)
    if sparse and max_irls > 0 and steps < maxiter:
        f = _terms(P, x)
        eps0 = []
        ell = float(min(geo["dx"].min(), geo["dz"].min()))
        for j in range(3):
            if eps is not None:
                e = float(eps[j])
            elif recipe == "simpeg":     # UpdateIRLS.start_irls: a percentile of |m|, over the length scale
                a = np.abs(f[0]) if j == 0 else np.abs(x) / ell
                e = float(np.percentile(a, eps_percentile))
                if not e > 0:
                    e = 1.0
            else:
                a = np.abs(f[j])
                e = float(np.percentile(a, eps_percentile)) if a.size else 1.0
                if not e > 0:
                    e = float(a.max()) if a.size and a.max() > 0 else 1.0
            eps0.append(e)
        eps_now = list(eps0)
        phim_prev = None
        for it in range(max_irls):
            if steps >= maxiter:
                break
            f = _terms(P, x)
            if recipe == "simpeg":
                f = (f[0],) + _total_gradient(f[1], f[2], P.nz, P.nx)
            for j, (rr, pj) in enumerate(zip((P.rs, P.rx, P.rz), ns)):
                _r.irls_weights(f[j], eps_now[j], pj, out=rr, scale=irls_scale)
            P.update_weights()
            if recipe == "simpeg":
                beta *= _simpeg_beta_factor(phi_d / target)
            else:
                beta *= min(max(target / phi_d, 0.25), 4.0)
            for _ in range(gn_iter):
                x, r = step(x, r, beta)
            n_irls += 1
            phi_d = float(np.dot(P.wd2 * r, r))
            phim = P.phi_m(x)
            changed = phim_prev is None or abs(phim - phim_prev) > irls_tol * max(abs(phim_prev), 1e-300)
            if recipe == "simpeg":
                if n_irls > 1 and not changed and abs(1.0 - phi_d / target) < 0.1:
                    code = 0
                    break
                phim_prev = phim
                eps_now = [e / eps_cooling for e in eps_now]
                continue
            at_floor = all(eps_now[j] <= eps0[j] * eps_floor * (1 + 1e-12) for j in range(3))
            if at_floor and not changed and ok(phi_d):
                code = 0
                break
            phim_prev = phim
            eps_now = [max(eps_now[j] / eps_cooling, eps0[j] * eps_floor) for j in range(3)]
    if not ok(phi_d) and steps < maxiter:
        x, r, beta, phi_d = search_beta(x, r, beta * min(max(target / phi_d, 0.25), 4.0), 6)
    chi2v = phi_d / N
    success = is_success(chi2v, N)
    if ok(phi_d):
        code = 4 if not sparse else (0 if code == 0 else 4)
    elif not np.all(np.isfinite(x)):
        code = 5
    else:
        code = 1
    info = {"beta": float(beta), "chi2_target": float(chi), "success": bool(success), "norms": list(ns),
            "alphas": list(al), "weighting": weighting, "n_beta": int(n_beta), "n_irls": int(n_irls),
            "n_cg": int(n_cg), "precond": precond, "n_amg": int(P.n_amg), "eps": [None if e is None else float(e) for e in eps_now],
            "phi_d": float(phi_d), "phi_m": float(P.phi_m(x)), "bounded": bool(bounded), "engine": "python+numba"}
    s.compiled = False
    return finish(s, x, code, steps, np.array(hist), len(hist), P.nA, P.nAt, info, r=r, push=False)


class _ActiveEmbedding(LinearOperator):
    """``A P^T`` on the whole grid for an operator on the active cells (``P``: keep the active cells).

    Columns of inactive cells are zero; ``inactive_mask`` (``(nz, nx)``) marks them.
    """

    @classmethod
    def of(cls, op):
        prob = getattr(op, "problem", None)
        idx = getattr(prob, "active_index", None)
        if idx is None or not isinstance(op, LinearOperator) or op.shape[1] != idx.size:
            return None
        return cls(op, prob, idx)

    def __init__(self, op, prob, idx):
        super().__init__(dtype=np.float64, shape=(op.shape[0], prob.n_cells))
        self.embedded = op
        self.problem = prob
        self.index = idx
        self.inactive_mask = ~np.asarray(prob.active)

    def embed(self, v, name):
        if v is None:
            return None
        a = np.asarray(v, dtype=np.float64).ravel()
        if a.size == self.shape[1]:
            a = a.copy()
            a[self.inactive_mask.ravel()] = 0.0
            return a
        if a.size != self.index.size:
            raise ValueError(f"{name} must hold the {self.index.size} active-cell values (kg/m^3), got "
                             f"shape {np.shape(v)}")
        out = np.zeros(self.shape[1])
        out[self.index] = a
        return out

    def embed_bounds(self, bounds):
        if bounds is None:
            return None
        lo, hi, _ = check_bounds(bounds, self.index.size)
        flo, fhi = np.zeros(self.shape[1]), np.zeros(self.shape[1])    # inactive cells: held at 0
        flo[self.index], fhi[self.index] = lo, hi
        return flo, fhi

    def _matvec(self, v):
        return np.asarray(self.embedded.matvec(np.ravel(v)[self.index]), dtype=np.float64)

    def _rmatvec(self, u):
        out = np.zeros(self.shape[1])
        out[self.index] = self.embedded.rmatvec(np.ravel(u))
        return out

    matvec = _matvec
    rmatvec = _rmatvec


def _simpeg_beta_factor(ratio, tol=0.1):
    """SimPEG's ``UpdateIRLS.adjust_cooling_schedule``: the factor beta is multiplied by, for ``ratio = phi_d / target``.

    No change within ``tol`` of the target; else half-way (in the mean of the ratio's inverse and 0.75 or 2)
    towards it.
    """
    if abs(1.0 - ratio) <= tol:
        return 1.0
    return 0.5 * (0.75 + 1.0 / ratio) if ratio > 1 else 0.5 * (2.0 + 1.0 / ratio)


def _total_gradient(fx, fz, nz, nx):
    """SimPEG's ``gradient_type="total"``: ``|D_x m|`` and ``|D_z m|`` averaged to the cells, summed, and
    averaged back onto the x and z faces (each average is the mean of the two neighbours, a missing
    neighbour counting as 0 on the way to the cells)."""
    ax = np.abs(fx).reshape(nz, nx - 1)
    az = np.abs(fz).reshape(nz - 1, nx)
    c = np.zeros((nz, nx))
    c[:, :-1] += 0.5 * ax
    c[:, 1:] += 0.5 * ax
    c[:-1, :] += 0.5 * az
    c[1:, :] += 0.5 * az
    return (0.5 * (c[:, 1:] + c[:, :-1])).ravel(), (0.5 * (c[1:, :] + c[:-1, :])).ravel()


def _terms(P, x):
    fx, fz = _r.gradients(x, P.nz, P.nx, P.hx, P.hz)
    return x - P.mref, fx, fz


def _variant(name):
    fixed = VARIANTS[name]

    def f(op, g, x0=None, *, sigma=None, rtol=None, maxiter=None, profile="default", **options):
        opts = dict(fixed)
        if options.get("recipe") == "simpeg":    # the recipe's own settings win over the variant's defaults
            opts = {k: v for k, v in opts.items() if k not in SIMPEG_RECIPE}
        opts.update(options)
        return refine(op, g, x0, sigma=sigma, rtol=rtol, maxiter=maxiter, profile=profile, **opts)

    f.__name__ = f"refine_{name}"
    f.__doc__ = (f"``{name}``: :func:`refine` with {', '.join(f'{k}={v}' for k, v in fixed.items())} "
                 f"(see the module docstring).")
    f.options_of = refine
    return f


refine_smooth = _variant("smooth")
refine_sparse = _variant("sparse")
refine_compact = _variant("compact")
refine_focusing = _variant("focusing")
