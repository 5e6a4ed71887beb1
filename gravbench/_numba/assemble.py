"""Numba loops that fill the sensitivity matrix and apply it without storing it.

Layer 2 of the numerics: each loop is written once and compiled twice, serial
and ``parallel=True`` (:func:`_twice`), writing into a preallocated ``out``.
``kernel`` is 0 for the exact cell and 1 for the midpoint line mass;
``factor`` is ``2 G`` times the unit conversion, applied as values are written.

Two families:

* general: any stations, any (non-uniform) edges. Corner terms are evaluated
  once per (station, corner) and shared by the four cells around a corner.
* Toeplitz: stations on one height with spacing ``dx / k`` over uniform
  columns. Station ``s = k q + r`` (phase ``r``) sees cell column ``i`` through
  ``h[r, kk, i - q + D]``; only ``2 k nz (nx + D)`` kernel values are computed
  (:func:`toeplitz_table`), the dense matrix is filled by contiguous copies.

The loops inline :func:`.kernels.corner_terms`; numba's on-disk cache is keyed
on this file, so a change of the kernels must come with a change here (this
note was last touched when ``corner_terms`` learned corners above the station,
for stations on a ground surface inside a cell).
"""

from __future__ import annotations

import types

import numpy as np
from numba import njit, prange

from .kernels import corner_terms, line_mass


def _twice(impl):
    """Compile ``impl`` as two distinct cached dispatchers: (serial, parallel)."""
    out = []
    for parallel in (False, True):
        name = impl.__name__ + ("_par" if parallel else "_ser")
        f = types.FunctionType(impl.__code__, impl.__globals__, name, impl.__defaults__, impl.__closure__)
        f.__qualname__ = name
        f.__doc__ = impl.__doc__
        out.append(njit(parallel=parallel, cache=True)(f))
    return tuple(out)


# ----------------------------------------------------------------------------
# general path
# ----------------------------------------------------------------------------
def _corner_row(xe, zj, x0, z0, cx, cz):
    for i in range(xe.size):
        a, b = corner_terms(xe[i] - x0, zj - z0)
        cx[i] = a
        cz[i] = b


_corner_row = njit(cache=True)(_corner_row)


def _fill_general(xe, ze, sx, sz, kernel, factor, out):
    """out[s, k*nx+i] = gx, out[m+s, k*nx+i] = gz of cell (k, i) at station s."""
    m = sx.size
    nx = xe.size - 1
    nz = ze.size - 1
    for s in prange(m):
        x0 = sx[s]
        z0 = sz[s]
        if kernel == 0:
            px = np.empty(nx + 1)
            pz = np.empty(nx + 1)
            qx = np.empty(nx + 1)
            qz = np.empty(nx + 1)
            _corner_row(xe, ze[0], x0, z0, px, pz)
            for k in range(nz):
                _corner_row(xe, ze[k + 1], x0, z0, qx, qz)
                base = k * nx
                for i in range(nx):
                    # corners: (X_{i+1}, Z_{k+1}) + (X_i, Z_k) - (X_i, Z_{k+1}) - (X_{i+1}, Z_k)
                    out[s, base + i] = factor * ((qx[i + 1] + px[i]) - (qx[i] + px[i + 1]))
                    out[m + s, base + i] = factor * ((qz[i + 1] + pz[i]) - (qz[i] + pz[i + 1]))
                px, qx = qx, px
                pz, qz = qz, pz
        else:
            for k in range(nz):
                zc = 0.5 * (ze[k] + ze[k + 1])
                hz = ze[k + 1] - ze[k]
                base = k * nx
                for i in range(nx):
                    gx, gz = line_mass(0.5 * (xe[i] + xe[i + 1]), zc, hz * (xe[i + 1] - xe[i]), x0, z0)
                    out[s, base + i] = factor * gx
                    out[m + s, base + i] = factor * gz


fill_general_ser, fill_general_par = _twice(_fill_general)


def _matfree_matvec(xe, ze, sx, sz, kernel, factor, v, out):
    """out[:m] = gx, out[m:] = gz of the model v (flat, C order), kernel evaluated on the fly."""
    m = sx.size
    nx = xe.size - 1
    nz = ze.size - 1
    for s in prange(m):
        x0 = sx[s]
        z0 = sz[s]
        ax = 0.0
        az = 0.0
        if kernel == 0:
            px = np.empty(nx + 1)
            pz = np.empty(nx + 1)
            qx = np.empty(nx + 1)
            qz = np.empty(nx + 1)
            _corner_row(xe, ze[0], x0, z0, px, pz)
            for k in range(nz):
                _corner_row(xe, ze[k + 1], x0, z0, qx, qz)
                base = k * nx
                for i in range(nx):
                    vi = v[base + i]
                    ax += ((qx[i + 1] + px[i]) - (qx[i] + px[i + 1])) * vi
                    az += ((qz[i + 1] + pz[i]) - (qz[i] + pz[i + 1])) * vi
                px, qx = qx, px
                pz, qz = qz, pz
        else:
            for k in range(nz):
                zc = 0.5 * (ze[k] + ze[k + 1])
                hz = ze[k + 1] - ze[k]
                base = k * nx
                for i in range(nx):
                    gx, gz = line_mass(0.5 * (xe[i] + xe[i + 1]), zc, hz * (xe[i + 1] - xe[i]), x0, z0)
                    ax += gx * v[base + i]
                    az += gz * v[base + i]
        out[s] = factor * ax
        out[m + s] = factor * az


matfree_matvec_ser, matfree_matvec_par = _twice(_matfree_matvec)


def _matfree_rmatvec(xe, ze, sx, sz, kernel, factor, u, nchunks, out):
    """out (flat, nz*nx) = A^T u. Depth rows are split into ``nchunks`` blocks, one per task."""
    m = sx.size
    nx = xe.size - 1
    nz = ze.size - 1
    for c in prange(nchunks):
        k0 = (c * nz) // nchunks
        k1 = ((c + 1) * nz) // nchunks
        for j in range(k0 * nx, k1 * nx):
            out[j] = 0.0
        if k1 <= k0:
            continue
        px = np.empty(nx + 1)
        pz = np.empty(nx + 1)
        qx = np.empty(nx + 1)
        qz = np.empty(nx + 1)
        for s in range(m):
            x0 = sx[s]
            z0 = sz[s]
            ux = factor * u[s]
            uz = factor * u[m + s]
            if kernel == 0:
                _corner_row(xe, ze[k0], x0, z0, px, pz)
                for k in range(k0, k1):
                    _corner_row(xe, ze[k + 1], x0, z0, qx, qz)
                    base = k * nx
                    for i in range(nx):
                        out[base + i] += ux * ((qx[i + 1] + px[i]) - (qx[i] + px[i + 1])) + uz * (
                            (qz[i + 1] + pz[i]) - (qz[i] + pz[i + 1])
                        )
                    px, qx = qx, px
                    pz, qz = qz, pz
            else:
                for k in range(k0, k1):
                    zc = 0.5 * (ze[k] + ze[k + 1])
                    hz = ze[k + 1] - ze[k]
                    base = k * nx
                    for i in range(nx):
                        gx, gz = line_mass(0.5 * (xe[i] + xe[i + 1]), zc, hz * (xe[i + 1] - xe[i]), x0, z0)
                        out[base + i] += ux * gx + uz * gz


matfree_rmatvec_ser, matfree_rmatvec_par = _twice(_matfree_rmatvec)


# ----------------------------------------------------------------------------
# Toeplitz path (regular surveys)
# ----------------------------------------------------------------------------
def _toeplitz_table(x_left, dx, xs, z0, ze, kernel, factor, D, L, nchunks, out):
    """out[c, r, k, e] = kernel value c (0 = gx, 1 = gz) of a cell of column ``e - D`` in depth row k,
    seen from the phase-r station at ``xs[r]`` and depth ``z0``. Cell column d has left edge
    ``x_left + d * dx``. out has shape (2, len(xs), nz, L)."""
    nr = xs.size
    nz = ze.size - 1
    for t in prange(nr * nchunks):
        r = t // nchunks
        c = t % nchunks
        k0 = (c * nz) // nchunks
        k1 = ((c + 1) * nz) // nchunks
        if k1 <= k0:
            continue
        x0 = xs[r]
        if kernel == 0:
            px = np.empty(L + 1)
            pz = np.empty(L + 1)
            qx = np.empty(L + 1)
            qz = np.empty(L + 1)
            for e in range(L + 1):
                a, b = corner_terms(x_left + (e - D) * dx - x0, ze[k0] - z0)
                px[e] = a
                pz[e] = b
            for k in range(k0, k1):
                for e in range(L + 1):
                    a, b = corner_terms(x_left + (e - D) * dx - x0, ze[k + 1] - z0)
                    qx[e] = a
                    qz[e] = b
                for e in range(L):
                    out[0, r, k, e] = factor * ((qx[e + 1] + px[e]) - (qx[e] + px[e + 1]))
                    out[1, r, k, e] = factor * ((qz[e + 1] + pz[e]) - (qz[e] + pz[e + 1]))
                px, qx = qx, px
                pz, qz = qz, pz
        else:
            for k in range(k0, k1):
                zc = 0.5 * (ze[k] + ze[k + 1])
                area = dx * (ze[k + 1] - ze[k])
                for e in range(L):
                    gx, gz = line_mass(x_left + (e - D + 0.5) * dx, zc, area, x0, z0)
                    out[0, r, k, e] = factor * gx
                    out[1, r, k, e] = factor * gz


toeplitz_table_ser, toeplitz_table_par = _twice(_toeplitz_table)


def _fill_toeplitz(h, k, m, nx, D, out):
    """Dense A from the Toeplitz table: out[c*m + s, kk*nx + i] = h[c, s % k, kk, i - s // k + D]."""
    nz = h.shape[2]
    for s in prange(m):
        r = s % k
        off = D - s // k
        for c in range(2):
            row = c * m + s
            for kk in range(nz):
                # a slice copy (no per-element index wrap-around checks): about 1.3x faster
                out[row, kk * nx:(kk + 1) * nx] = h[c, r, kk, off:off + nx]


fill_toeplitz_ser, fill_toeplitz_par = _twice(_fill_toeplitz)


def _fft_contract_fwd(Hc, Hr, V, nblocks, P, Q, S):
    """Accumulate, over the depth rows ``k`` of one chunk, for every frequency ``f``:

    ``P[j, f] += sum_k Hc[k, j, f] conj(V[k, f])``, ``Q[j, f] += sum_k Hc[k, j, f] V[k, f]``
    (complex spectra ``j``) and ``S[j, f] += sum_k Hr[k, j, f] conj(V[k, f])`` (real spectra).

    All complex arrays are passed as real views (``complex_array.view(float)``: real and
    imaginary parts interleaved along the last axis), which lets LLVM vectorise the
    arithmetic; ``Hr`` is real with ``F`` values per row. ``Q`` costs no extra memory
    traffic (the products of ``P`` rearranged) and serves the mirrored phases. Frequencies
    are split into ``nblocks`` tasks; within a block each row of ``V`` is read once for all
    ``j``.
    """
    nz = V.shape[0]
    F = V.shape[1] // 2
    nc = Hc.shape[1]
    nr = Hr.shape[1]
    for b in prange(nblocks):
        f0 = (b * F) // nblocks
        f1 = ((b + 1) * F) // nblocks
        for k in range(nz):
            for j in range(nc):
                for f in range(f0, f1):
                    hr = Hc[k, j, 2 * f]
                    hi = Hc[k, j, 2 * f + 1]
                    vr = V[k, 2 * f]
                    vi = V[k, 2 * f + 1]
                    a = hr * vr
                    c = hi * vi
                    d = hi * vr
                    e = hr * vi
                    P[j, 2 * f] += a + c
                    P[j, 2 * f + 1] += d - e
                    Q[j, 2 * f] += a - c
                    Q[j, 2 * f + 1] += d + e
            for j in range(nr):
                for f in range(f0, f1):
                    h = Hr[k, j, f]
                    S[j, 2 * f] += h * V[k, 2 * f]
                    S[j, 2 * f + 1] -= h * V[k, 2 * f + 1]


fft_contract_fwd_ser, fft_contract_fwd_par = _twice(_fft_contract_fwd)


def _fft_contract_adj(Hc, Hr, AP, AM, E, Z):
    """``Z[k, f] = sum_j Hc[k, j, f] conj(A[j, f]) + conj(Hc[k, j, f]) conj(B[j, f]) + sum_j Hr[k, j, f] conj(E[j, f])``.

    Real views as in :func:`_fft_contract_fwd`; the caller passes ``AP = A + B`` and
    ``AM = A - B`` (``B`` is the mirrored phase's weight, zero when there is none).
    """
    nz = Z.shape[0]
    F = Z.shape[1] // 2
    nc = Hc.shape[1]
    nr = Hr.shape[1]
    for k in prange(nz):
        for f in range(2 * F):
            Z[k, f] = 0.0
        for j in range(nc):
            for f in range(F):
                hr = Hc[k, j, 2 * f]
                hi = Hc[k, j, 2 * f + 1]
                Z[k, 2 * f] += hr * AP[j, 2 * f] + hi * AM[j, 2 * f + 1]
                Z[k, 2 * f + 1] += hi * AM[j, 2 * f] - hr * AP[j, 2 * f + 1]
        for j in range(nr):
            for f in range(F):
                h = Hr[k, j, f]
                Z[k, 2 * f] += h * E[j, 2 * f]
                Z[k, 2 * f + 1] -= h * E[j, 2 * f + 1]


fft_contract_adj_ser, fft_contract_adj_par = _twice(_fft_contract_adj)
