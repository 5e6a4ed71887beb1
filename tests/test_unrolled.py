"""The unrolled provider: its physics step against numpy, and train -> weights -> provider on a tiny set."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gravbench as gb  # noqa: E402
from gravbench.providers import NoWeightsError  # noqa: E402
from gravbench.providers.unrolled import UnrolledProvider, build_model, train  # noqa: E402


def _peaks_w(g, nc=2):
    m = g.shape[-1] // nc
    peaks = np.abs(g.reshape(-1, nc, m)).max(2)
    return np.repeat(1.0 / peaks ** 2, m, axis=1)


def test_first_stage_is_the_scaled_misfit_gradient_of_the_dense_operator():
    prob = gb.Problem.paper(n=8)
    A = np.asarray(prob.sensitivity(), dtype=np.float64)
    rng = np.random.default_rng(0)
    rho = rng.normal(0, 300, (3, 64))
    g = rho @ A.T
    net = build_model(prob, stages=1, width=2, rho_scale=300.0).eval()   # last CNN layer starts at zero
    W = _peaks_w(g)
    # the largest eigenvalue of A^T W A, from numpy; power iteration reaches it from below
    lam = np.array([np.linalg.eigvalsh((A * w[:, None]).T @ A)[-1] for w in W])
    with torch.no_grad():
        L = net._lmax(torch.as_tensor(W, dtype=torch.float32)).numpy()
        x1 = net(torch.as_tensor(g, dtype=torch.float32), torch.zeros(3)).reshape(3, -1).numpy()
    assert np.all(L <= lam * (1 + 1e-4)) and np.all(L >= 0.9 * lam)
    atwg = (g * W) @ A                   # -(gradient at x = 0)
    prec = net.prec.numpy().astype(np.float64)
    Lp = np.array([np.linalg.eigvalsh(((A * np.sqrt(prec)) * w[:, None]).T @ (A * np.sqrt(prec)))[-1] for w in W])
    want_plain = atwg / L[:, None]
    got_p = x1 - want_plain               # the preconditioned part: prec * A^T W g / L_p
    cos = np.sum(got_p * (prec * atwg), 1) / np.linalg.norm(got_p, axis=1) / np.linalg.norm(prec * atwg, axis=1)
    assert np.all(cos > 1 - 1e-4)
    scale = np.linalg.norm(got_p, axis=1) / np.linalg.norm(prec * atwg, axis=1)
    np.testing.assert_allclose(scale, 1 / Lp, rtol=0.15)


def test_provider_without_weights_says_how_to_train():
    prob = gb.Problem.paper(n=8)
    with pytest.raises(NoWeightsError, match="train them with"):
        UnrolledProvider().batch(np.ones((1, prob.n_data)), prob)


def test_train_writes_weights_the_provider_loads(tmp_path):
    man = train("small-16", epochs=2, stages=1, width=2, max_train=16, max_val=8, batch_size=8, progress=False,
                checkpoint_dir=tmp_path / "ck", out=tmp_path / "u.pt", threads=1)
    chain = json.loads((tmp_path / "ck" / "chain.json").read_text())["chain"]
    assert [e["sha256"] for e in man["checkpoint_chain"]["chain"]] == [e["sha256"] for e in chain]
    assert len(chain) == 2
    ds = gb.data.standard("small-16", split="test", noise=0.01)
    out = UnrolledProvider(weights=tmp_path / "u.pt").batch(ds.g[:4], ds.problem, sigma=ds.sigma[:4])
    assert out.shape == (4,) + tuple(ds.problem.shape) and np.all(np.isfinite(out))
    # rerunning the same call finds the finished chain and does not train again
    again = train("small-16", epochs=2, stages=1, width=2, max_train=16, max_val=8, batch_size=8, progress=False,
                  checkpoint_dir=tmp_path / "ck", out=tmp_path / "again" / "u.pt", threads=1)
    assert again["sha256"] == man["sha256"]
