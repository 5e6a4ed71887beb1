"""Robustness of the methods to a wrong noise model: wrong sigma, correlated noise, heavy-tailed noise.

The methods are told a noise standard deviation ``sigma_told = s * sigma`` (``s`` the
*sigma scale*: 0.5 = they think the data twice as accurate as they are, 2 = half as
accurate), and the data may carry noise that is not the independent Gaussian the
methods assume:

``gaussian``
    the test set's own noisy data (``g = g_clean + sigma e``, ``e`` standard normal);
``correlated``
    ``e`` a stationary Gaussian AR(1) sequence along the stations of each component with
    unit variance and correlation ``exp(-|dx| / L)`` (``L`` = :data:`CORR_LENGTH` m), so the
    noise is smooth over about ``L`` like a drifting instrument or an unmodelled regional;
``heavy``
    ``e = t_3 / sqrt(3)``: Student-t with 3 degrees of freedom scaled to unit variance
    (outliers a Gaussian would call 1-in-a-million happen several times per profile).

Every variant keeps the marginal standard deviation ``sigma`` of each datum, so chi2 with
the *true* sigma still has target 1; :func:`markdown` reports chi2 and the success rate
against the true sigma (``chi2_true = chi2_told * s^2``) beside the model error, each paired
with the nominal run on the same models.

The perturbed test sets come from :func:`perturbed_load`, a drop-in ``Toolkit.load``;
``gravbench compare --sigma-scale/--noise-kind`` and ``gravbench report robustness`` use it.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np

from ..metrics import chi2_threshold, is_success
from .runner import TestSet, Toolkit, atomic_write_text, run_cases
from .stats import LEVEL, mean_ci, paired_diff
from .. import data
from ..problem import Problem
from .._load import load_average

__all__ = ["NOISE_KINDS", "CORR_LENGTH", "CONDITIONS", "perturbed_noise", "perturbed_load", "toolkit",
           "condition_name", "run_conditions", "markdown", "write_report"]

NOISE_KINDS = ("gaussian", "correlated", "heavy")
#: correlation length of the ``correlated`` noise (m)
CORR_LENGTH = 100.0
#: the conditions of ``gravbench report robustness``: (sigma scale, noise kind); the first is the reference
CONDITIONS = ((1.0, "gaussian"), (0.5, "gaussian"), (2.0, "gaussian"), (1.0, "correlated"), (1.0, "heavy"))


def _check(sigma_scale, noise_kind):
    try:
        s = float(sigma_scale)
    except (TypeError, ValueError):
        raise ValueError(f"sigma_scale must be a number > 0, got {sigma_scale!r}") from None
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"sigma_scale must be a finite number > 0 (e.g. 0.5 or 2), got {sigma_scale!r}")
    if noise_kind not in NOISE_KINDS:
        raise ValueError(f"noise_kind must be one of {', '.join(NOISE_KINDS)}, got {noise_kind!r}")
    return s, noise_kind


def condition_name(sigma_scale, noise_kind):
    """``"nominal"``, ``"sigma x 0.5"``, ``"correlated noise"``, ``"heavy-tailed noise, sigma x 2"``, ..."""
    s, k = _check(sigma_scale, noise_kind)
    parts = [] if k == "gaussian" else [{"correlated": "correlated noise", "heavy": "heavy-tailed noise"}[k]]
    if s != 1.0:
        parts.append(f"sigma x {s:g}")
    return ", ".join(parts) or "nominal"


def perturbed_noise(shape, kind, seed, index, station_x=None, corr_length=CORR_LENGTH):
    """Unit-variance noise draws ``e`` of shape ``(S, 2m)`` (``[x-component..., z-component...]``).

    Parameters
    ----------
    shape : (int, int)
        ``(S, 2m)``: samples and data per sample.
    kind : {"correlated", "heavy"}
        See the module docstring.
    seed : int
        Seed; row ``i`` draws from the stream ``(seed, 17, index[i])``.
    index : array_like (S,) of int
        Global sample indices of the rows (so a model's noise does not depend on the others).
    station_x : array_like (m,), m, optional
        Station positions for the correlation (default: unit spacing in metres).
    corr_length : float, m
        Correlation length of ``correlated`` noise.

    Returns
    -------
    ndarray (S, 2m)
    """
    if kind not in ("correlated", "heavy"):
        raise ValueError(f"kind must be 'correlated' or 'heavy', got {kind!r}")
    S, n2 = (int(v) for v in shape)
    if n2 % 2:
        raise ValueError(f"shape[1] must be even ([gx..., gz...]), got {n2}")
    m = n2 // 2
    xs = np.arange(m, dtype=np.float64) if station_x is None else np.asarray(station_x, dtype=np.float64)
    if xs.shape != (m,):
        raise ValueError(f"station_x must have {m} positions, got shape {xs.shape}")
    if not corr_length > 0:
        raise ValueError(f"corr_length must be > 0 (m), got {corr_length!r}")
    idx = np.asarray(index, dtype=np.int64)
    if idx.shape != (S,):
        raise ValueError(f"index must have shape ({S},), got {idx.shape}")
    out = np.empty((S, n2))
    phi = np.exp(-np.abs(np.diff(xs)) / float(corr_length))
    for i in range(S):
        rng = np.random.default_rng([int(seed), 17, int(idx[i])])
        if kind == "heavy":
            out[i] = rng.standard_t(3, size=n2) / math.sqrt(3.0)
            continue
        w = rng.standard_normal((2, m))
        e = np.empty((2, m))
        e[:, 0] = w[:, 0]
        for s in range(1, m):  # AR(1): stationary, unit variance
            e[:, s] = phi[s - 1] * e[:, s - 1] + math.sqrt(1.0 - phi[s - 1] ** 2) * w[:, s]
        out[i] = e.ravel()
    return out


def _dataset(n, samples, noise, seed):

    name = f"paper-{n}"
    if name in data.STANDARD:
        ds = data.standard(name, split="test", noise=noise)
        if len(ds.rho) >= samples:
            return ds, f"standard set {name} (test split)"
    ds = data.build(Problem.paper(n), count=samples, seed=seed, noise=noise)
    if isinstance(ds, dict):
        ds = ds["all"] if "all" in ds else next(iter(ds.values()))
    return ds, f"built: {samples} mixed models, seed {seed}"


def perturbed_load(n, samples, noise, seed, *, sigma_scale=1.0, noise_kind="gaussian"):
    """A ``Toolkit.load``: the test set of grid size ``n`` with the noise variant and the told sigma.

    ``sigma`` of the returned :class:`~gravbench.bench.runner.TestSet` is what the methods are
    told (``sigma_scale`` times the true one); the records' chi2 is therefore against the told
    sigma. The data are the test set's own noisy data for ``"gaussian"``, else the clean data
    plus :func:`perturbed_noise` times the true sigma (seed: the ``seed`` argument).
    """
    s, kind = _check(sigma_scale, noise_kind)
    if not noise > 0:
        raise ValueError(f"noise must be > 0 for a noise-model variant, got {noise!r}")
    ds, source = _dataset(n, samples, noise, seed)
    k = int(samples)
    sig = np.asarray(ds.sigma[:k], dtype=np.float64)
    if kind == "gaussian":
        g = np.asarray(ds.g[:k], dtype=np.float64)
    else:
        e = perturbed_noise(sig.shape, kind, seed, np.asarray(ds.index[:k]), ds.problem.survey.x)
        g = np.asarray(ds.g_clean[:k], dtype=np.float64) + sig * e
    fam = tuple(ds.family_of(i) for i in range(k))
    return TestSet(problem=ds.problem, rho=np.asarray(ds.rho[:k], dtype=np.float64), g=g, sigma=s * sig,
                   source=f"{source}; {condition_name(s, kind)}", family=fam)


def toolkit(sigma_scale=1.0, noise_kind="gaussian", base=None):
    """A :class:`~gravbench.bench.runner.Toolkit` whose test sets are :func:`perturbed_load` ones."""
    s, kind = _check(sigma_scale, noise_kind)
    base = base or Toolkit()
    return Toolkit(load=functools.partial(perturbed_load, sigma_scale=s, noise_kind=kind),
                   get_provider=base.get_provider, refine=base.refine, method=base.method, warmup=base.warmup)


def run_conditions(cases, conditions=CONDITIONS, path=None, *, base=None, on_record=None):
    """Run ``cases`` under every (sigma scale, noise kind) condition.

    Returns
    -------
    list of dict
        The records, each with two extra keys: ``condition`` (:func:`condition_name`) and
        ``sigma_scale``. With ``path`` they are also written there as JSON Lines.
    """
    import json

    out = []
    for s, kind in conditions:
        tk = toolkit(s, kind, base)
        name = condition_name(s, kind)
        for rec in run_cases(cases, toolkit=tk, on_record=on_record,
                             identity={"sigma_scale": float(s), "noise_kind": str(kind)}):
            rec = dict(rec, condition=name, sigma_scale=float(s))
            out.append(rec)
    if path is not None:
        atomic_write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in out))
    return out


def _label(r):
    return r["provider"] if r["refiner"] == "none" else f"{r['provider']} -> {r['refiner']}"


def _true_chi2(r):
    c = r.get("chi2")
    return None if c is None else float(c) * float(r.get("sigma_scale", 1.0)) ** 2


def _fmt_ci(c, fmt="{:.3g}", sign=False):
    if c is None or c["mean"] is None:
        return "-"
    f = (lambda v: fmt.replace("{:", "{:+").format(v)) if sign else fmt.format
    return f(c["mean"]) if c["lo"] is None else f"{f(c['mean'])} [{f(c['lo'])}, {f(c['hi'])}]"


def markdown(records, *, command, level=LEVEL, wall_seconds=None, settings=None):
    """The robustness report: per grid size and pair, model error and chi2 (true sigma) per condition,
    the change of the model error against the nominal run (paired on the models) and the success rate."""
    conds = list(dict.fromkeys(r["condition"] for r in records))
    ref = conds[0] if conds else None
    out = ["# gravbench robustness: wrong sigma, correlated and heavy-tailed noise", "",
           "How each method's model error and chi2 move when the noise model the methods are given is wrong. "
           "Regenerate with:", "", "```", command, "```", ""]
    if settings:
        out += ["Settings: " + ", ".join(f"{k} = {v}" for k, v in settings.items()) + ".", ""]
    out += [f"Conditions: {', '.join(conds)}. *sigma x s*: the methods are told `s` times the true noise standard "
            "deviation (same noisy data as the nominal run). *correlated noise*: Gaussian noise with the same "
            f"per-datum sigma but correlated along the profile, `exp(-|dx| / {CORR_LENGTH:g} m)`. *heavy-tailed "
            "noise*: Student-t (3 degrees of freedom) scaled to the same sigma. chi2 and success are always "
            "computed with the **true** sigma (success: |chi2 - 1| <= 2 sqrt(2/N), "
            "`gravbench.metrics.is_success`). Change = mean over the models of (model error under the "
            f"condition - nominal model error) with its {100 * level:.0f} % Student-t interval (paired on the same "
            "models); `better` is the share of models where the condition's error is lower.", ""]
    by_n = {}
    for r in records:
        by_n.setdefault(int(r["n"]), []).append(r)
    for n in sorted(by_n):
        rs = [r for r in by_n[n] if r.get("error") is None]
        nd = Problem.paper(int(n)).n_data
        out += [f"## n = {n}  ({nd} data; success when chi2 <= {chi2_threshold(nd):.3f} with the true sigma)", ""]
        labels = list(dict.fromkeys(_label(r) for r in by_n[n]))
        vals = {}
        for r in rs:
            vals.setdefault((_label(r), r["condition"]), {})[int(r["model"])] = r
        cols = ["pair", "condition", "model err mean [95% CI]", "change vs nominal [95% CI]", "better",
                "chi2 (true sigma) median", "success (true sigma)", "excess-mass error mean"]
        out += ["| " + " | ".join(cols) + " |", "|---|---|" + "---:|" * (len(cols) - 2)]
        for lab in labels:
            base = {i: r["model_error"] for i, r in vals.get((lab, ref), {}).items()}
            for c in conds:
                cur = vals.get((lab, c), {})
                me = mean_ci([r["model_error"] for r in cur.values()], level)
                ch = [_true_chi2(r) for r in cur.values() if r.get("chi2") is not None]
                succ = [is_success(v, nd) for v in ch]
                d = None if c == ref else paired_diff({i: r["model_error"] for i, r in cur.items()}, base, level)
                mass = mean_ci([r.get("mass_error") for r in cur.values()], level)
                out.append("| " + " | ".join([
                    lab if c == ref else "", c, _fmt_ci(me), "-" if d is None else _fmt_ci(d, "{:.2g}", sign=True),
                    "-" if d is None or d["better"] is None else f"{100 * d['better']:.0f}%",
                    "-" if not ch else f"{float(np.median(ch)):.3g}",
                    "-" if not succ else f"{100 * sum(succ) / len(succ):.0f}%",
                    "-" if mass["mean"] is None else f"{mass['mean']:.2g}"]) + " |")
        out.append("")
    nerr = sum(r.get("error") is not None for r in records)
    out += ["## Run", ""]
    if wall_seconds is not None:
        la = load_average()
        load = "" if la is None else f" (1-minute load average at the end: {la[0]:.1f})"
        out.append(f"Wall time: {wall_seconds:.0f} s on {os.cpu_count()} CPU cores{load}.")
    out += [f"{len(records)} cases, {nerr} with an error.", ""]
    return "\n".join(out)


def write_report(records, out_dir, stem, *, command, wall_seconds=None, settings=None):
    """Write ``<out_dir>/<stem>.md``; returns its path."""
    return atomic_write_text(Path(out_dir) / f"{stem}.md", markdown(records, command=command,
                                                                     wall_seconds=wall_seconds, settings=settings))
