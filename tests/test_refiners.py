"""Refiners on the gravity inversion: misfit reduction, discrepancy stops, references, bounds, bad input."""

import numpy as np
import pytest
from scipy.sparse.linalg import lsqr

import gravbench as gb
from gravbench import refiners

N_GRID = 16
_CACHE = {}


def _setup(method="dense", n=N_GRID, noise=0.01, seed=0):
    """Paper setup, a block and a lens, 1% Gaussian noise (std = 1% of max |g|)."""
    key = (method, n, noise, seed)
    if key not in _CACHE:
        prob = gb.Problem.paper(n)
        op = prob.operator(method)
        rho = np.zeros(prob.shape)
        rho[n // 4:n // 2, n // 4:n // 2] = 400.0
        rho[n // 2:3 * n // 4, 5 * n // 8:7 * n // 8] = -250.0
        g0 = op.matvec(rho.ravel())
        sigma = noise * np.abs(g0).max()
        g = g0 + sigma * np.random.default_rng(seed).standard_normal(g0.size)
        _CACHE[key] = (prob, op, rho, g, sigma)
    prob, op, rho, g, sigma = _CACHE[key]
    op.reset_counters()
    return prob, op, rho, g, sigma


def test_registry():
    names = refiners.names()
    for n in ("gd", "gmres", "lgmres", "icg", "cgls", "tikhonov", "pgd", "picg"):
        assert n in names
    assert "bounds" in refiners.options("picg") and "weighting" in refiners.options("picg")
    _, op, _, g, _ = _setup()
    with pytest.raises(ValueError, match="unknown refiner 'nope'; valid names: gd"):
        refiners.run("nope", op, g)
    with pytest.raises(ValueError, match="unknown option.*'lr'.*valid options: .*step"):
        refiners.run("gd", op, g, lr=1e-3)


@pytest.mark.parametrize("name", ["gd", "pgd", "cgls", "gmres", "lgmres", "icg", "picg", "tikhonov"])
def test_each_refiner_reduces_misfit_and_counts(name):
    prob, op, rho, g, sigma = _setup()
    x0 = np.full(prob.shape, 20.0)
    res = refiners.run(name, op, g, x0=x0, sigma=sigma, maxiter=30)
    assert isinstance(res, gb.solvers.Result)
    r0 = np.linalg.norm(op.matvec(x0.ravel()) - g) / np.linalg.norm(g)
    misfit = np.linalg.norm(op.matvec(res.x) - g) / np.linalg.norm(g)
    assert res.residuals[0] == pytest.approx(r0, rel=1e-10)
    assert res.residuals[-1] == pytest.approx(misfit, rel=1e-8)
    assert misfit < 0.5 * r0
    assert res.x.shape == (prob.n_cells,) and np.all(np.isfinite(res.x))
    # the operator's counters saw exactly what the result reports (+2 for the two checks above)
    assert op.n_matvec == res.n_matvec + 2 and op.n_rmatvec == res.n_rmatvec


@pytest.mark.parametrize("name", ["icg", "cgls", "gd"])
@pytest.mark.parametrize("method", ["dense", "matfree", "fft"])
def test_discrepancy_stop(name, method):
    """With 1% noise, stop at ||W_d r||^2 <= N (chi = 1) and not one iteration later."""
    prob, op, rho, g, sigma = _setup(method)
    res = refiners.run(name, op, g, sigma=sigma, maxiter=500)
    assert res.status == "discrepancy" and res.converged
    N = g.size
    gn = np.linalg.norm(g)
    chi2 = (res.residuals * gn / sigma) ** 2 / N        # unweighted history, scalar sigma
    assert chi2[-1] <= 1.0 + 1e-12
    assert chi2[-2] > 1.0                                 # the previous iterate had not reached it
    assert res.info["chi2"] == pytest.approx(chi2[-1], rel=1e-8)
    assert res.info["engine"] == ("python" if method == "fft" else "numba")


def test_compiled_and_python_twins_agree():
    """The same ICG run on the dense operator (numba loop) and the FFT operator (Python twin)."""
    _, opd, _, g, sigma = _setup("dense")
    _, opf, _, _, _ = _setup("fft")
    a = refiners.run("icg", opd, g, sigma=sigma, maxiter=25, chi=1e-9)
    b = refiners.run("icg", opf, g, sigma=sigma, maxiter=25, chi=1e-9)
    assert a.niter == b.niter == 25
    np.testing.assert_allclose(a.residuals, b.residuals, rtol=1e-7)
    assert np.linalg.norm(a.x - b.x) / np.linalg.norm(a.x) < 1e-6


@pytest.mark.parametrize("k", [1, 2, 5, 12])
@pytest.mark.parametrize("damp", [0.0, 2e-3])  # ||A|| ~ 1e-2
def test_cgls_iterates_equal_lsqr(k, damp):
    prob, op, rho, g, sigma = _setup()
    x0 = np.linspace(0, 50, prob.n_cells)
    res = refiners.run("cgls", op, g, x0=x0, maxiter=k, rtol=0.0, damp=damp)
    assert res.niter == k and res.n_matvec == k + 1 and res.n_rmatvec == k + 1
    ref = lsqr(op.A, g, damp=damp, x0=x0, iter_lim=k, atol=0, btol=0, conlim=0)
    assert ref[2] == k
    assert np.linalg.norm(res.x - ref[0]) / np.linalg.norm(ref[0]) < 1e-8


def test_cgls_weighted_equals_lsqr_on_scaled_system():
    prob, op, rho, g, sigma = _setup()
    s = sigma * (1.0 + np.arange(g.size) % 3)           # per-datum sigma
    res = refiners.run("cgls", op, g, sigma=s, maxiter=6, rtol=0.0, chi=1e-12)
    ref = lsqr(op.A / s[:, None], g / s, iter_lim=6, atol=0, btol=0, conlim=0)[0]
    assert np.linalg.norm(res.x - ref) / np.linalg.norm(ref) < 1e-8


@pytest.mark.parametrize("rule", ["discrepancy", "gcv", "lcurve"])
@pytest.mark.parametrize("weighting", ["sensitivity", "none"])
def test_tikhonov_rules_against_dense_direct_solve(rule, weighting):
    prob, op, rho, g, sigma = _setup()
    x0 = np.full(prob.n_cells, 10.0)
    res = refiners.run("tikhonov", op, g, x0=x0, sigma=sigma, rule=rule, weighting=weighting)
    alpha = res.info["alpha"]
    lam_max = res.info["lam_max"]
    assert 1e-12 * lam_max < alpha < lam_max                # inside the spectrum of K, not at an end
    # reference: the model-space normal equations solved densely
    A = op.A / sigma
    w2 = refiners._common.model_weights2(op, prob.n_cells, weighting)
    d = (g - op.A @ x0) / sigma
    dx = np.linalg.solve(A.T @ A + alpha * np.diag(w2), A.T @ d)
    assert np.linalg.norm(res.x - (x0 + dx)) / np.linalg.norm(x0 + dx) < 1e-8
    if rule == "discrepancy":
        assert res.info["chi2"] == pytest.approx(1.0, rel=1e-6)
    else:                                                   # GCV / L-curve: misfit near the noise level
        assert 0.2 < res.info["chi2"] < 5.0


def test_tikhonov_operator_forms_agree():
    _, opd, _, g, sigma = _setup("dense")
    _, opm, _, _, _ = _setup("fft")
    a = refiners.run("tikhonov", opd, g, sigma=sigma)
    b = refiners.run("tikhonov", opm, g, sigma=sigma)
    assert b.n_rmatvec == g.size + 1 and b.n_matvec == g.size + 2   # K built column by column
    assert a.info["alpha"] == pytest.approx(b.info["alpha"], rel=1e-6)
    assert np.linalg.norm(a.x - b.x) / np.linalg.norm(a.x) < 1e-6
    with pytest.raises(ValueError, match="needs sigma"):
        refiners.run("tikhonov", opd, g, rule="discrepancy")


@pytest.mark.parametrize("name", ["picg", "pgd"])
def test_bounds_respected_exactly(name):
    prob, op, rho, g, sigma = _setup()
    lo, hi = -100.0, 150.0
    res = refiners.run(name, op, g, x0=np.full(prob.n_cells, 500.0), sigma=sigma, bounds=(lo, hi), maxiter=40)
    assert res.x.min() >= lo and res.x.max() <= hi
    assert np.any(res.x == hi) or np.any(res.x == lo)      # the bounds were active
    assert res.residuals[-1] < res.residuals[0]
    lo_v = np.zeros(prob.n_cells)
    res = refiners.run(name, op, g, sigma=sigma, bounds=(lo_v, None), maxiter=20)
    assert res.x.min() >= 0.0


def test_icg_alpha_decays_and_weightings():
    prob, op, rho, g, sigma = _setup()
    res = refiners.run("icg", op, g, sigma=sigma, maxiter=100)
    al = res.info["alphas"]
    assert al[0] > 0 and np.all(np.diff(al) <= 0)
    ratios = al[1:][np.diff(al) < 0] / al[:-1][np.diff(al) < 0]
    np.testing.assert_allclose(ratios, 0.25)
    for w in ("depth", "none"):
        r = refiners.run("icg", op, g, sigma=sigma, weighting=w, maxiter=100)
        assert r.residuals[-1] < r.residuals[0] and r.status in ("discrepancy", "maxiter")
    # one A and one A^T per iteration (plus the initial residual)
    assert res.n_matvec == res.niter + 1 and res.n_rmatvec == res.niter


def test_x0_shapes_sigma_forms_and_profiles():
    prob, op, rho, g, sigma = _setup()
    x0 = np.random.default_rng(3).uniform(0, 100, prob.shape)
    a = refiners.run("icg", op, g, x0=x0, sigma=sigma, maxiter=10)
    b = refiners.run("icg", op, g, x0=x0.ravel(), sigma=np.full(g.size, sigma), maxiter=10)
    np.testing.assert_array_equal(a.x, b.x)
    p = refiners.run("gd", op, g, profile="paper")
    # the seed's lr 1e-5 rescaled by lambda_max: the same effective step 2 lr lambda_max = 2e-5 * 347
    assert p.info["step"] == pytest.approx(1e-5 * 347.0 / p.info["lambda_max"]) and p.niter <= 100
    assert p.info["effective_step"] == pytest.approx(2e-5 * 347.0)
    p = refiners.run("gmres", op, g, profile="paper", maxiter=2)
    assert p.info["restart"] == 20 and p.info["rtol"] == 1e-6
    p = refiners.run("lgmres", op, g, profile="paper", maxiter=2)
    assert p.info["outer_k"] == 50 and p.info["inner_m"] == 30
    with pytest.raises(ValueError, match="profile"):
        refiners.run("icg", op, g, profile="fast")


@pytest.mark.parametrize("name", ["gd", "cgls", "icg", "gmres", "tikhonov"])
def test_bad_input(name):
    prob, op, rho, g, sigma = _setup()
    bad = g.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="g contains NaN"):
        refiners.run(name, op, bad)
    with pytest.raises(ValueError, match=r"x0 must have shape \(256,\) or \(16, 16\)"):
        refiners.run(name, op, g, x0=np.zeros((8, 8)))
    with pytest.raises(ValueError, match="x0 contains NaN"):
        refiners.run(name, op, g, x0=np.full(prob.n_cells, np.inf))
    with pytest.raises(ValueError, match="g must have shape"):
        refiners.run(name, op, g[:-1])
    with pytest.raises(ValueError, match="sigma"):
        refiners.run(name, op, g, sigma=-1.0)
    with pytest.raises(ValueError, match="sigma"):
        refiners.run(name, op, g, sigma=np.ones(5))
    if name != "tikhonov":
        with pytest.raises(ValueError, match="maxiter"):
            refiners.run(name, op, g, maxiter=-1)
        with pytest.raises(ValueError, match="rtol"):
            refiners.run(name, op, g, rtol=-1e-3)
    with pytest.raises(ValueError, match="op must be"):
        refiners.run(name, "not an operator", g)


def test_maxiter_is_a_status_not_an_exception():
    prob, op, rho, g, sigma = _setup()
    res = refiners.run("icg", op, g, maxiter=3)
    assert res.status == "maxiter" and not res.converged and res.niter == 3
    res = refiners.run("gd", op, g, maxiter=0)
    assert res.niter == 0 and res.status == "maxiter"
    np.testing.assert_array_equal(res.x, 0.0)
