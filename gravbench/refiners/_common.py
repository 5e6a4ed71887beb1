"""Input handling shared by the refiners: operator packing, x0, sigma, weights, results."""

from __future__ import annotations

import time
import weakref

import numpy as np

from .._linalg import check_int, check_tol, check_vector, pack_gravity, single_thread_blas
from ..forward import toeplitz_table
from ..geometry import COMPONENTS
from ..solvers._result import make_result

__all__ = ["Setup", "prepare", "finish", "column_sq_norms", "depth_weights", "layer_depth_weights", "model_weights2"]


class Setup:
    """Validated inputs of one refiner run."""

    __slots__ = ("op", "P", "compiled", "g", "x0", "sigma", "wd", "N", "n", "shape", "t0", "gnorm", "start")

    def call(self, kernel, *args):
        """Run ``kernel`` (a Twin) compiled or in Python on the packed operator, under its BLAS limit."""
        with single_thread_blas():
            return kernel(self.compiled, self.P, *args)


def _shape_of(op):
    prob = getattr(op, "problem", None)
    return tuple(prob.shape) if prob is not None else None


def prepare(op, g, x0=None, sigma=None):
    """Validate ``op``, ``g``, ``x0`` (flat or (nz, nx)) and ``sigma`` (scalar or per datum, mGal)."""
    from scipy.sparse.linalg import LinearOperator

    s = Setup()
    s.t0 = time.perf_counter()
    if isinstance(op, np.ndarray):
        if op.ndim != 2 or not np.issubdtype(op.dtype, np.floating) or not np.all(np.isfinite(op)):
            raise ValueError(f"op must be a finite 2D float matrix or a forward operator, got array {op.shape} "
                             f"{op.dtype}")
        op = np.ascontiguousarray(op, dtype=np.float64)
    elif not isinstance(op, LinearOperator):
        raise ValueError(f"op must be a gravbench forward operator (or any LinearOperator / 2D ndarray), "
                         f"got {type(op).__name__}")
    s.op = op
    s.N, s.n = op.shape
    s.shape = _shape_of(op)
    s.g = check_vector("g", g, s.N)
    s.gnorm = float(np.linalg.norm(s.g))
    if s.gnorm == 0.0:
        raise ValueError("g must not be all zeros (nothing to invert)")
    s.x0 = np.zeros(s.n) if x0 is None else check_vector("x0", x0, s.n, allow_2d=s.shape)
    if sigma is None:
        s.sigma = None
        s.wd = np.ones(s.N)
    else:
        sig = np.asarray(sigma, dtype=np.float64) if np.ndim(sigma) else np.full(s.N, float(check_tol(
            "sigma", sigma, positive=True)))
        if sig.shape != (s.N,):
            raise ValueError(f"sigma must be a scalar or have shape ({s.N},) (one std per datum, mGal), "
                             f"got {np.shape(sigma)}")
        if not np.all(np.isfinite(sig)) or np.any(sig <= 0):
            raise ValueError("sigma must be finite and > 0 everywhere (mGal)")
        s.sigma = sig
        s.wd = 1.0 / sig
    check_scale("g", s.g if s.sigma is None else s.g * s.wd)
    P = pack_gravity(op)
    s.P, s.compiled = (P, True) if P is not None else (op, False)
    s.start = time.perf_counter()
    return s


#: largest / smallest 2-norm of the (weighted) data a refiner accepts: its square (a misfit) must stay a
#: normal float64 with room for the sums over iterations (sqrt of the float64 range is ~1.3e154)
SCALE_LIMITS = (1e-140, 1e140)


def check_scale(name, v):
    """Refuse data whose 2-norm squared is not representable in float64 (ValueError naming ``name``): a
    refiner would otherwise overflow to inf / underflow to 0 and stop at x = 0 as if it had converged."""
    with np.errstate(over="ignore", under="ignore"):
        norm = float(np.linalg.norm(v))
    lo, hi = SCALE_LIMITS
    if not (lo <= norm <= hi):
        raise ValueError(f"{name} has 2-norm {norm:.3g} (weighted by 1/sigma when given), outside the representable range "
                         f"{lo:g} .. {hi:g} for its squares in float64: rescale the data (other units)")


def account(s, nA, nAt):
    """Push compiled-loop counts into the gravbench operator's counters (Python twins count themselves)."""
    if s.compiled and hasattr(s.op, "n_matvec"):
        s.op.n_matvec += int(nA)
        s.op.n_rmatvec += int(nAt)


def finish(s, x, code, niter, hist, nh, nA, nAt, info, r=None, push=True):
    """Build the Result; ``r`` (unweighted residual A x - g) adds misfit figures to ``info``.

    ``push``: add the compiled loop's counts to the operator's counters (False when already done)."""
    if push:
        account(s, nA, nAt)
    info = dict(info)
    info.setdefault("engine", "numba" if s.compiled else "python")
    if r is not None:
        info["misfit"] = float(np.linalg.norm(r) / s.gnorm)
        if s.sigma is not None:
            info["chi2"] = float(np.sum((r * s.wd) ** 2) / s.N)
    return make_result(x, code, niter, hist, nh, nA, nAt, s.t0, info)


def profile_settings(profiles, profile):
    """The settings dict ``profiles[profile]`` (ValueError naming the known profiles)."""
    if profile not in profiles:
        raise ValueError(f"profile must be one of {tuple(profiles)}, got {profile!r}")
    return profiles[profile]


def budget(prof, rtol, maxiter):
    """``(rtol, maxiter)`` of a run: the given values checked, the profile's where None."""
    return (check_tol("rtol", prof["rtol"] if rtol is None else rtol),
            check_int("maxiter", maxiter, prof["maxiter"], minimum=0))


def start_model(s, bounds):
    """``(x, lo, hi, bounded)``: a copy of ``s.x0`` (clipped onto ``bounds`` when given) and the bounds."""
    lo, hi, bounded = check_bounds(bounds, s.n)
    x = np.clip(s.x0, lo, hi) if bounded else s.x0.copy()
    return x, lo, hi, bounded


def hist_buffer(maxiter):
    return np.zeros(int(maxiter) + 2)


def discrepancy_target(s, chi):
    """``chi * N`` on the weighted misfit when sigma is known, else -1 (off)."""
    if s.sigma is None:
        return -1.0
    return float(check_tol("chi", chi, positive=True)) * s.N


# ----------------------------------------------------------------------------------
# model weights (vectors, never matrices)
# ----------------------------------------------------------------------------------
_COLNORM_CACHE = weakref.WeakKeyDictionary()


def column_sq_norms(op):
    """``sum_i A_ij^2`` for every cell j (mGal^2 per (kg/m^3)^2), without forming A when avoidable."""
    if isinstance(op, np.ndarray):
        return np.einsum("ij,ij->j", op, op)
    try:
        cached = _COLNORM_CACHE.get(op)
    except TypeError:
        cached = None
    if cached is not None:
        return cached
    A = getattr(op, "A", None)
    prob = getattr(op, "problem", None)
    if A is not None:
        out = np.einsum("ij,ij->j", A, A, dtype=np.float64)
    elif prob is not None and prob.per_cell is not None:
        h, k, D = toeplitz_table(prob.grid, prob.survey, prob.kernel)
        h2 = (h[component_index(prob)] ** 2).sum(axis=0)   # (k, nz, nx + D), the survey's components
        nz, nx, m = prob.grid.nz, prob.grid.nx, prob.survey.m
        acc = np.zeros((nz, nx))
        for s_ in range(m):
            off = D - s_ // k
            acc += h2[s_ % k, :, off:off + nx]
        out = active_of(prob, acc.ravel())
    elif prob is not None:
        A = prob.sensitivity()
        out = np.einsum("ij,ij->j", A, A)
    else:
        raise ValueError("weighting='sensitivity' needs a gravbench operator or a matrix; use weighting='depth' "
                         "(needs op.problem) or 'none' for this operator")
    try:
        _COLNORM_CACHE[op] = out
    except TypeError:
        pass
    return out


WEIGHTINGS = ("sensitivity", "depth", "none")


def depth_weights(prob, beta=1.0, z0=None):
    """Li & Oldenburg depth weights ``(d + z0)^(-beta)`` per unknown (active cell), not normalised.

    The one home of depth weighting (refiners, the ``depth-weighted`` provider, the
    regularised inversions and the deep image prior all call it). ``d`` is the
    cell-centre depth below the highest station, m; ``z0`` (m, >= 0) defaults to half
    the top cell's height. For 2D gravity the kernel decays as ``1/r``, hence
    ``beta = 1`` (the squared-weight exponent: ``W_m = (d + z0)^(-beta/2)`` in Li &
    Oldenburg's notation). On a flat survey at height ``h`` above the grid's top,
    ``d + z0`` is the depth below the grid's top plus ``h`` plus half a cell.
    """
    ze = np.asarray(prob.grid.z_edges, dtype=np.float64)
    w = layer_depth_weights(0.5 * (ze[:-1] + ze[1:]), float(ze[1] - ze[0]), float(np.min(prob.survey.z)), beta, z0)
    return active_of(prob, np.repeat(w, prob.grid.nx))


def layer_depth_weights(zc, dz_top, top, beta=1.0, z0=None):
    """:func:`depth_weights` per layer: ``((zc - top) + z0)^(-beta)`` for layer-centre depths ``zc``, m.

    ``top`` is the highest station's z (m, z down), ``dz_top`` the top layer's height
    (``z0`` defaults to half of it).
    """
    b = check_tol("beta", beta)
    z0 = 0.5 * float(dz_top) if z0 is None else check_tol("z0", z0)
    return ((np.asarray(zc, dtype=np.float64) - float(top)) + z0) ** (-b)


def model_weights2(op, n, weighting="sensitivity", beta=1.0, z0=None):
    """``W_m^2`` as a vector of length n, normalised to mean 1.

    sensitivity: ``W_m = diag(sqrt(sum_i A_ij^2))^(1/2)`` so ``W_m^2 = sqrt(sum_i A_ij^2)``;
    depth: :func:`depth_weights` (``W_m^2 = (d + z0)^(-beta)``, d the cell-centre depth below
    the highest station, m);
    none: ones.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    check_tol("beta", beta)  # checked for every weighting: a bad value is an error even where unused
    if weighting == "none":
        return np.ones(n)
    if weighting == "sensitivity":
        w2 = np.sqrt(column_sq_norms(op))
    else:
        prob = getattr(op, "problem", None)
        if prob is None:
            raise ValueError("weighting='depth' needs a gravbench operator (op.problem gives the cell depths)")
        w2 = depth_weights(prob, beta, z0)
    if w2.shape != (n,) or not np.all(np.isfinite(w2)) or np.any(w2 <= 0):
        raise ValueError(f"model weights for weighting={weighting!r} are not positive and finite; "
                         f"check the operator (a column of A is zero?) or z0/beta")
    return w2 / w2.mean()


def component_index(prob):
    """Indices (0 = gx, 1 = gz) of the problem's measured components in the full ``[gx; gz]`` layout."""
    comps = getattr(prob.survey, "components", COMPONENTS)
    return [COMPONENTS.index(c) for c in comps]


def active_of(prob, cells):
    """The active-cell entries of a per-cell vector over the whole grid (all of it without a ground)."""
    idx = getattr(prob, "active_index", None)
    return cells if idx is None else cells[idx]


def check_bounds(bounds, n):
    """``(lo, hi, bounded)``: vectors of length n (``-inf``/``inf`` when open)."""
    if bounds is None:
        return np.full(n, -np.inf), np.full(n, np.inf), False
    try:
        lo, hi = bounds
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be (lo, hi) (kg/m^3; None for open), got {bounds!r}") from None
    lo = np.full(n, -np.inf) if lo is None else np.broadcast_to(np.asarray(lo, dtype=np.float64).ravel()
                                                                 if np.ndim(lo) else float(lo), (n,)).copy()
    hi = np.full(n, np.inf) if hi is None else np.broadcast_to(np.asarray(hi, dtype=np.float64).ravel()
                                                               if np.ndim(hi) else float(hi), (n,)).copy()
    if np.any(np.isnan(lo)) or np.any(np.isnan(hi)) or np.any(lo > hi):
        raise ValueError("bounds must satisfy lo <= hi with no NaN")
    return lo, hi, True


#: bounds of the bounded variants (``pgd``, ``picg``) when none are given: the range of
#: gravbench's model families, kg/m^3.
DEFAULT_BOUNDS = (-1000.0, 1000.0)


def bounded_variant(refine, name, plain, what):
    """The bounded variant of a refiner: ``refine`` with ``bounds`` required (default :data:`DEFAULT_BOUNDS`).

    Parameters
    ----------
    refine : callable
        The refiner; it must accept ``bounds=(lo, hi)``.
    name, plain : str
        Registry names of the bounded variant and of ``refine`` (for the error message).
    what : str
        One line for the docstring (``"Projected gradient"``).
    """

    def refine_bounded(op, g, x0=None, *, sigma=None, rtol=None, maxiter=None, profile="default",
                       bounds=DEFAULT_BOUNDS, **options):
        if bounds is None:
            raise ValueError(f"bounds must be (lo, hi) for {name}; use {plain!r} for an unbounded run")
        return refine(op, g, x0, sigma=sigma, rtol=rtol, maxiter=maxiter, profile=profile, bounds=bounds, **options)

    refine_bounded.__doc__ = (f"{what}: :func:`refine` with ``bounds`` (default ``DEFAULT_BOUNDS``, kg/m^3).\n\n"
                              f"    Accepts every option of :func:`refine`.\n    ")
    refine_bounded.__module__ = refine.__module__
    refine_bounded.options_of = refine
    return refine_bounded


__all__ += ["DEFAULT_BOUNDS", "bounded_variant", "check_bounds", "check_int", "check_tol", "discrepancy_target",
           "hist_buffer", "account", "WEIGHTINGS", "profile_settings", "budget", "start_model", "component_index",
           "active_of"]
