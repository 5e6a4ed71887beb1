"""pytest-benchmark cases for the solvers and refiners.

``pytest --benchmark-only tests/bench/test_bench_solvers.py`` runs n in
{25, 50, 100, 200}; the plain test run executes each case once at n = 12.
Compilation happens in the module fixture before any case is timed.
"""

import numpy as np
import pytest

from tests.bench.conftest import sizes

REFINERS = ["gd", "pgd", "cgls", "gmres", "lgmres", "icg", "picg", "tikhonov"]
SIZES = sizes([50, 200], [12], slow=[25, 50, 100, 200])


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    from gravbench.bench.timing import warm_up

    warm_up()


_CASES = {}


def _case(n):
    from gravbench.bench.timing import problem_case

    if n not in _CASES:
        _CASES[n] = problem_case(n)
    return _CASES[n]


@pytest.mark.parametrize("refiner", REFINERS)
@pytest.mark.parametrize("n", SIZES)
def test_refiner(benchmark, n, refiner):
    import gravbench as gb

    prob, op, rho, g, sigma = _case(n)
    def run():
        if refiner == "tikhonov":        # cold: K built and diagonalised in every round
            gb.refiners.tikhonov.clear_cache()
        return gb.refiners.run(refiner, op, g, sigma=sigma)

    res = benchmark(run)
    benchmark.extra_info.update(
        niter=res.niter, n_matvec=res.n_matvec, n_rmatvec=res.n_rmatvec, status=res.status,
        model_error=float(np.linalg.norm(res.x - rho) / np.linalg.norm(rho)), data_misfit=res.info["misfit"],
        operator=op.method)
    assert res.residuals[-1] < res.residuals[0]


@pytest.mark.parametrize("impl", ["gravbench", "scipy", "pyamg"])
@pytest.mark.parametrize("method", ["gmres", "lgmres"])
@pytest.mark.parametrize("n", sizes([50], [12]))
def test_normal_equation_krylov(benchmark, n, method, impl):
    """The n = 50 solver comparison: same operator (op.normal()), same settings."""
    import pyamg.krylov
    import scipy.sparse.linalg as sla

    import gravbench as gb

    if impl == "pyamg" and method == "lgmres":
        pytest.skip("pyamg has no lgmres")
    prob, op, rho, g, sigma = _case(n)
    N, b = op.normal(), op.rmatvec(g)
    runs = {
        ("gmres", "gravbench"): lambda: gb.solvers.gmres(N, b, rtol=1e-6, restart=20, maxiter=5).x,
        ("gmres", "scipy"): lambda: sla.gmres(N, b, rtol=1e-6, restart=20, maxiter=5)[0],
        ("gmres", "pyamg"): lambda: pyamg.krylov.gmres(N, b, tol=1e-6, restart=20, maxiter=5, orthog="mgs")[0],
        ("lgmres", "gravbench"): lambda: gb.solvers.lgmres(N, b, rtol=1e-6, inner_m=20, maxiter=5).x,
        ("lgmres", "scipy"): lambda: sla.lgmres(N, b, rtol=1e-6, inner_m=20, maxiter=5)[0],
    }
    op.reset_counters()
    x = benchmark(runs[(method, impl)])
    benchmark.extra_info["operator"] = op.method
    assert np.linalg.norm(N @ x - b) < np.linalg.norm(b)
