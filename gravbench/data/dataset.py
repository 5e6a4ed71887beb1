"""Data sets: models + gravity + noise, split, saved as ``.npz`` with checked metadata.

File format (one ``.npz`` per split, written with :func:`numpy.savez`, read
with ``allow_pickle=False``; never a pickle):

==============  ==================  =============================================
array           dtype, shape        content
==============  ==================  =============================================
``rho``         float32 (N, nz, nx) density contrasts, kg/m^3
``g``           float64 (N, 2m)     noisy data ``[gx..., gz...]``, mGal
``g_clean``     float64 (N, 2m)     noise-free data, mGal
``sigma``       float64 (N, 2m)     noise standard deviations, mGal
``family``      int8 (N,)           family codes into ``meta["family_names"]``
``index``       int64 (N,)          global sample index (keys the random streams)
``x_edges``     float64 (nx+1,)     grid
``z_edges``     float64 (nz+1,)
``survey_x``    float64 (m,)        stations
``survey_z``    float64 (m,)
``meta``        unicode (1,)        JSON: versions, seed, families, noise, sha256
==============  ==================  =============================================

``meta["sha256"]`` is the SHA-256 of every other array (name, dtype, shape
and bytes, in the order above); :func:`load` recomputes it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .families import (BASE_FAMILIES, GENERATOR_VERSION, _check_seed, assign_families, family_params, render,
                       resolve_families)
from .noise import _check as _check_noise
from .noise import noisy
from ._forward import ordered_forward
from .. import __version__
from ..geometry import Grid, Survey
from ..problem import Problem

__all__ = ["Dataset", "build", "load", "save", "add_noise", "FORMAT", "FORMAT_VERSION"]

FORMAT = "gravbench-dataset"
FORMAT_VERSION = 1
_ARRAYS = ("rho", "g", "g_clean", "sigma", "family", "index", "x_edges", "z_edges", "survey_x", "survey_z")
_SPLIT_NAMES = ("train", "val", "test")
#: Use the stored dense ``A`` for the batched forward when it takes at most this many bytes.
DENSE_BUILD_MAX_BYTES = 1 << 30


@dataclass(eq=False)
class Dataset:
    """One split of a data set.

    Attributes
    ----------
    rho : (N, nz, nx) float32
        Density contrasts, kg/m^3.
    g : (N, 2m) float64
        Noisy data used for inversion, mGal.
    g_clean : (N, 2m) float64
        Noise-free data, mGal.
    sigma : (N, 2m) float64
        Noise standard deviation of every datum, mGal.
    family : (N,) int8
        Family codes; ``family_names[family[i]]`` is the name.
    index : (N,) int64
        Global sample index (keys the model and noise random streams).
    problem : gravbench.Problem
    meta : dict
        Versions, seed, families, proportions, noise model / level / floor / seed, sha256, ...
    path : Path or None
        The file it was loaded from or saved to.
    """

    rho: np.ndarray
    g: np.ndarray
    g_clean: np.ndarray
    sigma: np.ndarray
    family: np.ndarray
    index: np.ndarray
    problem: object
    meta: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def family_names(self):
        """The names the ``family`` codes index: ``meta["family_names"]`` when stored, else the base families."""
        names = self.meta.get("family_names") if isinstance(self.meta, dict) else None
        return tuple(names) if names else BASE_FAMILIES

    def __len__(self):
        return self.rho.shape[0]

    @property
    def split(self):
        return self.meta.get("split")

    @property
    def noise(self):
        """``{"model", "level", "floor", "seed"}`` of the data in ``g``."""
        return dict(self.meta.get("noise", {}))

    def family_of(self, i):
        """The family name of sample ``i``."""
        return self.family_names[int(self.family[i])]

    def family_counts(self):
        """``{name: count}`` of the families in this split."""
        c = np.bincount(self.family.astype(np.int64), minlength=len(self.family_names))
        return {n: int(c[k]) for k, n in enumerate(self.family_names) if c[k]}

    def subset(self, idx):
        """A new Dataset with the samples ``idx`` (an index array, a slice or a boolean mask)."""
        meta = dict(self.meta)
        meta.pop("sha256", None)
        return Dataset(self.rho[idx], self.g[idx], self.g_clean[idx], self.sigma[idx], self.family[idx],
                       self.index[idx], self.problem, meta, None)

    def arrays(self):
        """All arrays of the file format, in order (name -> array)."""
        grid, survey = self.problem.grid, self.problem.survey
        return {"rho": self.rho, "g": self.g, "g_clean": self.g_clean, "sigma": self.sigma,
                "family": self.family, "index": self.index, "x_edges": np.asarray(grid.x_edges),
                "z_edges": np.asarray(grid.z_edges), "survey_x": np.asarray(survey.x),
                "survey_z": np.asarray(survey.z)}

    def __repr__(self):
        nz, nx = self.rho.shape[1:]
        nse = self.noise
        return (f"<Dataset {self.meta.get('name') or ''}{'/' if self.meta.get('name') else ''}"
                f"{self.split or 'all'}: {len(self)} models {nz}x{nx}, {self.g.shape[1]} data, "
                f"noise {nse.get('model')} {nse.get('level')} + {nse.get('floor')} mGal>")


def _sha256(arrays):
    h = hashlib.sha256()
    for name in _ARRAYS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        if a.size:
            h.update(memoryview(a).cast("B"))
    return h.hexdigest()


# ----------------------------------------------------------------------------
# noise
# ----------------------------------------------------------------------------
def add_noise(dataset, noise=0.01, *, noise_floor=0.0, noise_model="peak", noise_seed=None):
    """Re-noise a data set from its clean data: a new :class:`Dataset` sharing ``rho`` and ``g_clean``.

    Parameters
    ----------
    dataset : Dataset
    noise : float
        Relative level (see :mod:`gravbench.data.noise`).
    noise_floor : float
        Absolute floor, mGal.
    noise_model : {"peak", "datum"}
    noise_seed : int, optional
        Defaults to the data set's model seed. Sample ``i`` always gets the same
        noise for a given seed, whatever split or subset it is in.
    """
    if noise_seed is None:
        noise_seed = int(dataset.meta.get("seed", 0))
    g, sigma = noisy(dataset.g_clean, dataset.index, noise, noise_floor, noise_model, noise_seed,
                     n_components=len(dataset.problem.survey.components))
    meta = dict(dataset.meta)
    meta.pop("sha256", None)
    meta["noise"] = {"model": noise_model, "level": float(noise), "floor": float(noise_floor),
                     "seed": int(noise_seed)}
    return Dataset(dataset.rho, g, dataset.g_clean, sigma, dataset.family, dataset.index, dataset.problem,
                   meta, None)


# ----------------------------------------------------------------------------
# build
# ----------------------------------------------------------------------------
def _split_counts(count, splits):
    """Resolve ``(count, splits)`` to an ordered dict ``split name -> count``."""
    if splits is None:
        if count is None:
            raise ValueError("count is required when splits is not given")
        return {"all": _check_count(count)}
    if isinstance(splits, dict):
        names = list(splits)
        vals = list(splits.values())
    else:
        vals = list(splits)
        if len(vals) not in (2, 3):
            raise ValueError(f"splits must be (train, val, test) or (train, test) fractions or counts, got {splits!r}")
        names = list(_SPLIT_NAMES) if len(vals) == 3 else ["train", "test"]
    for n in names:
        if not isinstance(n, str) or not n.isidentifier():
            raise ValueError(f"split names must be identifiers, got {n!r}")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
        counts = [int(v) for v in vals]
        if any(c < 0 for c in counts):
            raise ValueError(f"split counts must be >= 0, got {splits!r}")
        if count is not None and sum(counts) != count:
            raise ValueError(f"split counts {counts} sum to {sum(counts)}, but count = {count}")
        return dict(zip(names, counts))
    try:
        fr = [float(v) for v in vals]
    except (TypeError, ValueError):
        raise ValueError(f"splits must be numbers, got {splits!r}") from None
    if any(not math.isfinite(f) or f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {splits!r}")
    if count is None:
        raise ValueError("count is required when splits are fractions")
    count = _check_count(count)
    counts = [int(math.floor(f * count)) for f in fr]
    counts[0] += count - sum(counts)
    return dict(zip(names, counts))


def _check_count(count):
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be an integer >= 0, got {count!r}")
    return int(count)


def _survey_extras(survey):
    """Metadata of a survey beyond its stations: components (when not both) and the ground (when any)."""
    out = {}
    if survey.components != ("gx", "gz"):
        out["components"] = list(survey.components)
    if survey.ground is not None:
        out["ground"] = [survey.ground[0].tolist(), survey.ground[1].tolist()]
    return out


def _forward_batch(problem, method=None):
    """A function ``rho (c, nz*nx) float64 -> g (c, 2m)`` and the operator method used.

    ``method=None``: the dense A when it takes at most
    ``DENSE_BUILD_MAX_BYTES``, else ``problem.operator("auto")``; a method name
    forces that operator. Operators with a stored ``A`` are applied by the
    fixed-order sum of :func:`gravbench.data._forward.ordered_forward`
    (bitwise the same on every machine, unlike a BLAS GEMM), the others by
    ``matmat`` (FFT or matrix-free: last bits may depend on the machine).
    """
    if method is None:
        nbytes = problem.n_data * problem.n_cells * 8
        method = "dense" if nbytes <= DENSE_BUILD_MAX_BYTES else "auto"
    op = problem.operator(method)
    A = getattr(op, "A", None)
    idx = getattr(problem, "active_index", None)     # a ground surface: the operator sees the active cells

    def cells(R):
        return R if idx is None else np.ascontiguousarray(R[:, idx])

    if A is not None:

        AT = np.ascontiguousarray(A.T)
        return (lambda R: ordered_forward(cells(R), AT)), op.method
    return (lambda R: np.asarray(op.matmat(cells(R).T)).T), op.method


def _progress(progress, total, desc):
    """A context manager yielding ``advance(n)``."""
    import contextlib

    if callable(progress):
        state = {"done": 0}

        @contextlib.contextmanager
        def cm():
            def adv(n):
                state["done"] += n
                progress(state["done"], total)
            yield adv
        return cm()
    if not progress:
        @contextlib.contextmanager
        def nothing():
            yield lambda n: None
        return nothing()

    @contextlib.contextmanager
    def bar():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=False) as p:
            t = p.add_task(desc, total=total)
            yield lambda n: p.advance(t, n)
    return bar()


def build(problem, families="mixed", count=None, seed=0, noise=0.01, *, noise_floor=0.0, noise_model="peak",
          noise_seed=None, splits=None, only=None, out=None, name=None, params=None, method=None, chunk=2048,
          progress=False):
    """Generate models, compute their gravity with the forward core, add noise, split and (optionally) save.

    Parameters
    ----------
    problem : gravbench.Problem
        Grid, survey and kernel.
    families : str, list or dict
        ``"mixed"`` (default proportions), one family, a list (equal shares) or
        ``{name: weight}``; see :mod:`gravbench.data.families`.
    count : int
        Total number of models (optional when ``splits`` are counts).
    seed : int
        Model seed: same seed -> bitwise-identical models.
    noise : float
        Relative noise level (0.01 = 1 % of each component's peak by default).
    noise_floor : float
        Absolute noise floor, mGal.
    noise_model : {"peak", "datum"}
    noise_seed : int, optional
        Seed of the noise streams (defaults to ``seed``; the streams differ from
        the model streams either way).
    splits : tuple or dict, optional
        ``(train, val, test)`` or ``(train, test)`` fractions (sum 1) or counts,
        or ``{name: count}``. ``None``: one split named ``"all"``. Splits are
        contiguous ranges of the global sample index; the family mix is
        stratified: every split has the requested proportions (exact counts).
    only : sequence of str, optional
        Build only these splits (the others are skipped, not rendered). Each
        split depends only on its own index range, so a split built alone is
        bitwise identical to the same split of a full build.
    out : path, optional
        Directory: one ``<split>.npz`` per split is written there (atomically).
    name : str, optional
        A label stored in the metadata (standard sets use their name).
    params : dict, optional
        ``{family: {parameter: value}}`` overrides (see ``families.PARAMS``).
    method : {None, "auto", "dense", "matfree", "fft"}
        Forward operator: ``None`` uses the dense A (a fixed-order sum per chunk) when it
        fits in ``DENSE_BUILD_MAX_BYTES`` (1 GiB), else ``problem.operator("auto")``.
    chunk : int
        Models generated and forward-modelled per batch (bounds temporary memory).
    progress : bool or callable
        A rich progress bar on stderr, or ``callback(done, total)``.

    Returns
    -------
    dict
        ``split name -> Dataset`` (with ``.path`` set when saved).

    Notes
    -----
    g is computed as ``rho.reshape(N, -1) @ A.T`` with the dense sensitivity
    when it fits in ``DENSE_BUILD_MAX_BYTES``, summed over the cells in a
    fixed order without fused multiply-adds so that the bits are the same on
    every machine and thread count (:mod:`gravbench.data._forward`), else
    with the operator of ``problem.operator("auto")`` (``matmat``; FFT round-off
    may then differ in the last bits between machines).

    Examples
    --------
    >>> import gravbench as gb
    >>> sets = build(gb.Problem.paper(n=12), count=64, seed=0, splits=(48, 8, 8))
    >>> [len(sets[s]) for s in ("train", "val", "test")]
    [48, 8, 8]
    """
    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be a gravbench.Problem, got {type(problem).__name__}")
    seed = _check_seed(seed)
    noise_seed = seed if noise_seed is None else _check_seed(noise_seed)
    _check_noise(noise, noise_floor, noise_model)
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    counts = _split_counts(count, splits)
    props = resolve_families(families)
    params = params or {}
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict family -> {{parameter: value}}, got {params!r}")
    pvec = {}
    for fam, over in params.items():
        if fam not in props:
            raise ValueError(f"params given for family {fam!r}, which is not in the requested families {list(props)}")
        pvec[fam] = family_params(fam, **over)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)

    if only is not None:
        only = [only] if isinstance(only, str) else list(only)
        bad = [s for s in only if s not in counts]
        if bad:
            raise ValueError(f"only names splits {bad} that are not among the splits {list(counts)}")

    nz, nx = problem.shape
    fwd, method = _forward_batch(problem, method)
    total = sum(n for s, n in counts.items() if only is None or s in only)
    result = {}
    start = 0
    with _progress(progress, total, f"building {name or 'data set'} ({nz}x{nx}, {total:,} models)") as advance:
        for s_no, (split, n) in enumerate(counts.items()):
            if only is not None and split not in only:
                start += n
                continue
            index = np.arange(start, start + n, dtype=np.int64)
            codes = assign_families(props, n, seed, salt=s_no + 1)
            rho = np.empty((n, nz, nx), dtype=np.float32)
            g_clean = np.empty((n, problem.n_data), dtype=np.float64)
            for a in range(0, n, chunk):
                b = min(n, a + chunk)
                render(codes[a:b], index[a:b], (nz, nx), seed, out=rho[a:b], params=pvec)
                if problem.active_index is not None:
                    rho[a:b, ~problem.active] = 0.0          # air above the ground holds no mass
                g_clean[a:b] = fwd(rho[a:b].reshape(b - a, -1).astype(np.float64))
                advance(b - a)
            g, sigma = noisy(g_clean, index, noise, noise_floor, noise_model, noise_seed,
                             n_components=len(problem.survey.components))
            meta = {
                "format": FORMAT, "format_version": FORMAT_VERSION,
                "gravbench_version": __version__, "generator_version": GENERATOR_VERSION,
                "name": name, "split": split, "splits": counts, "first_index": start,
                "seed": seed, "families": props, "family_names": list(BASE_FAMILIES),
                "family_counts": {BASE_FAMILIES[c]: int((codes == c).sum()) for c in np.unique(codes)},
                "params": {k: {p: (list(v) if np.ndim(v) else v) for p, v in d.items()} for k, d in params.items()},
                "shape": [nz, nx], "n_stations": problem.survey.m, "kernel": problem.kernel,
                **_survey_extras(problem.survey),
                "forward": method,
                "noise": {"model": noise_model, "level": float(noise), "floor": float(noise_floor),
                          "seed": int(noise_seed)},
            }
            ds = Dataset(rho, g, g_clean, sigma, codes, index, problem, meta, None)
            if out is not None:
                save(ds, out / f"{split}.npz")
            result[split] = ds
            start += n
    return result


def save(dataset, path):
    """Write ``dataset`` to ``path`` (``.npz``, atomically: a temporary file then a rename). Returns the path."""
    path = Path(path)
    arrays = dataset.arrays()
    meta = dict(dataset.meta)
    meta["sha256"] = _sha256(arrays)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array([json.dumps(meta, sort_keys=True)]), **arrays)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    dataset.meta = meta
    dataset.path = path
    return path


# ----------------------------------------------------------------------------
# load
# ----------------------------------------------------------------------------
def _damaged(path, exc):
    return ValueError(f"{path}: not a readable gravbench data set (truncated or corrupted file?): "
                      f"{type(exc).__name__}: {exc}")


def _describe_grid(xe, ze):
    return (f"{ze.size - 1} x {xe.size - 1} cells over x [{xe[0]:g}, {xe[-1]:g}] m, "
            f"z [{ze[0]:g}, {ze[-1]:g}] m")


def _same(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-12, atol=1e-9)


def _check_problem(path, arr, meta, problem):
    grid, survey = problem.grid, problem.survey
    if not (_same(arr["x_edges"], grid.x_edges) and _same(arr["z_edges"], grid.z_edges)):
        raise ValueError(f"{path}: grid differs: the file has {_describe_grid(arr['x_edges'], arr['z_edges'])}, "
                         f"the problem has {_describe_grid(grid.x_edges, grid.z_edges)}")
    if not (_same(arr["survey_x"], survey.x) and _same(arr["survey_z"], survey.z)):
        sx, sz = arr["survey_x"], arr["survey_z"]
        raise ValueError(
            f"{path}: survey differs: the file has {sx.size} stations (x {sx.min():g}..{sx.max():g} m, "
            f"z {sz.min():g}..{sz.max():g} m), the problem has {survey.m} "
            f"(x {survey.x.min():g}..{survey.x.max():g} m, z {survey.z.min():g}..{survey.z.max():g} m)")
    if tuple(meta.get("components", ("gx", "gz"))) != tuple(survey.components):
        raise ValueError(f"{path}: components differ: the file holds {tuple(meta.get('components', ('gx', 'gz')))}, "
                         f"the problem measures {tuple(survey.components)}")
    if meta.get("kernel") != problem.kernel:
        raise ValueError(f"{path}: kernel differs: the file was computed with kernel={meta.get('kernel')!r}, "
                         f"the problem uses kernel={problem.kernel!r}")


def load(path, problem=None, *, verify=True):
    """Load a data set split written by :func:`build` / :func:`save`.

    Parameters
    ----------
    path : path
        A ``.npz`` file.
    problem : gravbench.Problem, optional
        When given, the file's grid, survey and kernel must match it
        (``ValueError`` naming what differs); otherwise the problem is rebuilt
        from the file.
    verify : bool
        Recompute the SHA-256 of the arrays and compare with the metadata.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Truncated or corrupted file, a pickle-bearing file, a sha256 mismatch,
        missing arrays, or a grid / survey / kernel different from ``problem``.
    """
    if problem is not None and not isinstance(problem, Problem):
        raise ValueError(f"problem must be a gravbench.Problem or None, got {type(problem).__name__} {problem!r}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; expected a data set .npz file (e.g. {path / 'train.npz'})")
    if not path.is_file():
        raise FileNotFoundError(f"no data set file at {path}")
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _damaged(path, exc) from exc
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not a gravbench data set (expected an .npz archive, found a single array)")
    arr = {}
    with z:
        missing = [n for n in ("meta",) + _ARRAYS if n not in z.files]
        if missing:
            raise ValueError(f"{path}: not a gravbench data set: missing arrays {missing}")
        for n in ("meta",) + _ARRAYS:
            try:
                arr[n] = z[n]
            except ValueError as exc:
                if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
                    raise ValueError(f"{path}: array {n!r} holds pickled Python objects; gravbench data sets never "
                                     "contain pickles and are read with allow_pickle=False (refusing to load)") from exc
                raise _damaged(path, exc) from exc
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise _damaged(path, exc) from exc
    try:
        meta = json.loads(str(arr["meta"].reshape(-1)[0]))
        if not isinstance(meta, dict):
            raise TypeError("metadata is not a JSON object")
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{path}: unreadable metadata: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gravbench data set (format {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: data set format version {meta.get('format_version')} is not supported "
                         f"(this gravbench reads version {FORMAT_VERSION}); rebuild it")
    if verify:
        got = _sha256(arr)
        if got != meta.get("sha256"):
            raise ValueError(f"{path}: sha256 mismatch: the arrays were edited or the file is damaged "
                             f"(metadata says {str(meta.get('sha256'))[:12]}..., contents hash to {got[:12]}...)")
    if problem is not None:
        _check_problem(path, arr, meta, problem)
    else:
        try:
            problem = Problem(Grid.from_edges(arr["x_edges"], arr["z_edges"]),
                              Survey(arr["survey_x"], arr["survey_z"],
                                     components=tuple(meta.get("components", ("gx", "gz"))),
                                     ground=meta.get("ground")), meta.get("kernel", "exact"))
        except ValueError as exc:
            raise ValueError(f"{path}: invalid geometry in the file: {exc}") from exc
    n = arr["rho"].shape[0]
    nz, nx = problem.shape
    shapes = {"rho": (n, nz, nx), "g": (n, problem.n_data), "g_clean": (n, problem.n_data),
              "sigma": (n, problem.n_data), "family": (n,), "index": (n,)}
    for k, shp in shapes.items():
        if arr[k].shape != shp:
            raise ValueError(f"{path}: array {k!r} has shape {arr[k].shape}, expected {shp}")
    n_names = len(meta.get("family_names") or BASE_FAMILIES)
    if arr["family"].size and (arr["family"].min() < 0 or arr["family"].max() >= n_names):
        raise ValueError(f"{path}: family codes outside 0..{n_names - 1}")
    return Dataset(arr["rho"], arr["g"], arr["g_clean"], arr["sigma"], arr["family"], arr["index"], problem, meta,
                   path)
