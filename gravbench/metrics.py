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
    "model_errors",
    "chi2s",
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
    "GRAVITY_KEYS",
    "excess_mass",
    "mass_error",
    "anomaly_centroid",
    "centroid_errors",
    "depth_error_profile",
    "gravity_metrics",
]

#: the keys of every JSON record written by :mod:`gravbench.bench.runner`, in order
RECORD_KEYS = ("n", "noise", "model", "provider", "refiner", "model_error", "data_misfit", "chi2", "success",
               "seconds", "n_matvec", "niter", "peak_mb", "error", "status", "reason", "schema",
               "family", "mass_error", "x_centroid_error", "z_centroid_error", "depth_error", "settings")
#: numeric keys summarised by :func:`summarize`
METRIC_KEYS = ("model_error", "data_misfit", "chi2", "seconds", "n_matvec", "niter", "peak_mb", "mass_error",
               "x_centroid_error", "z_centroid_error")


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


def model_errors(rho, rho_hat):
    """Per-sample relative model errors ``||rho_k - rho_hat_k|| / ||rho_k||`` of a batch (dimensionless).

    Parameters
    ----------
    rho, rho_hat : array_like, shape (k, ...), kg/m^3
        True and estimated models, one per row (each row any shape, same size).

    Returns
    -------
    ndarray, shape (k,)
        A zero true model gives ``||rho_hat_k|| / 1e-300`` (huge), not NaN.
    """
    b = np.asarray(rho, dtype=np.float64)
    k = len(b)
    b = b.reshape(k, -1)
    a = np.asarray(rho_hat, dtype=np.float64).reshape(k, -1)
    if a.shape != b.shape:
        raise ValueError(f"rho_hat must hold {k} models of {b.shape[1]} values like rho, got shape {np.shape(rho_hat)}")
    return np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(b, axis=1), 1e-300)


def chi2s(residuals, sigma):
    """Per-sample reduced chi-squared ``mean((r_k / sigma)^2)`` of a batch of residuals, shape ``(k, N)`` -> ``(k,)``.

    ``sigma`` (mGal, > 0): a scalar, one value per datum ``(N,)`` or per sample and datum ``(k, N)``.
    """
    r = np.asarray(residuals, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"residuals must have shape (k, N), got {r.shape}")
    s = np.asarray(sigma, dtype=np.float64)
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError("sigma must be finite and > 0 (mGal) for chi-squared")
    return np.mean((r / s) ** 2, axis=1)


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
        message or ``None``), ``skipped`` (count of cases skipped by design, ``status="skipped"``),
        ``reason`` (the first skip reason or ``None``), ``success_rate`` (over cases with a ``success``
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
        skips = [r for r in rs if r.get("status") == "skipped"]
        succ = [bool(r["success"]) for r in ok if r.get("success") is not None]
        # over-fitted: a chi2 below the success band (needs the record's data count; else
        # the band of the paper's n: N = 6n data)
        over = sum(1 for r in ok if r.get("success") is not None and r.get("chi2") is not None
                   and fit_status(r["chi2"], int(r.get("n_data") or 6 * int(r["n"]))) == "over-fitted")
        row = {"n": n, "provider": prov, "refiner": ref, "cases": len(rs), "errors": len(errs),
               "error": errs[0]["error"] if errs else None, "skipped": len(skips),
               "reason": skips[0].get("reason") if skips else None,
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


# --------------------------------------------------------------------------------------------
# metrics suited to gravity: mass, centroid, error by depth
# --------------------------------------------------------------------------------------------
#: depth bands of :func:`depth_error_profile` in the records (equal quarters of the grid depth)
DEPTH_BANDS = 4
#: the gravity metrics :func:`gravity_metrics` adds to every record, in order
GRAVITY_KEYS = ("mass_error", "x_centroid_error", "z_centroid_error", "depth_error")


def _grid_arrays(name, rho, x_edges, z_edges):
    xe = np.asarray(x_edges, dtype=np.float64).ravel()
    ze = np.asarray(z_edges, dtype=np.float64).ravel()
    if xe.size < 2 or ze.size < 2 or np.any(np.diff(xe) <= 0) or np.any(np.diff(ze) <= 0):
        raise ValueError("x_edges and z_edges must be strictly increasing cell edges (m), at least 2 each")
    shape = (ze.size - 1, xe.size - 1)
    r = np.asarray(rho, dtype=np.float64)
    if r.size != shape[0] * shape[1]:
        raise ValueError(f"{name} must have {shape[0]} x {shape[1]} = {shape[0] * shape[1]} cells "
                         f"(nz, nx) like the grid, got {r.size}")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"{name} must be finite (kg/m^3)")
    return r.reshape(shape), xe, ze


def _areas_centres(xe, ze):
    dx, dz = np.diff(xe), np.diff(ze)
    return np.outer(dz, dx), 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ze[1:] + ze[:-1])


def excess_mass(rho, x_edges, z_edges):
    """Anomalous (excess) mass per unit strike length ``M = sum_i rho_i a_i`` (kg/m).

    Parameters
    ----------
    rho : array_like (nz, nx), kg/m^3
        Density contrast of each cell.
    x_edges, z_edges : array_like, m
        Cell edges (``Grid.x_edges``, ``Grid.z_edges``); ``a_i`` is the cell area (m^2).

    Notes
    -----
    By Gauss's theorem the total excess mass of a 2D body is fixed by the data alone,
    ``integral gz dx = 2 pi G M`` over an infinite profile, so unlike the model error
    it does not depend on how the non-unique density is distributed.

    Examples
    --------
    >>> excess_mass([[1.0, -1.0], [2.0, 0.0]], [0.0, 10.0, 20.0], [0.0, 5.0, 10.0])
    100.0
    """
    r, xe, ze = _grid_arrays("rho", rho, x_edges, z_edges)
    a, _, _ = _areas_centres(xe, ze)
    return float(np.sum(r * a))


def mass_error(rho, rho_hat, x_edges, z_edges):
    """Excess-mass error ``|M_hat - M| / sum_i |rho_i| a_i`` (dimensionless).

    The denominator is the absolute anomalous mass of the true model, so the error stays
    defined when positive and negative anomalies cancel (``M`` near 0). 0 means the
    estimate carries exactly the true excess mass.

    Parameters
    ----------
    rho, rho_hat : array_like (nz, nx), kg/m^3
        True and estimated density contrasts.
    x_edges, z_edges : array_like, m
        Cell edges.

    Examples
    --------
    >>> mass_error([[1.0, 1.0]], [[2.0, 0.0]], [0.0, 1.0, 2.0], [0.0, 1.0])
    0.0
    """
    r, xe, ze = _grid_arrays("rho", rho, x_edges, z_edges)
    h, _, _ = _grid_arrays("rho_hat", rho_hat, x_edges, z_edges)
    a, _, _ = _areas_centres(xe, ze)
    den = float(np.sum(np.abs(r) * a))
    if den == 0.0:
        raise ValueError("rho: the true model is zero everywhere, so the excess-mass error is undefined")
    return abs(float(np.sum((h - r) * a))) / den


def anomaly_centroid(rho, x_edges, z_edges):
    """Centroid ``(x_c, z_c)`` of the anomaly weighted by ``|rho_i| a_i`` (m, z = depth, positive down).

    Parameters
    ----------
    rho : array_like (nz, nx), kg/m^3
    x_edges, z_edges : array_like, m

    Returns
    -------
    (float, float)
        Lateral position and depth of the centroid (m); ``(nan, nan)`` for an all-zero model.

    Notes
    -----
    ``x_c = sum |rho_i| a_i x_i / sum |rho_i| a_i`` (likewise ``z_c``) with cell centres
    ``(x_i, z_i)``; absolute values so that a dipole of positive and negative contrasts
    still has a centroid where its mass is.

    Examples
    --------
    >>> anomaly_centroid([[0.0, 0.0], [0.0, 3.0]], [0.0, 10.0, 20.0], [0.0, 10.0, 20.0])
    (15.0, 15.0)
    """
    r, xe, ze = _grid_arrays("rho", rho, x_edges, z_edges)
    a, xc, zc = _areas_centres(xe, ze)
    w = np.abs(r) * a
    s = float(w.sum())
    if s == 0.0:
        return math.nan, math.nan
    return float(np.sum(w * xc[None, :]) / s), float(np.sum(w * zc[:, None]) / s)


def centroid_errors(rho, rho_hat, x_edges, z_edges):
    """Lateral and depth errors of the anomaly centroid: ``(|x_c_hat - x_c|, |z_c_hat - z_c|)`` (m).

    ``nan`` when either model is zero everywhere (no centroid). See :func:`anomaly_centroid`.
    """
    xt, zt = anomaly_centroid(rho, x_edges, z_edges)
    xh, zh = anomaly_centroid(rho_hat, x_edges, z_edges)
    return abs(xh - xt), abs(zh - zt)


def depth_error_profile(rho, rho_hat, x_edges, z_edges, bands=DEPTH_BANDS):
    """Model error by depth band: ``e_k = ||(rho - rho_hat)_band k|| / ||rho||`` (dimensionless).

    Parameters
    ----------
    rho, rho_hat : array_like (nz, nx), kg/m^3
    x_edges, z_edges : array_like, m
    bands : int
        Number of equal-depth bands from the top to the bottom of the grid (>= 1); a cell
        belongs to the band that holds its centre.

    Returns
    -------
    list of float
        ``bands`` values, top band first. All bands share the denominator ``||rho||`` so the
        profile decomposes the model error: ``sum_k e_k^2 = model_error(rho, rho_hat)^2``
        (cell-count weights, as :func:`model_error`).

    Examples
    --------
    >>> depth_error_profile([[1.0], [1.0]], [[1.0], [0.0]], [0.0, 1.0], [0.0, 1.0, 2.0], bands=2)
    [0.0, 0.7071067811865475]
    """
    if isinstance(bands, bool) or not isinstance(bands, (int, np.integer)) or bands < 1:
        raise ValueError(f"bands must be an integer >= 1, got {bands!r}")
    r, xe, ze = _grid_arrays("rho", rho, x_edges, z_edges)
    h, _, _ = _grid_arrays("rho_hat", rho_hat, x_edges, z_edges)
    nr = float(np.linalg.norm(r))
    if nr == 0.0:
        raise ValueError("rho: the true model is zero everywhere, so the relative error is undefined")
    zc = 0.5 * (ze[1:] + ze[:-1])
    k = np.minimum(((zc - ze[0]) / (ze[-1] - ze[0]) * bands).astype(np.int64), bands - 1)
    d2 = np.sum((r - h) ** 2, axis=1)
    return [float(math.sqrt(float(d2[k == b].sum()))) / nr for b in range(int(bands))]


def gravity_metrics(rho, rho_hat, x_edges, z_edges, bands=DEPTH_BANDS):
    """The gravity metrics of one estimate, as the record fields :data:`GRAVITY_KEYS`.

    Returns
    -------
    dict
        ``mass_error`` (:func:`mass_error`, dimensionless), ``x_centroid_error`` and
        ``z_centroid_error`` (:func:`centroid_errors`, m; ``None`` when undefined) and
        ``depth_error`` (:func:`depth_error_profile`, a list of ``bands`` values, top first).
    """
    ex, ez = centroid_errors(rho, rho_hat, x_edges, z_edges)
    return {"mass_error": mass_error(rho, rho_hat, x_edges, z_edges),
            "x_centroid_error": ex if math.isfinite(ex) else None,
            "z_centroid_error": ez if math.isfinite(ez) else None,
            "depth_error": depth_error_profile(rho, rho_hat, x_edges, z_edges, bands)}
