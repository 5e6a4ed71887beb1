"""Scalar Numba kernels of the 2D forward problem, in SI units.

Layer 1 of the numerics (see docs/architecture.md, house style): plain functions of
floats, no objects, no allocation, no checks. They return accelerations per
unit density *without* the ``2 G`` prefactor and the mGal conversion; the
loops in :mod:`gravbench._numba.assemble` apply both once.

Notes
-----
A line mass of linear density lambda at offset ``(X, Z) = (x' - x0, z' - z0)``
from a station attracts with ``g = 2 G lambda (X, Z) / (X^2 + Z^2)`` (z down).
The exact rectangular cell ``[x1, x2] x [z1, z2]`` is its double integral,
a signed sum over the four corners ``(X_i, Z_j)``::

    gz = 2 G rho sum_ij s_ij [ X_i ln r_ij + Z_j atan(X_i / Z_j) ]
    gx = 2 G rho sum_ij s_ij [ Z_j ln r_ij + X_i atan(Z_j / X_i) ]

with ``s_22 = s_11 = +1`` and ``s_12 = s_21 = -1`` (docs/physics.md).
Here each corner needs a single ``log`` and a single ``atan2``: for
``Z >= 0``, ``Z atan(X/Z) = Z atan2(X, Z)`` and
``X atan(Z/X) = |X| pi/2 - X atan2(X, Z)``; the ``|X| pi/2`` part cancels in
the signed sum over ``j`` (it does not depend on ``Z``), so the corner term of
``gx`` is ``Z ln r - X atan2(X, Z)``. Both limits of docs/physics.md
(``t atan(./t) := 0`` at ``t = 0``, ``a ln r := 0`` at ``a = 0``) hold, so a
station on an edge or corner gets the finite limit value.
"""

from __future__ import annotations

import math

from numba import njit

__all__ = ["corner_terms", "exact_cell", "line_mass"]


@njit(cache=True, inline="always")
def corner_terms(X, Z):
    """Corner terms ``(cx, cz)`` of the exact cell for offset ``(X, Z)``, in metres.

    Any sign of ``Z``: a corner above the station (``Z < 0``) occurs for a station
    inside a cell (stations on the ground surface, which crosses the cell).

    ``gx = 2 G rho * sum s_ij cx(X_i, Z_j)`` and likewise for ``gz``.
    """
    r2 = X * X + Z * Z
    if r2 == 0.0:
        return 0.0, 0.0
    lr = 0.5 * math.log(r2)
    a = math.atan2(X, Z)
    # a corner above the station (Z < 0: a station on the ground inside a cell whose top is in the air): the
    # gz term needs Z atan(X / Z) itself, not Z atan2(X, Z), which differs by Z pi sign(X) there; the gx term
    # Z ln r - X atan2(X, Z) stays right (its offset -|X| pi cancels in the signed sum over the two Z_j)
    az = a if Z >= 0.0 else math.atan(X / Z)
    return Z * lr - X * a, X * lr + Z * az


@njit(cache=True)
def exact_cell(x1, x2, z1, z2, x0, z0):
    """Exact ``(gx, gz)`` per unit density / (2 G) of cell ``[x1,x2] x [z1,z2]`` at station ``(x0, z0)``.

    Units: metres in, metres out (multiply by ``2 G rho`` for m/s^2). Holds for a
    station above the cell (``z0 <= z1``) and inside or beside it (a station on a
    ground surface that crosses the cell).
    """
    X1 = x1 - x0
    X2 = x2 - x0
    Z1 = z1 - z0
    Z2 = z2 - z0
    ax, az = corner_terms(X2, Z2)
    bx, bz = corner_terms(X1, Z1)
    cx, cz = corner_terms(X1, Z2)
    dx, dz = corner_terms(X2, Z1)
    return (ax + bx) - (cx + dx), (az + bz) - (cz + dz)


@njit(cache=True, inline="always")
def line_mass(xc, zc, area, x0, z0):
    """Midpoint kernel: ``(gx, gz)`` / (2 G rho) of a line mass ``area`` m^2 at ``(xc, zc)``.

    The seed paper's discretisation: error O((h / r)^2) against :func:`exact_cell`.
    """
    X = xc - x0
    Z = zc - z0
    r2 = X * X + Z * Z
    return area * X / r2, area * Z / r2
