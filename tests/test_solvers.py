"""One problem set for all square solvers, checked against SciPy and PyAMG (pyamg tests/test_krylov.py style)."""

import numpy as np
import pytest
import scipy.sparse.linalg as sla

import gravbench as gb
from gravbench import solvers

# ----------------------------------------------------------------------------------
# the problem set
# ----------------------------------------------------------------------------------


def _spd(n=40, seed=0):
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((n, n))
    return Q @ Q.T / n + np.eye(n), rng.standard_normal(n)


def _nonsym(n=40, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)) / np.sqrt(n) + 2.0 * np.eye(n), rng.standard_normal(n)


_OPS = {}


def _gravity(n, method="dense"):
    """Normal equations A^T A x = A^T g of the paper setup (n x n cells, 3n stations)."""
    key = (n, method)
    if key not in _OPS:
        prob = gb.Problem.paper(n)
        op = prob.operator(method)
        rng = np.random.default_rng(n)
        rho = np.zeros(prob.shape)
        rho[n // 4:n // 2, n // 3:2 * n // 3] = 300.0
        g = op.matvec(rho.ravel())
        g = g + 0.01 * np.abs(g).max() * rng.standard_normal(g.size)
        _OPS[key] = (op, op.rmatvec(g))
    op, b = _OPS[key]
    op.reset_counters()
    return op, b


class Counted:
    """A LinearOperator that counts products (dtype given: SciPy makes no probing call)."""

    def __init__(self, M):
        self.k = 0
        self.lo = sla.LinearOperator(M.shape, matvec=self._mv, dtype=np.float64)
        self.M = M

    def _mv(self, v):
        self.k += 1
        return self.M @ np.ravel(v)


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# ----------------------------------------------------------------------------------
# CG
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_cg_matches_scipy(seed):
    A, b = _spd(50, seed)
    res = solvers.cg(A, b, rtol=1e-10)
    xs = []
    x, info = sla.cg(A, b, rtol=1e-10, callback=lambda xk: xs.append(xk.copy()))
    assert info == 0 and res.converged and res.status == "converged"
    assert _rel(res.x, x) < 1e-8
    assert abs(res.niter - len(xs)) <= max(1, 0.05 * len(xs))
    hist = [np.linalg.norm(b - A @ xk) / np.linalg.norm(b) for xk in xs[:5]]
    np.testing.assert_allclose(res.residuals[1:6], hist, rtol=1e-8)
    assert res.n_matvec == res.niter and res.n_rmatvec == 0 and res.info["engine"] == "numba"


def test_cg_x0_and_callback_python_driver():
    A, b = _spd(30, 3)
    x0 = np.linspace(-1, 1, 30)
    seen = []
    res = solvers.cg(A, b, x0=x0, rtol=1e-10, callback=lambda xk: seen.append(xk.copy()))
    x, _ = sla.cg(A, b, x0=x0, rtol=1e-10)
    assert res.info["engine"] == "python" and len(seen) == res.niter
    assert _rel(res.x, x) < 1e-8
    assert res.n_matvec == res.niter + 1   # the initial residual of a nonzero start


def test_cg_indefinite_reports_status():
    A = np.diag([1.0, -1.0, 2.0])
    res = solvers.cg(A, np.array([1.0, 1.0, 1.0]), maxiter=50)
    assert res.status in ("indefinite", "converged", "maxiter") and res.niter <= 50
    res = solvers.cg(np.diag([-1.0, -2.0]), np.ones(2))
    assert res.status == "indefinite" and not res.converged


# ----------------------------------------------------------------------------------
# GMRES
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["spd", "nonsym"])
@pytest.mark.parametrize("restart", [10, 40])
def test_gmres_matches_scipy(kind, restart):
    A, b = _spd() if kind == "spd" else _nonsym()
    res = solvers.gmres(A, b, rtol=1e-10, restart=restart)
    pr = []
    x, info = sla.gmres(A, b, rtol=1e-10, restart=restart, callback=pr.append, callback_type="pr_norm")
    assert info == 0 and res.converged
    assert _rel(res.x, x) < 1e-8
    assert abs(res.niter - len(pr)) <= max(1, 0.05 * len(pr))
    np.testing.assert_allclose(res.residuals[1:6], pr[:5], rtol=1e-8)


@pytest.mark.parametrize("kind", ["spd", "nonsym"])
def test_gmres_matches_pyamg(kind):
    from pyamg.krylov import gmres as pgmres

    A, b = _spd() if kind == "spd" else _nonsym()
    res = solvers.gmres(A, b, rtol=1e-10, restart=40)
    c = Counted(A)
    x, info = pgmres(c.lo, b, tol=1e-10, restart=40, maxiter=400, orthog="mgs")
    assert info == 0 and res.converged
    assert _rel(res.x, x) < 1e-8
    assert abs(res.n_matvec - c.k) <= max(2, 0.05 * c.k)


@pytest.mark.parametrize("n", [16, 32, 50])
def test_gmres_gravity_normal_equations(n):
    op, b = _gravity(n)
    res = solvers.gmres(op.normal(), b, rtol=1e-6, restart=30, maxiter=20)
    assert res.info["engine"] == "numba"
    assert (op.n_matvec, op.n_rmatvec) == (res.n_matvec, res.n_rmatvec)   # counters stay truthful
    pr = []
    x, info = sla.gmres(op.normal(), b, rtol=1e-6, restart=30, maxiter=20, callback=pr.append,
                        callback_type="pr_norm")
    assert res.converged == (info == 0)
    assert abs(res.niter - len(pr)) <= max(1, 0.05 * len(pr))
    np.testing.assert_allclose(res.residuals[1:11], pr[:10], rtol=1e-6)
    # ill-conditioned (cond ~ 1e10+): models differ in the null-ish directions by about
    # cond * rtol; their predicted data agree closely
    assert _rel(op.matvec(res.x), op.matvec(x)) < 1e-4
    assert np.linalg.norm(b - op.normal_matvec(res.x)) <= 1e-6 * np.linalg.norm(b) * (1 + 1e-9) or not res.converged


def test_gmres_operator_forms_agree():
    """Dense and matrix-free normal operators (compiled) and the FFT one (Python driver) run the same iteration."""
    out = {}
    for method in ("dense", "matfree", "fft"):
        op, b = _gravity(16, method)
        out[method] = (solvers.gmres(op.normal(), b, rtol=1e-8, restart=20, maxiter=5), op)
    assert out["fft"][0].info["engine"] == "python" and out["matfree"][0].info["engine"] == "numba"
    ref = out["dense"][0]
    for method in ("matfree", "fft"):
        r = out[method][0]
        assert abs(r.niter - ref.niter) <= 1
        k = min(ref.niter, r.niter, 12)
        np.testing.assert_allclose(r.residuals[:k], ref.residuals[:k], rtol=1e-6)
        assert out[method][1].n_matvec == r.n_matvec
    # explicit A^T A (test only, n = 16) gives the same iterates as the operator form
    op = out["dense"][1]
    M = op.A.T @ op.A
    _, b = _gravity(16, "dense")
    r = solvers.gmres(M, b, rtol=1e-8, restart=20, maxiter=5)
    np.testing.assert_allclose(r.residuals[:10], ref.residuals[:10], rtol=1e-6)


def test_gmres_happy_breakdown_and_singular():
    A = np.diag([2.0, 3.0, 4.0, 5.0])
    b = np.array([1.0, 1.0, 0.0, 0.0])       # Krylov space of dimension 2
    res = solvers.gmres(A, b, rtol=1e-14)
    assert res.converged and res.niter == 2
    np.testing.assert_allclose(res.x, [0.5, 1 / 3, 0, 0], atol=1e-14)
    S = np.zeros((5, 5))
    S[0, 0] = 1.0                             # singular: b outside the range
    res = solvers.gmres(S, np.ones(5), maxiter=10)
    assert not res.converged and res.status in ("breakdown", "maxiter") and res.niter <= 50
    res = solvers.lgmres(S, np.ones(5), maxiter=10)
    assert not res.converged and res.niter <= 10 * 30


# ----------------------------------------------------------------------------------
# LGMRES
# ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["spd", "nonsym"])
@pytest.mark.parametrize("inner_m,outer_k", [(10, 3), (30, 3), (8, 0)])
def test_lgmres_matches_scipy(kind, inner_m, outer_k):
    A, b = _spd() if kind == "spd" else _nonsym()
    res = solvers.lgmres(A, b, rtol=1e-10, inner_m=inner_m, outer_k=outer_k)
    c = Counted(A)
    x, info = sla.lgmres(c.lo, b, rtol=1e-10, inner_m=inner_m, outer_k=outer_k)
    assert info == 0 and res.converged
    assert _rel(res.x, x) < 1e-8
    assert abs(res.n_matvec - c.k) <= max(1, 0.05 * c.k)


@pytest.mark.parametrize("n", [16, 32])
def test_lgmres_gravity_normal_equations(n):
    op, b = _gravity(n)
    res = solvers.lgmres(op.normal(), b, rtol=1e-6, maxiter=15, outer_k=5)
    assert (op.n_matvec, op.n_rmatvec) == (res.n_matvec, res.n_matvec)
    c = Counted(op.normal())
    x, info = sla.lgmres(c.lo, b, rtol=1e-6, maxiter=15, outer_k=5)
    assert res.converged == (info == 0)
    assert abs(res.n_matvec - c.k) <= max(1, 0.05 * c.k)
    assert _rel(op.matvec(res.x), op.matvec(x)) < 1e-4


# ----------------------------------------------------------------------------------
# steepest descent
# ----------------------------------------------------------------------------------
def test_steepest_descent_converges_and_decreases_energy():
    A, b = _spd(30, 5)
    res = solvers.steepest_descent(A, b, rtol=1e-9, maxiter=5000)
    assert res.converged and solvers.gd is solvers.steepest_descent
    assert _rel(res.x, np.linalg.solve(A, b)) < 1e-7
    # first step by hand: x1 = (r.r / r.Ar) r from x0 = 0
    r1 = solvers.steepest_descent(A, b, maxiter=1)
    np.testing.assert_allclose(r1.x, (b @ b) / (b @ A @ b) * b, rtol=1e-12)


# ----------------------------------------------------------------------------------
# common behaviour and bad input
# ----------------------------------------------------------------------------------
ALL = [solvers.cg, solvers.gmres, solvers.lgmres, solvers.steepest_descent]


@pytest.mark.parametrize("solve", ALL)
def test_result_type_and_zero_rhs(solve):
    A, b = _spd(10, 2)
    res = solve(A, np.zeros(10))
    assert isinstance(res, solvers.Result) and res.converged and not np.any(res.x)
    res = solve(A, b, rtol=1e-8)
    with pytest.raises(Exception):
        res.x = None                     # frozen
    assert res.residuals[0] == pytest.approx(1.0) and res.seconds >= 0 and res.converged


@pytest.mark.parametrize("solve", ALL)
def test_bad_input(solve):
    A, b = _spd(6, 4)
    bad = b.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match="b contains NaN"):
        solve(A, bad)
    with pytest.raises(ValueError, match="x0 must have shape"):
        solve(A, b, x0=np.zeros(5))
    with pytest.raises(ValueError, match="rtol"):
        solve(A, b, rtol=-1.0)
    with pytest.raises(ValueError, match="atol"):
        solve(A, b, atol=np.inf)
    with pytest.raises(ValueError, match="maxiter"):
        solve(A, b, maxiter=-3)
    with pytest.raises(ValueError, match="square"):
        solve(np.ones((6, 4)), b)
    with pytest.raises(ValueError, match="A contains NaN"):
        solve(np.full((6, 6), np.nan), b)
    with pytest.raises(ValueError, match="callback"):
        solve(A, b, callback=3)


def test_non_square_operator_rejected():
    op, _ = _gravity(16)
    with pytest.raises(ValueError, match="must be square.*op.normal"):
        solvers.gmres(op, np.ones(op.shape[0]))
