"""``gravbench report scaling``: how each method's cost grows with the grid size n.

For every refiner (started from the zero model) and every provider (alone),
on ``Problem.paper(n)`` with one rectangular block (300 kg/m^3, the same
place in relative coordinates at every n) and 1 % peak noise, at n = 50,
100, 200, 400, 1000, 2000, 4000, 8000:

* wall time of the provider call or the refiner call (s; the problem, the
  operator and the data are built before the clock starts; numba compiled
  and weights loaded by an untimed warm-up call on a small grid);
* operator applications (``A v`` plus ``A^T u``, counted by the operator);
* peak resident memory of the call (:class:`gravbench.bench.memory.PeakRSS`:
  what the call added to the process's RSS at its worst moment, numba and
  torch allocations included) and the absolute peak RSS of the process;
* the operator ``auto`` chose, chi^2 and the model error.

Each case runs in its own subprocess (a clean RSS, and a hard time limit).
A method stops growing n when a case passes the time budget
(:data:`TIME_BUDGET`) or the memory budget (:data:`MEMORY_BUDGET_MB`), or
when the next size is predicted to pass it by a wide margin (the last two
sizes' growth extrapolated): the table says so. The exponent ``p`` of
``time ~ n^p`` is a least-squares fit over the sizes where the time is at
least :data:`FIT_MIN_SECONDS` (small sizes are dominated by fixed costs).

Records are appended to ``scaling.jsonl`` as each case finishes; a rerun
resumes (cases with a record are not run again; ``overwrite=True`` starts
over). ``scaling.md``, ``scaling.json`` and ``scaling.png`` are rewritten
from the records at the end (and by ``write``).

:func:`cgls_at_scale` is the end-to-end check at scale: problem, operator,
data and CGLS to the discrepancy level at one n, with times and peak RSS
(``gravbench report scaling --cgls 8000``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .._atomic import atomic_write_text, read_jsonl

from .. import providers, refiners
from .._mpl import pyplot as _plt
from ..data.noise import noise_sigma
from ..forward.operators import FFTOperator
from ..problem import Problem
from ..refiners import cgls
from ..bench.memory import METHOD as RSS_METHOD
from ..bench.memory import PeakRSS
from ..bench.runner import _err, skip_reason
from .._load import load_average
from ..metrics import chi2 as chi2_of

__all__ = ["run", "write", "run_case", "cgls_at_scale", "limits", "operator_accuracy", "block_model", "fit_exponent", "SIZES", "TIME_BUDGET",
           "MEMORY_BUDGET_MB"]

SIZES = (50, 100, 200, 400, 1000, 2000, 4000, 8000)
QUICK_SIZES = (50, 100, 200)
#: a method whose case takes longer than this (s) is not run at larger n
TIME_BUDGET = 20.0
#: a case is killed after this many seconds (recorded as ``timeout``)
HARD_LIMIT = 120.0
#: a method whose case adds more than this to the RSS (MiB) is not run at larger n
MEMORY_BUDGET_MB = 4096.0
#: a size is not attempted when the extrapolated time or memory is more than this multiple of the budget
PREDICT_FACTOR = 3.0
#: sizes faster than this do not enter the exponent fit (fixed costs dominate)
FIT_MIN_SECONDS = 0.05
BLOCK_DENSITY = 300.0
NOISE = 0.01


def block_model(shape, dtype=np.float32):
    """One rectangular block of :data:`BLOCK_DENSITY` kg/m^3 at the same relative place for every grid.

    Columns 35-60 % of the width, rows 20-45 % of the depth (kg/m^3, shape ``(nz, nx)``).
    """
    nz, nx = shape
    rho = np.zeros((nz, nx), dtype=dtype)
    rho[int(0.20 * nz):max(int(0.45 * nz), int(0.20 * nz) + 1),
        int(0.35 * nx):max(int(0.60 * nx), int(0.35 * nx) + 1)] = BLOCK_DENSITY
    return rho


def _data(prob, op, rho, level=NOISE, seed=0):
    """Noisy data and sigma: ``level`` times each component's peak (the ``peak`` noise model), seeded."""
    g0 = np.asarray(op.matvec(rho.ravel()), dtype=np.float64)
    sigma = noise_sigma(g0, level)
    g = g0 + sigma * np.random.default_rng(seed).standard_normal(g0.size)
    return g, sigma


def cgls_at_scale(n, dtype="float64", *, level=NOISE, seed=0, save=None):
    """Problem, FFT operator, data and CGLS to the discrepancy level at grid size ``n``, timed.

    Parameters
    ----------
    n : int
        Grid size (``Problem.paper(n)``: n x n cells, 3n stations).
    dtype : {"float64", "float32"}
        Precision of CGLS's model-size vectors (the FFT operator computes in
        float64 either way; its spectra are complex64 above 1 GiB).
    level : float
        Relative noise level (1 % of each component's peak).
    seed : int
        Noise seed.
    save : path, optional
        Write the model (float32 ``.npy``) there, to compare precisions.

    Returns
    -------
    dict
        Seconds of each phase and in total, iterations, operator
        applications, chi^2, model error, the operator's storage, and the
        peak RSS of the process (MiB) measured from before the problem was built.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 4:
        raise ValueError(f"n must be an integer >= 4, got {n!r}")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    out = {"n": int(n), "dtype": dtype, "cells": int(n) * int(n)}
    with PeakRSS() as pk:
        t0 = time.perf_counter()
        prob = Problem.paper(int(n))
        rho = block_model(prob.shape)
        t1 = time.perf_counter()
        op = prob.operator("auto")
        t2 = time.perf_counter()
        g, sigma = _data(prob, op, rho, level, seed)
        op.reset_counters()
        t3 = time.perf_counter()
        res = cgls.refine(op, g, sigma=sigma, dtype=dtype)
        t4 = time.perf_counter()
        x = np.asarray(res.x)
        err = float(np.linalg.norm(x - rho.ravel()) / np.linalg.norm(rho))
    out.update(seconds_problem=t1 - t0, seconds_operator=t2 - t1, seconds_data=t3 - t2, seconds_cgls=t4 - t3,
               seconds_total=t4 - t0, niter=int(res.niter), n_matvec=int(op.n_matvec + op.n_rmatvec),
               status=res.status, chi2=res.info.get("chi2"), model_error=err, operator=op.method,
               operator_reason=op.reason, spectra=getattr(op, "spectra", None),
               operator_mb=op.nbytes / 2**20, peak_rss_mb=pk.peak_mb, added_rss_mb=pk.mb,
               rss_method=pk.method)
    if save is not None:
        np.save(save, x.astype(np.float32))
    return out


# ----------------------------------------------------------------------------------------------
# one case (runs in a subprocess)
# ----------------------------------------------------------------------------------------------
def _methods():
    out = [("refiner", r) for r in refiners.names()]
    out += [("provider", p) for p in providers.names() if p != "zero"]
    return out


def _call(kind, name, prob, op, g, sigma):
    if kind == "refiner":
        res = refiners.run(name, op, g, x0=None, sigma=sigma)
        return np.asarray(res.x), int(res.niter)
    p = providers.get(name)
    return np.asarray(p(g, prob, sigma=sigma, seed=0)), None


def _warm_size(kind, name, n):
    # learned providers have weights for their grid only: warm up on the grid itself when it is small
    return n if n <= 200 else 50


def run_case(kind, name, n):
    """Run one (method, n) case in this process; returns its record (``status`` ok / skipped / error)."""
    rec = {"kind": kind, "method": name, "n": int(n), "status": "ok", "reason": None, "nice": os.nice(0),
           "load_average": (load_average() or [None])[0]}
    try:
        nw = _warm_size(kind, name, n)
        if nw != n:
            pw = Problem.paper(nw)
            opw = pw.operator("auto")
            gw, sw = _data(pw, opw, block_model(pw.shape, np.float64))
            try:
                _call(kind, name, pw, opw, gw, sw)
            except Exception:  # noqa: BLE001 - the warm-up grid may not suit the method; the timed call says
                pass
        prob = Problem.paper(int(n))
        rho = block_model(prob.shape, np.float64)
        op = prob.operator("auto")
        g, sigma = _data(prob, op, rho)
        if nw == n:
            _call(kind, name, prob, prob.operator("auto"), g, sigma)
        op.reset_counters()
        with PeakRSS() as pk:
            t0 = time.perf_counter()
            x, niter = _call(kind, name, prob, op, g, sigma)
            secs = time.perf_counter() - t0
        x = x.reshape(-1)
        r = np.asarray(op.matvec(x), dtype=np.float64) - g
        napp = int(op.n_matvec + op.n_rmatvec) - 1
        rec.update(seconds=secs, n_matvec=napp if kind == "refiner" else None, niter=niter,
                   added_rss_mb=pk.mb, peak_rss_mb=pk.peak_mb, operator=op.method, operator_reason=op.reason,
                   chi2=chi2_of(r, sigma),
                   model_error=float(np.linalg.norm(x - rho.ravel()) / np.linalg.norm(rho)))
    except Exception as exc:  # noqa: BLE001 - recorded
        why = skip_reason(exc)
        rec.update(status="skipped" if why else "error", reason=why or _err(exc))
    return rec


def _subprocess_case(kind, name, n, limit):
    cmd = [sys.executable, "-m", "gravbench.reports.scaling", "case", kind, name, str(n)]
    env = dict(os.environ)
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, env=env)
    except subprocess.TimeoutExpired:
        return {"kind": kind, "method": name, "n": int(n), "status": "timeout",
                "reason": f"killed after the hard limit of {limit:.0f} s"}
    lines = [ln for ln in cp.stdout.splitlines() if ln.startswith("{")]
    if cp.returncode != 0 or not lines:
        tail = " ".join((cp.stderr or "").strip().splitlines()[-2:])[:300]
        return {"kind": kind, "method": name, "n": int(n), "status": "error",
                "reason": f"subprocess exit {cp.returncode}: {tail}"}
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------------------------
# the sweep
# ----------------------------------------------------------------------------------------------
#: below these values a measurement is mostly fixed cost and noise: no growth rate is read from it
_PREDICT_FLOOR = {"seconds": FIT_MIN_SECONDS, "added_rss_mb": 20.0}


def _predict(done, n_next, key):
    """Extrapolate ``key`` to ``n_next`` from the last two ok sizes (exponent at least 2: cost per cell).

    The growth rate of the last two sizes is used only when both are above :data:`_PREDICT_FLOOR`
    (a few MiB of RSS or milliseconds are noise); otherwise n^2 from the last size.
    """
    ok = [r for r in done if r["status"] == "ok" and r.get(key) is not None]
    if not ok:
        return None
    last = ok[-1]
    floor = _PREDICT_FLOOR.get(key, 0.0)
    p = 2.0
    if len(ok) >= 2 and ok[-2][key] >= floor and last[key] >= floor and ok[-2][key] > 0:
        p = max(p, math.log(last[key] / ok[-2][key]) / math.log(last["n"] / ok[-2]["n"]))
    return max(last[key], floor) * (n_next / last["n"]) ** p


def _stop_reason(done, n_next, time_budget, memory_budget):
    """Why ``n_next`` is not attempted, given the method's earlier records (ascending n), or None."""
    ok = [r for r in done if r["status"] == "ok"]
    if any(r["status"] == "timeout" for r in done):
        return "a smaller n hit the hard time limit"
    if not ok:
        return None
    last = ok[-1]
    if last["seconds"] > time_budget:
        return f"n = {last['n']} took {last['seconds']:.1f} s > budget {time_budget:g} s"
    if last["added_rss_mb"] > memory_budget:
        return f"n = {last['n']} added {last['added_rss_mb']:.0f} MiB > budget {memory_budget:.0f} MiB"
    t = _predict(done, n_next, "seconds")
    if t is not None and t > PREDICT_FACTOR * time_budget:
        return f"predicted {t:.0f} s at n = {n_next} (> {PREDICT_FACTOR:g} x budget {time_budget:g} s)"
    m = _predict(done, n_next, "added_rss_mb")
    if m is not None and m > PREDICT_FACTOR * memory_budget:
        return f"predicted {m:.0f} MiB at n = {n_next} (> {PREDICT_FACTOR:g} x budget)"
    return None


def run(out="reports", quick=False, log=print, *, methods=None, sizes=None, time_budget=TIME_BUDGET,
        memory_budget=MEMORY_BUDGET_MB, hard_limit=HARD_LIMIT, overwrite=False, cgls_check=None):
    """Run the sweep (resuming from ``out/scaling.jsonl``) and write the report; returns the paths written.

    Parameters
    ----------
    out : path
        Output directory.
    quick : bool
        Sizes 50, 100, 200 only (a smoke run).
    methods : list of str, optional
        Method names (refiners and providers) to run; all by default.
    sizes : list of int, optional
        Grid sizes (default :data:`SIZES`).
    time_budget, memory_budget, hard_limit : float
        Budgets (s, MiB per case) and the kill limit (s).
    overwrite : bool
        Discard earlier records instead of resuming.
    cgls_check : list of int, optional
        Also run :func:`cgls_at_scale` at these n in float64 and float32 (subprocesses).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = tuple(sorted(set(sizes or (QUICK_SIZES if quick else SIZES))))
    path = out / "scaling.jsonl"
    if overwrite and path.exists():
        path.unlink()
    recs = read_jsonl(path)
    have = {(r["kind"], r["method"], r["n"]) for r in recs}
    todo = _methods()
    if methods:
        unknown = sorted(set(methods) - {m for _, m in todo})
        if unknown:
            raise ValueError(f"methods: unknown names {unknown}; known: {sorted({m for _, m in todo})}")
        todo = [t for t in todo if t[1] in methods]
    with open(path, "a") as fh:
        for kind, name in todo:
            done = sorted([r for r in recs if r["kind"] == kind and r["method"] == name], key=lambda r: r["n"])
            for n in sizes:
                if (kind, name, n) in have:
                    continue
                why = _stop_reason([r for r in done if r["n"] < n], n, time_budget, memory_budget)
                if why:
                    rec = {"kind": kind, "method": name, "n": n, "status": "stopped", "reason": why}
                else:
                    log(f"{kind} {name} n={n} ...")
                    rec = _subprocess_case(kind, name, n, hard_limit)
                rec["time_budget"], rec["memory_budget_mb"] = time_budget, memory_budget
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                recs.append(rec)
                done.append(rec)
                done.sort(key=lambda r: r["n"])
                if rec["status"] == "ok":
                    log(f"{kind} {name} n={n}: {rec['seconds']:.2f} s, {rec['added_rss_mb']:.0f} MiB, "
                        f"{rec['operator']}")
                else:
                    log(f"{kind} {name} n={n}: {rec['status']}: {rec['reason']}")
    apath = out / "scaling-accuracy.json"
    if cgls_check or not apath.exists():
        log("operator accuracy (complex128 / complex64 spectra, float32) ...")
        atomic_write_text(apath, json.dumps(operator_accuracy(), indent=1))
    checks = []
    cpath = out / "scaling-cgls.json"
    if cgls_check:
        old = json.loads(cpath.read_text()) if cpath.exists() and not overwrite else []
        checks = [c for c in old if c["n"] not in cgls_check]
        for n in cgls_check:
            checks += cgls_compare(n, out, log=log)
        atomic_write_text(cpath, json.dumps(checks, indent=1))
    elif cpath.exists():
        checks = json.loads(cpath.read_text())
    return write(out, recs, checks, sizes=sizes, time_budget=time_budget, memory_budget=memory_budget)


def operator_accuracy(sizes=(200, 2000), seed=0):
    """Relative error of the FFT operator's storage options against a reference, per size.

    Reference: the dense matrix (an independent assembly) where it fits in 2 GB, else the FFT
    operator with complex128 spectra (checked against dense at the smaller sizes). Rows:
    complex128 spectra (float64), complex64 spectra (float64 products: what ``auto`` picks
    above 1 GiB), and the all-float32 operator. ``||y - y_ref|| / ||y_ref||`` for ``A v`` and
    ``A^T u`` with random ``v``, ``u``; plus CGLS with float32 model vectors against float64
    on the block data (same operator), as the relative model difference.
    """
    rows = []
    for n in sizes:
        prob = Problem.paper(int(n))
        rng = np.random.default_rng(seed)
        v, u = rng.standard_normal(prob.n_cells), rng.standard_normal(prob.n_data)
        dense = 8 * prob.n_data * prob.n_cells <= 2 << 30
        if dense:
            A = prob.sensitivity()
            yv, yu, ref = A @ v, u @ A, "dense"
            del A
        else:
            op = FFTOperator(prob, spectra="complex128")
            yv, yu, ref = op.matvec(v), op.rmatvec(u), "fft complex128"
            del op
        for label, kw in (("complex128 spectra, float64", dict(spectra="complex128")),
                          ("complex64 spectra, float64", dict(spectra="complex64")),
                          ("float32 operator (complex64)", dict(dtype=np.float32))):
            if not dense and kw.get("spectra") == "complex128":
                continue
            op = FFTOperator(prob, **kw)
            rows.append({"n": int(n), "operator": label, "reference": ref, "bytes": int(op.nbytes),
                         "matvec": float(np.linalg.norm(op.matvec(v) - yv) / np.linalg.norm(yv)),
                         "rmatvec": float(np.linalg.norm(op.rmatvec(u) - yu) / np.linalg.norm(yu))})
            del op
        rho = block_model(prob.shape)
        op = prob.operator("fft")
        g, sigma = _data(prob, op, rho)
        r64 = cgls.refine(op, g, sigma=sigma)
        r32 = cgls.refine(op, g, sigma=sigma, dtype="float32")
        rows.append({"n": int(n), "operator": f"CGLS float32 vectors vs float64 ({op.spectra} spectra)",
                     "reference": "CGLS float64", "bytes": None, "niter": [int(r64.niter), int(r32.niter)],
                     "model": float(np.linalg.norm(r32.x - r64.x) / np.linalg.norm(r64.x))})
    return rows


def cgls_compare(n, out, log=print):
    """:func:`cgls_at_scale` at ``n`` in float64 then float32 (fresh subprocesses: clean peak RSS).

    Returns the two result dicts; the float32 one carries ``rel_diff_vs_float64``, the relative
    difference of the two models.
    """
    import tempfile

    res = []
    with tempfile.TemporaryDirectory() as tmp:
        for dt in ("float64", "float32"):
            log(f"cgls end to end at n={n}, {dt} ...")
            f = os.path.join(tmp, f"x-{dt}.npy")
            cmd = [sys.executable, "-m", "gravbench.reports.scaling", "cgls", str(n), dt, f]
            cp = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in cp.stdout.splitlines() if ln.startswith("{")]
            if cp.returncode != 0 or not lines:
                raise RuntimeError(f"cgls_at_scale({n}, {dt}) failed: {cp.stderr[-500:]}")
            r = json.loads(lines[-1])
            r["load_average"] = load_average()
            log(f"  {r['seconds_total']:.1f} s total, peak RSS {r['peak_rss_mb']:.0f} MiB, {r['niter']} iterations")
            res.append(r)
        x64 = np.load(os.path.join(tmp, "x-float64.npy")).astype(np.float64)
        x32 = np.load(os.path.join(tmp, "x-float32.npy")).astype(np.float64)
        res[1]["rel_diff_vs_float64"] = float(np.linalg.norm(x32 - x64) / np.linalg.norm(x64))
    return res


def limits(path):
    """``((kind, name, largest_n), ...)`` from a scaling report's JSON: methods that stopped, timed out
    or failed at a larger n than they ran at (a method that ran at every size it was tried has no limit).
    ``largest_n`` is the largest size below the first such failure that ran or was skipped by design
    (no weights for that grid, ...): those sizes keep their own reason in a sweep instead of a budget
    one. ``()`` when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return ()
    out = []
    for m in json.loads(path.read_text()).get("methods", []):
        by = m.get("by_n", {})
        ok = [int(n) for n, r in by.items() if r["status"] == "ok"]
        bad = [int(n) for n, r in by.items() if r["status"] in ("stopped", "timeout", "error")
               and (not ok or int(n) > max(ok))]
        if ok and bad:
            below = [int(n) for n, r in by.items() if int(n) < min(bad) and r["status"] in ("ok", "skipped")]
            out.append((m["kind"], m["method"], max(below)))
    return tuple(sorted(out))


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------
def fit_exponent(ns, ts, min_value=FIT_MIN_SECONDS, min_points=3):
    """Least-squares ``p`` in ``t = c n^p`` over the points with ``t >= min_value`` (None with fewer than
    ``min_points``)."""
    pts = [(n, t) for n, t in zip(ns, ts) if t is not None and t >= min_value]
    if len(pts) < min_points:
        return None
    x = np.log([p[0] for p in pts])
    y = np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def _summary(recs, sizes):
    rows = {}
    for r in recs:
        rows.setdefault((r["kind"], r["method"]), {})[r["n"]] = r
    out = []
    for (kind, name), by in sorted(rows.items(), key=lambda kv: (kv[0][0] != "refiner", kv[0][1])):
        ok = sorted((n for n, r in by.items() if r["status"] == "ok"))
        out.append({
            "kind": kind, "method": name,
            "largest_n": max(ok) if ok else None,
            "time_exponent": fit_exponent(ok, [by[n]["seconds"] for n in ok]),
            "memory_exponent": fit_exponent(ok, [by[n]["added_rss_mb"] for n in ok], min_value=20.0),
            "by_n": {str(n): by[n] for n in sorted(by)},
        })
    return out


def _cell(r):
    if r is None:
        return ""
    if r["status"] == "ok":
        return f"{r['seconds']:.3g} s / {r['added_rss_mb']:.0f} MiB" + (
            f" / {r['n_matvec']}" if r.get("n_matvec") is not None else "")
    return {"stopped": "stop", "skipped": "skip", "timeout": "timeout", "error": "error"}[r["status"]]


def _fmt(v, f="{:.2f}"):
    return "" if v is None else f.format(v)


def write(out, recs=None, checks=None, sizes=SIZES, time_budget=TIME_BUDGET, memory_budget=MEMORY_BUDGET_MB):
    """Write scaling.md / .json / .png from the records (read from ``out/scaling.jsonl`` when not given)."""
    out = Path(out)
    if recs is None:
        recs = read_jsonl(out / "scaling.jsonl")
    if checks is None:
        cpath = out / "scaling-cgls.json"
        checks = json.loads(cpath.read_text()) if cpath.exists() else []
    sizes = sorted(set(sizes) | {r["n"] for r in recs})
    summ = _summary(recs, sizes)
    apath = out / "scaling-accuracy.json"
    acc = json.loads(apath.read_text()) if apath.exists() else []
    load = load_average()
    meta = {"command": "gravbench report scaling", "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "load_average_at_write": load,
            "time_budget_s": time_budget, "memory_budget_mib": memory_budget, "hard_limit_s": HARD_LIMIT,
            "predict_factor": PREDICT_FACTOR, "fit_min_seconds": FIT_MIN_SECONDS, "rss_method": RSS_METHOD,
            "sizes": sizes, "noise": NOISE, "block_density": BLOCK_DENSITY}
    js = out / "scaling.json"
    atomic_write_text(js, json.dumps({"meta": meta, "methods": summ, "cgls_end_to_end": checks, "accuracy": acc},
                             indent=1))
    png = out / "scaling.png"
    _plot(summ, png)
    autos = {}
    for r in recs:
        if r["status"] == "ok":
            autos.setdefault(r["n"], r.get("operator"))
    L = ["# Cost versus grid size n", "",
         "Regenerate: `gravbench report scaling` (resumes from `reports/scaling.jsonl`; `--overwrite` starts "
         "over; `--cgls 8000` adds the end-to-end CGLS check below).", "",
         f"Machine: {os.cpu_count()} CPUs, shared; load average when written {load[0]:.2f} {load[1]:.2f} "
         f"{load[2]:.2f} (timings of a loaded machine: compare within a row, and read exponents rather than "
         "single times).", "",
         f"Setup: `Problem.paper(n)` (n x n cells, 3n stations, gx and gz), one {BLOCK_DENSITY:g} kg/m^3 block, "
         f"{NOISE:.0%} peak noise; refiners start from zero, providers run alone; each case in its own "
         "subprocess, warmed up (numba cache, weights) on a small grid first. Cell: wall time of the call / "
         "peak RSS it added (MiB, kernel high-water mark) / operator applications (refiners).", "",
         f"Budgets: a method is not run at a larger n once a case takes more than {time_budget:g} s or adds "
         f"more than {memory_budget:.0f} MiB, or when its last two sizes extrapolate to more than "
         f"{PREDICT_FACTOR:g} x a budget at the next size (`stop`); cases are killed after {HARD_LIMIT:g} s "
         "(`timeout`). `skip`: the method cannot run there by design (e.g. no weights for the grid). "
         "Exponent p of time ~ n^p: least squares over the sizes taking at least "
         f"{FIT_MIN_SECONDS:g} s (n^2 is linear in the cells).", "",
         "Operator `auto` chose: " + ", ".join(f"n = {n}: {autos[n]}" for n in sorted(autos)) + ".", ""]
    ran = [r for r in recs if r["status"] in ("ok", "timeout", "error")]
    nice = sorted({r.get("nice", 10) for r in ran})
    loads = [r["load_average"] for r in ran if r.get("load_average") is not None]
    L += [f"Priority and load: the cases ran at nice {', '.join(map(str, nice))}" +
          (f"; 1-minute load average at the start of a case {min(loads):.1f} to {max(loads):.1f} on "
           f"{os.cpu_count()} cores" if loads else "") +
          ". Other jobs shared the machine: a loaded or low-priority case can take several times its idle time "
          "(a first sweep at nice 10 under the same load took up to 8 times longer), which also moves where "
          "the budgets stop a method.", ""]
    head = ("| method | kind | " + " | ".join(f"n = {n}" for n in sizes) +
            " | p (time) | p (memory) | largest n |")
    L += [head, "|" + "---|" * (len(sizes) + 5)]
    for s in summ:
        cells = [_cell(s["by_n"].get(str(n))) for n in sizes]
        L.append(f"| {s['method']} | {s['kind']} | " + " | ".join(cells) +
                 f" | {_fmt(s['time_exponent'])} | {_fmt(s['memory_exponent'])} | {s['largest_n'] or '-'} |")
    L += ["", "Why a method stopped or was skipped (first reason per method):", ""]
    for s in summ:
        for n in sizes:
            r = s["by_n"].get(str(n))
            if r is not None and r["status"] != "ok":
                L.append(f"- {s['method']} ({s['kind']}), n = {n}: {r['status']}: {r['reason']}")
                break
    if checks:
        L += ["", "## CGLS end to end (target: <= 60 s and <= 4 GB peak RSS at n = 8000)", "",
              "Problem, FFT operator (`auto`), block data with 1 % peak noise and CGLS to the discrepancy level, "
              "in a fresh process each (numba cache warm). `dtype` is the precision of CGLS's model-size "
              "vectors; the operator computes in float64 with the spectra stored as stated. Peak RSS: the "
              "process's high-water mark from before the problem was built.", "",
              "| n | dtype | spectra | problem s | operator s | data s | CGLS s | total s | iterations | "
              "A, A^T | peak RSS MiB | operator MiB | chi2 | model error | vs float64 | load |",
              "|" + "---|" * 16]
        for c in checks:
            L.append(f"| {c['n']} | {c['dtype']} | {c['spectra']} | {c['seconds_problem']:.2f} | "
                     f"{c['seconds_operator']:.1f} | {c['seconds_data']:.1f} | {c['seconds_cgls']:.1f} | "
                     f"{c['seconds_total']:.1f} | {c['niter']} | {c['n_matvec']} | {c['peak_rss_mb']:.0f} | "
                     f"{c['operator_mb']:.0f} | {c['chi2']:.3f} | {c['model_error']:.3f} | "
                     f"{_fmt(c.get('rel_diff_vs_float64'), '{:.1e}')} | "
                     f"{' '.join(f'{v:.2f}' for v in c.get('load_average', []))} |")
    if acc:
        L += ["", "## Accuracy of the compact FFT storage", "",
              "Relative error `||y - y_ref|| / ||y_ref||` of `A v` and `A^T u` (random v, u) against the dense "
              "matrix (independent assembly) where it fits, else against complex128 spectra; and CGLS with "
              "float32 model vectors against float64 on the block data (relative model difference; iterations "
              "float64 / float32).", "",
              "| n | operator | reference | stored MiB | A v | A^T u | CGLS model | iterations |", "|---|---|---|---|---|---|---|---|"]
        for a in acc:
            mib = "" if a.get("bytes") is None else f"{a['bytes'] / 2**20:.1f}"
            L.append(f"| {a['n']} | {a['operator']} | {a['reference']} | {mib} | "
                     f"{_fmt(a.get('matvec'), '{:.1e}')} | {_fmt(a.get('rmatvec'), '{:.1e}')} | "
                     f"{_fmt(a.get('model'), '{:.1e}')} | {' / '.join(map(str, a.get('niter', [])))} |")
    L += ["", f"Raw numbers: `{js.name}` (records in `scaling.jsonl`); figure: `{png.name}`.", ""]
    md = out / "scaling.md"
    atomic_write_text(md, "\n".join(L))
    return md, js, png


def _plot(summ, path):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    colors = plt.cm.tab20(np.linspace(0, 1, 20))
    for ax in axes:
        ax.set_prop_cycle(color=colors)
    for s in summ:
        ok = [(int(n), r) for n, r in s["by_n"].items() if r["status"] == "ok"]
        if len(ok) < 2:
            continue
        ok.sort()
        ns = [n for n, _ in ok]
        ls = "-" if s["kind"] == "refiner" else "--"
        axes[0].loglog(ns, [max(r["seconds"], 1e-4) for _, r in ok], ls, marker="o", ms=3, label=s["method"])
        axes[1].loglog(ns, [max(r["added_rss_mb"], 0.1) for _, r in ok], ls, marker="o", ms=3, label=s["method"])
    for ax, yl in zip(axes, ("wall time of the call (s)", "peak RSS added (MiB)")):
        ax.set_xlabel("n (n x n cells)")
        ax.set_ylabel(yl)
        ax.grid(True, which="both", alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=6, ncol=2)
    fig.suptitle("gravbench: cost versus n (solid: refiners from zero; dashed: providers)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _main(argv):
    if len(argv) >= 4 and argv[0] == "case":
        print(json.dumps(run_case(argv[1], argv[2], int(argv[3]))), flush=True)
        return 0
    if len(argv) >= 3 and argv[0] == "cgls":
        print(json.dumps(cgls_at_scale(int(argv[1]), argv[2], save=argv[3] if len(argv) > 3 else None)),
              flush=True)
        return 0
    print("usage: python -m gravbench.reports.scaling case KIND NAME N | cgls N DTYPE [SAVE.npy]",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
