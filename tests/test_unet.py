"""The physics-informed U-Net provider: training, manifest, loading, sigma, shipped weights, accuracy."""

import json
import shutil

import numpy as np
import pytest

import gravbench as gb
from gravbench import providers
from gravbench.providers import NoWeightsError

torch = pytest.importorskip("torch")

from gravbench.providers import unet  # noqa: E402

#: unet's mean model error must be this far below depth-weighted's on the first 10 paper-50 test models at 1 %
#: noise. Measured (reports/unet.md): 0.723 vs 0.917 on those 10 (difference 0.19); over the whole split the
#: paired difference is 0.122 (95 % 0.115-0.130) and the smallest of the 100 disjoint 10-model means is 0.026.
MARGIN = 0.1


@pytest.fixture(scope="module")
def tiny():
    """A tiny problem (n = 12) with a training and a validation split."""
    prob = gb.Problem.paper(n=12)
    sets = gb.data.build(prob, count=56, seed=5, noise=0.01, splits={"train": 40, "val": 16})
    return prob, sets["train"], sets["val"]


@pytest.fixture(scope="module")
def shipped():
    return providers.get("unet", n=50)


def test_registered_and_lazy():
    assert "unet" in providers.names()
    assert "gravbench.providers.unet:UNetProvider" in providers._BUILTIN.values()


def test_tiny_training_roundtrip(tiny, tmp_path, monkeypatch):
    """Seconds of training: weights + manifest (sha256), resume, same seed -> same file, provider == manifest."""
    from gravbench.providers._torchutil import sha256_file

    monkeypatch.setenv("GRAVBENCH_CACHE", str(tmp_path / "cache"))
    prob, tr, va = tiny
    out = tmp_path / "unet-12.pt"
    kw = dict(val=va, batch_size=8, lr=3e-3, seed=2, widths="4,8", inputs="dw,tik,depth,level", draws=2, jobs=1,
              level_val=16, progress=False, patience=50)
    man = unet.train(tr, epochs=1, out=out, **kw)
    assert out.exists() and out.with_suffix(".json").exists() and (tmp_path / "unet-12.ckpt").exists()
    on_disk = json.loads(out.with_suffix(".json").read_text())
    assert on_disk["sha256"] == sha256_file(out) and on_disk["shape"] == [12, 12] and on_disk["model"] == "unet"
    for k in ("command", "reproduce", "dataset", "metrics", "normalisation", "config", "noise"):
        assert k in on_disk
    assert on_disk["training"]["precompute"]["train_chunks_computed"] == 4  # 2 kinds x 2 draws
    man2 = unet.train(tr, epochs=2, out=out, resume=True, **kw)  # continues from the checkpoint, images cached
    assert man2["training"]["epochs_run"] == 2 and man2["metrics"]["history"][0] == man["metrics"]["history"][0]
    assert man2["training"]["precompute"]["train_chunks_computed"] == 0
    # the provider loaded from the file reproduces the manifest's numbers (float16 weights, same images)
    p = providers.get("unet", weights=out)
    for lvl in ("0", "0.01"):
        R = p.batch(va.g_clean, prob) if lvl == "0" else p.batch(va.g, prob, sigma=va.sigma)
        assert R.shape == (16, 12, 12) and np.isfinite(R).all()
        e = gb.metrics.model_errors(va.rho, R).mean()
        assert abs(e - man2["metrics"]["val_by_level"][lvl]["mean"]) < 1e-6
    # seeded: the same run again gives the same weights bit for bit
    out3 = tmp_path / "again" / "unet-12.pt"
    out3.parent.mkdir()
    unet.train(tr, epochs=1, out=out3, **kw)
    assert sha256_file(out3) == man["sha256"]
    with pytest.raises(ValueError, match="unknown option"):
        unet.train(tr, epochs=1, out=out, frobnicate=1, **kw)
    with pytest.raises(ValueError, match="inputs must be"):
        unet.train(tr, epochs=1, out=out, **{**kw, "inputs": "dw,nope"})


def test_shipped_weights_shape_finite_and_manifest(shipped):
    prob = gb.Problem.paper(50)
    rng = np.random.default_rng(0)
    rho = np.zeros(prob.shape)
    rho[10:20, 15:30] = 300.0
    g = prob.forward(rho)
    sig = gb.data.noise_sigma(g, 0.01)
    G = np.stack([g + sig * rng.standard_normal(g.shape), g])
    R = shipped.batch(G, prob, sigma=np.stack([sig, sig]))
    assert R.shape == (2, 50, 50) and np.isfinite(R).all()
    assert shipped(g, prob).shape == (50, 50)  # no sigma: GCV images, level 0
    man = shipped.manifest[(50, 50)]
    assert man["bytes"] < 2_000_000 and man["dtype"] == "float16"
    assert man["reproduce"].startswith("gravbench train unet --dataset paper-50")
    assert len(man["metrics"]["history"]) == man["training"]["epochs_run"]
    assert (50, 50) in shipped.info.grids and shipped.info.learned
    assert "sha256 " + man["sha256"][:12] in shipped.info.extra["weights"]["50x50"]  # which file a sweep used


def test_sigma_changes_the_output(shipped):
    """sigma sets the images' regularisation (and the level channel): another sigma, another model."""
    prob = gb.Problem.paper(50)
    rho = np.zeros(prob.shape)
    rho[5:15, 20:35] = 400.0
    g = prob.forward(rho)
    s1 = gb.data.noise_sigma(g, 0.01)
    imgs1, lv1 = unet.physics_images(g[None], prob, s1[None])
    imgs3, lv3 = unet.physics_images(g[None], prob, 3 * s1[None])
    assert np.abs(imgs1 - imgs3).max() > 1.0 and abs(lv1[0] - 0.01) < 1e-9 and abs(lv3[0] - 0.03) < 1e-9
    a, b, c = shipped(g, prob, sigma=s1), shipped(g, prob, sigma=3 * s1), shipped(g, prob)
    assert np.abs(a - b).max() > 1.0 and np.abs(a - c).max() > 1.0


def test_shipped_beats_depth_weighted_on_test_models(shipped):
    """On the first 10 paper-50 test models (1 % noise), unet's mean model error is below depth-weighted's."""
    te = gb.data.standard("paper-50", "test", noise=0.01, progress=False)
    prob = te.problem
    k = 10
    e_u = gb.metrics.model_errors(te.rho[:k], shipped.batch(te.g[:k], prob, sigma=te.sigma[:k]))
    dw = providers.get("depth-weighted")
    e_d = gb.metrics.model_errors(te.rho[:k], dw.batch(te.g[:k], prob, sigma=te.sigma[:k]))
    assert e_u.mean() < e_d.mean() - MARGIN, (e_u.mean(), e_d.mean())


def test_classical_images_are_still_the_training_ones():
    """The network expects the images the depth-weighted provider made when it was trained (manifest probe).

    A change of the classical providers (another lambda rule, another depth weighting) changes the network's
    inputs: this fails then, and the weights need retraining (gravbench train unet; the image cache is keyed
    on the same probe, so it refreshes itself).
    """
    man = json.loads(unet.available()[50].with_suffix(".json").read_text())
    prob = gb.Problem.paper(50)
    for kind, rec in man["config"]["image_probe"].items():
        np.testing.assert_allclose(unet.probe_stats(unet.probe_images(prob, kind)), rec, rtol=1e-3)


def test_no_weights_and_tampered(tmp_path):
    with pytest.raises(NoWeightsError) as ei:
        providers.get("unet", n=37)
    assert "37x37" in str(ei.value) and "gravbench train unet --dataset paper-37" in str(ei.value)
    p = providers.get("unet")
    prob = gb.Problem.paper(25)
    with pytest.raises(NoWeightsError, match="gravbench train unet --dataset paper-25"):
        p(np.zeros(prob.n_data), prob)
    src = unet.available()[50]
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    data = bytearray(dst.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dst.write_bytes(bytes(data))
    prob = gb.Problem.paper(50)
    with pytest.raises(ValueError, match="failed its integrity check: sha256"):
        providers.get("unet", weights=dst)(np.zeros(prob.n_data), prob)


def test_train_command_tiny(tmp_path, capsys, monkeypatch):
    """``gravbench train unet`` on a built training-set path writes weights + manifest with the command."""
    from gravbench.cli import main

    monkeypatch.setenv("GRAVBENCH_CACHE", str(tmp_path / "cache"))
    d = tmp_path / "set"
    gb.data.build(gb.Problem.paper(n=10), count=40, seed=6, noise=0.01, splits={"train": 24, "val": 16}, out=d)
    out = tmp_path / "u.pt"
    rc = main(["train", "unet", "--dataset", str(d / "train.npz"), "--epochs", "1", "--batch-size", "8",
               "--out", str(out), "-o", "widths=4,8", "-o", "jobs=1", "-o", "level_val=0", "-o", "draws=1"])
    assert rc == 0, capsys.readouterr().err
    man = json.loads(out.with_suffix(".json").read_text())
    assert man["command"].startswith("gravbench train unet --dataset") and "-o widths=4,8" in man["command"]
    assert man["config"]["widths"] == [4, 8]


def test_report_ratio_to_best_classical():
    """report unet: the best classical provider is picked per level and per family, the ratio is unet / it."""
    from gravbench.reports import unet as rep

    rng = np.random.default_rng(0)
    k = 40
    fam = ["blocks"] * 20 + ["layers"] * 20

    def row(err):
        return {"model_error": list(err), "data_misfit": list(np.full(k, 0.01)), "chi2": list(np.ones(k)),
                "status": ["success"] * k, "seconds_per_model": 0.01}

    base = rng.uniform(0.7, 0.9, k)
    errs = {"zero": np.ones(k), "tikhonov": base + 0.02, "depth-weighted": base + 0.03,
            "smooth": np.where(np.arange(k) < 20, base + 0.05, base - 0.05), "sparse": base + 0.04,
            "compact": base + 0.06, "cnn": base, "unet": 0.8 * base, "unet->cgls": 0.8 * base}
    res = {"n_data": 300, "by_level": {"0.01": {"rows": {m: row(e) for m, e in errs.items()}, "family": fam}}}
    out = rep._summarise(res)["by_level"]["0.01"]
    s = out["summary"]
    means = {c: np.mean(errs[c]) for c in rep.CLASSICAL}
    best = min(means, key=means.get)
    assert s["best_classical"] == best
    assert s["unet"]["vs_best_classical"]["ratio"] == pytest.approx(np.mean(errs["unet"]) / means[best])
    # per family: smooth is best on layers (base - 0.05) and tikhonov on blocks (base + 0.02)
    assert out["families"]["layers"]["best_classical"] == "smooth"
    assert out["families"]["blocks"]["best_classical"] == "tikhonov"
    b = np.mean(errs["unet"][:20]) / np.mean(errs["tikhonov"][:20])
    assert out["families"]["blocks"]["unet_ratio"] == pytest.approx(b)
    ratio = s["unet"]["vs_best_classical"]["ratio"]
    (line,) = [v for v in rep._verdict({"by_level": {"0.01": out}}) if "best classical" in v]
    assert f"= {ratio:.3f}" in line and (("; met)" in line) == (ratio <= 0.8))
    assert set(rep.NEEDS_SIGMA) <= set(rep.CLASSICAL)


def test_report_assemble_matches_the_committed_report(tmp_path):
    """report unet --assemble rewrites unet.md from unet.json: on the committed files it gives the committed text
    (the report and the code that writes it agree), with the training-budget section; no json: a clear error."""
    from pathlib import Path

    from gravbench.reports import unet as rep

    root = Path(__file__).resolve().parents[1] / "reports"
    shutil.copy(root / "unet.json", tmp_path / "unet.json")
    md, _ = rep.assemble(tmp_path)
    text = md.read_text()
    assert text == (root / "unet.md").read_text()
    assert "## Training budget" in text and "per doubling of the epochs" in text
    with pytest.raises(FileNotFoundError, match="gravbench report unet"):
        rep.assemble(tmp_path / "missing")


def test_budget_section_extrapolates_from_the_last_rate():
    from gravbench.reports import unet as rep

    rows = [{"epochs": 1, "val": 0.8, "val_1": 0.80, "minutes": 10.0},
            {"epochs": 2, "val": 0.7, "val_1": 0.76, "minutes": 20.0},
            {"epochs": 8, "val": 0.6, "val_1": 0.72, "minutes": 80.0}]
    res = {"by_level": {"0.01": {"summary": {"best_classical": "smooth", "smooth": {"model_error": {"mean": 0.8}},
                                             "unet": {"model_error": {"mean": 0.70}}}}}}
    text = "\n".join(rep._budget_section(rows, res))
    # rates: 0.04 per doubling (1 -> 2), 0.02 (2 -> 8: two doublings); gap 0.70 - 0.64 = 0.06 -> 3 doublings
    assert "0.0400 (1 -> 2), 0.0200 (2 -> 8)" in text
    assert "3.0 more doublings of the epochs (about 64 epochs)" in text and "about 11 hours" in text
    assert "lower bound" in text
    rows[1]["val_1"] = 0.78  # 0.02 then 0.03 per doubling: not shrinking
    assert "not a bound" in "\n".join(rep._budget_section(rows, res))
    assert rep._budget_section(rows[:1], res) == []
