"""Run a comparison as a library call: every provider x refiner pair on the same held-out models.

:func:`run_comparison` builds the case matrix, runs it through
:func:`gravbench.bench.runner.run_cases` (resumable record file, optional Dask),
re-runs the best pairs on test model 0 for the gallery (records keep no models)
and returns a :class:`Comparison`: the records plus everything the report needs,
with the summary computed once. ``gravbench compare`` only parses options, shows
progress and prints; :func:`gravbench.reports.compare.run` writes the report.

Not run as a doctest (it runs sixteen inversions and writes ``cmp.jsonl`` in the
current folder):

>>> from gravbench.bench.compare import run_comparison
>>> c = run_comparison([50], ["zero", "tikhonov"], ["none", "cgls"], samples=4,   # doctest: +SKIP
...                    records_path="cmp.jsonl", overwrite=True)
>>> c.summary[0]["provider"]                                                       # doctest: +SKIP
'zero'
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from pathlib import Path

from . import runner
from ..providers._train import resolve_weights
from .cases import Case, build_cases, default_providers, default_refiners
from ..metrics import summarize
from .robustness import NOISE_KINDS, condition_name
from .robustness import toolkit as perturbed_toolkit

__all__ = ["Comparison", "run_comparison", "report_stem", "pair_label", "best_pairs", "DEFAULT_NS",
           "DEFAULT_SAMPLES", "DEFAULT_NOISE", "DEFAULT_SEED"]

#: defaults chosen so that ``gravbench compare --n 50 100`` takes <= 5 minutes on 2 cores (warm numba cache):
#: 7 providers x 7 refiners x 32 test models x 2 sizes = 3,136 cases ran in 2 min 47 s on the idle 2-core
#: machine (163 s for the cases). gmres and lgmres are opt-in (``--refiners ...,gmres,lgmres``): they cost
#: 2.0 s + 2.6 s per test model at n = 50 + 100; compact and focusing as refiners, dip, vae, gan and the SimPEG
#: peers as providers are opt-in too (seconds to minutes per model). With 32 models the leader vs runner-up
#: paired difference at n = 50 is known to +-0.003 (95 % half-width, reports/compare-50-100.md: cnn -> sparse vs
#: cnn -> smooth); +-0.01 needs about 5 models. Separating two different providers to +-0.01 would need ~450
#: models (standard deviation of their paired difference ~0.11): not affordable in the default run.
#: unet joined the defaults after that measurement: 448 more cases (the 224 at n = 100 skipped: no weights), 9 s;
#: with it, the 3,584 cases of reports/compare-50-100.md ran in 2 min 28 s (144 s for the cases).
DEFAULT_NS = (50, 100)
DEFAULT_SAMPLES = 32
DEFAULT_NOISE = 0.01
DEFAULT_SEED = 0


def report_stem(ns, sigma_scale=1.0, noise_kind="gaussian", dataset=None):
    """``compare-50-100`` for ``ns = [50, 100]`` (``-correlated`` / ``-sigma0.5`` for a wrong noise model,
    ``-<dataset>`` for a named test set)."""
    stem = "compare-" + "-".join(str(int(n)) for n in ns) + (f"-{dataset}" if dataset else "")
    return stem + ("" if noise_kind == "gaussian" else f"-{noise_kind}") + (
        "" if sigma_scale == 1.0 else f"-sigma{sigma_scale:g}")


def pair_label(row):
    """``"provider -> refiner"`` (or just the provider when there is no refiner)."""
    return row["provider"] if row["refiner"] == "none" else f"{row['provider']} -> {row['refiner']}"


def best_pairs(records, n, k=3, summary=None):
    """The ``k`` best (provider, refiner) pairs at ``n`` by mean model error (pairs with results only)."""
    rows = summarize(records) if summary is None else summary
    rows = [r for r in rows if r["n"] == n and r["model_error"]["mean"] is not None]
    return [(r["provider"], r["refiner"]) for r in rows[:k]]


@dataclasses.dataclass
class Comparison:
    """What one comparison produced.

    Attributes
    ----------
    records : list of dict
        One record per case (:mod:`gravbench.bench.runner`, versioned by ``schema``).
    summary : list of dict
        :func:`gravbench.metrics.summarize` of the records (computed once).
    ns, providers, refiners : list
        The grid sizes and method names compared.
    records_path : Path
        The JSON Lines record file.
    stem : str
        The report's file stem (:func:`report_stem`).
    settings : dict
        Settings for the report's header (samples, noise, seed, methods, noise model).
    sources : list of str
        Where the test models came from and which weight files the learned providers loaded.
    gallery : list of tuple
        ``(n, label, rho_true, rho_estimate, model_error)`` for the best pairs on test model 0.
    wall_seconds : float
        Wall time of the whole call, s.
    """

    records: list
    summary: list
    ns: list
    providers: list
    refiners: list
    records_path: Path
    stem: str
    settings: dict
    sources: list
    gallery: list
    wall_seconds: float

    def counts(self):
        """``{"ok": ..., "error": ..., "skipped": ...}`` over the records."""
        return runner.count_status(self.records)


def sweep_identity(ns, providers, refiners, *, sigma_scale=1.0, noise_kind="gaussian", weights=None, limits=None):
    """The settings outside the case key that change a case's result: the record file's identity
    (besides seed and samples), kept in its ``.meta.json`` and in every record's ``settings``.

    ``weights`` are the resolved ``{provider: path}``; ``limits`` only the scaling-report entries that
    skip a case of this sweep (a provider or refiner in it, stopped below the largest n)."""
    top = max(int(v) for v in ns) if ns else 0
    used = {("provider", p) for p in providers} | {("refiner", r) for r in refiners}
    lim = sorted([str(k), str(nm), int(big)] for k, nm, big in (limits or ())
                 if (k, nm) in used and int(big) < top)
    return {"sigma_scale": float(sigma_scale), "noise_kind": str(noise_kind),
            "weights": {str(k): str(v) for k, v in sorted((weights or {}).items())}, "limits": lim}


def _toolkit(toolkit, weights, sigma_scale, noise_kind, limits):
    """The sweep's toolkit and the resolved ``{provider: weights path}``."""
    tk = toolkit if toolkit is not None else runner.Toolkit()
    resolved = {}
    if weights:
        for pname, spec in weights.items():
            try:
                resolved[pname] = str(resolve_weights(spec, pname))
            except ValueError as exc:
                raise ValueError(f"weights {pname}={spec}: {exc}") from None
        opts = tuple((pname, (("weights", spec),)) for pname, spec in sorted(resolved.items()))
        tk = dataclasses.replace(tk, get_provider=functools.partial(runner.provider_with_options, options=opts))
    if sigma_scale != 1.0 or noise_kind != "gaussian":
        tk = perturbed_toolkit(sigma_scale, noise_kind, base=tk)
    if limits and hasattr(tk, "limits"):
        tk = dataclasses.replace(tk, limits=limits)
    return tk, resolved


def _check(ns, samples, noise, seed, sigma_scale, noise_kind):
    if not ns or any(int(v) < 4 for v in ns):
        raise ValueError(f"ns must be grid sizes >= 4, got {list(ns)}")
    if int(samples) < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not (noise >= 0 and math.isfinite(noise)):
        raise ValueError(f"noise must be a finite number >= 0 (a relative level such as 0.01), got {noise}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not sigma_scale > 0:
        raise ValueError(f"sigma_scale must be > 0, got {sigma_scale}")
    if noise_kind not in NOISE_KINDS:
        raise ValueError(f"noise_kind must be one of {', '.join(NOISE_KINDS)}, got {noise_kind!r}")
    if (sigma_scale != 1.0 or noise_kind != "gaussian") and not noise > 0:
        raise ValueError("sigma_scale / noise_kind need noisy data (noise > 0)")


def gallery_items(records, ns, toolkit, *, samples, noise, seed, summary=None, k=3):
    """Re-run the ``k`` best pairs at each n on test model 0: ``(n, label, rho_true, rho_est, model_error)``."""
    items = []
    for v in ns:
        for p, r in best_pairs(records, v, k=k, summary=summary):
            case = Case(n=v, noise=noise, model=0, provider=p, refiner=r, seed=seed, samples=samples)
            try:
                rt, rh = runner.estimate(case, toolkit)
            except Exception:  # noqa: BLE001 - the records already report the failure
                continue
            rec = next((x for x in records if x["n"] == v and x["model"] == 0 and x["provider"] == p
                        and x["refiner"] == r), None)
            items.append((v, pair_label({"provider": p, "refiner": r}), rt, rh,
                          None if rec is None else rec["model_error"]))
    return items


def run_comparison(ns=DEFAULT_NS, providers=None, refiners=None, *, samples=DEFAULT_SAMPLES, noise=DEFAULT_NOISE,
                   seed=DEFAULT_SEED, records_path=None, resume=False, overwrite=False, toolkit=None,
                   weights=None, sigma_scale=1.0, noise_kind="gaussian", limits=None, scheduler=None,
                   gallery=True, on_record=None, on_stage=None, log=None, dataset=None):
    """Run every provider x refiner pair on the same held-out models at each grid size.

    Parameters
    ----------
    ns : sequence of int
        Grid sizes (n x n cells, 3n stations; each >= 4).
    providers, refiners : sequence of str, optional
        Method names (default: :func:`gravbench.bench.cases.default_providers` /
        ``default_refiners``; ``"none"`` as a refiner scores the provider's model as is).
    samples, noise, seed : int, float, int
        Test models per size, relative noise level, seed of built test sets and
        stochastic providers.
    records_path : str or Path, optional
        JSON Lines record file (default ``reports/<stem>.jsonl``).
    resume, overwrite : bool
        As :func:`gravbench.bench.runner.run_cases`.
    toolkit : gravbench.bench.runner.Toolkit, optional
        Sources of test data, providers and refiners (default: gravbench's own).
    weights : dict, optional
        ``{provider: weights}`` (a ``.pt`` path or the name of trained weights).
    sigma_scale, noise_kind : float, str
        A wrong noise model (:mod:`gravbench.bench.robustness`); defaults: none.
    limits : dict, optional
        ``{method: largest feasible n}`` (:func:`gravbench.reports.scaling.limits`):
        larger cases are skipped with the reason in the record.
    scheduler : str or dask.distributed.Client, optional
        Run the cases as Dask tasks.
    gallery : bool
        Re-run the best three pairs per size on test model 0 for the gallery.
    on_record : callable, optional
        ``on_record(record, skipped)`` after every case (progress).
    on_stage : callable, optional
        ``on_stage(text)`` when a stage after the cases starts (e.g. the gallery).
    log : callable, optional
        Messages about resumed or duplicate records.
    dataset : str, optional
        A standard set (e.g. the independent ``rectangles-50``) whose test split replaces the default
        ``paper-<n>`` test models; ``ns`` must be its grid size.

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        A bad setting (named); :class:`gravbench.bench.runner.SweepMismatch`,
        ``OutputExists`` or ``SweepLocked`` from the record file.
    """
    t0 = time.perf_counter()
    ns = list(dict.fromkeys(int(v) for v in ns))
    _check(ns, samples, noise, seed, sigma_scale, noise_kind)
    provs = list(providers) if providers else list(default_providers())
    refs = list(refiners) if refiners else list(default_refiners())
    stem = report_stem(ns, sigma_scale, noise_kind, dataset)
    jpath = Path(records_path) if records_path is not None else Path("reports") / f"{stem}.jsonl"
    if dataset is not None:
        STANDARD = runner.data.STANDARD
        if dataset not in STANDARD:
            raise ValueError(f"unknown standard data set {dataset!r}; choose from {sorted(STANDARD)}")
        if ns != [STANDARD[dataset].n]:
            raise ValueError(f"data set {dataset} has grid size n = {STANDARD[dataset].n}; got ns = {ns}")
        base = toolkit if toolkit is not None else runner.Toolkit()
        toolkit = dataclasses.replace(base, load=functools.partial(runner.standard_load, dataset))
    tk, resolved = _toolkit(toolkit, weights, sigma_scale, noise_kind, limits)
    cases = build_cases(ns, provs, refs, samples=samples, noise=noise, seed=seed)
    ident = sweep_identity(ns, provs, refs, sigma_scale=sigma_scale, noise_kind=noise_kind, weights=resolved,
                           limits=getattr(tk, "limits", None) or limits)
    records = runner.run_cases(cases, jpath, resume=resume, overwrite=overwrite, toolkit=tk, scheduler=scheduler,
                               on_record=on_record, log=log, identity=ident)
    summary = summarize(records)
    items = []
    if gallery:
        if on_stage is not None:
            on_stage("drawing the gallery (re-running the best pairs on test model 0) ...")
        items = gallery_items(records, ns, tk, samples=samples, noise=noise, seed=seed, summary=summary)
    sources = []
    for v in ns:
        try:
            sources.append(f"n = {v}: test models from {runner.test_set(v, samples, noise, seed, tk).source}")
        except Exception:  # noqa: BLE001 - a missing source is reported by the records
            pass
    for name, used in runner.provider_weights().items():  # which weight files the learned providers loaded
        sources.append(f"{name} weights: " + "; ".join(f"{g}: {w}" for g, w in sorted(used.items())))
    settings = {"samples": samples, "noise": f"{noise:g}", "seed": seed, "providers": ", ".join(provs),
                "refiners": ", ".join(refs)}
    if dataset is not None:
        settings["test set"] = f"{dataset} (test split)"
    if sigma_scale != 1.0 or noise_kind != "gaussian":
        settings["noise model"] = (condition_name(sigma_scale, noise_kind)
                                   + " (chi2 and success against the sigma the methods were told)")
    return Comparison(records=records, summary=summary, ns=ns, providers=provs, refiners=refs, records_path=jpath,
                      stem=stem, settings=settings, sources=sources, gallery=items,
                      wall_seconds=time.perf_counter() - t0)
