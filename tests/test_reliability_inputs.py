"""Bad inputs: a resumed sweep never mixes settings, every bad option value exits 2 naming the option before
any work, and the library refuses values at its boundary (rtol, maxiter, complex rho, non-representable scales).
"""

import json
import os
import tempfile

import numpy as np
import pytest

from gravbench.cli import main


def _root_ignores_modes():
    """True when a read-only folder is still writable (root): the read-only probes cannot be provoked."""
    d = tempfile.mkdtemp()
    try:
        os.chmod(d, 0o500)
        try:
            fd, p = tempfile.mkstemp(dir=d)
        except OSError:
            return False
        os.close(fd)
        os.unlink(p)
        return True
    finally:
        os.chmod(d, 0o700)
        os.rmdir(d)


ROOT = _root_ignores_modes()


# --------------------------------------------------------------------------------------------
# resume identity
# --------------------------------------------------------------------------------------------
SWEEP = ["compare", "--n", "16", "--samples", "2", "--providers", "zero", "--no-gallery", "--scaling", ""]
TIMING = ("seconds", "peak_mb")


def _sweep(out, *extra, refiners="none,cgls"):
    return main(SWEEP + ["--refiners", refiners, "--out", str(out), "--json", str(out / "runs.jsonl"), *extra])


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_resume_under_other_noise_settings_is_refused_and_records_name_their_settings(tmp_path, capsys):
    assert _sweep(tmp_path) == 0
    recs = _records(tmp_path / "runs.jsonl")
    assert recs and all(r["settings"]["sigma_scale"] == 1.0 and r["settings"]["noise_kind"] == "gaussian"
                        and r["settings"]["seed"] == 0 and r["settings"]["samples"] == 2 for r in recs)
    capsys.readouterr()
    for extra, word in ((["--sigma-scale", "2"], "sigma_scale was 1.0 now 2.0"),
                        (["--noise-kind", "heavy"], "noise_kind was gaussian now heavy")):
        assert _sweep(tmp_path, "--resume", *extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "other settings" in err[0] and word in err[0], err
        assert not list(tmp_path.glob("compare-16-*.md"))  # no report built from the plain run's records
    # the records carry the settings too: with the meta file gone, the records alone still refuse
    (tmp_path / ".runs.jsonl.meta.json").unlink()
    assert _sweep(tmp_path, "--resume", "--sigma-scale", "2") == 2
    assert "sigma_scale was 1.0 now 2.0" in capsys.readouterr().err
    assert _sweep(tmp_path, "--resume") == 0  # the same settings resume


def test_fresh_and_resumed_sigma_scale_sweeps_give_identical_records(tmp_path):
    fresh, resumed = tmp_path / "fresh", tmp_path / "resumed"
    fresh.mkdir()
    resumed.mkdir()
    assert _sweep(fresh, "--sigma-scale", "2") == 0
    assert _sweep(resumed, "--sigma-scale", "2", refiners="none") == 0  # half the cases first
    assert _sweep(resumed, "--sigma-scale", "2", "--resume") == 0
    a, b = _records(fresh / "runs.jsonl"), _records(resumed / "runs.jsonl")
    assert len(a) == len(b) == 4

    def strip(rs):
        return sorted((json.dumps({k: v for k, v in r.items() if k not in TIMING}, sort_keys=True) for r in rs))

    assert strip(a) == strip(b)
    assert all(r["settings"]["sigma_scale"] == 2.0 for r in a + b)


# --------------------------------------------------------------------------------------------
# option values: exit 2, one line naming the option, before any work
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    d = tmp_path_factory.mktemp("profile")
    x = np.linspace(0.0, 900.0, 10)
    gz = 0.5 * np.exp(-((x - 450.0) / 150.0) ** 2)
    p = d / "line.csv"
    p.write_text("x,elevation,gz\n" + "".join(f"{a},{0.0},{b}\n" for a, b in zip(x, gz)))
    return p


def _probe(capsys, argv, opt):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (argv, code, err)
    assert len(err) == 1 and opt in err[0], (argv, err)
    return err[0]


INVERT_BAD = [("--dx", "0"), ("--dx", "-1"), ("--dx", "nan"), ("--dx", "inf"), ("--dz", "0"), ("--depth", "0"),
              ("--depth", "-100"), ("--depth", "nan"), ("--pad", "-1"), ("--sigma", "0"), ("--sigma", "nan")]


def test_invert_bad_values_exit_2_naming_the_option(profile, tmp_path, capsys):
    for opt, val in INVERT_BAD:
        _probe(capsys, ["invert", str(profile), opt, val, "--out", str(tmp_path / "o"), "--no-figure"], opt)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())  # nothing written
    f = tmp_path / "a-file"
    f.write_text("mine")
    _probe(capsys, ["invert", str(profile), "--out", str(f)], "--out")
    assert f.read_text() == "mine"


@pytest.mark.skipif(ROOT, reason="running as root: a read-only folder stays writable, the probe cannot be provoked")
def test_read_only_out_folders_are_refused_before_work(profile, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        _probe(capsys, ["invert", str(profile), "--out", str(ro / "x")], "--out")
        _probe(capsys, ["train", "cnn", "--out", str(ro / "w.pt")], "--out")
    finally:
        os.chmod(ro, 0o700)


def test_data_make_bad_values_exit_2_naming_the_option(tmp_path, capsys):
    base = ["data", "make", "--n", "4", "--count", "10", "--out", str(tmp_path / "d")]
    for opt, val in (("--noise", "nan"), ("--noise-floor", "-1"), ("--splits", "0.5,0.5,0.5"),
                     ("--families", "bogus")):
        _probe(capsys, base + [opt, val], opt)
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def test_train_bad_values_exit_2_naming_the_option(tmp_path, capsys):
    for val in ("abc", "-5", "nan"):
        _probe(capsys, ["train", "cnn", "-o", f"max_seconds={val}", "--out", str(tmp_path / "w.pt")], "max_seconds")
    foreign = tmp_path / "notes.pt"
    foreign.write_text("not weights")
    _probe(capsys, ["train", "cnn", "--out", str(foreign)], "--out")
    assert foreign.read_text() == "not weights"


# --------------------------------------------------------------------------------------------
# library boundary
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    from gravbench import Problem

    p = Problem.paper(n=8)
    rho = np.zeros(p.shape)
    rho[3:5, 3:5] = 300.0
    return p, p.operator(method="dense"), np.asarray(p.forward(rho)).ravel(), rho


@pytest.mark.parametrize("name", ["smooth", "sparse", "compact", "focusing"])
@pytest.mark.parametrize("rtol", [-1.0, float("nan")])
def test_regularized_refiners_refuse_bad_rtol(small, name, rtol):
    from gravbench import refiners

    _, op, g, _ = small
    with pytest.raises(ValueError, match="rtol"):
        refiners.run(name, op, g, sigma=0.01, rtol=rtol)


def test_gmres_refuses_negative_maxiter(small):
    from gravbench import refiners

    _, op, g, _ = small
    with pytest.raises(ValueError, match="maxiter"):
        refiners.run("gmres", op, g, maxiter=-1)


def test_forward_refuses_complex_rho(small):
    p, _, _, rho = small
    with pytest.raises(TypeError, match="real"):
        p.forward(rho + 1j)


@pytest.mark.parametrize("name", ["cgls", "gmres", "lgmres", "tikhonov", "smooth", "gd"])
def test_non_representable_scales_are_refused_not_converged(small, name):
    from gravbench import refiners

    _, op, g, _ = small
    for sigma in (None, 0.01):
        if sigma is None and name in ("smooth", "tikhonov"):
            continue
        with pytest.raises(ValueError, match="representable"):
            refiners.run(name, op, g * 1e300, sigma=sigma)
    r = refiners.run("cgls", op, g)  # an ordinary scale still inverts
    assert r.converged and np.abs(r.x).max() > 0
