"""Shared numerics of the solvers, the refiners and the operators (internal).

One home for what every iterative method needs, below the operators in the
layer list (docs/architecture.md):

=================  ================================================================
module             what
=================  ================================================================
:mod:`.blas`       one re-entrant BLAS thread limiter (threadpoolctl)
:mod:`.packing`    the packed tuple that carries an operator into compiled loops
:mod:`.hooks`      operator hooks ``op_A`` / ``op_At`` / ``op_S`` and the compiled /
                   Python twin builder (:func:`twin`, :func:`hooked`)
:mod:`.kernels`    allocation-free level-1 kernels and Givens rotations
:mod:`.loops`      the prologues and stop tests shared by the loops
:mod:`.checks`     validation of vectors, tolerances, budgets and callbacks
:mod:`.normal`     ``A^T A`` as a square LinearOperator, never formed
=================  ================================================================

Nothing here imports the operators, the solvers or anything above them: an
operator that can run inside numba says so itself (``_numba_pack``).
"""

from __future__ import annotations

from .blas import blas_libs, blas_threads, single_thread_blas
from .checks import check_callback, check_int, check_tol, check_vector
from .hooks import Twin, hooked, op_A, op_At, op_S, twin
from .kernels import add_reg, axpy, combine, givens_column, lartg, mgs, project, upper_solve, wdot, wmul, xpby
from .packing import EMPTY1, EMPTY2, MODE_DENSE, MODE_MATFREE, MODE_MATRIX, pack_gravity, pack_matrix
from .loops import misfit_start, misfit_stop, square_start, square_stop
from .normal import NormalOperator, normal_of

__all__ = ["blas_libs", "blas_threads", "single_thread_blas", "check_callback", "check_int", "check_tol", "check_vector",
           "EMPTY1", "EMPTY2", "MODE_DENSE", "MODE_MATFREE", "MODE_MATRIX", "Twin", "hooked", "op_A", "op_At", "op_S",
           "pack_gravity", "pack_matrix", "twin", "add_reg", "axpy", "combine", "givens_column", "lartg", "mgs",
           "project", "upper_solve", "wdot", "wmul", "xpby", "misfit_start", "misfit_stop", "square_start",
           "square_stop", "NormalOperator", "normal_of"]
