"""pytest-benchmark cases of the forward core.

Run them with ``pytest tests/bench --benchmark-enable --benchmark-only`` (the
project configuration sets ``--benchmark-disable``; ``--benchmark-enable``
overrides it).

The plain test run (``--benchmark-disable``) executes every case once on the
small sizes only. Compilation happens in the fixtures, never in the timed call.
"""

from __future__ import annotations

import numpy as np
import pytest

import gravbench as gb
from gravbench.forward import sensitivity
from gravbench.forward.operators import _available_memory
from tests.bench.conftest import sizes

ASSEMBLY_SIZES = sizes([50, 200], [8, 25], slow=[25, 50, 100, 200, 400])
OP_SIZES = sizes([50, 200, 1000], [8, 25], slow=[25, 50, 100, 200, 400, 1000, 2000])
MATFREE_MAX_N = 400


def _fits_dense(n):
    return 2 * 6 * n**3 * 8 <= _available_memory() / 2


@pytest.fixture(scope="module")
def warm():
    """Compile (or load from cache) every jitted function once, outside any timing."""
    for kernel in ("exact", "midpoint"):
        p = gb.Problem.paper(n=4, kernel=kernel)
        p.sensitivity()
        for method in ("dense", "matfree", "fft"):
            p.operator(method).normal_matvec(np.ones(p.n_cells))
    return True


@pytest.mark.parametrize("kernel", ["exact", "midpoint"])
@pytest.mark.parametrize("n", ASSEMBLY_SIZES)
def test_bench_assembly(benchmark, warm, n, kernel):
    if not _fits_dense(n):
        pytest.skip("A does not fit comfortably in memory")
    p = gb.Problem.paper(n=n, kernel=kernel)
    args = (p.grid.x_edges, p.grid.z_edges, p.survey.x, p.survey.z)
    benchmark.group = f"assembly n={n}"
    A = benchmark(sensitivity, *args, kernel=kernel, disable_checks=True)
    assert A.shape == (p.n_data, p.n_cells)


@pytest.mark.parametrize("n", ASSEMBLY_SIZES)
def test_bench_fill_reference(benchmark, n):
    """np.full of A's shape: the memory-speed floor of assembly."""
    if not _fits_dense(n):
        pytest.skip("A does not fit comfortably in memory")
    benchmark.group = f"assembly n={n}"
    out = benchmark(np.full, (6 * n, n * n), 1.0)
    assert out.shape == (6 * n, n * n)


@pytest.mark.parametrize("method", ["dense", "matfree", "fft"])
@pytest.mark.parametrize("n", OP_SIZES)
@pytest.mark.parametrize("product", ["matvec", "rmatvec", "normal_matvec"])
def test_bench_operator(benchmark, warm, n, method, product):
    if method == "dense" and not _fits_dense(n):
        pytest.skip("A does not fit comfortably in memory")
    if method == "matfree" and n > MATFREE_MAX_N:
        pytest.skip("matrix-free products take too long at this size")
    p = gb.Problem.paper(n=n)
    op = p.operator(method, check_inputs=False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(p.n_data if product == "rmatvec" else p.n_cells)
    benchmark.group = f"{product} n={n}"
    y = benchmark(getattr(op, product), x)
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("n", sizes([50, 200], [8, 25], slow=[25, 50, 100, 200]))
def test_bench_numpy_normal_matvec(benchmark, warm, n):
    """numpy's A.T @ (A @ v) on the assembled matrix: the yardstick of the targets."""
    p = gb.Problem.paper(n=n)
    A = p.sensitivity()
    v = np.random.default_rng(0).standard_normal(p.n_cells)
    benchmark.group = f"normal_matvec n={n}"
    y = benchmark(lambda: A.T @ (A @ v))
    assert y.shape == (p.n_cells,)


@pytest.mark.parametrize("n", sizes([200, 1000], [8, 25], slow=[100, 200, 400, 1000, 2000]))
def test_bench_fft_build(benchmark, warm, n):
    p = gb.Problem.paper(n=n)
    benchmark.group = f"build n={n}"
    op = benchmark.pedantic(p.operator, args=("fft",), rounds=3 if n >= 1000 else 5, iterations=1)
    assert op.method == "fft"


def test_forward_report_small(tmp_path):
    """The report pieces on tiny sizes: real measurements, a Markdown table whose 'met' column can say NO."""
    from gravbench.reports import forward as fr

    log = lambda msg: None  # noqa: E731
    res = {"meta": {"date_utc": "now", "cpus": 2, "numba": "x", "numba_threads": 1, "threading_layer": "omp",
                    "numpy": "x", "scipy": "x", "seconds": 1.0, "loadavg_start": [0, 0, 0], "loadavg_end": [0, 0, 0],
                    "DENSE_AUTO_MAX_ENTRIES": 250_000, "PARALLEL_MIN_SECONDS": 5e-3}}
    res["assembly"] = fr.measure_assembly([6, 8], log)
    res["simpeg"] = {"n": 8, "error": "skipped"}
    res["operators"] = fr.measure_operators({"dense": [6, 8], "matfree": [6], "fft": [6, 8]}, log)
    res["big_fft"] = {"n": 8, "error": "skipped"}
    res["crossover"] = [{"n": 8, "entries": 3072, "dense_s": 1e-5, "fft_s": 2e-5, "dense_build_s": 1e-4,
                         "fft_build_s": 1e-4}]
    res["parallel"] = []
    res["imports"] = {"import_s": 9.0, "import_loads_torch_or_dask": False, "help_s": 0.1, "help_exit_code": 0,
                      "help_heavy_modules": "[]", "python_startup_s": 0.01, "help_command": "gravbench --help"}
    md, js, png = fr.write(res, tmp_path)
    text = md.read_text()
    assert "| import gravbench | 9.000 s" in text and "| **NO** |" in text  # a 9 s import fails its target
    assert png.stat().st_size > 1000 and js.exists()
    ops = {(r["method"], r["n"]): r for r in res["operators"]}
    assert ops[("dense", 8)]["numpy_normal_s"] > 0 and ops[("fft", 8)]["normal_matvec_s"] > 0
