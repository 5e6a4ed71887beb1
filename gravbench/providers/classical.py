"""Classical initial-guess providers: ``zero``, ``tikhonov`` and ``depth-weighted``.

All three need no training and work on any grid.

``tikhonov``
    The data-space Tikhonov solution

    .. math:: \\rho = A^T (A A^T + \\lambda \\Sigma)^{-1} g,\\qquad \\Sigma = \\mathrm{diag}(\\sigma^2),

    i.e. the minimiser of :math:`\\|W_d(A\\rho - g)\\|^2 + \\lambda\\|\\rho\\|^2`, with
    :math:`\\lambda` from the discrepancy principle
    :math:`\\|W_d(A\\rho - g)\\|^2 = \\chi N` (``N`` data, ``chi = 1``). Without
    ``sigma``, :math:`\\lambda` minimises generalised cross-validation (GCV).
    With ``engine="refiner"`` the call is ``gravbench.refiners.run("tikhonov",
    op, g, sigma=sigma)`` (the solvers' implementation); ``engine="direct"``
    uses one eigendecomposition of the ``N x N`` matrix :math:`W_d A A^T W_d`
    per problem and noise level and solves every data vector of a batch with
    it (a scalar secular equation for :math:`\\lambda` per vector).

``depth-weighted``
    Li & Oldenburg (1996) depth weighting: minimise
    :math:`\\|W_d(A\\rho - g)\\|^2 + \\lambda\\|W_z\\rho\\|^2` with
    :math:`W_z = \\mathrm{diag}((z_c + z_0)^{-\\beta/2})`, ``z_c`` the cell-centre
    depth. A 2D (line) source's field decays as ``1/r``, so the default is
    ``beta = 1``; ``z0`` defaults to half a cell height plus the station height.
    Solved in data space like ``tikhonov`` with :math:`A W_z^{-1}`, the same
    :math:`\\lambda` rule.

References
----------
Li, Y. & Oldenburg, D. W. (1996), 3-D inversion of magnetic data, Geophysics 61(2).
Li, Y. & Oldenburg, D. W. (1998), 3-D inversion of gravity data, Geophysics 63(1).
"""

from __future__ import annotations

import numpy as np

from .base import NotApplicable, Provider, check_real

__all__ = ["Zero", "Tikhonov", "DepthWeighted", "dataspace_solve"]

_MAX_DENSE = 2**28  # bytes of A (float64) the direct engine accepts


class Zero(Provider):
    """``rho0 = 0``: the start every classical refiner uses by default."""

    name = "zero"
    cost = "free (no operator products)"

    def __init__(self):
        pass

    def _batch(self, G, problem, sigma, seed):
        return np.zeros((G.shape[0],) + tuple(problem.shape))


def _bisect_log(f, lo=-30.0, hi=30.0, iters=80):
    """Root of a monotone increasing ``f(t)`` on [lo, hi] by bisection (t = log lambda)."""
    flo, fhi = f(lo), f(hi)
    if flo >= 0:
        return lo
    if fhi <= 0:
        return hi
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) > 0:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def dataspace_solve(B, G, sigma=None, chi=1.0):
    """Data-space regularised solutions ``y`` for ``B`` (``N x M``) and data ``G`` (``(K, N)``).

    Minimises ``||W_d (B x - g)||^2 + lam ||x||^2`` for each row ``g`` with
    ``x = B^T W_d (K + lam I)^{-1} W_d g``, ``K = W_d B B^T W_d``; ``lam`` by the
    discrepancy principle (``||W_d r||^2 = chi N``) when ``sigma`` is given,
    else by GCV.

    Parameters
    ----------
    B : ndarray, shape (N, M)
    G : ndarray, shape (K, N)
    sigma : None or ndarray broadcastable to (K, N)
        Noise std per datum (mGal). Rows with different sigma are solved with
        separate eigendecompositions.

    Returns
    -------
    X : ndarray, shape (K, M)
    lams : ndarray, shape (K,)
    """
    K_, N = G.shape
    X = np.empty((K_, B.shape[1]))
    lams = np.empty(K_)
    if sigma is None:
        groups = {None: np.arange(K_)}
    else:
        S = np.broadcast_to(sigma, G.shape)
        groups = {}
        # rows with identical sigma share one decomposition
        keys = {}
        for k in range(K_):
            key = S[k].tobytes()
            keys.setdefault(key, []).append(k)
        groups = {key: np.array(v) for key, v in keys.items()}
    for key, rows in groups.items():
        w = np.ones(N) if key is None else 1.0 / np.broadcast_to(sigma, G.shape)[rows[0]]
        Bw = B * w[:, None]
        s, U = np.linalg.eigh(Bw @ Bw.T)
        s = np.clip(s, 0.0, None)
        for k in rows:
            y = U.T @ (w * G[k])
            y2 = y * y
            if key is not None:
                target = chi * N

                def f(t):  # misfit(lam) - target, increasing in lam
                    lam = np.exp(t)
                    return float(np.sum(y2 * (lam / (s + lam)) ** 2)) - target

                smax = max(float(s[-1]), 1e-300)
                t = _bisect_log(f, np.log(smax) - 40, np.log(smax) + 10)
            else:
                smax = max(float(s[-1]), 1e-300)
                ts = np.linspace(np.log(smax) - 35, np.log(smax) + 5, 161)

                def gcv(t):
                    lam = np.exp(t)
                    f_ = lam / (s + lam)
                    return float(np.sum(y2 * f_ * f_)) / float(np.sum(f_)) ** 2

                vals = [gcv(t) for t in ts]
                i = int(np.argmin(vals))
                lo, hi = ts[max(0, i - 1)], ts[min(len(ts) - 1, i + 1)]
                for _ in range(40):  # golden-section refinement
                    m1, m2 = lo + 0.382 * (hi - lo), lo + 0.618 * (hi - lo)
                    if gcv(m1) < gcv(m2):
                        hi = m2
                    else:
                        lo = m1
                t = 0.5 * (lo + hi)
            lam = np.exp(t)
            X[k] = Bw.T @ (U @ (y / (s + lam)))
            lams[k] = lam
    return X, lams


class _DenseCache:
    def __init__(self):
        self._A = {}

    def A(self, problem):
        A = self._A.get(problem)
        if A is None:
            nbytes = 8 * problem.n_data * problem.n_cells
            if nbytes > _MAX_DENSE:
                raise NotApplicable(
                    f"problem too large for the direct engine ({nbytes / 2**20:.0f} MiB for A); use engine='refiner'")
            A = self._A[problem] = problem.sensitivity()
        return A


def _refiner_available():
    try:
        from .. import refiners

        return "tikhonov" in refiners.names()
    except Exception:
        return False


class Tikhonov(Provider):
    """Data-space Tikhonov model, lambda by the discrepancy principle (GCV without sigma).

    Parameters
    ----------
    engine : {"auto", "direct", "refiner"}
        ``"refiner"`` calls ``gravbench.refiners.run("tikhonov", op, g,
        sigma=sigma, weighting="none")`` per data vector; ``"direct"`` solves
        a batch here with one eigendecomposition per noise level (dense A up
        to 256 MiB); ``"auto"`` uses the refiner when :mod:`gravbench.refiners`
        has it, else ``"direct"``. Both give the same model (tested).
    chi : float
        Discrepancy target factor: ``||W_d r||^2 = chi * N``.
    **refiner_options
        Passed to the refiner (``engine="refiner"`` only).
    """

    name = "tikhonov"
    cost = "one N x N eigendecomposition per problem and noise level, then O(N M) per model"

    def __init__(self, engine="auto", chi=1.0, **refiner_options):
        if engine not in ("auto", "direct", "refiner"):
            raise ValueError(f"engine must be 'auto', 'direct' or 'refiner', got {engine!r}")
        chi = check_real("chi", chi, positive=True)
        if refiner_options and engine == "direct":
            raise ValueError(f"refiner options {sorted(refiner_options)} need engine='refiner' or 'auto'")
        if refiner_options and _refiner_available():  # unknown names now, not at the first call
            from .. import refiners

            known = set(refiners.options("tikhonov")) - {"weighting", "chi", "sigma"}
            bad = sorted(set(refiner_options) - known)
            if bad:
                raise ValueError(f"unknown refiner option(s) {bad} for tikhonov; expected some of {sorted(known)}")
        self.engine = engine
        self.chi = chi
        self.refiner_options = refiner_options
        self._cache = _DenseCache()
        self._ops = {}

    def _weights(self, problem):
        return None

    def _engine(self, problem):
        if self.engine != "auto":
            return self.engine
        if self._weights(problem) is None and _refiner_available():
            return "refiner"
        return "direct"

    def _batch(self, G, problem, sigma, seed):
        eng = self._engine(problem)
        w = self._weights(problem)
        if eng == "refiner":
            if w is not None:
                raise ValueError("depth-weighted has no refiner engine; use engine='direct'")
            if not _refiner_available():
                raise ValueError("engine='refiner' needs gravbench.refiners with 'tikhonov'; use engine='direct'")
            from .. import refiners

            op = self._ops.get(problem)
            if op is None:
                op = self._ops[problem] = problem.operator()
            opts = {"weighting": "none", "chi": self.chi, **self.refiner_options}
            out = np.empty((G.shape[0], op.shape[1]))
            for k in range(G.shape[0]):
                s = None if sigma is None else sigma[k]
                out[k] = np.asarray(refiners.run("tikhonov", op, G[k], sigma=s, **opts).x).ravel()
            return out
        A = self._cache.A(problem)
        B = A if w is None else A / w[None, :]
        X, lams = dataspace_solve(B, G, sigma, chi=self.chi)
        self.last_lambdas = lams
        return X if w is None else X / w[None, :]


class DepthWeighted(Tikhonov):
    """Minimum-structure model with Li & Oldenburg depth weighting ``(z + z0)^(-beta/2)``.

    Parameters
    ----------
    beta : float
        Decay exponent of the weighting (1 for 2D gravity, whose kernel decays as 1/r).
    z0 : float, optional
        Depth offset, m (default: half the top cell height plus the mean station height).
    chi : float
        Discrepancy target factor.
    """

    name = "depth-weighted"
    cost = "as tikhonov (one eigendecomposition per problem and noise level)"

    def __init__(self, beta=1.0, z0=None, chi=1.0):
        super().__init__(engine="direct", chi=chi)
        if not np.isfinite(beta) or beta < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        if z0 is not None and not (np.isfinite(z0) and z0 >= 0):
            raise ValueError(f"z0 must be a finite depth >= 0 in m, got {z0!r}")
        self.beta = float(beta)
        self.z0 = z0

    def _weights(self, problem):
        grid = problem.grid
        zc = grid.z_centers - grid.z_edges[0]
        z0 = self.z0
        if z0 is None:
            sz = problem.survey.z   # with a ground surface, stations may sit below the grid's top: use the highest
            ref = np.min(sz) if problem.survey.ground is not None else np.mean(sz)
            z0 = 0.5 * float(grid.z_edges[1] - grid.z_edges[0]) + float(grid.z_edges[0] - ref)
        wz = (zc + z0) ** (-self.beta / 2.0)
        w = np.repeat(wz, grid.nx)  # C order: row k repeated nx times
        idx = problem.active_index
        return w if idx is None else w[idx]   # the unknowns are the active cells
