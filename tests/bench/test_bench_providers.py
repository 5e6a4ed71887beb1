"""pytest-benchmark cases of provider inference (``pytest tests/bench/test_bench_providers.py --benchmark-only``).

Batch of 1 and of 100 models for zero, tikhonov (direct batch engine),
depth-weighted and the shipped CNN. The plain test run executes each case
once at n = 50 with a batch of 8 (the CNN has weights only for 50 and 100).
Setup (weights loading, numba compilation, data) happens in the fixture.
"""

from __future__ import annotations

import numpy as np
import pytest

import gravbench as gb
from tests.bench.conftest import full_run, sizes

SIZES = sizes([50, 100], [50])
BATCH = 100 if full_run() else 8


@pytest.fixture(scope="module", params=SIZES)
def case(request):
    n = request.param
    prob = gb.Problem.paper(n=n)
    ds = gb.data.build(prob, count=BATCH, seed=11, noise=0.01)["all"]
    return prob, np.asarray(ds.g, dtype=np.float64), np.asarray(ds.sigma, dtype=np.float64), ds


def _provider(name, prob, G, S):
    if name == "cnn":
        pytest.importorskip("torch")
        p = gb.providers.get("cnn", n=prob.grid.nx)
    elif name == "tikhonov":
        p = gb.providers.get("tikhonov", engine="direct")
    else:
        p = gb.providers.get(name)
    p.batch(G[:1], prob, sigma=S[:1])  # warm: load weights / compile / cache A
    return p


@pytest.mark.parametrize("name", ["zero", "tikhonov", "depth-weighted", "cnn"])
def test_bench_provider_batch1(benchmark, case, name):
    prob, G, S, _ = case
    p = _provider(name, prob, G, S)
    out = benchmark(p, G[0], prob, sigma=S[0])
    assert out.shape == prob.shape and np.all(np.isfinite(out))


@pytest.mark.parametrize("name", ["zero", "tikhonov", "depth-weighted", "cnn"])
def test_bench_provider_batch(benchmark, case, name):
    prob, G, S, ds = case
    p = _provider(name, prob, G, S)
    out = benchmark(p.batch, G, prob, sigma=S)
    assert out.shape == (len(G),) + prob.shape
    err = np.linalg.norm((out - ds.rho).reshape(len(G), -1), axis=1) / np.linalg.norm(ds.rho.reshape(len(G), -1), axis=1)
    benchmark.extra_info["model_error_mean"] = float(err.mean())
    if name != "zero":
        assert err.mean() < 1.5
