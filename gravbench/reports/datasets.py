"""``gravbench report datasets``: reports/datasets.md, a gallery PNG per family, and measured numbers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .._atomic import atomic_write_text

from .. import __version__
from ..data.dataset import build
from ..data.families import BASE_FAMILIES, GENERATOR_VERSION, MIXED_PROPORTIONS, PARAMS, generate
from ..data.gallery import family_gallery
from ..data.sets import STANDARD
from ..problem import Problem

__all__ = ["run", "write_report", "time_paper50_build"]

DESCRIPTIONS = {
    "blocks": "One to several compact bodies (rotated rectangles, ellipses, star-shaped polygons with 3-8 "
              "vertices) in a zero background; each body has its own contrast and sign; later bodies cover "
              "earlier ones.",
    "layers": "A gently folded layered sequence: interfaces at random depths (random thicknesses), all folded by "
              "one sine plus a weaker second harmonic (amplitude shrinking with depth), with a regional dip; "
              "every layer has its own contrast.",
    "faults": "The layered sequence (gentler folds) cut by 1-3 dip-slip faults: each fault is a straight trace "
              "from the surface dipping left or right; the hanging wall is displaced along the dip (down for "
              "normal faults, up for reverse ones).",
    "intrusions": "1-2 intrusions in a zero background, each a salt dome (a mushroom-shaped diapir rising "
                  "from the base: rounded crest, overhang, leaning stem; negative contrast), a dyke (a steep "
                  "sheet from the base up to a random top; positive) or a sill (a thin tilted lens; positive).",
    "channels": "1-3 sinuous channel bands (two superposed meander harmonics, any direction within the angle "
                "range) filled with one contrast in a zero background: binary images in the spirit of the "
                "channel training images of Laloy et al. (2018, 2019).",
    "smooth": "Anisotropic Gaussian random fields with a Gaussian covariance, by the random Fourier mode "
              "(spectral) method, f = sqrt(2/M) sum_j cos(k_j . x + phi_j), k_j ~ N(0, diag(1/lx^2, 1/lz^2)); "
              "scaled to mean + std f and clipped to +-max_abs. Continuous in space, so the same seed gives "
              "the same field at every resolution. Unlike the piecewise families its values pass through "
              "zero, so small contrasts occur (the 50 kg/m^3 lower bound applies to the other families).",
    "fwi": "OpenFWI-style media in *absolute* density (not a contrast), for the like-for-like Table I "
           "(`fwi-51`, on `Problem.seed(51)`; its gallery is drawn on that geometry): 3-6 layers with random "
           "thicknesses filling the depth, flat or curved (one shared fold: a sine plus a weaker harmonic and a "
           "dip, as OpenFWI's CurveVel), cut by 1-2 planar normal or reverse faults in half of the models (as "
           "FlatFault / CurveFault); each layer draws a P velocity in 1500-4500 m/s, sorted to increase with "
           "depth, and neighbouring layers swap (a velocity inversion) with probability 0.1; density by "
           "Gardner's relation rho = 310 V^0.25 kg/m^3, about 1940-2550 kg/m^3. The training split's mean model "
           "(no data) scores a mean relative error of 0.051 on the fwi-51 test split, inside the 0.05-0.06 "
           "expected of OpenFWI-style media. Not part of `mixed`.",
}


def _fmt(v):
    if isinstance(v, tuple):
        return f"{v[0]:g} .. {v[1]:g}"
    return f"{v:g}"


def family_stats(family, shape=(50, 50), count=2000, seed=0):
    """Measured value statistics and generation speed of ``family`` (after a warm-up call)."""
    generate(family, 4, shape, seed=seed + 1)  # compile / load the cache outside the timing
    t0 = time.perf_counter()
    rho = generate(family, count, shape, seed=seed)
    dt = time.perf_counter() - t0
    nz = rho[rho != 0]
    a = np.abs(nz)
    return {
        "family": family, "shape": list(shape), "count": count,
        "min": float(rho.min()), "max": float(rho.max()),
        "nonzero_fraction": float(nz.size / rho.size),
        "abs_nonzero_p05": float(np.percentile(a, 5)) if a.size else 0.0,
        "abs_nonzero_median": float(np.median(a)) if a.size else 0.0,
        "positive_fraction_of_nonzero": float((nz > 0).mean()) if nz.size else 0.0,
        "seconds": dt, "models_per_second": count / dt,
    }


def size_scaling(sizes=(25, 50, 100, 200, 400), family="mixed", seed=0):
    """Generation speed of ``family`` across grid sizes: list of dicts (n, count, seconds, models/s, ns/cell)."""
    generate(family, 8, (8, 8), seed=seed + 1)
    rows = []
    for n in sizes:
        count = max(50, int(2_000_000 // (n * n)))  # about 2e6 cells per size
        t0 = time.perf_counter()
        generate(family, count, (n, n), seed=seed)
        dt = time.perf_counter() - t0
        rows.append({"n": n, "count": count, "seconds": dt, "models_per_second": count / dt,
                     "ns_per_cell": dt / (count * n * n) * 1e9})
    return rows


def time_paper50_build(out_dir=None, log=None):
    """Build the full paper-50 set (29,000 models) from scratch into a temporary directory and time it.

    Returns a dict with seconds, models/s and the peak of traced (numpy) memory against the set's size.
    """
    import tempfile
    import tracemalloc

    spec = STANDARD["paper-50"]
    prob = spec.problem()
    build(prob, count=64, seed=1, splits=None)  # warm-up: numba caches, BLAS threads
    splits = dict(zip(("train", "val", "test"), spec.splits))
    with tempfile.TemporaryDirectory(dir=out_dir) as d:
        tracemalloc.start()
        t0 = time.perf_counter()
        sets = build(prob, spec.families, seed=spec.seed, noise=spec.noise, splits=splits, out=d, name="paper-50")
        dt = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        nbytes = sum(ds.rho.nbytes + ds.g.nbytes + ds.g_clean.nbytes + ds.sigma.nbytes + ds.family.nbytes
                     + ds.index.nbytes for ds in sets.values())
        disk = sum(Path(ds.path).stat().st_size for ds in sets.values())
    total = sum(spec.splits)
    return {"models": total, "n": spec.n, "seconds": dt, "models_per_second": total / dt,
            "set_bytes": int(nbytes), "peak_traced_bytes": int(peak), "disk_bytes": int(disk)}


def write_report(out="reports", timing=True, log=None):
    """Write ``out/datasets.md``, ``out/datasets/<family>.png`` and ``out/datasets.json``; return the .md path."""
    import os

    import numba

    log = log or (lambda *a, **k: None)
    out = Path(out)
    figs = out / "datasets"
    figs.mkdir(parents=True, exist_ok=True)
    prob = Problem.paper(n=50)
    stats = {}
    for fam in BASE_FAMILIES + ("mixed",):
        log(f"family {fam}: gallery and statistics")
        family_gallery(figs / f"{fam}.png", fam, Problem.seed(51) if fam == "fwi" else prob, count=6, seed=0)
        stats[fam] = family_stats(fam)
    log("generation speed across sizes")
    scaling = size_scaling()
    build_t = None
    if timing:
        log("timing a fresh paper-50 build (29,000 models)...")
        build_t = time_paper50_build()
    env = {"gravbench": __version__, "generator_version": GENERATOR_VERSION,
           "numba_threads": int(numba.get_num_threads()), "cpu_count": os.cpu_count()}
    record = {"env": env, "families": stats, "size_scaling": scaling, "paper50_build": build_t}
    atomic_write_text(out / "datasets.json", json.dumps(record, indent=2) + "\n")

    L = []
    L.append("# Synthetic density models and data sets\n")
    L.append("Generated by `gravbench report datasets` (code: `gravbench/data/`). Numbers measured on this "
             f"machine ({env['cpu_count']} cores, {env['numba_threads']} numba threads, machine shared with other "
             f"jobs: timings are noisy). Generator version {GENERATOR_VERSION}.\n")
    L.append("## How models are made\n")
    L.append("* Every family draws a continuous geological picture on the unit square (x across, z down) and "
             "samples it at the cell centres, so any grid shape works (the benchmarks use n = 25 .. 400) and one "
             "seed gives the same geology at every resolution.")
    L.append("* Sample `i` has its own SplitMix64 random stream keyed by `(seed, family, i)`; samples render "
             "independently in a `numba.prange` loop, so a seed gives bitwise-identical models for any number of "
             "threads and any chunking (tested with `NUMBA_NUM_THREADS` = 1 and 2).")
    L.append("* Output: `float32` density contrasts in kg/m^3, shape `(count, nz, nx)`; "
             "`gravbench.data.generate(family, count, (nz, nx), seed, **params)`.")
    L.append("* Parameters below are `lo .. hi` ranges drawn uniformly per model (integers inclusive); lengths are "
             "fractions of the grid width / depth. Override them with `generate(..., name=(lo, hi))` or "
             "`build(..., params={family: {...}})`.\n")
    L.append("Measured over 2,000 models per family on a 50 x 50 grid (seed 0):\n")
    L.append("| family | min | max | cells != 0 | abs(rho != 0) 5 % / median | positive share | models/s |")
    L.append("|---|---|---|---|---|---|---|")
    for fam, s in stats.items():
        L.append(f"| {fam} | {s['min']:.0f} | {s['max']:.0f} | {s['nonzero_fraction']:.0%} | "
                 f"{s['abs_nonzero_p05']:.0f} / {s['abs_nonzero_median']:.0f} | "
                 f"{s['positive_fraction_of_nonzero']:.0%} | {s['models_per_second']:,.0f} |")
    L.append("")
    L.append("Generation speed of `mixed` across grid sizes (about 2e6 cells per size; time is linear in the "
             "number of cells):\n")
    L.append("| n | models | seconds | models/s | ns per cell |")
    L.append("|---|---|---|---|---|")
    for r in scaling:
        L.append(f"| {r['n']} | {r['count']:,} | {r['seconds']:.3f} | {r['models_per_second']:,.0f} | "
                 f"{r['ns_per_cell']:.1f} |")
    L.append("")
    for fam in BASE_FAMILIES:
        L.append(f"## `{fam}`\n")
        L.append(DESCRIPTIONS[fam] + "\n")
        L.append("| parameter | default | meaning |")
        L.append("|---|---|---|")
        for p, (default, doc) in PARAMS[fam].items():
            L.append(f"| `{p}` | {_fmt(default)} | {doc} |")
        L.append(f"\n![{fam}](datasets/{fam}.png)\n")
    L.append("## `mixed` (the default)\n")
    L.append("A seeded mixture: " + ", ".join(f"{k} {v:.0%}" for k, v in MIXED_PROPORTIONS.items())
             + ". Counts are exact (largest-remainder rounding) and the order is a seeded permutation; in `build` "
               "every split gets the proportions separately (stratified). Any other mix: "
               "`families={'blocks': 0.5, 'smooth': 0.5}` or `--families blocks=0.5,smooth=0.5`.\n")
    L.append("![mixed](datasets/mixed.png)\n")
    L.append("## Data sets\n")
    L.append("`gravbench.data.build(problem, families='mixed', count=..., seed=0, noise=0.01, noise_floor=0.0, "
             "noise_model='peak', splits=(0.9, 0.05, 0.05), out=DIR)` "
             "(`splits` fractions or counts; without it one split named `all`) renders the models in chunks, computes "
             "`g = rho.reshape(N, -1) @ A.T` (with the dense sensitivity when it fits in 1 GiB, summed over the "
             "cells in a fixed order without fused multiply-adds, so that BLAS kernels and thread counts change "
             "no bit; otherwise the fastest operator's `matmat`), adds noise and writes one `<split>.npz` per split. "
             "Splits are contiguous ranges of the global sample index. CLI: `gravbench data make --n 50 --count "
             "28000 --families mixed --noise 0.01 --seed 0 --out DIR`; `gravbench data show DIR/test.npz` prints "
             "the metadata and writes a gallery.\n")
    L.append("**Files.** Arrays `rho` (float32), `g`, `g_clean`, `sigma` (float64, mGal), `family` (int8 codes into "
             "`meta.family_names`), `index` (global sample index), `x_edges`, `z_edges`, `survey_x`, `survey_z`, "
             "and `meta`, a JSON string (format and generator versions, gravbench version, seed, families and "
             "proportions, family counts, parameter overrides, kernel, noise model / level / floor / seed, and "
             "the SHA-256 of all other arrays). No pickles: `load(path, problem)` reads with "
             "`allow_pickle=False`, recomputes the SHA-256 and checks grid, survey and kernel against `problem`; "
             "a difference, an edited or truncated file, or a pickle-bearing array is a `ValueError` that says "
             "what is wrong.\n")
    L.append("**Noise.** Gaussian, `sigma = level * peak_c + floor` with `peak_c` the largest |g| of the datum's "
             "component (gx or gz) in that sample (`noise_model='peak'`, default), or `sigma = level * |g_j| + "
             "floor` (`'datum'`); floor in mGal. The normals come from a stream keyed by `(noise_seed, index)`, "
             "separate from the model streams, so `add_noise(ds, level, noise_seed=...)` re-noises the same "
             "models deterministically; `Dataset.sigma` carries the standard deviations (for the discrepancy "
             "principle).\n")
    L.append("## Standard sets\n")
    L.append("`gravbench.data.standard(name, split='train'|'val'|'test', noise=0.01)` builds the set into "
             "`$GRAVBENCH_CACHE/datasets/<name>-g<generator version>/` (default `~/.cache/gravbench`) on first "
             "use, one split at a time (a split built alone is bitwise the same as in a full build, so the "
             "test split does not pay for the training set), with a progress bar and a file lock (parallel "
             "processes build once), and loads it after. "
             "The files hold the models, the clean data and the data with 1 % peak noise (noise seed = seed); "
             "another noise level, floor, model or seed is applied at load time from the stored clean data. "
             "`gravbench data standard NAME` pre-builds a set and prints its fingerprints.\n")
    L.append("**Fingerprints.** Every split of a standard set has a recorded fingerprint in the package "
             "(`gravbench/data/fingerprints.json`): SHA-256 digests of the models (`rho`, `family`, `index`), "
             "of the clean data and of the noisy data, over canonical little-endian bytes (independent of the "
             "file), plus random-sign projections of the data that hold to a relative tolerance (1e-11 of "
             "sum |g|): the models are bitwise the same on every machine, the data bitwise where the C math "
             "library is the same and within that tolerance where it is not (glibc's FMA and non-FMA `log` / "
             "`atan` / `cos` differ in the last bit). `standard()` checks each split it loads: a stale cached "
             "split is rebuilt once, a fresh build that still differs is refused. `gravbench data fingerprints "
             "[NAME...] [--record]` compares (or records) them; a test rebuilds `small-16` and the `paper-25` / "
             "`paper-50` test splits and fails if they differ from the record while `GENERATOR_VERSION` is "
             "unchanged.\n")
    L.append("| name | n | stations | train / val / test | families | seed | note |")
    L.append("|---|---|---|---|---|---|---|")
    for name, s in STANDARD.items():
        L.append(f"| `{name}` | {s.n} | {3 * s.n} | {s.splits[0]:,} / {s.splits[1]:,} / {s.splits[2]:,} | "
                 f"{s.families} | {s.seed} | {s.description} |")
    L.append("")
    L.append("## Speed: the full `paper-50` set\n")
    if build_t:
        L.append(f"A fresh build of `paper-50` ({build_t['models']:,} models at n = 50 with gx, gz at 150 stations, "
                 f"noise, three `.npz` files): **{build_t['seconds']:.1f} s** "
                 f"({build_t['models_per_second']:,.0f} models/s; target <= 60 s). Peak traced (numpy) memory "
                 f"{build_t['peak_traced_bytes'] / 2**20:,.0f} MiB for a set of "
                 f"{build_t['set_bytes'] / 2**20:,.0f} MiB in memory ({build_t['disk_bytes'] / 2**20:,.0f} MiB "
                 "on disk): memory is proportional to the set (the arrays plus one chunk of temporaries). "
                 "Benchmarks: `asv run --bench bench_data` and `pytest tests/bench/test_bench_data.py "
                 "--benchmark-only`.\n")
    else:
        L.append("(not measured in this run: `gravbench report datasets --timing`)\n")
    md = out / "datasets.md"
    atomic_write_text(md, "\n".join(L))
    return md


def run(out="reports", quick=False, log=print, *, timing=None):
    """The reports' common entry point: :func:`write_report` into ``out``; ``quick`` skips the build timing.

    Returns the path of ``datasets.md``.
    """
    return write_report(out, timing=(not quick) if timing is None else timing, log=log)
