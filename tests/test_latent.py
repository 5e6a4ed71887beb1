"""VAE / GAN training, latent search (Adam, Gauss-Newton fd/autodiff, DE) and the vae/gan providers.

Tiny grids (n = 12) and tiny latent sizes keep every test at about a second.
"""

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gravbench as gb  # noqa: E402
from gravbench.providers import NoWeightsError  # noqa: E402

N = 12
OPTS = {"latent": 4, "channels": (8, 4)}


def _models(count, n=N, seed=0):
    """Random rectangles in a zero background, kg/m^3 (independent of gravbench.data)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((count, n, n), np.float32)
    for k in range(count):
        for _ in range(rng.integers(1, 3)):
            z0, x0 = rng.integers(0, n - 3, 2)
            h, w = rng.integers(2, n // 2, 2)
            out[k, z0:z0 + h, x0:x0 + w] = rng.choice([-1, 1]) * rng.uniform(100, 800)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from gravbench.providers import gan, vae

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("latent")
    rho = _models(96)
    mv = vae.train(rho, epochs=2, batch_size=16, lr=2e-3, seed=0, out=d / "vae-12.pt", progress=False, **OPTS)
    mg = gan.train(rho, epochs=2, batch_size=16, lr=2e-4, seed=0, out=d / "gan-12.pt", progress=False,
                   proj_steps=5, proj_models=8, **OPTS)
    return {"dir": d, "vae": mv, "gan": mg, "rho": rho}


@pytest.fixture(scope="module")
def problem():
    return gb.Problem.paper(n=N)


def _data(problem, seed=5):
    rho = _models(1, seed=seed)[0].astype(np.float64)
    g = problem.forward(rho)
    sigma = 0.01 * np.abs(g).max()
    g = g + sigma * np.random.default_rng(seed).standard_normal(g.shape)
    return g, sigma


def _chi(gen, layer, g, sigma, z):
    with torch.no_grad():
        r = (layer(gen(torch.as_tensor(z, dtype=torch.float32))).double().numpy() - g) / sigma
    return np.sqrt(np.mean(r ** 2, axis=1))


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_training_writes_verified_weights_and_manifest(trained, kind):
    from gravbench.providers._torchutil import sha256_file

    man = trained[kind]
    path = trained["dir"] / f"{kind}-12.pt"
    on_disk = json.loads(path.with_suffix(".json").read_text())
    assert on_disk["sha256"] == sha256_file(path) == man["sha256"]
    assert on_disk["command"].startswith(f"gravbench train {kind} ")
    assert "-o latent=4" in on_disk["command"] and "--seed 0" in on_disk["command"]
    assert on_disk["config"]["shape"] == [N, N] and on_disk["config"]["latent"] == 4
    assert on_disk["metrics"]["epochs_run"] == 2 and len(on_disk["history"]) == 2
    assert on_disk["config"]["lo"] < 0 < on_disk["config"]["hi"]  # bounds from the training set
    for v in on_disk["metrics"].values():
        if isinstance(v, float):
            assert np.isfinite(v)


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_training_is_seeded_and_resumable(tmp_path, kind):
    from gravbench.providers import gan, vae

    mod = {"vae": vae, "gan": gan}[kind]
    extra = {"proj_steps": 3, "proj_models": 4} if kind == "gan" else {}
    rho = _models(40)
    a = mod.train(rho, epochs=2, batch_size=16, seed=3, out=tmp_path / "a.pt", progress=False, **OPTS, **extra)
    b = mod.train(rho, epochs=2, batch_size=16, seed=3, out=tmp_path / "b.pt", progress=False, **OPTS, **extra)
    sa = torch.load(tmp_path / "a.pt", weights_only=True)
    sb = torch.load(tmp_path / "b.pt", weights_only=True)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)  # same seed, same weights
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])
    # one epoch, then resume to two: same history length and a loadable result
    mod.train(rho, epochs=1, batch_size=16, seed=3, out=tmp_path / "c.pt", progress=False, **OPTS, **extra)
    c = mod.train(rho, epochs=2, batch_size=16, seed=3, out=tmp_path / "c.pt", resume=True, progress=False,
                  **OPTS, **extra)
    assert c["metrics"]["epochs_run"] == 2 and len(c["history"]) == 2
    with pytest.raises(ValueError, match="resume"):
        mod.train(rho, epochs=1, batch_size=16, seed=3, out=tmp_path / "nope.pt", resume=True, progress=False,
                  **OPTS, **extra)


def test_training_rejects_bad_options():
    from gravbench.providers import vae

    with pytest.raises(ValueError, match="unknown model option"):
        vae.train(_models(20), epochs=1, batch_size=8, seed=0, progress=False, out="/nonexistent/x.pt", wings=3)
    with pytest.raises(ValueError, match="latent"):
        vae.train(_models(20), epochs=1, batch_size=8, seed=0, progress=False, out="/nonexistent/x.pt", latent=0)


# ----------------------------------------------------------------------------- weights


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_tampered_weights_fail_clearly(trained, tmp_path, kind):
    from gravbench.providers.latent import load_generator

    src = trained["dir"] / f"{kind}-12.pt"
    dst = tmp_path / f"{kind}-12.pt"
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    load_generator(kind, (N, N), dst)  # intact copy loads
    raw = bytearray(dst.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    dst.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="sha256"):
        load_generator(kind, (N, N), dst)
    p = gb.providers.get(kind, weights=dst)
    with pytest.raises(ValueError, match="integrity"):
        p(np.zeros(6 * N), gb.Problem.paper(n=N))


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_grid_without_weights_names_available_grids(trained, kind):
    from gravbench.providers.latent import available_grids

    have = available_grids(kind)
    with pytest.raises(NoWeightsError) as exc:
        gb.providers.get(kind, n=13)
    msg = str(exc.value)
    assert "13x13" in msg and f"gravbench train {kind}" in msg
    for nz, nx in have:
        assert f"{nz}x{nx}" in msg
    assert "--dataset <a training set of 13x13 models>" in msg  # no standard set has that grid
    # a grid with a standard set names it (paper-25 has no shipped generator)
    with pytest.raises(NoWeightsError, match=f"gravbench train {kind} --dataset paper-25"):
        gb.providers.get(kind, n=25)
    # a weights file for another grid is refused for this problem
    p = gb.providers.get(kind, weights=trained["dir"] / f"{kind}-12.pt")
    prob10 = gb.Problem.paper(n=10)
    with pytest.raises(NoWeightsError, match="12x12"):
        p(np.zeros(prob10.n_data), prob10)


@pytest.mark.parametrize("kind", ["vae", "gan"])
@pytest.mark.parametrize("n, dataset", [(50, "paper-50"), (51, "fwi-51")])
def test_shipped_weights_load_and_generate_in_bounds(kind, n, dataset):
    from gravbench.providers.latent import available_grids, load_generator

    assert (n, n) in available_grids(kind)
    gen, man, _ = load_generator(kind, (n, n))
    assert man["dataset"] == dataset and man["command"].startswith(f"gravbench train {kind} --dataset {dataset} ")
    assert "--out" not in man["command"] and man["reproduce"] == man["command"]
    with torch.no_grad():
        rho = gen(torch.randn(4, gen.latent, generator=torch.Generator().manual_seed(0)))
    assert rho.shape == (4, n, n)
    assert float(rho.min()) >= man["config"]["lo"] - 1e-3 and float(rho.max()) <= man["config"]["hi"] + 1e-3


# ----------------------------------------------------------------------------- search


@pytest.mark.parametrize("kind", ["vae", "gan"])
@pytest.mark.parametrize("method", ["adam", "gn-fd", "gn-autodiff", "de"])
def test_every_method_reduces_the_data_misfit(trained, problem, kind, method):
    from gravbench.forward.torch import GravityLayer
    from gravbench.providers.latent import load_generator, search

    gen, _, _ = load_generator(kind, (N, N), trained["dir"] / f"{kind}-12.pt")
    layer = GravityLayer(problem, dtype=torch.float32)
    g, sigma = _data(problem)
    z0 = torch.randn(3, gen.latent, generator=torch.Generator().manual_seed(1)).numpy()
    chi0 = _chi(gen, layer, g, sigma, z0)
    kw = {"maxiter": 40} if method == "adam" else {"maxiter": 8} if method.startswith("gn") else {"max_evals": 600}
    res = search(gen, layer, g, sigma, method=method, z0=None if method == "de" else z0, starts=3, seed=1,
                 target=None, **kw)
    chi1 = _chi(gen, layer, g, sigma, res.z)
    np.testing.assert_allclose(chi1, res.chi, rtol=1e-4)  # reported misfit is the true one
    if method == "de":
        assert res.chi.max() < np.median(chi0)
    else:
        assert np.all(res.chi < chi0)
    assert np.all(res.forward > 0)
    if method == "adam":
        assert np.all(res.derivs == 40) and np.all(res.forward == 41)
    elif method == "gn-fd":  # 2 latent runs per Jacobian + >= 1 line-search trial per iteration + the start
        assert np.all(res.derivs == 0) and np.all(res.forward >= 1 + res.niter * (2 * 4 + 1))
    elif method == "gn-autodiff":  # latent tangents per Jacobian
        assert np.all(res.derivs == res.niter * 4) and np.all(res.forward >= 1 + res.niter)


def test_target_stops_each_start(trained, problem):
    from gravbench.forward.torch import GravityLayer
    from gravbench.providers.latent import load_generator, search

    gen, _, _ = load_generator("vae", (N, N), trained["dir"] / "vae-12.pt")
    layer = GravityLayer(problem, dtype=torch.float32)
    g, sigma = _data(problem)
    z0 = torch.randn(4, gen.latent, generator=torch.Generator().manual_seed(2)).numpy()
    chi0 = _chi(gen, layer, g, sigma, z0)
    target = float(np.min(chi0)) * 0.9
    res = search(gen, layer, g, sigma, method="adam", z0=z0, target=target, maxiter=300)
    ok = ~np.isnan(res.reached)
    assert ok.any()
    assert np.all(res.chi[ok] <= target)
    np.testing.assert_array_equal(res.reached[ok], res.evals[ok])  # stopped as soon as it fitted
    assert np.all(res.niter[ok] < 300)


def test_autodiff_jacobian_matches_central_differences(trained, problem):
    from gravbench.forward.torch import GravityLayer
    from gravbench.providers.latent import _jacobian, _Misfit, load_generator

    gen, _, _ = load_generator("gan", (N, N), trained["dir"] / "gan-12.pt")
    gen = gen.double()
    layer = GravityLayer(problem, dtype=torch.float64)
    g, sigma = _data(problem)
    mis = _Misfit(gen, layer, g, np.full_like(g, 1 / sigma))
    mis.g, mis.w = mis.g.double(), mis.w.double()
    z = torch.randn(2, gen.latent, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    r_a, J_a, _, _ = _jacobian(mis, z, "autodiff", None)
    r_f, J_f, _, _ = _jacobian(mis, z, "fd", 1e-5)
    np.testing.assert_allclose(r_a.numpy(), r_f.numpy(), rtol=1e-12)
    np.testing.assert_allclose(J_a.numpy(), J_f.numpy(), rtol=1e-5, atol=1e-6 * float(J_a.abs().max()))


def test_de_evaluates_each_population_as_one_batch(trained, problem, monkeypatch):
    from gravbench.forward.torch import GravityLayer
    from gravbench.providers.latent import load_generator, search

    gen, _, _ = load_generator("vae", (N, N), trained["dir"] / "vae-12.pt")
    sizes = []
    orig = type(gen).forward

    def spy(self, z):
        sizes.append(z.shape[0])
        return orig(self, z)

    monkeypatch.setattr(type(gen), "forward", spy)
    g, sigma = _data(problem)
    res = search(gen, GravityLayer(problem, dtype=torch.float32), g, sigma, method="de", starts=1, seed=0,
                 popsize=5, maxiter=6, target=None)
    pop = 5 * gen.latent
    assert sizes and all(s == pop for s in sizes)
    assert len(sizes) == res.niter[0] + 1  # initial population + one batch per generation
    assert res.forward[0] == sum(sizes)


@pytest.mark.parametrize("kind", ["vae", "gan"])
def test_provider_is_deterministic_under_a_seed(trained, problem, kind):
    p = gb.providers.get(kind, weights=trained["dir"] / f"{kind}-12.pt", starts=3, maxiter=15)
    g, sigma = _data(problem)
    a = p(g, problem, sigma=sigma, seed=4)
    b = p(g, problem, sigma=sigma, seed=4)
    c = p(g, problem, sigma=sigma, seed=5)
    assert a.shape == (N, N) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    B = p.batch(np.stack([g, g]), problem, sigma=sigma, seed=4)
    np.testing.assert_array_equal(B[0], a)
    assert p.info.learned and p.info.grids == ((N, N),)


def test_warm_start_from_cnn(trained, problem):
    """The warm start projects the CNN's model into the latent space before fitting the data."""
    from gravbench.providers import base, latent

    truth = _models(1, seed=5)[0].astype(np.float64)

    class FakeCNN(base.Provider):
        name = "fake-cnn"

        def _single(self, g, problem, sigma, seed):
            return truth

    p = gb.providers.get("vae", weights=trained["dir"] / "vae-12.pt", warm_start="cnn", method="adam", starts=1,
                         maxiter=20, warm_steps=60, target=None)
    p._cnn = FakeCNN()  # stands in for the trained CNN provider
    g, sigma = _data(problem)
    zw = p.warm_z(g, problem, sigma, 0)
    gen, _, _ = latent.load_generator("vae", (N, N), trained["dir"] / "vae-12.pt")
    with torch.no_grad():
        near = gen(torch.as_tensor(zw[None])).double().numpy()[0]
        rand = gen(torch.randn(16, gen.latent, generator=torch.Generator().manual_seed(0))).double().numpy()
    d_warm = np.linalg.norm(near - truth)
    d_rand = np.linalg.norm(rand - truth, axis=(1, 2))
    assert d_warm <= d_rand.min()
    res = p.run(g, problem, sigma, 0)
    assert res.chi.shape == (1,) and res.forward[0] == 21
    with pytest.raises(ValueError, match="warm_start"):
        gb.providers.get("vae", weights=trained["dir"] / "vae-12.pt", warm_start="tikhonov")


def test_bad_inputs(trained, problem):
    from gravbench.forward.torch import GravityLayer
    from gravbench.providers.latent import load_generator, search

    with pytest.raises(ValueError, match="method"):
        gb.providers.get("vae", weights=trained["dir"] / "vae-12.pt", method="lbfgs")
    with pytest.raises(ValueError, match="starts"):
        gb.providers.get("gan", weights=trained["dir"] / "gan-12.pt", starts=0)
    gen, _, _ = load_generator("vae", (N, N), trained["dir"] / "vae-12.pt")
    layer = GravityLayer(problem, dtype=torch.float32)
    with pytest.raises(ValueError, match="g must have shape"):
        search(gen, layer, np.zeros(5))
    with pytest.raises(ValueError, match="sigma"):
        search(gen, layer, np.zeros(problem.n_data), sigma=-1.0)
    with pytest.raises(ValueError, match="z0"):
        search(gen, layer, np.zeros(problem.n_data), z0=np.zeros((2, 3)))
    p = gb.providers.get("vae", weights=trained["dir"] / "vae-12.pt")
    with pytest.raises(ValueError, match="shape"):
        p(np.zeros(7), problem)


def test_restart_chains_pay_for_failed_starts():
    """The derived restart-until-success searches of the report add up the recorded starts correctly."""
    from gravbench.reports.latent import _restart_chains, _summ

    def row(chi, evals, reached):
        return {"model": 0, "family": "x", "chi": chi, "evals": evals, "forward": evals, "derivs": 0,
                "reached": reached, "seconds": 1.0, "model_error": 0.5}

    rows = [row(3.0, 400, float("nan")), row(1.0, 300, 300.0), row(2.0, 9_500, float("nan"))]
    chains = _restart_chains(rows, budget=1_000)
    assert [c["reached"] for c in chains[:2]] == [700.0, 300.0]  # 400 wasted, then success at 300
    # the third chain starts with a 9,500-evaluation failure: over budget before its next start
    assert np.isnan(chains[2]["reached"]) and chains[2]["evals"] == 9_500
    s = _summ(chains, 1_000, 1.1)
    assert s["success_within_budget"] == pytest.approx(2 / 3)


def test_analysis_names_the_best_random_start_method_beside_the_warm_start():
    """When the CNN warm start is the best row, the goal line also gives the best search without the CNN."""
    from gravbench.reports.latent import _analysis, _summ

    def row(model, chi, reached):
        return {"model": model, "family": "x", "chi": chi, "ok": chi == 1.0, "evals": 500, "forward": 500,
                "derivs": 0, "reached": reached, "seconds": 1.0, "model_error": 0.5, "n_data": 300}

    rows = {"warm": [row(0, 1.0, 100.0), row(1, 1.0, 100.0)],  # 2 of 2
            "gn-damped": [row(0, 1.0, 200.0), row(1, 3.0, float("nan")), row(0, 1.0, 200.0),
                          row(1, 1.0, 300.0)]}  # 3 of 4
    G = {"summary": {m: _summ(r, 10_000) for m, r in rows.items()}, "rows": rows, "quality": []}
    A = _analysis(G, [(0, "x"), (1, "x")], {"budget": 10_000}, 300)
    assert (A["best"], A["best_rate"], A["best_searches"]) == ("warm", 1.0, 2)
    assert (A["best_cold"], A["best_cold_rate"], A["best_cold_searches"]) == ("gn-damped", 0.75, 4)
    assert [f["model"] for f in A["failing"]] == []  # the best row fails on no model
    A2 = _analysis({**G, "summary": {"gn-damped": G["summary"]["gn-damped"]}}, [(0, "x"), (1, "x")],
                   {"budget": 10_000}, 300)
    assert A2["best"] == "gn-damped" and [f["model"] for f in A2["failing"]] == [1]


def test_gn_full_steps_take_every_step_and_stop_at_a_fixed_point(trained, problem):
    """linesearch=0 takes the full Gauss-Newton step even when it raises the objective (Laloy's scheme);
    tol stops a start at a fixed point; the step count matches the forward runs (2 latent + 1 per iteration)."""
    from gravbench.providers.latent import _gauss_newton, _Misfit, load_generator

    gen, _, _ = load_generator("vae", weights=trained["dir"] / "vae-12.pt")
    from gravbench.forward.torch import GravityLayer

    layer = GravityLayer(problem, dtype=torch.float32)
    g, sigma = _data(problem)
    mis = _Misfit(gen, layer, g, np.full(g.shape, 1.0 / sigma))
    z0 = torch.as_tensor(np.random.default_rng(0).standard_normal((3, gen.latent)) * 3, dtype=torch.float32)
    out = _gauss_newton(mis, z0.clone(), mode="fd", lam=1.0, maxiter=5, target=None, h=0.25, linesearch=0)
    z, chi, fwd, der, reached, secs, niter, hist = out
    d = gen.latent
    assert list(niter) == [5, 5, 5] and list(fwd) == [1 + 5 * (2 * d + 1)] * 3 and not der.any()
    # one full step by hand from z0 reproduces the first iterate
    one = _gauss_newton(mis, z0.clone(), mode="fd", lam=1.0, maxiter=1, target=None, h=0.25, linesearch=0)[0]
    with torch.no_grad():
        r = mis(z0)
        eye = torch.eye(d, dtype=z0.dtype)
        J = ((mis((z0[:, None, :] + 0.25 * eye).reshape(-1, d)) - mis((z0[:, None, :] - 0.25 * eye).reshape(-1, d)))
             .reshape(3, d, -1) / 0.5).transpose(1, 2).double()
    H = J.transpose(1, 2) @ J + torch.eye(d, dtype=torch.float64)
    dz = -torch.linalg.solve(H, J.transpose(1, 2) @ r.double()[..., None] + z0.double()[..., None])[..., 0]
    assert np.allclose(one.numpy(), (z0.double() + dz).numpy(), atol=1e-4)
    # a huge tol stops every start after its first step
    out = _gauss_newton(mis, z0.clone(), mode="fd", lam=1.0, maxiter=5, target=None, h=0.25, linesearch=0, tol=1e9)
    assert list(out[6]) == [1, 1, 1]


def test_latent_report_quick_resumes_and_assembles(tmp_path):
    """The quick report runs, records every unit in a JSONL, a rerun runs nothing, assemble-only writes the report."""
    import gravbench.reports.latent as rl
    from gravbench.metrics import is_success

    settings = {"methods": ("gn-laloy", "gn-autodiff", "de"), "n_models": 2}
    lines = []
    md, js, figs = rl.run(tmp_path, quick=True, log=lines.append, kinds=("vae",), settings=settings, threads=1)
    recs = [json.loads(x) for x in (tmp_path / "latent-vae.jsonl").read_text().splitlines()]
    assert len(recs) == 1 + 2 * 2 + 1  # quality, 2 gradient methods x 2 models, 1 DE run
    doc = json.loads(js.read_text())
    G = doc["generators"]["vae"]
    assert not G["missing_units"] and {"gn-laloy", "gn-autodiff", "de", "gn-laloy+restart"} <= set(G["summary"])
    for rows in G["rows"].values():  # success is the one rule
        for r in rows:
            assert r["ok"] == is_success(r["chi"] ** 2, r["n_data"])
    # the two gradient methods start from the same z0
    z0 = {m: [u for u in recs if u.get("unit") == m][0]["rows"] for m in ("gn-laloy", "gn-autodiff")}
    assert len(z0["gn-laloy"]) == len(z0["gn-autodiff"]) == rl.QUICK["starts"]
    assert G["quality"] and all(q["recon_error"] is not None for q in G["quality"])
    text = md.read_text()
    assert "is_success" in text and "strategy_2.py" in text and "576 data" in text and "<= 1.1`" not in text
    lines.clear()
    rl.run(tmp_path, quick=True, log=lines.append, kinds=("vae",), settings=settings, threads=1)
    assert any("0 to run" in s for s in lines)
    assert len((tmp_path / "latent-vae.jsonl").read_text().splitlines()) == len(recs)
    lines.clear()
    rl.run(tmp_path, quick=True, log=lines.append, kinds=("vae",), settings={**settings, "n_models": 3},
           assemble_only=True)
    doc = json.loads(js.read_text())
    assert doc["generators"]["vae"]["missing_units"]  # the third model was never run
    assert len((tmp_path / "latent-vae.jsonl").read_text().splitlines()) == len(recs)


def test_latent_report_on_another_data_set_names_its_files(tmp_path):
    """dataset= searches that set's test split and names every file after it; the paper-50 files are untouched."""
    import gravbench.reports.latent as rl
    from gravbench.metrics import success_band
    from gravbench.providers import vae

    torch.set_num_threads(1)
    w = tmp_path / "w" / "vae-16.pt"
    vae.train(_models(64, n=16), epochs=1, batch_size=16, lr=2e-3, seed=0, out=w, progress=False, **OPTS)
    settings = {"methods": ("gn-autodiff",), "n_models": 1}
    md, js, figs = rl.run(tmp_path, quick=True, log=lambda s: None, kinds=("vae",), settings=settings, threads=1,
                          weights={"vae": w}, dataset="small-16")
    assert md.name == "latent-small-16.md" and js.name == "latent-small-16.json"
    assert (tmp_path / "latent-small-16-vae.jsonl").exists() and not (tmp_path / "latent-vae.jsonl").exists()
    assert figs and all(p.name.startswith("latent-small-16-") for p in figs)
    doc = json.loads(js.read_text())
    n_data = gb.data.standard("small-16", split="test", progress=False).problem.n_data
    assert doc["dataset"] == "small-16" and doc["n_data"] == n_data
    text = md.read_text()
    lo, hi = success_band(n_data)
    assert "`gravbench report latent --dataset small-16`" in text and "`latent-small-16.json`" in text
    assert "`small-16` test split" in text and f"N = {n_data} ({lo:.3f}" in text and "paper-50" not in text
    # the search-free baseline: the training mean model, scored with the same rule
    b = doc["baseline"]
    assert 0 <= b["in_band"] <= 1 and b["median_chi2"] > 0 and "Baseline with no search" in text
    for r in doc["generators"]["vae"]["rows"]["gn-autodiff"]:
        assert r["n_data"] == n_data
