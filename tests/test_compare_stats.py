"""Beyond the statistics module: gravity metrics (checked against the forward operator and the
model error), the family and gravity fields of the records, the noise variants of the robustness option,
and the report sections (ties, per family, Pareto front, JSON)."""

import json

import numpy as np
import pytest

import gravbench as gb
from gravbench import metrics
from gravbench.bench import robustness
from gravbench.reports import compare as compare_report
from gravbench.bench.cases import build_cases
from gravbench.bench.runner import TestSet, Toolkit, run_cases
from gravbench.cli import cmd_compare, main
from gravbench.constants import G, SI_TO_MGAL
from gravbench.forward import sensitivity
from tests import test_bench_runner as T

GRID = gb.Grid(nx=10, nz=10, width=1000.0, depth=1000.0)
XE, ZE = GRID.x_edges, GRID.z_edges


def _body():
    rho = np.zeros((10, 10))
    rho[3:6, 4:7] = 300.0
    rho[7, 1] = -100.0
    return rho


# ------------------------------------------------------------------ gravity metrics
def test_excess_mass_obeys_gauss_theorem_on_the_forward_operator():
    """integral gz dx = 2 pi G M over a (long) profile: the forward operator, not the metric, gives the data."""
    rho = _body()
    xs = np.linspace(-200_000.0, 200_000.0, 40_001)
    A = sensitivity(XE, ZE, xs, np.full_like(xs, -1.0))
    gz = (A @ rho.ravel())[xs.size:] / SI_TO_MGAL  # m/s^2
    flux = np.trapezoid(gz, xs) if hasattr(np, "trapezoid") else np.trapz(gz, xs)
    # the profile ends 200 km away: the missing tails are ~ 2 z / L of the flux (z ~ 500 m)
    assert flux == pytest.approx(2 * np.pi * G * metrics.excess_mass(rho, XE, ZE), rel=5e-3)


def test_mass_error_and_centroids_on_known_cases():
    rho = _body()
    assert metrics.mass_error(rho, rho, XE, ZE) == 0.0
    # half the density everywhere: half the excess mass missing, relative to the absolute mass
    absm = np.sum(np.abs(rho)) * 100.0 * 100.0
    assert metrics.mass_error(rho, 0.5 * rho, XE, ZE) == pytest.approx(abs(0.5 * np.sum(rho) * 1e4) / absm)
    # a redistribution that keeps the mass has no mass error but moves the centroid
    moved = np.roll(rho, 2, axis=1)
    assert metrics.mass_error(rho, moved, XE, ZE) == pytest.approx(0.0, abs=1e-12)
    ex, ez = metrics.centroid_errors(rho, moved, XE, ZE)
    assert ex == pytest.approx(200.0) and ez == pytest.approx(0.0, abs=1e-9)
    deeper = np.roll(rho, 1, axis=0)
    assert metrics.centroid_errors(rho, deeper, XE, ZE) == pytest.approx((0.0, 100.0), abs=1e-9)
    one = np.zeros((10, 10))
    one[2, 7] = 5.0
    assert metrics.anomaly_centroid(one, XE, ZE) == pytest.approx((750.0, 250.0))
    with pytest.raises(ValueError, match="rho_hat must have 10 x 10"):
        metrics.mass_error(rho, np.zeros(5), XE, ZE)
    with pytest.raises(ValueError, match="zero everywhere"):
        metrics.mass_error(np.zeros((10, 10)), rho, XE, ZE)


def test_depth_profile_decomposes_the_model_error():
    rng = np.random.default_rng(0)
    rho, hat = rng.normal(0, 100, (10, 10)), rng.normal(0, 100, (10, 10))
    for bands in (1, 3, 4, 10):
        prof = metrics.depth_error_profile(rho, hat, XE, ZE, bands=bands)
        assert len(prof) == bands
        assert np.sum(np.square(prof)) == pytest.approx(metrics.model_error(rho, hat) ** 2, rel=1e-12)
    hat2 = rho.copy()
    hat2[9] = 0.0  # only the bottom row wrong: only the bottom band has an error
    prof = metrics.depth_error_profile(rho, hat2, XE, ZE, bands=4)
    assert prof[:3] == [0.0, 0.0, 0.0] and prof[3] > 0
    with pytest.raises(ValueError, match="bands"):
        metrics.depth_error_profile(rho, hat, XE, ZE, bands=0)


# ------------------------------------------------------------------ records
def _load_with_families(n, samples, noise, seed):
    ts = T.fake_load(n, samples, noise, seed)
    fams = ("blocks", "layers")
    return TestSet(problem=ts.problem, rho=ts.rho, g=ts.g, sigma=ts.sigma, family=tuple(fams[i % 2] for i in
                                                                                         range(samples)))


TKF = Toolkit(load=_load_with_families, get_provider=T.fake_get_provider, refine=T.fake_refine, warmup=False)


def test_records_carry_family_and_gravity_metrics():
    cases = build_cases([8], ["zero", "flaky"], ["none", "cgls3"], samples=4, noise=T.NOISE, seed=T.SEED)
    recs = run_cases(cases, toolkit=TKF)
    ts = _load_with_families(8, 4, T.NOISE, T.SEED)
    for r in recs:
        assert tuple(r) == metrics.RECORD_KEYS
        assert r["family"] == ("blocks", "layers")[r["model"] % 2]  # also on the failed cases
        if r["error"] is None:
            assert len(r["depth_error"]) == metrics.DEPTH_BANDS
            assert np.sum(np.square(r["depth_error"])) == pytest.approx(r["model_error"] ** 2, rel=1e-9)
            assert r["mass_error"] >= 0
            if r["refiner"] == "none":  # both stand-in providers give an all-zero estimate: no centroid
                assert r["x_centroid_error"] is None and r["z_centroid_error"] is None
            else:
                assert r["x_centroid_error"] >= 0 and r["z_centroid_error"] >= 0
        else:
            assert r["mass_error"] is None and r["depth_error"] is None
    zero = next(r for r in recs if r["provider"] == "zero" and r["refiner"] == "none" and r["model"] == 0)
    absm = np.sum(np.abs(ts.rho[0]))
    assert zero["mass_error"] == pytest.approx(abs(np.sum(ts.rho[0])) / absm)


def test_the_real_test_sets_know_each_models_family():
    from gravbench import data
    from gravbench.bench.runner import default_load

    ts = default_load(16, 6, 0.01, 0)  # a built set (no standard paper-16): families from the data generator
    assert len(ts.family) == 6 and set(ts.family) <= set(data.BASE_FAMILIES)


# ------------------------------------------------------------------ robustness
def test_noise_variants_have_unit_variance_and_the_stated_shape():
    xs = np.arange(300) * 10.0
    e = robustness.perturbed_noise((400, 600), "correlated", 3, np.arange(400), xs, corr_length=50.0)
    assert e.var() == pytest.approx(1.0, abs=0.03)
    lag1 = np.mean(e[:, 1:300] * e[:, :299])  # within the x component
    assert lag1 == pytest.approx(np.exp(-10.0 / 50.0), abs=0.02)
    assert abs(np.mean(e[:, 299] * e[:, 300])) < 0.03  # the two components are independent
    h = robustness.perturbed_noise((400, 600), "heavy", 3, np.arange(400))
    assert h.var() == pytest.approx(1.0, abs=0.1)
    assert np.mean(h ** 4) / np.mean(h ** 2) ** 2 > 5  # Gaussian kurtosis is 3
    # a row depends on its own index only
    a = robustness.perturbed_noise((3, 600), "heavy", 3, [7, 8, 9])
    np.testing.assert_array_equal(a[1], robustness.perturbed_noise((1, 600), "heavy", 3, [8])[0])
    with pytest.raises(ValueError, match="kind"):
        robustness.perturbed_noise((1, 4), "pink", 0, [0])


def test_perturbed_load_tells_a_scaled_sigma_and_keeps_the_data():
    nominal = robustness.perturbed_load(16, 3, 0.01, 0)
    wrong = robustness.perturbed_load(16, 3, 0.01, 0, sigma_scale=2.0)
    np.testing.assert_array_equal(nominal.g, wrong.g)
    np.testing.assert_allclose(wrong.sigma, 2.0 * nominal.sigma)
    corr = robustness.perturbed_load(16, 3, 0.01, 0, noise_kind="correlated")
    assert not np.allclose(corr.g, nominal.g) and corr.family == nominal.family
    with pytest.raises(ValueError, match="sigma_scale"):
        robustness.perturbed_load(16, 3, 0.01, 0, sigma_scale=0)
    with pytest.raises(ValueError, match="noise_kind"):
        robustness.toolkit(1.0, "pink")


def test_robustness_report_uses_the_true_sigma(tmp_path):
    cases = build_cases([8], ["zero"], ["cgls3"], samples=3, noise=T.NOISE, seed=T.SEED)
    recs = []
    for s in (1.0, 2.0):  # same data, told sigma x 2: chi2 against the told sigma is 4 times smaller
        tk = Toolkit(load=lambda n, k, noise, seed, s=s: TestSet(**{**T.fake_load(n, k, noise, seed).__dict__,
                                                                   "sigma": s * T.fake_load(n, k, noise, seed).sigma}),
                     get_provider=T.fake_get_provider, refine=T.fake_refine, warmup=False)
        recs += [dict(r, condition=robustness.condition_name(s, "gaussian"), sigma_scale=s)
                 for r in run_cases(cases, toolkit=tk)]
    told = {(r["condition"], r["model"]): r["chi2"] for r in recs}
    for k in range(3):
        assert told["sigma x 2", k] == pytest.approx(told["nominal", k] / 4.0)
    md = robustness.markdown(recs, command="cmd")
    row = next(line for line in md.splitlines() if "| sigma x 2 |" in line)
    nom = float(np.median([told["nominal", k] for k in range(3)]))
    assert f"| {nom:.3g} |" in row  # chi2 with the true sigma: the nominal value again


# ------------------------------------------------------------------ report
def test_pareto_front_against_brute_force():
    rng = np.random.default_rng(1)
    pts = [tuple(p) for p in rng.uniform(0, 1, (40, 2))]
    front = set(compare_report.pareto_front(pts))
    for i, (s, e) in enumerate(pts):
        dominated = any(s2 <= s and e2 <= e and (s2, e2) != (s, e) for s2, e2 in pts)
        assert (i in front) == (not dominated)


def test_compare_report_has_intervals_ties_families_and_json(tmp_path, monkeypatch):
    monkeypatch.setattr(cmd_compare, "make_toolkit", lambda: TKF)
    monkeypatch.setattr(cmd_compare, "available_providers", lambda: ("zero",))
    monkeypatch.setattr(cmd_compare, "available_refiners", lambda: ("none", "cgls2", "cgls3", "cgls5"))
    args = ["compare", "--n", "8", "--providers", "zero", "--refiners", "none,cgls2,cgls3,cgls5", "--samples", "6",
            "--noise", str(T.NOISE), "--out", str(tmp_path), "--no-gallery"]
    assert main(args) == 0
    md = (tmp_path / "compare-8.md").read_text()
    doc = json.loads((tmp_path / "compare-8.json").read_text())
    size = doc["sizes"][0]
    lead = size["leader"]
    assert lead == size["pairs"][0]["label"]
    line = next(x for x in md.splitlines() if x.startswith("- Most accurate:"))
    for t in size["tied"][1:]:
        assert f"**{t}**" in line  # every pair tied with the leader is named
    assert "zero | none | 1 [1, 1] |" in md  # the zero model: error exactly 1 on every model
    zero = next(p for p in size["pairs"] if p["label"] == "zero")
    assert zero["tied"] is False and zero["vs_leader"]["better"] == 0.0
    assert set(size["families"]) == {"blocks", "layers"} and size["families"]["blocks"]["models"] == 3
    assert "model error per family" in md and "blocks (k = 3)" in md and "excess-mass error" in md
    assert (tmp_path / "compare-8-pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_robustness_options(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cmd_compare, "make_toolkit", lambda: TKF)
    monkeypatch.setattr(cmd_compare, "available_providers", lambda: ("zero",))
    monkeypatch.setattr(cmd_compare, "available_refiners", lambda: ("none", "cgls3"))
    args = ["compare", "--n", "8", "--providers", "zero", "--refiners", "none,cgls3", "--samples", "2",
            "--out", str(tmp_path), "--no-gallery"]
    # real (built) n = 8 test data with correlated noise; the methods are told twice the true sigma
    assert main(args + ["--sigma-scale", "2", "--noise-kind", "correlated"]) == 0
    md = (tmp_path / "compare-8-correlated-sigma2.md").read_text()
    assert "--sigma-scale 2 --noise-kind correlated" in md and "correlated noise, sigma x 2" in md
    capsys.readouterr()
    for extra, msg in ((["--noise-kind", "pink"], "--noise-kind must be one of"),
                       (["--sigma-scale", "0"], "--sigma-scale must be > 0")):
        assert main(args + extra) == 2  # a usage error
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1


def test_cost_vs_n_by_method_family_only_with_more_than_two_sizes(tmp_path):
    rng = np.random.default_rng(2)
    recs = []
    for n in (8, 12, 16):
        for k in range(3):
            for p in ("zero", "tikhonov"):
                for r in ("none", "cgls"):
                    rec = dict.fromkeys(metrics.RECORD_KEYS)
                    rec.update(n=n, noise=0.01, model=k, provider=p, refiner=r, model_error=float(rng.uniform(0.5, 1)),
                               data_misfit=0.01, chi2=1.0, success=True, seconds=1e-3 * n * (2 if r == "cgls" else 1),
                               n_matvec=2, niter=1, peak_mb=0.1, family="blocks", mass_error=0.1,
                               x_centroid_error=1.0, z_centroid_error=2.0, depth_error=[0.1, 0.2, 0.3, 0.4])
                    recs.append(rec)
    written = compare_report.write_report(recs, tmp_path, [8, 12, 16], command="cmd")
    names = {p.name for p in written}
    assert {"compare-8-12-16-seconds.png", "compare-8-12-16-pareto.png", "compare-8-12-16.json"} <= names
    (tmp_path / "two").mkdir()
    written = compare_report.write_report([r for r in recs if r["n"] != 16], tmp_path / "two", [8, 12], command="cmd")
    assert not any(p.name.endswith("-seconds.png") for p in written)


def test_error_figure_with_many_pairs_keeps_its_axes(tmp_path):
    """50 pairs: the legend goes below the axes in columns; no 'constrained_layout not applied' warning
    (the axes collapsed when a one-column legend taller than the figure sat beside them)."""
    import warnings

    from gravbench.reports.compare import plot_error_vs_n

    recs = [{"n": n, "provider": f"p{k // 7}", "refiner": f"r{k % 7}", "model_error": 0.5 + 0.01 * k + 0.001 * n,
             "seconds": 0.01, "status": "ok"} for k in range(50) for n in (50, 100)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = plot_error_vs_n(recs, tmp_path / "e.png")
    assert p.exists() and p.stat().st_size > 0
