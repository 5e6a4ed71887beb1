"""Run a sweep of cases, locally or on a Dask cluster, into a JSON Lines file.

Every finished case becomes one JSON record (one line, flushed and fsynced as
soon as the case finishes) with exactly the keys
:data:`gravbench.bench.metrics.RECORD_KEYS`:

``n, noise, model, provider, refiner``
    the case (``model`` is the index in the test set);
``model_error, data_misfit, chi2, success``
    :func:`gravbench.bench.metrics.evaluate` of the final estimate (``chi2`` is
    the reduced chi-squared, target 1; ``None`` for noise-free data);
``seconds``
    wall time of the provider call plus the refiner call (s), measured after a
    per-process warm-up so numba compilation and weight loading are not timed;
``n_matvec``
    operator applications by the refiner, ``A v`` plus ``A^T u`` (counted by the operator);
``niter``
    refiner iterations (0 for ``refiner="none"``);
``peak_mb``
    peak traced heap of the provider call or the refiner call, whichever is
    larger (MiB, :mod:`tracemalloc`: NumPy and Python allocations;
    numba-internal and torch allocations are not seen);
``error``
    ``None``, or ``"<ExceptionType>: <message>"`` when the provider or refiner
    raised (then every metric is ``None``);
``family``
    the geological family of the test model (``"blocks"``, ``"layers"``, ...; ``None`` when unknown);
``mass_error, x_centroid_error, z_centroid_error, depth_error``
    :func:`gravbench.bench.metrics.gravity_metrics`: excess-mass error, centroid errors (m)
    and the error by depth band (a list, top band first).

A case that raises becomes an error record and the sweep goes on.
``KeyboardInterrupt`` stops the sweep; the records already written stay, and
``resume=True`` skips every case that has a record. The sources of
providers, refiners and test data are injectable through :class:`Toolkit`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cases import NO_REFINER, Case, case_key
from .metrics import RECORD_KEYS, evaluate, gravity_metrics

__all__ = ["Toolkit", "TestSet", "run_case", "run_cases", "estimate", "read_records", "default_load",
           "default_get_provider", "default_refine", "test_set", "clear_caches", "SweepMismatch",
           "atomic_write_text", "connect"]


# --------------------------------------------------------------------------------------------
# sources (defaults: the real gravbench providers, refiners and data sets)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TestSet:
    """Held-out models of one grid size: ``rho`` ``(S, nz, nx)`` kg/m^3, data ``g`` and ``sigma`` ``(S, 2m)`` mGal."""

    __test__ = False  # not a pytest class

    problem: object
    rho: np.ndarray
    g: np.ndarray
    sigma: object = None  # (S, 2m) array or None for noise-free data
    source: str = ""
    family: tuple = ()  # the geological family name of each model ("" or empty when unknown)


def default_load(n, samples, noise, seed):
    """The test set of grid size ``n``: the standard ``paper-<n>`` test split when one exists, else a built set.

    Parameters
    ----------
    n : int
        Grid size.
    samples : int
        Models needed (the first ``samples`` of the set).
    noise : float
        Relative noise level.
    seed : int
        Seed of a built set (the standard sets have their own fixed seeds).
    """
    from .. import data
    from ..geometry import Problem

    prob = Problem.paper(n)
    ds = None
    source = ""
    std = getattr(data, "STANDARD", None) or getattr(data, "STANDARD_SETS", None)
    name = f"paper-{n}"
    if std is None or name in std:
        try:
            ds = data.standard(name, split="test", noise=noise)
            source = f"standard set {name} (test split)"
        except (KeyError, ValueError, FileNotFoundError):
            ds = None
    if ds is None or len(ds.rho) < samples:
        ds = data.build(prob, count=samples, seed=seed, noise=noise)
        if isinstance(ds, dict):  # {split: Dataset}; one split "all" here
            ds = ds["all"] if "all" in ds else next(iter(ds.values()))
        source = f"built: {samples} mixed models, seed {seed}"
    sig = getattr(ds, "sigma", None)
    sig = None if sig is None or noise == 0 else np.asarray(sig[:samples], dtype=np.float64)
    fam = tuple(ds.family_of(i) for i in range(min(samples, len(ds.rho)))) if hasattr(ds, "family_of") else ()
    return TestSet(problem=ds.problem if getattr(ds, "problem", None) is not None else prob,
                   rho=np.asarray(ds.rho[:samples], dtype=np.float64), g=np.asarray(ds.g[:samples], dtype=np.float64),
                   sigma=sig, source=source, family=fam)


def default_get_provider(name, n):
    """``gravbench.providers.get(name)``: providers pick their grid (and weights) from the problem at call time.

    A learned provider without weights for grid ``n`` raises
    ``gravbench.providers.NoWeightsError`` when called; the case records it.
    """
    from .. import providers

    return providers.get(name)


def default_refine(name, op, g, x0, sigma):
    """``gravbench.refiners.run(name, op, g, x0=x0, sigma=sigma)`` with the refiner's default settings."""
    from .. import refiners

    return refiners.run(name, op, g, x0=x0, sigma=sigma)


@dataclass(frozen=True)
class Toolkit:
    """Where a sweep gets its pieces from (all module-level callables, so Dask can ship them).

    Attributes
    ----------
    load : callable
        ``load(n, samples, noise, seed) -> TestSet``.
    get_provider : callable
        ``get_provider(name, n) -> provider``, ``provider(g, problem, sigma=..., seed=...) -> (nz, nx)``.
    refine : callable
        ``refine(name, op, g, x0, sigma) -> result`` with ``x``, ``niter`` (and optionally ``n_matvec``, ``n_rmatvec``).
    method : str
        Operator method passed to ``problem.operator``.
    warmup : bool
        Run each provider/refiner once untimed per process before timing it.
    """

    load: object = default_load
    get_provider: object = default_get_provider
    refine: object = default_refine
    method: str = "auto"
    warmup: bool = True


# --------------------------------------------------------------------------------------------
# per-process caches (test sets, operators, providers, initial models)
# --------------------------------------------------------------------------------------------
class _LRU(OrderedDict):
    def __init__(self, size):
        super().__init__()
        self.size = size

    def get_or(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        val = make()
        self[key] = val
        while len(self) > self.size:
            self.popitem(last=False)
        return val


@dataclass
class _Context:
    sets: _LRU = field(default_factory=lambda: _LRU(4))
    providers: _LRU = field(default_factory=lambda: _LRU(16))
    rho0: _LRU = field(default_factory=lambda: _LRU(64))
    warm: set = field(default_factory=set)


#: caches of this process (each Dask worker process has its own); operators are built per case
_CTX = _Context()


def clear_caches(data=True, objects=None):
    """Drop this process's cached provider outputs, and more on request.

    Parameters
    ----------
    data : bool
        Also drop the test sets (and, unless ``objects=False``, the provider objects).
    objects : bool, optional
        Drop the provider objects (with whatever they cache inside, such as weights or
        factorisations), so the next case builds them again. Default: ``data``. (Operators
        are never kept between cases.)

    The per-process warm-up marks are kept, so nothing is compiled or warmed again.
    """
    _CTX.rho0.clear()
    if data if objects is None else objects:
        _CTX.providers.clear()
    if data:
        _CTX.sets.clear()


def _err(exc):
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _blank(case):
    rec = dict.fromkeys(RECORD_KEYS)
    rec.update(n=int(case.n), noise=float(case.noise), model=int(case.model), provider=case.provider,
               refiner=case.refiner)
    return rec


def _ints(v):
    return None if v is None else int(v)


def _provide(case, tk, ts, ctx):
    """(rho0, seconds) of the case's provider on its model, cached per process; exceptions are cached too."""

    def make():
        try:
            prov = ctx.providers.get_or((tk, case.provider, case.n), lambda: tk.get_provider(case.provider, case.n))
            g = ts.g[case.model]
            s = None if ts.sigma is None else ts.sigma[case.model]
            sd = case.seed * 100003 + case.model
            wkey = ("provider", case.provider, case.n)
            if tk.warmup and wkey not in ctx.warm:
                prov(g, ts.problem, sigma=s, seed=sd)
                ctx.warm.add(wkey)
            with _Peak() as pk:
                t0 = time.perf_counter()
                rho0 = prov(g, ts.problem, sigma=s, seed=sd)
                dt = time.perf_counter() - t0
            rho0 = np.asarray(rho0, dtype=np.float64).reshape(ts.problem.shape)
            return rho0, dt, pk.mb, None
        except Exception as exc:  # noqa: BLE001 - recorded, the sweep goes on
            return None, None, None, exc

    key = (tk, case.n, case.noise, case.seed, case.samples, case.model, case.provider)
    return ctx.rho0.get_or(key, make)


class _Peak:
    """Peak traced heap (MiB) inside a ``with`` block, via :mod:`tracemalloc`."""

    def __enter__(self):
        import tracemalloc

        self._tm = tracemalloc
        self._own = not tracemalloc.is_tracing()
        if self._own:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._base = tracemalloc.get_traced_memory()[0]
        self.mb = None
        return self

    def __exit__(self, *exc):
        peak = self._tm.get_traced_memory()[1]
        if self._own:
            self._tm.stop()
        self.mb = max(0.0, (peak - self._base) / 2**20)
        return False


def _solve(case, tk, ts, ctx):
    """Provider + refiner of one case: (estimate, record fields, operator) or raises.

    Every case gets a fresh operator object (about a millisecond to build), so whatever a
    refiner caches per operator (e.g. a factorisation for one noise level) is paid by the
    case that needs it and never lent to the next pair on the same model.
    """
    op = ts.problem.operator(method=tk.method)
    rho0, t_prov, mb_prov, exc = _provide(case, tk, ts, ctx)
    if exc is not None:
        raise exc
    g = ts.g[case.model]
    s = None if ts.sigma is None else ts.sigma[case.model]
    if case.refiner == NO_REFINER:
        return rho0, {"seconds": t_prov, "n_matvec": 0, "niter": 0, "peak_mb": mb_prov}, op
    wkey = ("refiner", case.refiner, getattr(op, "method", ""), case.n)
    if tk.warmup and wkey not in ctx.warm:
        tk.refine(case.refiner, ts.problem.operator(method=tk.method), g, rho0.copy(), s)  # its own operator
        ctx.warm.add(wkey)
    if hasattr(op, "reset_counters"):
        op.reset_counters()
    x0 = rho0.copy()
    with _Peak() as pk:
        t0 = time.perf_counter()
        res = tk.refine(case.refiner, op, g, x0, s)
        secs = time.perf_counter() - t0
    if hasattr(op, "n_matvec"):
        nmv = int(op.n_matvec) + int(getattr(op, "n_rmatvec", 0))
    else:
        nmv = (_ints(getattr(res, "n_matvec", None)) or 0) + (_ints(getattr(res, "n_rmatvec", None)) or 0)
    x = np.asarray(res.x, dtype=np.float64).reshape(ts.problem.shape)
    return x, {"seconds": t_prov + secs, "n_matvec": nmv, "niter": _ints(getattr(res, "niter", None)),
               "peak_mb": max(mb_prov, pk.mb)}, op


def _testset(case, tk, ctx):
    return ctx.sets.get_or((tk, case.n, case.samples, case.noise, case.seed),
                           lambda: tk.load(case.n, case.samples, case.noise, case.seed))


def test_set(n, samples, noise, seed, toolkit=None):
    """The test set a sweep uses for grid size ``n`` (cached in this process, shared with the local runner)."""
    tk = toolkit or Toolkit()
    return _testset(Case(n=n, noise=noise, model=0, provider="", refiner="", seed=seed, samples=samples), tk, _CTX)


test_set.__test__ = False  # not a pytest test


def estimate(case, toolkit=None):
    """Run one case and return ``(rho_true, rho_hat)`` (both ``(nz, nx)``, kg/m^3); raises on failure."""
    tk = toolkit or Toolkit()
    ts = _testset(case, tk, _CTX)
    x, _, _ = _solve(case, tk, ts, _CTX)
    return np.asarray(ts.rho[case.model], dtype=np.float64), x


def run_case(case, toolkit=None):
    """Run one case; returns its record (a dict with exactly :data:`RECORD_KEYS`). Never raises ``Exception``."""
    tk = toolkit or Toolkit()
    rec = _blank(case)
    try:
        ts = _testset(case, tk, _CTX)
        if not 0 <= case.model < len(ts.rho):
            raise ValueError(f"model index {case.model} is outside the test set of {len(ts.rho)} models")
        x, fields, op = _solve(case, tk, ts, _CTX)
        if not np.all(np.isfinite(x)):
            raise FloatingPointError("the estimate contains NaN or inf")
        s = None if ts.sigma is None else ts.sigma[case.model]
        met = evaluate(op, ts.rho[case.model], x, ts.g[case.model], s)
        rec.update(met)
        rec.update(fields)
        grid = ts.problem.grid
        rec.update(gravity_metrics(ts.rho[case.model], x, grid.x_edges, grid.z_edges))
    except Exception as exc:  # noqa: BLE001 - a failing case is a record, not a crash
        rec = _blank(case)
        rec["error"] = _err(exc)
    rec["family"] = _family(case, tk)
    return _clean(rec)


def _family(case, tk):
    """The test model's family name from its (cached) test set, or ``None`` when unknown."""
    try:
        fam = _testset(case, tk, _CTX).family
        return str(fam[case.model]) if 0 <= case.model < len(fam) and fam[case.model] else None
    except Exception:  # noqa: BLE001 - the record already says why the set failed
        return None


def _clean(rec):
    out = {}
    for k in RECORD_KEYS:
        v = rec.get(k)
        if isinstance(v, (np.floating, float)):
            v = float(v)
            v = v if math.isfinite(v) else None
        elif isinstance(v, (np.integer,)):
            v = int(v)
        elif isinstance(v, np.bool_):
            v = bool(v)
        out[k] = v
    return out


# --------------------------------------------------------------------------------------------
# record files
# --------------------------------------------------------------------------------------------
class SweepMismatch(ValueError):
    """``resume`` was asked for a record file made with different sweep settings."""


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` atomically (a temporary file in the same directory, then ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def read_records(path):
    """The valid records of a JSON Lines file (a torn last line from a killed run is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and all(k in rec for k in RECORD_KEYS):
                out.append(rec)
    return out


def _meta_path(path):
    """The sweep settings beside a record file: ``.<name>.meta.json`` (hidden)."""
    return Path(path).with_name(f".{Path(path).name}.meta.json")


def _sweep_settings(cases):
    if not cases:
        return {}
    c = cases[0]
    return {"seed": c.seed, "samples": c.samples}


def _append(fh, rec):
    fh.write(json.dumps(rec, allow_nan=False) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


# --------------------------------------------------------------------------------------------
# Dask
# --------------------------------------------------------------------------------------------
def connect(address, timeout=5.0):
    """A ``dask.distributed.Client`` for ``"tcp://host:port"`` or ``"local:N"`` (a LocalCluster of N processes).

    Raises
    ------
    ValueError
        On a malformed address or an unreachable scheduler (after ``timeout`` seconds).
    ImportError
        When ``dask.distributed`` is not installed (the ``dask`` extra).
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("--scheduler needs dask.distributed: pip install 'gravbench[dask]'") from exc
    if not isinstance(address, str) or not address:
        raise ValueError(f"scheduler must be 'tcp://host:port' or 'local:N', got {address!r}")
    if address.startswith("local:") or address == "local":
        nstr = address.partition(":")[2] or "2"
        try:
            nw = int(nstr)
        except ValueError:
            nw = -1
        if nw < 1:
            raise ValueError(f"scheduler 'local:N' needs N >= 1 worker processes, got {address!r}")
        cluster = LocalCluster(n_workers=nw, threads_per_worker=1, processes=True, dashboard_address=None,
                               env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                    "OPENBLAS_NUM_THREADS": "1"})
        return Client(cluster, timeout=f"{max(timeout, 30.0)}s")
    if "://" not in address:
        raise ValueError(f"scheduler must be 'tcp://host:port' or 'local:N', got {address!r}")
    try:
        return Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s") from None


# --------------------------------------------------------------------------------------------
# the sweep
# --------------------------------------------------------------------------------------------
def run_cases(cases, path=None, *, resume=False, toolkit=None, scheduler=None, on_record=None):
    """Run ``cases`` and return their records in case order.

    Parameters
    ----------
    cases : list of Case
    path : str or Path, optional
        JSON Lines file to append each record to as it finishes (flushed and
        fsynced). Without ``resume`` an existing file is replaced.
    resume : bool
        Keep the records already in ``path`` and skip their cases. The sweep
        settings (seed, samples) are kept beside the file in ``.<name>.meta.json``;
        resuming with different settings raises :class:`SweepMismatch`.
    toolkit : Toolkit, optional
        Sources of test data, providers and refiners (default: gravbench's own).
    scheduler : str or dask.distributed.Client, optional
        ``None`` runs in this process; ``"tcp://host:port"``, ``"local:N"`` or a
        ``Client`` runs the cases as Dask tasks (records are still written here).
    on_record : callable, optional
        ``on_record(record, skipped)`` after every case (``skipped`` for resumed ones).

    Returns
    -------
    list of dict
        One record per case, ordered like ``cases``.
    """
    tk = toolkit or Toolkit()
    cases = list(cases)
    for c in cases:
        if not isinstance(c, Case):
            raise ValueError(f"cases must be gravbench.bench.Case objects, got {type(c).__name__}")
    keys = [c.key for c in cases]
    if len(set(keys)) != len(keys):
        raise ValueError("cases contain duplicates (same n, noise, model, provider, refiner)")
    done = {}
    fh = None
    if path is not None:
        path = Path(path)
        settings = _sweep_settings(cases)
        meta = _meta_path(path)
        if resume and path.exists():
            if meta.exists():
                old = json.loads(meta.read_text(encoding="utf-8"))
                diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
                if diff:
                    what = ", ".join(f"{k} was {a} now {b}" for k, (a, b) in diff.items())
                    raise SweepMismatch(f"cannot resume {path}: it was made with other settings ({what})")
            prev = read_records(path)
            # rewrite the valid records (drops a torn last line), then append
            atomic_write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in prev))
            wanted = set(keys)
            done = {case_key(r): r for r in prev if case_key(r) in wanted}
        else:
            atomic_write_text(path, "")
        atomic_write_text(meta, json.dumps(settings) + "\n")
        fh = open(path, "a", encoding="utf-8")
    results = dict(done)
    try:
        if on_record is not None:
            for k in keys:
                if k in done:
                    on_record(done[k], True)
        todo = [c for c in cases if c.key not in done]

        def finish(rec):
            results[case_key(rec)] = rec
            if fh is not None:
                _append(fh, rec)
            if on_record is not None:
                on_record(rec, False)

        if scheduler is None:
            for c in todo:
                finish(run_case(c, tk))
        else:
            _run_dask(todo, tk, scheduler, finish)
    finally:
        if fh is not None:
            fh.close()
    return [results[k] for k in keys if k in results]


def _run_dask(todo, tk, scheduler, finish):
    from dask.distributed import as_completed

    own = isinstance(scheduler, str)
    client = connect(scheduler) if own else scheduler
    futures = []
    try:
        futures = [client.submit(run_case, c, tk, pure=False, key=f"gravbench-case-{i}-{os.getpid()}-{time.time_ns()}")
                   for i, c in enumerate(todo)]
        for fut in as_completed(futures):
            finish(fut.result())
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    finally:
        if own:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
