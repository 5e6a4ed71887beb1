"""CGLS: conjugate gradients on the (weighted, damped) least-squares problem.

Minimises ``||W_d (A x - g)||^2 + damp^2 ||x - x0||^2``. With ``B = W_d A``,
``b = W_d (g - A x0)`` and ``x = x0 + y`` this is CG on
``(B^T B + damp^2 I) y = B^T b`` without forming ``B^T B`` (Hestenes & Stiefel
1952; Bjorck, *Numerical Methods for Least Squares Problems*, 1996, 7.4).
In exact arithmetic the iterates equal LSQR's (Paige & Saunders 1982) at the
same iteration count, which the tests check against
``scipy.sparse.linalg.lsqr``. One ``A`` and one ``A^T`` product per iteration.

Stops: the discrepancy principle ``||W_d (A x - g)||^2 <= chi N`` when
``sigma`` is given (status ``discrepancy``), the normal-equation residual
``||B^T r - damp^2 y|| <= rtol ||B^T b||`` (``converged``), or ``maxiter``.
"""

from __future__ import annotations

import numpy as np

from numba import njit, types
from numba.extending import overload

from .._linalg import axpy, misfit_stop, op_A, op_At, twin, xpby
from ._common import budget, check_tol, discrepancy_target, finish, hist_buffer, prepare, profile_settings

__all__ = ["refine"]


@njit(cache=True)
def _dot_acc64(a, b):
    """sum_i a_i b_i accumulated in float64 (float32 vectors of 10^7 entries keep their accuracy)."""
    acc = 0.0
    for i in range(a.size):
        acc += np.float64(a[i]) * np.float64(b[i])
    return acc


def _dot64(a, b):
    """Inner product in float64: BLAS for float64 vectors, a float64 accumulator for float32 ones."""
    if a.dtype == np.float64 and b.dtype == np.float64:
        return np.dot(a, b)
    return _dot_acc64(a, b)


@overload(_dot64, jit_options={"cache": True})
def _dot64_jit(a, b):
    if a.dtype == types.float64 and b.dtype == types.float64:
        return lambda a, b: np.dot(a, b)
    return lambda a, b: _dot_acc64(a, b)


@twin
def _cgls_loop(P, g, x0, wd, shift, rtol, chi_target, maxiter, hist):
    N = g.size
    n = x0.size
    r = np.empty_like(g)
    q = np.empty_like(g)
    t = np.empty_like(g)
    s = np.empty_like(x0)
    op_A(P, x0, r)
    nA = 1
    r -= g
    r *= -wd                     # r = W_d (g - A x0) = b - B y, y = 0
    t[:] = wd * r
    op_At(P, t, s)
    nAt = 1
    y = np.zeros_like(x0)
    p = s.copy()
    gamma = _dot64(s, s)
    snorm0 = np.sqrt(gamma)
    gnorm = np.sqrt(_dot64(g, g))
    t[:] = r / wd
    hist[0] = np.sqrt(_dot64(t, t)) / gnorm
    nh = 1
    it = 0
    while True:
        if not np.isfinite(gamma):
            code = 5
            break
        code = misfit_stop(_dot64(r, r), chi_target, np.sqrt(gamma), rtol * snorm0, it, maxiter)
        if code >= 0:
            break
        op_A(P, p, q)
        nA += 1
        q *= wd
        delta = _dot64(q, q) + (shift * _dot64(p, p) if shift > 0.0 else 0.0)
        if delta <= 0.0:
            code = 2
            break
        alpha = gamma / delta
        axpy(alpha, p, y)
        r -= alpha * q
        t[:] = wd * r
        op_At(P, t, s)
        nAt += 1
        if shift > 0.0:
            axpy(-shift, y, s)
        gamma_new = _dot64(s, s)
        beta = gamma_new / gamma
        gamma = gamma_new
        xpby(s, beta, p)
        it += 1
        t[:] = r / wd
        hist[nh] = np.sqrt(_dot64(t, t)) / gnorm
        nh += 1
    y += x0                      # x = x0 + y, in place (no third model-size vector)
    t[:] = -r / wd               # A x - g
    return y, t, code, it, nh, nA, nAt


PROFILES = {"default": dict(rtol=1e-6, maxiter=200), "paper": dict(rtol=1e-6, maxiter=100)}


def refine(op, g, x0=None, *, sigma=None, rtol=None, maxiter=None, profile="default", damp=0.0, chi=1.0,
           dtype=None):
    """CGLS on ``||W_d (A x - g)||^2 + damp^2 ||x - x0||^2``.

    Parameters
    ----------
    op : gravbench operator, LinearOperator or ndarray, shape (N, n)
        Forward operator, mGal per kg/m^3.
    g : array_like, shape (N,)
        Data, mGal.
    x0 : array_like, shape (n,) or (nz, nx), optional
        Starting model and damping centre, kg/m^3 (zeros).
    sigma : float or array_like (N,), optional
        Noise std, mGal: weights ``W_d = 1/sigma`` and the discrepancy stop.
    rtol : float
        Normal-equation residual tolerance (default 1e-6).
    maxiter : int
        Iterations (default 200; ``paper`` profile 100).
    damp : float
        Damping (Tikhonov) factor, in the units of ``W_d A`` (as ``lsqr``'s ``damp``).
    chi : float
        Discrepancy factor: stop when ``||W_d r||^2 <= chi N``.
    dtype : {None, "float64", "float32"}
        Precision of the iteration vectors. ``None``: float32 when ``op`` is a
        float32 operator (e.g. ``prob.operator("fft", dtype=np.float32)``), else
        float64. In float32 the vectors take half the memory; inner products
        still accumulate in float64. reports/scaling.md compares the models
        with float64's. float32 runs the Python loop (operator products in
        NumPy / numba as the operator does them).

    Returns
    -------
    Result
        ``info["damp"]``; the model is ``Result.x`` (kg/m^3, flat).
    """
    prof = profile_settings(PROFILES, profile)
    s = prepare(op, g, x0, sigma)
    rtol, maxiter = budget(prof, rtol, maxiter)
    damp = check_tol("damp", damp)
    hist = hist_buffer(maxiter)
    single = _resolve_dtype(dtype, s.op) == np.float32
    if single:
        s.x0 = s.x0.astype(np.float32)  # model-size vectors in float32; the data-size ones stay float64
        if s.compiled:  # the packed products are float64 numba code: use the operator's own products
            s.P, s.compiled = s.op, False
    x, r, code, it, nh, nA, nAt = s.call(_cgls_loop, s.g, s.x0, s.wd, damp * damp, rtol,
                                             discrepancy_target(s, chi), maxiter, hist)
    return finish(s, x, code, it, hist, nh, nA, nAt,
                  {"profile": profile, "damp": damp, "dtype": "float32" if single else "float64"}, r=r)


def _resolve_dtype(dtype, op):
    if dtype is None:
        return np.float32 if getattr(op, "dtype", None) == np.float32 else np.float64
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float64, np.float32):
        raise ValueError(f"dtype must be None, 'float64' or 'float32', got {dtype!r}")
    return dt.type
