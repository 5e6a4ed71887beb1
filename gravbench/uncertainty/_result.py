"""The one result type of every uncertainty method."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from .calibration import _check_level, _z

__all__ = ["UncertaintyResult"]


@dataclass(frozen=True, eq=False)
class UncertaintyResult:
    """A posterior (or predictive) summary of one data vector.

    Attributes
    ----------
    mean : ndarray (nz, nx)
        Posterior mean, kg/m^3.
    std : ndarray (nz, nx)
        Per-cell posterior standard deviation, kg/m^3.
    samples : ndarray (S, nz, nx)
        Posterior draws, kg/m^3 (``S = 0`` when none were asked for).
    method : str
        ``"linear-gaussian"``, ``"pcn-latent"``, ...
    gaussian : bool
        ``True`` when ``mean`` and ``std`` define the exact (Gaussian) marginal
        of every cell, so intervals are ``mean +- z std``; ``False`` when
        intervals must come from the samples' quantiles.
    options : dict
        What was used: prior, noise, sampler, chain settings (JSON-able).
    info : dict
        Diagnostics: converged, acceptance rate, iterations, ...
    seconds : float
        Wall time of the call, s.
    n_matvec, n_rmatvec : int
        Forward and adjoint operator products spent.
    """

    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray
    method: str
    gaussian: bool
    options: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    seconds: float = 0.0
    n_matvec: int = 0
    n_rmatvec: int = 0

    def interval(self, level=0.95):
        """Central per-cell interval ``(lo, hi)`` with nominal coverage ``level`` (kg/m^3).

        Gaussian results give ``mean +- z std``; sample-based results the
        empirical ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles.
        """

        lv = _check_level(level)
        if self.gaussian:
            z = _z(lv)
            return self.mean - z * self.std, self.mean + z * self.std
        if self.samples.shape[0] < 2:
            raise ValueError("a sample-based result needs at least 2 samples for an interval")
        q = np.quantile(self.samples, [(1 - lv) / 2, (1 + lv) / 2], axis=0)
        return q[0], q[1]
