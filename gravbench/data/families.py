"""Synthetic density-model families: seeded numba generators on relative coordinates.

Every family renders a *continuous* geological picture on the unit square
(``x`` across, ``z`` down, both in [0, 1]) and samples it at the cell centres
``x_i = (i + 0.5) / nx``, ``z_k = (k + 0.5) / nz``. So the same seed gives the
same geology at every grid size (n = 25 .. 400), only the resolution changes.

Randomness
----------
Each sample ``i`` has its own random stream, a SplitMix64 sequence (Steele,
Lea & Flood 2014) started from the key ``mix(seed, family, i)``. Samples are
rendered independently inside a ``numba.prange`` loop, so the result is
bitwise identical for any number of numba threads and for any chunking, and
sample ``i`` of a set does not depend on how many samples were asked for.

Families (parameters are ``(lo, hi)`` ranges drawn uniformly per sample, or
scalars; lengths are fractions of the grid width / depth, contrasts in kg/m^3;
see :data:`PARAMS` for every default):

``blocks``
    1-4 compact bodies (rotated rectangles, ellipses, star-shaped polygons) in
    a zero background; later bodies cover earlier ones.
``layers``
    3-7 gently folded layers (sine fold plus a harmonic, a regional dip);
    every layer has its own contrast.
``faults``
    A layered sequence cut by 1-3 normal or reverse dip-slip faults.
``intrusions``
    1-2 salt domes (negative, mushroom-shaped diapirs), dykes (steep positive
    sheets) or sills (positive lenses), zero background.
``channels``
    1-3 sinuous channel bands with one contrast (binary images, as the
    channel training images of Laloy et al. 2018/2019).
``smooth``
    Anisotropic Gaussian random fields with a Gaussian covariance of
    correlation length ``corr_length`` (vertical) x ``anisotropy``
    (horizontal), by the spectral (random Fourier mode) method:
    ``f = sqrt(2/M) sum_j cos(k_j . x + phi_j)`` with ``k_j ~ N(0, diag(1/lx^2,
    1/lz^2))``, ``phi_j ~ U(0, 2 pi)``; scaled to ``mean + std * f`` and
    clipped to ``+-max_abs``.
``fwi``
    OpenFWI-style media with a background, in *absolute* density (not a
    contrast): 3-6 layers, flat or curved (a shared fold: sine plus a
    harmonic and a dip, as CurveVel), optionally cut by 1-2 normal or reverse
    faults (as FlatFault / CurveFault); each layer draws a P velocity in
    1500-4500 m/s, the velocities are sorted to increase with depth and
    neighbours swap with probability ``p_inversion``; density by Gardner's
    relation ``rho = 310 V^0.25`` kg/m^3 (V in m/s), about 1940-2550 kg/m^3.
    Not part of ``mixed`` (its values are not zero-mean contrasts).
``mixed``
    A seeded mixture with the proportions :data:`MIXED_PROPORTIONS`; counts
    are exact (largest remainder) and the order is a seeded permutation.
"""

from __future__ import annotations

import math

import numpy as np

from ._kernels import _RENDER, PARALLEL_MIN_WORK, sample_keys, standard_normals

__all__ = ["FAMILIES", "BASE_FAMILIES", "PARAMS", "MIXED_PROPORTIONS", "GENERATOR_VERSION", "generate",
           "resolve_families", "assign_families", "render", "sample_keys", "standard_normals", "family_params"]

#: Bumped whenever the bits of a built data set change for the same seed: the models, the noise
#: or how g is computed (part of the cache key ``<name>-g<version>``; the recorded fingerprints in
#: ``data/fingerprints.json`` go with it, see :mod:`gravbench.data.fingerprint`).
#: 1: g by a BLAS GEMM (machine-dependent last bits); 2: g by a fixed-order sum (bitwise portable).
GENERATOR_VERSION = 2

#: The named base families, in code order (``Dataset.family`` stores indices into this tuple).
BASE_FAMILIES = ("blocks", "layers", "faults", "intrusions", "channels", "smooth", "fwi")

#: Every name :func:`generate` accepts.
FAMILIES = BASE_FAMILIES + ("mixed",)

#: Proportions of the default ``mixed`` family.
MIXED_PROPORTIONS = {"blocks": 0.20, "layers": 0.15, "faults": 0.15, "intrusions": 0.15, "channels": 0.15,
                     "smooth": 0.20}

#: Family parameters: name -> {parameter: (default, description)}. Ranges are (lo, hi) drawn
#: uniformly per sample (integers inclusive). The order is the layout passed to numba.
PARAMS = {
    "blocks": {
        "n_bodies": ((1, 4), "number of bodies (integer range)"),
        "size": ((0.08, 0.3), "half-length of a body's long axis, fraction of the grid"),
        "aspect": ((0.3, 1.0), "short / long axis ratio"),
        "contrast": ((50.0, 1000.0), "magnitude of each body's density contrast, kg/m^3"),
        "p_negative": (0.5, "probability that a body is lighter than the background"),
    },
    "layers": {
        "n_layers": ((3, 7), "number of layers (integer range)"),
        "contrast": ((50.0, 800.0), "magnitude of each layer's density contrast, kg/m^3"),
        "p_negative": (0.5, "probability that a layer's contrast is negative"),
        "amplitude": ((0.0, 0.08), "fold amplitude, fraction of the depth"),
        "wavelength": ((0.5, 2.0), "fold wavelength, fraction of the width"),
        "dip": ((-0.15, 0.15), "regional dip of the layering, depth change per unit width"),
    },
    "faults": {
        "n_layers": ((3, 6), "number of layers (integer range)"),
        "contrast": ((50.0, 800.0), "magnitude of each layer's density contrast, kg/m^3"),
        "p_negative": (0.5, "probability that a layer's contrast is negative"),
        "amplitude": ((0.0, 0.04), "fold amplitude, fraction of the depth"),
        "wavelength": ((0.5, 2.0), "fold wavelength, fraction of the width"),
        "dip": ((-0.1, 0.1), "regional dip of the layering"),
        "n_faults": ((1, 3), "number of faults (integer range)"),
        "fault_dip": ((45.0, 80.0), "fault dip, degrees from horizontal"),
        "throw": ((0.04, 0.2), "vertical throw, fraction of the depth"),
        "p_reverse": (0.3, "probability that a fault is reverse (hanging wall up) rather than normal"),
    },
    "intrusions": {
        "n_bodies": ((1, 2), "number of intrusions (integer range); type dome / dyke / sill with equal odds"),
        "contrast": ((50.0, 1000.0), "magnitude of the density contrast, kg/m^3: domes negative (salt), "
                                     "dykes and sills positive (mafic), unless flipped"),
        "p_flip": (0.1, "probability of the opposite sign"),
        "dome_width": ((0.04, 0.12), "half-width of a dome's stem"),
        "dome_top": ((0.08, 0.5), "depth of a dome's crest"),
        "dyke_width": ((0.01, 0.04), "half-thickness of a dyke"),
        "dyke_dip": ((60.0, 90.0), "dyke dip, degrees"),
        "sill_length": ((0.15, 0.4), "half-length of a sill"),
        "sill_thickness": ((0.015, 0.05), "half-thickness of a sill at its centre"),
    },
    "channels": {
        "n_channels": ((1, 3), "number of channels (integer range)"),
        "width": ((0.02, 0.06), "channel half-width"),
        "amplitude": ((0.02, 0.1), "meander amplitude"),
        "wavelength": ((0.35, 1.2), "meander wavelength along the channel"),
        "angle": ((-25.0, 25.0), "channel direction, degrees from horizontal"),
        "contrast": ((50.0, 1000.0), "magnitude of the channel fill's contrast (one per model), kg/m^3"),
        "p_negative": (0.5, "probability that the fill is lighter than the background"),
    },
    "smooth": {
        "corr_length": ((0.04, 0.25), "vertical correlation length (Gaussian covariance), fraction of the grid"),
        "anisotropy": ((1.0, 4.0), "horizontal / vertical correlation length"),
        "std": ((50.0, 300.0), "standard deviation of the field, kg/m^3"),
        "mean": ((-100.0, 100.0), "mean of the field, kg/m^3"),
        "max_abs": (1000.0, "values are clipped to +-max_abs, kg/m^3"),
        "n_modes": (64, "number of random Fourier modes (the field is Gaussian as n_modes grows)"),
    },
    "fwi": {
        "n_layers": ((3, 6), "number of layers (integer range); the last one reaches the bottom of the grid"),
        "velocity": ((1500.0, 4500.0), "P velocity range, m/s; each layer draws one, sorted to increase with depth"),
        "p_inversion": (0.1, "probability that two neighbouring layers swap velocities (a velocity inversion)"),
        "p_curved": (0.5, "probability of curved (folded) layers rather than flat ones"),
        "p_fault": (0.5, "probability that the layering is cut by faults"),
        "amplitude": ((0.02, 0.1), "fold amplitude of curved layers, fraction of the depth"),
        "wavelength": ((0.4, 1.6), "fold wavelength, fraction of the width"),
        "fault_dip": ((45.0, 80.0), "fault dip, degrees from horizontal"),
        "throw": ((0.05, 0.25), "vertical throw, fraction of the depth (normal or reverse with equal odds)"),
        "n_faults": ((1, 2), "number of faults of a faulted model (integer range)"),
    },
}

_INT_PARAMS = {"n_bodies", "n_layers", "n_faults", "n_channels", "n_modes"}

# ----------------------------------------------------------------------------
# Python layer: validation, parameters, family plans
# ----------------------------------------------------------------------------
def family_params(family, **overrides):
    """The parameter vector of ``family`` (float64, ``lo, hi`` pairs in :data:`PARAMS` order).

    Raises ``ValueError`` for an unknown parameter or a bad range.
    """
    if family not in PARAMS:
        raise ValueError(f"family must be one of {BASE_FAMILIES}, got {family!r}")
    spec = PARAMS[family]
    unknown = set(overrides) - set(spec)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} for family {family!r}; "
                         f"it takes {list(spec)}")
    vec = []
    for name, (default, _doc) in spec.items():
        v = overrides.get(name, default)
        if np.ndim(v) == 0:
            lo = hi = v
        else:
            if len(v) != 2:
                raise ValueError(f"{family} parameter {name!r} must be a number or a (lo, hi) pair, got {v!r}")
            lo, hi = v
        try:
            lo, hi = float(lo), float(hi)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{family} parameter {name!r} must be numeric, got {v!r}") from exc
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise ValueError(f"{family} parameter {name!r} must be a finite range with lo <= hi, got {v!r}")
        if name in _INT_PARAMS and name != "n_modes" and (lo != int(lo) or hi != int(hi) or lo < 1 or hi > 8):
            raise ValueError(f"{family} parameter {name!r} must be integers in [1, 8], got {v!r}")
        if name == "n_modes" and not (lo == hi and lo == int(lo) and 1 <= lo <= 4096):
            raise ValueError(f"smooth parameter 'n_modes' must be one integer in [1, 4096], got {v!r}")
        if family == "fwi" and name == "n_faults" and hi > 2:
            raise ValueError(f"fwi parameter 'n_faults' must be integers in [1, 2], got {v!r}")
        if family == "fwi" and name == "velocity" and lo <= 0:
            raise ValueError(f"fwi parameter 'velocity' must be positive m/s, got {v!r}")
        if name.startswith("p_") and not (0.0 <= lo <= 1.0):
            raise ValueError(f"{family} parameter {name!r} is a probability in [0, 1], got {v!r}")
        if name in ("size", "aspect", "wavelength", "width", "corr_length", "anisotropy", "sill_length",
                    "sill_thickness", "dome_width", "dyke_width") and lo <= 0:
            raise ValueError(f"{family} parameter {name!r} must be > 0, got {v!r}")
        vec += [lo, hi]
    return np.asarray(vec, dtype=np.float64)


def resolve_families(families, argname="families"):
    """Normalise a family request to ``{base family: proportion}`` (proportions sum to 1).

    ``families`` is ``"mixed"`` (the default proportions), a base family name,
    a sequence of names (equal shares) or a mapping ``name -> weight``.
    """
    if isinstance(families, str):
        if families == "mixed":
            return dict(MIXED_PROPORTIONS)
        if families not in BASE_FAMILIES:
            raise ValueError(f"{argname} must be one of {FAMILIES} (or a list / dict of them), got {families!r}")
        return {families: 1.0}
    if isinstance(families, dict):
        items = list(families.items())
    else:
        try:
            names = list(families)
        except TypeError:
            raise ValueError(f"{argname} must be a name, a list of names or a dict name -> weight, "
                             f"got {families!r}") from None
        items = [(n, 1.0) for n in names]
    if not items:
        raise ValueError("families must name at least one family")
    out = {}
    for name, w in items:
        if name not in BASE_FAMILIES:
            raise ValueError(f"unknown family {name!r}; choose from {BASE_FAMILIES}")
        w = float(w)
        if not (math.isfinite(w) and w >= 0):
            raise ValueError(f"family weight for {name!r} must be a finite number >= 0, got {w!r}")
        out[name] = out.get(name, 0.0) + w
    total = sum(out.values())
    if total <= 0:
        raise ValueError("family weights must not all be zero")
    return {k: v / total for k, v in out.items() if v > 0}


def assign_families(proportions, count, seed, salt=0):
    """Family codes (indices into :data:`BASE_FAMILIES`) for ``count`` samples.

    Counts are exact: the largest-remainder rounding of ``proportions * count``;
    the order is a permutation seeded by ``(seed, salt)``.
    """
    names = list(proportions)
    w = np.array([proportions[n] for n in names], dtype=np.float64)
    raw = w * count
    n = np.floor(raw).astype(np.int64)
    short = count - int(n.sum())
    if short:
        order = np.argsort(-(raw - n), kind="stable")
        n[order[:short]] += 1
    codes = np.repeat(np.array([BASE_FAMILIES.index(x) for x in names], dtype=np.int8), n)
    rng = np.random.Generator(np.random.Philox(np.random.SeedSequence([int(seed), 0x6A3, int(salt)])))
    return codes[rng.permutation(count)]


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not (0 <= int(seed) < 2**63):
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def _check_shape(shape):
    try:
        nz, nx = (int(s) for s in shape)
        ok = all(int(s) == s for s in shape)
    except (TypeError, ValueError):
        ok = False
    if not ok or nz < 1 or nx < 1:
        raise ValueError(f"shape must be (nz, nx) with positive integers, got {shape!r}")
    return nz, nx


def render(codes, index, shape, seed, out=None, params=None, parallel="auto"):
    """Render models: sample ``j`` is family ``BASE_FAMILIES[codes[j]]`` drawn from stream ``(seed, index[j])``.

    Parameters
    ----------
    codes : (N,) int array
        Family codes.
    index : (N,) int array
        Global sample indices (the per-sample stream keys derive from ``(seed, family, index)``).
    shape : (nz, nx)
    seed : int
    out : (N, nz, nx) float32 array, optional
        Written in place.
    params : dict, optional
        ``family -> parameter vector`` (:func:`family_params`); defaults otherwise.
    parallel : {"auto", True, False}
        Numba-parallel loop over samples; ``"auto"`` only when the work is
        large (``PARALLEL_MIN_WORK`` cells). Results are identical either way.

    Returns
    -------
    out : (N, nz, nx) float32, kg/m^3
    """
    nz, nx = _check_shape(shape)
    codes = np.asarray(codes)
    index = np.asarray(index, dtype=np.int64)
    if out is None:
        out = np.empty((codes.size, nz, nx), dtype=np.float32)
    params = params or {}
    if parallel not in ("auto", True, False):
        raise ValueError(f"parallel must be 'auto', True or False, got {parallel!r}")
    for c in np.unique(codes):
        name = BASE_FAMILIES[int(c)]
        pos = np.flatnonzero(codes == c).astype(np.int64)
        keys = sample_keys(seed, index[pos], salt=101 + int(c))
        p = params.get(name)
        if p is None:
            p = family_params(name)
        par = (pos.size * nz * nx >= PARALLEL_MIN_WORK) if parallel == "auto" else parallel
        _RENDER[name][1 if par else 0](keys, pos, nz, nx, p, out)
    return out


def generate(family, count, shape, seed=0, *, return_codes=False, parallel="auto", **params):
    """Generate ``count`` density models of one family.

    Parameters
    ----------
    family : str, list or dict
        A name in :data:`FAMILIES` (``"mixed"`` uses :data:`MIXED_PROPORTIONS`),
        a list of base names (equal shares) or a dict ``name -> weight``.
    count : int
        Number of models (>= 0).
    shape : (nz, nx)
        Grid shape; the family is rendered on relative coordinates, so any shape works.
    seed : int
        Same seed -> bitwise-identical models (any thread count); sample ``i``
        does not depend on ``count`` for a single family.
    return_codes : bool
        Also return the family code of every model (indices into :data:`BASE_FAMILIES`).
    parallel : {"auto", True, False}
        Numba-parallel rendering (``"auto"``: for large requests); identical results.
    **params
        Parameter overrides for a single family (see :data:`PARAMS`); a number
        or a ``(lo, hi)`` range.

    Returns
    -------
    rho : (count, nz, nx) float32
        Density contrasts in kg/m^3.
    codes : (count,) int8, only with ``return_codes=True``

    Examples
    --------
    >>> rho = generate("blocks", 4, (20, 30), seed=1)
    >>> rho.shape, rho.dtype.name
    ((4, 20, 30), 'float32')
    """
    seed = _check_seed(seed)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be an integer >= 0, got {count!r}")
    props = resolve_families(family, "family")
    if params and len(props) != 1:
        raise ValueError(f"parameter overrides {sorted(params)} need a single family, got {family!r}")
    pvec = {name: family_params(name, **params) for name in props} if params else None
    codes = assign_families(props, int(count), seed)
    rho = render(codes, np.arange(count), shape, seed, params=pvec, parallel=parallel)
    return (rho, codes) if return_codes else rho
