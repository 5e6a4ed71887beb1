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
gravity is computed; ``data`` does.

What is exact and what is toleranced
------------------------------------
The models are compared bit for bit (``models``). The sum ``g = A rho`` is
done in a fixed order without fused multiply-adds
(:mod:`gravbench.data._forward`), so BLAS and thread counts no longer change
any bit. The entries of ``A`` (``log``, ``atan``) and the noise normals
(``log``, ``cos``) still come from the C math library, and glibc picks its
implementation per processor (FMA or not): with the FMA variants switched
off (``GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F``) the models
stay identical but ``g`` changes in its last bits. So the data are defined
to a relative tolerance: besides the exact digests, each split records
``data_check`` (for ``g_clean``) and ``noisy_check`` (for ``g`` and
``sigma``): per array ``[S, p_1, ..., p_4]`` with ``S = sum |x|`` and
``p_k = sum_ij w_k(index_i, j) x_ij`` for pseudo-random signs
``w_k = +-1`` (a fixed integer hash of ``k``, the sample index and the
datum), summed with compensation (Neumaier), so the round-off is of order
``1e-16 S`` however many terms. A split matches when the models are
bitwise equal and, for each array, either its digest is equal (bitwise) or every ``|p_k - p_k^rec|``
and ``|S - S^rec|`` is at most ``RTOL * S^rec`` (``RTOL = 1e-11``).
So the data are defined to a relative tolerance in the L1 norm: data with
``sum |x' - x| <= 1e-11 sum |x|`` (less the summation round-off, of order
``1e-16 sum |x|``) always pass, since no projection can move by more. The
two glibc variants differ by about ``1e-15`` of ``max |g|`` per datum (an
elementwise *relative* bound would not do: gx crosses zero). A change of
how g is computed (kernel, units, geometry, other models) moves the
projections by far more than 1e-11.

The recorded fingerprints of the standard sets live in
``gravbench/data/fingerprints.json`` (written by :func:`gravbench.data.sets.record`, CLI
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
from numba import njit

__all__ = ["fingerprint", "compare", "RECORD_PATH", "RTOL", "load_record", "spec_dict", "FingerprintMismatch", "KINDS"]

#: The package file holding the recorded fingerprints of the standard sets.
RECORD_PATH = Path(__file__).with_name("fingerprints.json")
#: The digests of one split, in order.
KINDS = ("models", "data", "noisy")
#: Relative tolerance (of sum |x|) of the data projections ``data_check`` / ``noisy_check``.
RTOL = 1e-11
#: Number of random-sign projections per array.
N_PROJ = 4


class FingerprintMismatch(ValueError):
    """A split's fingerprint differs from the recorded one."""


def _update(h, a, dtype):
    a = np.ascontiguousarray(a, dtype=np.dtype(dtype))
    if a.size:
        h.update(memoryview(a).cast("B"))


@njit(cache=True)
def _proj_kernel(x, index, nproj, out):
    """``out[0] = sum |x|``, ``out[k] = sum_ij w_k(index_i, j) x_ij`` (compensated sums, see module doc)."""
    s = np.zeros(nproj + 1)
    c = np.zeros(nproj + 1)  # Neumaier compensation: the error does not grow with the number of terms
    for i in range(x.shape[0]):
        ii = np.uint64(index[i])
        for j in range(x.shape[1]):
            v = x[i, j]
            for k in range(nproj + 1):
                if k == 0:
                    t = abs(v)
                else:
                    z = ii * np.uint64(0x9E3779B97F4A7C15) + np.uint64(j + 1) * np.uint64(0xBF58476D1CE4E5B9) \
                        + np.uint64(k) * np.uint64(0x94D049BB133111EB)
                    z ^= z >> np.uint64(31)
                    z *= np.uint64(0xD6E8FEB86659FD93)
                    z ^= z >> np.uint64(32)
                    t = -v if (z >> np.uint64(63)) else v
                u = s[k] + t
                if abs(s[k]) >= abs(t):
                    c[k] += (s[k] - u) + t
                else:
                    c[k] += (t - u) + s[k]
                s[k] = u
    for k in range(nproj + 1):
        out[k] = s[k] + c[k]


def _projections(x, index):
    """``[S, p_1..p_N_PROJ]`` of a ``(N, d)`` array (see the module docstring), as Python floats."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2 or x.size == 0:
        return [0.0] * (N_PROJ + 1)
    out = np.empty(N_PROJ + 1)
    _proj_kernel(x, np.ascontiguousarray(index, dtype=np.int64), N_PROJ, out)
    return [float(v) for v in out]


def fingerprint(dataset):
    """The fingerprint of a :class:`~gravbench.data.Dataset`.

    ``{"count", "models", "data", "noisy", "data_check", "noisy_check"}``.

    Parameters
    ----------
    dataset : Dataset

    Returns
    -------
    dict
        ``count`` (number of models), the three hex SHA-256 digests and the
        projections described in the module docstring.

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
    return {"count": int(n), "models": hm.hexdigest(), "data": hd.hexdigest(), "noisy": hn.hexdigest(),
            "data_check": _projections(dataset.g_clean, dataset.index),
            "noisy_check": _projections(dataset.g, dataset.index) + _projections(dataset.sigma, dataset.index)}


def _close(got, want, rtol):
    if not isinstance(want, list) or len(got) != len(want):
        return False
    for a in range(0, len(want), N_PROJ + 1):  # one [S, p...] block per array
        scale = abs(want[a])
        if any(abs(g - w) > rtol * scale for g, w in zip(got[a:a + N_PROJ + 1], want[a:a + N_PROJ + 1])):
            return False
    return True


def compare(fp, rec, rtol=RTOL):
    """Compare a computed fingerprint with a recorded one.

    Returns ``(ok, how)``: ``how`` maps ``"models"``, ``"data"`` and
    ``"noisy"`` to ``"bitwise"``, ``"within tolerance"`` or ``"differs"``
    (``models`` is never toleranced; a different ``count`` makes everything
    differ).
    """
    how = {}
    if fp.get("count") != rec.get("count"):
        return False, {k: "differs" for k in KINDS}
    how["models"] = "bitwise" if fp["models"] == rec.get("models") else "differs"
    for k in ("data", "noisy"):
        if fp[k] == rec.get(k):
            how[k] = "bitwise"
        elif _close(fp[f"{k}_check"], rec.get(f"{k}_check"), rtol):
            how[k] = "within tolerance"
        else:
            how[k] = "differs"
    return all(v != "differs" for v in how.values()), how


def spec_dict(spec):
    """The fields of a :class:`~gravbench.data.sets.StandardSpec` that determine its bits (JSON-ready)."""
    d = asdict(spec)
    d.pop("description", None)
    if d.get("generator") == "families":  # the default: left out, so records made before the field still hold
        d.pop("generator")
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
