"""Uncertainty of benchmark answers: confidence intervals, paired comparisons, Holm's correction.

Pure functions of per-model metric values (the records of a sweep); no I/O, no plotting.

Intervals
---------
Every mean over the ``k`` test models of one (grid size, pair) gets a Student-t interval

    ``mean +- t_{1 - a/2, k-1} s / sqrt(k)``

(``s`` the sample standard deviation). It is exact for normal values and close to
nominal for the mildly skewed, bounded metrics here at the sample sizes used (8-40
models); a plain percentile bootstrap is not used because it under-covers at small
``k`` (it ignores the ``k - 1`` degrees of freedom: its interval is too narrow by about
``t_{k-1} / z`` times ``sqrt(k / (k - 1))``, e.g. 1.29 at ``k = 8``).

Paired comparisons
------------------
All pairs are scored on the same test models, so a pair is compared with the leader
(the pair with the lowest mean) through the per-model differences
``d_i = x_i(pair) - x_i(leader)``: their mean with a Student-t interval, the two-sided
paired t-test p-value, and the share of models on which the pair is better
(``d_i < 0``). The p-values of the ``m`` comparisons with one leader are adjusted
with Holm's step-down procedure (family-wise error rate ``alpha``); a pair whose
adjusted p-value is ``>= alpha`` is *tied* with the leader: the data cannot tell
them apart.
"""

from __future__ import annotations

import math

import numpy as np

from ..data.families import BASE_FAMILIES

__all__ = ["mean_ci", "paired_diff", "holm", "compare_with_leader", "analyse", "t_quantile", "LEVEL", "ALPHA",
           "CI_KEYS"]

#: confidence level of every interval in the reports
LEVEL = 0.95
#: family-wise error rate of the comparisons with the leader
ALPHA = 0.05


def _level(level):
    try:
        lv = float(level)
    except (TypeError, ValueError):
        raise ValueError(f"level must be a number in (0, 1), got {level!r}") from None
    if not 0.0 < lv < 1.0:
        raise ValueError(f"level must be in (0, 1) (e.g. 0.95), got {level!r}")
    return lv


def _values(name, values):
    try:
        a = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers (or None for a missing value)") from None
    return a[np.isfinite(a)]


def t_quantile(p, df):
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``)."""
    from scipy.stats import t

    return float(t.ppf(p, df))


def mean_ci(values, level=LEVEL):
    """Mean of the finite values with its Student-t confidence interval.

    Parameters
    ----------
    values : iterable of float or None
        One value per test model; ``None``, nan and inf are dropped.
    level : float
        Confidence level (0.95 = 95 %).

    Returns
    -------
    dict
        ``mean``, ``lo``, ``hi``, ``half`` (half-width), ``sd`` (sample standard
        deviation) and ``count``. With no value every statistic is ``None``; with one
        value the interval (``lo``, ``hi``, ``half``, ``sd``) is ``None``.

    Examples
    --------
    >>> r = mean_ci([1.0, 2.0, 3.0])
    >>> r["mean"], round(r["half"], 4)
    (2.0, 2.4841)
    """
    lv = _level(level)
    a = _values("values", values)
    k = int(a.size)
    if k == 0:
        return {"mean": None, "lo": None, "hi": None, "half": None, "sd": None, "count": 0}
    m = float(a.mean())
    if k == 1:
        return {"mean": m, "lo": None, "hi": None, "half": None, "sd": None, "count": 1}
    sd = float(a.std(ddof=1))
    half = t_quantile(0.5 + lv / 2.0, k - 1) * sd / math.sqrt(k)
    return {"mean": m, "lo": m - half, "hi": m + half, "half": half, "sd": sd, "count": k}


def _t_pvalue(mean, sd, k):
    """Two-sided p-value of the one-sample t-test of ``mean == 0``."""
    if k < 2:
        return None
    if sd == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    from scipy.stats import t

    tt = mean / (sd / math.sqrt(k))
    return float(min(1.0, 2.0 * t.sf(abs(tt), k - 1)))


def paired_diff(x, ref, level=LEVEL):
    """Paired comparison of ``x`` with ``ref`` on the same models: ``d_i = x_i - ref_i``.

    Parameters
    ----------
    x, ref : mapping model -> value, or sequences of equal length
        Per-model values of the pair and of the reference (e.g. the leader). With
        mappings only the models present in both (with finite values) are used.
    level : float
        Confidence level of the interval on the mean difference.

    Returns
    -------
    dict
        ``mean``, ``lo``, ``hi``, ``half``, ``sd``, ``count`` of the differences (as
        :func:`mean_ci`), ``p`` (two-sided paired t-test of a zero mean difference;
        ``None`` with fewer than 2 models), ``better`` (share of models with ``d_i < 0``)
        and ``worse`` (share with ``d_i > 0``).
    """
    if isinstance(x, dict) != isinstance(ref, dict):
        raise ValueError("x and ref must both be mappings model -> value or both sequences")
    if isinstance(x, dict):
        keys = [k for k in x if k in ref]
        xa = [x[k] for k in keys]
        ra = [ref[k] for k in keys]
    else:
        xa, ra = list(x), list(ref)
        if len(xa) != len(ra):
            raise ValueError(f"x and ref must have the same length (paired values), got {len(xa)} and {len(ra)}")
    d = []
    for a, b in zip(xa, ra):
        if a is None or b is None:
            continue
        v = float(a) - float(b)
        if math.isfinite(v):
            d.append(v)
    out = mean_ci(d, level)
    k = out["count"]
    out["p"] = None if k < 2 else _t_pvalue(out["mean"], out["sd"], k)
    out["better"] = (sum(v < 0 for v in d) / k) if k else None
    out["worse"] = (sum(v > 0 for v in d) / k) if k else None
    return out


def holm(pvalues):
    """Holm's step-down adjusted p-values (same order as given; ``None`` stays ``None``).

    ``p_adj_(j) = max_{i <= j} min(1, (m - i + 1) p_(i))`` over the sorted p-values
    ``p_(1) <= ... <= p_(m)``; rejecting where ``p_adj < alpha`` controls the family-wise
    error rate at ``alpha`` (Holm 1979).

    Examples
    --------
    >>> [round(p, 12) for p in holm([0.01, 0.04, 0.03])]
    [0.03, 0.06, 0.06]
    """
    ps = list(pvalues)
    idx = [i for i, p in enumerate(ps) if p is not None]
    for i in idx:
        if not 0.0 <= float(ps[i]) <= 1.0:
            raise ValueError(f"p-values must be in [0, 1], got {ps[i]!r}")
    m = len(idx)
    order = sorted(idx, key=lambda i: float(ps[i]))
    out = [None] * len(ps)
    run = 0.0
    for j, i in enumerate(order):
        run = max(run, min(1.0, (m - j) * float(ps[i])))
        out[i] = run
    return out


def compare_with_leader(per_model, level=LEVEL, alpha=ALPHA):
    """Compare every entry with the one of lowest mean, paired on the models, Holm-corrected.

    Parameters
    ----------
    per_model : dict
        ``{label: {model: value}}`` (lower is better), e.g. the model error of every pair
        at one grid size keyed by test model index.
    level : float
        Confidence level of the intervals.
    alpha : float
        Family-wise error rate of the comparisons (Holm).

    Returns
    -------
    dict
        ``leader`` (label or ``None``), ``alpha``, and ``rows``: ``{label: {"mean": ...,
        "ci": mean_ci(...), "diff": paired_diff(...) or None for the leader,
        "p_holm": adjusted p or None, "tied": bool}}``. The leader is marked ``tied``
        too (it is tied with itself), so "the pairs tied for the lead" are the labels
        with ``tied`` true. ``tied`` is ``None`` when the comparison cannot be made
        (fewer than two models paired with the leader, or no value at all).
    """
    lv = _level(level)
    a = float(alpha)
    if not 0.0 < a < 1.0:
        raise ValueError(f"alpha must be in (0, 1) (e.g. 0.05), got {alpha!r}")
    rows = {}
    for lab, vals in per_model.items():
        if not isinstance(vals, dict):
            raise ValueError(f"per_model[{lab!r}] must be a mapping model -> value")
        rows[lab] = {"ci": mean_ci(vals.values(), lv)}
    cands = [lab for lab in rows if rows[lab]["ci"]["mean"] is not None]
    if not cands:
        return {"leader": None, "alpha": a, "rows": {lab: dict(r, diff=None, p_holm=None, tied=None)
                                                     for lab, r in rows.items()}}
    leader = min(cands, key=lambda lab: (rows[lab]["ci"]["mean"], str(lab)))
    others = [lab for lab in cands if lab != leader]
    diffs = {lab: paired_diff(per_model[lab], per_model[leader], lv) for lab in others}
    adj = dict(zip(others, holm([diffs[lab]["p"] for lab in others])))
    for lab, r in rows.items():
        if lab == leader:
            r.update(diff=None, p_holm=None, tied=True)
        elif lab in diffs:
            p = adj[lab]
            r.update(diff=diffs[lab], p_holm=p, tied=None if p is None else p >= a)
        else:
            r.update(diff=None, p_holm=None, tied=None)
    return {"leader": leader, "alpha": a, "rows": rows}


# --------------------------------------------------------------------------------------------
# a sweep's records -> every mean with its interval, the comparisons with the leader, per family
# --------------------------------------------------------------------------------------------
#: the per-model metrics that get an interval in :func:`analyse` (lower is better for the first five)
CI_KEYS = ("model_error", "data_misfit", "mass_error", "x_centroid_error", "z_centroid_error", "chi2", "seconds",
           "n_matvec", "niter", "peak_mb")


def _label(provider, refiner):
    return provider if refiner == "none" else f"{provider} -> {refiner}"


def _family_order(names):
    known = [f for f in BASE_FAMILIES if f in names]
    return known + sorted(f for f in names if f not in known)


def _nonneg(ci):
    """Clip the lower end of the interval of a non-negative metric at 0 (coverage can only grow)."""
    if ci["lo"] is not None and ci["lo"] < 0.0:
        ci = dict(ci, lo=0.0)
    return ci


def analyse(records, level=LEVEL, alpha=ALPHA, metric="model_error"):
    """Every mean of a sweep with its interval, every pair against the leader, and the same per family.

    Parameters
    ----------
    records : iterable of dict
        Records of :mod:`gravbench.bench.runner` (keys :data:`gravbench.metrics.RECORD_KEYS`);
        records with an error are left out of every statistic.
    level : float
        Confidence level of the intervals.
    alpha : float
        Family-wise error rate of the comparisons with the leader (Holm).
    metric : str
        The per-model metric that ranks the pairs and picks the leader (lower is better).

    Returns
    -------
    dict
        ``{"level", "alpha", "metric", "sizes": [...]}`` with one entry per grid size (ascending):
        ``n``, ``leader``, ``tied`` (labels tied for the lead, the leader first), ``pairs`` (a list
        ranked by the mean of ``metric``, pairs without a value last; each with ``provider``,
        ``refiner``, ``label``, ``cases``, ``errors``, ``models``, ``ci`` ``{key: mean_ci}`` for
        :data:`CI_KEYS` (all non-negative: lower ends clipped at 0), ``depth_error`` (a ``mean_ci``
        per depth band), ``vs_leader``
        (:func:`paired_diff` of ``metric``, ``None`` for the leader), ``p_holm`` and ``tied``) and
        ``families`` (``{family: {"models", "leader", "tied", "pairs": {label: {"ci", "tied",
        "vs_leader", "p_holm"}}}}``; the comparisons within a family are Holm-corrected within it).
    """
    if metric not in CI_KEYS:
        raise ValueError(f"metric must be one of {CI_KEYS}, got {metric!r}")
    by_n = {}
    for r in records:
        by_n.setdefault(int(r["n"]), []).append(r)
    sizes = []
    for n in sorted(by_n):
        recs = by_n[n]
        groups = {}
        for r in recs:
            groups.setdefault((r["provider"], r["refiner"]), []).append(r)
        per_model = {}
        fam_of = {}
        pairs = {}
        for (prov, ref), rs in groups.items():
            lab = _label(prov, ref)
            ok = [r for r in rs if r.get("error") is None]
            errs = [r for r in rs if r.get("error") is not None]
            per_model[lab] = {int(r["model"]): r.get(metric) for r in ok if r.get(metric) is not None}
            for r in rs:
                if r.get("family"):
                    fam_of[int(r["model"])] = r["family"]
            bands = max((len(r.get("depth_error") or ()) for r in ok), default=0)
            pairs[lab] = {"provider": prov, "refiner": ref, "label": lab, "cases": len(rs), "errors": len(errs),
                          "error": errs[0]["error"] if errs else None, "models": len(per_model[lab]),
                          "ci": {k: _nonneg(mean_ci([r.get(k) for r in ok], level)) for k in CI_KEYS},
                          "depth_error": [_nonneg(mean_ci([r["depth_error"][b] for r in ok
                                                           if r.get("depth_error") and len(r["depth_error"]) == bands],
                                                          level)) for b in range(bands)]}
        cmp = compare_with_leader(per_model, level, alpha)
        for lab, row in cmp["rows"].items():
            pairs[lab].update(vs_leader=row["diff"], p_holm=row["p_holm"], tied=row["tied"])

        def order(p):
            m = p["ci"][metric]["mean"]
            return (m is None, m if m is not None else 0.0, p["provider"], p["refiner"])

        ranked = sorted(pairs.values(), key=order)
        families = {}
        for fam in _family_order(set(fam_of.values())):
            models = {i for i, f in fam_of.items() if f == fam}
            sub = {lab: {i: v for i, v in vals.items() if i in models} for lab, vals in per_model.items()}
            fc = compare_with_leader(sub, level, alpha)
            families[fam] = {"models": len(models), "leader": fc["leader"],
                             "tied": [p["label"] for p in ranked if fc["rows"][p["label"]]["tied"]],
                             "pairs": {lab: {"ci": row["ci"], "tied": row["tied"], "vs_leader": row["diff"],
                                             "p_holm": row["p_holm"]} for lab, row in fc["rows"].items()}}
        tied = [p["label"] for p in ranked if p.get("tied")]
        sizes.append({"n": n, "leader": cmp["leader"], "tied": tied, "pairs": ranked, "families": families})
    return {"level": _level(level), "alpha": float(alpha), "metric": metric, "sizes": sizes}
