"""Issue 13, "nothing lost, nothing crashes": one test (or more) per item of the issue, and fault injection.

Item 1: the CLI on a base install (no torch, no click): a child process whose import system only
        finds the standard library and the distributions gravbench declares (pyproject.toml), found
        by walking their requirements; torch, click, dask, pytest, ... are unimportable there.
Item 2: parse errors are usage errors (exit 2, one line); bare ``gravbench`` is its help (exit 0);
        ``--version``; an internal error is one line plus a traceback file.
Item 3: ``--noise inf`` and reruns never truncate earlier records.
Item 4: ``train`` writes to the user's cache; weights + manifest are an atomic pair; providers load
        user weights by name or path and say which weights they use.
Item 5: ``compare`` exits 1 when any case failed, and when no case could run.
Item 6: a lock keeps a second sweep out of a record file; ``--resume`` ignores and reports duplicates.
Item 7: VAE / GAN / refiner options are checked where they enter.
Item 8: the smaller messages.
Fault injection: SIGKILL at >= 20 random points, then resume: one record per case, same values.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gravbench as gb
from gravbench.bench import cases as bcases
from gravbench import metrics
from gravbench.bench import runner
from gravbench.bench.runner import read_records, run_cases
from gravbench.cli import cmd_compare, main
from tests import test_bench_runner as T

ROOT = Path(__file__).resolve().parents[1]
BASE = ["compare", "--n", "8", "--providers", "zero", "--refiners", "none,cgls3", "--samples", "2", "--noise",
        str(T.NOISE), "--seed", str(T.SEED), "--no-gallery"]


@pytest.fixture
def standins(monkeypatch):
    monkeypatch.setattr(cmd_compare, "make_toolkit", lambda: T.TK)
    monkeypatch.setattr(cmd_compare, "available_providers", lambda: ("zero", "flaky"))
    monkeypatch.setattr(cmd_compare, "available_refiners", lambda: ("none", "cgls3"))


def _one_line_err(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


# ------------------------------------------------------------------------------------------------------
# item 1: the base install
# ------------------------------------------------------------------------------------------------------
def _declared_closure():
    """Top-level module names of the base dependencies declared in pyproject.toml and their requirements."""
    import re
    from importlib.metadata import PackageNotFoundError, distribution, packages_distributions

    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]

    def norm(name):
        return re.sub(r"[-_.]+", "-", name).lower()

    seen, todo = set(), [Requirement(d) for d in deps]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = norm(req.name)
        if key in seen:
            continue
        seen.add(key)
        try:
            todo += [Requirement(r) for r in (distribution(req.name).requires or [])]
        except PackageNotFoundError:
            continue
    return sorted({mod for mod, dists in packages_distributions().items() if any(norm(d) in seen for d in dists)})


_CHILD = r"""
import contextlib, importlib.abc, importlib.machinery, io, json, os, sys, sysconfig
allowed = set(json.loads(sys.argv[1])) | {"gravbench", "tests"}
stdlib = [os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")]
class _BaseInstall(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in allowed or top in sys.stdlib_module_names or top in sys.builtin_module_names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)  # e.g. _sysconfigdata_*: stdlib files
        origin = os.path.realpath(getattr(spec, "origin", None) or "/nonexistent")
        if spec is not None and any(origin.startswith(d + os.sep) for d in stdlib) and "site-packages" not in origin:
            return None
        raise ModuleNotFoundError(f"No module named {name!r} (not part of the base install)", name=name)
sys.meta_path.insert(0, _BaseInstall())
out = {}
for mod in ("torch", "click", "dask"):
    try:
        __import__(mod)
        out[mod] = "importable"
    except ImportError:
        out[mod] = "blocked"
from gravbench.cli import main
runs = []
for argv in json.loads(sys.argv[2]):
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        rc = main(argv)
    runs.append([rc, o.getvalue(), e.getvalue()])
out["runs"] = runs
out["heavy"] = sorted(m for m in ("torch", "click", "dask") if m in sys.modules)
print("RESULT" + json.dumps(out))
"""


def test_item1_base_install_cli_without_torch_and_click(tmp_path):
    """Every CLI error on a base install is one line (no ModuleNotFoundError for click, no traceback)."""
    allowed = _declared_closure()
    assert "numpy" in allowed and "typer" in allowed and "torch" not in allowed and "click" not in allowed
    probes = [
        ["compare", "--n", "3"],
        ["compare", "--n", "abc"],
        ["forward", "--n", "0"],
        ["data", "show", str(tmp_path / "missing.npz")],
        ["train", "cnn"],
        ["nope"],
        ["--version"],
        ["compare", "--n", "8", "--providers", "cnn", "--refiners", "none", "--samples", "1", "--out",
         str(tmp_path / "rep"), "--no-gallery"],
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg", GRAVBENCH_CACHE=str(tmp_path / "cache"))
    p = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(allowed), json.dumps(probes)], capture_output=True,
                       text=True, timeout=300, env=env, cwd=str(tmp_path))
    assert p.returncode == 0 and "RESULT" in p.stdout, p.stdout[-2000:] + p.stderr[-4000:]
    res = json.loads(p.stdout.split("RESULT", 1)[1])
    assert res["torch"] == "blocked" and res["click"] == "blocked" and res["heavy"] == []
    want = [(2, "--n must be >= 4"), (2, "Invalid value for '--n'"), (2, "--n must be >= 4"),
            (1, "no data set file"), (1, "needs PyTorch"), (2, "No such command 'nope'"), (0, None),
            (1, "no case ran: all 1 were skipped")]
    for (rc, out, err), (code, text), argv in zip(res["runs"], want, probes):
        assert rc == code, (argv, rc, out, err)
        assert "Traceback" not in err and "ModuleNotFoundError: No module named 'click'" not in err
        if text is None:
            assert out.strip().startswith("gravbench ") and err == ""
        else:
            assert len(err.strip().splitlines()) == 1 and text in err, (argv, err)
    recs = read_records(tmp_path / "rep" / "compare-8.jsonl")
    assert [r["status"] for r in recs] == ["skipped"] and "PyTorch" in recs[0]["reason"]


# ------------------------------------------------------------------------------------------------------
# item 2: parse errors, bare command, --version, internal errors
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, text", [
    (["compare", "--n", "abc"], "Invalid value for '--n'"),
    (["compare", "--bogus-flag"], "No such option: --bogus-flag"),
    (["nope"], "No such command 'nope'"),
    (["data", "nope"], "No such command 'nope'"),
    (["forward", "--n"], "--n"),
])
def test_item2_parse_errors_exit_2_in_one_line(capsys, argv, text):
    assert main(argv) == 2
    err = _one_line_err(capsys)
    assert err.startswith("error: ") and text in err and "--help" in err


def test_item2_bare_command_is_help_and_version(capsys):
    for argv in ([], ["data"], ["report"]):
        assert main(argv) == 0
        cap = capsys.readouterr()
        assert "Usage" in cap.out and "Commands" in cap.out and cap.err == ""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"gravbench {gb.__version__}"


def test_item2_internal_error_is_one_line_and_a_traceback_file(tmp_path, monkeypatch, capsys, standins):
    def broken():
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr(cmd_compare, "make_toolkit", broken)
    monkeypatch.setenv("GRAVBENCH_CACHE", str(tmp_path / "cache"))
    assert main(BASE + ["--out", str(tmp_path)]) == 1
    err = " ".join(_one_line_err(capsys).split())
    assert "internal error" in err and "TypeError" in err and "--debug" in err
    crash = Path(err.split("full traceback in ", 1)[1].split(";", 1)[0])
    assert crash.is_file() and str(tmp_path / "cache") in str(crash)
    assert "Traceback (most recent call last)" in crash.read_text() and "broken" in crash.read_text()
    with pytest.raises(TypeError):
        main(["--debug"] + BASE + ["--out", str(tmp_path)])


# ------------------------------------------------------------------------------------------------------
# item 3: nothing truncates earlier records
# ------------------------------------------------------------------------------------------------------
def test_item3_noise_inf_and_reruns_keep_earlier_records(tmp_path, standins, monkeypatch, capsys):
    out = tmp_path / "rep"
    assert main(BASE + ["--out", str(out)]) == 0
    jp, md = out / "compare-8.jsonl", out / "compare-8.md"
    before, md_before = jp.read_bytes(), md.read_bytes()
    assert len(read_records(jp)) == 4
    # --noise inf: a usage error before anything is touched
    assert main(BASE + ["--out", str(out), "--noise", "inf"]) == 2
    assert "--noise must be a finite number" in _one_line_err(capsys)
    # a rerun interrupted half-way: the old records and report stay exactly as they were
    monkeypatch.setattr(cmd_compare, "make_toolkit", lambda: T.Toolkit(
        load=T.fake_load, get_provider=T.fake_get_provider, refine=T.Interrupting(1), warmup=False))
    assert main(BASE + ["--out", str(out), "--seed", "3"]) == 130
    assert "will be replaced when this sweep finishes" in capsys.readouterr().err
    assert jp.read_bytes() == before and md.read_bytes() == md_before
    # a new run without --resume now refuses to throw away the interrupted run's records
    monkeypatch.setattr(cmd_compare, "make_toolkit", lambda: T.TK)
    assert main(BASE + ["--out", str(out), "--seed", "3"]) == 2
    assert "interrupted sweep" in _one_line_err(capsys) and jp.read_bytes() == before
    # --overwrite discards them; the run finishes and only then replaces records and report
    assert main(BASE + ["--out", str(out), "--overwrite", "--seed", "3"]) == 0
    assert jp.read_bytes() != before and len(read_records(jp)) == 4 and md.read_bytes() != md_before
    assert not list(out.glob(".*partial*")) and not list(out.glob(".*tmp*"))
    # a --json file that is not a record file is never replaced without --overwrite
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert main(BASE + ["--out", str(out), "--json", str(notes)]) == 2
    assert "not a gravbench record file" in _one_line_err(capsys) and notes.read_text() == "my notes\n"


# ------------------------------------------------------------------------------------------------------
# item 4: train into the user's cache; atomic weights + manifest; user weights by name or path
# ------------------------------------------------------------------------------------------------------
def _package_weights():
    from gravbench.providers import cnn

    return {p.name: p.read_bytes() for p in sorted(cnn.WEIGHTS_DIR.iterdir()) if p.is_file()}


def test_item4_train_writes_to_the_cache_and_providers_load_it_by_name(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    from gravbench.providers import _train

    def no_fit(model, train, val, **kw):  # the test trains nothing: the untrained network is "the result"
        return {"best_epoch": -1, "best_val": float("nan"), "epochs_run": 0, "stopped": "epochs", "history": [],
                "seconds": 0.0}

    monkeypatch.setattr(_train, "fit", no_fit)
    monkeypatch.setenv("GRAVBENCH_CACHE", str(tmp_path / "cache"))
    shipped = _package_weights()
    d = tmp_path / "set"
    prob = gb.Problem.paper(n=8)
    gb.data.build(prob, count=24, seed=4, noise=0.01, splits={"train": 16, "val": 8}, out=d)
    assert main(["train", "cnn", "--dataset", str(d / "train.npz"), "--epochs", "1", "-o", "hidden=8"]) == 0
    out = capsys.readouterr().out
    pt = tmp_path / "cache" / "weights" / "cnn-8.pt"
    assert pt.is_file() and pt.with_suffix(".json").is_file()
    assert "cnn-8.pt" in out and "weights=" in out
    assert _package_weights() == shipped  # nothing written into the installed package
    g = prob.forward(np.full(prob.shape, 100.0))
    for spec in ("cnn-8", str(pt)):
        p = gb.providers.get("cnn", weights=spec)
        assert p(g, prob).shape == prob.shape
        used = p.info.extra
        assert used["source"] == "user" and any(str(pt) in v for v in used["weights"].values())
    with pytest.raises(ValueError, match="no trained cnn weights of that name"):
        gb.providers.get("cnn", weights="no-such-run")
    # compare runs the cnn provider with them and says so
    capsys.readouterr()
    args = ["compare", "--n", "8", "--providers", "cnn", "--refiners", "none", "--samples", "1", "--no-gallery",
            "--out", str(tmp_path / "rep")]
    assert main(args + ["--weights", "cnn=cnn-8"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"cnn weights: 8x8: {pt} (sha256" in out
    assert f"cnn weights: 8x8: {pt} (sha256" in (tmp_path / "rep" / "compare-8.md").read_text()
    assert main(args + ["--weights", "cnn=no-such-run"]) == 2
    assert "--weights cnn=no-such-run: weights: no file" in _one_line_err(capsys)
    # the shipped provider says which files it uses
    extra = gb.providers.get("cnn").info.extra
    assert extra["source"] == "shipped" and any(v.endswith("cnn-50.pt") for v in extra["weights"].values())


def test_item4_weights_and_manifest_are_an_atomic_pair(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from gravbench.providers import _train

    path = tmp_path / "w.pt"
    _train.save_weights({"w": torch.ones(3)}, path, {"model": "test"}, half=False)
    real = os.replace

    def dying_replace(k):
        calls = []

        def rep(a, b):
            calls.append(a)
            if len(calls) == k:
                raise KeyboardInterrupt  # killed here
            return real(a, b)

        return rep

    # killed between the two renames: the new weights are in place, the manifest is rolled forward on load
    monkeypatch.setattr(_train.os, "replace", dying_replace(2))
    with pytest.raises(KeyboardInterrupt):
        _train.save_weights({"w": torch.full((3,), 2.0)}, path, {"model": "test"}, half=False)
    monkeypatch.setattr(_train.os, "replace", real)
    sd, man = _train.load_weights(path)
    assert torch.equal(sd["w"], torch.full((3,), 2.0)) and man["sha256"] == _train.sha256_file(path)
    assert not list(tmp_path.glob(".*pending"))
    # killed before the first rename: the old pair loads, the pending files are ignored
    monkeypatch.setattr(_train.os, "replace", dying_replace(1))
    with pytest.raises(KeyboardInterrupt):
        _train.save_weights({"w": torch.full((3,), 3.0)}, path, {"model": "test"}, half=False)
    monkeypatch.setattr(_train.os, "replace", real)
    sd, _ = _train.load_weights(path)
    assert torch.equal(sd["w"], torch.full((3,), 2.0))


# ------------------------------------------------------------------------------------------------------
# item 5: failed cases fail the command
# ------------------------------------------------------------------------------------------------------
def test_item5_compare_exits_1_when_cases_fail_and_counts_them(tmp_path, monkeypatch, capsys):
    def broken(name, n):
        def prov(g, problem, sigma=None, seed=None):
            raise ValueError("weights file cnn-50.pt failed its integrity check")

        return prov

    monkeypatch.setattr(cmd_compare, "make_toolkit", lambda: T.Toolkit(
        load=T.fake_load, get_provider=broken, refine=T.fake_refine, warmup=False))
    monkeypatch.setattr(cmd_compare, "available_providers", lambda: ("zero",))
    monkeypatch.setattr(cmd_compare, "available_refiners", lambda: ("none", "cgls3"))
    assert main(BASE + ["--out", str(tmp_path)]) == 1
    err = _one_line_err(capsys)
    assert "4 of 4 cases failed" in err and "integrity check" in err
    recs = read_records(tmp_path / "compare-8.jsonl")
    assert [r["status"] for r in recs] == ["error"] * 4


def test_item5_skipped_by_design_is_not_an_error_unless_nothing_ran(tmp_path, monkeypatch, capsys):
    from gravbench.providers import NotApplicable

    def get_provider(name, n):
        if name == "big":
            def prov(g, problem, sigma=None, seed=None):
                raise NotApplicable("problem too large for the direct engine")

            return prov
        return T.fake_get_provider(name, n)

    monkeypatch.setattr(cmd_compare, "make_toolkit", lambda: T.Toolkit(
        load=T.fake_load, get_provider=get_provider, refine=T.fake_refine, warmup=False))
    monkeypatch.setattr(cmd_compare, "available_providers", lambda: ("zero", "big"))
    monkeypatch.setattr(cmd_compare, "available_refiners", lambda: ("none", "cgls3"))
    args = ["compare", "--n", "8", "--refiners", "none", "--samples", "2", "--no-gallery"]
    assert main(args + ["--providers", "zero,big", "--out", str(tmp_path / "a")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "0 failed, 2 skipped by design" in out and "big: skipped: NotApplicable: problem too large" in out
    md = (tmp_path / "a" / "compare-8.md").read_text()
    assert "skipped: NotApplicable: problem too large" in md and "2 skipped by design" in md
    assert main(args + ["--providers", "big", "--out", str(tmp_path / "b")]) == 1
    assert "no case ran: all 2 were skipped" in _one_line_err(capsys)


# ------------------------------------------------------------------------------------------------------
# item 6: one writer per record file; duplicates on resume
# ------------------------------------------------------------------------------------------------------
def test_item6_a_second_sweep_on_the_same_file_is_refused(tmp_path, standins, capsys):
    jp = tmp_path / "compare-8.jsonl"
    with runner._FileLock(jp):  # another sweep holds the file (flock is per open file, so this conflicts)
        with pytest.raises(runner.SweepLocked, match="another gravbench sweep"):
            run_cases(T._cases(refiners=("none",)), jp, toolkit=T.TK)
        assert main(BASE + ["--out", str(tmp_path)]) == 1
        assert "is being written by another gravbench sweep" in _one_line_err(capsys)
    assert not jp.exists()
    assert main(BASE + ["--out", str(tmp_path)]) == 0  # the lock went with its holder
    assert len(read_records(jp)) == 4


def test_item6_resume_ignores_and_reports_duplicates(tmp_path, standins, capsys):
    jp = tmp_path / "compare-8.jsonl"
    assert main(BASE + ["--out", str(tmp_path)]) == 0
    recs = read_records(jp)
    jp.write_text("".join(json.dumps(r) + "\n" for r in recs + recs + recs[:1]))  # two writers' worth
    capsys.readouterr()
    assert main(BASE + ["--out", str(tmp_path), "--resume"]) == 0
    assert "ignored 5 duplicate record(s)" in capsys.readouterr().err
    again = read_records(jp)
    assert len(again) == len(recs) and len({bcases.case_key(r) for r in again}) == len(recs)
    T._same(recs, again)


def test_records_of_the_previous_schema_are_read_and_resumed(tmp_path):
    """Files written before status/reason/schema existed (reports/compare-*.jsonl) still load."""
    old = tmp_path / "old.jsonl"
    recs = run_cases(T._cases(refiners=("none", "cgls2")), None, toolkit=T.TK)
    legacy = [{k: r[k] for k in metrics.RECORD_KEYS if k not in ("status", "reason", "schema")} for r in recs]
    legacy[0]["error"] = "RuntimeError: boom"
    old.write_text("".join(json.dumps(r) + "\n" for r in legacy))
    back = read_records(old)
    assert [tuple(r) for r in back] == [metrics.RECORD_KEYS] * len(recs)
    assert back[0]["status"] == "error" and back[1]["status"] == "ok" and back[1]["schema"] == 1
    assert recs[0]["schema"] == runner.SCHEMA
    shipped = read_records(ROOT / "reports" / "compare-50-100.jsonl")
    assert shipped and all(r["status"] in ("ok", "error", "skipped") for r in shipped)
    assert all(r["reason"] for r in shipped if r["status"] == "skipped")   # a skip says why (e.g. no weights)


# ------------------------------------------------------------------------------------------------------
# item 7: options checked where they enter
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vae", "gan"])
@pytest.mark.parametrize("option, value, text", [
    ("lr", float("nan"), "lr must be a finite number > 0"),
    ("lr", -0.01, "lr must be a finite number > 0"),
    ("popsize", 0, "popsize must be an integer >= 1"),
    ("max_evals", -5, "max_evals must be an integer >= 1"),
    ("linesearch", -1, "linesearch must be an integer >= 0"),
    ("bound", -3.0, "bound must be a finite number > 0"),
    ("bound", float("inf"), "bound must be a finite number > 0"),
    ("lam", float("nan"), "lam must be a finite number >= 0"),
    ("starts", 2.5, "starts must be an integer >= 1"),
    ("maxiter", 0, "maxiter must be an integer >= 1"),
    ("device", "gpu", "device must be 'cpu', 'cuda'"),
])
def test_item7_latent_provider_options(kind, option, value, text):
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match=text.replace("(", r"\(")):
        gb.providers.get(kind, **{option: value})


def test_item7_search_checks_its_options_too():
    torch = pytest.importorskip("torch")
    from gravbench.forward.torch import GravityLayer
    from gravbench.providers.latent import load_generator, search

    gen, _, _ = load_generator("vae", (50, 50))
    layer = GravityLayer(gb.Problem.paper(50), dtype=torch.float32)
    g = np.ones(layer.n_data)
    for kw, text in ((dict(method="de", popsize=0), "popsize"), (dict(lr=float("nan")), "lr"),
                     (dict(method="gn-fd", h=0.0), "h must be"), (dict(seed=-1), "seed")):
        with pytest.raises(ValueError, match=text):
            search(gen, layer, g, 0.1, **kw)
    g[3] = np.nan
    with pytest.raises(ValueError, match="g contains NaN"):
        search(gen, layer, g, 0.1)


@pytest.mark.parametrize("name, kw, text", [
    ("tikhonov", dict(chi=float("inf")), "chi must be a finite number > 0"),
    ("tikhonov", dict(bogus=1), "unknown refiner option"),
    ("tikhonov", dict(engine="dense"), "engine must be 'auto', 'direct' or 'refiner'"),
    ("tikhonov", dict(weighting="depth"), "unknown refiner option"),   # set by the provider, not an option
    ("depth-weighted", dict(beta=float("nan")), "beta must be a finite number >= 0"),
    ("cnn", dict(device="gpu"), "device must be"),
    ("cnn", dict(n=0), "n must be a positive integer"),
])
def test_item7_classical_and_cnn_provider_options(name, kw, text):
    if name == "cnn":
        pytest.importorskip("torch")
    with pytest.raises(ValueError, match=text):
        gb.providers.get(name, **kw)


@pytest.mark.parametrize("name, kw, text", [
    ("tikhonov", dict(rtol=-1.0), "rtol"),
    ("tikhonov", dict(maxiter=-3), "maxiter"),
    ("tikhonov", dict(chi=0.0), "chi"),
    ("tikhonov", dict(beta=float("nan")), "beta"),
    ("icg", dict(beta=-1.0), "beta"),
])
def test_item7_refiner_options(name, kw, text):
    prob = gb.Problem.paper(8)
    op = prob.operator("dense")
    g = op.matvec(np.full(prob.n_cells, 100.0))
    with pytest.raises(ValueError, match=text):
        gb.refiners.run(name, op, g, sigma=0.01, **kw)


# ------------------------------------------------------------------------------------------------------
# item 8: clear messages
# ------------------------------------------------------------------------------------------------------
@pytest.fixture
def weights_copy(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import shutil

    from gravbench.providers import cnn

    d = tmp_path / "weights"
    d.mkdir()
    for suf in (".pt", ".json"):
        shutil.copy(cnn.WEIGHTS_DIR / f"cnn-50{suf}", d / f"cnn-50{suf}")
    monkeypatch.setattr(cnn, "WEIGHTS_DIR", d)
    return d


def _cnn50():
    prob = gb.Problem.paper(50)
    return lambda: gb.providers.get("cnn")(np.ones(prob.n_data), prob)


def test_item8_unreadable_manifest_is_not_no_weights(weights_copy):
    (weights_copy / "cnn-50.json").write_text('{"n": 50, "sha256": ')
    with pytest.raises(ValueError, match="manifest .*cnn-50.json of the weights cnn-50.pt is unreadable") as ei:
        _cnn50()()
    assert "no weights" not in str(ei.value) and type(ei.value).__name__ != "NoWeightsError"


def test_item8_edited_manifest_config_is_named(weights_copy):
    m = weights_copy / "cnn-50.json"
    man = json.loads(m.read_text())
    key = "hidden" if man["config"]["arch"] == "paper" else "width"  # a setting the shipped architecture uses
    man["config"][key] = 2 * man["config"][key]
    m.write_text(json.dumps(man))
    with pytest.raises(ValueError, match="does not describe the weights in cnn-50.pt") as ei:
        _cnn50()()
    assert "size mismatch" not in str(ei.value).split("(")[0]


def test_item8_forged_hash_does_not_suggest_unsafe_loading(weights_copy):
    import fractions

    import torch

    from gravbench.providers._torchutil import sha256_file

    pt, m = weights_copy / "cnn-50.pt", weights_copy / "cnn-50.json"
    torch.save({"w": fractions.Fraction(1, 3)}, pt)  # not a plain tensor file
    man = json.loads(m.read_text())
    man["sha256"] = sha256_file(pt)
    m.write_text(json.dumps(man))
    with pytest.raises(ValueError, match="not a plain tensor file") as ei:
        _cnn50()()
    assert "weights_only=False" not in str(ei.value).replace("(weights_only=True)", "")


def test_item8_json_option_directory_and_read_only(tmp_path, standins, capsys):
    d = tmp_path / "adir"
    d.mkdir()
    assert main(BASE + ["--out", str(tmp_path), "--json", str(d)]) == 2
    assert "--json: " in _one_line_err(capsys) and list(d.iterdir()) == []
    ro = tmp_path / "ro.jsonl"
    ro.write_text("precious\n")
    ro.chmod(0o444)
    try:
        if os.access(ro, os.W_OK):  # pragma: no cover - running as root ignores file modes
            pytest.skip("file modes are not enforced for this user")
        assert main(BASE + ["--out", str(tmp_path), "--json", str(ro), "--overwrite"]) == 2
        assert "read-only" in _one_line_err(capsys)
        assert ro.read_text() == "precious\n"
    finally:
        ro.chmod(0o644)
    assert not list(tmp_path.glob(".*tmp*"))


def test_item8_json_option_read_only_check_without_root(tmp_path, standins, capsys, monkeypatch):
    """The read-only refusal, independent of the user running the tests (root ignores file modes)."""
    ro = tmp_path / "ro.jsonl"
    ro.write_text("precious\n")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == ro and mode == os.W_OK
                        else real(p, mode, *a, **k))
    assert main(BASE + ["--out", str(tmp_path), "--json", str(ro), "--overwrite"]) == 2
    assert "read-only" in _one_line_err(capsys) and ro.read_text() == "precious\n"


def test_item8_library_messages(tmp_path):
    prob = gb.Problem.paper(8)
    d = tmp_path / "set"
    gb.data.build(prob, count=4, seed=1, noise=0.01, splits=None, out=d)
    f = next(d.glob("*.npz"))
    with pytest.raises(ValueError, match="problem must be a gravbench.Problem or None, got str"):
        gb.data.load(f, "x")
    with pytest.raises(ValueError, match="width must be a positive finite number of metres"):
        gb.Grid(nx=4, nz=4, width=1e300)
    with pytest.raises(ValueError, match="x_edges must lie within"):
        gb.Grid.from_edges([0.0, 1e200], [0.0, 1.0])
    with pytest.raises(ValueError, match="Survey x"):
        gb.Survey(x=[0.0, 1e300], z=[0.0, 0.0])
    # every operator rejects non-finite input, one vector or a block of them
    v = np.ones(prob.n_cells)
    v[3] = np.nan
    for method in ("dense", "matfree", "fft"):
        op = prob.operator(method)
        for x in (v, v[:, None], np.stack([v, v], 1)):
            with pytest.raises(ValueError, match="NaN or inf"):
                op @ x
        with pytest.raises(ValueError, match="NaN or inf"):
            op.rmatmat(np.full((prob.n_data, 2), np.inf))
    # cg on an operator that returns NaN: nonfinite, not indefinite (SciPy's cg has no such status to compare)
    from scipy.sparse.linalg import LinearOperator

    from gravbench.solvers import cg

    A = LinearOperator((4, 4), matvec=lambda x: np.full(4, np.nan), dtype=float)
    assert cg(A, np.ones(4)).status == "nonfinite"
    spd = np.diag([1.0, 2.0, -3.0, 4.0])  # a genuinely indefinite matrix still says so
    assert cg(spd, np.array([0.0, 0.0, 1.0, 0.0])).status == "indefinite"


# ------------------------------------------------------------------------------------------------------
# fault injection: SIGKILL at random points, then resume
# ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_at_random_points_then_resume_gives_one_record_per_case(tmp_path):
    """24 sweeps SIGKILLed at random moments (each a forked process: no start-up cost), then one resume.

    After every kill the record file is absent or complete (never partial, never duplicated); the
    final file has exactly one record per case, equal to an uninterrupted run's (timings aside).
    """
    from tests import _faultsweep as F

    cases = F.cases()
    full = run_cases(cases, tmp_path / "full.jsonl", toolkit=F.TK)
    path = tmp_path / "killed.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    srv = subprocess.Popen([sys.executable, "-m", "tests._faultsweep", "--forkserver", str(path)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(ROOT))
    try:
        assert srv.stdout.readline().strip() == "ready"

        def sweep(delay=None):
            srv.stdin.write("go\n")
            srv.stdin.flush()
            pid = int(srv.stdout.readline())
            if delay is not None:
                time.sleep(delay)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:  # it had finished
                    pass
            status, secs = srv.stdout.readline().split()[1:]
            return int(status), float(secs)

        status, span = sweep()  # one uninterrupted sweep: how long to spread the kill points over
        assert status == 0 and len(read_records(path)) == len(cases)
        path.unlink()
        rng = random.Random(13)
        kills, progress = 0, []
        while kills < 24:
            status, _ = sweep(rng.uniform(0.0, 1.1 * span))
            killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            assert killed or status == 0
            kills += killed
            # whatever the kill point, the record file is absent or complete: never partial, never duplicated
            if path.exists():
                done = read_records(path)
                assert len(done) == len(cases) and len({bcases.case_key(r) for r in done}) == len(cases)
                T._same(full, done)
                progress.append(len(cases))
                path.unlink()  # finished before the kill: the next round starts afresh
            else:
                progress.append(len(read_records(runner.partial_path(path))))
        print(f"uninterrupted sweep {span:.3f} s; records kept after each of the {kills} kills: {progress}")
        assert len(set(progress)) >= 5, progress  # the kills landed at many different points of the sweep
        status, _ = sweep()
        assert status == 0
        srv.stdin.write("quit\n")
        srv.stdin.flush()
    finally:
        srv.stdin.close()
        srv.wait(timeout=60)
        srv.stdout.close()
    recs = read_records(path)
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    assert len(lines) == len(cases) == len(recs)
    assert len({bcases.case_key(r) for r in recs}) == len(cases)
    assert not runner.partial_path(path).exists()
    T._same(full, recs)


def test_item3_resume_of_an_interrupted_rerun_with_other_settings(tmp_path):
    """A finished sweep (seed 7), a rerun with seed 8 killed half-way, then --resume of the rerun: the finished
    sweep's records are not mixed in, the rerun's own records are kept, and the result equals an uninterrupted
    seed-8 sweep."""
    path = tmp_path / "r.jsonl"
    first = run_cases(T._cases(refiners=("none", "cgls2")), path, toolkit=T.TK)
    other = bcases.build_cases([T.N], ["zero"], ["none", "cgls2"], samples=T.SAMPLES, noise=T.NOISE, seed=8)
    full = run_cases(other, tmp_path / "full.jsonl", toolkit=T.TK)
    stop = T.Interrupting(2)
    with pytest.raises(KeyboardInterrupt):
        run_cases(other, path, toolkit=T.Toolkit(load=T.fake_load, get_provider=T.fake_get_provider, refine=stop,
                                                 warmup=False))
    T._same(first, read_records(path))  # untouched
    notes, count = [], T.Interrupting(10**9)
    resumed = run_cases(other, path, resume=True, log=notes.append,
                        toolkit=T.Toolkit(load=T.fake_load, get_provider=T.fake_get_provider, refine=count,
                                          warmup=False))
    assert count.calls == T.SAMPLES - 2  # the two refined cases of the interrupted rerun were kept
    assert any("other settings (seed was 7 now 8)" in n for n in notes)
    T._same(full, resumed)
    T._same(full, read_records(path))
    # resuming with settings that match neither file is refused
    with pytest.raises(runner.SweepMismatch, match="seed"):
        run_cases(T._cases(refiners=("none",)), path, resume=True, toolkit=T.TK)


def test_weights_file_bytes_do_not_depend_on_the_directory(tmp_path):
    """Same weights, same file name -> same bytes and sha256 in any directory (the archive inside is named
    after the file's stem, as in the shipped files), so a reproduce command written to /tmp/check/<name>.pt
    can be compared with the shipped file byte for byte."""
    torch = pytest.importorskip("torch")
    import zipfile

    from gravbench.providers import _train

    sd = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(2)}
    a = _train.save_weights(sd, tmp_path / "one" / "cnn-x.pt", {"model": "test"})
    b = _train.save_weights(sd, tmp_path / "two" / "cnn-x.pt", {"model": "test"})
    assert a["sha256"] == b["sha256"]
    assert (tmp_path / "one" / "cnn-x.pt").read_bytes() == (tmp_path / "two" / "cnn-x.pt").read_bytes()
    names = zipfile.ZipFile(tmp_path / "one" / "cnn-x.pt").namelist()
    assert names and all(n.startswith("cnn-x/") for n in names)
    c = _train.save_weights({**sd, "b": torch.zeros(2)}, tmp_path / "three" / "cnn-x.pt", {"model": "test"})
    assert c["sha256"] != a["sha256"]
