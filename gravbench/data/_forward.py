"""Bitwise-deterministic batched forward modelling for data set builds.

``g[s, i] = sum_j A[i, j] * rho[s, j]`` computed as the plain left-to-right
sum over the cells ``j = 0, 1, ..., nz*nx - 1`` (C order), starting from
``+0.0``, with every product and every sum rounded separately (IEEE 754
double, round to nearest): no fused multiply-add, no reassociation, no
blocking of the sum. Terms with ``rho[s, j] == 0`` are skipped, which changes
no bit (the partial sum is never ``-0.0``, so adding ``+-0.0`` leaves it
unchanged).

Why not ``rho @ A.T``: a BLAS GEMM sums in an order (and with FMA or not)
chosen by the BLAS build and the processor (OpenBLAS picks a kernel per CPU
at run time, and the thread count changes the blocking), so the last bits of
``g`` differed between machines. This loop vectorises over stations only
(each ``g[s, i]`` keeps its own sequential sum), which LLVM does without any
fast-math flag, and numba never contracts ``a * b + c`` into an FMA unless
``fastmath`` is on. The result is therefore the same on every x86-64 /
ARM processor and for any thread count (samples are independent; the
parallel build splits samples, never a sum).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._numba.assemble import _twice

#: Samples handled together per pass over A (each row of A^T is reused from cache for them).
_BLOCK = 8
#: Below this many multiply-adds a call runs the serial build (waking threads costs more).
PARALLEL_MIN_WORK = 20_000_000


def _ordered_matmul_impl(R, AT, out):
    """``out[s, :] = sum_j R[s, j] * AT[j, :]`` summed over ``j`` in increasing order (see module doc)."""
    n, ncell = R.shape
    nd = AT.shape[1]
    nblock = (n + _BLOCK - 1) // _BLOCK
    for b in prange(nblock):
        s0 = b * _BLOCK
        s1 = min(n, s0 + _BLOCK)
        for s in range(s0, s1):
            for i in range(nd):
                out[s, i] = 0.0
        for j in range(ncell):
            row = AT[j]
            for s in range(s0, s1):
                r = R[s, j]
                if r != 0.0:
                    o = out[s]
                    for i in range(nd):
                        o[i] = o[i] + r * row[i]


_ordered_ser, _ordered_par = _twice(_ordered_matmul_impl)


def ordered_forward(R, AT, parallel="auto"):
    """``R @ AT`` with a fixed summation order: bitwise the same on every machine.

    Parameters
    ----------
    R : (N, ncell) float64
        Models (C order rows), kg/m^3.
    AT : (ncell, n_data) float64
        The transposed sensitivity ``A.T`` (C-contiguous), mGal per kg/m^3.
    parallel : bool or "auto"
        Split the samples over numba threads ("auto": only for large calls).
        The result does not depend on it.

    Returns
    -------
    (N, n_data) float64
        ``g`` in mGal.
    """
    R = np.ascontiguousarray(R, dtype=np.float64)
    AT = np.ascontiguousarray(AT, dtype=np.float64)
    if R.ndim != 2 or AT.ndim != 2 or R.shape[1] != AT.shape[0]:
        raise ValueError(f"R must be (N, ncell) and AT (ncell, n_data); got shapes {R.shape} and {AT.shape}")
    out = np.empty((R.shape[0], AT.shape[1]), dtype=np.float64)
    if R.shape[0] == 0:
        return out
    if parallel == "auto":
        parallel = R.size * AT.shape[1] >= PARALLEL_MIN_WORK
    (_ordered_par if parallel else _ordered_ser)(R, AT, out)
    return out
