"""Laloy et al. (2019)'s latent-search experiment on the gravity problem: ``reports/latent.md``.

Laloy's experiment run as he ran it, with gravbench's own variants beside it,
in the shipped VAE and GAN generators on test models of ``paper-50`` (1% noise;
``dataset=`` runs it on another standard set, e.g. ``fwi-51``, into ``latent-<dataset>.*``).
A search **succeeds** by the one rule of :func:`gravbench.metrics.is_success`
(``|chi2 - 1| <= 2 sqrt(2/N)``, ``chi2 = mean((r/sigma)^2)``; two-sided: an
over-fitted search is not a success and is counted apart). Every search stops
at its first entry into the band.

Laloy's settings, read from his public code (github.com/elaloy/gan_for_gradient_based_inv):

- ``inversion/strategy_1.py`` (Adam): ``torch.optim.Adam([z], lr=0.01)`` with
  torch's default betas (0.9, 0.999) and eps 1e-8, ``--niter 10000``, loss the
  plain sum of squared data residuals (no prior term on ``z``), 100 trials;
  ``z`` drawn U(-1, 1) (his GAN's latent is a 1 x 5 x 3 spatial tensor) and
  clipped back into [-1, 1] ("stochastic" clipping: an entry leaving the box
  is redrawn U(-1, 1)); a run is stopped as non-productive when after 100
  iterations its sum of squares is still above 1e3 (in his data units).
- ``inversion/strategy_2.py`` (Gauss-Newton): Jacobian by central finite
  differences (``JacApprox='3pts'``) with step ``delta_z = 0.25`` (the
  function's default, which the call uses; the ``--delta_z 0.1`` option only
  names the output file), ``Ce = I``, a constant ``labda = 1`` with ``D = I``
  (``z_new = (J^T J + I)^-1 J^T (e + J z)``: the minimiser of the linearised
  ``||e||^2 + ||z||^2``), full steps (``beta = 1``; the jump reduction is
  off), ``--niter 10000`` iterations, no clipping (``z`` is standard normal,
  mapped to his generator's U(-1, 1) input by the normal CDF), 100 trials.
- Differential evolution: not in the public code (the repository has the two
  gradient strategies only); gravbench states its own population and budget.

What does not transfer and what is used instead: gravbench's generators take
``z ~ N(0, I)`` directly (no CDF map, no box), so Adam starts from the shared
``N(0, I)`` draws and is not clipped (there is no box to clip to); his
non-productive-run stop is in his data units (SSR > 1e3 over 576 travel
times) and is not used (Adam runs its 10,000 iterations unless it succeeds);
residuals are whitened by the data set's sigma (his ``Ce = I`` on data of
unit noise), so ``lam = 1`` is the same N(0, I) prior. Gauss-Newton's
iterations are capped by the 10,000-evaluation budget of the report (each
costs ``2 latent + 1`` forward runs) and a start stops at a fixed point
(an accepted step shorter than ``tol``).

Rows (``METHOD_LABELS``): ``adam-laloy``, ``gn-laloy``, ``gn-damped`` (damped,
backtracking, central differences step 0.01), ``gn-autodiff`` (damped,
backtracking, forward-mode Jacobian), ``de``, ``warm`` (the seed paper's CNN
warm start + ``gn-damped``) and, derived from the recorded starts without new
searches, ``<method>+restart`` (restarted until success within 10,000
evaluations). The test models are the first ``k`` of each family of the test
split (``n_models`` spread evenly over the families); ``starts`` random starts
per model drawn from a fixed seed, shared by every gradient method; ``de_runs``
seeded DE runs in all. A generator-quality section gives the VAE's
reconstruction error and both generators' projection errors on the test split,
and the projection error of every test model of the report, which is how the
report explains failures (representation vs optimisation).

Running: every search unit (one method on one test model: its batch of
starts; one DE run) is appended to ``latent-<kind>.jsonl`` in ``out`` as soon
as it finishes, keyed by a hash of its settings, the generator's sha256 and
the test model; a rerun skips the units already there. ``kinds=("vae",)`` and
``kinds=("gan",)`` can run in two processes at once; ``assemble_only=True``
then writes the report from the JSONL files without running anything.

Entry point: :func:`run` (``gravbench report latent``).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from .._atomic import append_jsonl, atomic_write_text, read_jsonl

from .. import data, providers
from ..metrics import chi2 as chi2_of
from ..metrics import fit_status, is_success, model_error, success_band
from .._mpl import model_panel, save_png
from ..providers import latent
from ..providers.cnn import weights_for
from .table1 import training_prior

__all__ = ["run", "SETTINGS", "QUICK", "LALOY_SOURCE", "LALOY_PUBLISHED"]

#: Where Laloy's settings were read.
LALOY_SOURCE = {"repository": "https://github.com/elaloy/gan_for_gradient_based_inv",
                "adam": "inversion/strategy_1.py", "gauss_newton": "inversion/strategy_2.py"}

#: Laloy et al. (2019)'s published success rates, with what they were measured on.
LALOY_PUBLISHED = {"adam": 0.13, "gauss-newton": 0.0, "de": 1.0,
                   "context": "crosshole GPR travel-time tomography (linear, 576 data, low noise), a channelized "
                              "binary training image, a spatial GAN (latent 1 x 5 x 3), 100 random starts on one "
                              "model; not the same problem"}

#: The experiment's settings (the report states them).
SETTINGS = {
    "n_models": 20,  # test models, the first k of each family of the test split, spread evenly
    "starts": 10,  # random starts per test model, z ~ N(0, I) from `seed`, shared by every gradient method
    "seed": 1000,  # z0 of test model #i: torch.Generator().manual_seed(seed + i)
    "budget": 10_000,  # evaluations per search (restart rows; gn iteration caps)
    "methods": ("adam-laloy", "gn-laloy", "gn-damped", "gn-autodiff", "de", "warm"),
    "adam-laloy": {"method": "adam", "lr": 0.01, "maxiter": 10_000},
    "gn-laloy": {"method": "gn-fd", "h": 0.25, "lam": 1.0, "linesearch": 0, "tol": 1e-4},
    "gn-damped": {"method": "gn-fd", "h": 0.01, "lam": 1.0, "linesearch": 8},
    "gn-autodiff": {"method": "gn-autodiff", "lam": 1.0, "linesearch": 8},
    "de_runs": 20,  # in all per generator: one per test model (cycled), seed 100 + run
    "de": {"max_evals": 10_000, "popsize": 4, "bound": 3.0},
    "warm": {"method": "gn-damped", "warm_steps": 300},
    "quality": {"per_family": 20, "steps": 200, "starts": 4, "lr": 0.05},  # generator-quality section
}

#: A smoke-test version (seconds).
QUICK = {**SETTINGS, "n_models": 2, "starts": 2, "budget": 400, "de_runs": 1,
         "adam-laloy": {"method": "adam", "lr": 0.01, "maxiter": 15},
         "gn-laloy": {"method": "gn-fd", "h": 0.25, "lam": 1.0, "linesearch": 0, "tol": 1e-4},
         "de": {"max_evals": 150, "popsize": 2, "bound": 3.0}, "warm": {"method": "gn-damped", "warm_steps": 5},
         "quality": {"per_family": 1, "steps": 5, "starts": 2, "lr": 0.05}}

GRADIENT = ("adam-laloy", "gn-laloy", "gn-damped", "gn-autodiff")

METHOD_LABELS = {
    "adam-laloy": "Adam, Laloy's settings (lr 0.01, no prior)",
    "gn-laloy": "Gauss-Newton, Laloy's (central-difference J, lam 1, full steps)",
    "gn-damped": "Gauss-Newton, gravbench (central-difference J, lam 1, backtracking)",
    "gn-autodiff": "Gauss-Newton, gravbench (autodiff J, lam 1, backtracking)",
    "de": "differential evolution",
    "warm": "CNN warm start + Gauss-Newton (gravbench, fd J)",
}
for _m in GRADIENT:
    METHOD_LABELS[_m + "+restart"] = METHOD_LABELS[_m] + ", restarted until success"


def _gn_maxiter(S, name, latent_size):
    """Gauss-Newton iterations that fit the budget (worst case: ``linesearch + 1`` trial runs per iteration)."""
    o = S[name]
    per = (2 * latent_size if o["method"] == "gn-fd" else latent_size) + int(o.get("linesearch", 0)) + 1
    return max(1, (int(S["budget"]) - 1) // per)


def _budget_text(S, name, d):
    """What one search of row ``name`` may spend, in evaluations, and what counts as one."""
    if name == "adam-laloy":
        it = S[name]["maxiter"]
        return f"{it:,} iterations = up to {2 * it + 1:,} evaluations (1 forward run + 1 gradient pass per iteration)"
    if name in ("gn-laloy", "gn-damped", "gn-autodiff"):
        o, k = S[name], _gn_maxiter(S, name, d)
        jac = f"{2 * d} forward runs for J" if o["method"] == "gn-fd" else f"1 forward run + {d} tangent passes"
        ls = "1 forward run at the full step" if not o.get("linesearch") else \
            f"1-{int(o['linesearch']) + 1} forward runs of backtracking"
        return f"up to {k:,} iterations <= {S['budget']:,} evaluations ({jac}, {ls} per iteration)"
    if name == "de":
        return (f"{S['de']['max_evals']:,} forward runs (population {S['de']['popsize']} x {d} = "
                f"{S['de']['popsize'] * d} per generation)")
    if name == "warm":
        return f"as {S['warm']['method']} (the CNN and the projection cost no gravity evaluations)"
    base = name.split("+")[0]
    return f"{S['budget']:,} evaluations in all, each restart's evaluations counted ({base} starts)"


def _restart_chains(rows, budget):
    """Restart-until-success searches built from recorded independent starts.

    For each test model, the starts are taken in their recorded order beginning
    at each start in turn (one chain per rotation); a chain runs start after
    start, paying each one's full evaluations, until one succeeds (success when
    the cumulative evaluations at that start's success are within ``budget``)
    or the budget is spent (a start begun under the budget runs to its end, so a
    failed chain's evaluations may pass the budget slightly). Exact for that strategy, since every start is an
    independent deterministic search; chains of one model share starts.
    """
    out = []
    by_model = {}
    for r in rows:
        by_model.setdefault((r["model"], r["family"]), []).append(r)
    for (idx, fam), rs in by_model.items():
        k = len(rs)
        for i in range(k):
            spent = fwd = der = sec = 0.0
            hit = None
            best = None
            for j in range(k):
                r = rs[(i + j) % k]
                if spent >= budget:
                    break
                if r.get("ok", True) and np.isfinite(r["reached"]) and spent + r["reached"] <= budget:
                    hit = r
                    fwd += r["forward"]
                    der += r["derivs"]
                    sec += r["seconds"]
                    spent += r["reached"]
                    break
                spent += r["evals"]
                fwd += r["forward"]
                der += r["derivs"]
                sec += r["seconds"]
                if spent <= budget and (best is None or r["chi"] < best["chi"]):
                    best = r  # only starts that finished within the budget count
            last = hit or best or {"chi": float("inf"), "model_error": float("nan"), "n_data": rs[0].get("n_data", 300)}
            out.append({"model": idx, "family": fam, "chi": last["chi"], "n_data": last.get("n_data", 300),
                        "ok": bool(hit), "evals": int(spent),
                        "forward": int(fwd), "derivs": int(der), "reached": float(spent) if hit else float("nan"),
                        "seconds": float(sec), "model_error": last["model_error"]})
    return out



def _pick(ds, n_models):
    """The first ``k`` test models of each family, ``n_models`` in all spread as evenly as the families allow."""
    names = list(getattr(ds, "family_names", []) or [])
    fam = np.asarray(ds.family)
    present = [int(f) for f in sorted(np.unique(fam))]
    k = {f: 0 for f in present}
    left = int(n_models)
    while left > 0:
        grown = False
        for f in present:
            if left and k[f] < int(np.sum(fam == f)):
                k[f] += 1
                left -= 1
                grown = True
        if not grown:
            break
    out = []
    for f in present:
        label = names[f] if f < len(names) else str(f)
        out += [(int(i), label) for i in np.flatnonzero(fam == f)[:k[f]]]
    return out


def _key(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load_jsonl(path):
    """The unit records of ``path`` by key (a line cut by a killed run is skipped: that unit is redone)."""
    return {r["key"]: r for r in read_jsonl(path) if isinstance(r, dict) and "key" in r}


def _cnn_available(problem):
    try:
        weights_for(problem)
        return True, ""
    except Exception as exc:  # noqa: BLE001 - any failure means "no warm start"
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _ok(chi, n_data):
    """The one success rule (:func:`gravbench.metrics.is_success`) on an RMS weighted residual ``chi``."""
    return is_success(float(chi) ** 2, int(n_data))


def _over(chi, n_data):
    return fit_status(float(chi) ** 2, int(n_data)) == "over-fitted"


def _summ(rows, budget, success=None):
    chi = np.array([r["chi"] for r in rows])
    ev = np.array([r["evals"] for r in rows], dtype=float)
    reached = np.array([r["reached"] for r in rows], dtype=float)
    ok = np.array([_ok(r["chi"], r.get("n_data", 300)) for r in rows], dtype=bool)
    over = int(sum(_over(r["chi"], r.get("n_data", 300)) for r in rows))
    within = ok & (np.nan_to_num(reached, nan=np.inf) <= budget)
    me = np.array([r["model_error"] for r in rows])
    return {
        "searches": len(rows),
        "success_rate": float(ok.mean()),
        "overfit": over,
        "success_within_budget": float(within.mean()),
        "median_evals_to_success": float(np.median(reached[ok])) if ok.any() else None,
        "mean_evals": float(ev.mean()),
        "max_evals": float(ev.max()),
        "mean_forward": float(np.mean([r["forward"] for r in rows])),
        "mean_derivs": float(np.mean([r["derivs"] for r in rows])),
        "mean_seconds": float(np.mean([r["seconds"] for r in rows])),
        # a restart chain with no start finished within the budget has no final model: left out of the medians
        "median_chi": float(np.median(chi[np.isfinite(chi)])) if np.isfinite(chi).any() else None,
        "min_chi": float(chi.min()),
        "median_model_error": float(np.median(me[np.isfinite(me)])) if np.isfinite(me).any() else None,
        "no_final_model": int((~np.isfinite(chi)).sum()),
        "median_model_error_success": float(np.median(me[ok])) if ok.any() else None,
    }



def _quality(gen, enc, layer, ds, idxs, Q, seed=0):
    """VAE reconstruction and projection errors (density units) and the data fit of each projection."""
    import torch

    lo, hi = float(gen.lo), float(gen.hi)
    idxs = list(idxs)
    rho = torch.as_tensor(ds.rho[idxs], dtype=torch.float32)
    tgt = ((rho - lo) / (hi - lo)).clamp(0.0, 1.0)
    nrm = rho.flatten(1).norm(dim=1).clamp_min(1e-12)
    B, d, St = len(idxs), int(gen.latent), int(Q["starts"])
    recon = [None] * B
    firsts = [torch.zeros(B, d)]
    if enc is not None:
        with torch.no_grad():
            mu = enc.encode(tgt.to(gen.lo.device))[0].cpu()
            rec = gen(mu).cpu()
        recon = ((rec - rho).flatten(1).norm(dim=1) / nrm).tolist()
        firsts.append(mu)
    gg = torch.Generator().manual_seed(int(seed))
    while len(firsts) < St:
        firsts.append(torch.randn(B, d, generator=gg))
    z = torch.stack(firsts[:St], 1).reshape(B * St, d).clone().requires_grad_(True)
    tg = tgt.repeat_interleave(St, 0)
    opt = torch.optim.Adam([z], lr=float(Q["lr"]))
    for _ in range(int(Q["steps"])):
        opt.zero_grad(set_to_none=True)
        ((gen.unit(z) - tg) ** 2).sum().backward()
        opt.step()
    with torch.no_grad():
        e = ((gen.unit(z) - tg) ** 2).flatten(1).sum(1).reshape(B, St)
        best = e.argmin(1)
        zb = z.detach().reshape(B, St, d)[torch.arange(B), best]
        mod = gen(zb)
        proj = ((mod.cpu() - rho).flatten(1).norm(dim=1) / nrm).tolist()
        pred = layer(mod).double().cpu().numpy()
    chi = [float(np.sqrt(chi2_of(pred[k] - ds.g[i], ds.sigma[i]))) for k, i in enumerate(idxs)]
    return [{"index": int(i), "proj_error": float(proj[k]), "recon_error": None if recon[k] is None else
             float(recon[k]), "proj_chi": chi[k]} for k, i in enumerate(idxs)]


def _rows_of(res, gen, g, rho_true, idx, fam):
    import torch

    with torch.no_grad():
        models = gen(torch.as_tensor(res.z, dtype=torch.float32)).double().cpu().numpy()
    rows = []
    for s in range(len(res.chi)):
        rows.append({"model": idx, "family": fam, "chi": float(res.chi[s]), "n_data": int(g.size),
                     "ok": _ok(res.chi[s], g.size), "over": _over(res.chi[s], g.size),
                     "evals": int(res.evals[s]), "forward": int(res.forward[s]), "derivs": int(res.derivs[s]),
                     "reached": float(res.reached[s]), "seconds": float(res.seconds[s]),
                     "niter": int(res.niter[s]), "model_error": model_error(rho_true, models[s]),
                     "z": [round(float(v), 6) for v in res.z[s]]})
    return rows


def _opts(o):
    return {k: v for k, v in o.items() if k != "method"}


def _estimate(gen, layer, ds, picks, S, methods, log):
    """Upper-bound seconds of the missing units from a short timing probe on this machine."""
    import torch

    d = int(gen.latent)
    g, sg = ds.g[picks[0][0]], ds.sigma[picks[0][0]]
    z0 = torch.randn(S["starts"], d, generator=torch.Generator().manual_seed(0)).numpy()
    t = time.perf_counter()
    latent.search(gen, layer, g, sg, method="adam", z0=z0, maxiter=3, target=None)
    t_it = (time.perf_counter() - t) / 3  # one Adam iteration of the batch of starts
    zb = torch.randn(S["starts"] * (2 * d + 1), d)
    t = time.perf_counter()
    with torch.no_grad():
        layer(gen(zb))
    t_f = (time.perf_counter() - t) / len(zb)  # one forward run, batched
    return {"adam_iteration_batch": t_it, "forward_run": t_f}


def run(out="reports", quick=False, log=print, *, kinds=("vae", "gan"), settings=None, threads=None, weights=None,
        assemble_only=False, dataset="paper-50"):
    """Run the experiment (resuming from ``latent-<kind>.jsonl``) and write ``latent.md``, ``latent.json``, PNGs.

    On another standard set than ``paper-50`` every file name carries the set's
    name: ``latent-<dataset>.md``, ``latent-<dataset>-<kind>.jsonl``, ...

    Parameters
    ----------
    out : path
        Output directory (created); holds the JSONL records too.
    quick : bool
        Use :data:`QUICK` (a smoke run of seconds) instead of :data:`SETTINGS`.
    log : callable
        Progress messages.
    kinds : tuple of str
        Generators to run (``"vae"``, ``"gan"``); two processes may run one each.
    settings : dict, optional
        Entries overriding :data:`SETTINGS` (or :data:`QUICK`).
    threads : int, optional
        ``torch.set_num_threads`` for the run.
    weights : dict, optional
        ``{kind: path}`` weights files to use instead of the shipped ones.
    assemble_only : bool
        Run nothing: write the report from the records already in the JSONL
        files (units not there are listed as missing).
    dataset : str
        The standard data set whose test split (1 % noise) is searched; the
        generators must have weights for its grid.

    Returns
    -------
    (Path, Path, list of Path)
        The Markdown file, the JSON file and the figures.
    """
    import torch

    from gravbench.forward.torch import GravityLayer

    S = dict(QUICK if quick else SETTINGS)
    S.update(settings or {})
    methods = tuple(S["methods"])
    bad = [m for m in methods if m not in ("adam-laloy", "gn-laloy", "gn-damped", "gn-autodiff", "de", "warm")]
    if bad:
        raise ValueError(f"unknown methods {bad}")
    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    stem = "latent" if dataset == "paper-50" else f"latent-{dataset}"
    ds = data.standard(dataset, split="test", noise=0.01, progress=False)
    prob = ds.problem
    picks = _pick(ds, S["n_models"])
    fam_of = dict(picks)
    layer = GravityLayer(prob, dtype=torch.float32)
    cnn_ok, cnn_why = (True, "") if assemble_only else _cnn_available(prob)
    if "warm" not in methods:
        cnn_ok, cnn_why = False, "not requested"
    names = list(getattr(ds, "family_names", []) or [])
    fam_arr = np.asarray(ds.family)
    qidx = []
    for f in sorted(np.unique(fam_arr)):
        qidx += [int(i) for i in np.flatnonzero(fam_arr == f)[:int(S["quality"]["per_family"])]]
    qidx += [i for i, _ in picks if i not in qidx]
    results = {"dataset": dataset, "stem": stem, "problem": prob.describe(), "n_data": int(prob.n_data),
               "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in S.items()},
               "laloy_source": LALOY_SOURCE, "laloy_published": LALOY_PUBLISHED,
               "test_models": [{"index": i, "family": f} for i, f in picks], "cnn_warm_start": cnn_ok,
               "cnn_unavailable_reason": cnn_why, "generators": {}}
    gens = {}
    for kind in kinds:
        gen, man, enc = latent.load_generator(kind, prob.shape, (weights or {}).get(kind))
        gens[kind] = gen
        d = int(gen.latent)
        sha = man.get("sha256")
        jpath = out / f"{stem}-{kind}.jsonl"
        recs = _load_jsonl(jpath)
        base = {"kind": kind, "sha256": sha, "budget": S["budget"]}
        units = [("quality", None, _key({**base, "unit": "quality", "q": S["quality"], "models": qidx}))]
        for idx, fam in picks:
            for m in methods:
                if m in GRADIENT:
                    units.append((m, idx, _key({**base, "unit": m, "o": S[m], "model": idx, "starts": S["starts"],
                                                "seed": S["seed"]})))
                elif m == "warm" and cnn_ok:
                    units.append((m, idx, _key({**base, "unit": m, "o": S["warm"], "g": S[S["warm"]["method"]],
                                                "model": idx})))
        if "de" in methods:
            for r in range(int(S["de_runs"])):
                idx = picks[r % len(picks)][0]
                units.append(("de", r, _key({**base, "unit": "de", "o": S["de"], "run": r, "model": idx})))
        if assemble_only and not any(u[0] == "warm" and u[2] in recs for u in units):
            units = [u for u in units if u[0] != "warm"]  # no warm-start records: the CNN was not available
            if "warm" in methods:
                results["cnn_warm_start"], results["cnn_unavailable_reason"] = False, "no warm-start records"
        todo = [u for u in units if u[2] not in recs]
        log(f"{kind}: latent {d}, {len(units)} units, {len(units) - len(todo)} already in {jpath.name}, "
            f"{len(todo)} to run" + (" (assemble only: not run)" if assemble_only else ""))
        if todo and not assemble_only:
            c = _estimate(gen, layer, ds, picks, S, methods, log)
            nm = {m: sum(1 for u in todo if u[0] == m) for m in set(u[0] for u in todo)}
            est = (nm.get("adam-laloy", 0) * S["adam-laloy"]["maxiter"] * c["adam_iteration_batch"]
                   + nm.get("gn-laloy", 0) * S["starts"] * S["budget"] * c["forward_run"]
                   + (nm.get("gn-damped", 0) + 2 * nm.get("gn-autodiff", 0)) * S["starts"] * 40 * (2 * d + 3)
                   * c["forward_run"]
                   + nm.get("de", 0) * S["de"]["max_evals"] * c["forward_run"]
                   + nm.get("warm", 0) * 40 * (2 * d + 3) * c["forward_run"]
                   + nm.get("quality", 0) * len(qidx) * S["quality"]["steps"] * S["quality"]["starts"]
                   * c["adam_iteration_batch"] / S["starts"])
            log(f"{kind}: measured {1e3 * c['adam_iteration_batch']:.1f} ms per Adam iteration of {S['starts']} "
                f"starts, {1e3 * c['forward_run']:.2f} ms per batched forward run; estimated at most "
                f"{est / 60:.0f} min for the units to run (no early successes assumed; gn-damped/autodiff "
                f"~40 iterations)")
            warm_p = None
            for unit, idx, key in todo:
                t0 = time.perf_counter()
                if unit == "quality":
                    qm = _quality(gen, enc, layer, ds, qidx, S["quality"])
                    for q in qm:
                        f = int(fam_arr[q["index"]])
                        q["family"] = names[f] if f < len(names) else str(f)
                    rec = {"key": key, "unit": unit, "models": qm}
                    msg = f"projection error median {np.median([q['proj_error'] for q in qm]):.3f}"
                elif unit == "de":
                    mi = picks[idx % len(picks)][0]
                    g, sg, rt = ds.g[mi], ds.sigma[mi], ds.rho[mi].astype(np.float64)
                    res = latent.search(gen, layer, g, sg, method="de", starts=1, seed=100 + idx, **S["de"])
                    rec = {"key": key, "unit": unit, "model": mi, "run": idx,
                           "rows": _rows_of(res, gen, g, rt, mi, fam_of[mi])}
                    msg = f"model {mi}: chi {res.chi[0]:.2f}"
                else:
                    g, sg, rt = ds.g[idx], ds.sigma[idx], ds.rho[idx].astype(np.float64)
                    if unit == "warm":
                        if warm_p is None:
                            warm_p = providers.get(kind, warm_steps=S["warm"]["warm_steps"], cnn_options={},
                                                   weights=(weights or {}).get(kind))
                        z0 = warm_p.warm_z(g, prob, sg, 0)[None]
                        name = S["warm"]["method"]
                    else:
                        z0 = torch.randn(S["starts"], d, generator=torch.Generator().manual_seed(S["seed"] + idx))
                        z0 = z0.numpy()
                        name = unit
                    o = _opts(S[name])
                    if name != "adam-laloy":
                        o["maxiter"] = _gn_maxiter(S, name, d)
                    res = latent.search(gen, layer, g, sg, method=S[name]["method"], z0=z0, **o)
                    rows = _rows_of(res, gen, g, rt, idx, fam_of[idx])
                    if unit == "warm":
                        rows[0]["seconds"] = time.perf_counter() - t0  # includes the CNN and the projection
                    rec = {"key": key, "unit": unit, "model": idx, "rows": rows}
                    msg = (f"model {idx} ({fam_of[idx]}): {sum(r['ok'] for r in rows)}/{len(rows)} succeeded, "
                           f"{sum(r['evals'] for r in rows):,} evaluations")
                rec["seconds"] = time.perf_counter() - t0
                append_jsonl(jpath, rec)
                recs[key] = rec
                log(f"{kind} {unit}: {msg}, {rec['seconds']:.1f} s")
        missing = [(u, i) for u, i, k in units if k not in recs]
        rows = {m: [] for m in methods}
        for u, i, k in units:
            if k in recs and u != "quality":
                rows[u] += recs[k]["rows"]
        for m in GRADIENT:
            if rows.get(m):
                rows[m + "+restart"] = _restart_chains(rows[m], S["budget"])
        rows = {m: r for m, r in rows.items() if r}
        qk = units[0][2]
        quality = recs[qk]["models"] if qk in recs else []
        summ = {m: _summ(r, S["budget"]) for m, r in rows.items()}
        results["generators"][kind] = {
            "manifest": {k: man.get(k) for k in ("command", "dataset", "metrics", "config", "sha256")},
            "latent": d, "budgets": {m: _budget_text(S, m, d) for m in rows},
            "summary": summ, "rows": rows, "quality": quality, "missing_units": missing,
            "jsonl": jpath.name,
            "unit_seconds": float(sum(recs[k]["seconds"] for _, _, k in units if k in recs))}
    results["baseline"] = _prior_baseline(dataset, ds, picks, prob)
    results["seconds"] = time.perf_counter() - t_all
    for G in results["generators"].values():
        G["analysis"] = _analysis(G, picks, S, int(prob.n_data))
    js = out / f"{stem}.json"
    atomic_write_text(js, json.dumps(results, indent=1, default=float) + "\n")
    figs = _figures(out, results, gens, ds, S, prob, stem)
    md = out / f"{stem}.md"
    atomic_write_text(md, _markdown(results, S, figs, quick, assemble_only))
    return md, js, figs


def _prior_baseline(dataset, ds, picks, prob):
    """The search-free baseline: the training split's mean model scored on the report's test models."""
    mean, _ = training_prior(dataset)
    pred = prob.forward(mean.astype(np.float64))
    chi2 = [chi2_of(pred - ds.g[i], ds.sigma[i]) for i, _ in picks]
    err = [model_error(ds.rho[i].astype(np.float64), mean) for i, _ in picks]
    return {"what": "the training split's mean model for every test model (no data, no search)",
            "in_band": float(np.mean([is_success(c, prob.n_data) for c in chi2])),
            "median_chi2": float(np.median(chi2)), "median_model_error": float(np.median(err))}


def _analysis(G, picks, S, n_data):
    """Best method (success within the budget) and, per test model it still fails on, why."""
    summ = G["summary"]
    if not summ:
        return {"best": None, "failing": []}
    def rank(m):  # the most successes within the budget, then the fewest evaluations
        return summ[m]["success_within_budget"], -summ[m]["mean_evals"]

    best = max(summ, key=rank)
    hi = success_band(n_data)[1]
    q = {r["index"]: r for r in G["quality"]}
    fitted = {}  # test model -> the first search that fitted it (method, evaluations), any budget
    for m, rs in G["rows"].items():
        for r in rs:
            if r["ok"] and r["model"] not in fitted:
                fitted[r["model"]] = (f"one {m} search (after {r['reached']:,.0f} evaluations)"
                                      if np.isfinite(r["reached"]) else f"one {m} search")
    failing = []
    for idx, fam in picks:
        rs = [r for r in G["rows"][best] if r["model"] == idx]
        if not rs:
            continue
        within = [bool(r["ok"]) and r["reached"] <= S["budget"] for r in rs]
        if all(within):
            continue
        qq = q.get(idx, {})
        pe, pc = qq.get("proj_error"), qq.get("proj_chi")
        if not fitted.get(idx) and pc is not None and pc ** 2 > hi:
            why = "representation"
            text = (f"projection error {pe:.2f}, and the projected model fits the data at chi2 {pc ** 2:.2f} "
                    f"(band <= {hi:.3f}); no search of any method fitted it, so the generator most likely cannot "
                    "represent a model that fits these data to the noise (a failure of every search is not "
                    "excluded)")
        else:
            why = "optimisation"
            chis = sorted(r["chi"] ** 2 for r in rs if not r["ok"])
            text = ((f"projection error {pe:.2f}, projected model chi2 {pc ** 2:.2f}; " if pe is not None else "")
                    + (f"{fitted[idx]} fitted it" if fitted.get(idx) else "a latent vector fits it (the projection)")
                    + f", but {len(chis)} of {len(rs)} searches of this method stall at local minima "
                    f"(median chi2 {np.median(chis) if chis else float('nan'):.2f})")
        failing.append({"model": idx, "family": fam, "success": float(np.mean(within)), "reason": why,
                        "text": text, "proj_error": pe, "proj_chi": pc})
    cold = [m for m in summ if m != "warm"]  # random starts only: no CNN
    best_cold = max(cold, key=rank) if cold else None
    return {"best": best, "best_rate": summ[best]["success_within_budget"], "failing": failing,
            "best_searches": int(summ[best]["searches"]), "best_cold": best_cold,
            "best_cold_rate": summ[best_cold]["success_within_budget"] if best_cold else None,
            "best_cold_searches": int(summ[best_cold]["searches"]) if best_cold else 0}


def _figures(out, R, gens, ds, S, prob, stem="latent"):
    import torch

    from gravbench.plotting import _plt

    plt = _plt()
    figs = []
    G_all = R["generators"]
    if not G_all:
        return figs
    fig, axes = plt.subplots(1, len(G_all), figsize=(6.5 * len(G_all), 4.2), squeeze=False)
    for ax, (kind, G) in zip(axes[0], G_all.items()):
        for m, r in G["rows"].items():
            reached = np.array([x["reached"] for x in r], dtype=float)
            xs = np.unique(np.concatenate([[1], reached[np.isfinite(reached)], [S["budget"]]]))
            ok = np.array([x.get("ok", True) for x in r], dtype=bool)
            ys = [np.mean(ok & (np.nan_to_num(reached, nan=np.inf) <= x)) for x in xs]
            ax.step(xs, ys, where="post", label=METHOD_LABELS.get(m, m), ls="--" if "+restart" in m else "-")
        ax.set_xscale("log")
        ax.set_xlim(1, max(S["budget"], 2))
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("evaluations (forward runs + derivative passes)")
        ax.set_ylabel("fraction of searches in the success band")
        ax.set_title(f"{kind.upper()} latent search, {R['dataset']} test models")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    p = out / f"{stem}-success.png"
    save_png(fig, p, dpi=110)
    figs.append(p)
    for kind, G in G_all.items():
        gen = gens.get(kind)
        ms = [m for m in G["rows"] if "+restart" not in m]
        seen, idxs = set(), []
        for t in R["test_models"]:
            if t["family"] not in seen:
                seen.add(t["family"])
                idxs.append(t["index"])
        if gen is None or not ms or not idxs:
            continue
        fig, axes = plt.subplots(len(idxs), 1 + len(ms), figsize=(2.1 * (1 + len(ms)), 2.0 * len(idxs)),
                                 squeeze=False)
        ext = [0, prob.grid.width, prob.grid.depth, 0]
        for r, idx in enumerate(idxs):
            true = ds.rho[idx].astype(np.float64)
            if float(true.min()) > 0:  # absolute densities (fwi): the true model's range, sequential colours
                span = dict(vmin=float(true.min()), vmax=float(true.max()))
            else:  # contrasts: symmetric about zero
                span = dict(vmax=float(np.abs(true).max()) or 1.0)
            model_panel(axes[r, 0], true, extent=ext, title="true" if r == 0 else "", **span)
            axes[r, 0].set_ylabel(f"test #{idx}", fontsize=8)
            for c, m in enumerate(ms, start=1):
                rs = [x for x in G["rows"][m] if x["model"] == idx]
                ax = axes[r, c]
                if not rs:
                    ax.axis("off")
                    continue
                b = min(rs, key=lambda x: x["chi"])
                with torch.no_grad():
                    mod = gen(torch.as_tensor([b["z"]], dtype=torch.float32))[0].double().cpu().numpy()
                model_panel(ax, mod, extent=ext, title=m if r == 0 else "", **span)
        fig.suptitle(f"{kind.upper()}: true models and each method's best-fitting search", fontsize=9)
        fig.tight_layout()
        p = out / f"{stem}-models-{kind}.png"
        save_png(fig, p, dpi=100)
        figs.append(p)
    return figs


def _fmt(v, f="{:.2f}"):
    return "-" if v is None else f.format(v)


def _markdown(R, S, figs, quick, assemble_only=False):
    L = []
    other = R["dataset"] != "paper-50"  # the default set is not named in the title or the command
    L.append("# Latent search on gravity: Laloy et al. (2019)'s experiment, and gravbench's variants"
             + (f" ({R['dataset']})" if other else "") + "\n")
    flag = f" --dataset {R['dataset']}" if other else ""
    L.append(f"Generated by `gravbench report latent{flag}`"
             + (" --quick (smoke run, not the real numbers)" if quick else "")
             + (" --assemble (from the JSONL records)" if assemble_only else "")
             + f" in {R['seconds']:.0f} s (this call). Raw numbers: `{R['stem']}.json`; every search: "
             + ", ".join(f"`{G['jsonl']}`" for G in R["generators"].values()) + ". Time of the recorded searches "
             "(their units summed, each generator in its own process on one core of a shared 2-core machine): "
             + ", ".join(f"{k.upper()} {G.get('unit_seconds', 0) / 60:.0f} min" for k, G in R["generators"].items())
             + ".\n")
    L.append("## Setup\n")
    per = {}
    for t in R["test_models"]:
        per.setdefault(t["family"], []).append(f"#{t['index']}")
    nm = len(R["test_models"])
    N = int(R["n_data"])
    lo, hi = success_band(N)
    L.append(f"- **Test models**: {nm} models of the `{R['dataset']}` test split ({R['problem']}; gx and gz, "
             "1% peak noise), the first k of each family (in test-split order): "
             + "; ".join(f"{f}: {', '.join(v)}" for f, v in per.items())
             + ". The searches fit the noisy **data** (whitened by the data set's per-datum sigma), never the model.")
    L.append(f"- **Success**: `gravbench.metrics.is_success`, the one two-sided rule: `|chi2 - 1| <= 2 sqrt(2/N)` "
             f"with `chi2 = mean(((A G(z) - g)/sigma)^2)`, N = {N} ({lo:.3f} <= chi2 <= {hi:.3f}). Every search "
             "stops at its first entry into the band; a step that jumps below it is over-fitted, not a success, and "
             "is counted in the 'over-fitted' column.")
    L.append(f"- **Random starts**: {S['starts']} per test model, `z ~ N(0, I)` from `torch.Generator().manual_seed("
             f"{S['seed']} + model index)`, the same z0 for Adam and every Gauss-Newton variant "
             f"({S['starts'] * nm} searches per gradient method). Differential evolution: {S['de_runs']} runs in all "
             "(run r on test model r mod the number of models, scipy seed 100 + r).")
    L.append(f"- **Laloy's settings** (read from his public code, {LALOY_SOURCE['repository']}): "
             f"`{LALOY_SOURCE['adam']}`: `torch.optim.Adam([z], lr=0.01)` (default betas 0.9, 0.999), 10,000 "
             "iterations, loss the sum of squared data residuals, no prior term on z, z0 ~ U(-1, 1) with "
             "'stochastic' clipping into [-1, 1], runs stopped as non-productive after 100 iterations if the sum of "
             f"squares is above 1e3 (his units); `{LALOY_SOURCE['gauss_newton']}`: central-difference Jacobian "
             "(`JacApprox='3pts'`) with step 0.25 (the function default the call uses), `Ce = I`, constant "
             "`labda = 1`, `D = I` (`z_new = (J^T J + I)^-1 J^T (e + J z)`), full steps, 10,000 iterations, z0 ~ "
             "N(0, I) mapped to his generator's U(-1, 1) input by the normal CDF. Differential evolution is not in "
             "the public code.")
    L.append("- **What does not transfer**: his latent is a 1 x 5 x 3 spatial tensor with a U(-1, 1) prior; gravbench's "
             "generators take a flat z ~ N(0, I) (latent size from each generator's manifest), so Adam starts from "
             "the shared N(0, I) draws, without clipping (no box to clip to), and his non-productive-run stop (in "
             "travel-time units) is not used: Adam runs its 10,000 iterations unless it enters the band. Residuals "
             "are whitened by sigma, so `lam = 1` is his constant damping on data of unit noise, a N(0, I) prior. "
             "Gauss-Newton runs until its 10,000-evaluation budget (not 10,000 iterations: each iteration costs "
             f"2 x latent + 1 forward runs) and stops a start at a fixed point of the full-step iteration (an "
             f"accepted step shorter than {S['gn-laloy'].get('tol', 0)} in z).")
    L.append("- **gravbench's variants**: Gauss-Newton with the same damping and a backtracking line search (step "
             f"halved up to {S['gn-damped']['linesearch']} times until `||r||^2 + lam ||z||^2` decreases; a start "
             "whose step never decreases it stops), the Jacobian by central differences (step "
             f"{S['gn-damped']['h']}) or by forward-mode autodiff.")
    L.append(f"- **Differential evolution**: `scipy.optimize.differential_evolution(vectorized=True)`, population "
             f"{S['de']['popsize']} x latent evaluated as one batch, box [-{S['de']['bound']}, {S['de']['bound']}]"
             f"^latent, best1bin, mutation U(0.5, 1), crossover 0.7, no polishing, {S['de']['max_evals']:,} "
             "evaluations per run.")
    if R["cnn_warm_start"]:
        L.append(f"- **CNN warm start** (the seed paper's): the CNN provider's model projected into the latent space "
                 f"({S['warm']['warm_steps']} Adam steps from the encoder's mean for the VAE, from z = 0 and random "
                 f"starts for the GAN; no gravity evaluations), then {S['warm']['method']} from that single z0; one "
                 "search per test model; its seconds include the CNN and the projection.")
    else:
        L.append(f"- **CNN warm start**: not run ({R['cnn_unavailable_reason']}).")
    L.append(f"- **Restarted until success** (derived from the recorded starts, no new searches): for each test "
             "model, one chain per rotation of its start order runs start after start, paying each one's "
             f"evaluations, until one succeeds within {S['budget']:,} evaluations in all. Chains of one model share "
             "starts, so they are not independent.")
    b = R.get("baseline")
    if b:
        L.append(f"- **Baseline with no search**: {b['what']}: {100 * b['in_band']:.0f}% of the test models in the "
                 f"band, median chi2 {b['median_chi2']:.2f}, median model error {b['median_model_error']:.3f}. A "
                 "success rate means little where this is already close to the band.")
    L.append("- **Evaluations** = forward runs (a latent vector through G, then A) + derivative passes (a reverse-mode "
             "gradient or one forward-mode tangent). Seconds are wall time on this machine's shared CPU; batched "
             "starts share their batch's time equally.\n")
    L.append("### Laloy et al. (2019)'s published rates, for what they are\n")
    L.append(f"Adam (10,000 iterations) {100 * LALOY_PUBLISHED['adam']:.0f}%, Gauss-Newton (finite-difference J) "
             f"{100 * LALOY_PUBLISHED['gauss-newton']:.0f}%, differential evolution {100 * LALOY_PUBLISHED['de']:.0f}%: "
             f"{LALOY_PUBLISHED['context']}. They are not gravbench's numbers and are not compared row by row.\n")
    for kind, G in R["generators"].items():
        man = G["manifest"]
        cfg = man.get("config") or {}
        L.append(f"## {kind.upper()} generator\n")
        L.append(f"Latent size {G['latent']}, decoder channels {cfg.get('channels')}, beta {cfg.get('beta', '-')}, "
                 f"density range [{cfg.get('lo')}, {cfg.get('hi')}] kg/m^3; trained with `{man.get('command')}` "
                 f"(sha256 `{(man.get('sha256') or '')[:12]}...`).\n")
        if G["missing_units"]:
            L.append(f"**Incomplete**: {len(G['missing_units'])} search units not in `{G['jsonl']}` yet: "
                     + ", ".join(f"{u} {i}" for u, i in G["missing_units"][:12])
                     + (" ..." if len(G["missing_units"]) > 12 else "") + ".\n")
        q = G["quality"]
        if q:
            L.append(f"### Generator quality ({len(q)} test models: the first {S['quality']['per_family']} of each "
                     "family and the report's test models)\n")
            L.append(f"Projection error `min_z ||G(z) - rho|| / ||rho||` in kg/m^3 (least squares on the generator's "
                     f"[0, 1] scale, {S['quality']['steps']} Adam steps, lr {S['quality']['lr']}, "
                     f"{S['quality']['starts']} starts: z = 0" + (", the encoder's mean" if kind == "vae" else "")
                     + " and random draws)" + ("; reconstruction error `||rho - decode(encode_mean(rho))|| / ||rho||`"
                                                if kind == "vae" else "") + ".\n")
            fams = sorted(set(x["family"] for x in q), key=lambda f: [x["family"] for x in q].index(f))
            L.append("| family | models | mean projection error | median | projected model in band (chi2) |"
                     + (" mean reconstruction error |" if kind == "vae" else ""))
            L.append("|---|---|---|---|---|" + ("---|" if kind == "vae" else ""))
            for f in fams + ["all"]:
                xs = [x for x in q if f == "all" or x["family"] == f]
                pe = np.array([x["proj_error"] for x in xs])
                inb = np.mean([is_success(x["proj_chi"] ** 2, N) for x in xs])
                line = f"| {f} | {len(xs)} | {pe.mean():.3f} | {np.median(pe):.3f} | {100 * inb:.0f}% |"
                if kind == "vae":
                    line += f" {np.mean([x['recon_error'] for x in xs]):.3f} |"
                L.append(line)
            L.append("")
        L.append("### Methods\n")
        L.append("| method | budget per search | searches | success | success within "
                 f"{S['budget']:,} evals | over-fitted | median evals to success | mean evals (fwd + deriv) "
                 "| mean s / search | median final chi2 | median model error |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for m, s in G["summary"].items():
            L.append(f"| {METHOD_LABELS.get(m, m)} | {G['budgets'][m]} | {s['searches']} | "
                     f"{100 * s['success_rate']:.0f}% | {100 * s['success_within_budget']:.0f}% | {s['overfit']} | "
                     f"{_fmt(s['median_evals_to_success'], '{:,.0f}')} | {s['mean_evals']:,.0f} "
                     f"({s['mean_forward']:,.0f} + {s['mean_derivs']:,.0f}) | {s['mean_seconds']:.2f} | "
                     f"{_fmt(None if s['median_chi'] is None else s['median_chi'] ** 2)} | "
                     f"{_fmt(s['median_model_error'])} |")
        L.append("")
        for m, s in G["summary"].items():
            if s.get("no_final_model"):
                L.append(f"- {METHOD_LABELS.get(m, m)}: {s['no_final_model']} of {s['searches']} chains have no start "
                         f"that finished within {S['budget']:,} evaluations (a start can cost more than the budget), "
                         "so they have no final model; their misfit and model error are left out of the medians.")
        L.append("")
        ms = list(G["summary"])
        qd = {x["index"]: x for x in q}
        L.append("Success within the budget per test model (searches in brackets), with its projection error:\n")
        L.append("| test model | projection error | " + " | ".join(ms) + " |")
        L.append("|---|---|" + "---|" * len(ms))
        for t in R["test_models"]:
            idx = t["index"]
            cells = []
            for m in ms:
                rs = [r for r in G["rows"][m] if r["model"] == idx]
                ok = [bool(r["ok"]) and r["reached"] <= S["budget"] for r in rs]
                cells.append(f"{100 * np.mean(ok):.0f}% ({len(rs)})" if rs else "-")
            pe = qd.get(idx, {}).get("proj_error")
            L.append(f"| #{idx} ({t['family']}) | {_fmt(pe, '{:.3f}')} | " + " | ".join(cells) + " |")
        L.append("")
    L.append("## The goal and what still fails\n")
    for kind, G in R["generators"].items():
        A = G["analysis"]
        m, rate = A["best"], A.get("best_rate")
        if not m:
            continue
        goal = "met" if rate >= 0.9 else "NOT met"
        L.append(f"- {kind.upper()}: best method {METHOD_LABELS.get(m, m)}, {100 * rate:.0f}% of "
                 f"{A.get('best_searches', '')} searches succeed within {S['budget']:,} evaluations (restarts "
                 f"counted): goal (>= 90%) **{goal}**.")
        c = A.get("best_cold")
        if m == "warm" and c:
            L.append(f"  - With random starts only (no CNN): "
                     f"{METHOD_LABELS.get(c, c)}, {100 * A['best_cold_rate']:.0f}% of {A['best_cold_searches']} "
                     f"searches.")
    L.append("")
    for kind, G in R["generators"].items():
        fl = G["analysis"]["failing"]
        if not fl:
            continue
        L.append(f"Still failing in the {kind.upper()} (test models where the best method does not always succeed):\n")
        for f in fl:
            L.append(f"- #{f['model']} ({f['family']}), {100 * f['success']:.0f}% success: **{f['reason']}**: "
                     f"{f['text']}.")
        L.append("")
    L.append("## Figures\n")
    for p in figs:
        L.append(f"![{p.stem}]({p.name})\n")
    return "\n".join(L) + "\n"
