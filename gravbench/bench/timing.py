"""Timing for the reports and the benchmark suites: one home for "how long did it take".

The installed package cannot import ``benchmarks/`` (asv) or ``tests/bench/``
(pytest-benchmark), so what they share with the report commands lives here:
the benchmark case (:func:`problem_case`), the warm-up that compiles every loop
before anything is timed (:func:`warm_up`), wall-time helpers that time after a
warm-up call (:func:`best_and_median`, :func:`interleaved`, :func:`median_time`)
and the machine load (:func:`loadavg`). Peak memory is :class:`gravbench.bench.memory.PeakRSS`.
"""

from __future__ import annotations

import time

import numpy as np

from .. import refiners, solvers
from ..problem import Problem
from .._load import load_average

__all__ = ["problem_case", "warm_up", "best_and_median", "interleaved", "median_time", "loadavg",
           "WARM_REFINERS"]

#: refiners compiled by :func:`warm_up` (the ones the solver report and suites time)
WARM_REFINERS = ("gd", "pgd", "cgls", "gmres", "lgmres", "icg", "picg", "tikhonov")


def problem_case(n, noise=0.01, seed=0, method="auto"):
    """The benchmark case: paper setup, a block and a lens, ``noise`` x max|g| Gaussian noise.

    Returns ``(problem, op, rho (flat), g, sigma)``.
    """
    prob = Problem.paper(n)
    op = prob.operator(method)
    rho = np.zeros(prob.shape)
    rho[n // 5:2 * n // 5, n // 4:n // 2] = 400.0
    rho[n // 2:3 * n // 4, 5 * n // 8:7 * n // 8] = -250.0
    g0 = op.matvec(rho.ravel())
    sigma = noise * float(np.abs(g0).max())
    g = g0 + sigma * np.random.default_rng(seed).standard_normal(g0.size)
    op.reset_counters()
    return prob, op, rho.ravel(), g, sigma


def warm_up(names=WARM_REFINERS):
    """Compile (or load from the numba cache) every loop on a tiny problem, for every operator kind."""
    for method in ("dense", "matfree", "fft"):
        _, op, _, g, sigma = problem_case(6, method=method)
        for name in names:
            refiners.run(name, op, g, sigma=sigma, maxiter=2)
        for f in (solvers.gmres, solvers.lgmres, solvers.cg):
            f(op.normal(), op.rmatvec(g), maxiter=2)


def best_and_median(fn, min_time=0.2, max_repeat=20, min_repeat=3):
    """Best and median wall time (s) of ``fn()`` after one warm-up call."""
    fn()
    ts = []
    t_total = time.perf_counter()
    while len(ts) < max_repeat and (len(ts) < min_repeat or time.perf_counter() - t_total < min_time):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(min(ts)), float(np.median(ts))


def interleaved(fns, min_time=0.5, max_repeat=15, min_repeat=5):
    """Like :func:`best_and_median` for several functions, run in turn (round robin) so that they see
    the same machine load; returns a list of (best, median) pairs."""
    for fn in fns:
        fn()
    ts = [[] for _ in fns]
    t_total = time.perf_counter()
    while len(ts[0]) < max_repeat and (len(ts[0]) < min_repeat or time.perf_counter() - t_total < min_time):
        for fn, acc in zip(fns, ts):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    return [(float(min(a)), float(np.median(a))) for a in ts]


def median_time(f, repeats):
    """Median wall time (s) of ``repeats`` calls of ``f()`` and the last result (no warm-up call)."""
    ts = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def loadavg():
    """The 1, 5 and 15 minute load averages (rounded), or None where the platform has none."""
    return load_average(2)
