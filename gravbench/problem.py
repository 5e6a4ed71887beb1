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
from .forward.operators import make_operator
from .geometry import Grid, Survey

__all__ = ["Problem"]


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
        """Dense sensitivity matrix ``A`` (``(2m, nz*nx)``, mGal per kg/m^3).

        The same matrix as :func:`gravbench.forward.sensitivity` on this grid's edges and
        stations (built by its assembly core without re-validating them).
        """
        return dense_matrix(self.grid, self.survey, self.kernel, parallel=parallel, dtype=dtype)

    def operator(self, method="auto", **kwargs):
        """The forward operator: ``"dense" | "matfree" | "fft" | "auto"``; see :mod:`gravbench.forward.operators`."""
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
