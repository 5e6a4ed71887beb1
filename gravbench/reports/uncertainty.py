"""``gravbench report uncertainty``: calibration of every uncertainty method, written to reports/.

Sections of ``uncertainty.md`` (numbers also in ``uncertainty.json``):

1. **Exactness check**: models drawn from the Kronecker prior itself, data
   with one fixed noise level; the linear-Gaussian posterior's 68 % / 95 %
   intervals must cover the truth at the nominal rate.
2. **paper-50 test split (1 % noise)**: coverage of the 68 % and 95 %
   intervals and the mean CRPS per method and family, the relative error of
   the posterior mean, and seconds per model; the best-calibrated method
   (smallest ``|cov68 - 0.68| + |cov95 - 0.95|`` on the models every method
   saw) is named. Methods: the linear-Gaussian posterior with a Kronecker
   prior (length scale chosen by CRPS on the validation split) and with the
   training split's low-rank + diagonal covariance (all test models), its
   perturb-and-optimise samples (sample quantiles), and pCN MCMC in the VAE
   latent (a per-family subset: it costs seconds per model).
3. **n = 200**: the linear-Gaussian posterior std on the FFT operator, timed.

Figures: ``uncertainty-reliability.png`` (observed vs nominal coverage) and
``uncertainty-maps.png`` (mean, std, truth, error / std for one test model
per method).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from .._atomic import atomic_write_text

import gravbench as gb

from .._mpl import pyplot as _plt
from .._mpl import model_panel, save_png
from ..uncertainty import RELIABILITY_LEVELS, KroneckerPrior, LinearGaussian, LowRankPrior, coverage, crps
from .._load import load_average

__all__ = ["run", "measure", "write"]

LEVELS = (0.68, 0.95)


def _load():
    return load_average(2)


def _cov_err(c):
    return abs(c["0.68"] - 0.68) + abs(c["0.95"] - 0.95)


def _score(truth, res_list):
    """Coverage, reliability, CRPS and mean relative error over a list of (truth, UncertaintyResult)."""

    X = np.array(truth, dtype=np.float64)
    if res_list[0].gaussian:
        M = np.array([r.mean for r in res_list])
        S = np.array([r.std for r in res_list])
        cov = coverage(X, mean=M, std=S, levels=LEVELS)
        rel = coverage(X, mean=M, std=S, levels=RELIABILITY_LEVELS)
        score = crps(X, mean=M, std=S)
    else:
        Sm = np.stack([r.samples for r in res_list], axis=1)  # (S, models, nz, nx)
        M = Sm.mean(0)
        cov = coverage(X, samples=Sm, levels=LEVELS)
        rel = coverage(X, samples=Sm, levels=RELIABILITY_LEVELS)
        score = crps(X, samples=Sm)
    err = [float(np.linalg.norm(M[k] - X[k]) / max(np.linalg.norm(X[k]), 1e-300)) for k in range(len(X))]
    return {"models": len(X), "coverage": {f"{k:.2f}": round(v, 4) for k, v in cov.items()},
            "reliability": {f"{k:.2f}": round(v, 4) for k, v in rel.items()}, "crps": round(score, 3),
            "model_error_mean": round(float(np.mean(err)), 4),
            "seconds_per_model": round(float(np.mean([r.seconds for r in res_list])), 4)}


def _exactness(n, count, log):


    prob = gb.Problem.paper(n=n)
    op = prob.operator("auto")
    pr = KroneckerPrior(prob.grid, 100.0, 100.0, std=300.0, mean=0.0, kernel="exponential")
    rng = np.random.default_rng(2026)
    X = pr.sample(rng, count).T + pr.mean
    G = np.array([op.matvec(x) for x in X])
    sigma = 0.01 * float(np.median(np.abs(G).max(axis=1)))
    Gn = G + sigma * rng.standard_normal(G.shape)
    t0 = time.perf_counter()
    lg = LinearGaussian(op, pr)
    res = [lg.posterior(Gn[k], sigma) for k in range(count)]
    out = _score(X.reshape((count,) + prob.shape), res)
    out.update(n=n, prior=pr.describe(), sigma_mgal=round(sigma, 6), cells=int(count * prob.n_cells),
               build_seconds=round(lg.build_seconds, 3), total_seconds=round(time.perf_counter() - t0, 2),
               operator=op.method)
    log(f"exactness n={n}: coverage {out['coverage']}, CRPS {out['crps']}")
    return out


def _choose_length(prob, op, mean, std, val, lengths, count, log):
    """The Kronecker length scale with the lowest mean CRPS on ``count`` validation models."""

    idx = np.linspace(0, len(val) - 1, count).astype(int)
    table = {}
    for L in lengths:
        lg = LinearGaussian(op, KroneckerPrior(prob.grid, L, L, std=std, mean=mean, kernel="exponential"))
        res = [lg.posterior(val.g[i], val.sigma[i]) for i in idx]
        sc = _score(val.rho[idx], res)
        table[str(L)] = {"crps": sc["crps"], "coverage": sc["coverage"]}
        log(f"  validation, length {L:g} m: CRPS {sc['crps']}, coverage {sc['coverage']}")
    best = min(lengths, key=lambda L: table[str(L)]["crps"])
    return float(best), table


def _timing_200(n, log):


    load0 = _load()
    prob = gb.Problem.paper(n=n)
    t0 = time.perf_counter()
    op = prob.operator("fft")
    t_op = time.perf_counter() - t0
    pr = KroneckerPrior(prob.grid, 50.0, 50.0, std=300.0, kernel="exponential")
    rng = np.random.default_rng(1)
    x = pr.sample(rng, 1)[:, 0]
    g = op.matvec(x)
    sigma = 0.01 * float(np.abs(g).max())
    t0 = time.perf_counter()
    lg = LinearGaussian(op, pr)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = lg.posterior(g + sigma * rng.standard_normal(g.size), sigma)
    t_post = time.perf_counter() - t0
    out = {"n": n, "operator": op.method, "n_data": int(op.shape[0]), "n_cells": int(op.shape[1]),
           "operator_seconds": round(t_op, 2), "build_seconds": round(t_build, 2), "posterior_seconds": round(t_post, 2),
           "std_seconds": round(t_build + t_post, 2), "std_min": round(float(r.std.min()), 3),
           "std_max": round(float(r.std.max()), 3), "prior": pr.describe(), "load_before": load0, "load_after": _load()}
    log(f"n={n}: posterior std in {out['std_seconds']} s (build {out['build_seconds']} s + {out['posterior_seconds']} s)")
    return out, r


def measure(quick=False, log=print, pcn_per_family=None, rto_samples=100):
    """Run every measurement; returns ``(results dict, figure data)``."""

    from ..uncertainty.latent import LatentSampler

    t_all = time.perf_counter()
    name = "small-16" if quick else "paper-50"
    pcn_per_family = (1 if quick else 6) if pcn_per_family is None else int(pcn_per_family)
    res = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_start": _load()},
           "quick": bool(quick), "dataset": name, "noise": 0.01}
    res["exactness"] = _exactness(16 if quick else 50, 100 if quick else 200, log)

    train = gb.data.standard(name, "train", progress=False)
    val = gb.data.standard(name, "val", progress=False)
    test = gb.data.standard(name, "test", progress=False)
    prob = test.problem
    op = prob.operator("dense")
    mean, std = float(train.rho.mean()), float(train.rho.std())
    log(f"{name}: train {len(train)}, test {len(test)}; density mean {mean:.1f}, std {std:.1f} kg/m^3")
    lengths = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0) if not quick else (100.0, 200.0)
    L, ltable = _choose_length(prob, op, mean, std, val, lengths, 20 if quick else 100, log)
    res["kronecker_selection"] = {"lengths_m": list(lengths), "chosen_m": L, "validation": ltable,
                                  "rule": "lowest mean CRPS on validation models (exponential kernel, "
                                          "std and mean of the training densities)"}
    priors = {
        "lg-kronecker": KroneckerPrior(prob.grid, L, L, std=std, mean=mean, kernel="exponential"),
        "lg-lowrank": LowRankPrior(train.rho, rank=200 if not quick else 50, max_models=10_000,
                                   source=f"{name} train (first 10,000 models)"),
    }
    families = sorted(test.family_counts())
    fam_of = np.array([test.family_of(i) for i in range(len(test))])
    # the per-family subset every method sees (pCN costs seconds per model)
    sub = np.concatenate([np.flatnonzero(fam_of == f)[:pcn_per_family] for f in families])
    methods = {}
    per_model = {}
    lgs = {}
    for mname, pr in priors.items():
        t0 = time.perf_counter()
        lg = lgs[mname] = LinearGaussian(op, pr)
        rs = [lg.posterior(test.g[i], test.sigma[i]) for i in range(len(test))]
        per_model[mname] = rs
        methods[mname] = {"prior": pr.describe(), "build_seconds": round(lg.build_seconds, 3),
                          "all_seconds": round(time.perf_counter() - t0, 2), "kind": "exact Gaussian marginals"}
        log(f"{mname}: {len(rs)} models in {methods[mname]['all_seconds']} s")
    # perturb-and-optimise samples of the low-rank posterior, intervals from sample quantiles
    lg = lgs["lg-lowrank"]
    rs = {i: lg.posterior(test.g[i], test.sigma[i], samples=rto_samples, seed=int(i), sampler="direct") for i in sub}
    rto = [dataclasses_replace_gaussian(rs[i]) for i in sub]
    per_model["rto-lowrank"] = dict(zip(sub.tolist(), rto))
    methods["rto-lowrank"] = {"prior": priors["lg-lowrank"].describe(), "samples": rto_samples,
                              "kind": "perturb-and-optimise samples (exact for the fixed prior), sample quantiles"}
    log(f"rto-lowrank: {len(sub)} models x {rto_samples} samples")
    # pCN in the VAE latent
    try:
        sampler = LatentSampler(op, "vae")
        pcn_opts = dict(chains=4, steps=800 if not quick else 60, burn=400 if not quick else 30, thin=8 if not quick
                        else 3, init_steps=100 if not quick else 10)
        rp = {}
        for j, i in enumerate(sub):
            rp[int(i)] = sampler.run(test.g[i], test.sigma[i], seed=int(i), **pcn_opts)
            if j % 6 == 5:
                log(f"pcn-vae: {j + 1}/{len(sub)} models")
        per_model["pcn-vae"] = rp
        methods["pcn-vae"] = {"options": rp[int(sub[0])].options, "kind": "pCN MCMC in the VAE latent, sample quantiles",
                              "acceptance_mean": round(float(np.mean([r.info["acceptance"] for r in rp.values()])), 3),
                              "chi_median": round(float(np.median([r.info["chi_median"] for r in rp.values()])), 3)}
    except Exception as exc:  # noqa: BLE001  (no weights for this grid, e.g. the quick run on n = 16)
        methods["pcn-vae"] = {"skipped": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
        log(f"pcn-vae skipped: {exc}")

    def scored(mname, idx):
        pm = per_model[mname]
        get = (lambda i: pm[i]) if isinstance(pm, list) else (lambda i: pm[int(i)])
        out = {"all": _score(test.rho[idx], [get(i) for i in idx])}
        for f in families:
            ii = [i for i in idx if fam_of[i] == f]
            if ii:
                out[f] = _score(test.rho[ii], [get(i) for i in ii])
        return out

    table_all, table_sub = {}, {}
    for mname in per_model:
        if isinstance(per_model[mname], list):
            table_all[mname] = scored(mname, np.arange(len(test)))
        table_sub[mname] = scored(mname, sub)
    # rto-* are draws of the lg-* posterior of the same prior (a Monte Carlo check), not a method of their own
    ranked = [m for m in table_sub if not m.startswith("rto-")]
    best = min(ranked, key=lambda m: _cov_err(table_sub[m]["all"]["coverage"]))
    best_all = min(table_all, key=lambda m: _cov_err(table_all[m]["all"]["coverage"]))
    res.update(n_test=len(test), methods=methods, families=families, subset={"per_family": pcn_per_family, "models": len(sub)},
               test_all=table_all, test_subset=table_sub, best_calibrated=best, best_calibrated_all_test=best_all,
               calibration_error={"subset": {m: round(_cov_err(table_sub[m]["all"]["coverage"]), 4) for m in table_sub},
                                  "all_test": {m: round(_cov_err(table_all[m]["all"]["coverage"]), 4)
                                               for m in table_all}})
    log(f"best calibrated on the common subset: {best}; on all test models (linear-Gaussian only): {best_all}")
    res["timing_200"], r200 = _timing_200(50 if quick else 200, log)
    res["machine"]["load_end"] = _load()
    res["seconds"] = round(time.perf_counter() - t_all, 1)
    # figure data: one test model per method (the first of the subset)
    k = int(sub[0])
    maps = {m: (per_model[m][k] if isinstance(per_model[m], list) else per_model[m][k]) for m in per_model}
    fig = {"truth": test.rho[k].astype(np.float64), "family": fam_of[k], "index": k, "maps": maps}
    return res, fig


def dataclasses_replace_gaussian(r):
    """A sample-based view of a result (intervals from its samples' quantiles)."""
    import dataclasses

    S = r.samples
    return dataclasses.replace(r, gaussian=False, mean=S.mean(0), std=S.std(0, ddof=1), method="rto")


def _reliability_png(res, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 5.0), constrained_layout=True)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="nominal")
    ex = res["exactness"]["reliability"]
    ax.plot([float(k) for k in ex], list(ex.values()), "k-o", ms=3,
            label=f"linear-Gaussian on prior draws (n={res['exactness']['n']})")
    for m, t in res["test_subset"].items():
        rel = t["all"]["reliability"]
        ax.plot([float(k) for k in rel], list(rel.values()), "-o", ms=3, label=f"{m} ({res['dataset']} test)")
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("observed coverage (all cells)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("reliability of per-cell intervals")
    save_png(fig, path, dpi=110)


def _maps_png(fig_data, path):
    plt = _plt()
    maps = fig_data["maps"]
    truth = fig_data["truth"]
    rows = len(maps)
    fig, axes = plt.subplots(rows, 4, figsize=(12.5, 2.8 * rows + 0.4), constrained_layout=True, squeeze=False)
    vmax = float(np.abs(truth).max()) or 1.0
    smax = max(float(r.std.max()) for r in maps.values()) or 1.0
    for row, (m, r) in zip(axes, maps.items()):
        z = (truth - r.mean) / np.maximum(r.std, 1e-12)
        for ax, img, title, kw in (
                (row[0], r.mean, f"{m}: mean", dict(vmax=vmax)),
                (row[1], r.std, "std (kg/m^3)", dict(vmin=0, vmax=smax)),
                (row[2], truth, f"truth ({fig_data['family']}, #{fig_data['index']})", dict(vmax=vmax)),
                (row[3], z, "(truth - mean) / std", dict(cmap="PuOr", vmax=3))):
            im = model_panel(ax, img, title=title, fontsize=9, **kw)
            fig.colorbar(im, ax=ax, shrink=0.8)
    save_png(fig, path, dpi=90)


def _fmt_cov(c):
    return f"{100 * c['0.68']:.1f} % / {100 * c['0.95']:.1f} %"


def write(res, fig_data, out_dir="reports"):
    """Write ``uncertainty.md``, ``.json`` and the two PNGs; return their paths.

    ``fig_data=None`` re-renders the Markdown, JSON and reliability plot from a stored
    ``uncertainty.json`` (``json.loads``) and keeps the maps PNG already in ``out_dir``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js = out / "uncertainty.json"
    atomic_write_text(js, json.dumps(res, indent=1))
    rel_png, maps_png = out / "uncertainty-reliability.png", out / "uncertainty-maps.png"
    _reliability_png(res, rel_png)
    if fig_data is not None:  # None: re-render the text from stored results, keep the maps already written
        _maps_png(fig_data, maps_png)
    ex = res["exactness"]
    t2 = res["timing_200"]
    L = []
    w = L.append
    w("# Uncertainty: calibrated per-cell posterior spread\n")
    w(f"Regenerate with `gravbench report uncertainty{' --quick' if res['quick'] else ''}` "
      f"({res['seconds']:.0f} s here; load average {res['machine']['load_start']} at the start, "
      f"{res['machine']['load_end']} at the end, {res['machine']['cpus']} cores shared with other jobs: "
      "timings are from a loaded machine). Library: `gravbench.uncertainty`.\n")
    if res.get("note"):
        w(f"> **Note.** {res['note']}\n")
    w("Every interval below is a central per-cell interval; its coverage is the fraction of all cells of all "
      "listed models whose true density lies inside. CRPS is in kg/m^3 (lower is better). Nominal: 68 % / 95 %.\n")
    w("## 1. Exactness check: models drawn from the prior itself\n")
    p = ex["prior"]
    w(f"{ex['models']} models drawn from the Kronecker prior ({p['kernel']} kernel, length {p['length_x_m']:g} m, "
      f"std {p['std_kg_m3']:g} kg/m^3) on the n = {ex['n']} paper grid ({ex['cells']:,} cells in all), data with one "
      f"fixed noise std {ex['sigma_mgal']:.4g} mGal (1 % of the median peak), posterior by "
      f"`LinearGaussian` on the `{ex['operator']}` operator.\n")
    w("| nominal | observed coverage |\n|---|---|")
    for k in ("0.68", "0.95"):
        w(f"| {100 * float(k):.0f} % | {100 * ex['coverage'][k]:.2f} % |")
    ok = all(abs(ex["coverage"][k] - float(k)) <= 0.02 for k in ("0.68", "0.95"))
    w(f"\nWithin 2 percentage points of nominal: **{'yes' if ok else 'NO'}**. Mean CRPS {ex['crps']} kg/m^3; "
      f"build {ex['build_seconds']} s, all {ex['models']} posteriors {ex['total_seconds']} s.\n")
    w(f"## 2. {res['dataset']} test split, {100 * res['noise']:.0f} % noise\n")
    ks = res["kronecker_selection"]
    w("Methods:\n")
    for m, d in res["methods"].items():
        if "skipped" in d:
            w(f"- `{m}`: skipped ({d['skipped']})")
        elif m == "lg-kronecker":
            w(f"- `{m}`: exact linear-Gaussian posterior, Kronecker prior ({d['prior']['kernel']}, length "
              f"{d['prior']['length_x_m']:g} m chosen from {ks['lengths_m']} m by CRPS on validation models, std "
              f"{d['prior']['std_kg_m3']:.1f} kg/m^3 and mean {d['prior']['mean_kg_m3']:.1f} kg/m^3 of the training "
              f"densities); Gaussian intervals.")
        elif m == "lg-lowrank":
            w(f"- `{m}`: exact linear-Gaussian posterior, prior = training covariance, rank {d['prior']['rank']} + "
              f"diagonal ({d['prior']['source']}, {100 * d['prior']['explained_variance']:.1f} % of the variance in "
              f"the low-rank part); Gaussian intervals.")
        elif m == "rto-lowrank":
            w(f"- `{m}`: {d['samples']} perturb-and-optimise samples of the same posterior; intervals from the "
              "sample quantiles (exact for a fixed prior, each perturbed problem solved exactly).")
        elif m == "pcn-vae":
            o = d["options"]
            w(f"- `{m}`: pCN MCMC in the shipped VAE's {o['latent']}-dimensional latent, {o['chains']} chains x "
              f"{o['steps']} steps (burn-in {o['burn']}, thin {o['thin']}, MAP start after {o['init_steps']} Adam "
              f"steps), data likelihood at the stated noise; acceptance {d['acceptance_mean']}, median data fit "
              f"chi {d['chi_median']} (1 = noise level); intervals from the sample quantiles.")
    sub = res["subset"]
    w(f"\n### All methods on the common subset ({sub['models']} test models: the first {sub['per_family']} of each "
      "family)\n")
    w("| method | family | models | coverage 68 % / 95 % | CRPS (kg/m^3) | model error of mean | s / model |")
    w("|---|---|---|---|---|---|---|")
    for m, t in res["test_subset"].items():
        for f in ["all"] + res["families"]:
            if f in t:
                s = t[f]
                w(f"| {m} | {f} | {s['models']} | {_fmt_cov(s['coverage'])} | {s['crps']} | "
                  f"{s['model_error_mean']} | {s['seconds_per_model']} |")
    b = res["best_calibrated"]
    bc = res["test_subset"][b]["all"]["coverage"]
    ce = res["calibration_error"]
    w(f"\n**Best calibrated** (smallest |cov68 - 68 %| + |cov95 - 95 %| over all cells of the subset; `rto-*` "
      f"are draws of the `lg-*` posterior with the same prior and are not ranked separately): **`{b}`**, covering "
      f"{_fmt_cov(bc)}. That calibration error, in percentage points, per method: "
      + ", ".join(f"`{m}` {100 * v:.1f}" for m, v in ce["subset"].items())
      + " (subset); " + ", ".join(f"`{m}` {100 * v:.1f}" for m, v in ce["all_test"].items())
      + f" (all {res['n_test']} test models, where "
      f"`{res['best_calibrated_all_test']}` is best). No method is calibrated on these models: see the notes.")
    lin = sorted(ce["all_test"].values())
    if len(lin) > 1 and lin[1] - lin[0] < 0.01:
        w("The linear-Gaussian methods are a near tie on this rule (less than 1 percentage point apart on all test "
          "models); CRPS separates them: " + ", ".join(f"`{m}` {t['all']['crps']}" for m, t in res["test_all"].items())
          + " kg/m^3 on all test models.")
    w("")
    w("### Linear-Gaussian methods on all test models\n")
    w("| method | family | models | coverage 68 % / 95 % | CRPS (kg/m^3) | model error of mean | s / model |")
    w("|---|---|---|---|---|---|---|")
    for m, t in res["test_all"].items():
        for f in ["all"] + res["families"]:
            s = t[f]
            w(f"| {m} | {f} | {s['models']} | {_fmt_cov(s['coverage'])} | {s['crps']} | {s['model_error_mean']} | "
              f"{s['seconds_per_model']} |")
    w("\nSeconds per model exclude the one-off build of `LinearGaussian` (operator x prior, "
      + ", ".join(f"`{m}` {d['build_seconds']} s" for m, d in res["methods"].items() if "build_seconds" in d)
      + "), shared by every data vector.\n")
    w("Kronecker length-scale selection on the validation split (mean CRPS / coverage 68 %, 95 %):\n")
    w("| length (m) | CRPS | coverage |\n|---|---|---|")
    for k, v in ks["validation"].items():
        w(f"| {float(k):g} | {v['crps']} | {_fmt_cov(v['coverage'])} |")
    w(f"\n## 3. Posterior std at n = {t2['n']}\n")
    w(f"`LinearGaussian` on the `{t2['operator']}` operator, {t2['n_cells']:,} cells, {t2['n_data']} data, Kronecker "
      f"prior ({t2['prior']['kernel']}, {t2['prior']['length_x_m']:g} m): building C A^T and A C A^T "
      f"({t2['n_data']} adjoint + {t2['n_data']} forward products, {t2['n_data']} prior applications) took "
      f"{t2['build_seconds']} s, the Cholesky factor, mean and per-cell std {t2['posterior_seconds']} s: "
      f"**{t2['std_seconds']} s** in all (operator set-up {t2['operator_seconds']} s before that; load average "
      f"{t2['load_before']} before, {t2['load_after']} after).\n")
    w("## Figures\n")
    w(f"![reliability]({rel_png.name})\n")
    w(f"![maps]({maps_png.name})\n")
    w("## Notes\n")
    w("- The linear-Gaussian intervals are exact when the prior is right (section 1). On the test split the "
      "prior is a model of the data set's densities, so their coverage measures how well that Gaussian describes "
      "blocks, layers, faults, ...; it is not nominal by construction.")
    w("- Perturb-and-optimise samples are posterior draws only for a fixed prior (regularisation weight) with every "
      "perturbed problem solved to convergence; choosing the weight per sample or stopping at the discrepancy "
      "level breaks this (tests/test_uncertainty.py measures the wrong spread of early-stopped draws).")
    w("- pCN samples the posterior of the VAE's latent vector: its spread is the uncertainty within the "
      "generator's range, and it cannot cover models the generator cannot produce.")
    md = out / "uncertainty.md"
    atomic_write_text(md, "\n".join(L) + "\n")
    return md, js, rel_png, maps_png


def run(out="reports", quick=False, log=print, *, pcn_per_family=None):
    """Measure and write the report into ``out``; return the paths written."""
    res, fig = measure(quick=quick, log=log, pcn_per_family=pcn_per_family)
    return write(res, fig, out)
