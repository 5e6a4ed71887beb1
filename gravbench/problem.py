"""The forward problem: a grid, a survey and the kernel that links them.

:class:`Problem` sits one layer above :mod:`gravbench.forward` (it builds the
sensitivity matrix and the operators) and one above :mod:`gravbench.geometry`
(:class:`Grid`, :class:`Survey`). ``gravbench.Problem`` is the public name;
``import gravbench`` loads this module (and with it numba and SciPy) only when
``gravbench.Problem`` is first used. Conventions: docs/conventions.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .forward._sensitivity import dense_matrix
from .forward.operators import _restrict as _restrict_rows_cols
from .forward.operators import make_operator
from .geometry import COMPONENTS, Grid, Survey

__all__ = ["Problem"]


def _restrict(A, problem):
    """Rows of the survey's components and columns of the active cells of a full ``(2m, nz*nx)`` matrix."""
    rows = None if problem.survey.components == COMPONENTS else problem.survey.component_rows
    return _restrict_rows_cols(A, rows, problem.active_index)


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
        if self.survey.ground is None and np.any(self.survey.z > self.grid.z_edges[0]):
            raise ValueError(
                f"every station must be at or above the grid's top edge z = {self.grid.z_edges[0]:g} m"
            )
        if self.survey.ground is not None and not self.active.any():
            raise ValueError("every cell of the grid lies above the survey's ground surface (no active cell): "
                             "the grid must reach below the ground")

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
    def components(self):
        """The measured components (``survey.components``): ``("gx", "gz")``, ``("gx",)`` or ``("gz",)``."""
        return self.survey.components

    @property
    def active(self):
        """Boolean mask ``(nz, nx)`` of the active cells: centre strictly below the ground surface.

        Cells whose centre is at or above the survey's ground (air) are inactive:
        they are not unknowns of the operators (``op.shape[1] == n_active``) and
        are held at zero. Without a ground surface every cell is active.
        """
        a = self._cache.get("active")
        if a is None:
            zc = self.grid.z_centers
            zg = self.survey.ground_depth(self.grid.x_centers)
            a = zc[:, None] > zg[None, :]
            a.setflags(write=False)
            self._cache["active"] = a
        return a

    @property
    def active_index(self):
        """Flat (C-order) indices of the active cells, or ``None`` when every cell is active."""
        if "active_index" not in self._cache:
            a = self.active.ravel()
            self._cache["active_index"] = None if a.all() else np.flatnonzero(a)
        return self._cache["active_index"]

    @property
    def n_active(self) -> int:
        """Number of active cells: the number of unknowns (columns of every operator)."""
        idx = self.active_index
        return self.n_cells if idx is None else int(idx.size)

    def to_grid(self, x, fill=0.0):
        """A model on the whole grid ``(nz, nx)`` from one on the active cells (``n_active``), kg/m^3.

        Inactive cells get ``fill`` (0: air; ``numpy.nan`` to blank them in a plot). A full
        model (``nz * nx`` values or ``(nz, nx)``) is returned reshaped, its inactive cells set to ``fill``.
        """
        a = np.asarray(x, dtype=np.float64)
        idx = self.active_index
        if a.size == self.n_cells:
            out = a.reshape(self.shape).copy()
            if idx is not None:
                out[~self.active] = fill
            return out
        if a.ndim != 1 or a.size != self.n_active:
            raise ValueError(f"x must hold {self.n_active} active-cell values or {self.n_cells} cells, "
                             f"got shape {a.shape}")
        out = np.full(self.n_cells, float(fill))
        out[idx] = a
        return out.reshape(self.shape)

    def to_active(self, rho):
        """The active-cell values (``n_active``) of a model on the whole grid (``(nz, nx)`` or flat), kg/m^3."""
        r = self.grid.check_model(rho).ravel()
        idx = self.active_index
        return r if idx is None else r[idx]

    @property
    def per_cell(self):
        """Stations per cell width when the survey has the Toeplitz structure, else None."""
        return self.survey.regular_spacing(self.grid)

    # --- forward modelling ----------------------------------------------------
    def sensitivity(self, *, parallel="auto", dtype=np.float64):
        """Dense sensitivity matrix ``A`` (``(n_data, n_active)``, mGal per kg/m^3).

        The rows of the survey's components and the columns of the active cells of
        the matrix :func:`gravbench.forward.sensitivity` gives on this grid's edges
        and stations (``(2m, nz*nx)`` for a survey of both components without
        ground; built by its assembly core without re-validating them).
        """
        A = dense_matrix(self.grid, self.survey, self.kernel, parallel=parallel, dtype=dtype)
        return _restrict(A, self)

    def operator(self, method="auto", **kwargs):
        """The forward operator: ``"dense" | "matfree" | "fft" | "auto"``; see :mod:`gravbench.forward.operators`."""
        return make_operator(self, method=method, **kwargs)

    def forward(self, rho, method="auto"):
        """Gravity of ``rho`` (``(nz, nx)`` kg/m^3) at every station: ``[gx..., gz...]`` in mGal.

        Only the survey's components are returned (gx block, then gz block); with a
        ground surface, ``rho`` may be the whole grid (inactive cells are air and ignored)
        or the ``n_active`` active-cell values.
        """
        a = np.asarray(rho)
        if np.iscomplexobj(a) or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise TypeError(f"rho must be a real density array (kg/m^3), got dtype {a.dtype}")
        r = np.asarray(rho, dtype=np.float64) if np.size(rho) == self.n_active != self.n_cells else \
            self.to_active(rho)
        op = self._cache.get(("forward", method))
        if op is None:
            op = self._cache[("forward", method)] = self.operator(method=method)
        return op.matvec(r.ravel())

    def to_dict(self):
        return {"grid": self.grid.to_dict(), "survey": self.survey.to_dict(), "kernel": self.kernel}

    def describe(self):
        k = self.per_cell
        extra = "" if self.components == COMPONENTS else f", components {'+'.join(self.components)}"
        if self.active_index is not None:
            extra += f", {self.n_active} active cells below the ground"
        return (f"{self.grid.nz} x {self.grid.nx} cells, {self.survey.m} stations "
                f"({self.n_data} data), kernel={self.kernel}" + (f", {k} stations/cell" if k else ", irregular survey")
                + extra)
