"""gravbench.uncertainty: priors vs dense constructions, the posterior vs the dense model-space
formula, nominal coverage on prior draws, perturb-and-optimise samples, CRPS vs quadrature, pCN."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats

import gravbench as gb
from gravbench.uncertainty import (DiagonalPrior, KroneckerPrior, LinearGaussian, LowRankPrior, coverage, crps,
                                   crps_ensemble, crps_gaussian, linear_gaussian, reliability)


def _direct_kernel(grid, lx, lz, std, kernel, nugget):
    X, Z = np.meshgrid(grid.x_centers, grid.z_centers)
    dx = np.abs(X.ravel()[:, None] - X.ravel()[None]) / lx
    dz = np.abs(Z.ravel()[:, None] - Z.ravel()[None]) / lz
    f = {"gaussian": lambda r: np.exp(-0.5 * r ** 2), "exponential": lambda r: np.exp(-r),
         "matern32": lambda r: (1 + math.sqrt(3) * r) * np.exp(-math.sqrt(3) * r)}[kernel]
    return std ** 2 * (f(dx) * f(dz) + nugget * np.eye(dx.shape[0]))


@pytest.mark.parametrize("kernel", ["gaussian", "exponential", "matern32"])
def test_kronecker_prior_matches_the_kernel_evaluated_cell_by_cell(kernel):
    grid = gb.Grid(nx=7, nz=5, width=700.0, depth=300.0)
    pr = KroneckerPrior(grid, 150.0, 60.0, std=30.0, kernel=kernel, nugget=1e-3)
    Cd = _direct_kernel(grid, 150.0, 60.0, 30.0, kernel, 1e-3)
    np.testing.assert_allclose(pr.dense(), Cd, rtol=0, atol=1e-9 * Cd.max())
    np.testing.assert_allclose(pr.variance(), np.diag(Cd), rtol=1e-9)
    S = pr.sample(np.random.default_rng(1), 20_000)
    emp = S @ S.T / S.shape[1]
    assert np.abs(emp - Cd).max() < 0.06 * Cd.max()


def test_lowrank_prior_full_rank_is_the_sample_covariance():
    rng = np.random.default_rng(2)
    models = rng.normal(size=(400, 4, 5)) @ np.diag([1.0, 2.0, 0.5, 3.0, 1.0]) + 7.0
    pr = LowRankPrior(models, rank=20, floor=1e-9)
    S = np.cov(models.reshape(400, -1), rowvar=False)
    np.testing.assert_allclose(pr.dense(), S, atol=1e-6)
    np.testing.assert_allclose(pr.mean, models.reshape(400, -1).mean(0))
    low = LowRankPrior(models, rank=3)
    np.testing.assert_allclose(low.variance(), np.diag(S), rtol=1e-9)  # the diagonal remainder keeps the variance
    np.testing.assert_allclose(np.diag(low.dense()), low.variance(), rtol=1e-12)


@pytest.mark.parametrize("method", ["dense", "fft"])
def test_posterior_matches_the_dense_model_space_formula(method):
    prob = gb.Problem.paper(n=10)
    op = prob.operator(method)
    pr = KroneckerPrior(prob.grid, 120.0, 80.0, std=150.0, mean=20.0, kernel="exponential")
    rng = np.random.default_rng(3)
    x = pr.mean + pr.sample(rng, 1)[:, 0]
    A = prob.sensitivity()
    sigma = 0.02 + 0.01 * rng.random(A.shape[0])
    g = A @ x + sigma * rng.standard_normal(A.shape[0])
    res = linear_gaussian(op, g, sigma, pr)
    C = _direct_kernel(prob.grid, 120.0, 80.0, 150.0, "exponential", 1e-6)
    P = np.linalg.inv(np.linalg.inv(C) + A.T @ (A / sigma[:, None] ** 2))
    mu = P @ (np.linalg.solve(C, pr.mean) + A.T @ (g / sigma ** 2))
    np.testing.assert_allclose(res.mean.ravel(), mu, atol=1e-7 * np.abs(mu).max())
    np.testing.assert_allclose(res.std.ravel(), np.sqrt(np.diag(P)), rtol=1e-6)
    assert res.gaussian and res.samples.shape == (0, 10, 10)
    assert res.n_matvec == res.n_rmatvec + 1 == op.shape[0] + 1  # N of each to build, + A m0
    lg = LinearGaussian(op, pr)
    np.testing.assert_allclose(lg.covariance(sigma), P, atol=1e-7 * P.max())


def _prior_draws(n, count, seed):
    prob = gb.Problem.paper(n=n)
    op = prob.operator("dense")
    pr = KroneckerPrior(prob.grid, 150.0, 100.0, std=200.0, mean=50.0, kernel="exponential")
    rng = np.random.default_rng(seed)
    X = pr.mean[:, None] + pr.sample(rng, count)
    G = op.A @ X
    sigma = 0.01 * np.median(np.abs(G).max(axis=0))  # one fixed noise level (not derived from each model)
    Gn = G + sigma * rng.standard_normal(G.shape)
    return prob, op, pr, X, Gn, sigma


def test_coverage_is_nominal_on_models_drawn_from_the_prior():
    prob, op, pr, X, G, sigma = _prior_draws(n=12, count=200, seed=4)
    lg = LinearGaussian(op, pr)
    means, stds = [], []
    for k in range(X.shape[1]):
        r = lg.posterior(G[:, k], sigma)
        means.append(r.mean.ravel())
        stds.append(r.std.ravel())
    cov = coverage(X.T, mean=np.array(means), std=np.array(stds), levels=(0.68, 0.95))
    assert abs(cov[0.68] - 0.68) < 0.02, cov
    assert abs(cov[0.95] - 0.95) < 0.02, cov
    # the data constrain the model: the posterior is narrower than the prior near the stations
    assert stds[0].reshape(prob.shape)[0].mean() < 0.8 * pr.std


def test_a_wrong_prior_is_not_calibrated():
    """The coverage test above can fail: too narrow a prior std under-covers."""
    prob, op, pr, X, G, sigma = _prior_draws(n=12, count=50, seed=5)
    narrow = KroneckerPrior(prob.grid, 150.0, 100.0, std=50.0, mean=50.0, kernel="exponential")
    lg = LinearGaussian(op, narrow)
    res = [lg.posterior(G[:, k], sigma) for k in range(X.shape[1])]
    cov = coverage(X.T, mean=np.array([r.mean.ravel() for r in res]), std=np.array([r.std.ravel() for r in res]))
    assert cov[0.95] < 0.75


def test_perturb_and_optimise_samples_match_the_exact_posterior():
    prob = gb.Problem.paper(n=6)
    op = prob.operator("dense")
    pr = KroneckerPrior(prob.grid, 200.0, 150.0, std=100.0, kernel="gaussian", nugget=1e-3)
    rng = np.random.default_rng(6)
    g = op.A @ (pr.mean + pr.sample(rng, 1)[:, 0])
    sigma = 0.05
    g = g + sigma * rng.standard_normal(g.shape)
    lg = LinearGaussian(op, pr)
    S = 4000
    res = lg.posterior(g, sigma, samples=S, seed=7, sampler="direct")
    P = lg.covariance(sigma)
    x = res.samples.reshape(S, -1)
    z = (x.mean(0) - res.mean.ravel()) / (res.std.ravel() / math.sqrt(S))
    assert np.abs(z).max() < 4.5
    emp = np.cov(x, rowvar=False)
    assert np.linalg.norm(emp - P) / np.linalg.norm(P) < 0.08
    # each perturbed problem solved iteratively, matrix-free, to convergence gives the same draws
    cg = lg.posterior(g, sigma, samples=3, seed=7, sampler="cg", rtol=1e-12, maxiter=5000)
    assert cg.info["converged"] == 3
    np.testing.assert_allclose(cg.samples, res.samples[:3], atol=1e-5 * np.abs(res.samples[:3]).max())
    # stopped early (as at a discrepancy level), the draws are not posterior draws: their spread is wrong
    early = lg.posterior(g, sigma, samples=400, seed=8, sampler="cg", maxiter=2)
    assert early.info["converged"] == 0
    ratio = early.samples.reshape(400, -1).std(0).mean() / res.std.mean()
    assert abs(ratio - 1.0) > 0.2, ratio


def test_diagonal_prior_is_tikhonov():
    """With C = (alpha W^2)^-1 the posterior mean is the Tikhonov minimiser (solved densely by lstsq)."""
    prob = gb.Problem.paper(n=6)
    op = prob.operator("dense")
    A = op.A
    rng = np.random.default_rng(9)
    g = A @ rng.normal(0, 100, A.shape[1])
    alpha, w = 1e-6, 1.0 + rng.random(A.shape[1])
    x0 = rng.normal(0, 10, A.shape[1])
    res = linear_gaussian(op, g, 1.0, DiagonalPrior(prob.shape, 1.0 / (alpha * w ** 2), mean=x0))
    M = np.vstack([A, math.sqrt(alpha) * np.diag(w)])
    x = np.linalg.lstsq(M, np.concatenate([g, math.sqrt(alpha) * w * x0]), rcond=None)[0]
    np.testing.assert_allclose(res.mean.ravel(), x, atol=1e-6 * np.abs(x).max())


def test_crps_against_quadrature_and_the_pairwise_formula():
    mu, sd, x = 1.5, 0.7, 2.3
    F = scipy.stats.norm(mu, sd).cdf
    ref = (scipy.integrate.quad(lambda t: F(t) ** 2, -np.inf, x)[0]
           + scipy.integrate.quad(lambda t: (1 - F(t)) ** 2, x, np.inf)[0])
    assert crps_gaussian(np.array([mu]), np.array([sd]), np.array([x]))[0] == pytest.approx(ref, rel=1e-7)
    assert crps_gaussian(np.array([mu]), np.array([0.0]), np.array([x]))[0] == pytest.approx(abs(x - mu))
    rng = np.random.default_rng(10)
    S = rng.normal(size=(37, 3, 2))
    t = rng.normal(size=(3, 2))
    brute = np.abs(S - t).mean(0) - 0.5 * np.abs(S[:, None] - S[None]).mean((0, 1))
    np.testing.assert_allclose(crps_ensemble(S, t), brute, atol=1e-12)
    big = rng.normal(mu, sd, size=(20000, 1))
    assert crps(np.array([x]), samples=big) == pytest.approx(ref, rel=0.03)


def test_coverage_of_samples_and_gaussians_agree_and_reliability_is_monotone():
    rng = np.random.default_rng(11)
    truth = rng.normal(size=5000)
    c_g = coverage(truth, mean=np.zeros(5000), std=np.ones(5000), levels=(0.5, 0.9))
    c_s = coverage(truth, samples=rng.normal(size=(2000, 5000)), levels=(0.5, 0.9))
    for lv in (0.5, 0.9):
        assert abs(c_g[lv] - lv) < 0.02 and abs(c_s[lv] - lv) < 0.025
    lv, obs = reliability(truth, mean=np.zeros(5000), std=np.ones(5000))
    assert np.all(np.diff(obs) >= 0) and np.abs(obs - lv).max() < 0.03


def test_bad_inputs_are_value_errors():
    prob = gb.Problem.paper(n=6)
    op = prob.operator("dense")
    pr = KroneckerPrior(prob.grid, 100.0)
    with pytest.raises(ValueError, match="length_x"):
        KroneckerPrior(prob.grid, -1.0)
    with pytest.raises(ValueError, match="kernel"):
        KroneckerPrior(prob.grid, 1.0, kernel="rbf")
    with pytest.raises(ValueError, match="prior is for"):
        LinearGaussian(op, KroneckerPrior(gb.Grid(nx=5, nz=5), 100.0))
    lg = LinearGaussian(op, pr)
    with pytest.raises(ValueError, match="sigma"):
        lg.posterior(np.zeros(op.shape[0]), -1.0)
    with pytest.raises(ValueError, match="g must be"):
        lg.posterior(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="sampler"):
        lg.posterior(np.zeros(op.shape[0]), 1.0, samples=2, sampler="mcmc")
    with pytest.raises(ValueError, match="level"):
        coverage(np.zeros(3), mean=np.zeros(3), std=np.ones(3), levels=(95,))
    with pytest.raises(ValueError, match="rank"):
        LowRankPrior(np.zeros((5, 2, 2)), rank=0)


def test_pcn_samples_a_known_gaussian_posterior():
    """pCN on a linear latent model z -> H z (prior N(0, I)) reproduces the exact Gaussian posterior."""
    torch = pytest.importorskip("torch")
    from gravbench.uncertainty.latent import pcn_chains

    rng = np.random.default_rng(12)
    H = rng.normal(size=(6, 3))
    s = 0.5
    y = H @ rng.normal(size=3) + s * rng.normal(size=6)
    P = np.linalg.inv(np.eye(3) + H.T @ H / s ** 2)
    m = P @ H.T @ y / s ** 2
    Ht, yt = torch.as_tensor(H), torch.as_tensor(y)

    def phi(z):
        return 0.5 * ((z @ Ht.T - yt) / s).pow(2).sum(1)

    gen = torch.Generator().manual_seed(0)
    Z, acc, beta, _ = pcn_chains(phi, torch.zeros(16, 3, dtype=torch.float64), steps=4000, burn=1000, thin=5,
                                 beta=0.3, generator=gen)
    Z = Z.numpy()
    assert 0.1 < float(acc.mean()) < 0.5
    np.testing.assert_allclose(Z.mean(0), m, atol=0.08 * np.sqrt(np.diag(P)).max() * 3)
    np.testing.assert_allclose(np.cov(Z, rowvar=False), P, atol=0.15 * np.abs(P).max())


def test_pcn_latent_on_the_shipped_vae():
    pytest.importorskip("torch")
    from gravbench.uncertainty import pcn_latent

    prob = gb.Problem.paper(n=50)
    op = prob.operator("dense")
    rho = np.zeros(prob.shape)
    rho[10:20, 15:30] = 400.0
    g = op.matvec(rho)
    sigma = 0.01 * np.abs(g).max()
    r1 = pcn_latent(op, g, sigma, chains=2, steps=40, burn=20, thin=5, init_steps=5, seed=3)
    r2 = pcn_latent(op, g, sigma, chains=2, steps=40, burn=20, thin=5, init_steps=5, seed=3)
    assert r1.samples.shape == (8, 50, 50) and not r1.gaussian
    np.testing.assert_array_equal(r1.samples, r2.samples)
    np.testing.assert_allclose(r1.std, r1.samples.std(0, ddof=1))
    lo, hi = r1.interval(0.95)
    assert np.all(lo <= hi)
    with pytest.raises(ValueError, match="burn"):
        pcn_latent(op, g, sigma, steps=10, burn=10)


def test_report_command_is_registered():
    from typer.testing import CliRunner

    from gravbench.cli import app

    r = CliRunner().invoke(app, ["report", "uncertainty", "--help"])
    assert r.exit_code == 0 and "--pcn-per-family" in r.output


def test_import_gravbench_uncertainty_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, gravbench.uncertainty as u; u.coverage; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
