"""The classical report writer (on a small fabricated result: the measurement itself takes minutes)."""

import json

import pytest

from gravbench.reports import classical as cr


def _rows(methods, err, secs, count=3):
    return {m: [{"model_error": err[m] + 0.01 * k, "chi2": 1.0, "success": True, "seconds": secs[m],
                 "n_matvec": None if m.startswith("simpeg") else 100} for k in range(count)] for m in methods}


def _parts():
    meth = list(cr.OURS) + list(cr.PEERS)
    err = {m: 0.8 for m in meth}
    err["sparse"], err["simpeg-sparse"], err["smooth"], err["simpeg-l2"] = 0.70, 0.75, 0.84, 0.83
    secs = {m: 0.1 for m in meth}
    secs["simpeg-sparse"], secs["simpeg-l2"] = 5.0, 0.5
    rows = _rows(meth, err, secs)
    meta = cr._meta(quick=True)
    blocks = {"n": 50, "noise": 0.01, "seed": 1, "count": 3, "family": "blocks", "validation_seed": 2,
              "summary": cr._summ(rows), "per_model": rows, "section_seconds": 1.0, "loadavg": [[1, 1, 1], [1, 1, 1]]}
    pm = ["smooth", "sparse", "simpeg-sparse"]
    prow = _rows(pm, err, secs, count=2)
    paper = {"set": "paper-50/test", "indices": [0, 1], "families": ["blocks", "layers"],
             "summary": cr._summ(prow),
             "per_family": {"blocks": cr._summ({m: prow[m][:1] for m in pm}),
                            "layers": cr._summ({m: prow[m][1:] for m in pm})},
             "section_seconds": 1.0, "loadavg": [[1, 1, 1], [1, 1, 1]]}
    gc = {"holds_torch": True, "tracked_objects": 10, "count": 1, "seconds_plain": [3.0], "seconds_gc_freeze": [2.0],
          "section_seconds": 1.0, "loadavg": [[1, 1, 1], [1, 1, 1]]}
    scaling = {"runs": [{"n": 200, "method": "dense", "build_s": 0.1, "peak_rss_mb": 300.0,
                         "runs": [{"seconds": 2.0, "cpu_seconds": 1.5, "model_error": 0.6, "chi2": 1.0, "success": True,
                                   "n_matvec": 500, "n_irls": 8}]},
                        {"n": 1000, "error": "MemoryError"}],
               "section_seconds": 1.0, "loadavg": [[1, 1, 1], [1, 1, 1]]}
    return meta, {"blocks": blocks, "paper50": paper, "gc": gc, "scaling": scaling}


def test_assemble_writes_report_with_targets(tmp_path):
    meta, parts = _parts()
    for name, sec in parts.items():
        (tmp_path / f"classical-part-{name}.json").write_text(json.dumps({"meta": meta, name: sec}))
    md, js = cr.assemble(tmp_path)
    text = md.read_text()
    assert "sparse` mean model error 0.710 vs SimPEG sparse 0.760 (no worse: **yes**)" in text
    assert "median 50.0x" in text                                   # 5.0 s / 0.1 s, model by model
    assert "within 5 %: **yes**" in text and "| layers (n=1) |" in text
    assert "| 1000 | - | failed: MemoryError |" in text
    assert json.loads(js.read_text())["blocks"]["count"] == 3
    assert not list(tmp_path.glob("classical-part-*.json"))         # parts merged and removed


def test_assemble_names_a_missing_part(tmp_path):
    with pytest.raises(ValueError, match="--part blocks"):
        cr.assemble(tmp_path)
    meta, parts = _parts()
    (tmp_path / "classical-part-blocks.json").write_text(json.dumps({"meta": meta, "blocks": parts["blocks"]}))
    md, _ = cr.assemble(tmp_path)                     # the other sections are reported as not measured
    assert "Not measured: not measured (no part file)" in md.read_text()
    with pytest.raises(ValueError, match="section must be one of"):
        cr.measure_section("nope")
