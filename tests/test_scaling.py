"""The lean FFT operator (mirror-derived phases, complex64 spectra, chunked products),
CGLS in float32, and the scaling report's pieces (budget rule, exponent fit, records)."""

import json

import numpy as np
import pytest

import gravbench as gb
from gravbench.reports import scaling as sr
from gravbench.forward import operators as ops
from gravbench.forward.operators import FFTOperator
from gravbench.refiners import cgls


def _problem(n=14, nz=9, per=3, x=None, height=1.0):
    grid = gb.Grid(nx=n, nz=nz, width=1000.0, depth=700.0)
    survey = gb.Survey.regular(grid, per_cell=per, height=height) if x is None else gb.Survey(
        x=x, z=np.full(len(x), -height))
    return gb.Problem(grid, survey)


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("per", [1, 2, 3, 4])
@pytest.mark.parametrize("kernel", ["exact", "midpoint"])
def test_fft_mirror_storage_equals_dense(per, kernel):
    grid = gb.Grid(nx=13, nz=7, width=900.0, depth=500.0)
    prob = gb.Problem(grid, gb.Survey.regular(grid, per_cell=per, height=2.0), kernel)
    A = prob.sensitivity()                      # the dense assembly: a different code path
    op = FFTOperator(prob, spectra="complex128")
    assert op.symmetric
    # phases r and k-1-r share storage: ceil(k/2) phases per component, the middle one real
    assert len(op._crows) + len(op._rrows) == 2 * ((per + 1) // 2)
    rng = np.random.default_rng(per)
    v, u = rng.standard_normal(A.shape[1]), rng.standard_normal(A.shape[0])
    assert _rel(op.matvec(v), A @ v) < 1e-12
    assert _rel(op.rmatvec(u), u @ A) < 1e-12


def test_fft_asymmetric_survey_stores_every_phase():
    x = (np.arange(42) + 0.2) * 1000.0 / 42           # spacing dx/3, not centred: no mirror pairs
    prob = _problem(x=x)
    op = FFTOperator(prob)
    assert not op.symmetric and len(op._crows) == 6 and len(op._rrows) == 0
    A = prob.sensitivity()
    v = np.random.default_rng(0).standard_normal(A.shape[1])
    assert _rel(op.matvec(v), A @ v) < 1e-12


def test_fft_chunked_products_and_single_precision(monkeypatch):
    monkeypatch.setattr(ops, "FFT_CHUNK_BYTES", 1)      # one depth row per chunk
    prob = _problem()
    A = prob.sensitivity()
    rng = np.random.default_rng(1)
    v, u = rng.standard_normal(A.shape[1]), rng.standard_normal(A.shape[0])
    full = FFTOperator(prob, spectra="complex128")
    assert full._chunk == 1
    assert _rel(full.matvec(v), A @ v) < 1e-12 and _rel(full.rmatvec(u), u @ A) < 1e-12
    c64 = FFTOperator(prob, spectra="complex64")
    assert c64.Hc.dtype == np.complex64 and c64.nbytes * 2 == full.nbytes
    assert 1e-12 < _rel(c64.matvec(v), A @ v) < 1e-6
    f32 = FFTOperator(prob, dtype=np.float32)
    assert f32.spectra == "complex64" and f32.matvec(v).dtype == np.float32
    assert _rel(f32.matvec(v), A @ v) < 1e-5 and _rel(f32.rmatvec(u), u @ A) < 1e-5
    # float32 input to a float64 operator: taken as is, computed in float64
    assert _rel(full.matvec(v.astype(np.float32)), A @ v.astype(np.float32).astype(np.float64)) < 1e-12
    out = np.empty(A.shape[1], dtype=np.float32)
    assert full.rmatvec_into(u, out) is out and _rel(out, u @ A) < 1e-6
    assert full.n_rmatvec == 2


def test_fft_spectra_auto_threshold_and_errors(monkeypatch):
    prob = _problem()
    assert FFTOperator(prob).spectra == "complex128"
    monkeypatch.setattr(ops, "SPECTRA_AUTO_MAX_BYTES", 1)
    assert FFTOperator(prob).spectra == "complex64"
    with pytest.raises(ValueError, match="spectra must be one of"):
        FFTOperator(prob, spectra="float16")
    with pytest.raises(ValueError, match="out must be"):
        FFTOperator(prob).rmatvec_into(np.ones(prob.n_data), np.empty(3))


def test_fft_memory_half_of_all_phases():
    # the paper layout (k = 3): 2 complex + 2 real spectra per depth row instead of 6 complex
    prob = gb.Problem.paper(40)
    op = FFTOperator(prob, spectra="complex128")
    F = op.nfft // 2 + 1
    assert op.nbytes == 40 * F * (2 * 16 + 2 * 8)


def test_cgls_float32_vectors_close_to_float64():
    prob = gb.Problem.paper(60)
    rho = sr.block_model(prob.shape)
    op = prob.operator("fft")
    g, sigma = sr._data(prob, op, rho)
    r64 = cgls.refine(op, g, sigma=sigma)
    r32 = cgls.refine(op, g, sigma=sigma, dtype="float32")
    assert r32.x.dtype == np.float32 and r32.info["dtype"] == "float32"
    assert r32.niter == r64.niter and r64.status == "discrepancy"
    assert _rel(r32.x.astype(np.float64), r64.x) < 1e-3
    # lsqr on the dense matrix (SciPy) as the outside reference at the same iteration count
    from scipy.sparse.linalg import lsqr

    ref = lsqr(op.todense() / sigma[:, None], g / sigma, iter_lim=r64.niter, atol=0, btol=0, conlim=0)[0]
    assert _rel(r64.x, ref) < 1e-6
    with pytest.raises(ValueError, match="dtype must be"):
        cgls.refine(op, g, sigma=sigma, dtype="int8")


def test_exponent_fit_and_stop_rule():
    ns = [100, 200, 400, 800]
    assert sr.fit_exponent(ns, [0.01 * (n / 100) ** 2.5 for n in ns]) == pytest.approx(2.5)
    assert sr.fit_exponent(ns, [0.001, 0.002, 0.0, None]) is None      # below the fit floor
    assert sr.fit_exponent(ns[:2], [1.0, 4.0]) is None                  # fewer than 3 points
    ok = lambda n, s, mb=10.0: {"n": n, "status": "ok", "seconds": s, "added_rss_mb": mb}  # noqa: E731
    assert sr._stop_reason([ok(100, 1.0), ok(200, 2.0)], 400, 20.0, 4096.0) is None
    assert "took" in sr._stop_reason([ok(100, 25.0)], 200, 20.0, 4096.0)
    assert "added" in sr._stop_reason([ok(100, 1.0, 5000.0)], 200, 20.0, 4096.0)
    why = sr._stop_reason([ok(100, 1.0), ok(200, 8.0)], 400, 20.0, 4096.0)   # n^3: 64 s predicted
    assert why.startswith("predicted")
    # RSS growth read from values below the floor (noise) is not extrapolated: n^2 from the last size
    assert sr._stop_reason([ok(200, 0.3, 0.1), ok(400, 1.7, 50.0)], 1000, 20.0, 4096.0) is None
    assert "hard time limit" in sr._stop_reason([{"n": 100, "status": "timeout"}], 200, 20.0, 4096.0)


def test_run_case_record_and_report(tmp_path):
    rec = sr.run_case("refiner", "cgls", 20)
    assert rec["status"] == "ok" and rec["n_matvec"] >= 2 and rec["operator"] in ("dense", "fft")
    assert rec["added_rss_mb"] >= 0 and 0.5 < rec["chi2"] < 1.5
    skip = sr.run_case("provider", "cnn", 20)
    assert skip["status"] == "skipped" and "NoWeightsError" in skip["reason"]
    (tmp_path / "scaling.jsonl").write_text("\n".join(json.dumps(r) for r in (rec, skip)) + "\n{cut")
    md, js, png = sr.write(tmp_path, sizes=[20])
    text = md.read_text()
    assert "| cgls | refiner |" in text and "skip" in text and png.exists()
    data = json.loads(js.read_text())
    assert {m["method"] for m in data["methods"]} == {"cgls", "cnn"}


def _no_load(n, samples, noise, seed):
    raise AssertionError("a case beyond its limit must not load its test set")


def test_compare_skips_cases_past_the_scaling_limit(tmp_path):
    from gravbench.bench.cases import Case
    from gravbench.bench.runner import Toolkit, run_case

    summ = {"methods": [
        {"kind": "refiner", "method": "tikhonov", "by_n": {"50": {"status": "ok"}, "100": {"status": "stopped"}}},
        {"kind": "refiner", "method": "cgls", "by_n": {"50": {"status": "ok"}, "100": {"status": "ok"}}},
        {"kind": "provider", "method": "cnn", "by_n": {"50": {"status": "ok"}, "200": {"status": "skipped"}}},
        # no weights at 100 and 200, then stopped by the budget: 100 and 200 keep their own (no-weights) reason
        {"kind": "provider", "method": "unet", "by_n": {"50": {"status": "ok"}, "100": {"status": "skipped"},
                                                        "200": {"status": "skipped"},
                                                        "2000": {"status": "stopped"}}}]}
    path = tmp_path / "scaling.json"
    path.write_text(json.dumps(summ))
    lim = sr.limits(path)
    assert lim == (("provider", "unet", 200), ("refiner", "tikhonov", 50))  # cnn, cgls: no limit
    assert sr.limits(tmp_path / "missing.json") == ()
    tk = Toolkit(load=_no_load, limits=lim)
    rec = run_case(Case(n=400, noise=0.01, model=0, provider="zero", refiner="tikhonov", seed=0, samples=1), tk)
    assert rec["status"] == "skipped" and "stopped it above n = 50" in rec["reason"]
    assert rec["seconds"] is None and rec["error"] is None


def test_cli_report_scaling_bad_options(capsys):
    from gravbench.cli import main

    assert main(["report", "scaling", "--n", "2"]) == 2
    assert main(["report", "scaling", "--cgls-only"]) == 2
    assert main(["report", "scaling", "--methods", "no-such-method", "--n", "20", "--out", "/tmp/x-scaling-cli"]) == 2
    err = capsys.readouterr().err
    assert "--n and --cgls sizes must be >= 4" in err and "unknown names" in err
