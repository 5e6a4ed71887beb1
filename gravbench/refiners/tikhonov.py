"""Tikhonov regularisation in data space, with alpha by discrepancy, GCV or the L-curve.

Minimises ``||W_d (A x - g)||^2 + alpha ||W_m (x - x0)||^2``. With
``B = W_d A`` and ``d = W_d (g - A x0)`` the minimiser is, in data space,

    (B W_m^-2 B^T + alpha I) y = d,      x = x0 + W_m^-2 B^T y,

a ``N x N`` system (``N = 2m`` data, small: 600 at n = 200) however large the
grid. ``K = B W_m^-2 B^T`` is built once (from ``op.A`` when dense, else with
``N`` ``A^T`` and ``N`` ``A`` applications, counted) and diagonalised,
``K = U diag(lam) U^T``; with ``c = U^T d`` every alpha costs O(N):

    ||B dx - d||^2 = sum (alpha c_i / (lam_i + alpha))^2
    ||W_m dx||^2   = sum lam_i c_i^2 / (lam_i + alpha)^2

Rules (Hansen, *Rank-Deficient and Discrete Ill-Posed Problems*, 1998, ch. 7):

* ``discrepancy`` (Morozov): the alpha with ``||W_d r||^2 = chi N`` (needs ``sigma``);
* ``gcv``: minimise ``||W_d r||^2 / trace(I - K (K + alpha I)^-1)^2``;
* ``lcurve``: the corner (maximum curvature) of ``(log ||W_d r||, log ||W_m dx||)``.
"""

from __future__ import annotations

import weakref

import numpy as np

from ._common import check_int, check_tol, finish, model_weights2, prepare

__all__ = ["refine", "RULES", "data_space_matrix", "clear_cache"]

RULES = ("discrepancy", "gcv", "lcurve")

_EIG_CACHE = weakref.WeakKeyDictionary()


def data_space_matrix(s, winv2):
    """``K = W_d A W_m^-2 A^T W_d`` (N x N) and the (matvec, rmatvec) counts it cost."""
    wd = s.wd
    A = s.op if isinstance(s.op, np.ndarray) else getattr(s.op, "A", None)
    if A is not None:
        C = np.asarray(A, dtype=np.float64) * wd[:, None]
        K = (C * winv2[None, :]) @ C.T
        return 0.5 * (K + K.T), 0, 0
    N = s.N
    K = np.empty((N, N))
    e = np.zeros(N)
    for i in range(N):
        e[i] = wd[i]
        t = np.asarray(s.op.rmatvec(e), dtype=np.float64) * winv2
        K[:, i] = wd * np.asarray(s.op.matvec(t), dtype=np.float64)
        e[i] = 0.0
    return 0.5 * (K + K.T), N, N


def _eig(s, winv2, weighting):
    key = (weighting, s.wd.tobytes(), winv2.tobytes())
    try:
        per_op = _EIG_CACHE.setdefault(s.op, {})
    except TypeError:
        per_op = {}
    hit = per_op.get(hash(key))
    if hit is not None:
        return hit[0], hit[1], 0, 0
    K, nA, nAt = data_space_matrix(s, winv2)
    lam, U = np.linalg.eigh(K)
    lam = np.maximum(lam, 0.0)
    if len(per_op) > 4:
        per_op.clear()
    per_op[hash(key)] = (lam, U)
    return lam, U, nA, nAt


def clear_cache():
    """Forget the cached eigen-decompositions (each is kept per operator and weights for reuse)."""
    _EIG_CACHE.clear()


def _res2(a, lam, c):
    return np.sum((a * c / (lam + a)) ** 2)


def _curves(alphas, lam, c):
    a = alphas[:, None]
    f = a / (lam[None, :] + a)
    res2 = np.sum((f * c[None, :]) ** 2, axis=1)
    mod2 = np.sum(lam[None, :] * (c[None, :] / (lam[None, :] + a)) ** 2, axis=1)
    return res2, mod2, np.sum(f, axis=1)


def choose_alpha(rule, lam, c, target=None, n_grid=400):
    """alpha by ``rule`` for eigenvalues ``lam`` and projected data ``c = U^T d``."""
    from scipy.optimize import brentq, minimize_scalar

    lmax = float(lam.max())
    if lmax <= 0:
        raise ValueError("the data-space matrix is zero: the operator does not see the model")
    lo, hi = lmax * 1e-14, lmax * 1e2
    if rule == "discrepancy":
        f = lambda la: _res2(10.0 ** la, lam, c) - target  # noqa: E731
        if f(np.log10(hi)) <= 0:       # target unreachable even at huge alpha: x stays at x0
            return hi, "target above ||d||^2: alpha at the top of the range"
        if f(np.log10(lo)) >= 0:       # cannot fit to the target: least damping
            return lo, "target below the attainable misfit: alpha at the bottom of the range"
        return 10.0 ** brentq(f, np.log10(lo), np.log10(hi), xtol=1e-10), ""
    grid = np.logspace(np.log10(lo), np.log10(lmax), n_grid)
    res2, mod2, tr = _curves(grid, lam, c)
    if rule == "gcv":
        N = lam.size
        gcv = res2 / (tr ** 2 + 1e-300)
        k = int(np.argmin(gcv))
        a0, a1 = grid[max(k - 1, 0)], grid[min(k + 1, n_grid - 1)]

        def G(la):
            a = 10.0 ** la
            ff = a / (lam + a)
            return np.log(np.sum((ff * c) ** 2) / np.sum(ff) ** 2)

        if a1 > a0:
            out = minimize_scalar(G, bounds=(np.log10(a0), np.log10(a1)), method="bounded",
                                  options={"xatol": 1e-8})
            return 10.0 ** out.x, ""
        return grid[k], f"N={N}"
    # L-curve: maximum curvature of (log rho, log eta) parametrised by log alpha
    x = 0.5 * np.log(res2 + 1e-300)
    y = 0.5 * np.log(mod2 + 1e-300)
    t = np.log(grid)
    dx, dy = np.gradient(x, t), np.gradient(y, t)
    ddx, ddy = np.gradient(dx, t), np.gradient(dy, t)
    kappa = (dx * ddy - ddx * dy) / np.power(dx * dx + dy * dy + 1e-300, 1.5)
    inner = slice(2, n_grid - 2)
    k = int(np.argmax(kappa[inner])) + 2
    return grid[k], ""


def refine(op, g, x0=None, *, sigma=None, rtol=None, maxiter=None, profile="default", rule=None, alpha=None,
           chi=1.0, weighting="sensitivity", beta=1.0, z0=None):
    """Data-space Tikhonov inversion with an automatic regularisation parameter.

    Parameters
    ----------
    op : gravbench operator, LinearOperator or ndarray, shape (N, n)
        Forward operator, mGal per kg/m^3.
    g : array_like, shape (N,)
        Data, mGal.
    x0 : array_like, shape (n,) or (nz, nx), optional
        Reference / starting model, kg/m^3 (zeros): the solution is regularised towards it.
    sigma : float or array_like (N,), optional
        Noise std, mGal (weights ``W_d = 1/sigma``); needed by ``rule="discrepancy"``.
    rtol, maxiter : ignored
        Accepted so every refiner takes the same call (a direct method: no iterations).
    profile : {"default"}
    rule : {"discrepancy", "gcv", "lcurve"}, optional
        Parameter choice; default ``discrepancy`` when ``sigma`` is given, else ``gcv``.
    alpha : float, optional
        Fixed regularisation parameter (skips the rule).
    chi : float
        Discrepancy target ``||W_d r||^2 = chi N``.
    weighting : {"sensitivity", "depth", "none"}
        Model weights ``W_m`` (vectors), as in ICG.
    beta, z0 : float
        Depth weighting ``(d + z0)^(-beta)`` (d the cell-centre depth below the highest
        station, m; z0 default half the top cell), see :func:`gravbench.refiners._common.depth_weights`.

    Returns
    -------
    Result
        ``niter = 0``; ``info``: ``alpha``, ``rule``, ``lam_min``, ``lam_max`` (eigenvalues of K),
        ``cached`` (True when K's eigen-decomposition was reused from an earlier call with the
        same operator, sigma and weights: only then does a call cost 2 A + 1 A^T).
    """
    if profile not in ("default", "paper"):
        raise ValueError(f"profile must be one of ('default', 'paper'), got {profile!r}")
    if rtol is not None:  # unused by a direct method, but a bad value is still the caller's error
        check_tol("rtol", rtol)
    if maxiter is not None:
        check_int("maxiter", maxiter, 0, minimum=0)
    check_tol("chi", chi, positive=True)
    s = prepare(op, g, x0, sigma)
    if rule is None:
        rule = "discrepancy" if s.sigma is not None else "gcv"
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if rule == "discrepancy" and s.sigma is None and alpha is None:
        raise ValueError("rule='discrepancy' needs sigma (the noise std, mGal); use rule='gcv' or 'lcurve'")
    w2 = model_weights2(s.op, s.n, weighting, beta, z0)
    winv2 = 1.0 / w2
    lam, U, nA, nAt = _eig(s, winv2, weighting)
    cached = nA == 0 and nAt == 0 and getattr(s.op, "A", None) is None and not isinstance(s.op, np.ndarray)
    r0 = (s.op @ s.x0 if isinstance(s.op, np.ndarray) else np.asarray(s.op.matvec(s.x0))) - s.g
    nA += 1
    d = -s.wd * r0
    c = U.T @ d
    note = ""
    if alpha is None:
        target = chi * s.N if s.sigma is not None else None
        alpha, note = choose_alpha(rule, lam, c, target)
    else:
        alpha = check_tol("alpha", alpha, positive=True)
        rule = "fixed"
    y = U @ (c / (lam + alpha))
    if isinstance(s.op, np.ndarray):
        dx = winv2 * (s.op.T @ (s.wd * y))
        r = s.op @ (s.x0 + dx) - s.g
    else:
        dx = winv2 * np.asarray(s.op.rmatvec(s.wd * y))
        r = np.asarray(s.op.matvec(s.x0 + dx)) - s.g
    nAt += 1
    nA += 1
    x = s.x0 + dx
    hist = np.array([np.linalg.norm(r0) / s.gnorm, np.linalg.norm(r) / s.gnorm])
    code = 0 if np.all(np.isfinite(x)) else 5
    info = {"alpha": float(alpha), "rule": rule, "weighting": weighting, "lam_min": float(lam.min()),
            "lam_max": float(lam.max()), "cached": bool(cached)}
    if note:
        info["note"] = note
    s.compiled = False
    info["engine"] = "numpy"
    # the operator counted its own products when it is a LinearOperator; only report ours
    return finish(s, x, code, 0, hist, 2, nA, nAt, info, r=r)
