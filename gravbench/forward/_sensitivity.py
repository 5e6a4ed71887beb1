"""The dense sensitivity matrix and the Toeplitz table: input checks and the assembly core.

The real code behind :func:`gravbench.forward.sensitivity` and
:func:`gravbench.forward.toeplitz_table` (the package ``__init__`` only
re-exports). :func:`dense_matrix` is the assembly core on a :class:`Grid` and a
:class:`Survey`; :func:`sensitivity` is the public array-based entry point that
validates its arrays and calls it. Formulas: docs/physics.md.
"""

from __future__ import annotations

import numpy as np

from ..constants import TWO_G_MGAL
from ..geometry import Grid, Survey, _as_edges
from .._numba import assemble as _assemble
from ._parallel import COST_COPY, COST_CORNER, _available_memory, resolve_parallel

__all__ = ["sensitivity", "dense_matrix", "toeplitz_table"]

_KERNEL_ID = {"exact": 0, "midpoint": 1}


def _check_dtype(dtype):
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, got {dt}")
    return dt


def _check_kernel(kernel):
    if kernel not in _KERNEL_ID:
        raise ValueError(f"kernel must be one of {tuple(_KERNEL_ID)}, got {kernel!r}")
    return _KERNEL_ID[kernel]


def _station_array(name, a):
    try:
        arr = np.atleast_1d(np.asarray(a, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1D array of station coordinates in metres, got {a!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1D, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: at least one station is needed")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}] is {arr[i]!r}; station coordinates must be finite (metres)")
    return arr


def _check_inputs(x_edges, z_edges, stations_x, stations_z):
    xe = _as_edges("x_edges", x_edges)
    ze = _as_edges("z_edges", z_edges)
    if ze[0] < 0:
        raise ValueError(f"z_edges must be depths >= 0 (the grid lies below the surface z = 0), got "
                         f"z_edges[0] = {ze[0]!r}")
    grid = Grid.from_edges(xe, ze)
    sx = _station_array("stations_x", stations_x)
    sz = _station_array("stations_z", stations_z)
    if sz.size == 1 and sx.size > 1:
        sz = np.full_like(sx, sz[0])
    if sx.shape != sz.shape:
        raise ValueError(f"stations_x and stations_z must have the same length, got {sx.size} and {sz.size}")
    if np.any(sz > 0.0):
        i = int(np.flatnonzero(sz > 0.0)[0])
        raise ValueError(
            f"stations_z[{i}] = {float(sz[i])!r} is inside the ground; stations must have z <= 0 "
            f"(depth positive down, at or above the surface and the top of the grid z_edges[0] = {float(ze[0])!r})"
        )
    survey = Survey(sx, sz)
    return grid, survey


class _Toeplitz:
    """Parameters of a regular survey's Toeplitz structure (see :func:`toeplitz_table`)."""

    __slots__ = ("grid", "survey", "k", "D", "L", "xs", "kid")

    def __init__(self, grid, survey, kernel):
        k = survey.regular_spacing(grid)
        if k is None:
            raise ValueError(
                "the survey is irregular for this grid: the Toeplitz/FFT path needs uniform columns, "
                "stations at one height and station spacing dx / k for an integer k"
            )
        self.kid = _check_kernel(kernel)
        m = survey.m
        self.grid, self.survey, self.k = grid, survey, k
        self.D = -(-m // k) - 1  # ceil(m / k) - 1
        self.L = grid.nx + self.D
        xs = np.ascontiguousarray(survey.x[:k])
        if xs.size < k:  # fewer stations than phases: pad phases that no station uses
            xs = survey.x[0] + np.arange(k) * (grid.dx / k)
        self.xs = xs

    def rows(self, k0, k1, out, parallel="auto", phases=None):
        """Write the values of depth rows ``k0 <= kk < k1`` into ``out[:, :, :k1 - k0, :L]``.

        ``out`` has shape ``(2, k, >= k1 - k0, >= L)`` (float64); entries past ``L``
        are left untouched (zero padding for FFTs). ``phases`` (a sequence of phase
        indices) computes only those phases, into ``out[:, :len(phases)]``.
        """
        grid = self.grid
        ze = np.ascontiguousarray(grid.z_edges[k0:k1 + 1])
        rows = k1 - k0
        xs = self.xs if phases is None else np.ascontiguousarray(self.xs[np.asarray(phases, dtype=np.intp)])
        par = resolve_parallel(parallel, xs.size * (rows + 1) * (self.L + 1) * COST_CORNER)
        fn = _assemble.toeplitz_table_par if par else _assemble.toeplitz_table_ser
        fn(float(grid.x_edges[0]), float(grid.dx), xs, float(self.survey.z[0]), ze, self.kid, TWO_G_MGAL,
           self.D, self.L, max(1, min(rows, 16)), out)
        return out


def toeplitz_table(grid: Grid, survey: Survey, kernel="exact", *, parallel="auto"):
    """Distinct kernel values of a regular survey (the Toeplitz structure).

    Returns ``(h, k, D)``: ``h`` of shape ``(2, k, nz, nx + D)`` in mGal per
    kg/m^3, such that ``A[c*m + s, kk*nx + i] = h[c, s % k, kk, i - s // k + D]``
    for station ``s`` and component ``c`` (0 = gx, 1 = gz).

    Raises ``ValueError`` when the survey does not have the structure.
    """
    t = _Toeplitz(grid, survey, kernel)
    h = np.empty((2, t.k, grid.nz, t.L))
    t.rows(0, grid.nz, h, parallel)
    return h, t.k, t.D


def _fill_toeplitz_strided(h, k, m, nx, D, out):
    """Dense A from the Toeplitz table with numpy strided copies (no per-row loop).

    Station ``s = q k + r`` reads ``h[c, r, kk, D - q : D - q + nx]``: for the ``Q = m // k``
    complete groups this is a view of ``h`` with a negative stride along ``q``.
    """
    from numpy.lib.stride_tricks import as_strided

    nz = h.shape[2]
    Q = m // k
    s0, s1, s2, s3 = h.strides
    for c in range(2):
        if Q:
            # hv[q, r, kk, i] = h[c, r, kk, D - q + i]: start at column D, step back one column per q
            # (D - (Q - 1) >= 0, so every element read lies inside h)
            hv = as_strided(h[c, :, :, D:], shape=(Q, k, nz, nx), strides=(-s3, s1, s2, s3), writeable=False)
            out[c * m:c * m + Q * k].reshape(Q, k, nz, nx)[...] = hv
        for s in range(Q * k, m):  # the last, incomplete group
            r = s % k
            off = D - s // k
            out[c * m + s].reshape(nz, nx)[...] = h[c, r, :, off:off + nx]


def sensitivity(x_edges, z_edges, stations_x, stations_z, *, kernel="exact", parallel="auto",
                dtype=np.float64, disable_checks=False):
    """Dense sensitivity matrix of a 2D grid seen by gravity stations.

    Parameters
    ----------
    x_edges : array_like, shape (nx + 1,)
        Column edges, metres, strictly increasing.
    z_edges : array_like, shape (nz + 1,)
        Row edges (depth, positive down), metres, strictly increasing, ``z_edges[0] >= 0``.
    stations_x, stations_z : array_like, shape (m,)
        Station coordinates, metres; ``stations_z <= z_edges[0]`` (at or above the ground).
    kernel : {"exact", "midpoint"}
        Closed-form rectangular cell, or the seed paper's centre line mass.
    parallel : bool or "auto"
        Use the numba-parallel build (all cores, ``True``) or the serial one (``False``);
        ``"auto"`` uses all cores only for loops long enough to pay for the threads
        (:func:`gravbench.forward.operators.resolve_parallel`).
    dtype : float64 or float32
        Storage type of the result (the kernel is always evaluated in float64).
    disable_checks : bool
        Skip input validation (benchmarks); garbage in, garbage out.

    Returns
    -------
    A : ndarray, shape (2m, nz * nx)
        mGal per kg/m^3. Rows ``[gx(0..m-1), gz(0..m-1)]``; column ``k * nx + i``
        is cell ``rho[k, i]``.

    Notes
    -----
    Regular surveys (one height, spacing ``dx / k`` over uniform columns) take
    the Toeplitz path: ``2 k nz (nx + m/k)`` kernel values, then contiguous
    copies. Other surveys evaluate every (station, corner) once and share it
    between the four cells at that corner. Per cell and station (docs/physics.md, section 2)::

        gz = 2 G rho sum_ij s_ij [X_i ln r_ij + Z_j atan(X_i / Z_j)]

    Examples
    --------
    >>> import numpy as np
    >>> A = sensitivity([0.0, 10.0], [0.0, 10.0], [5.0], [-1.0])
    >>> A.shape
    (2, 1)
    >>> bool(abs(A[0, 0]) < 1e-15 and A[1, 0] > 0)   # centred above: gx = 0, gz > 0
    True
    """
    dt = _check_dtype(dtype)
    _check_kernel(kernel)
    if disable_checks:
        grid = Grid.from_edges(x_edges, z_edges)
        survey = Survey(stations_x, stations_z)
    else:
        grid, survey = _check_inputs(x_edges, z_edges, stations_x, stations_z)
    return dense_matrix(grid, survey, kernel, parallel=parallel, dtype=dt)


def dense_matrix(grid: Grid, survey: Survey, kernel="exact", *, parallel="auto", dtype=np.float64):
    """The assembly core of :func:`sensitivity`: ``A`` for a :class:`Grid` and a :class:`Survey`.

    ``grid`` and ``survey`` are valid by construction (their constructors check
    edges and station depths); ``kernel``, ``parallel`` and ``dtype`` are as in
    :func:`sensitivity`. Used by :class:`gravbench.Problem` and the operators, so
    that building ``A`` from objects never goes back through raw edge arrays.

    Raises ``ValueError`` when ``A`` would not fit in the available memory.
    """
    dt = _check_dtype(dtype)
    kid = _check_kernel(kernel)
    m = survey.m
    nbytes = 2 * m * grid.size * dt.itemsize
    if nbytes > _available_memory():
        raise ValueError(
            f"the dense sensitivity matrix ({2 * m:,} x {grid.size:,}) would need {nbytes / 2**30:,.1f} GiB, more "
            f"than the {_available_memory() / 2**30:,.1f} GiB available: use an operator that never forms it, "
            "method='fft' (regular surveys) or 'matfree'"
        )
    out = np.empty((2 * m, grid.size), dtype=dt)
    k = survey.regular_spacing(grid)
    if k is not None:
        h, k, D = toeplitz_table(grid, survey, kernel, parallel=parallel)
        h = h.astype(dt, copy=False)
        if parallel is True:  # forced: the numba-parallel fill
            _assemble.fill_toeplitz_par(h, k, m, grid.nx, D, out)
        else:  # one strided numpy copy: as fast as np.full of the same shape (reports/forward.md)
            _fill_toeplitz_strided(h, k, m, grid.nx, D, out)
        return out
    if dt == np.float64:
        target = out
    else:
        target = np.empty((2 * m, grid.size))
    par = resolve_parallel(parallel, m * (grid.nx + 1) * (grid.nz + 1) * COST_CORNER + out.size * COST_COPY)
    fn = _assemble.fill_general_par if par else _assemble.fill_general_ser
    fn(grid.x_edges, grid.z_edges, np.ascontiguousarray(survey.x), np.ascontiguousarray(survey.z), kid,
       TWO_G_MGAL, target)
    if target is not out:
        out[...] = target
    return out
