"""The reports' common entry point and the comparison as a library call."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil

import numpy as np
import pytest

import gravbench.reports as reports


def _report_modules():
    return sorted(m.name for m in pkgutil.iter_modules(reports.__path__) if not m.name.startswith("_"))


@pytest.mark.parametrize("name", _report_modules())
def test_every_report_has_run_out_quick_log(name):
    mod = importlib.import_module(f"gravbench.reports.{name}")
    assert hasattr(mod, "run"), f"gravbench.reports.{name} has no run(out, quick=False, log=...)"
    params = list(inspect.signature(mod.run).parameters.values())
    assert [p.name for p in params[:3]] == ["out", "quick", "log"], (name, [p.name for p in params[:3]])
    assert params[1].default is False
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params[3:]), \
        f"{name}.run: options after (out, quick, log) must be keyword-only"


def test_run_comparison_returns_records_summary_and_gallery(tmp_path):
    from gravbench.bench.compare import run_comparison
    from gravbench.metrics import summarize

    c = run_comparison([8], ["zero", "tikhonov"], ["none", "cgls"], samples=2, noise=0.01,
                       records_path=tmp_path / "r.jsonl", limits={})
    assert len(c.records) == 1 * 2 * 2 * 2 and c.counts()["ok"] == 8
    assert c.summary == summarize(c.records)
    assert c.stem == "compare-8" and c.records_path.exists()
    # the gallery re-runs the best pairs on test model 0 and reproduces their recorded model error
    assert c.gallery and all(n == 8 for n, *_ in c.gallery)
    for n, label, rt, rh, me in c.gallery:
        assert np.linalg.norm(rh - rt) / np.linalg.norm(rt) == pytest.approx(me, rel=1e-9)
    with pytest.raises(ValueError, match="samples must be >= 1"):
        run_comparison([8], ["zero"], ["none"], samples=0, records_path=tmp_path / "x.jsonl")


def test_compare_report_run_writes_the_report(tmp_path):
    from gravbench.reports.compare import run

    lines = []
    c = run(tmp_path, quick=True, log=lines.append, ns=(8,), providers=["zero"], refiners=["none", "cgls"])
    md = (tmp_path / "compare-8.md").read_text()
    assert "zero -> cgls" in md and "gravbench.reports.compare.run(" in md
    doc = json.loads((tmp_path / "compare-8.json").read_text())
    assert doc["settings"]["samples"] == 4 and len(c.records) == 8
    assert any(str(tmp_path / "compare-8.md") in s for s in lines)
