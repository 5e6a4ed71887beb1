"""Run a sweep of cases, locally or on a Dask cluster, into a JSON Lines file.

Every finished case becomes one JSON record (one line, flushed and fsynced as
soon as the case finishes) with exactly the keys
:data:`gravbench.metrics.RECORD_KEYS`:

``n, noise, model, provider, refiner``
    the case (``model`` is the index in the test set);
``model_error, data_misfit, chi2, success``
    :func:`gravbench.metrics.evaluate` of the final estimate (``chi2`` is
    the reduced chi-squared, target 1; ``None`` for noise-free data);
``seconds``
    wall time of the provider call plus the refiner call (s), measured after a
    per-process warm-up so numba compilation and weight loading are not timed;
``n_matvec``
    operator applications by the refiner, ``A v`` plus ``A^T u`` (counted by the operator);
``niter``
    refiner iterations (0 for ``refiner="none"``);
``peak_mb``
    peak resident memory (RSS) the provider call or the refiner call added,
    whichever is larger (MiB, :class:`gravbench.bench.memory.PeakRSS`: the
    process's RSS high-water mark, so numba, FFT and torch allocations count;
    with a Dask or thread pool running several cases in one process, the
    others' allocations at the same moment count too);
``error``
    ``None``, or ``"<ExceptionType>: <message>"`` when the provider or refiner
    raised (then every metric is ``None``);
``status``
    ``"ok"``, ``"error"`` or ``"skipped"``: a case that cannot run by design (no
    weights for the grid, a method that cannot run at that size, an optional
    package that is not installed; see :func:`skip_reason`) is skipped, not an
    error, and has every metric ``None``;
``reason``
    why a case was skipped (``"<ExceptionType>: <message>"``), else ``None``;
``schema``
    :data:`SCHEMA`, the version of this record layout (records of files written
    before it existed are read as schema 1, with ``status`` derived from ``error``).
``family``
    the geological family of the test model (``"blocks"``, ``"layers"``, ...; ``None`` when unknown);
``mass_error, x_centroid_error, z_centroid_error, depth_error``
    :func:`gravbench.metrics.gravity_metrics`: excess-mass error, centroid errors (m)
    and the error by depth band (a list, top band first).

A case that raises becomes an error (or skipped) record and the sweep goes on.

Data safety: a sweep never truncates or rewrites its record file before it has
produced the replacement. Records go to ``.<name>.partial`` beside ``path``
(appended, flushed and fsynced per case); when every case has a record, the
partial file atomically replaces ``path`` (``os.replace``). A lock file
``.<name>.lock`` (``fcntl.flock``) stops two sweeps writing one record file
(:class:`SweepLocked`). Without ``resume`` or ``overwrite`` the partial file of
an interrupted sweep, or a non-empty ``path`` that holds no records (not a
record file), is refused (:class:`OutputExists`); an earlier record file is
replaced only when the new sweep has finished. ``KeyboardInterrupt`` or a kill stops the sweep; the
records already written stay in the partial file, and ``resume=True`` skips
every case that has a record in ``path`` or in the partial file (duplicates are
ignored and reported). The sources of providers, refiners and test data are
injectable through :class:`Toolkit`.
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

from .cases import NO_REFINER, Case, SkipCase, case_key
from .._atomic import atomic_write_text
from .memory import PeakRSS
from ..metrics import RECORD_KEYS, evaluate, gravity_metrics
from .. import data, providers, refiners
from ..problem import Problem
from ..providers.base import NotApplicable

__all__ = ["Toolkit", "TestSet", "run_case", "run_cases", "estimate", "read_records", "default_load",
           "default_get_provider", "default_refine", "test_set", "clear_caches", "SweepMismatch",
           "SweepLocked", "OutputExists", "atomic_write_text", "connect", "skip_reason", "partial_path", "SCHEMA",
           "count_status", "provider_weights", "provider_with_options"]

#: version of the record layout written by this module (1: before ``status``, ``reason``, ``schema``)
SCHEMA = 2


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
    return _as_testset(ds, samples, noise, source, prob)


def standard_load(name, n, samples, noise, seed):
    """The test split of the standard set ``name`` (e.g. an independent set such as ``rectangles-50``).

    A ``Toolkit.load`` once bound to a name (``functools.partial(standard_load, name)``). ``seed`` is
    unused (the set has its own); ``n`` must be the set's grid size, and it must hold ``samples`` models.
    """
    spec = data.STANDARD.get(name)
    if spec is None:
        raise ValueError(f"unknown standard data set {name!r}; choose from {sorted(data.STANDARD)}")
    if int(n) != spec.n:
        raise ValueError(f"data set {name} has grid size n = {spec.n}, not n = {n}")
    ds = data.standard(name, split="test", noise=noise, progress=False)
    if len(ds.rho) < samples:
        raise ValueError(f"data set {name} has {len(ds.rho)} test models, fewer than the {samples} asked for")
    return _as_testset(ds, samples, noise, f"standard set {name} (test split)", spec.problem())


def _as_testset(ds, samples, noise, source, prob):
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
    return providers.get(name)


def provider_with_options(name, n, options=()):
    """``gravbench.providers.get(name, **opts)`` with ``opts`` from ``options``: ``((name, ((key, value), ...)), ...)``.

    Used through ``functools.partial`` as a :class:`Toolkit` ``get_provider`` (picklable for Dask), e.g. to run
    the ``cnn`` provider with user-trained weights: ``options=(("cnn", (("weights", "my-run"),)),)``.
    """
    opts = dict(dict(options).get(name, ()))
    return providers.get(name, **opts)


def default_refine(name, op, g, x0, sigma):
    """``gravbench.refiners.run(name, op, g, x0=x0, sigma=sigma)`` with the refiner's default settings."""
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
    limits : tuple
        ``((kind, name, largest_n), ...)`` with ``kind`` ``"provider"`` or ``"refiner"``: a case whose
        provider or refiner is asked for a larger ``n`` is skipped (before its test set is loaded), with
        the reason in the record. ``gravbench compare`` fills it from the scaling report
        (:func:`gravbench.reports.scaling.limits`).
    """

    load: object = default_load
    get_provider: object = default_get_provider
    refine: object = default_refine
    method: str = "auto"
    warmup: bool = True
    limits: tuple = ()


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


def provider_weights():
    """``{provider name: {grid: "path (sha256 ...)"}}`` of the learned providers this process has used.

    Read from the cached provider objects (``info.extra["weights"]``), so it names the weight files
    a local sweep actually loaded; empty for a Dask sweep (the objects live in the workers).
    """
    out = {}
    for key, prov in list(_CTX.providers.items()):
        try:
            extra = prov.info.extra
        except Exception:  # noqa: BLE001 - stand-in providers have no info
            continue
        used = extra.get("weights") if isinstance(extra, dict) else None
        if used:
            pkg = str(Path(__file__).resolve().parents[1])  # shipped weights: a path inside the package
            out.setdefault(key[1], {}).update({g: str(w).replace(pkg, "<gravbench>") for g, w in used.items()})
    return out


def _err(exc):
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _blank(case):
    rec = dict.fromkeys(RECORD_KEYS)
    rec.update(n=int(case.n), noise=float(case.noise), model=int(case.model), provider=case.provider,
               refiner=case.refiner, schema=SCHEMA)
    return rec


def skip_reason(exc):
    """``"<ExceptionType>: <message>"`` when ``exc`` means the case cannot run by design, else ``None``.

    Skipped by design: :class:`~gravbench.bench.cases.SkipCase`,
    :class:`gravbench.providers.NotApplicable` (including ``NoWeightsError``: no
    weights for the grid; a problem too large for the method) and an ``ImportError``
    of an optional package (not of gravbench itself, which is a bug).
    """

    if isinstance(exc, (SkipCase, NotApplicable)):
        return _err(exc)
    if isinstance(exc, ImportError) and not str(getattr(exc, "name", None) or "").startswith("gravbench"):
        return _err(exc)
    return None


def count_status(records):
    """``{"ok": k, "error": k, "skipped": k}`` of a list of records."""
    out = {"ok": 0, "error": 0, "skipped": 0}
    for r in records:
        st = r.get("status") or ("error" if r.get("error") is not None else "ok")
        out[st] = out.get(st, 0) + 1
    return out


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


class _Peak(PeakRSS):
    """Peak RSS the block added (MiB, :class:`gravbench.bench.memory.PeakRSS`)."""


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


def _check_limits(case, tk):
    """Raise :class:`SkipCase` when the case's provider or refiner is past its largest feasible n."""
    for kind, name, largest in getattr(tk, "limits", ()) or ():
        if case.n > int(largest) and getattr(case, kind, None) == name:
            raise SkipCase(f"{kind} {name} is beyond its budget at n = {case.n}: the scaling report "
                           f"(gravbench report scaling) stopped it above n = {largest}")


def run_case(case, toolkit=None):
    """Run one case; returns its record (a dict with exactly :data:`RECORD_KEYS`). Never raises ``Exception``."""
    tk = toolkit or Toolkit()
    rec = _blank(case)
    try:
        _check_limits(case, tk)
    except SkipCase as exc:
        rec["status"], rec["reason"] = "skipped", skip_reason(exc)
        return _clean(rec)
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
        rec["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - a failing case is a record, not a crash
        rec = _blank(case)
        why = skip_reason(exc)
        if why is not None:
            rec["status"], rec["reason"] = "skipped", why
        else:
            rec["status"], rec["error"] = "error", _err(exc)
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


class SweepLocked(ValueError):
    """Another sweep holds the lock of the record file."""


class OutputExists(ValueError):
    """The record file (or the partial file of an interrupted sweep) holds data and neither
    ``resume`` nor ``overwrite`` was given."""


def _upgrade(rec):
    """A record of any schema as a dict with exactly :data:`RECORD_KEYS` (missing keys ``None``)."""
    out = {k: rec.get(k) for k in RECORD_KEYS}
    if out.get("status") not in ("ok", "error", "skipped"):
        out["status"] = "error" if out.get("error") is not None else "ok"
    if out.get("schema") is None:
        out["schema"] = 1
    return out


#: keys every record of every schema has
_CORE_KEYS = ("n", "noise", "model", "provider", "refiner", "error")


def read_records(path):
    """The valid records of a JSON Lines file (a torn last line from a killed run is skipped).

    Records of older schemas are returned with the current :data:`RECORD_KEYS`
    (new keys ``None``; ``status`` from ``error``). Duplicates are returned as they are.
    """
    path = Path(path)
    if not path.exists():
        return []
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a JSON Lines record file")
    out = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and all(k in rec for k in _CORE_KEYS):
                try:
                    case_key(rec)
                except (TypeError, ValueError):
                    continue
                out.append(_upgrade(rec))
    return out


def partial_path(path):
    """Where a sweep writing ``path`` keeps its records until it finishes: ``.<name>.partial``."""
    return Path(path).with_name(f".{Path(path).name}.partial")


def _lock_path(path):
    return Path(path).with_name(f".{Path(path).name}.lock")


class _FileLock:
    """An exclusive, non-blocking ``fcntl.flock`` on ``.<name>.lock`` beside a record file.

    The lock file stays (removing it would race with a waiting process); the lock
    goes with the process, so a killed sweep never leaves a stale lock.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.fh = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return self
        lp = _lock_path(self.path)
        fh = open(lp, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            who = fh.read().strip() or "another process"
            fh.close()
            raise SweepLocked(f"{self.path} is being written by another gravbench sweep ({who}); wait for it to "
                              "finish or write to another file (--json)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        self.fh = fh
        return self

    def __exit__(self, *exc):
        if self.fh is not None:
            self.fh.close()  # closing releases the flock
            self.fh = None
        return False


def _meta_path(path):
    """The sweep settings beside a record file: ``.<name>.meta.json`` (hidden)."""
    return Path(path).with_name(f".{Path(path).name}.meta.json")


def _sweep_settings(cases, identity=None):
    """The sweep's identity: the case settings outside the case key (seed, samples) plus ``identity``."""
    out = {}
    if cases:
        out = {"seed": cases[0].seed, "samples": cases[0].samples}
    for k, v in (identity or {}).items():
        out[str(k)] = json.loads(json.dumps(v, allow_nan=False))  # JSON-normal form, as read back from the files
    return out


def _settings_diff(old, new):
    """``"sigma_scale was 1.0 now 2.0, ..."`` for the keys where two identities differ, else ``None``."""
    parts = []
    for k in list(new) + [k for k in old if k not in new]:
        if k not in old:
            parts.append(f"{k} not recorded now {new[k]}")
        elif k not in new:
            parts.append(f"{k} was {old[k]} now not set")
        elif old[k] != new[k]:
            parts.append(f"{k} was {old[k]} now {new[k]}")
    return ", ".join(parts) or None


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
    except (OSError, TimeoutError):
        raise ValueError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s") from None


# --------------------------------------------------------------------------------------------
# the sweep
# --------------------------------------------------------------------------------------------
def run_cases(cases, path=None, *, resume=False, overwrite=False, toolkit=None, scheduler=None, on_record=None,
              log=None, identity=None):
    """Run ``cases`` and return their records in case order.

    Parameters
    ----------
    cases : list of Case
    path : str or Path, optional
        JSON Lines record file. Records are appended (flushed and fsynced) to the
        partial file ``.<name>.partial`` beside it as cases finish; when every case
        has a record the partial file replaces ``path`` atomically, so ``path``
        always holds a complete earlier sweep or this one, never a mix or nothing.
        A lock file ``.<name>.lock`` keeps other sweeps out while this one runs.
    resume : bool
        Keep the records already in ``path`` and in the partial file of an
        interrupted sweep, and skip their cases; duplicate records of one case are
        ignored (the first is kept) and reported through ``log``. The sweep settings
        (seed, samples and ``identity``) are kept beside the files in ``.<name>.meta.json``
        and in every record (its ``settings``); resuming with different settings, or
        records that carry other settings, raises :class:`SweepMismatch`.
    overwrite : bool
        Start afresh even when an interrupted sweep left a partial file, or when
        ``path`` is not a record file. Without ``resume`` or ``overwrite`` these
        raise :class:`OutputExists`; an earlier record file at ``path`` is replaced
        (only once this sweep has finished) either way.
    toolkit : Toolkit, optional
        Sources of test data, providers and refiners (default: gravbench's own).
    scheduler : str or dask.distributed.Client, optional
        ``None`` runs in this process; ``"tcp://host:port"``, ``"local:N"`` or a
        ``Client`` runs the cases as Dask tasks (records are still written here).
    on_record : callable, optional
        ``on_record(record, skipped)`` after every case (``skipped`` for resumed ones).
    log : callable, optional
        ``log(message)`` for notes such as ignored duplicates.
    identity : dict, optional
        Every other setting that changes a case's result (e.g. ``sigma_scale``,
        ``noise_kind``, ``weights``, ``limits``), JSON-serialisable; part of the
        sweep's identity like seed and samples.

    Returns
    -------
    list of dict
        One record per case, ordered like ``cases``.

    Raises
    ------
    SweepLocked
        Another sweep is writing ``path``.
    OutputExists
        A partial file of an interrupted sweep, or a ``path`` that is not a record file, and
        neither ``resume`` nor ``overwrite``.
    SweepMismatch
        ``resume`` with settings other than the files were made with.
    """
    tk = toolkit or Toolkit()
    cases = list(cases)
    for c in cases:
        if not isinstance(c, Case):
            raise ValueError(f"cases must be gravbench.bench.Case objects, got {type(c).__name__}")
    keys = [c.key for c in cases]
    if len(set(keys)) != len(keys):
        raise ValueError("cases contain duplicates (same n, noise, model, provider, refiner)")
    settings = _sweep_settings(cases, identity)
    if path is None:
        return _sweep(cases, keys, {}, None, tk, scheduler, on_record, settings)
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"record file {path} is a directory; give a file name such as {path / 'records.jsonl'}")
    part = partial_path(path)
    with _FileLock(path):
        if resume:
            def mismatch(f):
                if not f.exists():
                    return None
                meta = _meta_path(f)
                if meta.exists():
                    try:
                        old = json.loads(meta.read_text(encoding="utf-8"))
                    except (OSError, ValueError):
                        old = {}
                    what = _settings_diff(old if isinstance(old, dict) else {}, settings)
                    if what is not None:
                        return what
                for r in read_records(f):  # each record names the settings that made it
                    if r.get("settings") is not None and r["settings"] != settings:
                        what = _settings_diff(r["settings"] if isinstance(r["settings"], dict) else {}, settings)
                        if what is not None:
                            return what
                return None

            sources = [path, part]
            for f in (part, path):
                what = mismatch(f)
                if what is None:
                    continue
                if f == path and part.exists():  # resuming the interrupted sweep that is to replace path
                    sources = [part]
                    if log is not None:
                        log(f"resume: {path.name} holds a sweep with other settings ({what}); it is replaced when "
                            "this sweep finishes")
                    continue
                raise SweepMismatch(f"cannot resume {f}: it was made with other settings ({what})")
            prev, seen, dups = [], set(), 0
            for r in [r for f in sources for r in read_records(f)]:
                k = case_key(r)
                if k in seen:
                    dups += 1
                    continue
                seen.add(k)
                prev.append(r)
            if dups and log is not None:
                log(f"resume: ignored {dups} duplicate record(s) in {path.name} (kept the first record of each case)")
            atomic_write_text(part, "".join(json.dumps(r, allow_nan=False) + "\n" for r in prev))
            wanted = set(keys)
            done = {case_key(r): r for r in prev if case_key(r) in wanted}
        else:
            if not overwrite:
                if part.exists() and part.stat().st_size > 0:
                    raise OutputExists(f"{part} holds the records of an interrupted sweep; continue it with --resume "
                                       "(resume=True) or discard it with --overwrite (overwrite=True)")
                if path.exists() and path.stat().st_size > 0 and not read_records(path):
                    raise OutputExists(f"{path} exists and is not a gravbench record file; choose another file "
                                       "or replace it with --overwrite (overwrite=True)")
                if path.exists() and log is not None:
                    log(f"{path} ({len(read_records(path))} records) will be replaced when this sweep finishes "
                        "(--resume keeps them)")
            atomic_write_text(part, "")
            done = {}
        atomic_write_text(_meta_path(part), json.dumps(settings) + "\n")
        with open(part, "a", encoding="utf-8") as fh:
            records = _sweep(cases, keys, done, fh, tk, scheduler, on_record, settings)
        # every case has a record: the partial file becomes the record file in one step
        os.replace(_meta_path(part), _meta_path(path))
        os.replace(part, path)
        return records


def _sweep(cases, keys, done, fh, tk, scheduler, on_record, settings=None):
    results = dict(done)
    if on_record is not None:
        for k in keys:
            if k in done:
                on_record(done[k], True)
    todo = [c for c in cases if c.key not in done]

    def finish(rec):
        rec = dict(rec, settings=settings or None)
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
