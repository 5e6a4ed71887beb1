"""``gravbench report forward``: a compact, one-process sweep of the forward core.

Measures, on the machine at hand (ratios within one run are what count on a
shared machine):

* assembly of the dense ``A`` (the Toeplitz fast path) against ``np.full`` of the
  same shape and against SimPEG's ``Simulation3DIntegral(engine="choclo")`` on the
  equivalent pseudo-2D mesh (one cell of very long strike), also checking that the
  two matrices agree;
* ``matvec`` / ``rmatvec`` / ``normal_matvec`` of every operator against numpy's
  ``A.T @ (A @ v)``;
* the FFT operator at n = 2000 (time and peak RSS, in a subprocess);
* the dense/FFT crossover behind ``DENSE_AUTO_MAX_ENTRIES``, and parallel vs
  serial builds behind ``PARALLEL_MIN_SECONDS``;
* ``import gravbench`` and ``gravbench --help`` wall times.

Writes ``forward.md``, ``forward.json`` and ``forward.png`` (log-log time vs n)
into the output directory. Numba compilation is always done before timing.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__
from .._mpl import pyplot as _plt
from ..forward import DenseOperator, operators, sensitivity
from ..problem import Problem
from ..bench.timing import best_and_median as _timeit
from ..bench.timing import interleaved as _timeit_interleaved
from ..bench.timing import loadavg as _loadavg

__all__ = ["run", "write", "measure"]

QUICK_SIZES = {
    "assembly": [25, 50, 100, 200],
    "dense": [25, 50, 100, 200],
    "matfree": [25, 50, 100, 200],
    "fft": [25, 50, 100, 200, 400, 1000],  # n = 2000 runs in a subprocess (peak memory)
}


def _warm():

    for kernel in ("exact", "midpoint"):
        p = Problem.paper(n=4, kernel=kernel)
        for par in (True, False):
            p.sensitivity(parallel=par)
            for method in ("dense", "matfree", "fft"):
                p.operator(method, parallel=par).normal_matvec(np.ones(p.n_cells))


# ----------------------------------------------------------------------------------
def measure_assembly(sizes, log):

    rows = []
    for n in sizes:
        p = Problem.paper(n=n)
        args = (p.grid.x_edges, p.grid.z_edges, p.survey.x, p.survey.z)
        shape = (p.n_data, p.n_cells)
        t_full, t_auto, t_ser, t_chk = _timeit_interleaved([
            lambda: np.full(shape, 1.0),
            lambda: sensitivity(*args, disable_checks=True),
            lambda: sensitivity(*args, disable_checks=True, parallel=False),
            lambda: sensitivity(*args),
        ])
        rows.append({"n": n, "entries": shape[0] * shape[1], "assembly_s": t_auto[0], "assembly_median_s": t_auto[1],
                     "assembly_serial_s": t_ser[0], "assembly_checked_s": t_chk[0], "np_full_s": t_full[0],
                     "np_full_median_s": t_full[1], "ratio_to_full": t_auto[0] / t_full[0]})
        log(f"assembly n={n}: {t_auto[0] * 1e3:.2f} ms, np.full {t_full[0] * 1e3:.2f} ms")
    return rows


def measure_simpeg(n, log):
    """SimPEG's choclo engine on the pseudo-2D mesh vs gravbench's assembly at the same n."""
    try:
        import discretize
        from simpeg import maps
        from simpeg.potential_fields import gravity
    except ImportError as exc:  # pragma: no cover - optional
        return {"n": n, "error": f"simpeg not available: {exc}"}

    def build(nn):
        p = Problem.paper(n=nn)
        grid, sv = p.grid, p.survey
        L = 1e4 * float(np.hypot(grid.width, grid.depth))  # strike half-length, error ~ (r/L)^2 / 2
        mesh = discretize.TensorMesh([np.diff(grid.x_edges), [2 * L], np.diff(grid.z_edges)[::-1]],
                                     origin=[grid.x_edges[0], -L, -grid.z_edges[-1]])
        rx = gravity.receivers.Point(np.c_[sv.x, np.zeros(sv.m), -sv.z], components=["gx", "gz"])
        survey = gravity.survey.Survey(gravity.sources.SourceField(receiver_list=[rx]))

        def sim_G():
            sim = gravity.simulation.Simulation3DIntegral(
                mesh=mesh, survey=survey, rhoMap=maps.IdentityMap(nP=mesh.n_cells), engine="choclo",
                store_sensitivities="ram", sensitivity_dtype=np.float64)
            return sim.G

        return p, sim_G

    p_small, g_small = build(6)
    g_small()  # compile SimPEG's/choclo's numba functions outside the timing
    p, sim_G = build(n)
    args = (p.grid.x_edges, p.grid.z_edges, p.survey.x, p.survey.z)
    t_s = []
    G = None
    for _ in range(2):
        t0 = time.perf_counter()
        G = sim_G()
        t_s.append(time.perf_counter() - t0)
    t_ours, t_full = _timeit_interleaved([lambda: sensitivity(*args, disable_checks=True),
                                          lambda: np.full((p.n_data, p.n_cells), 1.0)])
    # SimPEG: rows interleave (gx, gz) per receiver, gz upward-positive, g/cc; columns from the bottom up
    m, nz, nx = p.survey.m, p.grid.nz, p.grid.nx
    Gr = np.vstack([G[0::2], -G[1::2]]).reshape(2 * m, nz, nx)[:, ::-1, :].reshape(2 * m, -1) * 1e-3
    del G
    A = sensitivity(*args)
    rel = float(np.abs(Gr - A).max() / np.abs(A).max())
    del Gr, A
    log(f"simpeg n={n}: {min(t_s):.2f} s vs gravbench {t_ours[0] * 1e3:.1f} ms")
    return {"n": n, "simpeg_s": min(t_s), "gravbench_s": t_ours[0], "np_full_s": t_full[0],
            "speedup": min(t_s) / t_ours[0], "max_rel_diff": rel}


def measure_operators(sizes, log):

    rows = []
    for method in ("dense", "matfree", "fft"):
        for n in sizes[method]:
            p = Problem.paper(n=n)
            t0 = time.perf_counter()
            op = p.operator(method, check_inputs=False)
            t_build = time.perf_counter() - t0
            rng = np.random.default_rng(0)
            v = rng.standard_normal(p.n_cells)
            u = rng.standard_normal(p.n_data)
            kw = dict(min_time=0.0, max_repeat=3, min_repeat=2) if method == "matfree" else {}
            row = {"method": method, "n": n, "build_s": t_build, "nbytes": int(op.nbytes),
                   "parallel": bool(getattr(op, "parallel", True))}
            for name, fn, x in (("matvec", op.matvec, v), ("rmatvec", op.rmatvec, u)):
                row[name + "_s"], row[name + "_median_s"] = _timeit(lambda: fn(x), **kw)
            if method == "dense":
                A = op.A
                op_checked = type(op)(p, A=A, check_inputs=True)
                (row["normal_matvec_s"], row["normal_matvec_median_s"]), (
                    row["numpy_normal_s"], row["numpy_normal_median_s"]), (row["normal_matvec_checked_s"], _) = \
                    _timeit_interleaved([lambda: op.normal_matvec(v), lambda: A.T @ (A @ v),
                                         lambda: op_checked.normal_matvec(v)])
                row["blas_threads"] = "library default" if op.parallel else "1 (single_thread_blas)"
            else:
                row["normal_matvec_s"], row["normal_matvec_median_s"] = _timeit(lambda: op.normal_matvec(v), **kw)
            rows.append(row)
            del op
            log(f"{method} n={n}: A^T A v {row['normal_matvec_s'] * 1e3:.3f} ms")
    return rows


_BIG_SCRIPT = r"""
import json, sys, time
import numpy as np
import gravbench as gb
n = int(sys.argv[1])
# compile first (cache), then measure the resident set of the real work
small = gb.Problem.paper(n=8)
small.operator("fft").normal_matvec(np.ones(small.n_cells))
from gravbench.bench.memory import peak_rss_mb
def hwm():  # peak RSS of this process image, KiB (the one peak-RSS reader: the kernel's high-water mark of this process image)
    return int(peak_rss_mb() * 1024)
rss0 = hwm()
p = gb.Problem.paper(n=n)
t0 = time.perf_counter()
op = p.operator("fft", check_inputs=False)
t_build = time.perf_counter() - t0
v = np.random.default_rng(0).standard_normal(p.n_cells)
op.normal_matvec(v)
ts, cpu = [], []
for _ in range(5):
    t0, c0 = time.perf_counter(), time.process_time()
    op.normal_matvec(v)
    ts.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
rss = hwm()
print(json.dumps({"n": n, "build_s": t_build, "normal_matvec_s": min(ts), "normal_matvec_median_s": float(np.median(ts)),
                  "normal_matvec_cpu_s": min(cpu),
                  "peak_rss_bytes": rss * 1024, "rss_before_bytes": rss0 * 1024, "operator_bytes": int(op.nbytes),
                  "dense_A_bytes": int(p.n_data) * int(p.n_cells) * 8, "parallel": bool(op.parallel)}))
"""


def measure_big_fft(n, log):
    r = subprocess.run([sys.executable, "-c", _BIG_SCRIPT, str(n)], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        return {"n": n, "error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"}
    out = json.loads(r.stdout.strip().splitlines()[-1])
    log(f"fft n={n}: A^T A v {out['normal_matvec_s']:.3f} s, peak RSS {out['peak_rss_bytes'] / 2**30:.2f} GiB")
    return out


def measure_crossover(log):
    """Dense vs FFT A^T A v (and build) at small n: where auto should switch."""

    rows = []
    for n in (10, 16, 24, 32, 40, 50, 64, 80, 100, 128):
        p = Problem.paper(n=n)
        v = np.random.default_rng(0).standard_normal(p.n_cells)
        t0 = time.perf_counter()
        d = p.operator("dense", check_inputs=False)
        bd = time.perf_counter() - t0
        t0 = time.perf_counter()
        f = p.operator("fft", check_inputs=False)
        bf = time.perf_counter() - t0
        (td, _), (tf, _) = _timeit_interleaved([lambda: d.normal_matvec(v), lambda: f.normal_matvec(v)],
                                               min_time=0.1)
        rows.append({"n": n, "entries": p.n_data * p.n_cells, "dense_s": td, "fft_s": tf, "dense_build_s": bd,
                     "fft_build_s": bf})
    log("crossover measured")
    return rows


def measure_parallel(log):
    """Parallel vs serial builds of the numba loops and BLAS threads (what parallel='auto' decides)."""

    rows = []
    for method, sizes in (("dense", (25, 50, 100, 200)), ("fft", (25, 100, 400, 1000)), ("matfree", (25, 50, 100))):
        for n in sizes:
            p = Problem.paper(n=n)
            v = np.random.default_rng(0).standard_normal(p.n_cells)
            kw = dict(min_time=0.0, max_repeat=3, min_repeat=2) if method == "matfree" else {}
            row = {"method": method, "n": n}
            A = p.sensitivity() if method == "dense" else None
            ops_ = {}
            for label, par in (("parallel", True), ("serial", False), ("auto", "auto")):
                if method == "dense":
                    ops_[label] = DenseOperator(p, A=A, parallel=par, check_inputs=False)
                else:
                    ops_[label] = p.operator(method, parallel=par, check_inputs=False)
            row["auto_choice"] = "parallel" if ops_["auto"].parallel else "serial"
            res = _timeit_interleaved([(lambda o: (lambda: o.normal_matvec(v)))(o) for o in ops_.values()],
                                      **({"min_time": 0.0, "max_repeat": 3, "min_repeat": 2} if kw else {}))
            for label, (best, _) in zip(ops_, res):
                row[label + "_s"] = best
            rows.append(row)
    log("parallel vs serial measured")
    return rows


def measure_imports(log):
    exe = Path(sys.executable).with_name("gravbench")
    env = {k: v for k, v in os.environ.items()}
    code = ("import time, sys; t = time.perf_counter(); import gravbench; dt = time.perf_counter() - t; "
            "print(dt, any(m.split('.')[0] in ('torch', 'dask') for m in sys.modules))")
    imp = []
    heavy = False
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        dt, h = r.stdout.split()
        imp.append(float(dt))
        heavy = heavy or h == "True"
    helps = []
    cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "gravbench", "--help"]
    for _ in range(3):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        helps.append(time.perf_counter() - t0)
    code2 = ("import sys\nfrom gravbench.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'dask')))")
    r2 = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True, env=env, timeout=120)
    help_heavy = r2.stdout.strip().splitlines()[-1] if r2.stdout.strip() else "?"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], capture_output=True, env=env, timeout=60)
    t_py = time.perf_counter() - t0
    log(f"import gravbench {min(imp):.3f} s, gravbench --help {min(helps):.3f} s")
    return {"import_s": min(imp), "import_loads_torch_or_dask": heavy, "help_s": min(helps),
            "help_exit_code": r.returncode, "help_heavy_modules": help_heavy, "python_startup_s": t_py,
            "help_command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}


def measure(quick=False, simpeg_n=200, big_n=2000, log=print):
    """Run the whole sweep; return a JSON-able dict."""
    import numba
    import scipy


    t_start = time.time()
    load0 = _loadavg()
    _warm()
    sizes = {k: (v[:2] if quick else v) for k, v in QUICK_SIZES.items()}
    res = {
        "meta": {
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "numba": numba.__version__, "gravbench": __version__, "cpus": os.cpu_count(),
            "numba_threads": numba.get_num_threads(), "threading_layer": _threading_layer(),
            "machine": platform.machine(), "loadavg_start": load0, "quick": quick,
            "DENSE_AUTO_MAX_ENTRIES": operators.DENSE_AUTO_MAX_ENTRIES,
            "PARALLEL_MIN_SECONDS": operators.PARALLEL_MIN_SECONDS,
        }
    }
    res["assembly"] = measure_assembly(sizes["assembly"], log)
    res["simpeg"] = measure_simpeg(50 if quick else simpeg_n, log)
    res["operators"] = measure_operators(sizes, log)
    res["big_fft"] = measure_big_fft(200 if quick else big_n, log)
    res["crossover"] = measure_crossover(log)
    res["parallel"] = measure_parallel(log)
    res["imports"] = measure_imports(log)
    res["meta"]["loadavg_end"] = _loadavg()
    res["meta"]["seconds"] = time.time() - t_start
    return res


def _threading_layer():
    try:
        import numba

        return numba.threading_layer()
    except Exception:  # noqa: BLE001 - only known after a parallel function ran
        return "?"


# ----------------------------------------------------------------------------------
def _ms(s):
    return "-" if s is None else (f"{s * 1e3:.3g}" if s < 10 else f"{s * 1e3:,.0f}")


def _targets(res):
    """(name, measured, target, met) rows."""
    out = []
    a200 = next((r for r in res["assembly"] if r["n"] == 200), res["assembly"][-1])
    sp = res["simpeg"]
    if "speedup" in sp:
        out.append((f"assembly n={sp['n']} vs SimPEG choclo (float64, gx+gz, ram)",
                    f"{sp['speedup']:.0f}x faster ({sp['simpeg_s']:.2f} s vs {sp['gravbench_s'] * 1e3:.0f} ms)",
                    ">= 20x", sp["speedup"] >= 20))
    out.append((f"assembly n={a200['n']} vs np.full of the same shape",
                f"{a200['ratio_to_full']:.2f}x the fill time ({_ms(a200['assembly_s'])} vs {_ms(a200['np_full_s'])} ms)",
                "<= 2x", a200["ratio_to_full"] <= 2))
    ops = {(r["method"], r["n"]): r for r in res["operators"]}
    nmax = max(n for (m, n) in ops if m == "dense")
    d, f = ops[("dense", nmax)], ops.get(("fft", nmax))
    if f is not None:
        sp_fft = d["numpy_normal_s"] / f["normal_matvec_s"]
        out.append((f"normal_matvec n={nmax}: fft vs numpy A.T @ (A @ v)",
                    f"{sp_fft:.0f}x faster ({_ms(f['normal_matvec_s'])} vs {_ms(d['numpy_normal_s'])} ms)", ">= 20x",
                    sp_fft >= 20))
    ratio = d["normal_matvec_s"] / d["numpy_normal_s"]
    ratio_c = d["normal_matvec_checked_s"] / d["numpy_normal_s"]
    out.append((f"normal_matvec n={nmax}: dense operator vs numpy A.T @ (A @ v)",
                f"{ratio:.2g}x (check_inputs=False), {ratio_c:.2g}x (checked)", "<= 1.3x", max(ratio, ratio_c) <= 1.3))
    b = res["big_fft"]
    if "normal_matvec_s" in b:
        out.append((f"fft normal_matvec n={b['n']} ({b['n'] ** 2:,} cells)",
                    f"{b['normal_matvec_s']:.3f} s, peak RSS {b['peak_rss_bytes'] / 2**30:.2f} GiB "
                    f"(dense A would be {b['dense_A_bytes'] / 2**30:,.0f} GiB)", "<= 0.5 s, <= 2 GB",
                    b["normal_matvec_s"] <= 0.5 and b["peak_rss_bytes"] <= 2e9))
    im = res["imports"]
    out.append(("import gravbench", f"{im['import_s']:.3f} s, torch/dask loaded: {im['import_loads_torch_or_dask']}",
                "<= 0.5 s, neither", im["import_s"] <= 0.5 and not im["import_loads_torch_or_dask"]))
    out.append(("gravbench --help (wall, incl. interpreter start)",
                f"{im['help_s']:.3f} s, torch/dask loaded: {im['help_heavy_modules']}", "<= 1 s",
                im["help_s"] <= 1.0 and im["help_heavy_modules"] == "[]"))
    return out


def _crossover_n(rows):
    """Smallest n from which fft beats dense for every larger n measured, or None."""
    cross = None
    for r in reversed(rows):
        if r["fft_s"] < r["dense_s"]:
            cross = r
        else:
            break
    return cross


def write(res, out_dir):
    """Write forward.md, forward.json and forward.png into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jpath = out_dir / "forward.json"
    jpath.write_text(json.dumps(res, indent=1, default=float) + "\n")
    png = out_dir / "forward.png"
    _plot(res, png)
    meta = res["meta"]
    L = []
    L.append("# Forward core: assembly and operators\n")
    L.append(f"Generated by `gravbench report forward` on {meta['date_utc']} UTC "
             f"({meta['cpus']} CPUs, numba {meta['numba']} with {meta['numba_threads']} threads, threading layer "
             f"`{meta['threading_layer']}`, numpy {meta['numpy']}, scipy {meta['scipy']}; the sweep took "
             f"{meta['seconds']:.0f} s). Times are the best of several runs after a warm-up (numba compilation "
             "never timed).\n")
    L.append(f"**Contention.** The machine's load average was {meta['loadavg_start']} at the start and "
             f"{meta['loadavg_end']} at the end (1, 5, 15 min) on {meta['cpus']} cores: other jobs share them, so "
             "absolute times are noisy; the ratios below are measured within this one process, "
             "moments apart.\n")
    L.append("## Targets\n")
    L.append("| target | measured | goal | met |")
    L.append("|---|---|---|---|")
    for name, measured, goal, met in _targets(res):
        L.append(f"| {name} | {measured} | {goal} | {'yes' if met else '**NO**'} |")
    L.append("")
    sp = res["simpeg"]
    if "max_rel_diff" in sp:
        L.append(f"SimPEG's matrix (3D prisms of strike half-length 1e4 x the grid diagonal) and gravbench's 2D "
                 f"closed form agree to {sp['max_rel_diff']:.1e} (max |difference| / max |A|): the comparison is "
                 "of the same numbers.\n")
    L.append("![time vs n](forward.png)\n")
    L.append("## Assembly of A (`sensitivity`, regular survey: Toeplitz fast path)\n")
    L.append("| n | entries | assembly (ms) | serial (ms) | with input checks (ms) | np.full (ms) | assembly / np.full |")
    L.append("|---|---|---|---|---|---|---|")
    for r in res["assembly"]:
        L.append(f"| {r['n']} | {r['entries']:,} | {_ms(r['assembly_s'])} | {_ms(r['assembly_serial_s'])} | "
                 f"{_ms(r['assembly_checked_s'])} | {_ms(r['np_full_s'])} | {r['ratio_to_full']:.2f} |")
    L.append("")
    L.append("## Operators (float64; times in ms; `check_inputs=False`)\n")
    L.append("| method | n | build | matvec | rmatvec | normal_matvec | numpy A.T @ (A @ v) | stored bytes |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in res["operators"]:
        L.append(f"| {r['method']} | {r['n']} | {_ms(r['build_s'])} | {_ms(r['matvec_s'])} | {_ms(r['rmatvec_s'])} | "
                 f"{_ms(r['normal_matvec_s'])} | {_ms(r.get('numpy_normal_s'))} | {r['nbytes']:,} |")
    L.append("")
    L.append("Dense is measured up to n = 200 (A is 384 MB there; 3 GB at n = 400) and matrix-free up to n = 200 in "
             "this sweep; the asv suite (`benchmarks/bench_forward.py`) and `pytest tests/bench --benchmark-enable --benchmark-only` "
             "cover n = 400 and beyond where they fit.\n")
    b = res["big_fft"]
    if "normal_matvec_s" in b:
        L.append(f"## FFT operator at n = {b['n']} ({b['n'] ** 2:,} cells, {b['n'] * 6:,} data)\n")
        L.append(f"Measured in a fresh subprocess: build {b['build_s']:.2f} s, `normal_matvec` "
                 f"{b['normal_matvec_s'] * 1e3:.0f} ms wall (median {b['normal_matvec_median_s'] * 1e3:.0f} ms; "
                 f"{b['normal_matvec_cpu_s'] * 1e3:.0f} ms of CPU time, {'parallel' if b['parallel'] else 'serial'} "
                 "build chosen by `auto`), peak RSS "
                 f"{b['peak_rss_bytes'] / 2**30:.2f} GiB (of which {b['rss_before_bytes'] / 2**30:.2f} GiB before the "
                 f"operator: interpreter, numpy, numba), operator storage {b['operator_bytes'] / 2**20:,.0f} MiB. "
                 f"A dense A would need {b['dense_A_bytes'] / 2**30:,.0f} GiB; none is formed.\n")
    L.append("## `auto`: dense vs FFT crossover\n")
    L.append("| n | entries of A | dense A^T A v (ms) | fft A^T A v (ms) | dense build (ms) | fft build (ms) |")
    L.append("|---|---|---|---|---|---|")
    for r in res["crossover"]:
        L.append(f"| {r['n']} | {r['entries']:,} | {_ms(r['dense_s'])} | {_ms(r['fft_s'])} | "
                 f"{_ms(r['dense_build_s'])} | {_ms(r['fft_build_s'])} |")
    L.append("")
    c = _crossover_n(res["crossover"])
    thr = meta["DENSE_AUTO_MAX_ENTRIES"]
    if c is not None:
        L.append(f"In this run the FFT product is faster from n = {c['n']} ({c['entries']:,} entries) on. ")
    L.append(f"`DENSE_AUTO_MAX_ENTRIES` = {thr:,} (about n = {round((thr / 6) ** (1 / 3))} for the paper's "
             "setup; it was 4,000,000 before this measurement): `auto` keeps the dense BLAS product below it, "
             "where gemv on a small A is faster than the FFT's fixed cost, and switches to FFT above it, where the "
             "FFT product wins by a growing factor (and builds faster, and A's memory grows as n^3). So the "
             "paper's n = 50 now runs on the FFT operator under `auto`.\n")
    L.append("## Parallel vs serial builds (`parallel=\"auto\"`)\n")
    L.append("| operator | n | parallel (ms) | serial (ms) | auto (ms) | auto chose |")
    L.append("|---|---|---|---|---|---|")
    for r in res["parallel"]:
        L.append(f"| {r['method']} | {r['n']} | {_ms(r['parallel_s'])} | {_ms(r['serial_s'])} | {_ms(r['auto_s'])} | "
                 f"{r['auto_choice']} |")
    L.append("")
    L.append(f"`parallel=\"auto\"` (the default) runs a numba loop on all cores only when its estimated serial time "
             f"exceeds `PARALLEL_MIN_SECONDS` = {meta['PARALLEL_MIN_SECONDS'] * 1e3:g} ms: a parallel region "
             "costs microseconds on an idle machine but up to a scheduler time slice when other processes share the "
             "cores, which made small products tens of times slower than serial. For `dense` the same rule decides "
             "whether OpenBLAS may use its threads for the gemv (one thread below the threshold, set through "
             "threadpoolctl): OpenBLAS's threaded gemv on mid-sized matrices (n = 50-100) is the slowest row of "
             "the table when the cores are shared, and numpy's `A.T @ (A @ v)` pays it in full. `auto` also needs "
             "1.5 idle cores (from the 1-minute load average, `idle_cores()`)")
    chose = [r["auto_choice"] for r in res["parallel"]]
    if chose:
        L[-1] += (f"; in this run it chose parallel for {chose.count('parallel')} of {len(chose)} rows "
                  f"(load average {meta['loadavg_start'][0]} at the start).\n")
    else:
        L[-1] += ".\n"
    im = res["imports"]
    L.append("## Start-up\n")
    L.append(f"`import gravbench`: {im['import_s'] * 1e3:.0f} ms (in-process, best of 3; loads torch or dask: "
             f"{im['import_loads_torch_or_dask']}). `{im['help_command']}`: {im['help_s'] * 1e3:.0f} ms wall "
             f"including {im['python_startup_s'] * 1e3:.0f} ms of bare interpreter start-up (heavy modules loaded: "
             f"{im['help_heavy_modules']}).\n")
    L.append("## Numba cache\n")
    L.append("Every kernel is `@njit(cache=True)`. Numba writes its cache to `NUMBA_CACHE_DIR` if set, else to "
             "`__pycache__` beside the sources, else (read-only install) to `~/.cache/numba`. With a read-only "
             "install *and* no writable home numba refuses to define cached functions at import; gravbench then "
             "sets `NUMBA_CACHE_DIR=<tempdir>/gravbench-numba-cache-<uid>` for the process "
             "(`gravbench/_cache.py`). `tests/test_kernels.py::test_numba_cache_read_only_install` runs a "
             "read-only copy of the package in subprocesses (both cases) and checks that the second run loads "
             "every function from the cache and compiles nothing.\n")
    L.append("## Reproduce\n")
    L.append("```\ngravbench report forward            # this page, forward.json, forward.png (a few minutes)\n"
             "asv run --bench bench_forward       # the asv suite\n"
             "pytest tests/bench/test_bench_forward.py --benchmark-enable --benchmark-only\n```\n")
    md = out_dir / "forward.md"
    md.write_text("\n".join(L))
    return md, jpath, png


def _plot(res, path):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    ax = axes[0]
    colors = {"dense": "tab:blue", "matfree": "tab:orange", "fft": "tab:green"}
    for method in ("dense", "matfree", "fft"):
        rows = [r for r in res["operators"] if r["method"] == method]
        if rows:
            ns = [r["n"] for r in rows]
            ax.loglog(ns, [r["normal_matvec_s"] for r in rows], "o-", color=colors[method], label=f"{method} A^T A v")
            ax.loglog(ns, [r["matvec_s"] for r in rows], ".:", color=colors[method], alpha=0.6,
                      label=f"{method} A v")
    rows = [r for r in res["operators"] if r["method"] == "dense"]
    ax.loglog([r["n"] for r in rows], [r["numpy_normal_s"] for r in rows], "k--", label="numpy A.T @ (A @ v)")
    b = res["big_fft"]
    if "normal_matvec_s" in b and b["n"] not in [r["n"] for r in res["operators"] if r["method"] == "fft"]:
        ax.loglog([b["n"]], [b["normal_matvec_s"]], "s", color=colors["fft"],
                  label=f"fft A^T A v, n={b['n']} (fresh process)")
    ax.set_xlabel("n (n x n cells, 3n stations)")
    ax.set_ylabel("time (s)")
    ax.set_title("operator products")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax = axes[1]
    rows = res["assembly"]
    ns = [r["n"] for r in rows]
    ax.loglog(ns, [r["assembly_s"] for r in rows], "o-", color="tab:blue", label="gravbench sensitivity (auto)")
    ax.loglog(ns, [r["assembly_serial_s"] for r in rows], ".:", color="tab:blue", label="gravbench, serial")
    ax.loglog(ns, [r["np_full_s"] for r in rows], "k--", label="np.full, same shape")
    sp = res["simpeg"]
    if "simpeg_s" in sp:
        ax.loglog([sp["n"]], [sp["simpeg_s"]], "r^", label="SimPEG choclo (pseudo-2D)")
    ax.set_xlabel("n")
    ax.set_ylabel("time (s)")
    ax.set_title("assembly of dense A")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(out="reports", quick=False, log=print):
    """Measure and write the report into ``out``; return the paths written."""
    res = measure(quick=quick, log=log)
    return write(res, out)
