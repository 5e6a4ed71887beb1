"""Allocation-free level-1 kernels and Givens rotations shared by both twins.

Compiled loops inline these calls; the Python twins call them one compiled call
each, with no temporaries of the model size.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["axpy", "xpby", "wdot", "wmul", "mgs", "combine", "add_reg", "project", "lartg", "givens_column",
           "upper_solve"]


@njit(cache=True)
def axpy(a, x, y):
    """y += a x (in place)."""
    for i in range(y.size):
        y[i] += a * x[i]


@njit(cache=True)
def xpby(x, b, y):
    """y = x + b y (in place): the CG direction update."""
    for i in range(y.size):
        y[i] = x[i] + b * y[i]


@njit(cache=True)
def wdot(w, x, y):
    """sum_i w_i x_i y_i."""
    s = 0.0
    for i in range(x.size):
        s += w[i] * x[i] * y[i]
    return s


@njit(cache=True)
def wmul(w, x, out):
    """out = w * x (in place)."""
    for i in range(x.size):
        out[i] = w[i] * x[i]


@njit(cache=True)
def mgs(V, w, h, col):
    """Modified Gram-Schmidt of w against V[0..col]: h[k, col] = V[k].w, w -= h[k, col] V[k]."""
    n = w.size
    for k in range(col + 1):
        t = np.dot(V[k], w)
        h[k, col] = t
        for i in range(n):
            w[i] -= t * V[k, i]


@njit(cache=True)
def combine(y, V, k, x):
    """x += sum_{j < k} y_j V[j] (in place)."""
    n = x.size
    for j in range(k):
        a = y[j]
        for i in range(n):
            x[i] += a * V[j, i]


@njit(cache=True)
def add_reg(alpha, w, x, xref, l):
    """l += alpha w (x - xref) (in place): the model term of a regularised gradient."""
    for i in range(l.size):
        l[i] += alpha * w[i] * (x[i] - xref[i])


@njit(cache=True)
def project(x, lo, hi):
    """Clip x onto [lo, hi] in place; True when any entry moved."""
    clipped = False
    for j in range(x.size):
        if x[j] < lo[j]:
            x[j] = lo[j]
            clipped = True
        elif x[j] > hi[j]:
            x[j] = hi[j]
            clipped = True
    return clipped


@njit(cache=True)
def lartg(f, g):
    """Plane rotation (LAPACK 3.10 ``dlartg``): ``[c s; -s c] [f; g] = [r; 0]``, r with the sign of f."""
    if g == 0.0:
        return 1.0, 0.0, f
    if f == 0.0:
        return 0.0, (1.0 if g > 0.0 else -1.0), abs(g)
    d = np.hypot(f, g)
    r = d if f > 0.0 else -d
    return abs(f) / d, g / r, r


@njit(cache=True)
def givens_column(R, cs, sn, S, j):
    """Givens step of the GMRES least-squares update, in place on column ``j`` of the Hessenberg ``R``.

    Applies the earlier rotations ``(cs[k], sn[k])``, ``k < j``, to the column, makes the
    rotation that zeroes ``R[j + 1, j]`` (kept in ``cs[j]``, ``sn[j]``) and rotates the
    right-hand side ``S``. Returns ``|S[j + 1]|``, the residual estimate.
    """
    for k in range(j):
        n0 = R[k, j]
        n1 = R[k + 1, j]
        R[k, j] = cs[k] * n0 + sn[k] * n1
        R[k + 1, j] = -sn[k] * n0 + cs[k] * n1
    c, s, mag = lartg(R[j, j], R[j + 1, j])
    cs[j] = c
    sn[j] = s
    R[j, j] = mag
    R[j + 1, j] = 0.0
    t = -s * S[j]
    S[j] = c * S[j]
    S[j + 1] = t
    return abs(t)


@njit(cache=True)
def upper_solve(R, rhs, k):
    """Solve the leading ``k x k`` upper-triangular system ``R[:k, :k] y = rhs[:k]``; a zero pivot gives 0."""
    y = np.zeros(k)
    for i in range(k - 1, -1, -1):
        t = rhs[i]
        for j in range(i + 1, k):
            t -= R[i, j] * y[j]
        y[i] = t / R[i, i] if R[i, i] != 0.0 else 0.0
    return y
