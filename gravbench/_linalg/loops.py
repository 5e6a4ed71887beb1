"""Prologues and stop tests shared by the solver and refiner loops (both twins)."""

from __future__ import annotations

import numpy as np
from numba import njit

from .hooks import hooked, op_A, op_S

__all__ = ["square_start", "square_stop", "misfit_start", "misfit_stop"]


@hooked
def square_start(P, b, x, r, q, tmp, hist):
    """Start of a square-system loop: ``r = b - S x`` (``r = b`` without a product when x == 0,
    ``q`` holds ``S x``) and ``hist[0] = ||r|| / ||b||``.

    Returns ``(nmv, bnorm, rn)``: products used (0 or 1), ``||b||`` and ``||r||``.
    """
    nmv = 0
    if np.any(x != 0.0):
        op_S(P, x, q, tmp)
        nmv = 1
        r[:] = b - q
    else:
        r[:] = b
    bnorm = np.sqrt(np.dot(b, b))
    rn = np.sqrt(np.dot(r, r))
    hist[0] = rn / bnorm
    return nmv, bnorm, rn


@njit(cache=True)
def square_stop(rn, tol, it, maxiter):
    """Test before an iteration of a square-system loop: the status code to stop with
    (5 ``rn`` not finite, 0 ``rn < tol``, 1 ``it >= maxiter``), else -1 (go on)."""
    if not np.isfinite(rn):
        return 5
    if rn < tol:
        return 0
    if it >= maxiter:
        return 1
    return -1


@hooked
def misfit_start(P, g, x, r, hist):
    """Start of a refiner loop: ``r = A x - g`` (one ``A``) and ``hist[0] = ||r|| / ||g||``.

    Returns ``||g||``.
    """
    op_A(P, x, r)
    r -= g
    gnorm = np.sqrt(np.dot(g, g))
    hist[0] = np.sqrt(np.dot(r, r)) / gnorm
    return gnorm


@njit(cache=True)
def misfit_stop(phi, chi_target, relres, rtol, it, maxiter):
    """Test before a refiner iteration: the status code to stop with (5 the weighted misfit
    ``phi`` not finite, 4 ``phi <= chi_target`` when the discrepancy target is on
    (``chi_target >= 0``), 0 ``relres <= rtol``, 1 ``it >= maxiter``), else -1 (go on)."""
    if not np.isfinite(phi):
        return 5
    if chi_target >= 0.0 and phi <= chi_target:
        return 4
    if relres <= rtol:
        return 0
    if it >= maxiter:
        return 1
    return -1
