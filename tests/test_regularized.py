"""Model-space regularised refiners (smooth / sparse / compact / focusing) and their pieces."""

import numpy as np
import pytest
import scipy.sparse as sp

import gravbench as gb
from gravbench.metrics import chi2_threshold, is_success
from gravbench.refiners import _regularization as R
from gravbench.refiners import regularized as reg


def _nonuniform():
    xe = np.cumsum(np.r_[0.0, [10.0, 14.0, 9.0, 20.0, 11.0, 30.0, 12.0]])
    ze = np.cumsum(np.r_[0.0, [5.0, 8.0, 13.0, 21.0, 34.0]])
    return xe, ze


def _dense_differences(xe, ze):
    """The finite differences written out cell by cell (a dense reference)."""
    xc, zc = 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ze[1:] + ze[:-1])
    nx, nz = xc.size, zc.size
    Dx = np.zeros((nz * (nx - 1), nz * nx))
    Dz = np.zeros(((nz - 1) * nx, nz * nx))
    for k in range(nz):
        for i in range(nx - 1):
            h = xc[i + 1] - xc[i]
            Dx[k * (nx - 1) + i, k * nx + i] = -1.0 / h
            Dx[k * (nx - 1) + i, k * nx + i + 1] = 1.0 / h
    for k in range(nz - 1):
        for i in range(nx):
            h = zc[k + 1] - zc[k]
            Dz[k * nx + i, k * nx + i] = -1.0 / h
            Dz[k * nx + i, (k + 1) * nx + i] = 1.0 / h
    return Dx, Dz


def test_difference_operators_match_dense_construction_on_nonuniform_grid():
    xe, ze = _nonuniform()
    Dx, Dz = R.difference_operators(xe, ze)
    Dx_ref, Dz_ref = _dense_differences(xe, ze)
    np.testing.assert_allclose(Dx.toarray(), Dx_ref, rtol=1e-14, atol=0)
    np.testing.assert_allclose(Dz.toarray(), Dz_ref, rtol=1e-14, atol=0)
    # a linear field has constant gradients
    geo = R.cell_geometry(xe, ze)
    m = (3.0 * geo["xc"][None, :] - 2.0 * geo["zc"][:, None]).ravel()
    np.testing.assert_allclose(Dx @ m, 3.0, rtol=1e-12)
    np.testing.assert_allclose(Dz @ m, -2.0, rtol=1e-12)


def test_matrix_free_regularisation_matches_sparse_matrices():
    xe, ze = _nonuniform()
    Dx, Dz = R.difference_operators(xe, ze)
    geo = R.cell_geometry(xe, ze)
    nz, nx = geo["dz"].size, geo["dx"].size
    rng = np.random.default_rng(3)
    v = rng.standard_normal(nz * nx)
    ws, wx, wz = rng.random(nz * nx), rng.random(Dx.shape[0]), rng.random(Dz.shape[0])
    fx, fz = R.gradients(v, nz, nx, geo["hx"], geo["hz"])
    np.testing.assert_allclose(fx, Dx @ v, rtol=1e-13)
    np.testing.assert_allclose(fz, Dz @ v, rtol=1e-13)
    Rm = sp.diags(ws) + Dx.T @ sp.diags(wx) @ Dx + Dz.T @ sp.diags(wz) @ Dz
    np.testing.assert_allclose(R.reg_apply(v, nz, nx, ws, wx, wz, geo["hx"], geo["hz"]), Rm @ v, rtol=1e-12,
                               atol=1e-12 * np.abs(Rm @ v).max())
    assert R.reg_value(v, nz, nx, ws, wx, wz, geo["hx"], geo["hz"]) == pytest.approx(v @ (Rm @ v), rel=1e-12)


def test_irls_weights():
    f = np.array([0.0, 0.5, 2.0, -3.0])
    np.testing.assert_array_equal(R.irls_weights(f, 0.1, 2.0), 1.0)
    eps = 0.1
    np.testing.assert_allclose(R.irls_weights(f, eps, 1.0), eps / np.sqrt(f ** 2 + eps ** 2))
    np.testing.assert_allclose(R.irls_weights(f, eps, 0.0), eps ** 2 / (f ** 2 + eps ** 2))


def test_weighted_column_norms_fft_equals_dense():
    prob = gb.Problem.paper(n=10)
    A = prob.sensitivity()
    m = prob.survey.m
    wd = np.r_[np.full(m, 1 / 0.3), np.full(m, 1 / 0.7)]
    ref = np.einsum("ij,ij->j", A, A * (wd ** 2)[:, None])
    for method in ("dense", "fft"):
        np.testing.assert_allclose(R.weighted_column_sq_norms(prob.operator(method), wd), ref, rtol=1e-10)


@pytest.fixture(scope="module")
def small():
    prob = gb.Problem.paper(n=12)
    op = prob.operator("dense")
    rho = np.zeros(prob.shape)
    rho[3:7, 3:7] = 400.0
    rho[6:9, 8:11] = -250.0
    g0 = op.matvec(rho.ravel())
    m = prob.survey.m
    sigma = np.r_[np.full(m, 0.01 * np.abs(g0[:m]).max()), np.full(m, 0.01 * np.abs(g0[m:]).max())]
    g = g0 + sigma * np.random.default_rng(0).standard_normal(g0.size)
    return prob, op, rho, g, sigma


def _l2_direct(prob, A, g, sigma, beta, weighting="sensitivity", alphas=(1.0, 1.0, 1.0)):
    """Dense reference: (A^T Wd^2 A + beta R) x = A^T Wd^2 g, R from the dense difference construction."""
    xe, ze = prob.grid.x_edges, prob.grid.z_edges
    Dx, Dz = _dense_differences(xe, ze)
    geo = R.cell_geometry(xe, ze)
    wd2 = 1.0 / sigma ** 2
    w = np.sqrt(np.einsum("ij,ij->j", A, A * wd2[:, None])) / geo["area"].ravel()
    w = (w / w.max()).reshape(geo["area"].shape)
    mean_area = geo["area"].mean()
    ell2 = min(geo["dx"].min(), geo["dz"].min()) ** 2
    ws = alphas[0] * (geo["area"] / mean_area * w).ravel()
    wx = alphas[1] * ell2 * (geo["area_x"] / mean_area * 0.5 * (w[:, 1:] + w[:, :-1])).ravel()
    wz = alphas[2] * ell2 * (geo["area_z"] / mean_area * 0.5 * (w[1:] + w[:-1])).ravel()
    Rm = np.diag(ws) + Dx.T @ np.diag(wx) @ Dx + Dz.T @ np.diag(wz) @ Dz
    H = A.T @ (wd2[:, None] * A) + beta * Rm
    return np.linalg.solve(H, A.T @ (wd2 * g))


def test_smooth_equals_dense_l2_solution(small):
    prob, op, rho, g, sigma = small
    res = gb.refiners.run("smooth", op, g, sigma=sigma, cg_maxiter=2000, cg_rtol=1e-12)
    x_ref = _l2_direct(prob, prob.sensitivity(), g, sigma, res.info["beta"])
    np.testing.assert_allclose(res.x, x_ref, rtol=0, atol=1e-7 * np.abs(x_ref).max())


def test_irls_with_p_q_2_equals_l2_solution(small):
    """The IRLS path (norms just below 2 so that it runs) lands on the L2 minimiser at its final beta."""
    prob, op, rho, g, sigma = small
    p = 2.0 - 1e-12
    res = gb.refiners.run("sparse", op, g, sigma=sigma, norms=(p, p, p), cg_maxiter=2000, cg_rtol=1e-12,
                          max_irls=3)
    assert res.info["n_irls"] >= 1
    x_ref = _l2_direct(prob, prob.sensitivity(), g, sigma, res.info["beta"])
    np.testing.assert_allclose(res.x, x_ref, rtol=0, atol=1e-6 * np.abs(x_ref).max())


@pytest.mark.parametrize("name", ["smooth", "sparse", "compact", "focusing"])
def test_discrepancy_target_reached(small, name):
    prob, op, rho, g, sigma = small
    res = gb.refiners.run(name, op, g, sigma=sigma)
    r = prob.forward(res.x.reshape(prob.shape)) - g
    chi2 = float(np.mean((r / sigma) ** 2))
    assert res.info["chi2"] == pytest.approx(chi2, rel=1e-9)
    N = g.size
    assert is_success(chi2, N) and chi2 >= 2.0 - chi2_threshold(N)
    assert res.info["success"] and res.converged


@pytest.mark.parametrize("name", ["smooth", "sparse"])
def test_bounds_hold_exactly(small, name):
    prob, op, rho, g, sigma = small
    lo, hi = -60.0, 90.0
    res = gb.refiners.run(name, op, g, sigma=sigma, bounds=(lo, hi))
    assert res.x.min() >= lo and res.x.max() <= hi
    assert np.any(res.x == hi) or np.any(res.x == lo)   # a bound is active (the true model exceeds both)
    x0 = np.full(prob.n_cells, 1e4)      # a start outside the bounds is projected
    res2 = gb.refiners.run(name, op, g, x0=x0, sigma=sigma * 3, bounds=(lo, hi), mref=np.zeros(prob.n_cells))
    assert res2.x.min() >= lo and res2.x.max() <= hi


def test_sparse_is_blockier_than_smooth_on_a_block(small):
    prob, op, rho, g, sigma = small
    xs = gb.refiners.run("smooth", op, g, sigma=sigma).x
    xp = gb.refiners.run("sparse", op, g, sigma=sigma).x
    xc = gb.refiners.run("compact", op, g, sigma=sigma).x
    # the l0 / l1 norms concentrate the model: fewer cells carry most of it
    def support(x):
        return int(np.sum(np.abs(x) > 0.1 * np.abs(x).max()))
    assert support(xp) < support(xs) and support(xc) < support(xs)


def test_reference_model_and_fft_operator():
    prob = gb.Problem.paper(n=16)
    rho = np.zeros(prob.shape)
    rho[5:9, 6:10] = 300.0
    g = prob.forward(rho)
    sigma = 0.01 * np.abs(g).max()
    dense = gb.refiners.run("sparse", prob.operator("dense"), g, sigma=sigma)
    fft = gb.refiners.run("sparse", prob.operator("fft"), g, sigma=sigma)
    # same iterations on another operator (round-off differs, truncated CG steps amplify it a little)
    np.testing.assert_allclose(fft.x, dense.x, atol=1e-3 * np.abs(dense.x).max())
    # the truth as start and reference model (smallness towards it) beats zero
    zero = gb.refiners.run("smooth", prob.operator("dense"), g, sigma=sigma)
    res = gb.refiners.run("smooth", prob.operator("dense"), g, x0=rho, sigma=sigma)
    assert res.info["success"]
    assert np.linalg.norm(res.x - rho.ravel()) < 0.7 * np.linalg.norm(zero.x - rho.ravel())


def test_bad_input_raises():
    prob = gb.Problem.paper(n=8)
    op = prob.operator("dense")
    g = prob.forward(np.ones(prob.shape))
    with pytest.raises(ValueError, match="sigma"):
        gb.refiners.run("sparse", op, g)
    with pytest.raises(ValueError, match="norms"):
        gb.refiners.run("sparse", op, g, sigma=0.1, norms=(0, 3, 1))
    with pytest.raises(ValueError, match="alphas"):
        gb.refiners.run("sparse", op, g, sigma=0.1, alphas=(0, 0, 0))
    with pytest.raises(ValueError, match="weighting"):
        gb.refiners.run("smooth", op, g, sigma=0.1, weighting="volume")
    with pytest.raises(ValueError, match="mref"):
        gb.refiners.run("smooth", op, g, sigma=0.1, mref=np.ones(3))
    with pytest.raises(ValueError, match="x_edges"):
        gb.refiners.run("smooth", prob.sensitivity(), g, sigma=0.1)


def test_depth_weighting_runs_and_differs(small):
    prob, op, rho, g, sigma = small
    a = gb.refiners.run("smooth", op, g, sigma=sigma, weighting="depth")
    b = gb.refiners.run("smooth", op, g, sigma=sigma)
    assert a.info["success"] and not np.allclose(a.x, b.x)


def test_providers_start_from_zero(small):
    prob, op, rho, g, sigma = small
    for name in ("smooth", "sparse", "compact"):
        assert name in gb.providers.names() and name in gb.refiners.names()
        p = gb.providers.get(name, method="dense")
        x = p(g, prob, sigma=sigma)
        ref = gb.refiners.run(name, op, g, sigma=sigma).x
        np.testing.assert_allclose(x.ravel(), ref, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="sigma"):
        gb.providers.get("sparse")(g, prob)
    with pytest.raises(ValueError, match="unknown option"):
        gb.providers.get("sparse", colour="red")


@pytest.mark.parametrize("precond", ["jacobi", "amg"])
def test_smooth_at_fixed_beta_solves_the_normal_equations_like_lapack(precond):
    # one beta, the inner CG run to a tight tolerance: the model must be the solution of
    # (A^T Wd^2 A + beta R) m = A^T Wd^2 g, with R assembled here from the documented formula and the
    # system solved by LAPACK (numpy.linalg.solve)
    prob = gb.Problem.paper(n=14)
    op = prob.operator("dense")
    rho = np.zeros(prob.shape)
    rho[3:7, 5:9] = 300.0
    g0 = op.matvec(rho.ravel())
    sigma = 0.01 * np.abs(g0).max()
    g = g0 + sigma * np.random.default_rng(3).standard_normal(g0.size)
    beta = 3e-3
    res = gb.refiners.run("smooth", op, g, sigma=sigma, beta0=beta, max_beta=1, maxiter=1, cg_rtol=1e-12,
                          cg_maxiter=2000, precond=precond)
    A = np.asarray(op.A, dtype=np.float64)
    wd2 = np.full(g.size, 1.0 / sigma ** 2)
    xe, ze = prob.grid.x_edges, prob.grid.z_edges
    dx, dz = np.diff(xe), np.diff(ze)
    area = dz[:, None] * dx[None, :]
    w = np.sqrt((A ** 2 * wd2[:, None]).sum(0)) / area.ravel()
    w = np.maximum(w / w.max(), 1e-12).reshape(prob.shape)
    ell2 = min(dx.min(), dz.min()) ** 2
    hx, hz = np.diff(0.5 * (xe[1:] + xe[:-1])), np.diff(0.5 * (ze[1:] + ze[:-1]))
    mean_area = area.mean()
    ws = (area / mean_area * w).ravel()
    wx = ell2 * ((dz[:, None] * hx[None, :]) / mean_area * 0.5 * (w[:, 1:] + w[:, :-1])).ravel()
    wz = ell2 * ((hz[:, None] * dx[None, :]) / mean_area * 0.5 * (w[1:, :] + w[:-1, :])).ravel()
    Dx, Dz = _dense_differences(xe, ze)
    Rm = np.diag(ws) + Dx.T @ np.diag(wx) @ Dx + Dz.T @ np.diag(wz) @ Dz
    ref = np.linalg.solve(A.T @ (wd2[:, None] * A) + beta * Rm, A.T @ (wd2 * g))
    assert res.info["precond"] == precond
    assert np.linalg.norm(res.x.ravel() - ref) <= 1e-6 * np.linalg.norm(ref)


def test_precond_is_checked():
    prob = gb.Problem.paper(n=8)
    op = prob.operator("dense")
    g = op.matvec(np.ones(prob.n_cells))
    with pytest.raises(ValueError, match="precond must be one of"):
        gb.refiners.run("smooth", op, g, sigma=0.01, precond="ilu")
