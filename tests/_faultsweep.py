"""A small deterministic sweep for the SIGKILL fault-injection test (run in a child process).

Numpy-only stand-ins (no numba, no torch) so a child starts in well under a second:
a fixed random 24 x 16 forward matrix, seeded test models, a zero provider, a
"scaled" provider and k Landweber steps as refiners. The runner, its record
files, lock and resume logic are gravbench's own.

``python -m tests._faultsweep PATH`` runs the sweep with ``resume=True`` into
PATH; ``python -m tests._faultsweep --forkserver PATH`` runs it in a forked child
per ``go`` read from stdin (see :func:`forkserver`).
"""

from __future__ import annotations

import os
import sys
import time
import types

import numpy as np
from scipy.sparse.linalg import aslinearoperator

from gravbench.bench.cases import build_cases
from gravbench.bench.runner import TestSet, Toolkit, run_cases

SHAPE = (4, 4)
N_DATA = 24
SAMPLES = 2
NOISE = 0.02
SEED = 11
#: seconds each refiner call sleeps, so a kill lands inside the sweep and not only at start-up
SLEEP = 0.004


class _Problem:
    """Just what the runner uses of a Problem: ``shape`` and ``operator()``."""

    shape = SHAPE

    def __init__(self):
        rng = np.random.default_rng(1234)
        self.A = rng.normal(size=(N_DATA, SHAPE[0] * SHAPE[1]))

    def operator(self, method="auto"):
        return aslinearoperator(self.A)


def load(n, samples, noise, seed):
    prob = _Problem()
    rng = np.random.default_rng(seed)
    rho = rng.normal(0.0, 100.0, size=(samples,) + SHAPE)
    g_clean = rho.reshape(samples, -1) @ prob.A.T
    sigma = noise * np.abs(g_clean).max(axis=1, keepdims=True) * np.ones_like(g_clean)
    g = g_clean + sigma * rng.standard_normal(g_clean.shape)
    return TestSet(problem=prob, rho=rho, g=g, sigma=sigma)


def _zero(g, problem, sigma=None, seed=None):
    return np.zeros(problem.shape)


def _scaled(g, problem, sigma=None, seed=None):
    return np.full(problem.shape, float(np.mean(g)) / 100.0)


def get_provider(name, n):
    return {"zero": _zero, "scaled": _scaled}[name]


def refine(name, op, g, x0, sigma):
    """``name`` = "lw<k>": k Landweber steps with step 1/||A||^2 (operator products only)."""
    time.sleep(SLEEP)
    k = int(name[2:])
    x = np.asarray(x0, dtype=float).ravel().copy()
    step = 1.0 / np.linalg.norm(op.A, 2) ** 2
    for _ in range(k):
        x += step * op.rmatvec(g - op.matvec(x))
    return types.SimpleNamespace(x=x, niter=k)


TK = Toolkit(load=load, get_provider=get_provider, refine=refine, warmup=False)


def cases():
    return build_cases([8, 9], ["zero", "scaled"], ["none", "lw3", "lw10", "lw30"], samples=SAMPLES, noise=NOISE,
                       seed=SEED)


def main(path):
    print("ready", flush=True)
    run_cases(cases(), path, resume=True, toolkit=TK)
    print("done", flush=True)


def forkserver(path):
    """Import once, then run the sweep in a forked child per ``go`` line read from stdin.

    For each ``go``: prints the child's pid, waits for it (finished or killed by the
    parent) and prints ``exit <waitstatus> <seconds>``. ``quit`` ends the server. A fork
    costs milliseconds, so the parent can kill many sweeps without paying Python's start-up.
    """
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # the sweep; never returns into the server loop
            code = 0
            try:
                run_cases(cases(), path, resume=True, toolkit=TK)
            except BaseException:  # noqa: BLE001
                code = 1
            os._exit(code)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {status} {time.perf_counter() - t0:.4f}", flush=True)


if __name__ == "__main__":  # pragma: no cover - run by tests/test_reliability.py
    if sys.argv[1] == "--forkserver":
        forkserver(sys.argv[2])
    else:
        main(sys.argv[1])
