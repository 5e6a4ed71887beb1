"""Building blocks of the model-space regularised refiners (:mod:`.regularized`).

Everything here works on a tensor grid of ``nz x nx`` cells (C order, row ``k``
= depth, column ``i`` = x) with possibly non-uniform cell sizes:

* :func:`difference_operators` -- the first-order differences ``D_x``, ``D_z``
  between neighbouring cell centres as SciPy sparse matrices (1/m);
* :func:`gradients` / :func:`reg_apply` / :func:`reg_value` -- the same
  operators matrix-free in Numba: the gradients of a model and the weighted
  regularisation Hessian ``R v = S v + D_x^T W_x D_x v + D_z^T W_z D_z v``
  (all weights are vectors, never matrices);
* :func:`irls_weights` -- Lawson / Ekblom reweighting
  ``r = eps^(2-p) (f^2 + eps^2)^(p/2 - 1)`` (so ``r = 1`` when ``p = 2``);
* :func:`sensitivity_weights` -- cell weights (depth weights: :func:`._common.depth_weights`).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from ._common import active_of, column_sq_norms, component_index
from ..forward import toeplitz_table

__all__ = ["difference_operators", "gradients", "reg_apply", "reg_value", "irls_weights", "cell_geometry",
           "sensitivity_weights", "weighted_column_sq_norms"]


# ----------------------------------------------------------------------------------
# geometry
# ----------------------------------------------------------------------------------
def _edges(name, e):
    e = np.asarray(e, dtype=np.float64).ravel()
    if e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
        raise ValueError(f"{name} must be at least 2 finite, strictly increasing cell edges (m), got {e.size} values")
    return e


def cell_geometry(x_edges, z_edges):
    """Cell sizes and centre spacings of a tensor grid.

    Parameters
    ----------
    x_edges, z_edges : array_like
        Strictly increasing cell edges, m (``nx + 1`` and ``nz + 1`` values).

    Returns
    -------
    dict
        ``dx`` (nx,), ``dz`` (nz,) cell sizes, m; ``hx`` (nx-1,), ``hz`` (nz-1,)
        distances between neighbouring cell centres, m; ``area`` (nz, nx) cell
        areas, m^2; ``area_x`` (nz, nx-1) and ``area_z`` (nz-1, nx) areas of the
        dual cells around the x- and z-faces, m^2.
    """
    xe = _edges("x_edges", x_edges)
    ze = _edges("z_edges", z_edges)
    dx, dz = np.diff(xe), np.diff(ze)
    xc, zc = 0.5 * (xe[:-1] + xe[1:]), 0.5 * (ze[:-1] + ze[1:])
    hx, hz = np.diff(xc), np.diff(zc)
    return {"dx": dx, "dz": dz, "hx": hx, "hz": hz, "xc": xc, "zc": zc,
            "area": dz[:, None] * dx[None, :],
            "area_x": dz[:, None] * hx[None, :],
            "area_z": hz[:, None] * dx[None, :]}


def difference_operators(x_edges, z_edges):
    """First-order differences between neighbouring cell centres, as sparse matrices.

    Parameters
    ----------
    x_edges, z_edges : array_like
        Cell edges, m (non-uniform allowed).

    Returns
    -------
    Dx : scipy.sparse.csr_matrix, shape (nz * (nx - 1), nz * nx)
        ``(Dx m)[k, i] = (m[k, i+1] - m[k, i]) / (xc[i+1] - xc[i])``, 1/m.
    Dz : scipy.sparse.csr_matrix, shape ((nz - 1) * nx, nz * nx)
        ``(Dz m)[k, i] = (m[k+1, i] - m[k, i]) / (zc[k+1] - zc[k])``, 1/m.

    Examples
    --------
    >>> Dx, Dz = difference_operators([0.0, 1.0, 3.0], [0.0, 2.0])
    >>> Dx.toarray()
    array([[-0.66666667,  0.66666667]])
    """
    import scipy.sparse as sp

    geo = cell_geometry(x_edges, z_edges)
    nx, nz = geo["dx"].size, geo["dz"].size
    dx1 = sp.diags([-1.0, 1.0], [0, 1], shape=(nx - 1, nx)) if nx > 1 else sp.csr_matrix((0, nx))
    dz1 = sp.diags([-1.0, 1.0], [0, 1], shape=(nz - 1, nz)) if nz > 1 else sp.csr_matrix((0, nz))
    Dx = sp.kron(sp.identity(nz), sp.diags(1.0 / geo["hx"]) @ dx1 if nx > 1 else dx1)
    Dz = sp.kron(sp.diags(1.0 / geo["hz"]) @ dz1 if nz > 1 else dz1, sp.identity(nx))
    return Dx.tocsr(), Dz.tocsr()


# ----------------------------------------------------------------------------------
# numba kernels (no checks, no allocation)
# ----------------------------------------------------------------------------------
@njit(cache=True)
def _gradients(v, nz, nx, ihx, ihz, fx, fz):
    for k in range(nz):
        for i in range(nx - 1):
            fx[k * (nx - 1) + i] = (v[k * nx + i + 1] - v[k * nx + i]) * ihx[i]
    for k in range(nz - 1):
        for i in range(nx):
            fz[k * nx + i] = (v[(k + 1) * nx + i] - v[k * nx + i]) * ihz[k]


@njit(cache=True)
def _reg_apply(v, nz, nx, ws, wx, wz, ihx, ihz, out):
    for j in range(nz * nx):
        out[j] = ws[j] * v[j]
    for k in range(nz):
        for i in range(nx - 1):
            f = k * (nx - 1) + i
            t = wx[f] * (v[k * nx + i + 1] - v[k * nx + i]) * ihx[i] * ihx[i]
            out[k * nx + i] -= t
            out[k * nx + i + 1] += t
    for k in range(nz - 1):
        for i in range(nx):
            f = k * nx + i
            t = wz[f] * (v[(k + 1) * nx + i] - v[k * nx + i]) * ihz[k] * ihz[k]
            out[k * nx + i] -= t
            out[(k + 1) * nx + i] += t


@njit(cache=True)
def _irls_weights(f, eps, p, out):
    if p == 2.0:
        for j in range(f.size):
            out[j] = 1.0
        return
    e2 = eps * eps
    scale = eps ** (2.0 - p)
    ex = 0.5 * p - 1.0
    for j in range(f.size):
        out[j] = scale * (f[j] * f[j] + e2) ** ex


# ----------------------------------------------------------------------------------
# Python layer
# ----------------------------------------------------------------------------------
def gradients(v, nz, nx, hx, hz, fx=None, fz=None):
    """``(D_x v, D_z v)`` matrix-free (flat arrays, 1/m times the units of ``v``)."""
    v = np.ascontiguousarray(v, dtype=np.float64)
    fx = np.empty(nz * (nx - 1)) if fx is None else fx
    fz = np.empty((nz - 1) * nx) if fz is None else fz
    _gradients(v, nz, nx, 1.0 / np.asarray(hx, dtype=np.float64), 1.0 / np.asarray(hz, dtype=np.float64), fx, fz)
    return fx, fz


def reg_apply(v, nz, nx, ws, wx, wz, hx, hz, out=None):
    """``R v = ws * v + D_x^T (wx * D_x v) + D_z^T (wz * D_z v)`` matrix-free (Numba).

    Parameters
    ----------
    v : ndarray, shape (nz * nx,)
    ws : ndarray (nz * nx,); wx : ndarray (nz * (nx-1),); wz : ndarray ((nz-1) * nx,)
        Non-negative weights of the smallness and of the two gradient terms.
    hx, hz : ndarray
        Centre spacings, m (see :func:`cell_geometry`).
    """
    out = np.empty(nz * nx) if out is None else out
    _reg_apply(np.ascontiguousarray(v, dtype=np.float64), nz, nx, ws, wx, wz, 1.0 / np.asarray(hx, float),
               1.0 / np.asarray(hz, float), out)
    return out


def reg_value(v, nz, nx, ws, wx, wz, hx, hz):
    """``v^T R v`` (the quadratic form of :func:`reg_apply`)."""
    fx, fz = gradients(v, nz, nx, hx, hz)
    return float(np.dot(ws * v, v) + np.dot(wx * fx, fx) + np.dot(wz * fz, fz))


IRLS_SCALES = ("gradient", "eps")


def irls_weights(f, eps, p, out=None, scale="eps"):
    """Lawson / Ekblom IRLS weights ``r = lam (f^2 + eps^2)^(p/2 - 1)`` (dimensionless).

    With these weights ``sum r f^2`` approximates ``lam sum |f|^p`` (up to the ``eps``
    smoothing) and ``r = 1`` for ``p = 2``. The scale ``lam``:

    ``"eps"``
        ``lam = eps^(2-p)``: ``0 < r <= 1``, ``r = 1`` at ``f = 0``.
    ``"gradient"``
        SimPEG's ``irls_scaled``: the largest value of the term's gradient ``r f``
        over ``|f| <= max|f|`` equals the L2 gradient's, ``max|f|`` (attained at
        ``max|f|`` for ``p >= 1``, at ``eps / sqrt(1 - p)`` for ``p < 1``), so the
        terms keep their balance while ``eps`` is cooled.
    """
    f = np.ascontiguousarray(f, dtype=np.float64)
    out = np.empty(f.size) if out is None else out
    p = float(p)
    eps = float(eps)
    _irls_weights(f, eps, p, out)     # eps^(2-p) (f^2 + eps^2)^(p/2 - 1)
    if scale == "gradient" and p < 2.0 and f.size:
        fmax = float(np.abs(f).max())
        if fmax > 0:
            ft = fmax if p >= 1.0 else eps / np.sqrt(1.0 - p)
            ft = min(ft, fmax) if p >= 1.0 else ft
            lp = ft / (ft * ft + eps * eps) ** (1.0 - 0.5 * p)     # max of |f| (f^2 + eps^2)^(p/2 - 1)
            out *= (fmax / lp) / eps ** (2.0 - p)
    elif scale not in IRLS_SCALES:
        raise ValueError(f"scale must be one of {IRLS_SCALES}, got {scale!r}")
    return out


def weighted_column_sq_norms(op, wd):
    """``sum_i wd_i^2 A_ij^2`` for every cell j (the diagonal of ``A^T W_d^2 A``).

    Exact for a dense ``A`` (an ndarray or a gravbench operator holding ``A``)
    and for a regular survey when ``wd`` is constant within each component
    (gx, gz), as with gravbench's "peak" noise model (the Toeplitz table and a
    cumulative sum: O(n^2)); otherwise each component's mean ``wd^2`` is used
    (an approximation, enough for a preconditioner and a weighting).
    """
    wd = np.asarray(wd, dtype=np.float64)
    inner = getattr(op, "embedded", None)
    if inner is not None:                   # an active-cell operator seen on the whole grid: 0 on inactive cells
        out = np.zeros(op.shape[1])
        out[op.index] = weighted_column_sq_norms(inner, wd)
        return out
    A = op if isinstance(op, np.ndarray) else getattr(op, "A", None)
    if A is not None:
        return np.einsum("ij,ij->j", A, A * (wd ** 2)[:, None])
    prob = getattr(op, "problem", None)
    if prob is None:

        return column_sq_norms(op) * float(np.mean(wd ** 2))
    m = prob.survey.m
    comps = component_index(prob)
    w2c = np.zeros(2)
    for b, c in enumerate(comps):          # mean wd^2 of each measured component's block
        w2c[c] = np.mean(wd[b * m:(b + 1) * m] ** 2)
    if prob.per_cell is None:
        Af = prob.sensitivity()             # the survey's rows and the active columns
        acc = np.zeros(Af.shape[1])
        for b, c in enumerate(comps):
            acc += w2c[c] * np.einsum("ij,ij->j", Af[b * m:(b + 1) * m], Af[b * m:(b + 1) * m])
        return acc

    h, k, D = toeplitz_table(prob.grid, prob.survey, prob.kernel)
    nz, nx = prob.grid.nz, prob.grid.nx
    acc = np.zeros((nz, nx))
    # station s = q k + r reads column i - q + D of h[c, r]: a window sum over q per residue r
    for c in comps:
        for r in range(k):
            qs = (m - 1 - r) // k + 1 if r < m else 0       # stations with residue r: q = 0 .. qs-1
            if qs <= 0:
                continue
            h2 = h[c, r] ** 2                                  # (nz, L)
            cs = np.concatenate([np.zeros((nz, 1)), np.cumsum(h2, axis=1)], axis=1)
            i = np.arange(nx)
            hi_ = i + D + 1                                    # q = 0 -> column i + D (inclusive)
            lo_ = i + D - qs + 1                               # q = qs - 1 -> column i + D - qs + 1
            acc += w2c[c] * (cs[:, hi_] - cs[:, lo_])
    return active_of(prob, acc.ravel())


def sensitivity_weights(op, wd, area, floor=1e-12):
    """SimPEG-style sensitivity weights ``sqrt(sum_i (wd_i A_ij)^2) / area_j``, divided by their maximum.

    Parameters
    ----------
    op : operator or ndarray
    wd : ndarray (N,)
        Data weights, 1/mGal.
    area : ndarray (n,)
        Cell areas, m^2.
    floor : float
        Relative floor (weights below ``floor`` are raised to it).
    """
    w = np.sqrt(weighted_column_sq_norms(op, wd)) / np.asarray(area, float).ravel()
    w = w / w.max()
    return np.maximum(w, floor)
