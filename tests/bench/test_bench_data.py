"""pytest-benchmark cases of gravbench.data (``pytest tests/bench/test_bench_data.py --benchmark-only``).

The plain test run executes each case once on small sizes; the benchmark run
times 1,000 models per family at n = 50 and 200 and a small build; with
GRAVBENCH_BENCH_SLOW=1, n = 25..400 and the full ``paper-50`` build (29,000
models, target <= 60 s). Compilation happens in the fixture.
"""

from __future__ import annotations

import pytest

import gravbench as gb
from gravbench.data import BASE_FAMILIES, STANDARD, build, generate
from tests.bench.conftest import full_run, sizes

GEN_SIZES = sizes([50, 200], [12], slow=[25, 50, 100, 200, 400])
GEN_COUNT = 1000 if full_run() else 20


@pytest.fixture(scope="module")
def warm():
    for fam in BASE_FAMILIES:
        generate(fam, 2, (4, 4), seed=0)
    build(gb.Problem.paper(n=4), count=8, seed=0)
    return True


@pytest.mark.parametrize("family", list(BASE_FAMILIES) + ["mixed"])
@pytest.mark.parametrize("n", GEN_SIZES)
def test_bench_generate(benchmark, warm, n, family):
    rho = benchmark(generate, family, GEN_COUNT, (n, n), seed=0)
    assert rho.shape == (GEN_COUNT, n, n)


@pytest.mark.parametrize("name", sizes(["small"], ["small"], slow=["paper-50"]))
def test_bench_build_standard(benchmark, warm, tmp_path, name):
    """The full paper-50 set from scratch, into a temporary directory (one round)."""
    if name == "small":
        prob, splits = gb.Problem.paper(n=12), {"train": 48, "val": 8, "test": 8}
    else:
        spec = STANDARD[name]
        prob, splits = spec.problem(), dict(zip(("train", "val", "test"), spec.splits))
    prob.sensitivity()
    sets = benchmark.pedantic(build, args=(prob, "mixed"), kwargs=dict(seed=0, noise=0.01, splits=splits,
                                                                        out=tmp_path, name=name),
                              rounds=1, iterations=1)
    assert sum(len(s) for s in sets.values()) == sum(splits.values())
    if name == "paper-50":
        assert benchmark.stats.stats.max <= 60.0, "paper-50 build target: <= 60 s"
