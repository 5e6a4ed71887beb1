"""The README's Python examples run as written (docs that run)."""

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(_blocks()) >= 3


def test_library_examples_run(capsys):
    ns = {}
    for code in _blocks()[:2]:
        exec(compile(code, str(README), "exec"), ns)
    res, test = ns["res"], ns["test"]
    assert res.x.shape == (test.rho[0].size,) and np.all(np.isfinite(res.x))
    out = capsys.readouterr().out
    assert out.strip()


def test_provider_extension_example_runs():
    import gravbench as gb

    code = next(b for b in _blocks() if "class BackProjection" in b)
    ns = {}
    exec(compile(code, str(README), "exec"), ns)
    cls = ns["BackProjection"]
    gb.providers.register("backprojection", cls, overwrite=True)
    try:
        prob = gb.Problem.paper(n=12)
        rho = np.zeros(prob.shape)
        rho[4:8, 5:9] = 300.0
        rho0 = gb.providers.get("backprojection")(prob.forward(rho), prob)
        assert rho0.shape == prob.shape and np.isclose(np.abs(rho0).max(), 100.0)
    finally:
        gb.providers.unregister("backprojection")


def test_comparison_example_runs(tmp_path, monkeypatch, capsys):
    """The one-call comparison of the README (it writes its record file into the working directory)."""
    monkeypatch.chdir(tmp_path)
    code = next(b for b in _blocks() if "run_comparison" in b)
    ns = {}
    exec(compile(code, str(README), "exec"), ns)
    c = ns["c"]
    assert len(c.records) == 2 * 2 * 8 and (tmp_path / "cmp.jsonl").exists()
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
