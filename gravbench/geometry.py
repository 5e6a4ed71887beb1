"""Geometry: the model grid and the survey (stations). Pure NumPy, the bottom layer.

:class:`gravbench.Problem`, which ties a grid and a survey to a kernel and
offers forward modelling, lives one layer up in :mod:`gravbench.problem`
(it needs :mod:`gravbench.forward`; this module imports nothing from it).

Conventions (see docs/conventions.md): metres, x to the right, z is depth
(positive down), the ground surface is z = 0. A density model ``rho`` has shape
``(nz, nx)``; ``rho[k, i]`` is depth row ``k`` (0 = shallowest), column ``i``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Grid", "Survey", "COMPONENTS"]


#: largest |coordinate| in metres accepted for cell edges and stations: squared distances stay far from
#: float64 overflow (width=1e300 would otherwise give NaN fields silently); 1e9 km is beyond any survey
MAX_COORD = 1e12


def _as_edges(name, edges):
    try:
        e = np.asarray(edges, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1D array of numbers, got {edges!r}") from exc
    if e.ndim != 1:
        raise ValueError(f"{name} must be 1D, got an array of shape {e.shape}")
    if e.size < 2:
        raise ValueError(f"{name} needs at least 2 edges (1 cell), got {e.size}: the grid would be empty")
    if not np.all(np.isfinite(e)):
        raise ValueError(f"{name} must be finite, got NaN or inf at index {int(np.flatnonzero(~np.isfinite(e))[0])}")
    if np.any(np.abs(e) > MAX_COORD):
        i = int(np.flatnonzero(np.abs(e) > MAX_COORD)[0])
        raise ValueError(f"{name} must lie within +-{MAX_COORD:g} m (the kernels square distances), "
                         f"got {name}[{i}] = {e[i]!r}")
    d = np.diff(e)
    if np.any(d <= 0):
        bad = int(np.flatnonzero(d <= 0)[0])
        raise ValueError(
            f"{name} must be strictly increasing, but {name}[{bad + 1}] = {e[bad + 1]!r} <= {name}[{bad}] = {e[bad]!r}"
        )
    e = e.copy()
    e.setflags(write=False)
    return e


def _uniform(e, rtol=1e-12):
    d = np.diff(e)
    return bool(np.all(np.abs(d - d[0]) <= rtol * abs(d[0]) + 1e-300))


class Grid:
    """A 2D grid of rectangular cells, infinite along strike.

    Parameters
    ----------
    nx, nz : int
        Number of cells across (x) and down (z).
    width, depth : float
        Extent in metres across and down. Cells are uniform.
    x0 : float, optional
        x of the left edge, metres. The top edge is always at ``z_top``.
    z_top : float, optional
        Depth of the top edge, metres (>= 0: the grid is underground).

    Use :meth:`Grid.from_edges` for non-uniform cells.

    Examples
    --------
    >>> g = Grid(nx=4, nz=2, width=400.0, depth=100.0)
    >>> g.shape, g.x_edges[:3].tolist(), g.z_edges.tolist()
    ((2, 4), [0.0, 100.0, 200.0], [0.0, 50.0, 100.0])
    """

    __slots__ = ("x_edges", "z_edges")

    def __init__(self, nx=50, nz=50, width=1000.0, depth=1000.0, x0=0.0, z_top=0.0):
        for name, v in (("nx", nx), ("nz", nz)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}: the grid would be empty")
        for name, v in (("width", width), ("depth", depth)):
            if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and 0 < v <= MAX_COORD):
                raise ValueError(f"{name} must be a positive finite number of metres (<= {MAX_COORD:g}), got {v!r}")
        if not math.isfinite(x0):
            raise ValueError(f"x0 must be finite, got {x0!r}")
        if not (math.isfinite(z_top) and z_top >= 0):
            raise ValueError(f"z_top must be a finite depth >= 0 (the grid is underground), got {z_top!r}")
        xe = x0 + np.arange(nx + 1, dtype=np.float64) * (float(width) / nx)
        ze = z_top + np.arange(nz + 1, dtype=np.float64) * (float(depth) / nz)
        object.__setattr__(self, "x_edges", _as_edges("x_edges", xe))
        object.__setattr__(self, "z_edges", _as_edges("z_edges", ze))

    def __setattr__(self, name, value):
        raise AttributeError("Grid is immutable")

    @classmethod
    def from_edges(cls, x_edges, z_edges):
        """Grid from explicit cell edges (metres, strictly increasing; z_edges[0] >= 0)."""
        xe = _as_edges("x_edges", x_edges)
        ze = _as_edges("z_edges", z_edges)
        if ze[0] < 0:
            raise ValueError(f"z_edges must be depths >= 0 (the grid lies below the surface z = 0), got z_edges[0] = {ze[0]!r}")
        obj = cls.__new__(cls)
        object.__setattr__(obj, "x_edges", xe)
        object.__setattr__(obj, "z_edges", ze)
        return obj

    # --- derived quantities -------------------------------------------------
    @property
    def nx(self) -> int:
        return self.x_edges.size - 1

    @property
    def nz(self) -> int:
        return self.z_edges.size - 1

    @property
    def shape(self):
        """``(nz, nx)``: the shape of a density model on this grid."""
        return (self.nz, self.nx)

    @property
    def size(self) -> int:
        """Number of cells ``nz * nx``."""
        return self.nz * self.nx

    @property
    def width(self) -> float:
        return float(self.x_edges[-1] - self.x_edges[0])

    @property
    def depth(self) -> float:
        return float(self.z_edges[-1] - self.z_edges[0])

    @property
    def x_centers(self):
        return 0.5 * (self.x_edges[1:] + self.x_edges[:-1])

    @property
    def z_centers(self):
        return 0.5 * (self.z_edges[1:] + self.z_edges[:-1])

    @property
    def uniform_x(self) -> bool:
        return _uniform(self.x_edges)

    @property
    def uniform_z(self) -> bool:
        return _uniform(self.z_edges)

    @property
    def dx(self) -> float:
        """Cell width in metres (uniform grids; the mean width otherwise)."""
        return self.width / self.nx

    @property
    def dz(self) -> float:
        return self.depth / self.nz

    def cell_areas(self):
        """Cell areas in m^2, shape ``(nz, nx)``."""
        return np.outer(np.diff(self.z_edges), np.diff(self.x_edges))

    def check_model(self, rho, name="rho"):
        """Validate a density model for this grid and return it as a float64 ``(nz, nx)`` array.

        A flat vector of length ``nz * nx`` is accepted and reshaped (C order).
        """
        try:
            r = np.asarray(rho, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be an array of densities in kg/m^3") from exc
        if r.shape == (self.size,):
            r = r.reshape(self.shape)
        if r.shape != self.shape:
            raise ValueError(
                f"{name} must have shape (nz, nx) = {self.shape} or ({self.size},), got {r.shape}"
            )
        if not np.all(np.isfinite(r)):
            raise ValueError(f"{name} contains NaN or inf; densities must be finite (kg/m^3)")
        return r

    def __eq__(self, other):
        return (
            isinstance(other, Grid)
            and np.array_equal(self.x_edges, other.x_edges)
            and np.array_equal(self.z_edges, other.z_edges)
        )

    def __hash__(self):
        return hash((self.x_edges.tobytes(), self.z_edges.tobytes()))

    def __repr__(self):
        kind = "uniform" if (self.uniform_x and self.uniform_z) else "non-uniform"
        return (
            f"Grid(nx={self.nx}, nz={self.nz}, x=[{self.x_edges[0]:g}, {self.x_edges[-1]:g}] m, "
            f"z=[{self.z_edges[0]:g}, {self.z_edges[-1]:g}] m, {kind})"
        )

    def to_dict(self):
        return {"x_edges": self.x_edges.tolist(), "z_edges": self.z_edges.tolist()}


#: The gravity components a survey can measure, in the fixed order of every data vector.
COMPONENTS = ("gx", "gz")


def _check_components(components):
    if isinstance(components, str):
        components = (components,)
    try:
        comps = tuple(components)
    except TypeError:
        raise ValueError(f"components must be a non-empty subset of {COMPONENTS} in that order, "
                         f"got {components!r}") from None
    if not comps or any(c not in COMPONENTS for c in comps) or len(set(comps)) != len(comps):
        raise ValueError(f"components must be a non-empty subset of {COMPONENTS} without repeats, "
                         f"got {components!r}")
    canon = tuple(c for c in COMPONENTS if c in comps)
    if comps != canon:
        raise ValueError(f"components must be given in the data vector's fixed order (gx block, then gz block): "
                         f"{canon!r}, got {comps!r}")
    return canon


def _check_ground(ground):
    """``(x, z)`` of a piecewise-linear ground surface (metres, z depth positive down), read-only arrays."""
    try:
        gx_, gz_ = ground
        gx_ = np.atleast_1d(np.asarray(gx_, dtype=np.float64)).copy()
        gz_ = np.atleast_1d(np.asarray(gz_, dtype=np.float64)).copy()
    except (TypeError, ValueError):
        raise ValueError("ground must be a pair (x, z) of equal-length arrays of metres (z = depth of the ground "
                         f"surface, positive down: z = -elevation), got {type(ground).__name__}") from None
    if gx_.ndim != 1 or gx_.shape != gz_.shape or gx_.size < 1:
        raise ValueError(f"ground x and z must be 1D arrays of equal length >= 1, got shapes {gx_.shape} and "
                         f"{gz_.shape}")
    for name, a in (("x", gx_), ("z", gz_)):
        if not np.all(np.isfinite(a)) or np.any(np.abs(a) > MAX_COORD):
            i = int(np.flatnonzero(~np.isfinite(a) | (np.abs(a) > MAX_COORD))[0])
            raise ValueError(f"ground {name}[{i}] = {a[i]!r}: ground coordinates must be finite metres within "
                             f"+-{MAX_COORD:g}")
    if gx_.size > 1 and np.any(np.diff(gx_) <= 0):
        i = int(np.flatnonzero(np.diff(gx_) <= 0)[0])
        raise ValueError(f"ground x must be strictly increasing, but x[{i + 1}] = {gx_[i + 1]!r} <= "
                         f"x[{i}] = {gx_[i]!r}")
    gx_.setflags(write=False)
    gz_.setflags(write=False)
    return gx_, gz_


class Survey:
    """Gravity stations at or above the ground (depth positive down).

    Parameters
    ----------
    x, z : array_like
        Station coordinates in metres, equal length; ``z`` is depth, positive
        down (a station at height ``h`` above the datum has ``z = -h``).
    components : tuple of str, optional
        The measured components, a non-empty subset of ``("gx", "gz")`` in
        that order (default both). Data vectors stack one block of ``m``
        values per component, always gx before gz: ``[gx(0..m-1), gz(0..m-1)]``
        for both, ``[gz(0..m-1)]`` for ``("gz",)``.
    ground : (array_like, array_like), optional
        The ground surface as ``(x, z)`` nodes (metres; ``z`` is the depth of
        the ground, positive down, so ``z = -elevation`` above the datum;
        ``x`` strictly increasing), linear between nodes and constant beyond
        the end nodes. Default: the flat ground ``z = 0``. Stations must be on
        or above it (``z_station <= ground(x_station)``); grid cells whose
        centre is not strictly below it are inactive (air: see
        :attr:`gravbench.Problem.active`).

    Data vectors from a survey of ``m`` stations have length
    ``len(components) * m`` in mGal.

    Examples
    --------
    >>> s = Survey([0.0, 10.0, 20.0], [-5.0, 0.0, 3.0], components=("gz",),
    ...            ground=([0.0, 20.0], [0.0, 3.0]))
    >>> s.n_data, s.ground_depth([10.0]).tolist()
    (3, [1.5])
    """

    __slots__ = ("x", "z", "components", "ground")

    def __init__(self, x, z, components=COMPONENTS, ground=None):
        try:
            xa = np.atleast_1d(np.asarray(x, dtype=np.float64)).copy()
            za = np.atleast_1d(np.asarray(z, dtype=np.float64)).copy()
        except (TypeError, ValueError) as exc:
            raise ValueError("Survey x and z must be arrays of numbers (metres)") from exc
        if xa.ndim != 1 or za.ndim != 1:
            raise ValueError(f"Survey x and z must be 1D, got shapes {xa.shape} and {za.shape}")
        if za.size == 1 and xa.size > 1:
            za = np.full_like(xa, za[0])
        if xa.shape != za.shape:
            raise ValueError(f"Survey x and z must have the same length, got {xa.size} and {za.size}")
        if xa.size == 0:
            raise ValueError("Survey needs at least one station, got 0")
        for name, a in (("x", xa), ("z", za)):
            if not np.all(np.isfinite(a)):
                i = int(np.flatnonzero(~np.isfinite(a))[0])
                raise ValueError(f"Survey {name}[{i}] is {a[i]!r}; station coordinates must be finite (metres)")
            if np.any(np.abs(a) > MAX_COORD):
                i = int(np.flatnonzero(np.abs(a) > MAX_COORD)[0])
                raise ValueError(f"Survey {name}[{i}] is {a[i]!r}; station coordinates must lie within "
                                 f"+-{MAX_COORD:g} m")
        comps = _check_components(components)
        gr = None if ground is None else _check_ground(ground)
        if gr is None:
            if np.any(za > 0):
                i = int(np.flatnonzero(za > 0)[0])
                raise ValueError(
                    f"Survey z[{i}] = {za[i]!r} is inside the ground; stations need z <= 0 (depth positive down)"
                )
        else:
            zg = np.interp(xa, gr[0], gr[1])
            tol = 1e-9 * np.maximum(1.0, np.abs(zg))
            bad = za > zg + tol
            if np.any(bad):
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"Survey station {i} (x = {xa[i]:g} m, z = {za[i]:g} m) is below the ground surface "
                    f"(ground z = {zg[i]:g} m there; z is depth, positive down): stations must be on or above "
                    f"the ground")
        xa.setflags(write=False)
        za.setflags(write=False)
        object.__setattr__(self, "x", xa)
        object.__setattr__(self, "z", za)
        object.__setattr__(self, "components", comps)
        object.__setattr__(self, "ground", gr)

    def __setattr__(self, name, value):
        raise AttributeError("Survey is immutable")

    def ground_depth(self, x):
        """Depth of the ground surface at ``x`` (metres, positive down; 0 for the flat default)."""
        xa = np.asarray(x, dtype=np.float64)
        if self.ground is None:
            return np.zeros_like(xa)
        return np.interp(xa, self.ground[0], self.ground[1])

    @property
    def component_rows(self):
        """Indices of this survey's data in the full ``[gx; gz]`` vector of ``2 m`` values."""
        m = self.m
        return np.concatenate([np.arange(m) + COMPONENTS.index(c) * m for c in self.components])

    def with_components(self, components):
        """The same stations and ground measuring ``components``."""
        return Survey(self.x, self.z, components=components, ground=self.ground)

    @classmethod
    def regular(cls, grid: Grid, per_cell: int = 3, height: float = 1.0, components=COMPONENTS):
        """``per_cell`` stations per cell width, centred in their sub-intervals, at ``height`` m.

        Station ``s`` is at ``x = x0 + (s + 0.5) * width / (per_cell * nx)``, ``z = -height``;
        ``components`` as in :class:`Survey`.
        """
        if isinstance(per_cell, bool) or not isinstance(per_cell, (int, np.integer)) or per_cell < 1:
            raise ValueError(f"per_cell must be a positive integer, got {per_cell!r}")
        if not (math.isfinite(height) and height >= 0):
            raise ValueError(f"height must be a finite number of metres >= 0, got {height!r}")
        m = per_cell * grid.nx
        xs = grid.x_edges[0] + (np.arange(m) + 0.5) * (grid.width / m)
        return cls(xs, np.full(m, -float(height)), components=components)

    @property
    def m(self) -> int:
        """Number of stations."""
        return self.x.size

    @property
    def n_data(self) -> int:
        """Length of a data vector: ``len(components) * m`` (the gx block, then the gz block)."""
        return len(self.components) * self.x.size

    def regular_spacing(self, grid: Grid, rtol=1e-9):
        """Return ``k`` if the stations fit the Toeplitz structure with ``grid``, else ``None``.

        The structure holds when the grid's columns are uniform, all stations
        share one height, and station spacing is ``dx / k`` for an integer
        ``k >= 1`` (stations sorted by x).
        """
        if not grid.uniform_x or self.m < 1:
            return None
        if np.ptp(self.z) > rtol * max(1.0, abs(self.z[0])):
            return None
        if self.m == 1:
            return 1
        d = np.diff(self.x)
        if np.any(d <= 0) or np.ptp(d) > rtol * d[0] * 10:
            return None
        kf = grid.dx / d.mean()
        k = int(round(kf))
        if k < 1 or abs(kf - k) > 1e-8 * k:
            return None
        return k

    def __eq__(self, other):
        return (isinstance(other, Survey) and np.array_equal(self.x, other.x) and np.array_equal(self.z, other.z)
                and self.components == other.components
                and (self.ground is None) == (other.ground is None)
                and (self.ground is None or (np.array_equal(self.ground[0], other.ground[0])
                                             and np.array_equal(self.ground[1], other.ground[1]))))

    def __hash__(self):
        gr = b"" if self.ground is None else self.ground[0].tobytes() + self.ground[1].tobytes()
        return hash((self.x.tobytes(), self.z.tobytes(), self.components, gr))

    def __repr__(self):
        extra = "" if self.components == COMPONENTS else f", components={self.components}"
        extra += "" if self.ground is None else f", ground with {self.ground[0].size} nodes"
        return (f"Survey(m={self.m}, x=[{self.x.min():g}, {self.x.max():g}] m, z=[{self.z.min():g}, "
                f"{self.z.max():g}] m{extra})")

    def to_dict(self):
        d = {"x": self.x.tolist(), "z": self.z.tolist()}
        if self.components != COMPONENTS:
            d["components"] = list(self.components)
        if self.ground is not None:
            d["ground"] = [self.ground[0].tolist(), self.ground[1].tolist()]
        return d
