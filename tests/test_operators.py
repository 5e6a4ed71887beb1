"""The forward operators against the dense matrix: products, adjoints, builds, auto choice."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import gravbench as gb
from gravbench.forward import DenseOperator, FFTOperator, MatFreeOperator, dot_test, make_operator
from gravbench._linalg.blas import blas_libs
from gravbench.forward import operators as ops


def _irregular(seed=0):
    rng = np.random.default_rng(seed)
    xe = np.cumsum(np.r_[0.0, rng.uniform(20.0, 60.0, 9)])
    ze = np.cumsum(np.r_[2.0, np.geomspace(10.0, 60.0, 6)])
    grid = gb.Grid.from_edges(xe, ze)
    sx = np.sort(rng.uniform(-50.0, xe[-1] + 50.0, 14))
    sx[0] = xe[3]  # above an edge
    sz = -rng.uniform(0.0, 5.0, 14)
    sz[1] = 0.0
    return grid, gb.Survey(sx, sz)


def _regular(k, nx=9, nz=7, extra=0, height=1.0):
    grid = gb.Grid(nx=nx, nz=nz, width=90.0 * nx, depth=60.0 * nz, x0=-100.0)
    s = gb.Survey.regular(grid, per_cell=k, height=height)
    x = s.x[:extra] if extra < 0 else np.r_[s.x, s.x[-1] + (grid.dx / k) * np.arange(1, extra + 1)]
    return grid, gb.Survey(x, np.full(x.size, -height))


CASES = {
    "paper-k3": lambda: (gb.Problem.paper(n=8).grid, gb.Problem.paper(n=8).survey),
    "k1": lambda: _regular(1),
    "k2-wide": lambda: _regular(2, nx=11, nz=4, extra=3, height=0.0),
    "k3-m-not-multiple": lambda: _regular(3, nx=6, nz=9, extra=-2, height=2.0),
    "k2-one-station": lambda: (gb.Grid(nx=5, nz=3, width=50.0, depth=30.0), gb.Survey([12.0], [-1.0])),
    "irregular-nonuniform": lambda: _irregular(0),
    "irregular-uniform": lambda: (gb.Grid(nx=7, nz=5, width=700.0, depth=500.0),
                                  gb.Survey([5.0, 33.0, 34.0, 200.0, 650.0, 800.0], [-1.0, 0.0, -3.0, -1.0, 0.0, -10.0])),
}


def _problem(case, kernel):
    grid, survey = CASES[case]()
    return gb.Problem(grid, survey, kernel=kernel)


def _methods(prob):
    return ["dense", "matfree", "fft"] if prob.per_cell is not None else ["dense", "matfree"]


def _params():
    for case in CASES:
        for kernel in ("exact", "midpoint"):
            yield case, kernel


@pytest.fixture(scope="module")
def dense_cache():
    return {}


def _dense(prob, cache):
    key = (id(CASES), prob.to_dict().__repr__())
    if key not in cache:
        cache[key] = prob.sensitivity()
    return cache[key]


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("case,kernel", list(_params()))
def test_operators_equal_dense(case, kernel, dense_cache):
    prob = _problem(case, kernel)
    A = _dense(prob, dense_cache)
    rng = np.random.default_rng(42)
    assert prob.per_cell is not None or case.startswith("irregular")
    for method in _methods(prob):
        for parallel in (True, False):
            op = make_operator(prob, method, parallel=parallel)
            assert op.method == method and op.shape == A.shape
            for _ in range(2):
                x = rng.standard_normal(A.shape[1])
                y = rng.standard_normal(A.shape[0])
                assert _rel(op.matvec(x), A @ x) <= 1e-10, (method, parallel)
                assert _rel(op.rmatvec(y), A.T @ y) <= 1e-10, (method, parallel)
                assert _rel(op.normal_matvec(x), A.T @ (A @ x)) <= 1e-10, (method, parallel)
            assert dot_test(op, rng=1) <= 1e-12, method


@pytest.mark.parametrize("case", ["paper-k3", "k3-m-not-multiple", "irregular-nonuniform"])
def test_parallel_equals_serial(case):
    prob = _problem(case, "exact")
    rng = np.random.default_rng(7)
    x = rng.standard_normal(prob.n_cells)
    y = rng.standard_normal(prob.n_data)
    for method in _methods(prob):
        p = make_operator(prob, method, parallel=True)
        s = make_operator(prob, method, parallel=False)
        np.testing.assert_allclose(p.matvec(x), s.matvec(x), rtol=1e-12, atol=1e-13 * np.abs(s.matvec(x)).max())
        np.testing.assert_allclose(p.rmatvec(y), s.rmatvec(y), rtol=1e-12, atol=1e-13 * np.abs(s.rmatvec(y)).max())


@pytest.mark.parametrize("method", ["dense", "matfree", "fft"])
def test_dot_test_every_operator(method):
    """<A x, y> = <x, A^T y> to 1e-12 in float64, with a larger problem than the matrix cases."""
    prob = gb.Problem.paper(n=24)
    op = prob.operator(method)
    assert dot_test(op, rng=0, n_trials=5) <= 1e-12
    # the normal operator is symmetric
    rng = np.random.default_rng(3)
    x, z = rng.standard_normal((2, prob.n_cells))
    a, b = np.dot(op.normal_matvec(x), z), np.dot(x, op.normal_matvec(z))
    assert abs(a - b) <= 1e-12 * max(abs(a), abs(b))


@pytest.mark.parametrize("method", ["dense", "matfree", "fft"])
def test_float32(method):
    prob = gb.Problem.paper(n=12)
    A = prob.sensitivity()
    op = prob.operator(method, dtype=np.float32)
    assert op.dtype == np.float32
    rng = np.random.default_rng(0)
    x = rng.standard_normal(prob.n_cells).astype(np.float32)
    y = rng.standard_normal(prob.n_data).astype(np.float32)
    ax, aty = op.matvec(x), op.rmatvec(y)
    assert ax.dtype == np.float32 and aty.dtype == np.float32
    assert _rel(ax, A @ x) <= 1e-5
    assert _rel(aty, A.T @ y) <= 1e-5
    assert dot_test(op, rng=0) <= 1e-5


def test_toeplitz_fft_and_dense_agree_at_size():
    """A bigger regular problem (n = 40): FFT and matrix-free against the assembled matrix."""
    prob = gb.Problem.paper(n=40)
    A = prob.sensitivity()
    rng = np.random.default_rng(9)
    x = rng.standard_normal(prob.n_cells)
    for method in ("fft", "matfree"):
        op = prob.operator(method)
        assert _rel(op.matvec(x), A @ x) <= 1e-10
        assert _rel(op.normal_matvec(x), A.T @ (A @ x)) <= 1e-10


def test_counters_and_shapes():
    prob = gb.Problem.paper(n=6)
    op = prob.operator("fft")
    x = np.ones(prob.shape)  # (nz, nx) accepted
    g = op.matvec(x)
    assert g.shape == (prob.n_data,)
    op.rmatvec(g)
    op.normal_matvec(x.ravel())
    assert (op.n_matvec, op.n_rmatvec) == (2, 2)
    assert op.counts == {"n_matvec": 2, "n_rmatvec": 2}
    op.reset_counters()
    assert (op.n_matvec, op.n_rmatvec) == (0, 0)
    # scipy's machinery (@, .T, matmat) goes through the counters too
    X = np.ones((prob.n_cells, 3))
    np.testing.assert_allclose(op @ X, np.column_stack([op.matvec(X[:, j]) for j in range(3)]))
    np.testing.assert_allclose(op.T @ g, op.rmatvec(g))
    assert op.n_matvec == 6 and op.n_rmatvec == 2
    np.testing.assert_allclose(op.normal() @ x.ravel(), op.normal_matvec(x.ravel()))


def test_scipy_solver_takes_the_operator():
    """LSQR on the fft operator reproduces LSQR on the dense matrix (the operator is a LinearOperator)."""
    prob = gb.Problem.paper(n=10)
    A = prob.sensitivity()
    rho = np.zeros(prob.shape)
    rho[3:6, 2:7] = 300.0
    g = A @ rho.ravel()
    op = prob.operator("fft")
    a = spla.lsqr(op, g, damp=1e-3, iter_lim=10)[0]
    b = spla.lsqr(A, g, damp=1e-3, iter_lim=10)[0]
    assert _rel(a, b) <= 1e-6  # Krylov iterations amplify 1e-15 rounding differences
    assert op.n_matvec > 0 and op.n_rmatvec > 0


def test_forward_and_problem_operator():
    prob = gb.Problem.paper(n=10)
    rho = np.random.default_rng(0).uniform(-200, 300, prob.shape)
    g = prob.forward(rho)
    np.testing.assert_allclose(g, prob.sensitivity() @ rho.ravel(), rtol=1e-12)
    for method in ("dense", "matfree", "fft"):
        np.testing.assert_allclose(prob.forward(rho, method=method), g, rtol=1e-10, atol=1e-12 * np.abs(g).max())


def test_auto_choice():
    small = gb.Problem.paper(n=10)
    op = small.operator("auto")
    assert op.method == "dense" and op.reason.startswith("auto")
    n_big = int(np.ceil((ops.DENSE_AUTO_MAX_ENTRIES / 6) ** (1 / 3))) + 1
    big = gb.Problem.paper(n=n_big)
    assert big.n_data * big.n_cells > ops.DENSE_AUTO_MAX_ENTRIES
    op = big.operator("auto")
    assert op.method == "fft" and "FFT" in op.reason
    grid, survey = _irregular(0)
    op = gb.Problem(grid, survey).operator("auto")
    assert op.method == "dense" and "irregular" in op.reason


def test_auto_falls_back_to_matfree_when_memory_is_short(monkeypatch):
    monkeypatch.setattr(ops, "_available_memory", lambda: 1000)
    grid, survey = _irregular(1)
    op = gb.Problem(grid, survey).operator("auto")
    assert isinstance(op, MatFreeOperator) and "matrix-free" in op.reason
    op = gb.Problem.paper(n=5).operator("auto")
    assert isinstance(op, FFTOperator)


def test_dense_operator_accepts_a_matrix():
    prob = gb.Problem.paper(n=5)
    A = prob.sensitivity()
    op = DenseOperator(prob, A=A)
    assert op.A is A or np.shares_memory(op.A, A)
    assert op.nbytes == A.nbytes
    assert op.todense() is op.A
    np.testing.assert_array_equal(prob.operator("fft").todense(), A)


def test_fft_memory_is_small():
    """The FFT operator stores O(n^2) numbers, not the O(n^3) of A."""
    prob = gb.Problem.paper(n=64)
    op = prob.operator("fft")
    dense_bytes = prob.n_data * prob.n_cells * 8
    assert op.nbytes < dense_bytes / 10
    assert isinstance(op, FFTOperator)


def test_dense_single_thread_blas_path():
    """Mid-sized A under parallel='auto' runs gemv on one BLAS thread: same numbers, threads restored."""
    prob = gb.Problem.paper(n=40)  # 384,000 entries: above OpenBLAS's own single-thread size
    A = prob.sensitivity()
    op = DenseOperator(prob, A=A, parallel="auto")
    assert op.parallel is False
    libs = blas_libs()
    before = [lib.get_num_threads() for lib in libs]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(prob.n_cells), rng.standard_normal(prob.n_data)
    np.testing.assert_allclose(op.matvec(x), A @ x, rtol=1e-12)
    np.testing.assert_allclose(op.rmatvec(y), A.T @ y, rtol=1e-12)
    np.testing.assert_allclose(op.normal_matvec(x), A.T @ (A @ x), rtol=1e-12)
    np.testing.assert_allclose(op @ np.c_[x, 2 * x], np.c_[A @ x, 2 * (A @ x)], rtol=1e-12)
    assert [lib.get_num_threads() for lib in libs] == before
    assert DenseOperator(prob, A=A, parallel=True).parallel is True


def test_parallel_argument():
    prob = gb.Problem.paper(n=6)
    with pytest.raises(ValueError, match="parallel must be True, False or 'auto'"):
        prob.operator("fft", parallel="yes")
    assert ops.resolve_parallel("auto", 0.0) is False
    assert ops.resolve_parallel(True, 0.0) is True and ops.resolve_parallel(False, 1e9) is False


def test_single_thread_blas_context():
    libs = blas_libs()
    before = [lib.get_num_threads() for lib in libs]
    with ops.single_thread_blas():
        assert all(lib.get_num_threads() == 1 for lib in libs)
    assert [lib.get_num_threads() for lib in libs] == before


def test_single_thread_blas_nested_and_threads():
    """Nested blocks restore once; worker threads leave BLAS alone (OpenBLAS ignores their increases)."""
    import threading

    libs = blas_libs()
    before = [lib.get_num_threads() for lib in libs]
    with ops.single_thread_blas():
        with ops.single_thread_blas():
            assert all(lib.get_num_threads() == 1 for lib in libs)
        assert all(lib.get_num_threads() == 1 for lib in libs)
    assert [lib.get_num_threads() for lib in libs] == before
    seen, errors = [], []

    def work():
        try:
            with ops.single_thread_blas():
                seen.append([lib.get_num_threads() for lib in libs])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and seen == [before] * 3
    assert [lib.get_num_threads() for lib in libs] == before
