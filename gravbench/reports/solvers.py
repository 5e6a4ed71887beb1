"""``gravbench report solvers``: refiners and Krylov solvers timed against SciPy / PyAMG.

Writes ``reports/solvers.md``, ``reports/solvers.json`` and ``reports/solvers.png``.
Every ratio is measured within one process, interleaving the contenders and
taking the median of repeats (the machine may be shared). Numba compilation
happens in a warm-up on a tiny problem before anything is timed.

Targets:

1. n = 50: gravbench ``gmres`` / ``lgmres`` on the normal equations >= 3x faster
   than ``scipy.sparse.linalg.gmres`` / ``lgmres`` and ``pyamg.krylov.gmres`` on
   the same operator (``op.normal()``) as a LinearOperator, same settings;
2. n = 200: a refiner's time within 1.2x of (its operator applications x the
   time of one application);
3. n = 200: ICG with 100 iterations under the time of 250 ``matvec`` s.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from .._atomic import atomic_write_text

from .._mpl import pyplot as _plt
from .._mpl import save_png
from .. import refiners, solvers
from .._linalg import single_thread_blas
from ..bench.timing import WARM_REFINERS, problem_case, warm_up
from .._load import load_average

__all__ = ["run", "problem_case", "SIZES"]

SIZES = (25, 50, 100, 200)
REFINERS = WARM_REFINERS


def _load1():
    la = load_average()
    return "unknown" if la is None else f"{la[0]:.1f}"


def application_time(op, count=60):
    """Seconds of one ``matvec`` and one ``rmatvec`` as a solver sees them (counters restored).

    Measured inside a power iteration ``v -> u = A v -> v = A^T u`` (rescaled,
    untimed): every input is a fresh vector just written, as in an iteration, and
    nothing but the products runs. Each call is timed on its own; the median over
    ``count`` calls is returned (the machine is shared: medians resist load spikes).
    """
    v = np.random.default_rng(1).standard_normal(op.shape[1])
    nm, nr = op.n_matvec, op.n_rmatvec
    tms, trs = [], []
    for i in range(count + 2):
        t0 = time.perf_counter()
        u = op.matvec(v)
        t1 = time.perf_counter()
        v = op.rmatvec(u)
        t2 = time.perf_counter()
        v *= 1.0 / np.abs(v).max()
        if i >= 2:                      # the first calls warm caches
            tms.append(t1 - t0)
            trs.append(t2 - t1)
    op.n_matvec, op.n_rmatvec = nm, nr
    return float(np.median(tms)), float(np.median(trs))


def applications_baseline(op, n_matvec, n_rmatvec, seed=3):
    """Seconds of ``n_matvec`` A and ``n_rmatvec`` A^T products done back to back, nothing else.

    A power iteration ``u = A v, v = A^T u`` (rescaled every 8 steps): the cost a
    refiner making the same products would have with zero overhead of its own.
    Counters restored.
    """
    v = np.random.default_rng(seed).standard_normal(op.shape[1])
    u = np.zeros(op.shape[0])
    nm, nr = op.n_matvec, op.n_rmatvec
    t0 = time.perf_counter()
    for i in range(max(n_matvec, n_rmatvec)):
        if i < n_matvec:
            u = op.matvec(v)
        if i < n_rmatvec:
            v = op.rmatvec(u)
        if i % 8 == 7:
            v *= 1.0 / (np.abs(v[:64]).max() + 1e-300)
    secs = time.perf_counter() - t0
    op.n_matvec, op.n_rmatvec = nm, nr
    return secs


def overhead_ratio(op, run, repeats):
    """Median over interleaved repeats of (refiner time) / (its products back to back); the result."""
    run()                                    # counts (and caches warm)
    ratios, times, base = [], [], []
    res = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = run()
        t = time.perf_counter() - t0
        b = applications_baseline(op, res.n_matvec, res.n_rmatvec)
        ratios.append(t / b)
        times.append(t)
        base.append(b)
    return float(np.median(ratios)), float(np.median(times)), float(np.median(base)), res


# ----------------------------------------------------------------------------------
# target 1: Krylov on the normal equations vs SciPy / PyAMG
# ----------------------------------------------------------------------------------
def krylov_vs_references(n=50, repeats=5, rtol=1e-6, restart=20, cycles=10, method="auto", log=print):
    """Time gravbench gmres/lgmres against scipy gmres/lgmres and pyamg gmres on ``op.normal()``."""
    import pyamg.krylov
    import scipy.sparse.linalg as sla

    prob, op, rho, g, sigma = problem_case(n, method=method)
    b = op.rmatvec(g)
    N = op.normal()
    def one_thread(f):
        # the references run under the same one-thread BLAS limit as gravbench's loops (their
        # fastest setting on a shared machine: threaded ddot/gemv is far slower there)
        def run():
            with single_thread_blas():
                return f()
        return run

    runs = {
        "gravbench gmres": lambda: solvers.gmres(N, b, rtol=rtol, restart=restart, maxiter=cycles),
        "scipy gmres": one_thread(lambda: sla.gmres(N, b, rtol=rtol, restart=restart, maxiter=cycles)),
        "pyamg gmres": one_thread(lambda: pyamg.krylov.gmres(N, b, tol=rtol, restart=restart, maxiter=cycles,
                                                             orthog="mgs")),
        "gravbench lgmres": lambda: solvers.lgmres(N, b, rtol=rtol, inner_m=restart, maxiter=cycles),
        "scipy lgmres": one_thread(lambda: sla.lgmres(N, b, rtol=rtol, inner_m=restart, maxiter=cycles)),
    }
    times = {k: [] for k in runs}
    apps = {}
    for k, f in runs.items():          # one untimed run each: counts, and warm caches
        op.reset_counters()
        f()
        apps[k] = op.n_matvec
    for _ in range(repeats):           # interleaved repeats
        for k, f in runs.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    tm, tr = application_time(op)
    # the same products back to back, nothing else: the floor any solver making them could reach
    floor = {k: float(np.median([applications_baseline(op, apps[k], apps[k]) for _ in range(3)])) for k in runs}
    out = {"n": n, "operator": op.method, "rtol": rtol, "restart": restart, "cycles": cycles,
           "seconds": med, "normal_products": apps, "t_normal_product": tm + tr, "products_seconds": floor,
           "ratios": {"scipy gmres / gravbench gmres": med["scipy gmres"] / med["gravbench gmres"],
                      "pyamg gmres / gravbench gmres": med["pyamg gmres"] / med["gravbench gmres"],
                      "scipy lgmres / gravbench lgmres": med["scipy lgmres"] / med["gravbench lgmres"]}}
    log(f"  n={n} {op.method}: " + ", ".join(f"{k} {v:.3g}x" for k, v in out["ratios"].items()))
    return out


# ----------------------------------------------------------------------------------
# sweep + targets 2 and 3
# ----------------------------------------------------------------------------------
def refiner_sweep(sizes=SIZES, repeats=3, log=print):
    """Every refiner at every size (default settings, sigma known, zero start)."""
    rows = []
    for n in sizes:
        prob, op, rho, g, sigma = problem_case(n)
        tm, tr = application_time(op)
        for name in REFINERS:
            op.reset_counters()

            def once():
                if name == "tikhonov":      # cold: K built and diagonalised every time
                    refiners.tikhonov.clear_cache()
                return refiners.run(name, op, g, sigma=sigma)

            ratio, secs, base, res = overhead_ratio(op, once, repeats + 4 if n >= 200 else repeats)
            err = float(np.linalg.norm(res.x - rho) / np.linalg.norm(rho))
            rows.append({"n": n, "operator": op.method, "refiner": name, "status": res.status, "niter": res.niter,
                         "n_matvec": res.n_matvec, "n_rmatvec": res.n_rmatvec, "seconds": secs,
                         "model_error": err, "data_misfit": float(res.info["misfit"]),
                         "chi2": float(res.info.get("chi2", np.nan)), "t_matvec": tm, "t_rmatvec": tr,
                         "products_seconds": base, "overhead": ratio,
                         "engine": res.info.get("engine"), "residuals": res.residuals.tolist()})
            log(f"  n={n:4d} {name:9s} {res.status:11s} it={res.niter:4d} A={res.n_matvec:5d} "
                f"At={res.n_rmatvec:5d} {secs:8.3f}s x{rows[-1]['overhead']:.2f} err={err:.3f}")
    return rows


def icg_target(n=200, iters=100, repeats=3, log=print):
    """ICG forced to ``iters`` iterations (no discrepancy stop) vs the time of 250 matvecs."""
    prob, op, rho, g, sigma = problem_case(n)
    tm, tr = application_time(op)

    def run():
        return refiners.run("icg", op, g, maxiter=iters, rtol=0.0)

    run()
    ratios, times, budgets = [], [], []
    res = None
    for _ in range(repeats):                # interleaved: ICG, then 250 matvecs
        t0 = time.perf_counter()
        res = run()
        times.append(time.perf_counter() - t0)
        budgets.append(applications_baseline(op, 250, 0))
        ratios.append(times[-1] / budgets[-1])
    secs, budget = float(np.median(times)), float(np.median(budgets))
    out = {"n": n, "operator": op.method, "niter": res.niter, "n_matvec": res.n_matvec, "n_rmatvec": res.n_rmatvec,
           "seconds": secs, "t_matvec": tm, "t_rmatvec": tr, "budget_250_matvec": budget,
           "ratio_to_budget": float(np.median(ratios)),
           "overhead": secs / applications_baseline(op, res.n_matvec, res.n_rmatvec)}
    log(f"  ICG n={n}: {res.niter} iterations {secs:.3f}s; 250 matvecs {250 * tm:.3f}s "
        f"(ratio {out['ratio_to_budget']:.2f})")
    return out


# ----------------------------------------------------------------------------------
def _figure(rows, krylov, path):
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    ax = axes[0]
    ns = sorted({r["n"] for r in rows})
    n_show = 50 if 50 in ns else ns[-1]
    for r in rows:
        if r["n"] == n_show and r["refiner"] in ("gd", "cgls", "icg", "picg"):
            ax.semilogy(r["residuals"], label=r["refiner"])
    ax.set_xlabel("iteration")
    ax.set_ylabel("||A x - g|| / ||g||")
    ax.set_title(f"refiners at n = {n_show} (1% noise, zero start)")
    ax.legend()
    ax = axes[1]
    names = [r for r in REFINERS]
    for name in names:
        xs = [r["n"] for r in rows if r["refiner"] == name]
        ys = [r["seconds"] for r in rows if r["refiner"] == name]
        ax.loglog(xs, ys, "o-", label=name)
    ax.set_xlabel("n (n x n cells)")
    ax.set_ylabel("seconds")
    ax.set_title("refiner wall time (default settings)")
    ax.legend(fontsize=8, ncol=2)
    ax = axes[2]
    labels, vals = [], []
    for k in krylov:
        for name, v in k["ratios"].items():
            labels.append(f"{name.split(' / ')[0]}\n({k['operator']}, n={k['n']})")
            vals.append(v)
    ax.barh(range(len(vals)), vals, color="tab:blue")
    ax.axvline(1.0, color="k", lw=0.8)
    ax.axvline(3.0, color="tab:red", ls="--", lw=1, label="target 3x")
    ax.set_yticks(range(len(vals)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("reference time / gravbench time")
    ax.set_title("normal equations: speed-up over SciPy / PyAMG")
    ax.legend()
    fig.tight_layout()
    save_png(fig, path, dpi=110)


def _md(data):
    L = ["# Solvers and refiners", "",
         "Generated by `gravbench report solvers` (" + data["generated"] + f", {data['machine']}, "
         f"numba threads {data['threads']}, load average at start {data['load']}). All ratios are medians of "
         "interleaved repeats within one process; the machine is shared, so absolute times are noisy.", ""]
    L += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for t in data["targets"]:
        L.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**NO**'} |")
    L += ["", "## Krylov on the normal equations vs SciPy and PyAMG", "",
          "Same operator (`op.normal()`, applied as A then A^T) handed to every solver, same rtol, restart "
          "(inner_m) and cycle budget; SciPy and PyAMG run under the same one-thread BLAS limit as gravbench "
          "(their fastest setting here). `products` = normal products made (from the operator's counters).", "",
          "`products alone` = the same number of normal products done back to back with nothing else (the "
          "floor for any solver making them); `in products` = that floor / the solver's time, the share of "
          "the run spent applying the operator. The best possible speed-up over a reference is its time / "
          "the floor.", "",
          "| n | operator | solver | seconds | products | products alone (s) | in products | "
          "ratio (ref / gravbench) |",
          "|---|---|---|---|---|---|---|---|"]
    for k in data["krylov"]:
        for name, s in k["seconds"].items():
            base = "gravbench " + name.split()[1]
            ratio = "" if name.startswith("gravbench") else f"{s / k['seconds'][base]:.2f}"
            fl = k["products_seconds"][name]
            L.append(f"| {k['n']} | {k['operator']} | {name} | {s:.4f} | {k['normal_products'][name]} | "
                     f"{fl:.4f} | {fl / s:.0%} | {ratio} |")
    L += ["", "A reference's time over the products-alone floor bounds the speed-up any solver loop can give "
          "on that operator: " + ", ".join(
              f"n={k['n']} {k['operator']}: scipy gmres {k['seconds']['scipy gmres'] / k['products_seconds']['scipy gmres']:.2f}x"
              for k in data["krylov"]) + ". gravbench removes the Python work between products (compiled loop "
          "for dense / matrix-free operators) but the products themselves are the same BLAS / FFT / numba "
          "calls.", ""]
    L += ["## Every refiner (default settings, sigma known, zero start, 1% noise)", "",
          "`overhead` = refiner time / time of the same numbers of A and A^T products done back to back in a "
          "power iteration (nothing else), median over interleaved repeats: 1.0 means the refiner costs "
          "nothing beyond its operator applications. Single calls were too noisy on the shared machine to "
          "multiply out (a product on a hot vector measured 2-3x faster than on a fresh one).", "",
          "| n | op | refiner | status | iters | A | A^T | seconds | overhead | model error | data misfit | chi2 |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["sweep"]:
        L.append(f"| {r['n']} | {r['operator']} | {r['refiner']} | {r['status']} | {r['niter']} | {r['n_matvec']} | "
                 f"{r['n_rmatvec']} | {r['seconds']:.4f} | {r['overhead']:.2f} | {r['model_error']:.3f} | "
                 f"{r['data_misfit']:.2e} | {r['chi2']:.2f} |")
    i = data["icg"]
    L += ["", "## ICG, 100 iterations at n = 200", "",
          f"{i['niter']} iterations, {i['n_matvec']} A and {i['n_rmatvec']} A^T products on the {i['operator']} "
          f"operator: {i['seconds']:.3f} s; one matvec {i['t_matvec'] * 1e3:.3f} ms, one rmatvec "
          f"{i['t_rmatvec'] * 1e3:.3f} ms (medians inside a power iteration); 250 matvecs back to back "
          f"(interleaved with the ICG runs) = {i['budget_250_matvec']:.3f} s; median ratio "
          f"{i['ratio_to_budget']:.2f}.", "",
          "![solvers](solvers.png)", "",
          "## Notes", "",
          "* The refiners' model errors are large because a 2D gravity inversion from surface data is "
          "non-unique; they are the same problem for every refiner and are here to compare methods, not to "
          "judge them.",
          "* `gmres` / `lgmres` refiners stop by their Krylov budget (default 10 cycles of 30) or the "
          "normal-equation tolerance, not at the discrepancy: they over-fit the noise (chi2 < 1).",
          "* `tikhonov` is timed cold (K = W_d A W_m^-2 A^T W_d built from op.A when dense, else column by "
          "column with N A^T and N A products, then diagonalised); a second call on the same operator, sigma and "
          "weights reuses the eigen-decomposition and costs 2 A + 1 A^T. Its `overhead` compares the whole "
          "direct solve with the few products it reports, so it is not a target.",
          "* Dense and matrix-free operators run the whole iteration in numba; the FFT operator (chosen by "
          "`auto` for n >= 100 here) runs the same algorithm through the Python twin, its FFTs in scipy.fft.",
          ""]
    return "\n".join(L)


def run(out="reports", quick=False, log=print):
    """Measure everything and write ``solvers.md``, ``solvers.json``, ``solvers.png`` into ``out``."""
    import numba

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log("warming up (numba compile / cache load) ...")
    warm_up()
    sizes = (12, 16) if quick else SIZES
    reps = 1 if quick else 5
    log("Krylov vs SciPy / PyAMG ...")
    if quick:
        krylov = [krylov_vs_references(n=16, method="dense", repeats=2, log=log)]
    else:
        krylov = [krylov_vs_references(n=50, method="dense", repeats=7, log=log),
                  krylov_vs_references(n=50, method="fft", repeats=7, log=log),
                  krylov_vs_references(n=50, method="matfree", repeats=3, cycles=2, log=log),
                  krylov_vs_references(n=100, method="auto", repeats=3, log=log)]
    log("refiner sweep ...")
    sweep = refiner_sweep(sizes, repeats=reps, log=log)
    log("ICG target ...")
    icg = icg_target(n=16 if quick else 200, repeats=reps + 2, log=log)
    big = max(sizes)
    targets = []
    for k in krylov:
        if k["n"] != krylov[0]["n"]:
            continue
        for name, v in k["ratios"].items():
            targets.append({"target": f"n={k['n']} ({k['operator']} operator): {name} >= 3",
                            "measured": f"{v:.2f}x", "met": bool(v >= 3.0)})
    for r in sweep:
        if r["n"] == big and r["refiner"] != "tikhonov":
            targets.append({"target": f"n={big} ({r['operator']}): {r['refiner']} time <= 1.2 x applications",
                            "measured": f"{r['overhead']:.2f}x ({r['n_matvec']} A + {r['n_rmatvec']} A^T)",
                            "met": bool(r["overhead"] <= 1.2)})
    targets.append({"target": f"n={icg['n']}: ICG {icg['niter']} iterations < 250 matvecs",
                    "measured": f"{icg['seconds']:.3f} s vs {icg['budget_250_matvec']:.3f} s "
                                f"({icg['ratio_to_budget']:.2f})", "met": bool(icg["ratio_to_budget"] < 1.0)})
    import os

    data = {"generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "threads": int(numba.get_num_threads()),
            "load": _load1(), "quick": quick, "targets": targets, "krylov": krylov,
            "sweep": sweep, "icg": icg}
    atomic_write_text(out / "solvers.json", json.dumps(data, indent=1))
    _figure(sweep, krylov, out / "solvers.png")
    md = out / "solvers.md"
    atomic_write_text(md, _md(data))
    return md, data
