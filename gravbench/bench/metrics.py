"""Metrics of one inversion and summary statistics over many.

Every function takes plain arrays (densities in kg/m^3, data in mGal) and
returns plain floats, so other modules (reports, asv suites, tests) can import
them without pulling in the runner.

Notes
-----
For a true model ``rho``, an estimate ``rho_hat``, the observed (noisy) data
``g`` with per-datum noise standard deviations ``sigma`` and the forward
operator ``A`` (``N = len(g)`` data):

* model error            ``||rho - rho_hat||_2 / ||rho||_2``
* data misfit            ``||A rho_hat - g||_2 / ||g||_2``
* reduced chi-squared    ``chi2 = (1/N) sum_i ((A rho_hat - g)_i / sigma_i)^2``;
  the discrepancy principle's target is ``chi2 = 1`` (the true model has
  ``E[chi2] = 1`` and ``std[chi2] = sqrt(2/N)`` under Gaussian noise).
* success                ``|chi2 - 1| <= k sqrt(2/N)`` with ``k = 2``: the data are
  fitted to the noise level within two standard deviations of chi-squared
  (the Laloy et al. criterion "data RMSE at the noise level", made
  independent of ``N``). Two-sided: ``chi2`` below the band is
  **over-fitted** (the estimate fits the noise), above it **under-fitted**;
  neither is a success. Noise-free data (no ``sigma``) have no success,
  only a misfit. This is the one success rule of gravbench: latent search,
  ``compare``, Table I and the latent report all call :func:`is_success`
  (or :func:`fit_status` / :func:`success_band`, which share its band).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "model_error",
    "data_misfit",
    "chi2",
    "chi2_threshold",
    "success_band",
    "fit_status",
    "is_success",
    "evaluate",
    "summary",
    "summarize",
    "RECORD_KEYS",
    "METRIC_KEYS",
]

#: the keys of every JSON record written by :mod:`gravbench.bench.runner`, in order
RECORD_KEYS = ("n", "noise", "model", "provider", "refiner", "model_error", "data_misfit", "chi2", "success",
               "seconds", "n_matvec", "niter", "peak_mb", "error")
#: numeric keys summarised by :func:`summarize`
METRIC_KEYS = ("model_error", "data_misfit", "chi2", "seconds", "n_matvec", "niter", "peak_mb")


def _flat(name, a):
    a = np.asarray(a, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name} must not be empty")
    return a


def model_error(rho, rho_hat):
    """Relative model error ``||rho - rho_hat|| / ||rho||`` (dimensionless).

    Parameters
    ----------
    rho, rho_hat : array_like, kg/m^3
        True and estimated density models of the same size (any shape).

    Examples
    --------
    >>> model_error([1.0, 1.0], [1.0, 0.0])
    0.7071067811865475
    """
    r, h = _flat("rho", rho), _flat("rho_hat", rho_hat)
    if r.shape != h.shape:
        raise ValueError(f"rho_hat must have {r.size} values like rho, got {h.size}")
    nr = float(np.linalg.norm(r))
    if nr == 0.0:
        raise ValueError("rho: the true model is zero everywhere, so the relative model error is undefined")
    return float(np.linalg.norm(r - h)) / nr


def _predict(op, rho_hat):
    x = np.asarray(rho_hat, dtype=np.float64).ravel()
    if hasattr(op, "matvec"):
        return np.asarray(op.matvec(x), dtype=np.float64).ravel()
    return np.asarray(op, dtype=np.float64) @ x


def data_misfit(op, rho_hat, g):
    """Relative data misfit ``||A rho_hat - g|| / ||g||`` (dimensionless).

    Parameters
    ----------
    op : LinearOperator or ndarray
        The forward operator ``A`` (mGal per kg/m^3), anything with ``matvec`` or a dense matrix.
    rho_hat : array_like, kg/m^3
        Estimated model (flat or ``(nz, nx)``).
    g : array_like, mGal
        Observed data ``[gx..., gz...]``.
    """
    gg = _flat("g", g)
    ng = float(np.linalg.norm(gg))
    if ng == 0.0:
        raise ValueError("g: the data are zero everywhere, so the relative data misfit is undefined")
    return float(np.linalg.norm(_predict(op, rho_hat) - gg)) / ng


def chi2(residual, sigma):
    """Reduced chi-squared ``(1/N) sum (r_i / sigma_i)^2`` of a data residual (dimensionless).

    Parameters
    ----------
    residual : array_like, mGal
        ``A rho_hat - g``.
    sigma : float or array_like, mGal
        Noise standard deviation, a scalar or one value per datum; must be > 0.

    Returns
    -------
    float
        1.0 is the discrepancy-principle target.
    """
    r = _flat("residual", residual)
    s = np.broadcast_to(np.asarray(sigma, dtype=np.float64), r.shape)
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError("sigma must be finite and > 0 (mGal) for chi-squared")
    return float(np.mean((r / s) ** 2))


def success_band(n_data, k=2.0):
    """The success band on reduced chi-squared: ``(1 - k sqrt(2/N), 1 + k sqrt(2/N))``.

    Parameters
    ----------
    n_data : int
        Number of data ``N``.
    k : float
        Half-width in standard deviations of ``chi2`` (``sqrt(2/N)`` under Gaussian noise).

    Examples
    --------
    >>> lo, hi = success_band(200)
    >>> round(lo, 3), round(hi, 3)
    (0.8, 1.2)
    """
    if isinstance(n_data, bool) or int(n_data) != n_data or n_data < 1:
        raise ValueError(f"n_data must be an integer >= 1, got {n_data!r}")
    if not (math.isfinite(k) and k > 0):
        raise ValueError(f"k must be a finite number > 0, got {k!r}")
    h = k * math.sqrt(2.0 / n_data)
    return 1.0 - h, 1.0 + h


def chi2_threshold(n_data, k=2.0):
    """The upper edge of the success band: ``1 + k sqrt(2 / n_data)`` (see :func:`success_band`)."""
    return success_band(n_data, k)[1]


def fit_status(chi2_value, n_data, k=2.0):
    """``"success"``, ``"over-fitted"`` (chi2 below the band) or ``"under-fitted"`` (above it).

    ``None`` (noise-free data: no chi-squared) gives ``None``.
    """
    if chi2_value is None:
        return None
    c = float(chi2_value)
    if not math.isfinite(c):
        return "under-fitted"
    lo, hi = success_band(n_data, k)
    if c < lo:
        return "over-fitted"
    return "success" if c <= hi else "under-fitted"


def is_success(chi2_value, n_data, k=2.0):
    """True when the reduced chi-squared is at the noise level: ``|chi2 - 1| <= k sqrt(2/N)``.

    Two-sided (see :func:`success_band`): an over-fitted result (``chi2`` below
    the band) is not a success.

    Examples
    --------
    >>> is_success(1.0, 300), is_success(0.6, 300), is_success(1.6, 300)
    (True, False, False)
    """
    return fit_status(chi2_value, n_data, k) == "success"


def evaluate(op, rho, rho_hat, g, sigma=None):
    """All per-case metrics of one estimate.

    Parameters
    ----------
    op : LinearOperator or ndarray
        Forward operator ``A``.
    rho, rho_hat : array_like, kg/m^3
        True and estimated models.
    g : array_like, mGal
        The (noisy) data the inversion used.
    sigma : float or array_like or None, mGal
        Noise standard deviation; ``None`` or zeros (noise-free data) give
        ``chi2 = None`` and ``success = None``.

    Returns
    -------
    dict
        ``model_error``, ``data_misfit``, ``chi2``, ``success``.
    """
    gg = _flat("g", g)
    pred = _predict(op, rho_hat)
    ng = float(np.linalg.norm(gg))
    if ng == 0.0:
        raise ValueError("g: the data are zero everywhere, so the relative data misfit is undefined")
    out = {
        "model_error": model_error(rho, rho_hat),
        "data_misfit": float(np.linalg.norm(pred - gg)) / ng,
        "chi2": None,
        "success": None,
    }
    if sigma is not None:
        s = np.broadcast_to(np.asarray(sigma, dtype=np.float64), gg.shape)
        if np.all(s > 0):
            c = chi2(pred - gg, s)
            out["chi2"] = c
            out["success"] = is_success(c, gg.size)
    return out


def summary(values):
    """Mean, median and 90th percentile of the finite values (``None`` entries are dropped).

    Returns
    -------
    dict
        ``{"mean", "median", "p90", "count"}``; the statistics are ``None`` when no value is left.

    Examples
    --------
    >>> summary([1.0, 2.0, 3.0, None])["median"]
    2.0
    """
    a = np.array([float(v) for v in values if v is not None], dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"mean": None, "median": None, "p90": None, "count": 0}
    return {"mean": float(a.mean()), "median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
            "count": int(a.size)}


def summarize(records):
    """Group records by ``(n, provider, refiner)`` and summarise every metric.

    Parameters
    ----------
    records : iterable of dict
        Records with the keys :data:`RECORD_KEYS`.

    Returns
    -------
    list of dict
        One row per group, sorted by ``n`` then by mean model error (groups
        without a successful case last). Each row has ``n``, ``provider``,
        ``refiner``, ``cases``, ``errors`` (count), ``error`` (the first error
        message or ``None``), ``success_rate`` (over cases with a ``success``
        value, else ``None``), ``overfit`` (how many of those had chi2 below the
        success band, else ``None``) and, for each key in :data:`METRIC_KEYS`, a
        :func:`summary` dict.
    """
    groups = {}
    for r in records:
        groups.setdefault((int(r["n"]), r["provider"], r["refiner"]), []).append(r)
    rows = []
    for (n, prov, ref), rs in groups.items():
        ok = [r for r in rs if r.get("error") is None]
        errs = [r for r in rs if r.get("error") is not None]
        succ = [bool(r["success"]) for r in ok if r.get("success") is not None]
        # over-fitted: a chi2 below the success band (needs the record's data count; else
        # the band of the paper's n: N = 6n data)
        over = sum(1 for r in ok if r.get("success") is not None and r.get("chi2") is not None
                   and fit_status(r["chi2"], int(r.get("n_data") or 6 * int(r["n"]))) == "over-fitted")
        row = {"n": n, "provider": prov, "refiner": ref, "cases": len(rs), "errors": len(errs),
               "error": errs[0]["error"] if errs else None,
               "success_rate": (sum(succ) / len(succ)) if succ else None,
               "overfit": over if succ else None}
        for k in METRIC_KEYS:
            row[k] = summary(r.get(k) for r in ok)
        rows.append(row)

    def order(row):
        me = row["model_error"]["mean"]
        return (row["n"], me is None, me if me is not None else 0.0, row["provider"], row["refiner"])

    rows.sort(key=order)
    return rows
