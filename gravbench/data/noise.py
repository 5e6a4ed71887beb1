"""Noise models for gravity data: Gaussian, relative to a peak or to each datum, plus a floor.

The standard deviation of datum ``j`` of sample ``i`` (mGal) is

* ``model="peak"`` (default): ``sigma = level * max_s |g_c(i, s)| + floor``,
  where the peak is taken per sample over the stations of the datum's
  component ``c`` (gx or gz separately);
* ``model="datum"``: ``sigma = level * |g(i, j)| + floor``;

(the relative part and the floor add, as SimPEG's ``relative * |d| + floor``
uncertainties). The noisy data are ``g = g_clean + sigma * e`` with standard
normals ``e`` drawn from a stream keyed by ``(noise_seed, sample index)``, so
noise is independent of the model draws, of chunking and of thread counts,
and the same models can be re-noised with another seed or level.
"""

from __future__ import annotations

import math

import numpy as np

from .families import _check_seed, standard_normals

__all__ = ["NOISE_MODELS", "noise_sigma", "noisy"]

NOISE_MODELS = ("peak", "datum")


def _check(level, floor, model):
    if model not in NOISE_MODELS:
        raise ValueError(f"noise model must be one of {NOISE_MODELS}, got {model!r}")
    for name, v in (("noise", level), ("noise_floor", floor)):
        try:
            fv = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number >= 0, got {v!r}") from None
        if not (math.isfinite(fv) and fv >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return float(level), float(floor)


def noise_sigma(g_clean, level=0.01, floor=0.0, model="peak", n_components=2):
    """Noise standard deviations in mGal, the shape of ``g_clean`` (``(N, n_data)`` or ``(n_data,)``).

    Parameters
    ----------
    g_clean : array (N, n_data)
        Clean data in mGal: ``n_components`` blocks of ``m`` stations (``[gx..., gz...]`` for 2).
    level : float
        Relative noise level (0.01 = 1 %).
    floor : float
        Absolute floor in mGal, added to the relative part.
    model : {"peak", "datum"}
        Relative to each component's peak (per sample) or to each datum.
    n_components : {1, 2}
        Number of component blocks in a data vector (``len(survey.components)``; 2 = gx and gz).
    """
    level, floor = _check(level, floor, model)
    if n_components not in (1, 2):
        raise ValueError(f"n_components must be 1 or 2 (len(survey.components)), got {n_components!r}")
    g = np.asarray(g_clean, dtype=np.float64)
    one = g.ndim == 1
    g2 = np.atleast_2d(g)
    nc = int(n_components)
    if g2.shape[-1] % nc:
        raise ValueError(f"g_clean must hold {nc} component blocks of m stations (a length divisible by {nc}), "
                         f"got length {g2.shape[-1]}")
    m = g2.shape[-1] // nc
    if model == "peak":
        peak = np.abs(g2.reshape(g2.shape[0], nc, m)).max(axis=2)  # (N, nc)
        sig = np.repeat(level * peak, m, axis=1) + floor
    else:
        sig = level * np.abs(g2) + floor
    return sig[0] if one else sig


def noisy(g_clean, index, level=0.01, floor=0.0, model="peak", seed=0, n_components=2):
    """Noisy data and their standard deviations: ``(g, sigma)``, both ``(N, n_data)`` float64 mGal.

    ``index`` (N,) gives each row's global sample index; row ``i`` draws its
    normals from the stream ``(seed, index[i])``; ``n_components`` as in :func:`noise_sigma`.
    """
    seed = _check_seed(seed)
    g = np.atleast_2d(np.asarray(g_clean, dtype=np.float64))
    index = np.asarray(index, dtype=np.int64)
    if index.shape != (g.shape[0],):
        raise ValueError(f"index must have shape ({g.shape[0]},), got {index.shape}")
    sigma = noise_sigma(g, level, floor, model, n_components)
    if float(level) == 0.0 and float(floor) == 0.0:
        return g.copy(), sigma
    e = standard_normals(seed, index, g.shape[1])
    return g + sigma * e, sigma
