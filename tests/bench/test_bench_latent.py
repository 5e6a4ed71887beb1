"""pytest-benchmark: one latent search (``pytest tests/bench/test_bench_latent.py --benchmark-only``).

A slow case: the benchmark run includes it only with GRAVBENCH_BENCH_SLOW=1
(n = 50 with the shipped VAE / GAN); the plain test run
executes each case once at n = 12 with an untrained decoder (same code path).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from benchmarks.bench_latent import ITERS, _case  # noqa: E402
from tests.bench.conftest import full_run, sizes, slow_run  # noqa: E402

# a slow case: in benchmark runs only with GRAVBENCH_BENCH_SLOW=1 (the plain test run still executes it at n = 12)
N = sizes([], [12], slow=[50])
if full_run() and not slow_run():
    pytestmark = pytest.mark.skip(reason="slow benchmark: set GRAVBENCH_BENCH_SLOW=1")


@pytest.mark.parametrize("method", ["adam", "gn-fd", "gn-autodiff", "de"])
@pytest.mark.parametrize("kind", ["vae", "gan"])
@pytest.mark.parametrize("n", N)
def test_bench_latent_search(benchmark, n, kind, method):
    import torch

    from gravbench.providers import latent

    torch.set_num_threads(1)
    args = _case(n, kind)
    kw = dict(method=method, starts=8 if method != "de" else 1, seed=0, target=None,
              maxiter=ITERS[method] if n > 12 else (20 if method == "adam" else 2 if method != "de" else 3),
              max_evals=2000)
    first = latent.search(*args, **kw)  # warm-up, outside the timing
    res = benchmark(latent.search, *args, **kw)
    np.testing.assert_array_equal(res.chi, first.chi)  # deterministic
    assert np.all(np.isfinite(res.chi)) and np.all(res.evals > 0)
