"""Gaussian priors on density models, applied matrix-free.

Every prior is ``N(mean, C)`` on the flattened model (C order, ``nz * nx``
cells, kg/m^3) and offers the same four operations, none of which forms the
``(nz nx) x (nz nx)`` covariance unless asked to (:meth:`GaussianPrior.dense`):

``apply(V)``
    ``C @ V`` for ``V`` of shape ``(n_cells,)`` or ``(n_cells, k)``.
``sample(rng, k)``
    ``k`` exact zero-mean draws ``(n_cells, k)`` from ``N(0, C)``.
``variance()``
    ``diag(C)`` (``(n_cells,)``, (kg/m^3)^2).
``describe()``
    A JSON-able dict of what was used (kind, length scales, rank, ...).

Kinds
-----
:class:`KroneckerPrior`
    A stationary, separable kernel on the cell centres,
    ``k(dx, dz) = s^2 [k_x(dx) k_z(dz) + nugget * delta]``, with stated length
    scales. On a tensor grid ``C = s^2 (K_z kron K_x + nugget I)`` and
    ``C v = s^2 (K_z V K_x + nugget V)`` for ``V = v.reshape(nz, nx)``: two
    ``n x n`` matrix products per vector, O(n^3) instead of O(n^4), and the
    ``n x n`` factors are all that is stored. Exact samples and the diagonal
    come from the eigendecompositions of ``K_z`` and ``K_x``.
:class:`LowRankPrior`
    Estimated from a set of models (a data set's training split):
    ``C = U diag(lam) U^T + diag(d)``, the ``rank`` leading eigenpairs of the
    sample covariance plus the diagonal remainder ``d = max(var - diag(U
    diag(lam) U^T), floor)``, so ``diag(C)`` equals the per-cell sample
    variance. Applying it costs O(rank * n_cells) per vector.
:class:`DiagonalPrior`
    Independent cells: ``C = diag(var)``. The L2 family's Tikhonov penalty
    ``alpha ||W_m (x - x0)||^2`` is this prior with ``var = 1 / (alpha W_m^2)``
    (and ``mean = x0``) when the data are weighted by ``1 / sigma``.
"""

from __future__ import annotations

import math

import numpy as np

from .._linalg.blas import blas_threads

__all__ = ["GaussianPrior", "KroneckerPrior", "LowRankPrior", "DiagonalPrior", "KERNELS"]

#: one-dimensional correlation functions of the separable stationary kernel (``r = |d| / length``)
KERNELS = ("gaussian", "exponential", "matern32")


def _positive(name, v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {v!r}") from None
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    return f


def _corr_1d(d, length, kernel):
    r = np.abs(d) / length
    if kernel == "gaussian":
        return np.exp(-0.5 * r * r)
    if kernel == "exponential":
        return np.exp(-r)
    if kernel == "matern32":
        s = math.sqrt(3.0) * r
        return (1.0 + s) * np.exp(-s)
    raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")


class GaussianPrior:
    """Base class: ``N(mean, C)`` on models of shape ``shape`` (see the module docstring)."""

    kind = "base"

    def __init__(self, shape, mean=0.0):
        self.shape = (int(shape[0]), int(shape[1]))
        self.n = self.shape[0] * self.shape[1]
        m = np.asarray(mean, dtype=np.float64)
        if m.ndim == 0:
            m = np.full(self.n, float(m))
        m = m.reshape(-1)
        if m.shape != (self.n,):
            raise ValueError(f"mean must be a number or an array of {self.n} cells (shape {self.shape}), "
                             f"got shape {np.shape(mean)}")
        if not np.isfinite(m).all():
            raise ValueError("mean contains NaN or inf")
        self.mean = m

    # ---- to implement -----------------------------------------------------------------
    def _apply(self, V):  # V (n, k) -> C V
        raise NotImplementedError

    def _sample(self, rng, k):  # (n, k)
        raise NotImplementedError

    def variance(self):
        """``diag(C)``, (kg/m^3)^2, shape ``(n_cells,)``."""
        raise NotImplementedError

    def describe(self):
        return {"kind": self.kind}

    # ---- public -------------------------------------------------------------------------
    def apply(self, V):
        """``C @ V`` for ``V`` of shape ``(n_cells,)`` or ``(n_cells, k)`` (kg/m^3 per unit of V)."""
        V = np.asarray(V, dtype=np.float64)
        one = V.ndim == 1
        V2 = V[:, None] if one else V
        if V2.ndim != 2 or V2.shape[0] != self.n:
            raise ValueError(f"V must have shape ({self.n},) or ({self.n}, k), got {V.shape}")
        out = self._apply(V2)
        return out[:, 0] if one else out

    def sample(self, rng=None, k=1):
        """``k`` exact zero-mean draws from ``N(0, C)``, shape ``(n_cells, k)``; add :attr:`mean` for a model."""
        rng = np.random.default_rng(rng)
        if isinstance(k, bool) or int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        return self._sample(rng, int(k))

    def dense(self):
        """The full covariance (``n_cells x n_cells``): for tests and small grids only."""
        if self.n > 10_000:
            raise ValueError(f"dense() is for small grids (at most 10,000 cells), this prior has {self.n}")
        return self._apply(np.eye(self.n))

    def __repr__(self):
        d = ", ".join(f"{k}={v}" for k, v in self.describe().items() if k != "kind")
        return f"{type(self).__name__}({d})"


class KroneckerPrior(GaussianPrior):
    """Stationary separable kernel on the cell centres of a tensor grid.

    Parameters
    ----------
    grid : gravbench.Grid
        Cell centres ``x_centers``, ``z_centers`` (m).
    length_x, length_z : float
        Correlation lengths, m.
    std : float
        Prior standard deviation ``s`` of every cell, kg/m^3.
    mean : float or array
        Prior mean, kg/m^3 (a number or ``(nz, nx)``).
    kernel : {"gaussian", "exponential", "matern32"}
        One-dimensional correlation ``k(r)``, ``r = |d| / length``:
        ``exp(-r^2/2)``, ``exp(-r)``, ``(1 + sqrt(3) r) exp(-sqrt(3) r)``; the
        2D kernel is the product of the x and z factors.
    nugget : float
        Relative white-noise variance added to the diagonal (keeps ``C``
        well conditioned for smooth kernels), dimensionless.

    Notes
    -----
    ``C = s^2 (K_z kron K_x + nugget I)``, ``(K_x)_ij = k(x_i - x_j)``;
    ``C v = s^2 (K_z V K_x + nugget V)``. Samples: ``K = Q L Q^T`` per axis,
    ``x = s Q_z (sqrt(L_z L_x^T + nugget) * Z) Q_x^T`` with ``Z`` standard
    normal ``(nz, nx)`` (tiny negative eigenvalues of a Gaussian kernel are
    clipped to 0, in :meth:`apply` too, so draws, products and the diagonal
    describe one and the same matrix).
    """

    kind = "kronecker"

    def __init__(self, grid, length_x, length_z=None, std=1.0, mean=0.0, kernel="gaussian", nugget=1e-6):
        super().__init__(grid.shape, mean)
        self.length_x = _positive("length_x", length_x)
        self.length_z = _positive("length_z", length_x if length_z is None else length_z)
        self.std = _positive("std", std)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.kernel = kernel
        nug = float(nugget)
        if not (math.isfinite(nug) and nug >= 0):
            raise ValueError(f"nugget must be a finite number >= 0, got {nugget!r}")
        self.nugget = nug
        xc, zc = np.asarray(grid.x_centers, float), np.asarray(grid.z_centers, float)
        self._lz, self._Qz = self._eig(_corr_1d(zc[:, None] - zc[None, :], self.length_z, kernel))
        self._lx, self._Qx = self._eig(_corr_1d(xc[:, None] - xc[None, :], self.length_x, kernel))
        # the clipped factors, rebuilt from the eigenpairs, so apply() and sample() agree exactly
        self._Kz = (self._Qz * self._lz) @ self._Qz.T
        self._Kx = (self._Qx * self._lx) @ self._Qx.T

    @staticmethod
    def _eig(K):
        lam, Q = np.linalg.eigh(0.5 * (K + K.T))
        return np.clip(lam, 0.0, None), Q

    def _apply(self, V):
        nz, nx = self.shape
        k = V.shape[1]
        X = np.ascontiguousarray(V.T).reshape(k, nz, nx)
        Y = np.matmul(np.matmul(self._Kz, X), self._Kx)  # K_x is symmetric
        Y += self.nugget * X
        Y *= self.std ** 2
        return Y.reshape(k, -1).T

    def _sample(self, rng, k):
        nz, nx = self.shape
        root = np.sqrt(np.outer(self._lz, self._lx) + self.nugget)
        Z = rng.standard_normal((k, nz, nx)) * root
        X = np.matmul(np.matmul(self._Qz, Z), self._Qx.T) * self.std
        return X.reshape(k, -1).T

    def variance(self):
        d = (self._Qz ** 2) @ np.outer(self._lz, self._lx) @ (self._Qx ** 2).T
        return (self.std ** 2 * (d + self.nugget)).ravel()

    def describe(self):
        return {"kind": self.kind, "kernel": self.kernel, "length_x_m": self.length_x, "length_z_m": self.length_z,
                "std_kg_m3": self.std, "nugget": self.nugget, "mean_kg_m3": float(self.mean.mean())}


class LowRankPrior(GaussianPrior):
    """Empirical covariance of a set of models: leading eigenpairs plus a diagonal.

    Parameters
    ----------
    models : array (N, nz, nx)
        Training models, kg/m^3 (e.g. ``gravbench.data.standard("paper-50", "train").rho``).
    rank : int
        Number of leading eigenpairs kept.
    floor : float
        Lower bound of the diagonal remainder, as a fraction of the mean
        per-cell variance (keeps ``C`` positive definite).
    max_models : int, optional
        Use only the first ``max_models`` models.
    source : str
        A note on where the models came from (kept in :meth:`describe`).
    threads : int or None
        BLAS threads for the covariance and its eigendecomposition (``None``: library default).

    Notes
    -----
    ``S = X^T X / (N - 1)`` with ``X`` the centred models; ``S ~ U diag(lam) U^T``
    (rank ``r``); ``d = max(diag(S) - diag(U diag(lam) U^T), floor * mean(diag(S)))``;
    ``C = U diag(lam) U^T + diag(d)``. Samples ``U (sqrt(lam) z_1) + sqrt(d) z_2``.
    """

    kind = "lowrank"

    def __init__(self, models, rank=100, floor=1e-3, max_models=None, source="", threads=1):
        X = np.asarray(models, dtype=np.float64)
        if X.ndim != 3 or X.shape[0] < 2:
            raise ValueError(f"models must have shape (N, nz, nx) with N >= 2, got {X.shape}")
        if max_models is not None:
            X = X[:int(max_models)]
        if not np.isfinite(X).all():
            raise ValueError("models contain NaN or inf")
        N = X.shape[0]
        super().__init__(X.shape[1:], X.mean(axis=0))
        if isinstance(rank, bool) or int(rank) != rank or not (1 <= rank <= self.n):
            raise ValueError(f"rank must be an integer in [1, {self.n}], got {rank!r}")
        fl = float(floor)
        if not (math.isfinite(fl) and fl > 0):
            raise ValueError(f"floor must be a number > 0, got {floor!r}")
        Xc = X.reshape(N, -1) - self.mean
        with blas_threads(threads):
            S = (Xc.T @ Xc) / (N - 1)
            lam, U = np.linalg.eigh(S)
        lam, U = lam[::-1][:int(rank)], U[:, ::-1][:, :int(rank)]
        lam = np.clip(lam, 0.0, None)
        var = np.diag(S).copy()
        self.d = np.maximum(var - (U ** 2) @ lam, fl * var.mean())
        self.U, self.lam = U, lam
        self.rank, self.floor, self.n_models, self.source = int(rank), fl, int(N), str(source)
        self.explained = float(lam.sum() / max(var.sum(), 1e-300))

    def _apply(self, V):
        return self.U @ (self.lam[:, None] * (self.U.T @ V)) + self.d[:, None] * V

    def _sample(self, rng, k):
        z1 = rng.standard_normal((k, self.rank)).T  # draw sample by sample: the first draws do not depend on k
        z2 = rng.standard_normal((k, self.n)).T
        return self.U @ (np.sqrt(self.lam)[:, None] * z1) + np.sqrt(self.d)[:, None] * z2

    def variance(self):
        return (self.U ** 2) @ self.lam + self.d

    def describe(self):
        return {"kind": self.kind, "rank": self.rank, "n_models": self.n_models, "floor": self.floor,
                "explained_variance": round(self.explained, 4), "source": self.source}


class DiagonalPrior(GaussianPrior):
    """Independent cells: ``C = diag(var)``.

    Parameters
    ----------
    shape : tuple
        ``(nz, nx)``.
    var : float or array
        Per-cell variance, (kg/m^3)^2.
    mean : float or array
        Prior mean, kg/m^3.
    """

    kind = "diagonal"

    def __init__(self, shape, var, mean=0.0):
        super().__init__(shape, mean)
        v = np.asarray(var, dtype=np.float64)
        v = np.full(self.n, float(v)) if v.ndim == 0 else v.reshape(-1)
        if v.shape != (self.n,) or not np.isfinite(v).all() or (v <= 0).any():
            raise ValueError(f"var must be a positive number or {self.n} positive finite values, got shape {np.shape(var)}")
        self.var = v

    def _apply(self, V):
        return self.var[:, None] * V

    def _sample(self, rng, k):
        return np.sqrt(self.var)[:, None] * rng.standard_normal((k, self.n)).T

    def variance(self):
        return self.var.copy()

    def describe(self):
        return {"kind": self.kind, "std_mean_kg_m3": float(np.sqrt(self.var).mean())}
