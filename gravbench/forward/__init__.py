"""Forward modelling: kernels, the sensitivity matrix and the forward operators.

Public entry points
-------------------
sensitivity(x_edges, z_edges, stations_x, stations_z, *, kernel, parallel, dtype)
    The dense sensitivity matrix ``A`` (``(2m, nz*nx)``, mGal per kg/m^3).
toeplitz_table(grid, survey, kernel)
    The distinct kernel values of a regular survey.
DenseOperator, MatFreeOperator, FFTOperator, make_operator, dot_test
    ``scipy.sparse.linalg.LinearOperator`` s with ``matvec``, ``rmatvec`` and
    ``normal_matvec`` and application counters (:mod:`gravbench.forward.operators`).

This ``__init__`` only re-exports. The numba kernels and the loops over them
live below, in :mod:`gravbench._numba` (the compiled solver loops of
:mod:`gravbench._linalg` call them too). The modules here, lowest first: ``_parallel`` (when to use
all cores), ``_sensitivity`` (checks, the Toeplitz table, the dense assembly),
``operators``; ``torch`` (autograd bridge) is imported only on request.
Formulas and conventions: docs/physics.md and docs/conventions.md.
"""

from __future__ import annotations

from ._sensitivity import sensitivity, toeplitz_table
from .operators import DenseOperator, FFTOperator, MatFreeOperator, dot_test, make_operator

__all__ = [
    "sensitivity",
    "toeplitz_table",
    "DenseOperator",
    "MatFreeOperator",
    "FFTOperator",
    "make_operator",
    "dot_test",
]
