"""Geometry: the model grid, the survey (stations) and the problem that ties them.

Conventions (see PHYSICS.md section 1): metres, x to the right, z is depth
(positive down), the ground surface is z = 0. A density model ``rho`` has shape
``(nz, nx)``; ``rho[k, i]`` is depth row ``k`` (0 = shallowest), column ``i``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Grid", "Survey", "Problem"]


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
            if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive finite number of metres, got {v!r}")
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


class Survey:
    """Gravity stations at or above the ground (z <= 0, depth positive down).

    Parameters
    ----------
    x, z : array_like
        Station coordinates in metres, equal length. ``z <= 0`` (a station at
        height ``h`` has ``z = -h``).

    Data vectors from a survey of ``m`` stations have length ``2m``:
    ``[gx(0..m-1), gz(0..m-1)]`` in mGal.
    """

    __slots__ = ("x", "z")

    def __init__(self, x, z):
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
        if np.any(za > 0):
            i = int(np.flatnonzero(za > 0)[0])
            raise ValueError(
                f"Survey z[{i}] = {za[i]!r} is inside the ground; stations need z <= 0 (depth positive down)"
            )
        xa.setflags(write=False)
        za.setflags(write=False)
        object.__setattr__(self, "x", xa)
        object.__setattr__(self, "z", za)

    def __setattr__(self, name, value):
        raise AttributeError("Survey is immutable")

    @classmethod
    def regular(cls, grid: Grid, per_cell: int = 3, height: float = 1.0):
        """``per_cell`` stations per cell width, centred in their sub-intervals, at ``height`` m.

        Station ``s`` is at ``x = x0 + (s + 0.5) * width / (per_cell * nx)``, ``z = -height``.
        """
        if isinstance(per_cell, bool) or not isinstance(per_cell, (int, np.integer)) or per_cell < 1:
            raise ValueError(f"per_cell must be a positive integer, got {per_cell!r}")
        if not (math.isfinite(height) and height >= 0):
            raise ValueError(f"height must be a finite number of metres >= 0, got {height!r}")
        m = per_cell * grid.nx
        xs = grid.x_edges[0] + (np.arange(m) + 0.5) * (grid.width / m)
        return cls(xs, np.full(m, -float(height)))

    @property
    def m(self) -> int:
        """Number of stations."""
        return self.x.size

    @property
    def n_data(self) -> int:
        """Length of a data vector: ``2 m`` (gx then gz)."""
        return 2 * self.x.size

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
        return isinstance(other, Survey) and np.array_equal(self.x, other.x) and np.array_equal(self.z, other.z)

    def __hash__(self):
        return hash((self.x.tobytes(), self.z.tobytes()))

    def __repr__(self):
        return f"Survey(m={self.m}, x=[{self.x.min():g}, {self.x.max():g}] m, z=[{self.z.min():g}, {self.z.max():g}] m)"

    def to_dict(self):
        return {"x": self.x.tolist(), "z": self.z.tolist()}


_KERNELS = ("exact", "midpoint")


@dataclass(frozen=True, eq=True)
class Problem:
    """A forward problem: a grid, a survey, and the kernel that links them.

    Parameters
    ----------
    grid : Grid
    survey : Survey
    kernel : {"exact", "midpoint"}
        ``"exact"``: closed-form rectangular cell; ``"midpoint"``: a line mass at
        each cell centre (the seed paper's discretisation).

    Examples
    --------
    >>> prob = Problem.paper(n=10)
    >>> prob.shape, prob.n_data
    ((10, 10), 60)
    """

    grid: Grid
    survey: Survey
    kernel: str = "exact"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        if not isinstance(self.grid, Grid):
            raise ValueError(f"grid must be a gravbench.Grid, got {type(self.grid).__name__}")
        if not isinstance(self.survey, Survey):
            raise ValueError(f"survey must be a gravbench.Survey, got {type(self.survey).__name__}")
        if self.kernel not in _KERNELS:
            raise ValueError(f"kernel must be one of {_KERNELS}, got {self.kernel!r}")
        if np.any(self.survey.z > self.grid.z_edges[0]):
            raise ValueError(
                f"every station must be at or above the grid's top edge z = {self.grid.z_edges[0]:g} m"
            )

    @classmethod
    def paper(cls, n: int = 50, kernel: str = "exact", width: float = 1000.0, depth: float = 1000.0,
              height: float = 1.0):
        """The seed paper's setup: an ``n x n`` grid seen by ``3n`` surface stations (gx and gz)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        grid = Grid(nx=int(n), nz=int(n), width=width, depth=depth)
        return cls(grid, Survey.regular(grid, per_cell=3, height=height), kernel)

    @classmethod
    def seed(cls, n: int = 51, width: float = 1000.0, depth: float = 1000.0):
        """The seed paper's own code geometry: ``n x n`` cells, midpoint kernel, stations half a cell up.

        ``3n`` stations evenly across the top (three per cell width, centred in
        their sub-intervals, as :meth:`Survey.regular`), at a height of half a
        cell (``depth / (2 n)`` m) above the top edge of the grid, i.e. one cell
        spacing above the top row of cell centres; ``kernel="midpoint"`` (a
        line mass at each cell centre). The authors' code uses ``n = 51``.

        Parameters
        ----------
        n : int
            Cells per side.
        width, depth : float
            Extent of the grid, m.

        Returns
        -------
        Problem

        Examples
        --------
        >>> p = Problem.seed(51)
        >>> p.shape, p.survey.m, p.kernel, float(-p.survey.z[0]) == 1000.0 / 102
        ((51, 51), 153, 'midpoint', True)
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        grid = Grid(nx=int(n), nz=int(n), width=width, depth=depth)
        return cls(grid, Survey.regular(grid, per_cell=3, height=0.5 * grid.dz), "midpoint")

    # --- sizes --------------------------------------------------------------
    @property
    def shape(self):
        return self.grid.shape

    @property
    def n_cells(self) -> int:
        return self.grid.size

    @property
    def n_data(self) -> int:
        return self.survey.n_data

    @property
    def per_cell(self):
        """Stations per cell width when the survey has the Toeplitz structure, else None."""
        return self.survey.regular_spacing(self.grid)

    # --- forward modelling ----------------------------------------------------
    def sensitivity(self, *, parallel="auto", dtype=np.float64):
        """Dense sensitivity matrix ``A`` (``(2m, nz*nx)``, mGal per kg/m^3)."""
        from .forward import sensitivity

        return sensitivity(self.grid.x_edges, self.grid.z_edges, self.survey.x, self.survey.z,
                           kernel=self.kernel, parallel=parallel, dtype=dtype)

    def operator(self, method="auto", **kwargs):
        """The forward operator: ``"dense" | "matfree" | "fft" | "auto"``; see :mod:`gravbench.forward.operators`."""
        from .forward.operators import make_operator

        return make_operator(self, method=method, **kwargs)

    def forward(self, rho, method="auto"):
        """Gravity of ``rho`` (``(nz, nx)`` kg/m^3) at every station: ``[gx..., gz...]`` in mGal."""
        r = self.grid.check_model(rho)
        op = self._cache.get(("forward", method))
        if op is None:
            op = self._cache[("forward", method)] = self.operator(method=method)
        return op.matvec(r.ravel())

    def to_dict(self):
        return {"grid": self.grid.to_dict(), "survey": self.survey.to_dict(), "kernel": self.kernel}

    def describe(self):
        k = self.per_cell
        return (f"{self.grid.nz} x {self.grid.nx} cells, {self.survey.m} stations "
                f"({self.n_data} data), kernel={self.kernel}" + (f", {k} stations/cell" if k else ", irregular survey"))
