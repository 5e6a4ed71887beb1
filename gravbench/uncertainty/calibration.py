"""Calibration of per-cell uncertainty: interval coverage, CRPS, reliability curves.

For a true model ``x`` and a predictive distribution ``F_i`` of every cell ``i``:

* **coverage** at nominal level ``p``: the fraction of cells whose central
  ``p`` interval contains ``x_i`` (``mean +- z_p std`` with
  ``z_p = Phi^-1((1 + p) / 2)`` for Gaussian marginals; the empirical
  ``(1 - p)/2`` and ``(1 + p)/2`` quantiles of samples otherwise). A
  calibrated method covers ``p`` of the cells.
* **CRPS** (continuous ranked probability score, kg/m^3; lower is better),
  ``CRPS(F, x) = int (F(t) - 1{t >= x})^2 dt = E|X - x| - E|X - X'| / 2``.
  Gaussian closed form (Gneiting & Raftery 2007):
  ``sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)]``, ``z = (x - mu) / sigma``;
  for ``S`` samples, the empirical distribution's CRPS, computed from the
  sorted samples in O(S log S).
* **reliability curve**: coverage against nominal level over a range of levels.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["coverage", "crps", "crps_gaussian", "crps_ensemble", "reliability", "LEVELS", "RELIABILITY_LEVELS"]

#: the nominal levels every report states
LEVELS = (0.68, 0.95)
#: the levels of a reliability curve
RELIABILITY_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.68, 0.7, 0.8, 0.9, 0.95, 0.99)


def _check_level(level):
    try:
        lv = float(level)
    except (TypeError, ValueError):
        raise ValueError(f"level must be a number in (0, 1), got {level!r}") from None
    if not (0.0 < lv < 1.0):
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    return lv


def _z(level):
    return float(ndtri(0.5 * (1.0 + level)))


def _arrays(truth, mean=None, std=None, samples=None):
    x = np.asarray(truth, dtype=np.float64)
    if mean is not None:
        mu = np.asarray(mean, dtype=np.float64)
        sd = np.asarray(std, dtype=np.float64)
        if mu.shape != x.shape or sd.shape != x.shape:
            raise ValueError(f"mean and std must have the shape of truth {x.shape}, got {mu.shape} and {sd.shape}")
        if (sd < 0).any() or not np.isfinite(sd).all():
            raise ValueError("std must be finite and >= 0")
        return x, mu, sd
    S = np.asarray(samples, dtype=np.float64)
    if S.ndim != x.ndim + 1 or S.shape[1:] != x.shape or S.shape[0] < 2:
        raise ValueError(f"samples must have shape (S >= 2,) + {x.shape}, got {S.shape}")
    return x, S


def coverage(truth, *, mean=None, std=None, samples=None, levels=LEVELS):
    """Fraction of cells whose central interval contains the truth, for each nominal level.

    Parameters
    ----------
    truth : array
        True values (any shape; several models may be stacked), kg/m^3.
    mean, std : array, optional
        Gaussian marginals (same shape as ``truth``), kg/m^3.
    samples : array (S, ...), optional
        Draws instead of ``mean``/``std``: empirical quantile intervals.
    levels : sequence of float
        Nominal levels in (0, 1).

    Returns
    -------
    dict
        ``{level: fraction}``.
    """
    lv = [_check_level(v) for v in np.atleast_1d(levels)]
    out = {}
    if mean is not None:
        x, mu, sd = _arrays(truth, mean, std)
        a = np.abs(x - mu)
        for v in lv:
            out[v] = float(np.mean(a <= _z(v) * sd))
        return out
    if samples is None:
        raise ValueError("give mean and std, or samples")
    x, S = _arrays(truth, samples=samples)
    for v in lv:
        lo, hi = np.quantile(S, [(1 - v) / 2, (1 + v) / 2], axis=0)
        out[v] = float(np.mean((x >= lo) & (x <= hi)))
    return out


def crps_gaussian(mean, std, truth):
    """Per-cell CRPS of Gaussian marginals ``N(mean, std^2)`` at ``truth`` (kg/m^3; arrays of one shape).

    ``std = 0`` gives ``|truth - mean|``.
    """
    x, mu, sd = _arrays(truth, mean, std)
    out = np.abs(x - mu)
    pos = sd > 0
    z = (x[pos] - mu[pos]) / sd[pos]
    out[pos] = sd[pos] * (z * (2.0 * ndtr(z) - 1.0) + 2.0 * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
                          - 1.0 / math.sqrt(math.pi))
    return out


def crps_ensemble(samples, truth):
    """Per-cell CRPS of the empirical distribution of ``samples`` (S, ...) at ``truth`` (...), kg/m^3.

    ``E|X - x| - E|X - X'| / 2`` over the ``S`` draws, with
    ``sum_ij |x_i - x_j| = 2 sum_k (2k - S + 1) x_(k)`` (sorted, 0-based ``k``).
    """
    x, S = _arrays(truth, samples=samples)
    n = S.shape[0]
    t1 = np.mean(np.abs(S - x[None]), axis=0)
    Ss = np.sort(S, axis=0)
    w = (2.0 * np.arange(n) - n + 1.0).reshape((n,) + (1,) * x.ndim)
    t2 = np.sum(w * Ss, axis=0) / (n * n)
    return t1 - t2


def crps(truth, *, mean=None, std=None, samples=None):
    """Mean CRPS over all cells (kg/m^3): Gaussian with ``mean``/``std``, empirical with ``samples``."""
    if mean is not None:
        return float(np.mean(crps_gaussian(mean, std, truth)))
    if samples is None:
        raise ValueError("give mean and std, or samples")
    return float(np.mean(crps_ensemble(samples, truth)))


def reliability(truth, *, mean=None, std=None, samples=None, levels=RELIABILITY_LEVELS):
    """``(levels, observed coverage)`` arrays: the reliability curve."""
    cov = coverage(truth, mean=mean, std=std, samples=samples, levels=levels)
    lv = np.array(list(cov.keys()))
    return lv, np.array([cov[v] for v in lv])
