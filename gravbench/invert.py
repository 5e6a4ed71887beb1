"""Invert a measured gravity profile: read a CSV, build the grid, run a method, write the model.

This is the library behind ``gravbench invert DATA.csv``; scripts call the
same functions::

    import gravbench.invert as gi
    prof = gi.read_profile("examples/ridge-profile.csv")      # x, elevation, gz (mGal), sigma
    res = gi.invert_profile(prof, method="depth-weighted->smooth", regional="linear")
    gi.write_outputs(res, "ridge-inversion")                   # model.npz/csv, data.csv, summary.json, PNG

The CSV
-------
One header row naming the columns (any order, case-insensitive), then one row
per station:

==============  ========================================================================
column          meaning
==============  ========================================================================
``x``           station position along the profile, m
``elevation``   station elevation, m, positive **up** (``elev`` and ``height`` accepted)
``gz``          vertical gravity, positive down (a Bouguer anomaly), in the file's units
``gx``          optional horizontal component, positive toward +x
``sigma_gz``    optional standard deviation of each gz value (``sigma`` applies to every
                component; ``sigma_gx`` to gx), in the file's units
``ground``      optional ground elevation under the station, m (default: the station's
                elevation minus ``sensor_height``)
==============  ========================================================================

Lines starting with ``#`` are comments; ``# units: uGal`` (or ``mGal``,
``m/s^2``, ``gu``) sets the gravity units (default mGal; the ``units``
argument overrides it). Lengths are metres.

Conventions inside (docs/conventions.md): z is depth, positive down, measured
from a datum at the highest point of the ground, so ``z = datum - elevation``;
the grid's top is the datum; cells whose centre is not below the ground are
inactive (air: zero, blank in the figure). Gravity is converted to mGal at
reading, the only place units change.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.sparse.linalg import LinearOperator

from . import providers as _providers
from . import refiners as _refiners
from .metrics import chi2 as chi2_of
from .metrics import chi2_threshold, is_success
from .data.regional import Regional, check_order, fit_regional
from .forward.operators import DenseOperator
from .geometry import Grid, Survey
from .problem import Problem

__all__ = ["Profile", "InversionResult", "read_profile", "make_problem", "parse_method", "invert_profile",
           "write_outputs", "invert_csv", "UNITS", "DEFAULT_METHOD", "DEFAULT_WEIGHTING"]

#: gravity units accepted in a CSV, and their size in mGal
UNITS = {"mgal": 1.0, "ugal": 1e-3, "µgal": 1e-3, "m/s^2": 1e5, "m/s2": 1e5, "si": 1e5, "gu": 0.1}

#: the default method: the L2 model-space refiner (smallness + x/z smoothness, beta by the discrepancy
#: principle) from zero, with depth weighting (:data:`DEFAULT_WEIGHTING`) and the regional trend fitted jointly.
#: (``depth-weighted->smooth`` regularises towards the depth-weighted start, which keeps the trend the first
#: fit gave: measured on examples/ridge-profile.csv, see tests/test_invert.py)
DEFAULT_METHOD = "smooth"
#: the cell weighting passed to refiners that take one: Li & Oldenburg depth weighting
DEFAULT_WEIGHTING = "depth"

_ALIASES = {"x": "x", "elevation": "elevation", "elev": "elevation", "height": "elevation", "gz": "gz",
            "gx": "gx", "sigma": "sigma", "sigma_gz": "sigma_gz", "gz_sigma": "sigma_gz", "sigma_gx": "sigma_gx",
            "gx_sigma": "sigma_gx", "ground": "ground"}


@dataclass(frozen=True)
class Profile:
    """A measured profile in gravbench's units (m, mGal; elevation positive up), sorted by x.

    Attributes
    ----------
    x, elevation : ndarray (m,)
        Station positions and elevations, m.
    data : dict
        ``{"gx": array, "gz": array}`` for the measured components, mGal.
    sigma : dict
        The same keys: standard deviations, mGal, or None where the file has none.
    ground : ndarray (m,)
        Ground elevation under each station, m.
    units : str
        The file's gravity units (converted to mGal here).
    source : str
        Where the profile came from.
    """

    x: np.ndarray
    elevation: np.ndarray
    data: dict
    sigma: dict
    ground: np.ndarray
    units: str = "mGal"
    source: str = ""

    @property
    def components(self):
        return tuple(c for c in ("gx", "gz") if c in self.data)

    @property
    def m(self):
        return int(self.x.size)


class _Bad(ValueError):
    pass


def _unit_factor(name, where):
    key = str(name).strip().replace(" ", "").lower()
    if key not in UNITS:
        raise ValueError(f"{where}: unknown gravity units {name!r}; expected one of mGal, uGal, m/s^2, gu")
    return UNITS[key]


def read_profile(path, units=None, sensor_height=0.0):
    """Read a profile CSV (see the module docstring) into a :class:`Profile` (m, mGal).

    Parameters
    ----------
    path : str or Path
        The CSV file.
    units : str, optional
        Gravity units of the file (``mGal``, ``uGal``, ``m/s^2``, ``gu``); overrides a ``# units:`` header
        comment; default mGal.
    sensor_height : float
        Height of the sensor above the ground, m (used when there is no ``ground`` column).

    Returns
    -------
    Profile

    Raises
    ------
    ValueError
        One line naming the file, the row (line number) and the column of the first bad value.
    """
    path = Path(path)
    if not (isinstance(sensor_height, (int, float)) and math.isfinite(sensor_height) and sensor_height >= 0):
        raise ValueError(f"sensor_height must be a finite height >= 0 in m, got {sensor_height!r}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text (UTF-8) CSV file") from None
    header_units = None
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            body = s.lstrip("#").strip()
            if body.lower().startswith("units"):
                header_units = body.split(":", 1)[-1].split("=", 1)[-1].strip()
            continue
        rows.append((lineno, line))
    if not rows:
        raise ValueError(f"{path}: no header row and no data (expected columns x, elevation, gz)")
    head_line, head = rows[0]
    names = [c.strip().lower() for c in next(csv.reader([head]))]
    cols = {}
    for j, n in enumerate(names):
        key = _ALIASES.get(n)
        if key is None:
            raise ValueError(f"{path}: row {head_line}, column {j + 1} ({n!r}): unknown column; expected x, "
                             f"elevation, gz and optionally gx, sigma, sigma_gz, sigma_gx, ground")
        if key in cols:
            raise ValueError(f"{path}: row {head_line}: column {key!r} appears twice")
        cols[key] = j
    for need in ("x", "elevation"):
        if need not in cols:
            raise ValueError(f"{path}: row {head_line}: missing column {need!r} (the header is {head.strip()!r})")
    if "gz" not in cols and "gx" not in cols:
        raise ValueError(f"{path}: row {head_line}: no data column: expected gz (and optionally gx)")
    unit_name = units if units is not None else (header_units or "mGal")
    fac = _unit_factor(unit_name, f"{path}" if units is None else "units")
    if len(rows) < 2:
        raise ValueError(f"{path}: no data rows after the header")
    vals = {k: [] for k in cols}
    for lineno, line in rows[1:]:
        fields = next(csv.reader([line]))
        if len(fields) != len(names):
            raise ValueError(f"{path}: row {lineno}: expected {len(names)} fields ({', '.join(names)}), "
                             f"got {len(fields)}")
        for key, j in cols.items():
            raw = fields[j].strip()
            try:
                v = float(raw)
            except ValueError:
                raise ValueError(f"{path}: row {lineno}, column {names[j]!r}: {raw!r} is not a number") from None
            if not math.isfinite(v):
                raise ValueError(f"{path}: row {lineno}, column {names[j]!r}: {raw!r} is not finite")
            if key.startswith("sigma") and v <= 0:
                raise ValueError(f"{path}: row {lineno}, column {names[j]!r}: an uncertainty must be > 0, "
                                 f"got {raw}")
            vals[key].append(v)
    lines = np.array([ln for ln, _ in rows[1:]])
    x = np.array(vals["x"])
    order = np.argsort(x, kind="stable")
    dup = np.flatnonzero(np.diff(x[order]) == 0)
    if dup.size:
        a, b = lines[order[dup[0]]], lines[order[dup[0] + 1]]
        raise ValueError(f"{path}: rows {a} and {b}, column 'x': two stations at the same x = {x[order[dup[0]]]:g} m")
    if len(rows) - 1 < 3:
        raise ValueError(f"{path}: {len(rows) - 1} station(s); a profile needs at least 3")
    elev = np.array(vals["elevation"])[order]
    data, sigma = {}, {}
    for c in ("gx", "gz"):
        if c in cols:
            data[c] = np.array(vals[c])[order] * fac
            s_ = vals.get(f"sigma_{c}", vals.get("sigma"))
            sigma[c] = None if s_ is None else np.array(s_)[order] * fac
    if "ground" in cols:
        ground = np.array(vals["ground"])[order]
        bad = np.flatnonzero(elev < ground - 1e-9 * np.maximum(1.0, np.abs(ground)))
        if bad.size:
            i = order[bad[0]]
            raise ValueError(f"{path}: row {lines[i]}, column 'elevation': the station ({elev[bad[0]]:g} m) is "
                             f"below the ground ({ground[bad[0]]:g} m); stations must be on or above the ground")
    else:
        ground = elev - float(sensor_height)
    return Profile(x=x[order], elevation=elev, data=data, sigma=sigma, ground=ground,
                   units=str(unit_name), source=str(path))


def make_problem(profile, *, dx=None, dz=None, depth=None, pad=None, kernel="exact"):
    """The grid, the survey (with its ground surface) and the problem for a profile.

    Parameters
    ----------
    profile : Profile
    dx : float, optional
        Cell width, m (default: the median station spacing).
    dz : float, optional
        Cell height, m (default ``dx``).
    depth : float, optional
        Depth of the grid below the datum (the highest ground point), m (default: half the profile's length
        plus the ground's relief, rounded up to whole cells).
    pad : int, optional
        Padding cells of width ``dx`` beyond the first and last station on each side (default 5).
    kernel : {"exact", "midpoint"}

    Returns
    -------
    (Problem, float)
        The problem (z depth below the datum, positive down) and the datum elevation, m.
    """
    x = profile.x
    length = float(x[-1] - x[0])
    if length <= 0:
        raise ValueError("the profile needs stations at two different x at least")
    if dx is None:
        dx = float(np.median(np.diff(x)))
    if not (isinstance(dx, (int, float)) and math.isfinite(dx) and dx > 0):
        raise ValueError(f"dx must be a cell width > 0 in m, got {dx!r}")
    dz = float(dx) if dz is None else dz
    if not (isinstance(dz, (int, float)) and math.isfinite(dz) and dz > 0):
        raise ValueError(f"dz must be a cell height > 0 in m, got {dz!r}")
    pad = 5 if pad is None else pad
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad must be a number of cells >= 0, got {pad!r}")
    datum = float(profile.ground.max())                 # z = 0 at the highest ground point
    relief = float(profile.ground.max() - profile.ground.min())
    if depth is None:
        depth = 0.5 * length + relief
    if not (isinstance(depth, (int, float)) and math.isfinite(depth) and depth > relief):
        raise ValueError(f"depth must be a grid depth in m greater than the ground's relief ({relief:g} m), "
                         f"got {depth!r}")
    nz = int(math.ceil(float(depth) / dz - 1e-9))
    ncore = int(math.ceil(length / dx - 1e-9)) + 1      # a cell centred on each end station
    nx = ncore + 2 * int(pad)
    x0 = float(x[0]) - 0.5 * dx - int(pad) * dx
    if nx * nz > 200_000:
        raise ValueError(f"the grid would have {nx} x {nz} = {nx * nz:,} cells; choose a larger dx/dz or a smaller "
                         f"depth (at most 200,000 cells)")
    grid = Grid(nx=nx, nz=nz, width=nx * float(dx), depth=nz * float(dz), x0=x0)
    zs = datum - profile.elevation                       # depth positive down below the datum
    zg = datum - profile.ground
    survey = Survey(profile.x, zs, components=profile.components, ground=(profile.x, zg))
    return Problem(grid, survey, kernel=kernel), datum


def parse_method(method):
    """``(provider or None, refiner or None)`` of ``"provider"``, ``"refiner"`` or ``"provider->refiner"``.

    A single name that is a refiner runs that refiner from zero (``smooth``, ``tikhonov``, ... are both);
    otherwise it is a provider's model.
    """
    if not isinstance(method, str) or not method.strip():
        raise ValueError(f"method must be a provider, a refiner or 'provider->refiner', got {method!r}")
    parts = [p.strip() for p in method.split("->")]
    prov_names, ref_names = _providers.names(), _refiners.names()
    if len(parts) == 2:
        p, r = parts
        if p not in prov_names:
            raise ValueError(f"method {method!r}: unknown provider {p!r}; providers: {', '.join(prov_names)}")
        if r not in ref_names:
            raise ValueError(f"method {method!r}: unknown refiner {r!r}; refiners: {', '.join(ref_names)}")
        return p, r
    if len(parts) == 1:
        (n,) = parts
        if n in ref_names:
            return None, n
        if n in prov_names:
            return n, None
        raise ValueError(f"method {method!r} is neither a refiner ({', '.join(ref_names)}) nor a provider "
                         f"({', '.join(prov_names)}); or give 'provider->refiner'")
    raise ValueError(f"method must be 'provider', 'refiner' or 'provider->refiner', got {method!r}")


@dataclass
class InversionResult:
    """Everything :func:`invert_profile` computed (arrays in m, kg/m^3, mGal).

    ``rho`` is the model on the whole grid ``(nz, nx)`` (0 on inactive cells);
    ``observed`` the data after the regional removal (the gx block, then the gz block), ``predicted``
    ``A rho``, ``residual = predicted - observed``, ``chi2 = mean((residual / sigma)^2)``.
    """

    profile: Profile
    problem: Problem
    datum: float
    method: str
    rho: np.ndarray
    observed: np.ndarray
    predicted: np.ndarray
    sigma: np.ndarray
    regional: dict
    regional_values: np.ndarray
    chi2: float
    success: bool
    operator: str
    sigma_note: str
    seconds: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def residual(self):
        return self.predicted - self.observed

    @property
    def n_data(self):
        return int(self.observed.size)

    def summary(self):
        """A JSON-ready dict of the run (no arrays)."""
        p = self.problem
        lo, hi = 2.0 - chi2_threshold(self.n_data), chi2_threshold(self.n_data)
        return {
            "source": self.profile.source, "method": self.method, "components": list(p.survey.components),
            "stations": p.survey.m, "n_data": self.n_data, "units_in_file": self.profile.units,
            "grid": {"nx": p.grid.nx, "nz": p.grid.nz, "dx_m": p.grid.dx, "dz_m": p.grid.dz,
                     "x_edges_m": [float(p.grid.x_edges[0]), float(p.grid.x_edges[-1])],
                     "depth_below_datum_m": [float(p.grid.z_edges[0]), float(p.grid.z_edges[-1])],
                     "datum_elevation_m": self.datum, "active_cells": p.n_active, "cells": p.n_cells},
            "operator": self.operator, "regional": self.regional, "sigma": self.sigma_note,
            "chi2": self.chi2, "success_band": [lo, hi], "success": self.success,
            "rho_min_kg_m3": float(self.rho[p.active].min()), "rho_max_kg_m3": float(self.rho[p.active].max()),
            "seconds": self.seconds, "info": self.info,
        }


def _default_sigma(profile, observed_by_comp):
    """Per-datum sigma from the file, or 2 % of each component's peak |anomaly| (stated in the summary)."""
    sig, notes = [], []
    for c in profile.components:
        s = profile.sigma.get(c)
        if s is None:
            peak = float(np.abs(observed_by_comp[c]).max())
            val = 0.02 * peak if peak > 0 else 1e-3
            sig.append(np.full(profile.m, val))
            notes.append(f"{c}: no uncertainty column, assumed 2 % of the peak |anomaly| = {val:.4g} mGal")
        else:
            sig.append(np.asarray(s, dtype=np.float64))
            notes.append(f"{c}: from the file (median {float(np.median(s)):.4g} mGal)")
    return np.concatenate(sig), "; ".join(notes)


def invert_profile(profile, method=DEFAULT_METHOD, *, regional="linear", regional_exclude=None, regional_mode="joint",
                   sigma=None,
                   dx=None, dz=None, depth=None, pad=None, kernel="exact", operator="auto", seed=0,
                   weighting=DEFAULT_WEIGHTING, refiner_options=None, log=None):
    """Invert a profile: remove the regional, build the problem, run the method.

    Parameters
    ----------
    profile : Profile
        From :func:`read_profile` (m, mGal).
    method : str
        A provider, a refiner, or ``"provider->refiner"`` (default :data:`DEFAULT_METHOD`).
    regional : str or int or None
        Regional trend removed from every component before inversion: ``none``, ``constant``, ``linear``,
        ``quadratic``, ``cubic`` or a polynomial order (:func:`gravbench.data.regional.fit_regional`).
    regional_exclude : (float, float), optional
        x window (m) left out of the trend fit (where the anomaly is).
    regional_mode : {"joint", "first"}
        ``first``: fit the trend to the raw data and remove it (the fit also takes up part of the anomaly: its
        mean and slope over the profile). ``joint`` (default; not with ``regional_exclude``): the refiner works
        on the data and the operator with the trend's span projected out (``Q d``, ``Q A``, ``Q`` the weighted
        least-squares projector off the polynomials), so the trend is free and the regularised model explains
        only the rest; the trend reported is then the least-squares fit to ``d - A x``. The provider's start
        model always sees the first fit removed.
    sigma : float, optional
        One standard deviation for every datum, mGal (overrides the file's columns).
    dx, dz, depth, pad, kernel
        The grid (:func:`make_problem`).
    operator : {"auto", "dense", "matfree", "fft"}
        Forward operator (``auto`` says which and why in the summary).
    seed : int
        Seed of stochastic providers.
    weighting : {"depth", "sensitivity", "none"} or None
        Cell weighting given to a refiner that has a ``weighting`` option (None: the refiner's default).
    refiner_options : dict, optional
        Extra options of the refiner (:func:`gravbench.refiners.options`).
    log : callable, optional
        ``log(stage_text)`` on each stage (progress).

    Returns
    -------
    InversionResult
    """
    log = log or (lambda s: None)
    prov, ref = parse_method(method)
    order = check_order(regional)
    t = {}
    t0 = time.perf_counter()
    log("building the grid and the forward operator")
    prob, datum = make_problem(profile, dx=dx, dz=dz, depth=depth, pad=pad, kernel=kernel)
    op = prob.operator(method=operator)
    t["operator"] = time.perf_counter() - t0
    m = profile.m
    comps = profile.components
    if regional_mode not in ("joint", "first"):
        raise ValueError(f"regional_mode must be 'joint' or 'first', got {regional_mode!r}")
    # 1. the trend fitted to the raw data, removed (the provider's input, and the result in mode "first")
    obs, regs, first = {}, {}, {}
    for c in comps:
        reg = fit_regional(profile.x, profile.data[c], order, sigma=profile.sigma.get(c), exclude=regional_exclude) \
            if order is not None else Regional(None, (), 0, None, 0.0)
        first[c] = reg
        obs[c] = reg.remove(profile.x, profile.data[c])
    g = np.concatenate([obs[c] for c in comps])
    if sigma is not None:
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a standard deviation > 0 in mGal, got {sigma!r}")
        sig = np.full(g.size, float(sigma))
        note = f"given: {float(sigma):.4g} mGal for every datum"
    else:
        sig, note = _default_sigma(profile, obs)
    d_raw = np.concatenate([profile.data[c] for c in comps])
    joint = order is not None and regional_mode == "joint" and regional_exclude is None
    T = _trend_basis(profile.x, order, comps) if joint else None
    op_inv = _ProjectedOperator.make(op, T, sig) if joint else op
    g_inv = op_inv.project(d_raw) if joint else g
    x0 = None
    info = {}
    if prov is not None:
        log(f"provider {prov}")
        t1 = time.perf_counter()
        rho0 = _providers.get(prov)(g, prob, sigma=sig, seed=seed)
        x0 = prob.to_active(rho0)
        t["provider"] = time.perf_counter() - t1
    x = x0 if x0 is not None else np.zeros(prob.n_active)
    if ref is not None:
        log(f"refiner {ref}")
        t1 = time.perf_counter()
        opts = dict(refiner_options or {})
        if weighting is not None and "weighting" in _refiners.options(ref):
            opts.setdefault("weighting", weighting)
        res = _refiners.run(ref, op_inv, g_inv, x0, sigma=sig, **opts)
        x = np.asarray(res.x, dtype=np.float64)
        t["refiner"] = time.perf_counter() - t1
        info = {"refiner_status": str(getattr(res, "status", "")), "converged": bool(res.converged),
                "niter": int(res.niter), "n_matvec": int(res.n_matvec), "n_rmatvec": int(res.n_rmatvec),
                "refiner_options": {k: (v if isinstance(v, (str, int, float, bool)) or v is None else repr(v))
                                    for k, v in opts.items()}}
    pred = op.matvec(x)
    reg_vals = []
    for b, c in enumerate(comps):
        sl = slice(b * m, (b + 1) * m)
        if joint and ref is not None:
            # the trend that best explains what the model leaves: the joint least-squares trend
            reg = fit_regional(profile.x, profile.data[c] - pred[sl], order, sigma=sig[sl])
            how = "joint: fitted with the model (the trend is free, the model regularised)"
        else:
            reg = first[c]
            how = "fitted to the data first, then removed" if order is not None else "none"
        regs[c] = reg.to_dict() | {"description": reg.describe(), "mode": how}
        reg_vals.append(reg(profile.x))
    reg_vals = np.concatenate(reg_vals)
    g = d_raw - reg_vals
    rho = prob.to_grid(x)
    chi2 = chi2_of(pred - g, sig)
    t["total"] = time.perf_counter() - t0
    return InversionResult(profile=profile, problem=prob, datum=datum, method=method, rho=rho, observed=g,
                           predicted=pred, sigma=sig, regional=regs, regional_values=reg_vals,
                           chi2=chi2, success=bool(is_success(chi2, g.size)), operator=op.describe(),
                           sigma_note=note, seconds=t, info=info)


def _trend_basis(x, order, comps):
    """Polynomial columns (scaled x) of the trend of every component: ``(len(comps) m, len(comps) (order+1))``."""
    m = x.size
    u = (x - 0.5 * (x[0] + x[-1])) / max(0.5 * (x[-1] - x[0]), 1e-300)
    P = np.vander(u, order + 1, increasing=True)
    T = np.zeros((len(comps) * m, len(comps) * (order + 1)))
    for b in range(len(comps)):
        T[b * m:(b + 1) * m, b * (order + 1):(b + 1) * (order + 1)] = P
    return T


class _ProjectedOperator:
    """``Q A`` with ``Q = I - T (T^T W^2 T)^-1 T^T W^2``: the operator with a trend's span projected out.

    ``W = diag(1 / sigma)``, so ``||W Q r||`` is the weighted misfit left after the best trend. For a dense
    operator ``Q A`` is formed (a :class:`~gravbench.forward.operators.DenseOperator`: compiled refiner loops);
    otherwise products are wrapped.
    """

    @staticmethod
    def make(op, T, sigma):
        w2 = 1.0 / np.asarray(sigma, dtype=np.float64) ** 2
        G = T.T @ (w2[:, None] * T)
        K = np.linalg.solve(G, (T * w2[:, None]).T)            # (T^T W^2 T)^-1 T^T W^2

        def project(d):
            return d - T @ (K @ d)

        def project_t(u):                                      # Q^T u
            return u - K.T @ (T.T @ u)

        A = getattr(op, "A", None)
        if A is not None:
            out = DenseOperator(op.problem, A=A - T @ (K @ A))
        else:
            class _QA(LinearOperator):
                def __init__(self):
                    super().__init__(dtype=np.float64, shape=op.shape)
                    self.problem = op.problem

                def _matvec(self, v):
                    return project(op.matvec(np.ravel(v)))

                def _rmatvec(self, u):
                    return op.rmatvec(project_t(np.ravel(u)))

            out = _QA()
        out.project = project
        return out


def write_outputs(result, out, *, figure=True):
    """Write the model, the data and the summary of an inversion into the directory ``out``.

    Files: ``model.npz`` (``rho`` (nz, nx) kg/m^3 with 0 on inactive cells, ``active``, ``x_edges``,
    ``z_edges`` (depth below the datum, m), ``datum_elevation``), ``model.csv`` (one row per cell: centre x,
    depth and elevation, density, active), ``data.csv`` (per datum: observed, regional, anomaly, predicted,
    residual, sigma), ``summary.json`` and ``invert.png``.

    Returns
    -------
    dict
        ``{name: Path}`` of the files written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p = result.problem
    grid = p.grid
    files = {}
    path = out / "model.npz"
    np.savez(path, rho=result.rho, active=np.asarray(p.active), x_edges=grid.x_edges, z_edges=grid.z_edges,
             datum_elevation=np.float64(result.datum))
    files["model.npz"] = path
    path = out / "model.csv"
    X, Z = np.meshgrid(grid.x_centers, grid.z_centers)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        fh.write(f"# gravbench invert: {result.method}; depth is below the datum (elevation {result.datum:g} m)\n")
        w.writerow(["x_m", "depth_m", "elevation_m", "density_kg_m3", "active"])
        for xv, zv, r, a in zip(X.ravel(), Z.ravel(), result.rho.ravel(), np.asarray(p.active).ravel()):
            w.writerow([f"{xv:.6g}", f"{zv:.6g}", f"{result.datum - zv:.6g}", f"{r:.6g}" if a else "", int(a)])
    files["model.csv"] = path
    path = out / "data.csv"
    prof = result.profile
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        fh.write(f"# gravbench invert: {result.method}; gravity in mGal; chi2 = {result.chi2:.4f}\n")
        w.writerow(["component", "x_m", "elevation_m", "observed_mGal", "regional_mGal", "anomaly_mGal",
                    "predicted_mGal", "residual_mGal", "sigma_mGal"])
        m = prof.m
        for b, c in enumerate(p.survey.components):
            for i in range(m):
                j = b * m + i
                w.writerow([c, f"{prof.x[i]:.6g}", f"{prof.elevation[i]:.6g}", f"{prof.data[c][i]:.6g}",
                            f"{result.regional_values[j]:.6g}", f"{result.observed[j]:.6g}",
                            f"{result.predicted[j]:.6g}", f"{result.residual[j]:.6g}", f"{result.sigma[j]:.6g}"])
    files["data.csv"] = path
    path = out / "summary.json"
    path.write_text(json.dumps(result.summary(), indent=2) + "\n")
    files["summary.json"] = path
    if figure:
        from .plotting import inversion_figure

        path = out / "invert.png"
        inversion_figure(result, path)
        files["invert.png"] = path
    return files


def invert_csv(path, out=None, *, units=None, sensor_height=0.0, figure=True, **options):
    """Read ``path``, invert it (:func:`invert_profile` options) and write the outputs.

    ``out`` defaults to ``<csv stem>-inversion`` beside the CSV. Returns ``(InversionResult, files)``.
    """
    prof = read_profile(path, units=units, sensor_height=sensor_height)
    res = invert_profile(prof, **options)
    out = Path(path).with_name(Path(path).stem + "-inversion") if out is None else Path(out)
    return res, write_outputs(res, out, figure=figure)
