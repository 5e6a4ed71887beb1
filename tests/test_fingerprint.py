"""Reproducible standard data sets: the fixed-order forward sum, fingerprints, the record, stale caches."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import gravbench as gb
from gravbench.data import fingerprint as fpm
from gravbench.data import sets as std_mod
from gravbench.data._forward import ordered_forward
from gravbench.data.dataset import build, load, save
from gravbench.data.families import GENERATOR_VERSION


# --------------------------------------------------------------------------- the forward sum
def test_ordered_forward_is_the_plain_sequential_sum():
    """Bitwise equal to numpy's elementwise multiply-then-add loop over the cells (no FMA, no reordering)."""
    p = gb.Problem.paper(n=12)
    AT = np.ascontiguousarray(p.sensitivity().T)
    ds = build(p, count=24, seed=5)["all"]
    R = ds.rho.reshape(len(ds), -1).astype(np.float64)
    ref = np.zeros((R.shape[0], AT.shape[1]))
    for j in range(AT.shape[0]):  # numpy ufuncs round the product and the sum separately
        ref = ref + R[:, j:j + 1] * AT[j]
    ser = ordered_forward(R, AT, parallel=False)
    par = ordered_forward(R, AT, parallel=True)
    assert ser.tobytes() == ref.tobytes()
    assert par.tobytes() == ser.tobytes()
    assert ds.g_clean.tobytes() == ser.tobytes()  # build() uses it
    assert np.allclose(ser, R @ AT, rtol=1e-12, atol=1e-14 * np.abs(ser).max())  # and it is A rho
    with pytest.raises(ValueError, match="ncell"):
        ordered_forward(R[:, :-1], AT)
    assert ordered_forward(R[:0], AT).shape == (0, AT.shape[1])


# --------------------------------------------------------------------------- fingerprints
def test_fingerprint_is_canonical_and_sensitive(tmp_path):
    p = gb.Problem.paper(n=10)
    ds = build(p, count=20, seed=3)["all"]
    fp = fpm.fingerprint(ds)
    # another file layout: compressed, arrays in another order, other metadata -> same fingerprint
    save(ds, tmp_path / "a.npz")
    arrays = ds.arrays()
    meta = dict(ds.meta, note="another build date", gravbench_version="9.9")
    from gravbench.data.dataset import _sha256

    meta["sha256"] = _sha256(arrays)
    np.savez_compressed(tmp_path / "b.npz", **dict(reversed(list(arrays.items()))),
                        meta=np.array([json.dumps(meta)]))
    a, b = load(tmp_path / "a.npz", p), load(tmp_path / "b.npz", p)
    assert (tmp_path / "a.npz").read_bytes() != (tmp_path / "b.npz").read_bytes()
    assert fpm.fingerprint(a) == fp == fpm.fingerprint(b)
    # one ulp of one clean datum changes the data digest only (a models-only digest would miss it) ...
    g2 = ds.g_clean.copy()
    g2[3, 7] = np.nextafter(g2[3, 7], np.inf)
    f2 = fpm.fingerprint(gb.data.Dataset(ds.rho, ds.g, g2, ds.sigma, ds.family, ds.index, p, ds.meta))
    assert f2["data"] != fp["data"] and f2["models"] == fp["models"] and f2["noisy"] == fp["noisy"]
    # ... and is within the tolerance; L1 differences of 1e-12 pass, a change of the physics does not
    assert fpm.compare(f2, fp) == (True, {"models": "bitwise", "data": "within tolerance", "noisy": "bitwise"})
    rng = np.random.default_rng(0)
    g3 = ds.g_clean * (1 + 1e-12 * rng.uniform(-1, 1, ds.g_clean.shape))
    f3 = fpm.fingerprint(gb.data.Dataset(ds.rho, ds.g, g3, ds.sigma, ds.family, ds.index, p, ds.meta))
    assert fpm.compare(f3, fp)[0]
    mid = build(gb.Problem.paper(n=10, kernel="midpoint"), count=20, seed=3)["all"]  # same models, other g
    fm = fpm.fingerprint(mid)
    assert fm["models"] == fp["models"] and fpm.compare(fm, fp) == (
        False, {"models": "bitwise", "data": "differs", "noisy": "differs"})
    g4 = ds.g_clean.copy()
    g4[[0, 1]] = g4[[1, 0]]  # two samples' data swapped: same values, other order
    f4 = fpm.fingerprint(gb.data.Dataset(ds.rho, ds.g, g4, ds.sigma, ds.family, ds.index, p, ds.meta))
    assert f4["data_check"][0] == fp["data_check"][0] and fpm.compare(f4, fp)[1]["data"] == "differs"
    r2 = ds.rho.copy()
    r2[0, 0, 0] += 1.0
    f3 = fpm.fingerprint(gb.data.Dataset(r2, ds.g, ds.g_clean, ds.sigma, ds.family, ds.index, p, ds.meta))
    assert f3["models"] != fp["models"] and f3["data"] == fp["data"]
    f5 = fpm.fingerprint(gb.data.add_noise(ds, 0.02))
    assert f5["noisy"] != fp["noisy"] and f5["models"] == fp["models"] and f5["data"] == fp["data"]
    assert fpm.compare(f5, fp)[1]["noisy"] == "differs"
    # the digest is the documented construction (sha256 of a header and the little-endian bytes)
    import hashlib

    h = hashlib.sha256(f"gravbench-clean-data-v1|20,{p.n_data}|".encode() + ds.g_clean.astype("<f8").tobytes())
    assert fp["data"] == h.hexdigest() and fp["count"] == 20


def test_record_covers_every_standard_set_with_this_generator_version():
    """Every standard set has a recorded fingerprint made with this GENERATOR_VERSION and its current spec.

    Fails after a set is added or changed, or the version bumped, until the record is rewritten with
    ``gravbench data fingerprints NAME --record``.
    """
    rec = fpm.load_record()
    for name, spec in gb.data.STANDARD.items():
        entry = rec["sets"].get(name)
        assert entry is not None, (f"{name} has no recorded fingerprint: run "
                                   f"'gravbench data fingerprints {name} --record'")
        version = std_mod.generator_version(spec)
        assert entry["generator_version"] == version, (
            f"{name} was recorded with generator version {entry['generator_version']}, the code is version "
            f"{version}: re-record with 'gravbench data fingerprints --record'")
        assert entry["spec"] == fpm.spec_dict(spec), f"{name}: the set's specification changed since it was recorded"
        for s, n in zip(("train", "val", "test"), spec.splits):
            assert entry["splits"][s]["count"] == n
            assert all(len(entry["splits"][s][k]) == 64 for k in fpm.KINDS)


@pytest.mark.parametrize("name, splits", [("small-16", ("train", "val", "test")), ("paper-25", ("test",)),
                                          ("paper-50", ("test",))])
def test_fresh_build_matches_recorded_fingerprint(monkeypatch, tmp_path, name, splits):
    """The CI guard of the cache key: build from scratch, compare with the record.

    If this fails while GENERATOR_VERSION is unchanged, code that determines the bits of the data sets
    (model families, noise, how g is computed) changed: bump GENERATOR_VERSION in data/families.py and
    re-record with 'gravbench data fingerprints --record'.
    """
    monkeypatch.setenv("GRAVBENCH_CACHE", str(tmp_path))
    rec = fpm.load_record()["sets"][name]
    assert rec["generator_version"] == GENERATOR_VERSION
    got = std_mod.compute_standard(name, splits, progress=False)
    for s in splits:
        ok, how = fpm.compare(got[s], rec["splits"][s])
        assert ok and how["models"] == "bitwise", (
            f"{name}/{s} built now differs from the record made with the same generator version "
            f"{GENERATOR_VERSION}: bump GENERATOR_VERSION and re-record ('gravbench data fingerprints --record')")


def test_other_threads_and_blas_kernel_give_the_recorded_bits(monkeypatch, tmp_path):
    """A fresh process with 1 numba thread and OpenBLAS forced to another CPU kernel builds the same bits."""
    code = ("import json, gravbench as gb\n"
            "from gravbench.data import sets as f\n"
            "print(json.dumps(f.compute_standard('small-16', ('test',), progress=False)['test']))\n")
    env = dict(os.environ, GRAVBENCH_CACHE=str(tmp_path), NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", OPENBLAS_CORETYPE="Haswell")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert fpm.compare(got, fpm.load_record()["sets"]["small-16"]["splits"]["test"])[0]
    monkeypatch.setenv("GRAVBENCH_CACHE", str(tmp_path / "here"))
    assert got == std_mod.compute_standard("small-16", ("test",), progress=False)["test"]  # this process: bitwise


# --------------------------------------------------------------------------- the check on load
def test_stale_cache_is_rebuilt_and_a_persistent_mismatch_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAVBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(std_mod.STANDARD, "tiny-6", std_mod.StandardSpec(6, (12, 4, 5), seed=9))
    record_path = tmp_path / "fingerprints.json"
    monkeypatch.setattr(fpm, "RECORD_PATH", record_path)
    assert gb.data.standard("tiny-6", "test", progress=False) is not None  # no record yet: loads unchecked
    std_mod.record(["tiny-6"], progress=False)
    rec = json.loads(record_path.read_text())["sets"]["tiny-6"]
    assert rec["spec"] == {"n": 6, "splits": [12, 4, 5], "families": "mixed", "seed": 9, "noise": 0.01,
                           "kernel": "exact", "geometry": "paper"}
    path = std_mod.standard_paths("tiny-6")["test"]
    good = load(path)
    calls = []
    real_build = std_mod.build
    monkeypatch.setattr(std_mod, "build", lambda *a, **k: calls.append(k.get("only")) or real_build(*a, **k))
    # last-bit differences (another libm) are within the data tolerance: accepted as they are
    g_ulp = good.g_clean.copy()
    g_ulp[0, 0] = np.nextafter(g_ulp[0, 0], 0.0)
    save(gb.data.Dataset(good.rho, good.g, g_ulp, good.sigma, good.family, good.index, good.problem,
                         dict(good.meta)), path)
    assert gb.data.standard("tiny-6", "test", progress=False).g_clean[0, 0] == g_ulp[0, 0] and calls == []
    # an old build of the same generator version (g computed differently: midpoint cells), valid file sha256
    g_old = build(gb.Problem.paper(n=6, kernel="midpoint"), seed=9, splits=(12, 4, 5), only="test")["test"].g_clean
    save(gb.data.Dataset(good.rho, good.g, g_old, good.sigma, good.family, good.index, good.problem,
                         dict(good.meta)), path)
    assert load(path).g_clean.tobytes() != good.g_clean.tobytes()
    ds = gb.data.standard("tiny-6", "test", progress=False)
    assert calls == [["test"]]  # rebuilt, once
    assert ds.g_clean.tobytes() == good.g_clean.tobytes() and load(path).g_clean.tobytes() == good.g_clean.tobytes()
    gb.data.standard("tiny-6", "test", progress=False)
    assert len(calls) == 1  # the rebuilt file passes: no more builds
    # a record this code cannot reproduce: rebuilt once more, then refused with a clear message
    bad = json.loads(record_path.read_text())
    bad["sets"]["tiny-6"]["splits"]["test"]["data"] = "0" * 64
    bad["sets"]["tiny-6"]["splits"]["test"]["data_check"][1] *= 1.001
    record_path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"tiny-6/test: fingerprint differs.*data .*still differs.*GENERATOR_VERSION"):
        gb.data.standard("tiny-6", "test", progress=False)
    assert len(calls) == 2
    assert gb.data.standard("tiny-6", "test", progress=False, check=False).g_clean.tobytes() == good.g_clean.tobytes()
    # a record of another generator version or another spec is not applied (the set changed on purpose)
    bad["sets"]["tiny-6"]["generator_version"] = GENERATOR_VERSION - 1
    record_path.write_text(json.dumps(bad))
    assert std_mod.recorded("tiny-6") is None
    gb.data.standard("tiny-6", "test", progress=False)
    monkeypatch.setitem(std_mod.STANDARD, "tiny-6", std_mod.StandardSpec(6, (12, 4, 6), seed=9))
    bad["sets"]["tiny-6"]["generator_version"] = GENERATOR_VERSION
    record_path.write_text(json.dumps(bad))
    assert std_mod.recorded("tiny-6") is None


def test_cli_fingerprints_and_standard(monkeypatch, tmp_path, capsys):
    from gravbench.cli import main

    monkeypatch.setenv("GRAVBENCH_CACHE", str(tmp_path))
    assert main(["data", "fingerprints", "small-16"]) == 0
    out = capsys.readouterr().out
    rec = fpm.load_record()["sets"]["small-16"]["splits"]
    assert out.count("match (bitwise)") == 3 and rec["train"]["models"][:16] in out and rec["test"]["data"][:16] in out
    assert main(["data", "standard", "small-16"]) == 0
    out = capsys.readouterr().out
    assert rec["val"]["models"] in out and rec["val"]["data"] in out and "match the record" in out and "bitwise" in out
    assert main(["data", "fingerprints", "paper-7"]) != 0  # a user error (exit 1 or 2)
