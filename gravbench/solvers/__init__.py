"""Krylov and descent solvers for square systems, compiled with numba.

Every solver has one signature and returns one result type::

    res = solver(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None, callback=None, <options>)

``A`` is a square ndarray, any ``LinearOperator`` / sparse matrix, or the
normal form of a gravbench forward operator (``op.normal()`` or
:func:`NormalOperator` ``(op, w2)``: ``A^T A`` applied as ``A`` then ``A^T``,
never formed). For ndarrays and the normal form of dense / matrix-free
float64 gravbench operators the whole iteration, operator application
included, runs in compiled numba code and the operator's counters are
updated by the number of applications made; anything else (FFT operators,
SciPy sparse, callbacks) runs the same algorithm through a Python driver.
The stopping rule is SciPy's: ``||b - A x|| <= max(rtol ||b||, atol)``.

=================  =============================================  ===========================================
function           method                                         reference
=================  =============================================  ===========================================
cg                 conjugate gradients (SPD)                      Hestenes & Stiefel, J. Res. NBS 49 (1952)
gmres              restarted GMRES, MGS Arnoldi, Givens           Saad & Schultz, SIAM J. Sci. Stat. Comput.
                   rotations, happy-breakdown detection           7 (1986); SciPy's gmres (tolerance control)
lgmres             GMRES augmented with error approximations      Baker, Jessup & Manteuffel, SIAM J. Matrix
                                                                  Anal. Appl. 26 (2005); SciPy's lgmres
steepest_descent   steepest descent with exact line search (SPD)  Saad, Iterative Methods, 2nd ed. (2003), 5.3
=================  =============================================  ===========================================

One private module per method (``_cg``, ``_gmres``, ``_lgmres``, ``_descent``; pyamg's layout);
``gd`` is an alias of ``steepest_descent``. ``Result`` (frozen dataclass):
``x, converged, niter, residuals, n_matvec, n_rmatvec, seconds, status, info``.
"""

from __future__ import annotations

from ._cg import solve as cg
from ._descent import solve as steepest_descent
from .._linalg.normal import NormalOperator
from ._gmres import solve as gmres
from ._lgmres import solve as lgmres
from ._result import Result

#: alias of :func:`steepest_descent`
gd = steepest_descent

__all__ = ["Result", "NormalOperator", "cg", "gmres", "lgmres", "steepest_descent", "gd"]
