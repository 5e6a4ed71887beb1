"""Numba kernels of the model families: SplitMix64 streams and one render loop per family.

Layer 1-2 of the numerics: scalar helpers draw from a per-sample stream
(``st``, a 1-element uint64 array); each ``_render_<family>(keys, pos, nz, nx,
p, out)`` renders sample ``j`` from stream ``keys[j]`` into ``out[pos[j]]``
(float32, kg/m^3) in a ``prange`` loop, reading its parameters from the flat
vector ``p`` (``lo, hi`` pairs in ``families.PARAMS`` order). No checks here:
:mod:`gravbench.data.families` validates. Samples are independent, so the
output does not depend on the number of threads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .._numba.assemble import _twice

# ----------------------------------------------------------------------------
# random streams (SplitMix64) in numba
# ----------------------------------------------------------------------------
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0
_TWO_PI = 2.0 * math.pi

#: Below this many cells (or normals) a call runs the serial build: a parallel region costs
#: milliseconds to wake threads on a busy machine, more than the work itself.
PARALLEL_MIN_WORK = 200_000


@njit(cache=True)
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True)
def _keys(seed, salt, index, out):
    base = _mix(_mix(seed) ^ _mix(salt + _GOLD))
    for j in range(index.size):
        out[j] = _mix(base + np.uint64(index[j]) * _GOLD)


@njit(cache=True)
def _u01(st):
    st[0] += _GOLD
    return np.float64(_mix(st[0]) >> _S11) * _INV53


@njit(cache=True)
def _u(st, lo, hi):
    return lo + (hi - lo) * _u01(st)


@njit(cache=True)
def _ri(st, lo, hi):
    """Integer uniform on [lo, hi] inclusive."""
    a = int(lo)
    return a + int(_u01(st) * (int(hi) - a + 1))


@njit(cache=True)
def _normal(st):
    u1 = 1.0 - _u01(st)  # (0, 1]
    u2 = _u01(st)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)


@njit(cache=True)
def _sign(st, p_neg):
    return -1.0 if _u01(st) < p_neg else 1.0


def _normals_impl(keys, m, out):
    """``out[j, :m]``: standard normals from the stream ``keys[j]`` (noise)."""
    for j in prange(keys.size):
        st = np.empty(1, np.uint64)
        st[0] = keys[j]
        for i in range(m):
            out[j, i] = _normal(st)


_normals_ser, _normals_par = _twice(_normals_impl)


def sample_keys(seed, index, salt):
    """Per-sample stream keys ``mix(seed, salt, index)`` (uint64 array)."""
    index = np.ascontiguousarray(index, dtype=np.int64)
    out = np.empty(index.size, dtype=np.uint64)
    _keys(np.uint64(seed), np.uint64(salt), index, out)
    return out


def standard_normals(seed, index, m, salt=0xD1CE):
    """``(len(index), m)`` standard normals, row ``j`` from the stream of sample ``index[j]``."""
    keys = sample_keys(seed, index, salt)
    out = np.empty((keys.size, int(m)), dtype=np.float64)
    if keys.size:
        (_normals_par if keys.size * m >= PARALLEL_MIN_WORK else _normals_ser)(keys, int(m), out)
    return out


# ----------------------------------------------------------------------------
# blocks
# ----------------------------------------------------------------------------
@njit(cache=True)
def _in_polygon(px, pz, vx, vz, nv):
    inside = False
    j = nv - 1
    for i in range(nv):
        if (vz[i] > pz) != (vz[j] > pz):
            xc = vx[i] + (pz - vz[i]) * (vx[j] - vx[i]) / (vz[j] - vz[i])
            if px < xc:
                inside = not inside
        j = i
    return inside


def _render_blocks_impl(keys, pos, nz, nx, p, out):
    for j in prange(keys.size):
        st = np.empty(1, np.uint64)
        st[0] = keys[j]
        img = out[pos[j]]
        img[:, :] = 0.0
        vx = np.empty(8)
        vz = np.empty(8)
        nb = _ri(st, p[0], p[1])
        for _b in range(nb):
            typ = int(_u01(st) * 3.0)
            cx = _u(st, 0.1, 0.9)
            cz = _u(st, 0.12, 0.88)
            a = _u(st, p[2], p[3])
            c = a * _u(st, p[4], p[5])
            th = _u(st, 0.0, math.pi)
            val = _sign(st, p[8]) * _u(st, p[6], p[7])
            nv = 3 + int(_u01(st) * 6.0)
            for v in range(nv):
                ang = _TWO_PI * (v + _u(st, -0.3, 0.3)) / nv
                r = _u(st, 0.55, 1.0)
                vx[v] = a * r * math.cos(ang)
                vz[v] = c * r * math.sin(ang)
            ct = math.cos(th)
            sn = math.sin(th)
            rmax = 1.42 * a
            k0 = max(0, int((cz - rmax) * nz))
            k1 = min(nz, int((cz + rmax) * nz) + 1)
            i0 = max(0, int((cx - rmax) * nx))
            i1 = min(nx, int((cx + rmax) * nx) + 1)
            for k in range(k0, k1):
                dz = (k + 0.5) / nz - cz
                for i in range(i0, i1):
                    dx = (i + 0.5) / nx - cx
                    pu = ct * dx + sn * dz
                    pw = -sn * dx + ct * dz
                    if typ == 0:
                        inside = abs(pu) <= a and abs(pw) <= c
                    elif typ == 1:
                        inside = (pu / a) ** 2 + (pw / c) ** 2 <= 1.0
                    else:
                        inside = _in_polygon(pu, pw, vx, vz, nv)
                    if inside:
                        img[k, i] = val


# ----------------------------------------------------------------------------
# layers and faults (shared layered sequence)
# ----------------------------------------------------------------------------
@njit(cache=True)
def _draw_layers(st, p, d, vals, fold):
    """Draw a layered sequence: returns the number of layers; fills interface depths d, layer values, fold."""
    nl = _ri(st, p[0], p[1])
    total = 0.0
    for j in range(nl):
        d[j] = _u(st, 0.5, 1.5)
        total += d[j]
    total *= _u(st, 1.0, 1.25)  # the last layer reaches below the grid
    acc = 0.0
    for j in range(nl):
        acc += d[j]
        d[j] = acc / total
        vals[j] = _sign(st, p[4]) * _u(st, p[2], p[3])
    fold[0] = _u(st, p[6], p[7])  # amplitude
    fold[1] = _u(st, p[8], p[9])  # wavelength
    fold[2] = _u(st, 0.0, _TWO_PI)
    fold[3] = _u(st, 0.0, 0.3)  # second-harmonic weight
    fold[4] = _u(st, 0.0, _TWO_PI)
    fold[5] = _u(st, p[10], p[11])  # dip
    return nl


@njit(cache=True)
def _layer_value(x, z, nl, d, vals, fold):
    ph = _TWO_PI * x / fold[1]
    shift = math.sin(ph + fold[2]) + fold[3] * math.sin(2.0 * ph + fold[4])
    base = fold[5] * (x - 0.5)
    li = 0
    for j in range(nl - 1):
        zj = d[j] + fold[0] * (1.0 - 0.5 * d[j]) * shift + base
        if z > zj:
            li = j + 1
    return vals[li]


def _render_layers_impl(keys, pos, nz, nx, p, out):
    for j in prange(keys.size):
        st = np.empty(1, np.uint64)
        st[0] = keys[j]
        img = out[pos[j]]
        d = np.empty(16)
        vals = np.empty(16)
        fold = np.empty(6)
        nl = _draw_layers(st, p, d, vals, fold)
        for i in range(nx):
            x = (i + 0.5) / nx
            for k in range(nz):
                img[k, i] = _layer_value(x, (k + 0.5) / nz, nl, d, vals, fold)


def _render_faults_impl(keys, pos, nz, nx, p, out):
    for j in prange(keys.size):
        st = np.empty(1, np.uint64)
        st[0] = keys[j]
        img = out[pos[j]]
        d = np.empty(16)
        vals = np.empty(16)
        fold = np.empty(6)
        nl = _draw_layers(st, p, d, vals, fold)
        nf = _ri(st, p[12], p[13])
        fx = np.empty(4)
        fcot = np.empty(4)
        fdir = np.empty(4)
        fdz = np.empty(4)
        fdx = np.empty(4)
        for f in range(nf):
            fx[f] = _u(st, 0.15, 0.85)
            dip = math.radians(_u(st, p[14], p[15]))
            fcot[f] = math.cos(dip) / math.sin(dip)
            fdir[f] = 1.0 if _u01(st) < 0.5 else -1.0  # the fault dips towards +x (1) or -x (-1)
            throw = _u(st, p[16], p[17])
            s = -1.0 if _u01(st) < p[18] else 1.0  # normal: hanging wall down (+1)
            fdz[f] = s * throw
            fdx[f] = s * throw * fcot[f] * fdir[f]
        for i in range(nx):
            x = (i + 0.5) / nx
            for k in range(nz):
                z = (k + 0.5) / nz
                xe = x
                ze = z
                for f in range(nf):
                    trace = fx[f] + fdir[f] * z * fcot[f]
                    if fdir[f] * (x - trace) > 0.0:  # hanging wall
                        xe -= fdx[f]
                        ze -= fdz[f]
                img[k, i] = _layer_value(xe, ze, nl, d, vals, fold)


# ----------------------------------------------------------------------------
# intrusions
# ----------------------------------------------------------------------------
def _render_intrusions_impl(keys, pos, nz, nx, p, out):
    for j in prange(keys.size):
        st = np.empty(1, np.uint64)
        st[0] = keys[j]
        img = out[pos[j]]
        img[:, :] = 0.0
        nb = _ri(st, p[0], p[1])
        for _b in range(nb):
            typ = int(_u01(st) * 3.0)
            mag = _u(st, p[2], p[3])
            flip = -1.0 if _u01(st) < p[4] else 1.0
            if typ == 0:  # salt dome: negative
                val = -mag * flip
                c = _u(st, 0.2, 0.8)
                ws = _u(st, p[6], p[7])
                zt = _u(st, p[8], p[9])
                wc = ws * _u(st, 1.3, 2.5)
                hc = _u(st, 0.05, 0.12)
                lean = _u(st, -0.25, 0.25)
                for k in range(nz):
                    z = (k + 0.5) / nz
                    if z < zt:
                        continue
                    t = z - zt
                    if t < hc:  # rounded crest
                        q = (hc - t) / hc
                        w = wc * math.sqrt(max(0.0, 1.0 - q * q))
                    elif t < 2.0 * hc:  # overhang tapering to the stem
                        w = ws + (wc - ws) * (1.0 - (t - hc) / hc)
                    else:
                        w = ws
                    xc = c + lean * t
                    for i in range(nx):
                        if abs((i + 0.5) / nx - xc) <= w:
                            img[k, i] = val
            elif typ == 1:  # dyke: positive, steep sheet from depth
                val = mag * flip
                x0 = _u(st, 0.1, 0.9)
                zt = _u(st, 0.0, 0.4)
                dip = math.radians(_u(st, p[12], p[13]))
                dr = 1.0 if _u01(st) < 0.5 else -1.0
                hw = _u(st, p[10], p[11])
                cot = math.cos(dip) / math.sin(dip)
                sn = math.sin(dip)
                for k in range(nz):
                    z = (k + 0.5) / nz
                    if z < zt:
                        continue
                    xc = x0 + dr * (z - zt) * cot
                    for i in range(nx):
                        if abs((i + 0.5) / nx - xc) * sn <= hw:
                            img[k, i] = val
            else:  # sill: positive lens
                val = mag * flip
                c = _u(st, 0.25, 0.75)
                zs = _u(st, 0.2, 0.85)
                L = _u(st, p[14], p[15])
                ht = _u(st, p[16], p[17])
                slope = _u(st, -0.15, 0.15)
                for i in range(nx):
                    x = (i + 0.5) / nx
                    q = (x - c) / L
                    if abs(q) >= 1.0:
                        continue
                    h = ht * math.sqrt(1.0 - q * q)
                    zc = zs + slope * (x - c)
                    for k in range(nz):
                        if abs((k + 0.5) / nz - zc) <= h:
                            img[k, i] = val


# ----------------------------------------------------------------------------
# channels
# ----------------------------------------------------------------------------
def _render_channels_impl(keys, pos, nz, nx, p, out):
    for j in prange(keys.size):
        st = np.empty(1, np.uint64)
        st[0] = keys[j]
        img = out[pos[j]]
        img[:, :] = 0.0
        val = _sign(st, p[12]) * _u(st, p[10], p[11])
        nc = _ri(st, p[0], p[1])
        for _c in range(nc):
            w = _u(st, p[2], p[3])
            a1 = _u(st, p[4], p[5])
            l1 = _u(st, p[6], p[7])
            a2 = a1 * _u(st, 0.0, 0.3)
            l2 = l1 * _u(st, 0.4, 0.7)
            ph1 = _u(st, 0.0, _TWO_PI)
            ph2 = _u(st, 0.0, _TWO_PI)
            th = math.radians(_u(st, p[8], p[9]))
            t0 = _u(st, 0.15, 0.85)
            ct = math.cos(th)
            sn = math.sin(th)
            k1 = _TWO_PI / l1
            k2 = _TWO_PI / l2
            for k in range(nz):
                dz = (k + 0.5) / nz - 0.5
                for i in range(nx):
                    dx = (i + 0.5) / nx - 0.5
                    s = ct * dx + sn * dz  # along the channel
                    t = -sn * dx + ct * dz + 0.5  # across
                    tc = t0 + a1 * math.sin(k1 * s + ph1) + a2 * math.sin(k2 * s + ph2)
                    slope = a1 * k1 * math.cos(k1 * s + ph1) + a2 * k2 * math.cos(k2 * s + ph2)
                    if abs(t - tc) <= w * math.sqrt(1.0 + slope * slope):
                        img[k, i] = val


# ----------------------------------------------------------------------------
# smooth Gaussian random fields (random Fourier modes, separable evaluation)
# ----------------------------------------------------------------------------
def _render_smooth_impl(keys, pos, nz, nx, p, out):
    for j in prange(keys.size):
        st = np.empty(1, np.uint64)
        st[0] = keys[j]
        img = out[pos[j]]
        lz = _u(st, p[0], p[1])
        lx = lz * _u(st, p[2], p[3])
        sd = _u(st, p[4], p[5])
        mu = _u(st, p[6], p[7])
        vmax = p[8]
        nm = int(p[10])
        f = np.zeros((nz, nx))
        cx = np.empty(nx)
        sx = np.empty(nx)
        cz = np.empty(nz)
        sz = np.empty(nz)
        for _m in range(nm):
            kx = _normal(st) / lx
            kz = _normal(st) / lz
            ph = _u(st, 0.0, _TWO_PI)
            for i in range(nx):
                a = kx * (i + 0.5) / nx + ph
                cx[i] = math.cos(a)
                sx[i] = math.sin(a)
            for k in range(nz):
                b = kz * (k + 0.5) / nz
                cz[k] = math.cos(b)
                sz[k] = math.sin(b)
            for k in range(nz):
                for i in range(nx):
                    f[k, i] += cx[i] * cz[k] - sx[i] * sz[k]
        scale = sd * math.sqrt(2.0 / nm)
        for k in range(nz):
            for i in range(nx):
                v = mu + scale * f[k, i]
                img[k, i] = min(vmax, max(-vmax, v))


# ----------------------------------------------------------------------------
# fwi: OpenFWI-style velocity media mapped to absolute density (Gardner)
# ----------------------------------------------------------------------------
#: Gardner's relation rho = GARDNER_A * V**0.25, rho in kg/m^3 and V in m/s.
GARDNER_A = 310.0


@njit(cache=True)
def _fwi_depth(x, j, d, curve, nl):
    """Depth of interface ``j`` (between layers j and j+1) at relative position x."""
    ph = _TWO_PI * x / curve[1]
    return d[j] + curve[0] * (math.sin(ph + curve[2]) + curve[3] * math.sin(2.0 * ph + curve[4])) + curve[5] * (x - 0.5)


def _render_fwi_impl(keys, pos, nz, nx, p, out):
    for j in prange(keys.size):
        st = np.empty(1, np.uint64)
        st[0] = keys[j]
        img = out[pos[j]]
        nl = _ri(st, p[0], p[1])
        curved = _u01(st) < p[6]
        faulted = _u01(st) < p[8]
        # layer interfaces: thickness weights, the last layer reaches the bottom
        d = np.empty(8)
        total = 0.0
        for q in range(nl):
            d[q] = _u(st, 0.4, 1.6)
            total += d[q]
        acc = 0.0
        for q in range(nl):
            acc += d[q]
            d[q] = acc / total
        # velocities: sorted (increasing with depth), then occasional inversions of neighbours
        v = np.empty(8)
        for q in range(nl):
            v[q] = _u(st, p[2], p[3])
        for a in range(1, nl):  # insertion sort
            t = v[a]
            b = a - 1
            while b >= 0 and v[b] > t:
                v[b + 1] = v[b]
                b -= 1
            v[b + 1] = t
        for q in range(nl - 1):
            if _u01(st) < p[4]:
                t = v[q]
                v[q] = v[q + 1]
                v[q + 1] = t
        rho = np.empty(8)
        for q in range(nl):
            rho[q] = GARDNER_A * v[q] ** 0.25
        curve = np.zeros(6)
        curve[1] = 1.0
        if curved:
            curve[0] = _u(st, p[10], p[11])
            curve[1] = _u(st, p[12], p[13])
            curve[2] = _u(st, 0.0, _TWO_PI)
            curve[3] = _u(st, 0.0, 0.4)
            curve[4] = _u(st, 0.0, _TWO_PI)
            curve[5] = _u(st, -0.1, 0.1)
        nf = 0
        fx = np.empty(2)
        fcot = np.empty(2)
        fdir = np.empty(2)
        fdz = np.empty(2)
        fdx = np.empty(2)
        if faulted:
            nf = _ri(st, p[18], p[19])
            for f in range(nf):
                fx[f] = _u(st, 0.2, 0.8)
                dip = math.radians(_u(st, p[14], p[15]))
                fcot[f] = math.cos(dip) / math.sin(dip)
                fdir[f] = 1.0 if _u01(st) < 0.5 else -1.0
                throw = _u(st, p[16], p[17])
                s = -1.0 if _u01(st) < 0.5 else 1.0
                fdz[f] = s * throw
                fdx[f] = s * throw * fcot[f] * fdir[f]
        for i in range(nx):
            x = (i + 0.5) / nx
            for k in range(nz):
                z = (k + 0.5) / nz
                xe = x
                ze = z
                for f in range(nf):
                    if fdir[f] * (x - (fx[f] + fdir[f] * z * fcot[f])) > 0.0:  # hanging wall
                        xe -= fdx[f]
                        ze -= fdz[f]
                li = 0
                for q in range(nl - 1):
                    if ze > _fwi_depth(xe, q, d, curve, nl):
                        li = q + 1
                img[k, i] = rho[li]


#: family -> (serial, parallel) render loops (the same code compiled twice: identical results).
_RENDER = {name: _twice(impl) for name, impl in (
    ("blocks", _render_blocks_impl),
    ("layers", _render_layers_impl),
    ("faults", _render_faults_impl),
    ("intrusions", _render_intrusions_impl),
    ("channels", _render_channels_impl),
    ("smooth", _render_smooth_impl),
    ("fwi", _render_fwi_impl),
)}
