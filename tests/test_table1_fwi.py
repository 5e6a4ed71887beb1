"""The fwi family, the seed geometry, the one success rule, the paper GD step, the GMRES/LGMRES
discrepancy stop, the paper's CNN architecture and its shipped weights, and the Table I helpers."""

import json
import math

import numpy as np
import pytest

import gravbench as gb
from gravbench import metrics
from gravbench.constants import G as G_SI

# --- the fwi family ---------------------------------------------------------------------------------------------


def test_fwi_family_values_and_determinism():
    rho = gb.data.generate("fwi", 300, (40, 40), seed=5)
    lo, hi = 310.0 * 1500.0 ** 0.25, 310.0 * 4500.0 ** 0.25  # Gardner at the velocity bounds
    assert rho.min() >= lo - 1e-3 and rho.max() <= hi + 1e-3
    # piecewise constant with 3-6 layers: few distinct values per model
    nvals = [len(np.unique(r)) for r in rho]
    assert min(nvals) >= 2 and max(nvals) <= 6
    # mostly increasing with depth: the mean profile rises from top to bottom
    prof = rho.mean((0, 2))
    assert prof[-1] - prof[0] > 200.0 and np.mean(np.diff(prof) >= -1.0) > 0.9
    # the same seed gives the same models whatever the build (serial / parallel) and the count
    a = gb.data.families.render(np.full(7, 6), np.arange(7), (40, 40), 5, parallel=False)
    b = gb.data.families.render(np.full(7, 6), np.arange(7), (40, 40), 5, parallel=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(gb.data.generate("fwi", 3, (40, 40), seed=5), rho[:3])
    # curved and faulted models exist (a model whose interfaces are not flat varies along x)
    lateral = np.mean([np.any(r.std(axis=1) > 0) for r in rho])
    assert 0.4 < lateral < 0.95
    assert "fwi" not in gb.data.MIXED_PROPORTIONS


def test_fwi_prior_mean_error_is_openfwi_like():
    """A data-free mean model scores about 0.05-0.06 on OpenFWI-style media."""
    rho = gb.data.generate("fwi", 3000, (51, 51), seed=11).astype(np.float64)
    mean = rho[:2000].mean(0)
    te = rho[2000:].reshape(1000, -1)
    e = np.linalg.norm(te - mean.ravel(), axis=1) / np.linalg.norm(te, axis=1)
    assert 0.04 < e.mean() < 0.07


def test_fwi_bad_parameters():
    with pytest.raises(ValueError, match="n_faults"):
        gb.data.generate("fwi", 2, (8, 8), n_faults=(1, 3))
    with pytest.raises(ValueError, match="velocity"):
        gb.data.generate("fwi", 2, (8, 8), velocity=(-1.0, 10.0))
    with pytest.raises(ValueError, match="p_fault"):
        gb.data.generate("fwi", 2, (8, 8), p_fault=1.5)


# --- the seed geometry and the fwi-51 set ----------------------------------------------------------------------


def test_problem_seed_geometry_and_kernel_against_line_masses():
    p = gb.Problem.seed(9, width=900.0, depth=450.0)
    h, dz = 100.0, 50.0
    assert p.shape == (9, 9) and p.kernel == "midpoint" and p.survey.m == 27
    np.testing.assert_allclose(p.survey.z, -0.5 * dz)  # half a cell above the top edge
    np.testing.assert_allclose(np.diff(p.survey.x), h / 3)  # evenly spaced, 3 per cell
    # one node spacing above the top row of cell centres
    assert p.grid.z_centers[0] - p.survey.z[0] == pytest.approx(dz)
    # A against line masses at the cell centres (2 G lambda (X, Z) / r^2, lambda = area), in mGal
    xc, zc = np.meshgrid(p.grid.x_centers, p.grid.z_centers)
    X = xc.ravel()[None, :] - p.survey.x[:, None]
    Z = zc.ravel()[None, :] - p.survey.z[:, None]
    r2 = X ** 2 + Z ** 2
    lam = h * dz
    A_ref = np.vstack([2 * G_SI * lam * X / r2, 2 * G_SI * lam * Z / r2]) * 1e5
    np.testing.assert_allclose(p.sensitivity(), A_ref, rtol=1e-10, atol=1e-12 * np.abs(A_ref).max())
    with pytest.raises(ValueError, match="n must be a positive integer"):
        gb.Problem.seed(0)
    # Problem.paper is unchanged
    q = gb.Problem.paper(50)
    assert q.kernel == "exact" and float(q.survey.z[0]) == -1.0


def test_fwi51_standard_set_definition():
    spec = gb.data.STANDARD["fwi-51"]
    assert spec.splits == (27_000, 1_000, 1_000) and spec.families == "fwi" and spec.noise == 0.01
    assert spec.problem() == gb.Problem.seed(51)


# --- one success rule -------------------------------------------------------------------------------------------


def test_success_is_two_sided():
    lo, hi = metrics.success_band(300)
    assert (lo, hi) == pytest.approx((1 - 2 * math.sqrt(2 / 300), 1 + 2 * math.sqrt(2 / 300)))
    assert not metrics.is_success(0.6, 300) and not metrics.is_success(1.6, 300)
    assert metrics.is_success(1.0, 300) and metrics.is_success(lo + 1e-9, 300) and metrics.is_success(hi, 300)
    assert metrics.fit_status(0.6, 300) == "over-fitted" and metrics.fit_status(1.6, 300) == "under-fitted"
    assert metrics.fit_status(None, 300) is None and metrics.chi2_threshold(300) == hi
    with pytest.raises(ValueError, match="n_data"):
        metrics.success_band(0)
    # evaluate: noise-free data have no success; over-fitted estimates are not successes
    A = np.eye(300)
    g = np.ones(300)
    assert metrics.evaluate(A, g, g, g)["success"] is None
    assert metrics.evaluate(A, g, g + 0.6 ** 0.5 * 0.1, g, 0.1)["success"] is False
    assert metrics.evaluate(A, g, g + 0.1, g, 0.1)["success"] is True


def test_every_success_report_uses_the_one_rule(monkeypatch):
    """Patch the band: every place that decides success (metrics, compare, Table I, latent search and its
    report, the Table I targets) follows it, so none keeps a threshold of its own."""
    from gravbench.reports import latent as bench_latent
    from gravbench.reports import table1
    from gravbench.providers.latent import SearchResult

    monkeypatch.setattr(metrics, "success_band", lambda n, k=2.0: (0.55, 0.65))
    assert metrics.is_success(0.6, 300) and not metrics.is_success(1.0, 300)
    # compare (summarize over runner records)
    rec = {"n": 50, "provider": "p", "refiner": "r", "model_error": 0.1, "data_misfit": 0.1, "chi2": 0.5,
           "success": False, "seconds": 1.0, "n_matvec": 1, "niter": 1, "peak_mb": 1.0, "error": None}
    assert metrics.summarize([rec])[0]["overfit"] == 1
    # Table I rows
    row = table1._row({"model_error": np.ones(2), "misfit": np.ones(2), "chi2": np.array([0.6, 1.0])}, 2, 0.0, 300)
    assert row["success_rate"] == 0.5 and row["overfit"] == 0
    # the latent report and the latent search result
    assert bench_latent._ok(math.sqrt(0.6), 300) and not bench_latent._ok(1.0, 300)
    res = SearchResult(z=np.zeros((2, 1)), chi=np.sqrt([0.6, 1.0]), forward=np.zeros(2), derivs=np.zeros(2),
                       reached=np.zeros(2), seconds=np.zeros(2), niter=np.zeros(2))
    assert list(res.success(300)) == [True, False]
    # the Table I targets text prints the patched band
    rows = {"cnn": {"model_error": {"mean": 0.1}, "misfit": {"mean": 0.1}},
            "true model": {"misfit": {"mean": 0.01}},
            "cnn+gmres": {"model_error": {"mean": 0.1}, "misfit": {"mean": 0.1}, "chi2": {"median": 0.6},
                          "success_rate": 1.0, "overfit": 0, "count": 2}}
    lines = table1.targets({"dataset": "fwi-51", "rows": {"0.01": rows}, "refine_samples": 2, "n_data": 300})
    assert any("0.550..0.650" in s for s in lines)


# --- refiners as the paper ran them ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed16():
    prob = gb.Problem.seed(16)
    rho = gb.data.generate("fwi", 4, prob.shape, seed=2).astype(np.float64)
    return prob, prob.operator("dense"), prob.sensitivity(), rho


def test_gd_paper_step_moves_the_model(seed16):
    from gravbench.refiners.gd import SEED_LAMBDA_MAX, SEED_LR, lambda_max

    prob, op, A, rho = seed16
    lam_true = float(np.linalg.eigvalsh(A.T @ A)[-1])
    assert lambda_max(A) == pytest.approx(lam_true, rel=1e-3)
    # a start whose error lies in the well-determined directions: GD can lower the misfit there
    _, _, vt = np.linalg.svd(A, full_matrices=False)
    x0 = rho[0].ravel() + 30.0 * vt[:5].T @ np.ones(5)
    g = A @ rho[0].ravel()
    res = gb.refiners.run("gd", op, g, x0=x0, profile="paper")
    m0 = np.linalg.norm(A @ x0 - g)
    m1 = np.linalg.norm(A @ np.asarray(res.x).ravel() - g)
    assert m1 <= 0.9 * m0
    assert res.info["effective_step"] == pytest.approx(2 * SEED_LR * SEED_LAMBDA_MAX, rel=1e-3)
    assert res.niter > 1


@pytest.mark.parametrize("method", ["gmres", "lgmres"])
def test_gmres_lgmres_discrepancy_stop(method):
    prob = gb.Problem.seed(24)
    op, A = prob.operator("dense"), prob.sensitivity()
    rho = gb.data.generate("fwi", 4, prob.shape, seed=2).astype(np.float64)
    rng = np.random.default_rng(3)
    lo, hi = metrics.success_band(prob.n_data)
    free_chi2 = []
    for i in range(3):
        g0 = A @ rho[i].ravel()
        sigma = np.full(g0.size, 0.01 * np.abs(g0).max())
        g = g0 + sigma * rng.standard_normal(g0.size)
        x0 = rho[3].ravel()  # another model of the family: chi2 far above 1
        c0 = metrics.chi2(A @ x0 - g, sigma)
        assert c0 > 2
        res = gb.refiners.run(method, op, g, x0=x0, sigma=sigma, profile="paper")
        c = metrics.chi2(A @ np.asarray(res.x).ravel() - g, sigma)
        assert lo <= c <= hi and metrics.is_success(c, g.size) and res.status == "discrepancy"
        # without the stop, the paper's rtol runs on and fits the noise: chi2 below 1, often below the band
        free = gb.refiners.run(method, op, g, x0=x0, sigma=sigma, profile="paper", discrepancy=False)
        free_chi2.append(metrics.chi2(A @ np.asarray(free.x).ravel() - g, sigma))
    assert max(free_chi2) < 1.0 and min(free_chi2) < lo
    # no sigma (noise-free data): the paper's profile, unchanged
    r = gb.refiners.run(method, op, g0, x0=x0, profile="paper")
    assert "discrepancy" not in r.info


# --- the paper's CNN --------------------------------------------------------------------------------------------


def test_paper_full_architecture():
    torch = pytest.importorskip("torch")
    from gravbench.providers.cnn import build_model

    n = 51
    net = build_model(3 * n, n, n, arch="paper-full", rho_lo=1900.0, rho_hi=2600.0)
    L = 3 * n
    for _ in range(3):
        L = (L - 3) // 2 + 1  # Keras Conv1D, padding="valid", stride 2
    widths = [128 * L, 250, 500, 1000, 1500, n * n]
    expect = (2 * 32 * 3 + 32) + (32 * 64 * 3 + 64) + (64 * 128 * 3 + 128) + sum(
        a * b + b for a, b in zip(widths[:-1], widths[1:]))
    assert sum(p.numel() for p in net.parameters()) == expect and 6.5e6 < expect < 6.8e6
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(4, 2 * 3 * n))
    assert out.shape == (4, n, n) and float(out.min()) >= 1900.0 and float(out.max()) <= 2600.0
    kinds = [type(m).__name__ for m in net.modules()]
    assert "LeakyReLU" in kinds and "ReLU" not in kinds and kinds.count("Dropout") == 4


def test_shipped_paper_cnn_for_the_seed_geometry():
    """cnn-fwi-51: the paper's network, float16 with a sha256 manifest, picked by problem, reproduces its
    manifest's check-batch accuracy; all shipped weights stay small."""
    pytest.importorskip("torch")
    from gravbench import providers
    from gravbench.providers import cnn

    prob = gb.Problem.seed(51)
    path = cnn.weights_for(prob)
    assert path.name == "cnn-fwi-51.pt"
    assert cnn.weights_for(gb.Problem.paper(50)).name == "cnn-50.pt"
    man = json.loads(path.with_suffix(".json").read_text())
    assert man["config"]["arch"] == "paper-full" and man["dtype"] == "float16"
    assert 6.5e6 < man["n_params"] < 6.8e6 and man["dataset"]["name"] == "fwi-51"
    assert "stop_after" in man["reproduce"] or man["training"]["stopped"] != "time-limit"
    total = sum(p.stat().st_size for p in cnn.WEIGHTS_DIR.glob("*.pt"))
    assert total < 40e6
    p = providers.get("cnn")
    chk = cnn.check_batch(prob, man["metrics"]["check_batch_families"])
    e = cnn.rel_errors(p.batch(chk.g, prob), chk.rho)  # loads through load_weights: sha256 checked
    assert abs(e.mean() - man["metrics"]["check_batch_model_error_mean"]) < 0.005
    assert (51, 51) in p.info.grids
    with pytest.raises(providers.NoWeightsError, match="fwi-51|different geometry"):
        p(np.zeros(prob.n_data), gb.Problem.paper(51, kernel="midpoint"))
