"""Independent test sets: model generators written apart from :mod:`gravbench.data.families`.

The project's defaults (regularisation weights, IRLS schedules, network
training) were chosen on data drawn from ``data/families.py``. A verdict
that only holds on those shapes says little, so these generators share no
code, no parameter and no random stream with it (a test parses this
module's imports to keep it so). They are used for test splits only, never
for tuning.

``rectangles``
    1 to 3 axis-aligned rectangles, each 4-15 cells wide and high, kept at
    least 2 cells below the top of the grid and 5 cells above its bottom,
    each with a density contrast of +-200..600 kg/m^3 (uniform magnitude,
    random sign). Later rectangles paint over earlier ones. These are the
    bodies of the classic sparse-norm inversion examples.
``sections``
    Geological cross-sections: a sedimentary basin (2-4 layers whose
    contrast rises from about -450 kg/m^3 at the top towards -50 kg/m^3 at
    depth, as compaction would make it) cut by 0-2 dipping normal faults,
    over a crystalline basement (+150..450 kg/m^3) with a fault step, and in
    60 % of the models a salt body (stem and mushroom head, -150..-300
    kg/m^3) rising from the basin floor.

Each model ``i`` draws from its own stream ``numpy.random.default_rng([seed,
SALT[generator], i])`` (PCG64), so a model does not depend on how many were
drawn before it and a split built alone has the same bits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import FORMAT, FORMAT_VERSION, Dataset, _forward_batch, _survey_extras, save
from .noise import noisy
from .. import __version__

__all__ = ["GENERATORS", "INDEPENDENT_VERSION", "render_rectangles", "render_sections", "render_independent",
           "build_independent"]

#: Version of these generators: bump it when any model bit changes (part of the cache key and of the record).
INDEPENDENT_VERSION = 1

#: Stream salts (arbitrary constants, one per generator).
SALT = {"rectangles": 0x5EC7A11, "sections": 0x6E0510}


def _rng(generator, seed, index):
    return np.random.default_rng([int(seed), SALT[generator], int(index)])


def render_rectangles(shape, seed, index):
    """One ``rectangles`` model: a ``(nz, nx)`` float32 array of density contrasts (kg/m^3)."""
    nz, nx = shape
    top, bottom = 2, 5          # margins, in cells
    lo, hi = 4, 15              # side lengths, in cells
    if nz - top - bottom < lo or nx < lo:
        raise ValueError(f"rectangles needs at least {lo + top + bottom} x {lo} cells, got {nz} x {nx}")
    rng = _rng("rectangles", seed, index)
    rho = np.zeros((nz, nx), dtype=np.float32)
    for _ in range(int(rng.integers(1, 4))):
        h = int(rng.integers(lo, min(hi, nz - top - bottom) + 1))
        w = int(rng.integers(lo, min(hi, nx) + 1))
        z0 = int(rng.integers(top, nz - bottom - h + 1))
        x0 = int(rng.integers(0, nx - w + 1))
        value = rng.uniform(200.0, 600.0) * (1.0 if rng.random() < 0.5 else -1.0)
        rho[z0:z0 + h, x0:x0 + w] = value
    return rho


def render_sections(shape, seed, index):
    """One ``sections`` model (basin, faults, basement step, salt): ``(nz, nx)`` float32, kg/m^3."""
    nz, nx = shape
    if nz < 12 or nx < 12:
        raise ValueError(f"sections needs at least 12 x 12 cells, got {nz} x {nx}")
    rng = _rng("sections", seed, index)
    x = (np.arange(nx) + 0.5) / nx           # cell centres, fractions of the width
    z = (np.arange(nz) + 0.5) / nz           # and of the depth (0 = top)
    X, Z = np.meshgrid(x, z)

    # faults: planes x = xf + (z - 0) * tan(dip); the hanging wall (right of the plane) drops by `throw`
    shift = np.zeros_like(Z)
    for _ in range(int(rng.integers(0, 3))):
        xf = rng.uniform(0.15, 0.85)
        slope = np.tan(np.deg2rad(rng.uniform(-30.0, 30.0)))   # degrees from vertical
        throw = rng.uniform(0.03, 0.12) * (1.0 if rng.random() < 0.5 else -1.0)
        shift += np.where(X > xf + slope * Z, throw, 0.0)
    Zr = Z - shift                            # depth restored to before faulting

    # basement: top at depth b0, with a smooth step of height `step` at xs
    b0 = rng.uniform(0.55, 0.8)
    step = rng.uniform(0.08, 0.22) * (1.0 if rng.random() < 0.5 else -1.0)
    xs, width = rng.uniform(0.2, 0.8), rng.uniform(0.01, 0.06)
    btop = np.clip(b0 + step * 0.5 * (1.0 + np.tanh((X - xs) / width)), 0.3, 0.92)
    rho = np.where(Zr >= btop, rng.uniform(150.0, 450.0), 0.0)

    # basin: a trough centred at xc, half-width hw, depth reaching the basement at its axis
    xc, hw = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.6)
    t0 = 2.0 / nz                                             # the basin starts 2 cells below the top
    floor = t0 + (btop - t0) * np.clip(1.0 - ((X - xc) / hw) ** 2, 0.0, 1.0) ** 0.5
    nlay = int(rng.integers(2, 5))
    cuts = np.sort(rng.uniform(0.15, 0.85, nlay - 1))
    frac = (Zr - t0) / np.maximum(floor - t0, 1e-9)         # 0 at the basin top, 1 on its floor
    inside = (Zr >= t0) & (Zr < floor)
    c_top, c_bot = rng.uniform(-450.0, -250.0), rng.uniform(-150.0, -50.0)
    layer = np.searchsorted(cuts, frac)
    jitter = rng.normal(0.0, 25.0, nlay)
    contrast = c_top + (c_bot - c_top) * (layer / max(nlay - 1, 1)) + jitter[layer]
    rho = np.where(inside, contrast, rho)

    # salt: a stem from the basin floor up to a crest, under an elliptical head
    if rng.random() < 0.6:
        xsalt = rng.uniform(0.2, 0.8)
        base = float(np.interp(xsalt, x, btop[0]))
        crest = rng.uniform(t0 + 0.05, max(t0 + 0.06, base - 0.2))
        stem = rng.uniform(0.03, 0.07)
        head_w, head_h = rng.uniform(0.08, 0.16), rng.uniform(0.05, 0.1)
        body = ((np.abs(X - xsalt) < stem) & (Z > crest) & (Z < base)) | \
               (((X - xsalt) / head_w) ** 2 + ((Z - crest) / head_h) ** 2 < 1.0)
        body &= Z >= t0
        rho = np.where(body, -rng.uniform(150.0, 300.0), rho)
    rho = np.where(Z < t0, 0.0, rho)                          # an erosion surface 2 cells below the top
    return rho.astype(np.float32)


#: ``name -> render(shape, seed, index)``.
GENERATORS = {"rectangles": render_rectangles, "sections": render_sections}


def render_independent(generator, index, shape, seed):
    """``(N, nz, nx)`` float32 models of ``generator`` for the global sample indices ``index``."""
    if generator not in GENERATORS:
        raise ValueError(f"unknown independent generator {generator!r}; choose from {sorted(GENERATORS)}")
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    out = np.empty((index.size,) + tuple(shape), dtype=np.float32)
    for k, i in enumerate(index):
        out[k] = GENERATORS[generator](shape, seed, i)
    return out


def build_independent(problem, generator, splits, seed=0, noise=0.01, *, only=None, out=None, name=None):
    """Build the splits of an independent set; returns ``{split: Dataset}`` (saved into ``out`` when given).

    ``splits`` are ``(train, val, test)`` counts (independent sets hold a test
    split only: the others are empty). The data are computed and noised
    exactly as for every other set (the fixed-order forward sum, 1 % of each
    component's peak, noise stream ``(seed, index)``).
    """
    if generator not in GENERATORS:
        raise ValueError(f"unknown independent generator {generator!r}; choose from {sorted(GENERATORS)}")
    counts = dict(zip(("train", "val", "test"), (int(c) for c in splits)))
    only = list(counts) if only is None else ([only] if isinstance(only, str) else list(only))
    nz, nx = problem.shape
    fwd, method = _forward_batch(problem, None)
    result, start = {}, 0
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
    for split, n in counts.items():
        if split not in only:
            start += n
            continue
        index = np.arange(start, start + n, dtype=np.int64)
        rho = render_independent(generator, index, (nz, nx), seed)
        if problem.active_index is not None:
            rho[:, ~problem.active] = 0.0
        if n:
            g_clean = fwd(rho.reshape(n, -1).astype(np.float64))
            g, sigma = noisy(g_clean, index, noise, 0.0, "peak", seed, n_components=len(problem.survey.components))
        else:
            g_clean = g = sigma = np.zeros((0, problem.n_data))
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "gravbench_version": __version__,
                "generator": generator, "generator_version": INDEPENDENT_VERSION, "independent": True,
                "name": name, "split": split, "splits": counts, "first_index": start, "seed": int(seed),
                "families": {generator: 1.0}, "family_names": [generator], "family_counts": {generator: int(n)},
                "shape": [nz, nx], "n_stations": problem.survey.m, "kernel": problem.kernel,
                **_survey_extras(problem.survey), "forward": method,
                "noise": {"model": "peak", "level": float(noise), "floor": 0.0, "seed": int(seed)}}
        ds = Dataset(rho, g, g_clean, sigma, np.zeros(n, dtype=np.int8), index, problem, meta, None)
        if out is not None:
            save(ds, out / f"{split}.npz")
        result[split] = ds
        start += n
    return result
