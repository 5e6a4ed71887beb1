"""The sweep runner with small stand-ins for providers, refiners and data (injected through Toolkit).

The stand-ins live here only: a zero provider, a provider that fails on one
model, and a few CGLS steps written with the operator's own products.
"""

import json
import sys
import types

import numpy as np
import pytest

import gravbench as gb
from gravbench.bench import cases as bcases
from gravbench import metrics
from gravbench.bench import runner
from gravbench.bench.cases import Case, build_cases
from gravbench.bench.runner import TestSet, Toolkit, read_records, run_cases

N, SAMPLES, NOISE, SEED = 8, 3, 0.02, 7


# ---------------------------------------------------------------- stand-ins (tests only)
def fake_load(n, samples, noise, seed):
    prob = gb.Problem.paper(n)
    rng = np.random.default_rng(seed)
    rho = rng.normal(0.0, 200.0, size=(samples,) + prob.shape)
    g_clean = np.stack([prob.forward(r) for r in rho])
    sigma = noise * np.abs(g_clean).max(axis=1, keepdims=True) * np.ones_like(g_clean)
    g = g_clean + sigma * rng.standard_normal(g_clean.shape)
    return TestSet(problem=prob, rho=rho, g=g, sigma=sigma if noise > 0 else None)


def _zero(g, problem, sigma=None, seed=None):
    return np.zeros(problem.shape)


def _flaky(g, problem, sigma=None, seed=None):
    bad = fake_load(problem.grid.nx, SAMPLES, NOISE, SEED).g[1]
    if np.array_equal(g, bad):
        raise RuntimeError("flaky provider fails on this model")
    return np.zeros(problem.shape)


def fake_get_provider(name, n):
    if name == "zero":
        return _zero
    if name == "flaky":
        return _flaky
    raise ValueError(f"unknown provider {name!r}")


def fake_refine(name, op, g, x0, sigma):
    """``name`` = "cgls<k>": k CGLS steps from x0 (operator products only)."""
    k = int(name[4:]) if name.startswith("cgls") else 3
    x = np.asarray(x0, dtype=float).ravel().copy()
    r = g - op.matvec(x)
    s = op.rmatvec(r)
    p = s.copy()
    gamma = s @ s
    for _ in range(k):
        q = op.matvec(p)
        a = gamma / (q @ q)
        x += a * p
        r -= a * q
        s = op.rmatvec(r)
        gn = s @ s
        p = s + (gn / gamma) * p
        gamma = gn
    return types.SimpleNamespace(x=x, niter=k)


class Interrupting:
    """A refiner that raises KeyboardInterrupt on its (k+1)-th call, like a Ctrl-C mid-sweep."""

    def __init__(self, k):
        self.k = k
        self.calls = 0

    def __call__(self, name, op, g, x0, sigma):
        if self.calls >= self.k:
            raise KeyboardInterrupt
        self.calls += 1
        return fake_refine(name, op, g, x0, sigma)


TK = Toolkit(load=fake_load, get_provider=fake_get_provider, refine=fake_refine, warmup=False)
TIMING = ("seconds", "peak_mb")


def _cases(providers=("zero",), refiners=("none", "cgls2", "cgls5")):
    return build_cases([N], list(providers), list(refiners), samples=SAMPLES, noise=NOISE, seed=SEED)


def _same(recs_a, recs_b):
    a = {bcases.case_key(r): r for r in recs_a}
    b = {bcases.case_key(r): r for r in recs_b}
    assert a.keys() == b.keys()
    for k in a:
        for f in metrics.RECORD_KEYS:
            if f in TIMING:
                continue
            va, vb = a[k][f], b[k][f]
            if isinstance(va, float) and isinstance(vb, float):
                assert va == pytest.approx(vb, rel=1e-9, abs=1e-12), (k, f)
            else:
                assert va == vb, (k, f)


# ---------------------------------------------------------------- tests
def test_records_have_exact_keys_and_sane_metrics(tmp_path):
    path = tmp_path / "r.jsonl"
    recs = run_cases(_cases(), path, toolkit=TK)
    assert len(recs) == SAMPLES * 3
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == len(recs)
    for r in lines:
        assert tuple(r) == metrics.RECORD_KEYS
        assert r["error"] is None
    by = {(r["model"], r["refiner"]): r for r in recs}
    for k in range(SAMPLES):
        # the zero model: error exactly 1 and misfit exactly 1, no operator work
        assert by[k, "none"]["model_error"] == pytest.approx(1.0)
        assert by[k, "none"]["data_misfit"] == pytest.approx(1.0)
        assert by[k, "none"]["n_matvec"] == 0
        # CGLS lowers the misfit monotonically with more steps and counts its products: 2 + 2 per step
        assert by[k, "cgls5"]["data_misfit"] < by[k, "cgls2"]["data_misfit"] < 1.0
        assert by[k, "cgls2"]["n_matvec"] == 2 + 2 * 2  # r0 and s0, then A p and A^T r per step
        assert by[k, "cgls5"]["niter"] == 5
        assert by[k, "cgls5"]["seconds"] > 0 and by[k, "cgls5"]["peak_mb"] >= 0


def test_metrics_against_direct_formulas():
    prob = gb.Problem.paper(6)
    A = prob.sensitivity()
    rng = np.random.default_rng(0)
    rho = rng.normal(size=prob.shape)
    est = rho + 0.1 * rng.normal(size=prob.shape)
    g = A @ rho.ravel() + 0.01 * rng.normal(size=A.shape[0])
    sig = np.full(A.shape[0], 0.01)
    m = metrics.evaluate(prob.operator("dense"), rho, est, g, sig)
    r = A @ est.ravel() - g
    assert m["model_error"] == pytest.approx(np.linalg.norm(rho - est) / np.linalg.norm(rho), rel=1e-12)
    assert m["data_misfit"] == pytest.approx(np.linalg.norm(r) / np.linalg.norm(g), rel=1e-12)
    assert m["chi2"] == pytest.approx(np.sum((r / sig) ** 2) / r.size, rel=1e-12)
    assert m["success"] is bool(abs(m["chi2"] - 1) <= 2 * np.sqrt(2 / r.size))  # two-sided
    # the true model fits noise-level data: chi2 near 1 and a success
    mt = metrics.evaluate(A, rho, rho, g, sig)
    assert 0.5 < mt["chi2"] < 1.5
    s = metrics.summary([3.0, 1.0, 2.0, None, float("nan")])
    assert (s["mean"], s["median"], s["count"]) == (2.0, 2.0, 3)
    assert s["p90"] == pytest.approx(np.percentile([1, 2, 3], 90))
    with pytest.raises(ValueError, match="rho"):
        metrics.model_error(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="sigma"):
        metrics.chi2(np.ones(3), 0.0)


def test_provider_error_leaves_one_error_record(tmp_path):
    cases = _cases(providers=("flaky",), refiners=("cgls3",))
    recs = run_cases(cases, tmp_path / "r.jsonl", toolkit=TK)
    errs = [r for r in recs if r["error"] is not None]
    assert len(recs) == SAMPLES and len(errs) == 1
    assert errs[0]["model"] == 1 and "flaky provider fails" in errs[0]["error"]
    assert all(errs[0][k] is None for k in ("model_error", "data_misfit", "chi2", "success", "seconds"))
    ok = [r for r in recs if r["error"] is None]
    assert all(r["model_error"] is not None and r["data_misfit"] < 1 for r in ok)
    assert len(read_records(tmp_path / "r.jsonl")) == SAMPLES
    rows = metrics.summarize(recs)
    assert rows[0]["errors"] == 1 and rows[0]["model_error"]["count"] == SAMPLES - 1


def test_interrupt_then_resume_gives_same_records(tmp_path):
    cases = _cases(refiners=("cgls2", "cgls4"))
    full = run_cases(cases, tmp_path / "full.jsonl", toolkit=TK)
    path = tmp_path / "part.jsonl"
    k = 3
    stopper = Interrupting(k)
    with pytest.raises(KeyboardInterrupt):
        run_cases(cases, path, toolkit=Toolkit(load=fake_load, get_provider=fake_get_provider, refine=stopper,
                                               warmup=False))
    assert not path.exists()  # nothing finished: no record file yet, the records wait in the partial file
    assert len(read_records(runner.partial_path(path))) == k
    # a torn last line (killed while writing) is tolerated
    with open(runner.partial_path(path), "a") as fh:
        fh.write('{"n": 8, "noise"')
    counter = Interrupting(10**9)
    resumed = run_cases(cases, path, resume=True,
                        toolkit=Toolkit(load=fake_load, get_provider=fake_get_provider, refine=counter, warmup=False))
    assert counter.calls == len(cases) - k  # finished cases were skipped
    assert len(read_records(path)) == len(cases)
    _same(full, resumed)
    _same(full, read_records(path))
    # resuming a finished sweep runs nothing
    again = Interrupting(0)
    run_cases(cases, path, resume=True,
              toolkit=Toolkit(load=fake_load, get_provider=fake_get_provider, refine=again, warmup=False))
    assert again.calls == 0
    # resuming with other settings is refused
    other = build_cases([N], ["zero"], ["cgls2"], samples=SAMPLES, noise=NOISE, seed=SEED + 1)
    with pytest.raises(runner.SweepMismatch, match="seed"):
        run_cases(other, path, resume=True, toolkit=TK)


def test_without_resume_the_file_is_refused_or_replaced_at_the_end(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("garbage\n")
    with pytest.raises(runner.OutputExists, match="--overwrite"):
        run_cases(_cases(refiners=("none",)), path, toolkit=TK)
    assert path.read_text() == "garbage\n"
    run_cases(_cases(refiners=("none",)), path, toolkit=TK, overwrite=True)
    assert len(read_records(path)) == SAMPLES and "garbage" not in path.read_text()
    assert not runner.partial_path(path).exists()


def test_refiner_returning_nan_is_an_error_record(tmp_path):
    def bad(name, op, g, x0, sigma):
        return types.SimpleNamespace(x=np.full(op.shape[1], np.nan), niter=1)

    recs = run_cases(_cases(refiners=("cgls1",))[:1], None,
                     toolkit=Toolkit(load=fake_load, get_provider=fake_get_provider, refine=bad, warmup=False))
    assert "NaN" in recs[0]["error"] and recs[0]["model_error"] is None


def test_build_cases_validates():
    cs = build_cases([8, 12], ["zero", "zero", "tikhonov"], "none", samples=2)
    assert len(cs) == 2 * 2 * 2 and cs[0] == Case(8, 0.01, 0, "zero", "none", 0, 2)
    for bad in (dict(ns=[3]), dict(samples=0), dict(noise=-0.1), dict(seed=-1), dict(providers=[])):
        kw = dict(ns=[8], providers=["zero"], refiners=["none"], samples=1, noise=0.01, seed=0)
        kw.update(bad)
        with pytest.raises(ValueError):
            build_cases(**kw)


def test_dask_local_cluster_gives_same_records(tmp_path):
    """One LocalCluster (2 worker processes): stand-ins, then gravbench's own providers and refiners."""
    pytest.importorskip("dask.distributed")
    import cloudpickle

    from gravbench.refiners import names as refiner_names

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    client = runner.connect("local:2")
    try:
        cases = _cases(providers=("zero", "flaky"), refiners=("none", "cgls3"))
        local = run_cases(cases, tmp_path / "local.jsonl", toolkit=TK)
        seen = []
        dask_recs = run_cases(cases, tmp_path / "dask.jsonl", toolkit=TK, scheduler=client,
                              on_record=lambda r, skipped: seen.append(r))
        assert len(seen) == len(cases)
        _same(local, dask_recs)
        _same(local, read_records(tmp_path / "dask.jsonl"))
        assert sum(r["error"] is not None for r in dask_recs) == 2  # flaky x model 1 x two refiners
        # the real pieces: built test set, classical providers, a numba refiner
        if "cgls" in refiner_names():
            real = build_cases([12], ["zero", "tikhonov"], ["none", "cgls"], samples=2, noise=0.01, seed=3)
            tk = Toolkit()
            a = run_cases(real, None, toolkit=tk)
            b = run_cases(real, None, toolkit=tk, scheduler=client)
            assert all(r["error"] is None for r in a), [r["error"] for r in a]
            _same(a, b)
    finally:
        client.close()
        client.cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_unreachable_scheduler_is_a_clear_error():
    pytest.importorskip("dask.distributed")
    with pytest.raises(ValueError, match="cannot reach the Dask scheduler"):
        runner.connect("tcp://127.0.0.1:9", timeout=1.0)
    with pytest.raises(ValueError, match="local:N"):
        runner.connect("local:0")


def test_clear_caches_levels():
    c = _cases(refiners=("cgls2",))[0]
    runner.run_case(c, TK)
    ctx = runner._CTX
    assert ctx.rho0 and ctx.providers and ctx.sets
    runner.clear_caches(data=False)
    assert not ctx.rho0 and ctx.providers and ctx.sets
    runner.run_case(c, TK)
    runner.clear_caches(data=False, objects=True)
    assert not ctx.providers and ctx.sets
    runner.clear_caches()
    assert not ctx.sets


def test_each_case_gets_a_fresh_operator():
    """A refiner's per-operator cache must not be lent from one pair to the next (fair seconds)."""
    seen = []

    def refine(name, op, g, x0, sigma):
        seen.append(op)
        return fake_refine(name, op, g, x0, sigma)

    tk = Toolkit(load=fake_load, get_provider=fake_get_provider, refine=refine, warmup=True)
    run_cases(_cases(refiners=("cgls1", "cgls2")), None, toolkit=tk)
    assert len(seen) == 2 * SAMPLES + 2  # + one warm-up per refiner
    assert len({id(op) for op in seen}) == len(seen)
