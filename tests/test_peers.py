"""SimPEG peers: skipped cleanly without SimPEG, equal to a direct SimPEG run with it."""

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import gravbench as gb
from gravbench.providers import peers

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_simpeg(monkeypatch):
    """Simulate an installation without SimPEG (find_spec finds nothing, imports fail)."""
    real = importlib.util.find_spec

    def fake(name, *a, **k):
        if name.split(".")[0] in ("simpeg", "discretize"):
            return None
        return real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    for mod in [m for m in sys.modules if m.split(".")[0] in ("simpeg", "discretize")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "simpeg", None)
    monkeypatch.setitem(sys.modules, "discretize", None)


def test_peers_skip_cleanly_without_simpeg(no_simpeg):
    assert not peers.simpeg_available()
    for cls in (peers.SimPEGL2, peers.SimPEGSparse):
        with pytest.raises(ImportError, match=r"gravbench\[peers\]"):
            cls()
    from gravbench.bench.cases import default_providers

    assert not set(peers.PEER_NAMES) & set(default_providers())
    assert {"smooth", "sparse", "compact"} <= set(default_providers())


def test_entry_points_declared_and_core_never_imports_simpeg():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    eps = meta["project"]["entry-points"]["gravbench.providers"]
    assert set(eps) == set(peers.PEER_NAMES)
    for target in eps.values():
        mod, attr = target.split(":")
        assert hasattr(importlib.import_module(mod), attr)
    assert "simpeg" in meta["project"]["optional-dependencies"]["peers"][0]
    code = ("import sys, gravbench, gravbench.providers as p, gravbench.refiners as r, gravbench.bench.cases as c; "
            "p.names(); r.names(); c.default_providers(); "
            "print(any(m.split('.')[0] in ('simpeg', 'discretize', 'torch') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""}, check=True)
    assert out.stdout.strip() == "False"


def _case(n=8):
    prob = gb.Problem.paper(n=n)
    rho = np.zeros(prob.shape)
    rho[2:5, 2:5] = 400.0
    rho[4:7, 5:7] = -200.0
    g0 = prob.forward(rho)
    m = prob.survey.m
    sigma = np.r_[np.full(m, 0.01 * np.abs(g0[:m]).max()), np.full(m, 0.01 * np.abs(g0[m:]).max())]
    g = g0 + sigma * np.random.default_rng(1).standard_normal(g0.size)
    return prob, rho, g, sigma


def test_simpeg_forward_on_the_equivalent_mesh_matches_gravbench():
    pytest.importorskip("simpeg")
    from simpeg import maps
    from simpeg.potential_fields import gravity

    prob, rho, g, sigma = _case()
    mesh, survey = peers.build_simpeg_problem(prob)
    sim = gravity.simulation.Simulation3DIntegral(mesh=mesh, survey=survey(), rhoMap=maps.IdentityMap(nP=mesh.n_cells),
                                                  engine="choclo")
    d = sim.dpred(peers.to_simpeg_model(rho, prob.shape))
    ours = peers.to_simpeg_data(prob.forward(rho), prob.survey.m)
    np.testing.assert_allclose(d, ours, rtol=0, atol=1e-6 * np.abs(ours).max())
    np.testing.assert_array_equal(peers.from_simpeg_model(peers.to_simpeg_model(rho, prob.shape), prob.shape), rho)


def _direct_l2(prob, g, sigma):
    """SimPEG L2 written out directly (own mesh, own conversions), the recipe of ``simpeg-l2``."""
    import discretize
    from simpeg import (data, data_misfit, directives, inverse_problem, inversion, maps, optimization,
                        regularization)
    from simpeg.potential_fields import gravity

    grid, sv = prob.grid, prob.survey
    L = 1e4 * np.hypot(grid.width, grid.depth)
    mesh = discretize.TensorMesh([np.diff(grid.x_edges), [2 * L], np.diff(grid.z_edges)[::-1]],
                                 origin=[grid.x_edges[0], -L, -grid.z_edges[-1]])
    rx = gravity.receivers.Point(np.c_[sv.x, np.zeros(sv.m), -sv.z], components=["gx", "gz"])
    survey = gravity.survey.Survey(gravity.sources.SourceField(receiver_list=[rx]))
    sim = gravity.simulation.Simulation3DIntegral(mesh=mesh, survey=survey, rhoMap=maps.IdentityMap(nP=mesh.n_cells),
                                                  engine="choclo", store_sensitivities="ram",
                                                  sensitivity_dtype=np.float64)
    m = sv.m
    dobs = np.column_stack([g[:m], -g[m:]]).ravel()
    std = np.column_stack([sigma[:m], sigma[m:]]).ravel()
    dmis = data_misfit.L2DataMisfit(data=data.Data(survey, dobs=dobs, standard_deviation=std), simulation=sim)
    reg = regularization.WeightedLeastSquares(mesh, objfcts=[
        regularization.Smallness(mesh), regularization.SmoothnessFirstOrder(mesh, orientation="x"),
        regularization.SmoothnessFirstOrder(mesh, orientation="z")])
    st = peers.SimPEGL2.SETTINGS
    opt = optimization.ProjectedGNCG(cg_maxiter=st["cg_maxiter"], cg_rtol=st["cg_rtol"])
    opt.maxIter = st["max_iter"]
    opt.maxIterLS = 20
    inv = inversion.BaseInversion(inverse_problem.BaseInvProblem(dmis, reg, opt), directiveList=[
        directives.UpdateSensitivityWeights(every_iteration=False),
        directives.BetaEstimate_ByEig(beta0_ratio=st["beta0_ratio"], random_seed=0),
        directives.BetaSchedule(coolingFactor=st["cooling_factor"], coolingRate=1),
        directives.TargetMisfit(chifact=1.0), directives.UpdatePreconditioner()])
    mrec = inv.run(np.zeros(mesh.n_cells))
    return mrec.reshape(grid.nz, grid.nx)[::-1] * 1e3


@pytest.mark.slow  # ~35 s on a loaded 2-core machine (SimPEG import and two inversions)
def test_simpeg_l2_provider_agrees_with_direct_simpeg_run(capsys):
    pytest.importorskip("simpeg")
    prob, rho, g, sigma = _case()
    ours = gb.providers.get("simpeg-l2")(g, prob, sigma=sigma, seed=0) if "simpeg-l2" in gb.providers.names() \
        else peers.SimPEGL2()(g, prob, sigma=sigma, seed=0)
    direct = _direct_l2(prob, g, sigma)
    np.testing.assert_allclose(ours, direct, rtol=0, atol=1e-6 * np.abs(direct).max())
    # and it fits the data to the target like the direct run
    chi2 = np.mean(((prob.forward(ours) - g) / sigma) ** 2)
    assert chi2 < 1.2


@pytest.mark.slow
def test_simpeg_sparse_provider_runs_and_records_settings():
    pytest.importorskip("simpeg")
    prob, rho, g, sigma = _case()
    p = peers.SimPEGSparse(max_irls_iterations=5)
    x = p(g, prob, sigma=sigma)
    assert x.shape == prob.shape and np.all(np.isfinite(x))
    assert p.settings["norms"] == [0.0, 1.0, 1.0] and p.settings["max_irls_iterations"] == 5
    assert p.last["chi2"] < 2.0
    with pytest.raises(ValueError, match="unknown setting"):
        peers.SimPEGSparse(colour=1)
    with pytest.raises(ValueError, match="sigma"):
        p(g, prob)
