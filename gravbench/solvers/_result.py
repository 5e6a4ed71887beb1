"""The one result type returned by every solver and refiner."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Result", "STATUS", "make_result"]

#: status codes used inside the compiled loops -> the ``Result.status`` string.
STATUS = {
    0: "converged",      # residual tolerance met
    1: "maxiter",        # iteration budget exhausted
    2: "breakdown",      # Krylov breakdown without meeting the tolerance
    3: "indefinite",     # p^T A p <= 0 (CG / steepest descent): the matrix is not SPD
    4: "discrepancy",    # refiners: data misfit reached the discrepancy target (a success)
    5: "nonfinite",      # NaN / inf appeared (overflow, singular system)
    6: "stalled",        # refiners: no more progress possible (step underflow, alpha floor)
}
CONVERGED_CODES = (0, 4)


@dataclass(frozen=True)
class Result:
    """Outcome of a solver or refiner run.

    Attributes
    ----------
    x : ndarray, shape (n,)
        The solution (for refiners: the flat density model, kg/m^3, C order).
    converged : bool
        True when a stopping rule was met (``status`` is ``"converged"`` or ``"discrepancy"``).
    niter : int
        Iterations done. For Krylov solvers the inner iterations (one per
        operator application, like SciPy's ``callback_type="pr_norm"``).
    residuals : ndarray
        History of the relative residual norm, ``residuals[0]`` at the start
        (solvers: ``||b - A x|| / ||b||``; refiners: ``||A x - g|| / ||g||``).
    n_matvec, n_rmatvec : int
        Operator applications made (for normal equations one of each per product).
    seconds : float
        Wall time of the run (validation and packing included, compilation
        excluded once cached).
    status : str
        One of ``converged``, ``discrepancy``, ``maxiter``, ``breakdown``,
        ``indefinite``, ``nonfinite``, ``stalled``.
    info : dict
        Method-specific extras (e.g. ``alpha``, ``rule``, ``engine``).
    """

    x: np.ndarray
    converged: bool
    niter: int
    residuals: np.ndarray
    n_matvec: int
    n_rmatvec: int
    seconds: float
    status: str
    info: dict = field(default_factory=dict)

    def __repr__(self):
        return (f"Result(status={self.status!r}, converged={self.converged}, niter={self.niter}, "
                f"n_matvec={self.n_matvec}, n_rmatvec={self.n_rmatvec}, seconds={self.seconds:.4g}, "
                f"residual={self.residuals[-1] if len(self.residuals) else float('nan'):.3e})")


def make_result(x, code, niter, hist, nh, n_matvec, n_rmatvec, t0, info):
    """The :class:`Result` of a loop that stopped with status ``code`` after ``niter`` iterations.

    ``hist[:nh]`` is the residual history, ``t0`` the ``time.perf_counter()`` of the start.
    """
    code = int(code)
    return Result(x=x, converged=code in CONVERGED_CODES, niter=int(niter), residuals=np.array(hist[:nh]),
                  n_matvec=int(n_matvec), n_rmatvec=int(n_rmatvec), seconds=time.perf_counter() - t0,
                  status=STATUS[code], info=info)
