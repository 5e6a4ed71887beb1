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

reporting model error ``||rho_hat - rho|| / ||rho||`` and data misfit
``||A rho_hat - g|| / ||g||`` (mean, median, 90th percentile), the reduced
chi-squared, and wall seconds per model, beside the seed paper's numbers
(docs/paper.md). ``write_report`` renders ``reports/table1.md``, a
JSON file and PNG figures like the paper's figures 8-11.

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

__all__ = ["run_table1", "write_report", "PAPER"]

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


def _metrics(A, R, rho, G, sigma):
    R = R.reshape(len(R), -1)
    pred = R @ A.T
    me = np.linalg.norm(R - rho.reshape(len(R), -1), axis=1) / np.linalg.norm(rho.reshape(len(R), -1), axis=1)
    mis = np.linalg.norm(pred - G, axis=1) / np.linalg.norm(G, axis=1)
    out = {"model_error": me, "misfit": mis}
    if sigma is not None:
        out["chi2"] = np.mean(((pred - G) / sigma) ** 2, axis=1)
    return out


def _limits():
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1)
    except ImportError:  # pragma: no cover
        from contextlib import nullcontext

        return nullcontext()


def run_table1(*, dataset="paper-50", samples=1000, refine_samples=200, latent_samples=10, noises=(0.01, 0.0),
               providers=None, refiners=None, seed=0, progress=True, log=print, cnn_weights=None):
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
    """
    import gravbench as gb

    if not (1 <= refine_samples <= samples and 1 <= latent_samples <= samples):
        raise ValueError("need 1 <= refine_samples, latent_samples <= samples")
    all_prov = gb.providers.names()
    prov_names = list(providers) if providers else [p for p in ("zero", "tikhonov", "depth-weighted", "cnn", "vae",
                                                                 "gan", "dip") if p in all_prov]
    ref_names = list(refiners) if refiners else [r for r in _REFINERS if r in gb.refiners.names()]
    notes = []
    results = {"dataset": dataset, "noises": list(noises), "samples": samples, "refine_samples": refine_samples,
               "latent_samples": latent_samples, "rows": {}, "notes": notes, "family": {}}
    missing_ref = [r for r in _REFINERS if r not in gb.refiners.names()]
    if missing_ref:
        notes.append(f"refiners not available in this build, skipped: {', '.join(missing_ref)}")
    keep = {}
    with _limits():
        for noise in noises:
            ds = gb.data.standard(dataset, split="test", noise=noise)
            prob = ds.problem
            A = prob.sensitivity()
            op = prob.operator("dense")
            rho = np.asarray(ds.rho[:samples], dtype=np.float64)
            G = np.asarray(ds.g[:samples], dtype=np.float64)
            S = np.asarray(ds.sigma[:samples], dtype=np.float64) if noise > 0 else None
            fam = np.asarray(ds.family[:samples])
            tag = f"{noise:g}"
            results["n_data"] = int(prob.n_data)
            rows = results["rows"][tag] = {}
            # the noise level itself: the true model's misfit
            rows["true model"] = {"count": samples, "seconds": 0.0,
                                  **{k: _stats(v) for k, v in _metrics(A, rho, rho, G, S).items()}}
            cnn_out = None
            for name in prov_names:
                cnt = samples if name in _CHEAP else (latent_samples if name in _SLOW else refine_samples)
                try:
                    if name == "cnn" and cnn_weights is not None:
                        p = gb.providers.get("cnn", weights=cnn_weights)
                    elif name in ("cnn", "vae", "gan"):
                        p = gb.providers.get(name, n=prob.grid.nx)
                    else:
                        p = gb.providers.get(name)
                    if name == "cnn":  # load outside the timer
                        p.batch(G[:1], prob)
                    t0 = time.perf_counter()
                    if name in _SLOW:
                        R = np.stack([p(G[i], prob, sigma=None if S is None else S[i], seed=seed + i) for i in range(cnt)])
                    else:
                        R = p.batch(G[:cnt], prob, sigma=None if S is None else S[:cnt], seed=seed)
                    sec = (time.perf_counter() - t0) / cnt
                except (ImportError, ValueError, RuntimeError, NotImplementedError) as exc:
                    from .runner import skip_reason

                    what = "skipped" if skip_reason(exc) is not None else "failed"  # no weights / no torch: skipped
                    notes.append(f"provider {name!r} {what} at noise {tag}: {type(exc).__name__}: {str(exc)[:200]}")
                    continue
                m = _metrics(A, R, rho[:cnt], G[:cnt], None if S is None else S[:cnt])
                rows[name] = {"count": cnt, "seconds": sec, **{k: _stats(v) for k, v in m.items()}}
                keep[(tag, name)] = (R, m)
                if name == "cnn":
                    cnn_out = R
                    if refine_samples < cnt:  # the same subset as the refiner rows, for like-for-like comparisons
                        sub = {k: v[:refine_samples] for k, v in m.items()}
                        rows[f"cnn [first {refine_samples}]"] = {"count": refine_samples, "seconds": sec,
                                                                 **{k: _stats(v) for k, v in sub.items()}}
                if log:
                    log(f"[noise {tag}] {name:16s} n={cnt:5d}  model err {rows[name]['model_error']['mean']:.4f}  "
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
                        res = gb.refiners.run(r, op, G[i], x0=cnn_out[i], sigma=None if S is None else S[i], **opts)
                        R[i] = np.asarray(res.x).ravel()
                        niter[i] = res.niter
                except (ValueError, RuntimeError) as exc:
                    notes.append(f"refiner {r!r} failed at noise {tag}: {type(exc).__name__}: {str(exc)[:200]}")
                    continue
                sec = (time.perf_counter() - t0) / cnt
                m = _metrics(A, R, rho[:cnt], G[:cnt], None if S is None else S[:cnt])
                key = f"cnn+{r}"
                rows[key] = {"count": cnt, "seconds": sec, "niter_mean": float(niter.mean()),
                             **{k: _stats(v) for k, v in m.items()}}
                keep[(tag, key)] = (R, m)
                if log:
                    log(f"[noise {tag}] {key:16s} n={cnt:5d}  model err {rows[key]['model_error']['mean']:.4f}  "
                        f"misfit {rows[key]['misfit']['mean']:.3g}  {sec * 1e3:.2f} ms/model")
            # per-family table (CNN on every sample; tikhonov and the best refiner on refine_samples)
            fams = results["family"][tag] = {}
            names_f = list(ds.family_names)
            for key in ["cnn", "tikhonov", "depth-weighted"] + [f"cnn+{r}" for r in ref_names]:
                if (tag, key) not in keep:
                    continue
                _, m = keep[(tag, key)]
                me = m["model_error"]
                f = fam[:len(me)]
                fams[key] = {names_f[k]: {"count": int(np.sum(f == k)), **_stats(me[f == k])}
                             for k in range(len(names_f)) if np.any(f == k)}
            if noise == noises[0]:
                results["_examples"] = {"rho": rho[:refine_samples], "family": fam[:refine_samples],
                                        "family_names": names_f, "shape": prob.shape, "tag": tag,
                                        "models": {k[1]: v[0][:refine_samples] for k, v in keep.items() if k[0] == tag}}
    return results


def _fmt(x):
    if x is None:
        return "-"
    if x == 0:
        return "0"
    return f"{x:.3g}" if abs(x) < 1e-2 or abs(x) >= 100 else f"{x:.4f}"


def _figures(res, out_dir, stem):
    from ..plotting import _plt

    plt = _plt()
    ex = res.get("_examples")
    if not ex:
        return []
    rho, fam, names_f, shape = ex["rho"], ex["family"], ex["family_names"], ex["shape"]
    models = ex["models"]
    paths = []
    # one example per family (the first of each), like the paper's figures 8-11
    picks = [int(np.flatnonzero(fam == k)[0]) for k in range(len(names_f)) if np.any(fam == k)]
    cols = ["true"] + [k for k in ("cnn", "cnn+gmres", "cnn+icg", "cnn+tikhonov", "tikhonov", "vae", "gan", "dip")
                       if k in models and len(models[k]) > max(picks)]
    fig, axes = plt.subplots(len(picks), len(cols), figsize=(2.1 * len(cols), 2.0 * len(picks)), squeeze=False)
    for r, i in enumerate(picks):
        vmax = max(1.0, float(np.abs(rho[i]).max()))
        for c, k in enumerate(cols):
            ax = axes[r, c]
            img = rho[i] if k == "true" else np.asarray(models[k][i]).reshape(shape)
            ax.imshow(img, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if k != "true":
                err = np.linalg.norm(img - rho[i]) / np.linalg.norm(rho[i])
                ax.set_title(f"{k}\nerr {err:.2f}", fontsize=7)
            else:
                ax.set_title(f"true ({names_f[fam[i]]})", fontsize=7)
    fig.suptitle(f"test models (noise {ex['tag']}): true vs estimated, kg/m^3 (colour range +-max|true|)", fontsize=9)
    fig.tight_layout()
    p = out_dir / f"{stem}_examples.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    # error distribution of the CNN vs classical vs refined
    fig, ax = plt.subplots(figsize=(6, 3.5))
    tag = ex["tag"]
    for k in ("tikhonov", "depth-weighted", "cnn", "cnn+gmres", "cnn+tikhonov"):
        if k in models:
            e = np.linalg.norm(models[k].reshape(len(models[k]), -1) - rho[:len(models[k])].reshape(len(models[k]), -1),
                               axis=1) / np.linalg.norm(rho[:len(models[k])].reshape(len(models[k]), -1), axis=1)
            ax.hist(e, bins=40, range=(0, 1.5), histtype="step", label=f"{k} (mean {e.mean():.3f})")
    ax.set_xlabel("relative model error")
    ax.set_ylabel("test models")
    ax.set_title(f"model error distribution, noise {tag}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p = out_dir / f"{stem}_errors.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    return paths


def write_report(res, out_dir="reports", stem="table1", command="gravbench report table1"):
    """Write ``<stem>.md``, ``<stem>.json`` and the figures; returns the Markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = _figures(res, out_dir, stem)
    js = {k: v for k, v in res.items() if not k.startswith("_")}
    (out_dir / f"{stem}.json").write_text(json.dumps(js, indent=1) + "\n")
    L = [f"# Table I for gravbench ({res['dataset']}, test split)", "",
         f"Regenerate with `{command}`. Held-out `test` split of `{res['dataset']}` (never used in training or "
         f"model selection). Counts: cheap providers (zero, cnn) on the first {res['samples']} test models; "
         f"the classical solvers (tikhonov, depth-weighted) and every CNN + refiner row on the first "
         f"{res['refine_samples']}; latent searches / DIP on the first {res['latent_samples']} (the `n` column "
         "gives each row's count). Noise: 1 % of each component's peak (Gaussian, seeded), and none.", "",
         "Model error = ||rho_hat - rho|| / ||rho||; misfit = ||A rho_hat - g|| / ||g|| (g = the noisy data); "
         "chi2 = mean((A rho_hat - g)^2 / sigma^2) (1 = the noise level). 'true model' is the noise level: "
         "the misfit of the true density. Refiners run as `gravbench.refiners.run(name, op, g, x0=cnn, "
         "sigma=sigma)` (default settings, discrepancy stop with sigma); without noise `sigma=None` and "
         "`profile=\"paper\"` (the paper's tolerances and iteration caps). Seconds are wall time per model on a "
         "shared 2-core CPU, one BLAS thread (CNN: batched inference).", "",
         "Reading it: the vae / gan / dip rows use only a handful of models (their searches take seconds to "
         "minutes each); `reports/latent.md` has their full study. gravbench's test models come from six "
         "families (blocks, layers, faults, intrusions, channels, smooth random fields; see "
         "`reports/datasets.md`), most with a non-zero background whose laterally uniform part gravity barely "
         "constrains, so every method's relative model error is far above the seed paper's (its data set "
         "cannot be downloaded; its numbers are shown for reference only). 'paper model err / misfit' "
         "are the paper's Table I values, not a run of gravbench.", ""]
    for tag, rows in res["rows"].items():
        L += [f"## Noise {float(tag) * 100:g} %", "",
              "| method | n | model err mean | median | p90 | misfit mean | median | p90 | chi2 median | s / model | paper model err | paper misfit |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for k, r in rows.items():
            pe, pm = PAPER.get(k, (None, None))
            c2 = r.get("chi2", {}).get("median")
            L.append(f"| {k} | {r['count']} | {_fmt(r['model_error']['mean'])} | {_fmt(r['model_error']['median'])} | "
                     f"{_fmt(r['model_error']['p90'])} | {_fmt(r['misfit']['mean'])} | {_fmt(r['misfit']['median'])} | "
                     f"{_fmt(r['misfit']['p90'])} | {_fmt(c2)} | {_fmt(r['seconds'])} | {_fmt(pe)} | {_fmt(pm)} |")
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
    if res["notes"]:
        L += ["## Notes", ""] + [f"- {n}" for n in res["notes"]] + [""]
    if figs:
        L += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figs] + [""]
    extra = res.get("summary_lines")
    if extra:
        L += ["## Targets", ""] + [f"- {s}" for s in extra] + [""]
    md = out_dir / f"{stem}.md"
    md.write_text("\n".join(L))
    return md
