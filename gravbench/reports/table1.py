"""Table I for gravbench: providers alone and the CNN followed by each refiner.

``run_table1(...)`` evaluates, on the held-out ``test`` split of a standard
data set (default ``paper-50``, never used in training or model selection),
with 1 % noise and without noise:

* every registered provider alone (``zero``, ``tikhonov``, ``depth-weighted``,
  ``cnn``, and ``vae`` / ``gan`` / ``dip`` when present; providers that fail
  to load, e.g. missing weights or torch, are skipped with a note);
* the CNN followed by each refiner (``gd``, ``gmres``, ``lgmres``, ``icg``,
  ``cgls``, ``tikhonov`` where :func:`gravbench.refiners.names` has them),
  called as ``gravbench.refiners.run(name, op, g, x0=cnn_model, sigma=sigma)``
  (``sigma=None`` on noise-free data, with the paper's profile there);

* ``prior-mean``: the training split's mean model for every test model (no
  data used): the data-free baseline a network must beat;

reporting model error ``||rho_hat - rho|| / ||rho||`` (the paper's metric,
against the absolute density), the **anomaly error**
``||rho_hat - rho|| / ||rho - p||`` with ``p`` the training split's mean depth
profile (the error relative to what a fixed prior does not already know), the
data misfit ``||A rho_hat - g|| / ||g||`` (mean, median, 90th percentile), the
reduced chi-squared with the success rate and the over-fitted count of the
one success rule (:func:`gravbench.metrics.is_success`; noisy data
only: noise-free data have no success rate, only a misfit), and wall seconds
per model, beside the seed paper's numbers (docs/paper.md).
``write_report`` renders ``reports/table1.md`` (``paper-50``) or
``reports/table1-<dataset>.md``, a JSON file and PNG figures in the layout of
the paper's figures 8-11 (true vs estimated models).

For an ``fwi`` data set (absolute densities) the report adds an independent
check: the CNN on OpenFWI-style models drawn by :func:`independent_fwi_models`,
a generator written separately from :mod:`gravbench.data` (NumPy, other
layer-shape code and velocity law), so the network is not only judged on
its own generator's models.

Sample counts: the cheap providers (``zero``, ``cnn``) see ``samples``
models; the classical direct solvers and the refiners the first
``refine_samples``; the latent searches and the deep image prior the first
``latent_samples``. The report states every count.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .._atomic import atomic_write_text

from .._cmdline import command_line
from .._mpl import pyplot as _plt
from .._mpl import model_panel, save_png
from .. import data
from .. import providers as _providers
from .. import refiners as _refiners
from .._linalg import single_thread_blas
from ..providers import latent as _LP
from ..providers.cnn import weights_for
from .. import metrics as metrics_rule
from ..metrics import chi2s, fit_status, model_errors, success_band
from ..bench.runner import skip_reason

__all__ = ["run", "run_table1", "targets", "write_report", "PAPER", "independent_fwi_models", "training_prior"]

#: The seed paper's Table I (docs/paper.md): model error, data misfit on its test set.
PAPER = {
    "cnn": (0.049, 0.0027),
    "vae": (0.121, 9.2e-5),
    "gan": (0.095, 3.1e-5),
    "cnn+gd": (0.048, 9.8e-4),
    "cnn+gmres": (0.047, 5.1e-5),
    "cnn+lgmres": (0.046, 3.5e-5),
    "cnn+icg": (0.049, 4.1e-4),
}

_CHEAP = ("zero", "cnn")
_SLOW = ("vae", "gan", "dip")
_REFINERS = ("gd", "gmres", "lgmres", "icg", "cgls", "tikhonov")


def _stats(v):
    v = np.asarray(v, dtype=np.float64)
    return {"mean": float(v.mean()), "median": float(np.median(v)), "p90": float(np.quantile(v, 0.9))}


def _metrics(A, R, rho, G, sigma, profile=None):
    """Per-sample metrics; ``profile`` (nz,) is the training mean depth profile of the anomaly error."""
    R = R.reshape(len(R), -1)
    rf = rho.reshape(len(R), -1)
    pred = R @ A.T
    mis = np.linalg.norm(pred - G, axis=1) / np.linalg.norm(G, axis=1)
    out = {"model_error": model_errors(rf, R), "misfit": mis}
    if profile is not None:
        # the same error measured against the anomaly: ||R - rho|| / ||rho - profile||
        nz = len(profile)
        anom = rf - np.repeat(np.asarray(profile, np.float64)[:, None], rf.shape[1] // nz, 1).ravel()[None, :]
        out["anomaly_error"] = np.linalg.norm(R - rf, axis=1) / np.maximum(np.linalg.norm(anom, axis=1), 1e-300)
    if sigma is not None:
        out["chi2"] = chi2s(pred - G, sigma)
    return out


def _row(m, count, seconds, n_data=None, **extra):
    """A table row: statistics of every per-sample metric, plus success / over-fitted counts (noisy data)."""

    row = {"count": int(count), "seconds": float(seconds), **extra, **{k: _stats(v) for k, v in m.items()}}
    if "chi2" in m and n_data:
        st = [fit_status(float(c), int(n_data)) for c in m["chi2"]]
        row["success_rate"] = float(np.mean([x == "success" for x in st]))
        row["overfit"] = int(sum(x == "over-fitted" for x in st))
    return row


def training_prior(dataset):
    """``(mean model (nz, nx), mean depth profile (nz,))`` of the training split of the standard set ``dataset``, kg/m^3."""
    tr = data.standard(dataset, split="train", noise=data.STANDARD[dataset].noise, progress=False)
    mean = np.asarray(tr.rho, dtype=np.float64).mean(0)
    return mean, mean.mean(1)


def independent_fwi_models(count, shape, seed=0):
    """OpenFWI-style absolute-density models drawn independently of :mod:`gravbench.data` (NumPy), kg/m^3.

    Written apart from the ``fwi`` family on purpose, with other shape code:
    interfaces are cubic interpolants through 4-7 random control depths
    (FlatVel-like when their spread is zero, in half of the models), layer
    velocities start at ``U(1500, 2600)`` m/s and grow by ``U(150, 900)`` m/s
    per layer (capped at 4500), one model in three has a single planar fault
    that shifts the hanging wall down or up by ``U(0.04, 0.2)`` of the depth,
    and ``rho = 310 V^0.25``. 2-5 interfaces (3-6 layers).

    Parameters
    ----------
    count : int
    shape : (nz, nx)
    seed : int
        ``numpy.random.default_rng(seed)``.

    Returns
    -------
    (count, nz, nx) float64
    """
    from scipy.interpolate import CubicSpline

    nz, nx = shape
    rng = np.random.default_rng(seed)
    xc = (np.arange(nx) + 0.5) / nx
    zc = (np.arange(nz) + 0.5) / nz
    out = np.empty((count, nz, nx))
    for s in range(count):
        n_if = int(rng.integers(2, 6))
        base = np.sort(rng.uniform(0.08, 0.95, n_if))
        ncp = int(rng.integers(4, 8))
        xcp = np.linspace(0.0, 1.0, ncp)
        spread = 0.0 if rng.random() < 0.5 else rng.uniform(0.02, 0.08)
        shape_cp = rng.normal(0.0, 1.0, ncp) * spread
        curve = CubicSpline(xcp, shape_cp)(xc)  # one shared shape: layers stay in order
        vel = [rng.uniform(1500.0, 2600.0)]
        for _ in range(n_if):
            vel.append(min(4500.0, vel[-1] + rng.uniform(150.0, 900.0)))
        dens = 310.0 * np.asarray(vel) ** 0.25
        X, Z = np.meshgrid(xc, zc)
        Zs = Z.copy()
        if rng.random() < 1.0 / 3.0:
            x0, slope = rng.uniform(0.2, 0.8), np.tan(np.radians(rng.uniform(10.0, 45.0))) * rng.choice([-1.0, 1.0])
            throw = rng.uniform(0.04, 0.2) * rng.choice([-1.0, 1.0])
            hang = X > x0 + slope * Z
            Zs = np.where(hang, Z - throw, Z)
        depth_if = base[:, None] + curve[None, :]  # (n_if, nx)
        layer = (Zs[None, :, :] > depth_if[:, None, :]).sum(0)
        out[s] = dens[layer]
    return out


def _limits():
    return single_thread_blas()


def run_table1(*, dataset="paper-50", samples=1000, refine_samples=200, latent_samples=10, noises=(0.01, 0.0),
               providers=None, refiners=None, seed=0, progress=True, log=print, cnn_weights=None,
               independent=200):
    """Evaluate providers and CNN + refiners on the test split; returns a JSON-able dict with raw arrays.

    Parameters
    ----------
    dataset : str
        Standard data set name.
    samples, refine_samples, latent_samples : int
        Test models used for cheap providers, for classical solvers / refiners, for latent / DIP searches.
    noises : sequence of float
        Noise levels (fraction of each component's peak; 0 = noise-free).
    providers, refiners : sequence of str, optional
        Restrict the rows (default: every available one).
    cnn_weights : path, optional
        A CNN weight file to use instead of the shipped one.
    independent : int
        Models of :func:`independent_fwi_models` for the independent check (``fwi`` data sets; 0 = skip).
    """
    if not (1 <= refine_samples <= samples and 1 <= latent_samples <= samples):
        raise ValueError("need 1 <= refine_samples, latent_samples <= samples")
    spec = data.STANDARD.get(dataset)
    absolute = spec is not None and spec.families == "fwi"
    all_prov = _providers.names()
    default_prov = ("zero", "prior-mean", "tikhonov", "depth-weighted", "cnn", "vae", "gan", "dip")
    prov_names = list(providers) if providers else [p for p in default_prov if p in all_prov or p == "prior-mean"]
    ref_names = list(refiners) if refiners else [r for r in _REFINERS if r in _refiners.names()]
    notes = []
    if absolute and "dip" in prov_names and not providers:
        prov_names.remove("dip")
        notes.append("dip skipped: its density bounds are those of zero-mean contrasts (+-1000 kg/m^3), which do not "
                      "cover absolute densities of 1900-2600 kg/m^3")
    results = {"dataset": dataset, "noises": list(noises), "samples": samples, "refine_samples": refine_samples,
               "latent_samples": latent_samples, "rows": {}, "notes": notes, "family": {}}
    missing_ref = [r for r in _REFINERS if r not in _refiners.names()]
    if missing_ref:
        notes.append(f"refiners not available in this build, skipped: {', '.join(missing_ref)}")
    prior_model, prior_profile = training_prior(dataset)
    results["prior_profile"] = prior_profile.tolist()
    keep = {}
    with _limits():
        for noise in noises:
            ds = data.standard(dataset, split="test", noise=noise)
            prob = ds.problem
            A = prob.sensitivity()
            op = prob.operator("dense")
            rho = np.asarray(ds.rho[:samples], dtype=np.float64)
            G = np.asarray(ds.g[:samples], dtype=np.float64)
            S = np.asarray(ds.sigma[:samples], dtype=np.float64) if noise > 0 else None
            fam = np.asarray(ds.family[:samples])
            tag = f"{noise:g}"
            nd = results["n_data"] = int(prob.n_data)
            rows = results["rows"][tag] = {}

            def metrics(R, cnt):
                return _metrics(A, R, rho[:cnt], G[:cnt], None if S is None else S[:cnt], prior_profile)

            # the noise level itself: the true model's misfit
            rows["true model"] = _row(metrics(rho, samples), samples, 0.0, nd)
            cnn_out = None
            for name in prov_names:
                cnt = samples if name in _CHEAP + ("prior-mean",) else (latent_samples if name in _SLOW else refine_samples)
                try:
                    t0 = time.perf_counter()
                    if name == "prior-mean":  # the training mean model, no data used
                        R = np.repeat(prior_model[None], cnt, 0)
                    else:
                        if name == "cnn" and cnn_weights is not None:
                            p = _providers.get("cnn", weights=cnn_weights)
                        elif name in ("vae", "gan"):
                            p = _providers.get(name, n=prob.grid.nx)
                        else:
                            p = _providers.get(name)
                        if name == "cnn":  # load outside the timer (picks the weights trained for this problem)
                            p.batch(G[:1], prob)
                        t0 = time.perf_counter()
                        if name in _SLOW:
                            R = np.stack([p(G[i], prob, sigma=None if S is None else S[i], seed=seed + i)
                                          for i in range(cnt)])
                        else:
                            R = p.batch(G[:cnt], prob, sigma=None if S is None else S[:cnt], seed=seed)
                    sec = (time.perf_counter() - t0) / cnt
                except (ImportError, ValueError, RuntimeError, NotImplementedError) as exc:

                    what = "skipped" if skip_reason(exc) is not None else "failed"  # no weights / no torch: skipped
                    notes.append(f"provider {name!r} {what} at noise {tag}: {type(exc).__name__}: {str(exc)[:200]}")
                    continue
                m = metrics(R, cnt)
                rows[name] = _row(m, cnt, sec, nd)
                keep[(tag, name)] = (R, m)
                if name == "cnn":
                    cnn_out = R
                    if refine_samples < cnt:  # the same subset as the refiner rows, for like-for-like comparisons
                        sub = {k: v[:refine_samples] for k, v in m.items()}
                        rows[f"cnn [first {refine_samples}]"] = _row(sub, refine_samples, sec, nd)
                if log:
                    log(f"[noise {tag}] {name:16s} n={cnt:5d}  model err {rows[name]['model_error']['mean']:.4f}  "
                        f"anomaly err {rows[name]['anomaly_error']['mean']:.4f}  "
                        f"misfit {rows[name]['misfit']['mean']:.3g}  {sec * 1e3:.2f} ms/model")
            if cnn_out is None:
                notes.append(f"no CNN output at noise {tag}: refiner rows skipped")
                continue
            for r in ref_names:
                cnt = refine_samples
                R = np.empty((cnt, prob.n_cells))
                niter = np.empty(cnt)
                opts = {} if noise > 0 else {"profile": "paper"}
                t0 = time.perf_counter()
                try:
                    for i in range(cnt):
                        res = _refiners.run(r, op, G[i], x0=cnn_out[i], sigma=None if S is None else S[i], **opts)
                        R[i] = np.asarray(res.x).ravel()
                        niter[i] = res.niter
                except (ValueError, RuntimeError) as exc:
                    notes.append(f"refiner {r!r} failed at noise {tag}: {type(exc).__name__}: {str(exc)[:200]}")
                    continue
                sec = (time.perf_counter() - t0) / cnt
                m = metrics(R, cnt)
                key = f"cnn+{r}"
                rows[key] = _row(m, cnt, sec, nd, niter_mean=float(niter.mean()))
                keep[(tag, key)] = (R, m)
                if log:
                    log(f"[noise {tag}] {key:16s} n={cnt:5d}  model err {rows[key]['model_error']['mean']:.4f}  "
                        f"misfit {rows[key]['misfit']['mean']:.3g}  {sec * 1e3:.2f} ms/model")
            # per-family table (CNN on every sample; tikhonov and the best refiner on refine_samples)
            fams = results["family"][tag] = {}
            names_f = list(ds.family_names)
            if len(np.unique(fam)) > 1:
                for key in ["cnn", "tikhonov", "depth-weighted"] + [f"cnn+{r}" for r in ref_names]:
                    if (tag, key) not in keep:
                        continue
                    _, m = keep[(tag, key)]
                    me = m["model_error"]
                    f = fam[:len(me)]
                    fams[key] = {names_f[k]: {"count": int(np.sum(f == k)), **_stats(me[f == k])}
                                 for k in range(len(names_f)) if np.any(f == k)}
            results.setdefault("_examples", {})[tag] = {
                "rho": rho[:refine_samples], "family": fam[:refine_samples], "family_names": names_f,
                "shape": prob.shape, "tag": tag, "absolute": absolute,
                "models": {k[1]: v[0][:refine_samples] for k, v in keep.items() if k[0] == tag}}
            if absolute and independent and noise == 0 and (tag, "cnn") in keep:
                results["independent"] = _independent_check(prob, A, prior_model, prior_profile, int(independent),
                                                             cnn_weights, log)
    try:  # the CNN's training history (validation curve) for the report

        wpath = Path(cnn_weights) if cnn_weights else weights_for(data.STANDARD[dataset].problem()) \
            if dataset in data.STANDARD else None
        if wpath is not None:
            man = json.loads(Path(wpath).with_suffix(".json").read_text())
            results["cnn_manifest"] = {k: man.get(k) for k in ("file", "sha256", "n_params", "config", "training",
                                                                "reproduce", "command")}
            results["cnn_manifest"]["history"] = man.get("metrics", {}).get("history")
    except (ValueError, OSError, ImportError):
        pass
    return results


def _independent_check(prob, A, prior_model, prior_profile, count, cnn_weights, log):
    """The CNN (and the prior mean) on :func:`independent_fwi_models`, noise-free."""
    rho = independent_fwi_models(count, prob.shape, seed=2024)
    G = rho.reshape(count, -1) @ A.T
    p = _providers.get("cnn", weights=cnn_weights) if cnn_weights else _providers.get("cnn")
    R = p.batch(G, prob)
    m = _metrics(A, R, rho, G, None, prior_profile)
    m0 = _metrics(A, np.repeat(prior_model[None], count, 0), rho, G, None, prior_profile)
    out = {"count": count, "generator": "gravbench.reports.table1.independent_fwi_models(count, shape, seed=2024)",
           "cnn": {k: _stats(v) for k, v in m.items()}, "prior-mean": {k: _stats(v) for k, v in m0.items()},
           "_models": {"rho": rho[:4], "cnn": R[:4]}}
    if log:
        log(f"[independent] cnn model err {out['cnn']['model_error']['mean']:.4f} "
            f"(prior-mean {out['prior-mean']['model_error']['mean']:.4f}) on {count} independent models")
    return out


def _fmt(x):
    if x is None:
        return "-"
    if x == 0:
        return "0"
    return f"{x:.3g}" if abs(x) < 1e-2 or abs(x) >= 100 else f"{x:.4f}"


def _pct_tag(tag):
    return f"{float(tag) * 100:g}pct"


def _figures(res, out_dir, stem):
    plt = _plt()
    exs = res.get("_examples") or {}
    paths = []
    order = ("prior-mean", "cnn", "cnn+gd", "cnn+gmres", "cnn+lgmres", "cnn+icg", "cnn+cgls", "cnn+tikhonov",
             "tikhonov", "vae", "gan", "dip")
    for tag, ex in exs.items():
        rho, fam, names_f, shape, models = ex["rho"], ex["family"], ex["family_names"], ex["shape"], ex["models"]
        if len(np.unique(fam)) > 1:  # one example per family
            picks = [int(np.flatnonzero(fam == k)[0]) for k in range(len(names_f)) if np.any(fam == k)]
        else:
            picks = list(range(min(4, len(rho))))
        cols = ["true"] + [k for k in order if k in models and len(models[k]) > max(picks)][:7]
        fig, axes = plt.subplots(len(picks), len(cols), figsize=(2.1 * len(cols), 2.0 * len(picks) + 0.4),
                                 squeeze=False)
        for r, i in enumerate(picks):
            if ex["absolute"]:
                vmin, vmax = float(rho[i].min()), float(rho[i].max())
            else:
                vmin, vmax = None, max(1.0, float(np.abs(rho[i]).max()))
            for c, k in enumerate(cols):
                ax = axes[r, c]
                img = rho[i] if k == "true" else np.asarray(models[k][i]).reshape(shape)
                im = model_panel(ax, img, vmin=vmin, vmax=vmax)
                if k != "true":
                    err = np.linalg.norm(img - rho[i]) / np.linalg.norm(rho[i])
                    ax.set_title(f"{k}\nerr {err:.3f}", fontsize=7)
                else:
                    ax.set_title(f"true ({names_f[fam[i]]} #{i})", fontsize=7)
            fig.colorbar(im, ax=axes[r, -1], fraction=0.046, pad=0.04)
        what = ("absolute density, kg/m^3 (colour range: the true model's)" if ex["absolute"]
                else "kg/m^3 (colour range +-max|true|)")
        fig.suptitle(f"{res['dataset']} test models, noise {float(tag) * 100:g} %: true vs estimated "
                     f"(as the paper's figures 8-11); {what}", fontsize=9)
        fig.tight_layout()
        p = out_dir / f"{stem}_examples_{_pct_tag(tag)}.png"
        save_png(fig, p, dpi=100)
        paths.append(p)
    if exs:  # error distributions, one panel per noise level
        fig, axes = plt.subplots(1, len(exs), figsize=(6 * len(exs), 3.6), squeeze=False)
        for ax, (tag, ex) in zip(axes[0], exs.items()):
            rho, models = ex["rho"], ex["models"]
            errs = {}
            for k in ("prior-mean", "tikhonov", "depth-weighted", "cnn", "cnn+gd", "cnn+gmres", "cnn+lgmres",
                      "cnn+icg"):
                if k in models:
                    n = len(models[k])
                    errs[k] = np.linalg.norm(models[k].reshape(n, -1) - rho[:n].reshape(n, -1), axis=1) \
                        / np.linalg.norm(rho[:n].reshape(n, -1), axis=1)
            hi = max(float(np.quantile(e, 0.99)) for e in errs.values()) if errs else 1.0
            for k, e in errs.items():
                ax.hist(e, bins=50, range=(0, hi), histtype="step", label=f"{k} (mean {e.mean():.3f})")
            ax.set_xlabel("relative model error ||rho_hat - rho|| / ||rho||")
            ax.set_ylabel("test models")
            ax.set_title(f"noise {float(tag) * 100:g} %")
            ax.legend(fontsize=7)
        fig.tight_layout()
        p = out_dir / f"{stem}_errors.png"
        save_png(fig, p, dpi=100)
        paths.append(p)
    hist = (res.get("cnn_manifest") or {}).get("history")
    if hist:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ep = [h["epoch"] + 1 for h in hist]
        ax.plot(ep, [h["val"] for h in hist], "o-", label="validation: mean relative model error (noise-free)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation model error")
        ax2 = ax.twinx()
        ax2.plot(ep, [h["train"] for h in hist], "s--", color="C1", label="training loss (scaled MSE)")
        ax2.set_ylabel("training loss")
        ax.set_title(f"CNN training ({res['cnn_manifest'].get('file')})", fontsize=9)
        fig.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        p = out_dir / f"{stem}_training.png"
        save_png(fig, p, dpi=100)
        paths.append(p)
    ind = res.get("independent")
    if ind and "_models" in ind:
        rho, R = ind["_models"]["rho"], ind["_models"]["cnn"]
        fig, axes = plt.subplots(2, len(rho), figsize=(2.2 * len(rho), 4.4), squeeze=False)
        for j in range(len(rho)):
            vmin, vmax = float(rho[j].min()), float(rho[j].max())
            model_panel(axes[0, j], rho[j], vmin=vmin, vmax=vmax, title=f"independent #{j}", fontsize=7)
            img = np.asarray(R[j]).reshape(rho[j].shape)
            model_panel(axes[1, j], img, vmin=vmin, vmax=vmax, fontsize=7,
                        title=f"cnn, err {np.linalg.norm(img - rho[j]) / np.linalg.norm(rho[j]):.3f}")
        fig.suptitle("CNN on models of an independently written OpenFWI-style generator (noise-free)", fontsize=9)
        fig.tight_layout()
        p = out_dir / f"{stem}_independent.png"
        save_png(fig, p, dpi=100)
        paths.append(p)
    return paths


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def write_report(res, out_dir="reports", stem=None, command="gravbench report table1"):
    """Write ``<stem>.md``, ``<stem>.json`` and the figures; returns the Markdown path.

    ``stem`` defaults to ``table1`` for ``paper-50`` and ``table1-<dataset>`` otherwise.
    """

    if stem is None:
        stem = "table1" if res["dataset"] == "paper-50" else f"table1-{res['dataset']}"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = _figures(res, out_dir, stem)
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(_clean(res), indent=1) + "\n")
    nd = res.get("n_data")
    lo, hi = success_band(nd) if nd else (None, None)
    fwi = res["dataset"].startswith("fwi")
    L = [f"# Table I for gravbench ({res['dataset']}, test split)", "",
         f"Regenerate with `{command}`. Held-out `test` split of `{res['dataset']}` (never used in training or "
         f"model selection). Counts: cheap providers (zero, prior-mean, cnn) on the first {res['samples']} test "
         f"models; the classical solvers (tikhonov, depth-weighted) and every CNN + refiner row on the first "
         f"{res['refine_samples']}; latent searches / DIP on the first {res['latent_samples']} (the `n` column "
         "gives each row's count). Noise: 1 % of each component's peak (Gaussian, seeded), and none.", "",
         "Columns: **model err** = ||rho_hat - rho|| / ||rho|| (the paper's metric, against the density as "
         "stored); **anomaly err** = ||rho_hat - rho|| / ||rho - p|| with p the training split's mean depth "
         "profile (the error relative to the part of the model a fixed prior does not know); misfit = "
         "||A rho_hat - g|| / ||g|| (g = the data the method used); chi2 = mean((A rho_hat - g)^2 / sigma^2) "
         "(1 = the noise level). **success** = the share of models with |chi2 - 1| <= 2 sqrt(2/N)"
         + (f" ({lo:.3f} <= chi2 <= {hi:.3f} for N = {nd} data)" if nd else "")
         + ", gravbench's one success rule (`gravbench.metrics.is_success`); **over-fitted** = how many "
         "had chi2 below that band (they fit the noise; not a success). Noise-free data have no success rate: "
         "read the misfit. 'true model' is the noise level (the true density's misfit); 'prior-mean' is the "
         "training split's mean model for every test model (no data used). Refiners run as "
         "`gravbench.refiners.run(name, op, g, x0=cnn, sigma=sigma)` with 1 % noise (default settings, "
         "discrepancy stop: GD / ICG / CGLS at chi2 <= 1, GMRES / LGMRES at the first iterate in the success band); "
         "noise-free, `sigma=None` and `profile=\"paper\"` (the paper's tolerances and iteration caps; GD with "
         "the seed's effective step 2 lr lambda_max = 6.9e-3 rescaled to gravbench's A). Seconds are wall time "
         "per model on a shared 2-core CPU, one BLAS thread (CNN: batched inference). The vae / gan rows are "
         f"the providers' defaults: a search of the latent vector that fits the **data** (`{_LP.PROVIDER_METHOD}`, "
         f"{_LP._DEFAULT_STARTS[_LP.PROVIDER_METHOD]} random starts, at most "
         f"{_LP._DEFAULT_MAXITER[_LP.PROVIDER_METHOD]} iterations, stopped in the success band); the seed's public "
         "latent-search scripts fit G(z) to the true density instead (a projection; see docs/paper.md), and "
         "`reports/latent*.md` report that projection error beside the searches.", ""]
    if fwi:
        L += ["Like for like with the paper: `fwi-51` uses the seed code's geometry (`Problem.seed(51)`: 51 x 51 "
              "cells, 153 stations half a cell above the top row, midpoint kernel) and OpenFWI-style absolute "
              "densities (the `fwi` family: 3-6 flat or curved layers, optionally faulted, P velocity 1500-4500 m/s "
              "increasing with depth, Gardner rho = 310 V^0.25; see `reports/datasets.md`); the CNN is the "
              "paper's network (`arch=\"paper-full\"`). The paper's data set cannot be downloaded, so the models "
              "are gravbench's own: compare the *structure* of the numbers (CNN vs prior-mean, refiners vs CNN) "
              "rather than the digits.", ""]
    else:
        L += ["Reading it: gravbench's `paper-50` test models come from six families of zero-mean contrasts "
              "(blocks, layers, faults, intrusions, channels, smooth random fields; see `reports/datasets.md`), "
              "with random signs and no background, so every method's relative model error is far above the seed "
              "paper's, whose models are absolute densities with a background that dominates ||rho||. "
              "`reports/table1-fwi-51.md` is the like-for-like comparison; this table is the harder benchmark. "
              f"The vae / gan / dip rows use only the first {res['latent_samples']} test models (a search each); "
              "`reports/latent.md` has the latent searches' full study.", ""]
    L += ["'paper model err / misfit' are the paper's Table I values, not a run of gravbench.", ""]
    for tag, rows in res["rows"].items():
        noisy = float(tag) > 0
        L += [f"## Noise {float(tag) * 100:g} %", "",
              "| method | n | model err mean | median | p90 | anomaly err mean | misfit mean | median | p90 "
              "| chi2 median | success | over-fitted | s / model | paper model err | paper misfit |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for k, r in rows.items():
            pe, pm = PAPER.get(k, (None, None))
            c2 = r.get("chi2", {}).get("median")
            sr = r.get("success_rate")
            succ = f"{100 * sr:.0f}%" if (noisy and sr is not None) else "-"
            over = str(r["overfit"]) if (noisy and r.get("overfit") is not None) else "-"
            ae = r.get("anomaly_error", {}).get("mean")
            L.append(f"| {k} | {r['count']} | {_fmt(r['model_error']['mean'])} | {_fmt(r['model_error']['median'])} | "
                     f"{_fmt(r['model_error']['p90'])} | {_fmt(ae)} | {_fmt(r['misfit']['mean'])} | "
                     f"{_fmt(r['misfit']['median'])} | {_fmt(r['misfit']['p90'])} | {_fmt(c2)} | {succ} | {over} | "
                     f"{_fmt(r['seconds'])} | {_fmt(pe)} | {_fmt(pm)} |")
        L.append("")
    for tag, fams in res["family"].items():
        if not fams:
            continue
        keys = list(fams)
        fnames = list(next(iter(fams.values())).keys())
        L += [f"### Model error by family, noise {float(tag) * 100:g} % (mean / median; CNN on {res['samples']}, others on {res['refine_samples']})", "",
              "| family | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for f in fnames:
            cells = []
            for k in keys:
                d = fams[k].get(f)
                cells.append("-" if d is None else f"{d['mean']:.3f} / {d['median']:.3f} (n={d['count']})")
            L.append(f"| {f} | " + " | ".join(cells) + " |")
        L.append("")
    ind = res.get("independent")
    if ind:
        c, p0 = ind["cnn"], ind["prior-mean"]
        L += ["## Independent check: OpenFWI-style models from another generator", "",
              f"{ind['count']} noise-free models drawn by `{ind['generator']}`, written apart from the `fwi` family "
              "(cubic-spline interfaces through random control depths, velocities as a start plus random increments, "
              "planar faults on a third of the models): the network never saw this generator.", "",
              "| method | model err mean | median | p90 | anomaly err mean | misfit mean |", "|---|---|---|---|---|---|",
              f"| cnn | {_fmt(c['model_error']['mean'])} | {_fmt(c['model_error']['median'])} | "
              f"{_fmt(c['model_error']['p90'])} | {_fmt(c['anomaly_error']['mean'])} | {_fmt(c['misfit']['mean'])} |",
              f"| prior-mean | {_fmt(p0['model_error']['mean'])} | {_fmt(p0['model_error']['median'])} | "
              f"{_fmt(p0['model_error']['p90'])} | {_fmt(p0['anomaly_error']['mean'])} | {_fmt(p0['misfit']['mean'])} |",
              ""]
    man = res.get("cnn_manifest")
    if man:
        tr = man.get("training") or {}
        hist = man.get("history") or []
        L += ["## The CNN", "",
              f"`{man.get('file')}` (sha256 `{(man.get('sha256') or '')[:12]}...`, {man.get('n_params', 0):,} "
              f"parameters, arch `{(man.get('config') or {}).get('arch')}`), trained for {tr.get('epochs_run')} "
              f"epochs ({tr.get('stopped')}, {tr.get('seconds')} s, best epoch {tr.get('best_epoch')}); "
              f"reproduce with `{man.get('reproduce')}`.", ""]
        if hist:
            L += ["| epoch | train loss | validation model error | lr | seconds |", "|---|---|---|---|---|"]
            L += [f"| {h['epoch'] + 1} | {h['train']:.4g} | {h['val']:.4f} | {h['lr']:.3g} | {h['seconds']:.0f} |"
                  for h in hist]
            L.append("")
    if res["notes"]:
        L += ["## Notes", ""] + [f"- {n}" for n in res["notes"]] + [""]
    extra = res.get("summary_lines")
    if extra:
        L += ["## Targets", ""] + [f"- {s}" for s in extra] + [""]
    if figs:
        L += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figs] + [""]
    md = out_dir / f"{stem}.md"
    atomic_write_text(md, "\n".join(L))
    return md


def targets(res):
    """One line per target, computed from the results (met / NOT met)."""
    out = []
    fwi = res["dataset"].startswith("fwi")
    for tag, rows in res["rows"].items():
        lvl = f"noise {float(tag) * 100:g} %"
        noisy = float(tag) > 0
        if "cnn" not in rows:
            out.append(f"{lvl}: no CNN row (weights missing?)")
            continue
        sub = f"cnn [first {res['refine_samples']}]"
        cnn_row = rows[sub] if sub in rows else rows["cnn"]  # same models as the classical / refiner rows
        c = cnn_row["model_error"]["mean"]
        if fwi and not noisy:
            full = rows["cnn"]["model_error"]["mean"]
            pm = rows.get("prior-mean", {}).get("model_error", {}).get("mean")
            out.append(f"{lvl}: CNN mean model error {full:.4f} (paper 0.049): "
                       f"{'met' if full <= 0.049 else 'NOT met'} (target <= 0.049)")
            if pm:
                out.append(f"{lvl}: CNN / prior-mean model error {full:.4f} / {pm:.4f} = {full / pm:.3f}: "
                           f"{'met' if full <= 0.7 * pm else 'NOT met'} (target <= 0.7)")
            out.append(f"{lvl}: CNN mean relative misfit {rows['cnn']['misfit']['mean']:.3g} (paper 0.0027)")
        elif not fwi:
            cls = {k: rows[k]["model_error"]["mean"] for k in ("zero", "tikhonov", "depth-weighted") if k in rows}
            if cls:
                best = min(cls, key=cls.get)
                ok = c <= 0.5 * cls[best]
                out.append(f"{lvl}: CNN mean model error {c:.4f} vs best classical ({best}) {cls[best]:.4f}: ratio "
                           f"{c / cls[best]:.3f} (target <= 0.5): {'met' if ok else 'NOT met'}")
        cm = cnn_row["misfit"]["mean"]
        for k, r in rows.items():
            if not k.startswith("cnn+"):
                continue
            me, mis = r["model_error"]["mean"], r["misfit"]["mean"]
            tm = rows.get("true model", {}).get("misfit", {}).get("mean")
            note = (f"{lvl}: {k}: mean model error {me:.4f} (CNN alone {c:.4f}, {100 * (me / c - 1):+.1f} %), "
                    f"mean misfit {mis:.3g} (CNN alone {cm:.3g}; noise level {tm:.3g})")
            if not noisy and k in ("cnn+gd", "cnn+gmres", "cnn+lgmres", "cnn+icg"):
                ok = mis < cm and me <= 1.01 * c
                note += f": lowers the misfit without raising the error by > 1 %: {'met' if ok else 'NOT met'}"
            if noisy and "chi2" in r:
                lo, hi = metrics_rule.success_band(res["n_data"])   # looked up at call time: the one rule
                note += (f", median chi2 {r['chi2']['median']:.3g} (success band {lo:.3f}..{hi:.3f}), success "
                         f"{100 * r.get('success_rate', 0):.0f}%, over-fitted {r.get('overfit', 0)} of {r['count']}")
                if k in ("cnn+gmres", "cnn+lgmres"):
                    note += f": {'met' if r.get('success_rate', 0) >= 0.99 else 'NOT met'} (ends in the success band)"
            out.append(note)
    ind = res.get("independent")
    if ind:
        out.append(f"independent OpenFWI-style models ({ind['count']}, noise-free): CNN mean model error "
                   f"{ind['cnn']['model_error']['mean']:.4f}, prior-mean {ind['prior-mean']['model_error']['mean']:.4f}")
    return out


def run(out="reports", quick=False, log=print, *, dataset="paper-50", samples=1000, refine_samples=1000,
        latent_samples=3, seed=0):
    """The reports' common entry point: :func:`run_table1`, the target lines (:func:`targets`), then
    :func:`write_report` into ``out``. ``quick``: 20 / 10 / 1 models (a smoke run).

    Returns ``(path of the .md, results)``; ``results["notes"]`` names rows that failed.
    """
    if quick:
        samples, refine_samples, latent_samples = min(samples, 20), min(refine_samples, 10), min(latent_samples, 1)
    refine_samples = min(refine_samples, samples)
    latent_samples = min(latent_samples, samples)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res = run_table1(dataset=dataset, samples=samples, refine_samples=refine_samples,
                     latent_samples=latent_samples, seed=seed, log=log)
    res["summary_lines"] = targets(res)
    cmd = command_line(f"gravbench report table1 --dataset {dataset}", [
        ("--samples", samples, None), ("--refine-samples", refine_samples, None),
        ("--latent-samples", latent_samples, None), ("--seed", seed, 0)])
    return write_report(res, out, command=cmd), res  # table1.md for paper-50, table1-<dataset>.md otherwise
