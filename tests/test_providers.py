"""Providers: registry and entry points, classical providers, CNN training paths, shipped weights."""

import json
import shutil
import sys
from importlib.metadata import EntryPoint

import numpy as np
import pytest

import gravbench as gb
from gravbench import providers
from gravbench.providers import NoWeightsError
from gravbench.providers.base import Provider


@pytest.fixture(scope="module")
def small():
    """A tiny standard-like problem and noisy data (n = 12)."""
    prob = gb.Problem.paper(n=12)
    sets = gb.data.build(prob, count=64, seed=3, noise=0.01, splits={"train": 48, "val": 16})
    return prob, sets["train"], sets["val"]


# --- registry ----------------------------------------------------------------------------------------------------


def test_names_and_get():
    names = providers.names()
    for n in ("zero", "tikhonov", "depth-weighted", "cnn"):
        assert n in names
    assert names == tuple(sorted(names))
    p = providers.get("zero")
    assert isinstance(p, Provider) and p.info.name == "zero" and p.info.grids == ()
    with pytest.raises(ValueError, match="unknown provider 'nope'.*zero"):
        providers.get("nope")


def test_register_runtime():
    class Const(Provider):
        name = "const"

        def __init__(self, value=1.0):
            self.value = value

        def _single(self, g, problem, sigma, seed):
            return np.full(problem.shape, self.value)

    providers.register("const-test", Const)
    try:
        assert "const-test" in providers.names()
        prob = gb.Problem.paper(n=6)
        out = providers.get("const-test", value=2.5).batch(np.zeros((3, prob.n_data)), prob)
        assert out.shape == (3, 6, 6) and np.all(out == 2.5)
        with pytest.raises(ValueError, match="already registered"):
            providers.register("const-test", Const)
        with pytest.raises(ValueError, match="already registered"):
            providers.register("zero", Const)
    finally:
        providers.unregister("const-test")
    assert "const-test" not in providers.names()


def test_entry_point_registration(monkeypatch, tmp_path):
    """A third-party package's entry point in group 'gravbench.providers' is found, listed and built."""
    (tmp_path / "fake_gb_plugin.py").write_text(
        "import numpy as np\n"
        "from gravbench.providers.base import Provider\n"
        "class Ones(Provider):\n"
        "    name = 'ones'\n"
        "    def __init__(self, scale=1.0):\n"
        "        self.scale = scale\n"
        "    def _single(self, g, problem, sigma, seed):\n"
        "        return self.scale * np.ones(problem.shape)\n"
        "def make(**kw):\n"
        "    return Ones(**kw)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = EntryPoint(name="fake-ones", value="fake_gb_plugin:make", group="gravbench.providers")
    import importlib.metadata as md

    real = md.entry_points

    def fake_entry_points(**kw):
        if kw.get("group") == "gravbench.providers":
            return [ep]
        return real(**kw)

    monkeypatch.setattr(md, "entry_points", fake_entry_points)
    assert "fake-ones" in providers.names()
    prob = gb.Problem.paper(n=5)
    rho = providers.get("fake-ones", scale=3.0)(np.zeros(prob.n_data), prob)
    assert rho.shape == (5, 5) and np.all(rho == 3.0)
    sys.modules.pop("fake_gb_plugin", None)


def test_import_is_torch_free():
    import subprocess

    code = ("import sys, gravbench as gb, gravbench.providers as p; p.get('zero'); p.names(); "
            "import gravbench.providers.classical; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_torch_message(monkeypatch):
    from gravbench.providers import _torchutil

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install 'gravbench\[ml\]'"):
        _torchutil.require_torch()


# --- input validation -------------------------------------------------------------------------------------------


def test_bad_inputs(small):
    prob, tr, _ = small
    p = providers.get("zero")
    with pytest.raises(ValueError, match=r"g must have shape \(72,\)"):
        p(np.zeros(71), prob)
    with pytest.raises(ValueError, match="NaN"):
        p(np.full(prob.n_data, np.nan), prob)
    with pytest.raises(ValueError, match=r"G must have shape \(B, 72\)"):
        p.batch(np.zeros(72), prob)
    with pytest.raises(ValueError, match="problem must be a gravbench.Problem"):
        p(np.zeros(72), "paper-12")
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        providers.get("tikhonov")(tr.g[0], prob, sigma=-1.0)
    with pytest.raises(ValueError, match="engine"):
        providers.get("tikhonov", engine="magic")
    with pytest.raises(ValueError, match="beta"):
        providers.get("depth-weighted", beta=-1)


# --- classical providers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tikhonov", "depth-weighted"])
def test_classical_reduce_misfit_to_noise_level(small, name):
    prob, tr, _ = small
    A = prob.sensitivity()
    G, S = tr.g[:6], tr.sigma[:6]
    R = providers.get(name).batch(G, prob, sigma=S)
    assert R.shape == (6, 12, 12) and np.all(np.isfinite(R))
    for r, g, s in zip(R, G, S):
        res = A @ r.ravel() - g
        chi2 = np.mean((res / s) ** 2)
        assert abs(chi2 - 1.0) < 1e-6  # discrepancy principle met exactly
        assert np.linalg.norm(res) < 0.5 * np.linalg.norm(g)  # zero model's misfit is ||g||
    one = providers.get(name)(G[0], prob, sigma=S[0])
    np.testing.assert_allclose(one, R[0], rtol=1e-10, atol=1e-10 * np.abs(R[0]).max())


def test_tikhonov_direct_equals_refiner(small):
    """The dense operator and the auto (FFT) operator give the tikhonov refiner the same model."""
    prob, tr, _ = small
    a = providers.get("tikhonov", engine="direct").batch(tr.g[:3], prob, sigma=tr.sigma[:3])
    b = providers.get("tikhonov", engine="refiner").batch(tr.g[:3], prob, sigma=tr.sigma[:3])
    np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-7 * np.abs(a).max())
    a = providers.get("tikhonov", engine="direct").batch(tr.g[:2], prob)  # GCV without sigma
    b = providers.get("tikhonov", engine="refiner").batch(tr.g[:2], prob)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(a).max())


def test_tikhonov_minimises_its_objective(small):
    """At the chosen lambda, the model satisfies the normal equations of the Tikhonov functional."""
    prob, tr, _ = small
    A = prob.sensitivity()
    p = providers.get("tikhonov", engine="direct")
    g, s = tr.g[1], tr.sigma[1]
    r = p(g, prob, sigma=s).ravel()
    lam = p.last_lambdas[0]
    grad = A.T @ ((A @ r - g) / s ** 2) + lam * r
    assert np.linalg.norm(grad) < 1e-6 * np.linalg.norm(A.T @ (g / s ** 2))


def test_depth_weighting_puts_mass_deeper(small):
    prob, tr, _ = small
    g, s = tr.g[:8], tr.sigma[:8]
    t = np.abs(providers.get("tikhonov", engine="direct").batch(g, prob, sigma=s)).sum(axis=(0, 2))
    d = np.abs(providers.get("depth-weighted").batch(g, prob, sigma=s)).sum(axis=(0, 2))
    # share of |rho| in the deeper half of the grid
    assert d[6:].sum() / d.sum() > t[6:].sum() / t.sum()


def test_zero(small):
    prob, tr, _ = small
    assert np.all(providers.get("zero").batch(tr.g[:2], prob) == 0)


# --- training (tiny, seconds) ------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")


def test_fit_resume_equals_uninterrupted(tmp_path):
    from gravbench.providers._train import fit

    def data(seed):
        g = torch.Generator().manual_seed(seed)
        X = torch.randn(40, 3, generator=g)
        return X, X @ torch.tensor([[1.0], [-2.0], [0.5]])

    def loss(net, x, y):
        return torch.mean((net(x) - y) ** 2)

    def make():
        torch.manual_seed(0)
        return torch.nn.Linear(3, 1)

    a = make()
    ha = fit(a, data(1), data(2), loss_fn=loss, epochs=4, batch_size=8, lr=0.05, seed=5, progress=False)
    c = make()
    d = make()
    fit(d, data(1), data(2), loss_fn=loss, epochs=2, batch_size=8, lr=0.05, seed=5, checkpoint=tmp_path / "d.ckpt",
        progress=False, lr_schedule="constant")
    hd = fit(c, data(1), data(2), loss_fn=loss, epochs=4, batch_size=8, lr=0.05, seed=5,
             checkpoint=tmp_path / "d.ckpt", resume=True, progress=False, lr_schedule="constant")
    e = make()
    he = fit(e, data(1), data(2), loss_fn=loss, epochs=4, batch_size=8, lr=0.05, seed=5, progress=False,
             lr_schedule="constant")
    assert hd["epochs_run"] == 4 and len(hd["history"]) == 4
    for p, q in zip(c.parameters(), e.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert [h["val"] for h in hd["history"]] == [h["val"] for h in he["history"]]
    assert ha["best_val"] < ha["history"][0]["val"]
    with pytest.raises(ValueError, match="resume=True but the checkpoint"):
        fit(make(), data(1), data(2), loss_fn=loss, epochs=1, batch_size=8, lr=0.1, seed=0,
            checkpoint=tmp_path / "none.ckpt", resume=True, progress=False)


def test_fit_early_stop_keeps_best():
    from gravbench.providers._train import fit

    X = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    calls = {"n": 0}

    def val_fn(net, x):
        calls["n"] += 1
        return torch.tensor(float(calls["n"]))  # gets worse every epoch: best is epoch 0

    net = torch.nn.Linear(2, 1)
    h = fit(net, (X,), (X[:4],), loss_fn=lambda m, x: m(x).pow(2).mean(), val_fn=val_fn, epochs=20,
            batch_size=4, lr=0.01, seed=0, patience=3, progress=False)
    assert h["stopped"] == "early-stop" and h["epochs_run"] == 4 and h["best_epoch"] == 0
    h = fit(torch.nn.Linear(2, 1), (X,), (X[:4],), loss_fn=lambda m, x: m(x).pow(2).mean(), epochs=20,
            batch_size=4, lr=0.01, seed=0, stop_after=2, progress=False)
    assert h["stopped"] == "stop-after" and h["epochs_run"] == 2


def test_tiny_cnn_training_manifest_and_loading(small, tmp_path):
    """A tiny CNN run (n = 12): checkpoint, resume, manifest (sha256), provider loading from the file."""
    from gravbench.providers import cnn
    from gravbench.providers._torchutil import sha256_file

    prob, tr, va = small
    out = tmp_path / "cnn-12.pt"
    kw = dict(val=va, batch_size=16, lr=3e-3, seed=1, out=out, progress=False, hidden=32, patience=50)
    man = cnn.train(tr, epochs=2, **kw)
    ck = tmp_path / "cnn-12.ckpt"
    assert ck.exists() and out.exists() and out.with_suffix(".json").exists()
    man2 = cnn.train(tr, epochs=3, resume=True, **kw)
    assert man2["training"]["epochs_run"] == 3 and len(man2["metrics"]["history"]) == 3
    assert man2["metrics"]["history"][:2] == man["metrics"]["history"][:2]
    on_disk = json.loads(out.with_suffix(".json").read_text())
    assert on_disk["sha256"] == sha256_file(out) and on_disk["n"] == 12 and on_disk["shape"] == [12, 12]
    for k in ("command", "dataset", "metrics", "normalisation", "gravbench_version"):
        assert k in on_disk
    p = providers.get("cnn", weights=out)
    R = p.batch(va.g, prob)
    assert R.shape == (16, 12, 12)
    lo, hi = on_disk["normalisation"]["rho_lo"], on_disk["normalisation"]["rho_hi"]
    assert R.min() >= lo - 1e-3 and R.max() <= hi + 1e-3
    e = cnn.rel_errors(R, va.rho).mean()
    assert abs(e - on_disk["metrics"]["val_model_error_mean"]) < 1e-3
    # unet1d front end trains too (one epoch)
    cnn.train(tr, epochs=1, arch="unet1d", width=8, head_k=2, **{**kw, "out": tmp_path / "u.pt"})
    with pytest.raises(ValueError, match="unknown option"):
        cnn.train(tr, epochs=1, frobnicate=1, **kw)


# --- shipped weights ----------------------------------------------------------------------------------------------


def test_shipped_cnn50_accuracy():
    """The shipped CNN-50 reproduces its manifest's check-batch accuracy and beats the classical baseline there."""
    from gravbench.providers import cnn

    assert 50 in cnn.available(), "shipped weights cnn-50.pt missing"
    p = providers.get("cnn", n=50)
    man = p.manifest[(50, 50)]
    prob = gb.Problem.paper(50)
    chk = cnn.check_batch(prob)
    e = cnn.rel_errors(p.batch(chk.g, prob), chk.rho)
    assert abs(e.mean() - man["metrics"]["check_batch_model_error_mean"]) < 0.005
    assert (50, 50) in p.info.grids and p.info.learned


def test_tampered_weights(tmp_path):
    from gravbench.providers import cnn

    src = cnn.available()[50]
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    data = bytearray(dst.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dst.write_bytes(bytes(data))
    prob = gb.Problem.paper(50)
    p = providers.get("cnn", weights=dst)
    with pytest.raises(ValueError, match="failed its integrity check: sha256"):
        p(np.zeros(prob.n_data), prob)
    dst.with_suffix(".json").unlink()
    with pytest.raises(ValueError, match="no manifest"):
        providers.get("cnn", weights=dst)(np.zeros(prob.n_data), prob)


def test_wrong_grid_no_weights():
    with pytest.raises(NoWeightsError) as ei:
        providers.get("cnn", n=37)
    msg = str(ei.value)
    assert "37x37" in msg and "50x50" in msg and "gravbench train cnn --dataset paper-37" in msg
    assert isinstance(ei.value, ValueError)
    p = providers.get("cnn")
    prob = gb.Problem.paper(50, kernel="midpoint")
    with pytest.raises(NoWeightsError, match="different geometry"):
        p(np.zeros(prob.n_data), prob)


def test_train_command_tiny(tmp_path, capsys):
    """``gravbench train cnn`` on a built training-set path (its val split beside it) writes weights + manifest."""
    pytest.importorskip("torch")
    from gravbench.cli import main

    d = tmp_path / "set"
    gb.data.build(gb.Problem.paper(n=12), count=48, seed=4, noise=0.01, splits={"train": 32, "val": 16}, out=d)
    out = tmp_path / "c.pt"
    rc = main(["train", "cnn", "--dataset", str(d / "train.npz"), "--epochs", "1", "--batch-size", "16",
               "--out", str(out), "-o", "hidden=16"])
    assert rc == 0, capsys.readouterr().err
    man = json.loads(out.with_suffix(".json").read_text())
    assert man["command"].startswith("gravbench train cnn --dataset") and "-o hidden=16" in man["command"]
    assert main(["train", "cnn", "--epochs", "0"]) == 2  # usage errors exit 2
    assert main(["train", "svm"]) == 2
    err = capsys.readouterr().err
    assert "MODEL must be one of cnn, vae, gan, unet" in err
