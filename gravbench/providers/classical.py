"""Classical initial-guess providers: ``zero``, ``tikhonov`` and ``depth-weighted``.

All three need no training and work on any grid.

``tikhonov``
    The minimiser of :math:`\\|W_d(A\\rho - g)\\|^2 + \\lambda\\|\\rho\\|^2`
    (``W_d = diag(1/sigma)``), with :math:`\\lambda` from the discrepancy principle
    :math:`\\|W_d(A\\rho - g)\\|^2 = \\chi N` (``N`` data, ``chi = 1``); without
    ``sigma``, :math:`\\lambda` minimises generalised cross-validation (GCV). A thin
    wrapper: each model is ``gravbench.refiners.run("tikhonov", op, g, sigma=sigma,
    weighting="none")``, the refiners' data-space solver (one eigendecomposition of the
    ``N x N`` matrix :math:`W_d A A^T W_d` per operator and noise vector, cached).

``depth-weighted``
    Li & Oldenburg (1996) depth weighting: minimise
    :math:`\\|W_d(A\\rho - g)\\|^2 + \\lambda\\|W_z\\rho\\|^2` with
    :math:`W_z = \\mathrm{diag}((z_c + z_0)^{-\\beta/2})`, ``z_c`` the cell-centre
    depth below the grid's top. A 2D (line) source's field decays as ``1/r``, so the
    default is ``beta = 1``; ``z0`` defaults to half a cell height plus the height of the
    highest station above the grid's top. The same refiner with ``weighting="depth"``
    (the weights come from :func:`gravbench.refiners._common.depth_weights2`, their one
    home), on the dense operator when ``A`` fits in 256 MiB.

References
----------
Li, Y. & Oldenburg, D. W. (1996), 3-D inversion of magnetic data, Geophysics 61(2).
Li, Y. & Oldenburg, D. W. (1998), 3-D inversion of gravity data, Geophysics 63(1).
"""

from __future__ import annotations

import numpy as np

from .. import refiners
from .base import NotApplicable, Provider, check_real

__all__ = ["Zero", "Tikhonov", "DepthWeighted"]

_MAX_DENSE = 2**28  # bytes of A (float64) the "direct" engine (the dense operator) accepts


class Zero(Provider):
    """``rho0 = 0``: the start every classical refiner uses by default."""

    name = "zero"
    cost = "free (no operator products)"

    def __init__(self):
        pass

    def _batch(self, G, problem, sigma, seed):
        return np.zeros((G.shape[0],) + tuple(problem.shape))


class Tikhonov(Provider):
    """Tikhonov model, lambda by the discrepancy principle (GCV without sigma).

    Each model is one call of the ``tikhonov`` refiner (:mod:`gravbench.refiners.tikhonov`,
    the data-space solver; its eigendecomposition is cached per operator and noise vector).

    Parameters
    ----------
    engine : {"auto", "direct", "refiner"}
        The operator the refiner runs on: ``"direct"`` the dense matrix (up to
        256 MiB, else :class:`NotApplicable`), ``"refiner"`` the problem's ``auto``
        operator (FFT on regular surveys), ``"auto"`` the provider's default
        (``tikhonov``: the ``auto`` operator; ``depth-weighted``: dense when it fits).
        Both give the same model to rounding (tested).
    chi : float
        Discrepancy target factor: ``||W_d r||^2 = chi * N``.
    **refiner_options
        Further options of the ``tikhonov`` refiner (``rule``, ``alpha``).
    """

    name = "tikhonov"
    cost = "one N x N eigendecomposition per problem and noise vector, then O(N M) per model"
    _fixed = ("weighting", "chi", "beta", "z0")   # set by the provider, not by refiner_options

    def __init__(self, engine="auto", chi=1.0, **refiner_options):
        if engine not in ("auto", "direct", "refiner"):
            raise ValueError(f"engine must be 'auto', 'direct' or 'refiner', got {engine!r}")
        chi = check_real("chi", chi, positive=True)
        known = set(refiners.options("tikhonov")) - set(self._fixed) - {"sigma"}
        bad = sorted(set(refiner_options) - known)
        if bad:
            raise ValueError(f"unknown refiner option(s) {bad} for tikhonov; expected some of {sorted(known)}")
        self.engine = engine
        self.chi = chi
        self.refiner_options = refiner_options
        self._ops = {}

    def _options(self):
        """The refiner options that make this provider (its model weighting)."""
        return {"weighting": "none"}

    def _engine(self, problem):
        return "refiner" if self.engine == "auto" else self.engine

    def _operator(self, problem):
        eng = self._engine(problem)
        op = self._ops.get((problem, eng))
        if op is None:
            if eng == "direct":
                nbytes = 8 * problem.n_data * problem.n_active
                if nbytes > _MAX_DENSE:
                    raise NotApplicable(f"problem too large for the direct engine ({nbytes / 2**20:.0f} MiB "
                                        "for A); use engine='refiner'")
                op = problem.operator("dense")
            else:
                op = problem.operator()
            self._ops[(problem, eng)] = op
        return op

    def _batch(self, G, problem, sigma, seed):
        op = self._operator(problem)
        opts = {**self._options(), "chi": self.chi, **self.refiner_options}
        out = np.empty((G.shape[0], op.shape[1]))
        lams = np.empty(G.shape[0])
        for k in range(G.shape[0]):
            res = refiners.run("tikhonov", op, G[k], sigma=None if sigma is None else sigma[k], **opts)
            out[k] = np.asarray(res.x).ravel()
            lams[k] = res.info["alpha"]
        self.last_lambdas = lams   # the regularisation parameter per model (weights normalised to mean 1)
        return out


class DepthWeighted(Tikhonov):
    """Minimum-structure model with Li & Oldenburg depth weighting ``(z + z0)^(-beta/2)``.

    Parameters
    ----------
    beta : float
        Decay exponent of the weighting (1 for 2D gravity, whose kernel decays as 1/r).
    z0 : float, optional
        Depth offset, m, added to the cell-centre depth below the grid's top (default:
        half the top cell height plus the highest station's height above the grid's top).
    chi : float
        Discrepancy target factor.
    engine : {"auto", "direct", "refiner"}
        As for ``tikhonov``; ``"auto"`` is the dense operator when it fits in 256 MiB.
    """

    name = "depth-weighted"
    cost = "as tikhonov (one eigendecomposition per problem and noise vector)"

    def __init__(self, beta=1.0, z0=None, chi=1.0, engine="auto"):
        super().__init__(engine=engine, chi=chi)
        if not np.isfinite(beta) or beta < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        if z0 is not None and not (np.isfinite(z0) and z0 >= 0):
            raise ValueError(f"z0 must be a finite depth >= 0 in m, got {z0!r}")
        self.beta = float(beta)
        self.z0 = z0

    def _options(self):
        return {"weighting": "depth", "beta": self.beta, "z0": self.z0}

    def _engine(self, problem):
        if self.engine != "auto":
            return self.engine
        return "direct" if 8 * problem.n_data * problem.n_active <= _MAX_DENSE else "refiner"
