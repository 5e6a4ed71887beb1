"""Standard data sets by name, built on first use into a cache directory and reused after.

Cache layout: ``<cache_dir()>/datasets/<name>-g<GENERATOR_VERSION>/<split>.npz``
where :func:`cache_dir` is ``$GRAVBENCH_CACHE`` or ``~/.cache/gravbench``.
The files hold the models, the clean data, and the data with the set's
default noise (1 % of each component's peak, noise seed = model seed).
Asking for another noise level, floor, model or seed re-noises the stored
clean data at load time (:func:`gravbench.data.add_noise`): deterministic, and
no rebuild. Each split is built when first asked for (the test split alone
is cheap; it is bitwise the same as in a full build). A build takes a file
lock, so concurrent processes build once.

Every split loaded by :func:`standard` is compared with the fingerprint
recorded in the package (``gravbench/data/fingerprints.json``, see
:mod:`gravbench.data.fingerprint`): a cached split that differs (left by
older code, or damaged) is rebuilt once; if the fresh build still differs,
the load is refused with a ``ValueError`` that says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import fingerprint as fpm
from .dataset import add_noise, build, load
from .families import GENERATOR_VERSION
from .independent import INDEPENDENT_VERSION, build_independent
from .. import __version__
from ..problem import Problem

__all__ = ["STANDARD", "StandardSpec", "standard", "standard_paths", "cache_dir", "recorded", "check_fingerprint",
           "compute_standard", "record"]


@dataclass(frozen=True)
class StandardSpec:
    """A named data set: ``Problem.paper(n)``, split counts, families, seed and default noise."""

    n: int
    splits: tuple  # (train, val, test) counts
    families: str = "mixed"
    seed: int = 0
    noise: float = 0.01
    kernel: str = "exact"
    description: str = ""
    geometry: str = "paper"  # "paper": Problem.paper(n, kernel); "seed": Problem.seed(n) (midpoint kernel)
    generator: str = "families"  # "families": data/families.py; else a generator of data/independent.py

    def problem(self):
        if self.geometry == "seed":
            return Problem.seed(n=self.n)
        return Problem.paper(n=self.n, kernel=self.kernel)


#: The named sets. ``paper-50`` is the seed paper's size (27,000 / 1,000 / 1,000 at n = 50).
STANDARD = {
    "paper-50": StandardSpec(50, (27_000, 1_000, 1_000), description="the seed paper's setup: n = 50, 3n stations"),
    "paper-25": StandardSpec(25, (9_000, 500, 500), description="n = 25, for quick training and tests"),
    "paper-100": StandardSpec(100, (9_000, 500, 500), description="n = 100, for the n = 100 CNN"),
    "paper-200": StandardSpec(200, (1_800, 100, 100), description="n = 200, test-size sets for large-grid benchmarks"),
    "small-16": StandardSpec(16, (512, 64, 64), description="n = 16, tiny: CI and examples"),
    "fwi-51": StandardSpec(51, (27_000, 1_000, 1_000), families="fwi", kernel="midpoint", geometry="seed",
                           description="the seed code's geometry (Problem.seed(51)) and OpenFWI-style absolute "
                                       "densities: the paper's Table I like for like"),
    # independent test sets: generators that share no code or default with data/families.py; test split only,
    # never used to choose a default (docs/protocol.md)
    "rectangles-50": StandardSpec(50, (0, 0, 200), families="rectangles", seed=27, generator="rectangles",
                                  description="independent test set: 1-3 axis-aligned rectangles (4-15 cells, "
                                              "+-200..600 kg/m^3), n = 50; test split only"),
    "sections-50": StandardSpec(50, (0, 0, 200), families="sections", seed=28, generator="sections",
                                description="independent test set: geological sections (layered basin, faults, "
                                            "basement step, salt body), n = 50; test split only"),
}


def generator_version(spec):
    """The version of the code that generates ``spec``'s models (families.py's or independent.py's)."""
    return GENERATOR_VERSION if spec.generator == "families" else INDEPENDENT_VERSION


def cache_dir():
    """The cache root: ``$GRAVBENCH_CACHE`` if set, else ``~/.cache/gravbench`` (as a Path, not created)."""
    env = os.environ.get("GRAVBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gravbench"


def _spec(name):
    if name not in STANDARD:
        raise ValueError(f"unknown standard data set {name!r}; choose from {sorted(STANDARD)}")
    return STANDARD[name]


def standard_paths(name="paper-50"):
    """``{split: path}`` of the cached files of a standard set (they may not exist yet)."""
    spec = _spec(name)
    d = cache_dir() / "datasets" / f"{name}-g{generator_version(spec)}"
    return {s: d / f"{s}.npz" for s in ("train", "val", "test")}


def ensure_built(name="paper-50", progress=True, splits=("train", "val", "test"), *, stale=None):
    """Build the missing ``splits`` of the standard set ``name`` into the cache; returns ``{split: path}``.

    Splits are built independently (``build(only=...)``) and are bitwise
    identical to those of a full build, so asking for the test split first
    does not pay for the training set.

    ``stale``: ``{split: st_mtime_ns}`` of cached files found to be stale;
    under the lock, each is deleted and rebuilt unless another process has
    already replaced it (its modification time changed).
    """
    spec = _spec(name)
    paths = standard_paths(name)
    splits = [splits] if isinstance(splits, str) else list(splits)
    for s in splits:
        if s not in paths:
            raise ValueError(f"split must be 'train', 'val' or 'test', got {s!r}")
    stale = dict(stale or {})
    if not stale and all(paths[s].is_file() for s in splits):
        return paths
    d = paths["train"].parent
    d.mkdir(parents=True, exist_ok=True)
    import fcntl

    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait, then reuse
        try:
            for s, mtime in stale.items():
                if paths[s].is_file() and paths[s].stat().st_mtime_ns == mtime:
                    paths[s].unlink()
            missing = [s for s in splits if not paths[s].is_file()]
            if missing and spec.generator != "families":
                build_independent(spec.problem(), spec.generator, spec.splits, seed=spec.seed, noise=spec.noise,
                                  only=missing, out=d, name=name)
            elif missing:
                build(spec.problem(), spec.families, seed=spec.seed, noise=spec.noise,
                      splits=dict(zip(("train", "val", "test"), spec.splits)), only=missing, out=d, name=name,
                      progress=progress)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return paths


def _load_checked(name, split, progress, check):
    """Load a cached split; with ``check``, compare it with the recorded fingerprint (rebuild once if stale)."""
    spec = _spec(name)
    paths = ensure_built(name, progress=progress, splits=(split,))
    rec = recorded(name, split) if check else None
    # the fingerprint covers every array but the geometry (checked against the problem): no second hash
    ds = load(paths[split], spec.problem(), verify=rec is None)
    if rec is None:
        return ds
    try:
        check_fingerprint(ds, name, split)
        return ds
    except fpm.FingerprintMismatch as exc:
        first = str(exc)
    paths = ensure_built(name, progress=progress, splits=(split,), stale={split: paths[split].stat().st_mtime_ns})
    ds = load(paths[split], spec.problem(), verify=False)
    try:
        check_fingerprint(ds, name, split)
    except fpm.FingerprintMismatch as exc:
        raise ValueError(
            f"standard data set {exc}. The cached file was stale ({first.split(': ', 1)[1]}) and was rebuilt, "
            f"but this machine's fresh build still differs from the fingerprint recorded in {fpm.RECORD_PATH}: "
            "either the data set code changed without bumping GENERATOR_VERSION and re-recording "
            "('gravbench data fingerprints --record'), or this platform computes different bits (please report "
            f"it). standard(..., check=False) loads it unchecked; the file is {paths[split]}") from None
    return ds


def standard(name="paper-50", split="test", noise=0.01, *, noise_floor=0.0, noise_model="peak", noise_seed=None,
             progress=True, check=True):
    """A standard data set split, built into the cache on first use.

    Parameters
    ----------
    name : str
        A key of :data:`STANDARD` (``"paper-50"``, ``"paper-25"``, ``"paper-100"``, ``"paper-200"``, ``"small-16"``,
        ``"fwi-51"``, the independent test-only ``"rectangles-50"`` and ``"sections-50"``).
    split : {"train", "val", "test"}
    noise, noise_floor, noise_model, noise_seed
        The noise of ``Dataset.g`` (see :func:`gravbench.data.add_noise`);
        anything other than the stored default is applied at load time from
        the stored clean data. ``noise_seed`` defaults to the set's seed.
    progress : bool
        Show a progress bar while building.
    check : bool
        Compare the split with its fingerprint recorded in the package
        (:mod:`gravbench.data.fingerprint`): a stale cached file is rebuilt
        once, a fresh build that still differs raises ``ValueError``. Sets
        without a valid record are checked against their file's sha256 only.

    Returns
    -------
    Dataset
    """
    spec = _spec(name)
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    ds = _load_checked(name, split, progress, bool(check))
    want = {"model": noise_model, "level": float(noise), "floor": float(noise_floor),
            "seed": int(spec.seed if noise_seed is None else noise_seed)}
    if ds.noise != want:
        ds = add_noise(ds, noise, noise_floor=noise_floor, noise_model=noise_model, noise_seed=want["seed"])
    ds.meta["name"] = name
    return ds


# --------------------------------------------------------------------------- recorded fingerprints
def recorded(name, split=None, *, path=None):
    """The recorded fingerprint of a standard set (or one split), or ``None`` if there is no valid record.

    A record is valid when it was made with the current ``GENERATOR_VERSION``
    and the set's current specification (size, splits, families, seed,
    noise, kernel); otherwise the set changed on purpose and must be
    re-recorded, so it is not checked.
    """
    entry = fpm.load_record(path)["sets"].get(name)
    if entry is None or name not in STANDARD:
        return None
    if entry.get("generator_version") != generator_version(STANDARD[name]) or entry.get("spec") != fpm.spec_dict(STANDARD[name]):
        return None
    if split is None:
        return entry
    return entry.get("splits", {}).get(split)


def check_fingerprint(dataset, name, split, *, path=None):
    """Compare a loaded split with its recorded fingerprint.

    Returns the computed fingerprint, or ``None`` when the set has no valid
    record (nothing to compare). Raises :class:`~gravbench.data.fingerprint.FingerprintMismatch` (a
    ``ValueError``) naming the digests that differ.
    """
    rec = recorded(name, split, path=path)
    if rec is None:
        return None
    fp = fpm.fingerprint(dataset)
    ok, how = fpm.compare(fp, rec)
    if not ok:
        if fp["count"] != rec.get("count"):
            what = f"{fp['count']} models (recorded {rec.get('count')})"
        else:
            what = ", ".join(f"{k} {fp[k][:12]} (recorded {str(rec.get(k))[:12]})" for k in fpm.KINDS
                             if how[k] == "differs")
        raise fpm.FingerprintMismatch(f"{name}/{split}: fingerprint differs from the recorded one: {what}")
    return fp


def compute_standard(name, splits=("train", "val", "test"), *, progress=True):
    """Build (if needed) and fingerprint the splits of a standard set, without checking them.

    Returns ``{split: fingerprint}``.
    """
    spec = _spec(name)
    paths = ensure_built(name, progress=progress, splits=splits)
    return {s: fpm.fingerprint(load(paths[s], spec.problem(), verify=False)) for s in splits}


def record(names=None, *, path=None, progress=True, log=None, fresh=True):
    """Recompute the fingerprints of standard sets and write them into the record file.

    Parameters
    ----------
    names : list of str, optional
        Standard set names (default: every set in :data:`~gravbench.data.STANDARD`).
    path : path, optional
        The record file (default :data:`~gravbench.data.fingerprint.RECORD_PATH`, inside the package).
    progress : bool
        Progress bars while building.
    log : callable, optional
        ``log(str)`` for one line per set.
    fresh : bool
        Delete the cached splits first and build them with this code
        (default). ``False`` fingerprints the cached files as they are.

    Returns
    -------
    dict
        The whole record as written.

    Notes
    -----
    Every split is built in the cache (``$GRAVBENCH_CACHE``) by the current
    code; with ``fresh``, a cached split left by older code of the same
    generator version is deleted and rebuilt first, so the record describes
    what this code computes.
    """
    import platform

    import numba


    path = Path(path) if path is not None else fpm.RECORD_PATH
    names = sorted(STANDARD) if names is None else list(names)
    for nm in names:
        _spec(nm)
    rec = fpm.load_record(path)
    rec["about"] = ("Recorded fingerprints of the standard data sets (gravbench.data.fingerprint): SHA-256 of the "
                    "canonical bytes of the models (rho <f4, family i1, index <i8), of the clean data (g_clean <f8) "
                    "and of the default noisy data (g, sigma <f8) of every split, and random-sign projections "
                    "of the data (data_check, noisy_check) that hold to a relative tolerance. Rewrite with "
                    "'gravbench data fingerprints --record'.")
    for nm in names:
        for p in standard_paths(nm).values() if fresh else ():  # never record what an older build left
            if p.is_file():
                p.unlink()
        fps = compute_standard(nm, progress=progress)
        rec["sets"][nm] = {"generator_version": generator_version(STANDARD[nm]), "spec": fpm.spec_dict(STANDARD[nm]),
                           "recorded_with": {"gravbench": __version__, "numpy": np.__version__,
                                             "numba": numba.__version__, "machine": platform.machine()},
                           "splits": fps}
        if log:
            log(f"{nm}: " + ", ".join(f"{s} models {f['models'][:12]} data {f['data'][:12]}" for s, f in fps.items()))
    rec["sets"] = dict(sorted(rec["sets"].items()))
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(rec, f, indent=1, sort_keys=False)
        f.write("\n")
    tmp.replace(path)
    return rec
