"""Fingerprints of data sets: what a standard set *is*, independent of how its file was written.

Three SHA-256 digests per split, each over canonical bytes (little-endian,
C order, a fixed header with the array shapes), never over the ``.npz``
file itself (compression, array order in the archive, metadata, gravbench
version or build date change nothing):

``models``
    ``b"gravbench-models-v1|N,nz,nx|"`` + ``rho`` as ``<f4`` + ``family`` as
    ``i1`` + ``index`` as ``<i8``.
``data``
    ``b"gravbench-clean-data-v1|N,n_data|"`` + ``g_clean`` as ``<f8``.
``noisy``
    ``b"gravbench-noisy-data-v1|N,n_data|"`` + ``g`` as ``<f8`` + ``sigma`` as
    ``<f8`` (the stored default noise).

A fingerprint of the models alone would not notice a change in how the
gravity is computed; ``data`` does. The bits are machine-independent
because the models, the noise streams and the sum ``g = A rho`` are computed
in a fixed order without fused multiply-adds (see
:mod:`gravbench.data._forward`), so the digests compare exact bits; no
rounding is involved.

The recorded fingerprints of the standard sets live in
``gravbench/data/fingerprints.json`` (written by :func:`record`, CLI
``gravbench data fingerprints --record``) together with the generator
version and each set's specification; :func:`gravbench.data.standard`
checks every split it loads against them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

__all__ = ["fingerprint", "RECORD_PATH", "load_record", "recorded", "check", "compute_standard", "record",
           "spec_dict", "FingerprintMismatch", "KINDS"]

#: The package file holding the recorded fingerprints of the standard sets.
RECORD_PATH = Path(__file__).with_name("fingerprints.json")
#: The digests of one split, in order.
KINDS = ("models", "data", "noisy")


class FingerprintMismatch(ValueError):
    """A split's fingerprint differs from the recorded one."""


def _update(h, a, dtype):
    a = np.ascontiguousarray(a, dtype=np.dtype(dtype))
    if a.size:
        h.update(memoryview(a).cast("B"))


def fingerprint(dataset):
    """The fingerprint of a :class:`~gravbench.data.Dataset`: ``{"count", "models", "data", "noisy"}``.

    Parameters
    ----------
    dataset : Dataset

    Returns
    -------
    dict
        ``count`` (number of models) and the three hex SHA-256 digests
        described in the module docstring.

    Examples
    --------
    >>> import gravbench as gb
    >>> ds = gb.data.build(gb.Problem.paper(n=8), count=4, seed=0)["all"]
    >>> fp = fingerprint(ds)
    >>> fp["count"], len(fp["models"]), len(fp["data"])
    (4, 64, 64)
    """
    rho = np.asarray(dataset.rho)
    if rho.ndim != 3:
        raise ValueError(f"dataset.rho must have shape (N, nz, nx), got {rho.shape}")
    n, nz, nx = rho.shape
    nd = np.asarray(dataset.g_clean).shape[-1] if np.asarray(dataset.g_clean).ndim == 2 else 0
    hm = hashlib.sha256(f"gravbench-models-v1|{n},{nz},{nx}|".encode())
    _update(hm, rho, "<f4")
    _update(hm, dataset.family, "i1")
    _update(hm, dataset.index, "<i8")
    hd = hashlib.sha256(f"gravbench-clean-data-v1|{n},{nd}|".encode())
    _update(hd, dataset.g_clean, "<f8")
    hn = hashlib.sha256(f"gravbench-noisy-data-v1|{n},{nd}|".encode())
    _update(hn, dataset.g, "<f8")
    _update(hn, dataset.sigma, "<f8")
    return {"count": int(n), "models": hm.hexdigest(), "data": hd.hexdigest(), "noisy": hn.hexdigest()}


def spec_dict(spec):
    """The fields of a :class:`~gravbench.data.sets.StandardSpec` that determine its bits (JSON-ready)."""
    d = asdict(spec)
    d.pop("description", None)
    return json.loads(json.dumps(d))  # tuples -> lists, as stored


def load_record(path=None):
    """The recorded fingerprints file as a dict (``{"sets": {}}`` when it does not exist)."""
    path = Path(path) if path is not None else RECORD_PATH
    if not path.is_file():
        return {"sets": {}}
    with open(path) as f:
        rec = json.load(f)
    if not isinstance(rec, dict) or not isinstance(rec.get("sets"), dict):
        raise ValueError(f"{path}: not a gravbench fingerprints file (no 'sets' object)")
    return rec


def recorded(name, split=None, *, path=None):
    """The recorded fingerprint of a standard set (or one split), or ``None`` if there is no valid record.

    A record is valid when it was made with the current ``GENERATOR_VERSION``
    and the set's current specification (size, splits, families, seed,
    noise, kernel); otherwise the set changed on purpose and must be
    re-recorded, so it is not checked.
    """
    from .families import GENERATOR_VERSION
    from .sets import STANDARD

    entry = load_record(path)["sets"].get(name)
    if entry is None or name not in STANDARD:
        return None
    if entry.get("generator_version") != GENERATOR_VERSION or entry.get("spec") != spec_dict(STANDARD[name]):
        return None
    if split is None:
        return entry
    return entry.get("splits", {}).get(split)


def check(dataset, name, split, *, path=None):
    """Compare a loaded split with its recorded fingerprint.

    Returns the computed fingerprint, or ``None`` when the set has no valid
    record (nothing to compare). Raises :class:`FingerprintMismatch` (a
    ``ValueError``) naming the digests that differ.
    """
    rec = recorded(name, split, path=path)
    if rec is None:
        return None
    fp = fingerprint(dataset)
    bad = [k for k in ("count",) + KINDS if fp[k] != rec.get(k)]
    if bad:
        what = ", ".join(f"{k} {str(fp[k])[:12]} (recorded {str(rec.get(k))[:12]})" for k in bad)
        raise FingerprintMismatch(f"{name}/{split}: fingerprint differs from the recorded one: {what}")
    return fp


def compute_standard(name, splits=("train", "val", "test"), *, progress=True):
    """Build (if needed) and fingerprint the splits of a standard set, without checking them.

    Returns ``{split: fingerprint}``.
    """
    from .dataset import load
    from .sets import _spec, ensure_built

    spec = _spec(name)
    paths = ensure_built(name, progress=progress, splits=splits)
    return {s: fingerprint(load(paths[s], spec.problem(), verify=False)) for s in splits}


def record(names=None, *, path=None, progress=True, log=None):
    """Recompute the fingerprints of standard sets and write them into the record file.

    Parameters
    ----------
    names : list of str, optional
        Standard set names (default: every set in :data:`~gravbench.data.STANDARD`).
    path : path, optional
        The record file (default :data:`RECORD_PATH`, inside the package).
    progress : bool
        Progress bars while building.
    log : callable, optional
        ``log(str)`` for one line per set.

    Returns
    -------
    dict
        The whole record as written.

    Notes
    -----
    Every split is built in the cache (``$GRAVBENCH_CACHE``) by the current
    code; a cached split left by older code of the same generator version
    is rebuilt first (its file is deleted), so the record describes what
    this code computes.
    """
    import platform

    import numba

    from .. import __version__
    from .families import GENERATOR_VERSION
    from .sets import STANDARD, _spec, standard_paths

    path = Path(path) if path is not None else RECORD_PATH
    names = sorted(STANDARD) if names is None else list(names)
    for nm in names:
        _spec(nm)
    rec = load_record(path)
    rec["about"] = ("Recorded fingerprints of the standard data sets (gravbench.data.fingerprint): SHA-256 of the "
                    "canonical bytes of the models (rho <f4, family i1, index <i8), of the clean data (g_clean <f8) "
                    "and of the default noisy data (g, sigma <f8) of every split. Rewrite with "
                    "'gravbench data fingerprints --record'.")
    for nm in names:
        for p in standard_paths(nm).values():  # build from scratch: never record what an older build left
            if p.is_file():
                p.unlink()
        fps = compute_standard(nm, progress=progress)
        rec["sets"][nm] = {"generator_version": GENERATOR_VERSION, "spec": spec_dict(STANDARD[nm]),
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
