"""Deep image prior provider: start weights, annealing, weighting, discrepancy stop, determinism, bad input."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gravbench as gb  # noqa: E402
from gravbench.metrics import is_success  # noqa: E402

N = 12
SMALL = {"latent": 8, "channels": (16, 8, 4)}


def _scale():
    from gravbench.providers.dip import DEFAULTS

    lo, hi = DEFAULTS["bounds"]
    return 0.5 * (hi - lo)


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    prob = gb.Problem.paper(n=N)
    rho = np.zeros(prob.shape)
    rho[3:7, 4:9] = 400.0
    rho[8:11, 1:3] = -250.0
    g_clean = prob.forward(rho)
    sigma = 0.01 * np.abs(g_clean).max()
    g = g_clean + sigma * np.random.default_rng(0).standard_normal(g_clean.shape)
    return prob, rho, g, sigma


def _chi2(prob, rho, g, sigma):
    return float(np.mean(((prob.forward(rho) - g) / sigma) ** 2))


@pytest.mark.parametrize("m_ref", [0.0, "ramp"])
def test_start_weights_reproduce_the_reference_model(setup, m_ref):
    from gravbench.providers.dip import start_network

    prob = setup[0]
    if m_ref == "ramp":  # a non-constant reference: 200 kg/m^3 at the top falling to -100 at the bottom
        m_ref = np.repeat(np.linspace(200.0, -100.0, N)[:, None], N, axis=1)
    net, z, info = start_network(prob, seed=2, start_steps=2000, start_tol=2e-3, **SMALL)
    with torch.no_grad():
        out = net(z)[0].double().numpy()
    # a freshly initialised network is far from the reference; the start fit brings it within tolerance
    net0, z0, info0 = start_network(prob, seed=2, start="random", **SMALL)
    with torch.no_grad():
        out0 = net0(z0)[0].double().numpy()
    np.testing.assert_array_equal(z.numpy(), z0.numpy())
    if isinstance(m_ref, float):
        assert np.abs(out0 - m_ref).max() > 10.0
        assert np.abs(out - m_ref).max() <= 2e-3 * _scale()
        assert info["error"] == pytest.approx(np.abs(out - m_ref).max(), rel=1e-5)
        assert 0 < info["steps"] < 2000 and info0["steps"] == 0
    else:
        net, z, info = start_network(prob, seed=2, m_ref=m_ref, start_steps=3000, start_tol=5e-3, **SMALL)
        with torch.no_grad():
            out = net(z)[0].double().numpy()
        assert np.abs(out - m_ref).max() <= 5e-3 * _scale()
        assert info["steps"] < 3000


def test_the_fit_starts_at_the_reference_model(setup):
    """The first chi2 of the fit is the reference model's (computed here by the numpy operator)."""
    from gravbench.providers.dip import fit_dip

    prob, rho, g, sigma = setup
    from gravbench.providers.dip import DEFAULTS

    out = fit_dip(prob, g, sigma, maxiter=3, stop=False, seed=0, **SMALL)
    assert 0 < out["start_steps"] <= DEFAULTS["start_steps"]
    assert out["start_error"] <= DEFAULTS["start_tol"] * _scale()
    assert out["history"][0] == pytest.approx(_chi2(prob, np.zeros(prob.shape), g, sigma), rel=1e-3)


def test_annealing_schedule_is_exp_minus_step_over_tau(setup):
    from gravbench.providers.dip import beta_schedule, fit_dip

    prob, rho, g, sigma = setup
    steps = np.arange(50)
    np.testing.assert_allclose(beta_schedule(steps, 20.0), np.exp(-steps / 20.0), rtol=1e-15)
    assert beta_schedule(0, 20.0) == 1.0 and beta_schedule(20, 20.0) == pytest.approx(1 / np.e)
    np.testing.assert_array_equal(beta_schedule(steps, 0.0), 0.0)
    out = fit_dip(prob, g, sigma, maxiter=40, tau=7.0, stop=False, seed=0, **SMALL)
    assert out["niter"] == 40
    np.testing.assert_allclose(out["beta"], np.exp(-np.arange(40) / 7.0), rtol=1e-12)


def test_the_reference_term_holds_the_model_back(setup):
    """With a long tau (beta ~ 1 throughout) the model stays near m_ref; with tau = 0 the data pull it away."""
    from gravbench.providers.dip import fit_dip

    prob, rho, g, sigma = setup
    held = fit_dip(prob, g, sigma, maxiter=60, tau=1e6, stop=False, seed=0, **SMALL)
    free = fit_dip(prob, g, sigma, maxiter=60, tau=0.0, stop=False, seed=0, **SMALL)
    assert np.abs(held["rho"]).mean() < 0.2 * np.abs(free["rho"]).mean()
    assert free["chi2"] < 0.2 * held["chi2"]


def test_discrepancy_stop_ends_the_loop(setup):
    from gravbench.providers.dip import fit_dip

    prob, rho, g, sigma = setup
    out = fit_dip(prob, g, sigma, maxiter=1500, seed=0, **SMALL)
    h = out["history"]
    assert out["converged"] and out["niter"] < 1500 and len(h) == out["niter"] + 1
    assert is_success(h[-1], g.size) and not any(is_success(c, g.size) for c in h[:-1])
    assert h[0] > 10 * h[-1]
    # the reported chi2 is the returned model's, by the numpy forward operator
    assert _chi2(prob, out["rho"], g, sigma) == pytest.approx(h[-1], rel=1e-6)
    assert is_success(_chi2(prob, out["rho"], g, sigma), g.size)
    assert out["n_matvec"] == out["niter"] + 2 and out["n_rmatvec"] == out["niter"] - out["backtracks"]
    assert out["rho"].min() >= -_scale() and out["rho"].max() <= _scale()
    # without the stop the same run goes on to maxiter
    cont = fit_dip(prob, g, sigma, maxiter=out["niter"] + 5, stop=False, seed=0, **SMALL)
    assert not cont["converged"] and cont["niter"] == out["niter"] + 5


def test_bounds_maxiter_and_best_iterate(setup):
    from gravbench.providers.dip import fit_dip

    prob, rho, g, sigma = setup
    out = fit_dip(prob, g, sigma, maxiter=25, stop=False, bounds=(-50.0, 50.0), seed=1, **SMALL)
    assert not out["converged"] and out["niter"] == 25 and out["n_matvec"] == 27
    assert out["rho"].min() >= -50.0 and out["rho"].max() <= 50.0
    assert out["chi2"] == pytest.approx(min(out["history"]), rel=1e-12)


def test_depth_weights_grow_with_depth_and_scale_the_data_gradient(setup):
    from gravbench.providers.dip import _torch_parts, cell_weights

    prob, rho, g, sigma = setup
    w = cell_weights(prob, "depth", 1.0).reshape(prob.shape)
    assert w.mean() == pytest.approx(1.0)
    assert np.all(np.diff(w[:, 0]) > 0) and np.all(w == w[:, :1])
    grid = prob.grid
    zc = grid.z_centers - grid.z_edges[0]
    z0 = zc[0] + float(np.mean(-prob.survey.z))  # half the top cell + the station height (stations at z < 0)
    np.testing.assert_allclose(w[-1, 0] / w[0, 0], (zc[-1] + z0) / (zc[0] + z0))
    s = cell_weights(prob, "sensitivity", 1.0, sigma=np.full(prob.n_data, sigma)).reshape(prob.shape)
    A = prob.sensitivity()
    expect = 1.0 / np.sqrt((A ** 2).sum(axis=0))
    np.testing.assert_allclose(s.ravel(), expect / expect.mean(), rtol=1e-12)
    assert s[-1].mean() > s[0].mean()
    np.testing.assert_array_equal(cell_weights(prob, "none"), 1.0)
    torch_, _ = _torch_parts()
    from gravbench.providers.dip import _LAZY

    x = torch.ones(3, requires_grad=True)
    wt = torch.tensor([1.0, 2.0, 3.0])
    (_LAZY["ScaleGrad"].apply(x, wt) * torch.tensor([5.0, 5.0, 5.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 10.0, 15.0])


def test_dip_is_deterministic_under_a_seed(setup):
    prob, rho, g, sigma = setup
    p = gb.providers.get("dip", maxiter=30, stop=False, **SMALL)
    a = p(g, prob, sigma=sigma, seed=3)
    b = p(g, prob, sigma=sigma, seed=3)
    c = p(g, prob, sigma=sigma, seed=4)
    assert a.shape == prob.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    B = p.batch(np.stack([g, g]), prob, sigma=sigma, seed=3)
    np.testing.assert_array_equal(B[0], a)
    assert p.info.name == "dip" and p.info.grids == () and not p.info.learned


def test_plain_options_and_dropout_run(setup):
    from gravbench.providers.dip import PLAIN, fit_dip

    prob, rho, g, sigma = setup
    out = fit_dip(prob, g, sigma, seed=0, **{**PLAIN, "maxiter": 20, "stop": False, **SMALL})
    assert out["start_steps"] == 0 and np.all(out["beta"] == 0.0)
    calls = []
    d = fit_dip(prob, g, sigma, seed=0, dropout=0.2, maxiter=10, stop=False, progress=lambda *a: calls.append(a),
                **SMALL)
    assert len(calls) == 10 and calls[-1][:2] == (10, 10)
    # the returned model is the network without dropout: its chi2 is the reported one
    assert _chi2(prob, d["rho"], g, sigma) == pytest.approx(d["chi2"], rel=1e-6)


def test_dip_gradient_is_the_adjoint_through_the_network(setup):
    """The torch bridge's backward equals A^T applied to the weighted residual (checked against numpy)."""
    from gravbench.forward.torch import GravityLayer

    prob, rho, g, sigma = setup
    layer = GravityLayer(prob, dtype=torch.float64)
    x = torch.tensor(rho[None], dtype=torch.float64, requires_grad=True)
    r = (layer(x)[0] - torch.as_tensor(g)) / sigma
    (0.5 * r.pow(2).sum()).backward()
    A = prob.sensitivity()
    expect = A.T @ ((A @ rho.ravel() - g) / sigma ** 2)
    np.testing.assert_allclose(x.grad.numpy().ravel(), expect, rtol=1e-10, atol=1e-12 * np.abs(expect).max())


def test_dip_bad_input(setup):
    prob, rho, g, sigma = setup
    with pytest.raises(ValueError, match="bounds"):
        gb.providers.get("dip", bounds=(5.0, 1.0))
    with pytest.raises(ValueError, match="maxiter"):
        gb.providers.get("dip", maxiter=0)
    with pytest.raises(ValueError, match="tau"):
        gb.providers.get("dip", tau=-1.0)
    with pytest.raises(ValueError, match="weighting"):
        gb.providers.get("dip", weighting="sideways")
    with pytest.raises(ValueError, match="unknown dip option"):
        gb.providers.get("dip", learning_rate=0.1)
    with pytest.raises(ValueError, match="dropout"):
        gb.providers.get("dip", dropout=1.0)
    p = gb.providers.get("dip", maxiter=2, **SMALL)
    with pytest.raises(ValueError, match="shape"):
        p(g[:-1], prob)
    with pytest.raises(ValueError, match="sigma"):
        p(g, prob, sigma=-1.0)
    with pytest.raises(ValueError, match="m_ref"):
        gb.providers.get("dip", m_ref=5000.0, maxiter=2, **SMALL)(g, prob, sigma=sigma)


def test_dip_report_writes_tables(tmp_path):
    """The report writer lays out what measure() returns (numbers come from the dict, not the writer)."""
    from gravbench.reports.dip import write

    def piece(err, ok):
        rows = [{"index": i, "model_error": e, "chi2": 1.0 + 0.1 * i, "success": s, "seconds": 2.0}
                for i, (e, s) in enumerate(zip(err, ok))]
        from gravbench.reports.dip import _summary

        return {"summary": _summary(rows), "rows": rows, "load": [1.5, 1.5]}

    res = {"settings": {"n": 50, "stations": 150, "noise": 0.01, "heldout_seed": 1, "validation_seed": 2, "heldout": 2,
                        "per_family": 2, "plain_samples": 0, "jobs": 1, "dip_defaults": {"tau": 30.0},
                        "torch_threads": 1, "torch": "x", "cpus": 2},
           "load_start": 1.0, "load_end": 2.0, "seconds": 60.0,
           "heldout": {"dip": piece([0.5, 0.7], [True, False]), "tikhonov": piece([0.9, 0.9], [True, True])},
           "families": {"blocks": {m: piece([0.25, 0.75], [True, True])
                                   for m in ("dip", "tikhonov", "depth-weighted")}}}
    md, js = write(res, tmp_path)
    text = md.read_text()
    assert "| dip | 2 | 0.600 | 0.600 |" in text and "| 50% |" in text
    assert "| blocks | 0.500 | 100% |" in text
    assert js.exists()
    # the verdict lines are computed from the rows: dip 0.600 <= tikhonov 0.900, but 50 % in band < 90 %
    assert "dip 0.600 vs the best L2 classical method (tikhonov) 0.900: met" in text
    assert "50% of the models (NOT met" in text
    assert "below 1.0 in 1 of 1 families" in text


def test_lbfgs_finish_stops_in_the_band_within_the_budget(setup):
    """finish="lbfgs": Adam for `switch` steps, then L-BFGS on the weights; the first evaluation in the band ends it."""
    from gravbench.providers.dip import fit_dip

    prob, rho, g, sigma = setup
    out = fit_dip(prob, g, sigma, seed=0, maxiter=400, switch=5, finish="lbfgs", finish_reg=10.0, finish_stage=10,
                  **SMALL)
    h = out["history"]
    assert out["converged"] and 5 < out["niter"] < 400 and len(h) == out["niter"] + 1
    assert is_success(h[-1], g.size) and not any(is_success(c, g.size) for c in h[:-1])
    # the returned model is the last evaluation, its chi2 checked by the numpy operator
    assert _chi2(prob, out["rho"], g, sigma) == pytest.approx(h[-1], rel=1e-6)
    assert out["n_matvec"] == out["niter"] + 2 and out["n_rmatvec"] == out["niter"] - out["backtracks"]
    # without the stop the budget (Adam steps + L-BFGS evaluations) is spent and the lowest-chi2 model returned
    cont = fit_dip(prob, g, sigma, seed=0, maxiter=60, switch=5, finish="lbfgs", stop=False, **SMALL)
    assert not cont["converged"] and cont["niter"] == 60 and len(cont["history"]) == 61
    assert cont["n_matvec"] == 62 and cont["n_rmatvec"] == 61 - cont["backtracks"]
    assert cont["chi2"] == pytest.approx(min(cont["history"]), rel=1e-12)
    assert _chi2(prob, cont["rho"], g, sigma) == pytest.approx(cont["chi2"], rel=1e-6)
    assert cont["chi2"] < out["history"][-1]  # without the stop it goes on past the first model in the band


def test_finish_reg_pulls_toward_the_reference(setup):
    """A large depth-weighted pull in the L-BFGS finish keeps the model smaller (and chi2 higher) than none."""
    from gravbench.providers.dip import cell_weights, fit_dip

    prob, rho, g, sigma = setup
    kw = dict(seed=0, maxiter=45, switch=5, finish="lbfgs", stop=False, finish_stage=100, **SMALL)
    free = fit_dip(prob, g, sigma, finish_reg=0.0, **kw)
    held = fit_dip(prob, g, sigma, finish_reg=1e6, **kw)
    w = cell_weights(prob, "depth", 1.0).reshape(prob.shape)

    def norm(m):
        return float(np.mean(m ** 2 / w))

    assert norm(held["rho"]) < 0.5 * norm(free["rho"])
    assert held["chi2"] > free["chi2"]


def test_backtrack_keeps_adams_moments():
    """The Adam state saved at the best iterate is put back exactly (a copy, not a reference)."""
    from gravbench.providers.dip import _adam_state, _set_adam_state

    q = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = torch.optim.Adam([q], lr=0.1)
    assert _adam_state(opt, [q]) == [None]
    for _ in range(3):
        opt.zero_grad()
        (q ** 2).sum().backward()
        opt.step()
    saved = _adam_state(opt, [q])
    m, v = opt.state[q]["exp_avg"].clone(), opt.state[q]["exp_avg_sq"].clone()
    opt.zero_grad()
    (q ** 3).sum().backward()
    opt.step()
    assert not torch.equal(opt.state[q]["exp_avg"], m)
    _set_adam_state(opt, [q], saved)
    assert torch.equal(opt.state[q]["exp_avg"], m) and torch.equal(opt.state[q]["exp_avg_sq"], v)
    assert float(opt.state[q]["step"]) == 3.0
    opt.state[q]["exp_avg"].add_(1.0)  # the saved copy is not touched by later steps
    assert torch.equal(saved[0]["exp_avg"], m)


def test_output_weighting_scales_the_pre_sigmoid_map(setup):
    """weight_on="output": rho = lo + (hi - lo) sigmoid(w * h), w the cell weights; the start fit still hits m_ref."""
    from gravbench.providers.dip import cell_weights, start_network

    prob = setup[0]
    net, z, info = start_network(prob, seed=1, weight_on="output", start_steps=2000, start_tol=2e-3, **SMALL)
    w = cell_weights(prob, "depth", 1.0).reshape(prob.shape)
    np.testing.assert_allclose(net.gain.numpy(), w, rtol=1e-6)
    with torch.no_grad():
        out = net(z)[0].double().numpy()
        net.gain = None
        plain = net(z)[0].double().numpy()
    assert np.abs(out).max() <= 2e-3 * _scale()
    lo, hi = net.lo, net.hi
    h = np.log((plain - lo) / (hi - plain))  # the pre-sigmoid map
    np.testing.assert_allclose(out, lo + (hi - lo) / (1 + np.exp(-w * h)), atol=1e-2)
    net2, _, _ = start_network(prob, seed=1, start="random", **SMALL)
    assert net2.gain is None


def test_dip_new_options_bad_input():
    for kw, word in (({"finish": "newton"}, "finish"), ({"switch": -1}, "switch"), ({"finish_reg": -1.0}, "finish_reg"),
                     ({"weight_on": "input"}, "weight_on"), ({"finish_stage": 1.5}, "finish_stage"),
                     ({"keep_moments": "yes"}, "keep_moments"), ({"history": 0}, "history")):
        with pytest.raises(ValueError, match=word):
            gb.providers.get("dip", **kw)


def test_threads_option_sets_and_restores_torch_threads(setup):
    """numba's OpenMP layer can leave torch at the core count; the fit runs with `threads` and restores the count."""
    from gravbench.providers.dip import fit_dip

    prob, rho, g, sigma = setup
    before = torch.get_num_threads()
    seen = []
    try:
        torch.set_num_threads(2)
        fit_dip(prob, g, sigma, seed=0, maxiter=3, stop=False, threads=1,
                progress=lambda *a: seen.append(torch.get_num_threads()), **SMALL)
        assert seen == [1, 1, 1] and torch.get_num_threads() == 2
        seen.clear()
        fit_dip(prob, g, sigma, seed=0, maxiter=2, stop=False, threads=0,
                progress=lambda *a: seen.append(torch.get_num_threads()), **SMALL)
        assert seen == [2, 2]
    finally:
        torch.set_num_threads(before)
