"""Forward operators: one contract, three implementations.

Every operator is a :class:`scipy.sparse.linalg.LinearOperator` of shape
``(2m, nz*nx)`` (mGal per kg/m^3) with

* ``matvec(v)``: ``A v``; ``rmatvec(u)``: ``A^T u``;
* ``normal_matvec(v)``: ``A^T A v`` without forming ``A^T A``;
* counters ``n_matvec`` and ``n_rmatvec`` (``normal_matvec`` counts one of
  each; ``reset_counters()`` zeroes them): the machine-independent cost;
* ``method`` (``"dense" | "matfree" | "fft"``) and ``reason`` (why ``auto``
  picked it).

=========  ==========================  ===================  ==================
method     storage                     A v / A^T u          use
=========  ==========================  ===================  ==================
dense      A: 2m * nz*nx floats        BLAS gemv            small grids, any survey
matfree    O(m + nx) beyond vectors    kernel on the fly    any survey, huge
fft        k nz (nx + m/k) complex     nz FFTs of ~2n       regular surveys
=========  ==========================  ===================  ==================
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from scipy.sparse.linalg import LinearOperator

from .._linalg.blas import single_thread_blas
from .._linalg.packing import EMPTY2, MODE_DENSE, MODE_MATFREE, pack_matrix
from .._linalg.normal import NormalOperator
from ..constants import TWO_G_MGAL
from ..geometry import COMPONENTS, Grid, Survey
from .._numba import assemble as _assemble
from ._parallel import (  # noqa: F401 - re-exported: the policy's public home is this module
    COST_COPY,
    COST_CORNER,
    COST_MAC,
    PARALLEL_MIN_SECONDS,
    _available_memory,
    _workers,
    idle_cores,
    resolve_parallel,
)
from ._sensitivity import _KERNEL_ID, _check_dtype, _Toeplitz, dense_matrix

__all__ = ["GravityOperator", "DenseOperator", "MatFreeOperator", "FFTOperator", "make_operator", "dot_test",
           "irregular_reason",
           "METHODS", "DENSE_AUTO_MAX_ENTRIES", "PARALLEL_MIN_SECONDS", "resolve_parallel", "idle_cores",
           "single_thread_blas"]

METHODS = ("auto", "dense", "matfree", "fft")


class GravityOperator(LinearOperator):
    """Base class: shape, dtype, counters and the checks shared by all methods.

    The shape is ``(n_data, n_active)``: the rows of the survey's components
    (gx block, then gz block) and the columns of the active cells (all cells
    without a ground surface). Subclasses implement ``_apply`` / ``_apply_adjoint``
    on the full ``(2m, nz*nx)`` matrix; the base class wraps them as ``R A P``
    (``P`` embeds the active cells into the grid with zeros, ``R`` keeps the
    survey's rows), so every method keeps its speed. A subclass whose products
    already act on the reduced matrix sets ``_wrap = False``.
    """

    method = "base"
    #: whether ``_apply`` works on the full matrix (wrapped as R A P) or already on the reduced one
    _wrap = True
    #: input dtypes a product takes as they are (no model-size conversion copy), besides ``dtype``
    _accepts = ()

    def __init__(self, problem, dtype=np.float64, check_inputs=True):
        dt = _check_dtype(dtype)
        n_act = getattr(problem, "n_active", problem.n_cells)
        super().__init__(dtype=dt, shape=(problem.n_data, n_act))
        self.problem = problem
        self.check_inputs = bool(check_inputs)
        self.reason = ""
        self.n_matvec = 0
        self.n_rmatvec = 0
        survey = problem.survey
        #: rows of the full [gx; gz] vector that this operator returns (None: all 2m)
        self._rows = None if survey.components == COMPONENTS else survey.component_rows
        #: flat indices of the active cells (None: every cell)
        self._act = getattr(problem, "active_index", None)

    @property
    def reduced(self):
        """Whether this operator is ``R A P`` of a full operator (fewer components or inactive cells)."""
        return self._rows is not None or self._act is not None

    def _reduced_apply(self, a):
        if not (self._wrap and self.reduced):
            return self._apply(a)
        if self._act is not None:
            full = np.zeros(self.problem.n_cells, dtype=a.dtype)
            full[self._act] = a
            a = full
        y = self._apply(a)
        return y if self._rows is None else np.ascontiguousarray(y[self._rows])

    def _reduced_adjoint(self, u):
        if not (self._wrap and self.reduced):
            return self._apply_adjoint(u)
        if self._rows is not None:
            full = np.zeros(2 * self.problem.survey.m, dtype=u.dtype)
            full[self._rows] = u
            u = full
        x = self._apply_adjoint(u)
        return x if self._act is None else np.ascontiguousarray(x[self._act])

    def describe(self):
        """One line: the method, what the operator maps, and why ``auto`` picked it (``reason``)."""
        p = self.problem
        what = f"{'+'.join(p.survey.components)} at {p.survey.m} stations from {self.shape[1]:,} "
        what += "cells" if self._act is None else f"active cells of {p.n_cells:,}"
        return f"{self.method}: {what}" + (f"; {self.reason}" if self.reason else "")

    # --- counters ----------------------------------------------------------------
    def reset_counters(self):
        self.n_matvec = 0
        self.n_rmatvec = 0

    @property
    def counts(self):
        return {"n_matvec": self.n_matvec, "n_rmatvec": self.n_rmatvec}

    # --- checks ------------------------------------------------------------------
    def _vec(self, v, n, name):
        """Validate a vector: shape ``(n,)`` (or ``(n, 1)``, or ``(nz, nx)`` for a model), real, finite."""
        a = v if type(v) is np.ndarray else np.asarray(v)
        if a.dtype.kind not in "fiub":
            if a.dtype.kind == "c":
                raise ValueError(f"{name} must be real, got a {a.dtype} array")
            try:
                a = a.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be an array of numbers, got dtype {a.dtype}") from None
        if a.ndim != 1:
            if a.ndim == 2 and a.shape[1] == 1:
                a = a[:, 0]
            elif a.ndim == 2 and name == "v" and a.shape == self.problem.shape:
                a = a.ravel()
        if a.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {np.shape(v)}")
        if (a.dtype != self.dtype and a.dtype not in self._accepts) or not a.flags.c_contiguous:
            a = np.ascontiguousarray(a, dtype=self.dtype)
        if self.check_inputs and not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or inf")
        return a

    # --- public products -----------------------------------------------------------
    def matvec(self, v):
        """``A v`` in mGal for a model ``v`` (kg/m^3; flat or ``(nz, nx)``; the active cells only with a ground)."""
        a = self._vec(v, self.shape[1], "v")
        self.n_matvec += 1
        return self._reduced_apply(a)

    def rmatvec(self, u):
        """``A^T u`` for a data-space vector ``u`` (length ``n_data``)."""
        a = self._vec(u, self.shape[0], "u")
        self.n_rmatvec += 1
        return self._reduced_adjoint(a)

    def normal_matvec(self, v):
        """``A^T A v`` (one application of each; the normal matrix is never formed)."""
        a = self._vec(v, self.shape[1], "v")
        self.n_matvec += 1
        self.n_rmatvec += 1
        return self._reduced_adjoint(self._reduced_apply(a))

    # scipy hooks (LinearOperator.matvec is overridden above; these serve matmat / @)
    def _matvec(self, v):
        return self.matvec(np.ravel(v))

    def _rmatvec(self, u):
        return self.rmatvec(np.ravel(u))

    def _matmat(self, X):
        out = np.empty((self.shape[0], X.shape[1]), dtype=self.dtype)
        for j in range(X.shape[1]):
            out[:, j] = self.matvec(X[:, j])
        return out

    def _rmatmat(self, Y):
        out = np.empty((self.shape[1], Y.shape[1]), dtype=self.dtype)
        for j in range(Y.shape[1]):
            out[:, j] = self.rmatvec(Y[:, j])
        return out

    def _adjoint(self):
        return _Adjoint(self)

    def normal(self):
        """``A^T A`` as a square :class:`~gravbench.solvers.NormalOperator` (applied as A then A^T; never formed)."""
        return NormalOperator(self, dtype=self.dtype)

    def _numba_pack(self, w2):
        """The packed tuple of :mod:`gravbench._linalg.hooks` when products can run in numba, else None."""
        return None

    def todense(self):
        """The dense matrix ``A`` (built like :func:`gravbench.forward.sensitivity`; the operator's rows and columns)."""
        p = self.problem
        return _restrict(dense_matrix(p.grid, p.survey, p.kernel, dtype=self.dtype), self._rows, self._act)

    @property
    def nbytes(self):
        """Bytes held by the operator's precomputed data."""
        return 0

    def __repr__(self):
        return (f"<{type(self).__name__} {self.shape[0]}x{self.shape[1]} {self.dtype} "
                f"method={self.method} n_matvec={self.n_matvec} n_rmatvec={self.n_rmatvec}>")


def _restrict(A, rows, act):
    """``A[rows][:, act]`` (either may be None: all), C-contiguous."""
    if rows is not None:
        A = A[rows]
    if act is not None:
        A = A[:, act]
    return np.ascontiguousarray(A)


class _Adjoint(LinearOperator):
    def __init__(self, op):
        super().__init__(dtype=op.dtype, shape=(op.shape[1], op.shape[0]))
        self.op = op

    def _matvec(self, u):
        return self.op.rmatvec(np.ravel(u))

    def _rmatvec(self, v):
        return self.op.matvec(np.ravel(v))


#: Rough serial cost of one entry of a BLAS gemv (memory bound), seconds.
COST_GEMV = 0.6e-9
#: Below this many entries OpenBLAS runs gemv on one thread anyway (no need to ask).
_BLAS_SINGLE_BELOW = 250_000


class DenseOperator(GravityOperator):
    """The stored sensitivity matrix; products are BLAS calls.

    ``A`` is available as the attribute ``A`` (C-contiguous).

    With ``parallel="auto"`` products on matrices whose gemv takes less than
    :data:`PARALLEL_MIN_SECONDS` run BLAS on a single thread (through
    threadpoolctl, when installed): OpenBLAS's threaded gemv on mid-sized
    matrices was up to 100x slower than one thread when other processes shared
    the cores, and no faster on an idle machine (reports/forward.md).
    """

    method = "dense"
    _wrap = False   # A holds only the survey's rows and the active columns

    def __init__(self, problem, dtype=np.float64, parallel="auto", A=None, check_inputs=True):
        super().__init__(problem, dtype, check_inputs)
        if A is None:
            A = dense_matrix(problem.grid, problem.survey, problem.kernel, parallel=parallel, dtype=self.dtype)
            A = _restrict(A, self._rows, self._act)
        A = np.asarray(A)
        if A.shape != self.shape:
            raise ValueError(f"A must have shape {self.shape}, got {A.shape}")
        self.A = np.ascontiguousarray(A, dtype=self.dtype)
        threaded = resolve_parallel(parallel, self.A.size * COST_GEMV)
        #: whether BLAS may use its threads for the products (the resolved ``parallel``)
        self.parallel = threaded
        self._blas = single_thread_blas([] if threaded or self.A.size < _BLAS_SINGLE_BELOW else None)

    def _apply(self, v):
        with self._blas:
            return self.A @ v

    def _apply_adjoint(self, u):
        with self._blas:
            return u @ self.A

    def normal_matvec(self, v):
        """``A^T A v`` (one application of each; the normal matrix is never formed)."""
        a = self._vec(v, self.shape[1], "v")
        self.n_matvec += 1
        self.n_rmatvec += 1
        A = self.A
        with self._blas:
            return (A @ a) @ A

    def _block(self, X, n, name):
        """Validate a block of vectors like :meth:`_vec` (same messages as every other operator)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] != n:
            raise ValueError(f"{name} must have shape ({n}, k), got {X.shape}")
        if X.dtype.kind not in "fiub":
            raise ValueError(f"{name} must be real numbers, got dtype {X.dtype}")
        if self.check_inputs and not np.isfinite(X).all():
            raise ValueError(f"{name} contains NaN or inf")
        return X

    def _matmat(self, X):
        X = self._block(X, self.shape[1], "v")
        self.n_matvec += X.shape[1]
        with self._blas:
            return self.A @ X

    def _rmatmat(self, Y):
        Y = self._block(Y, self.shape[0], "u")
        self.n_rmatvec += Y.shape[1]
        with self._blas:
            return self.A.T @ Y

    def todense(self):
        return self.A

    def _numba_pack(self, w2):
        return pack_matrix(self.A, MODE_DENSE, w2) if self.dtype == np.float64 else None

    @property
    def nbytes(self):
        return self.A.nbytes


class MatFreeOperator(GravityOperator):
    """Kernel evaluated on the fly at every product: memory O(m + nx) beyond the vectors.

    Works for any survey and non-uniform grids; costs one ``log`` and one
    ``atan2`` per (station, cell corner) per product.
    """

    method = "matfree"

    def __init__(self, problem, dtype=np.float64, parallel="auto", check_inputs=True):
        super().__init__(problem, dtype, check_inputs)
        self._kid = _KERNEL_ID[problem.kernel]
        self._xe = np.ascontiguousarray(problem.grid.x_edges)
        self._ze = np.ascontiguousarray(problem.grid.z_edges)
        self._sx = np.ascontiguousarray(problem.survey.x)
        self._sz = np.ascontiguousarray(problem.survey.z)
        grid = problem.grid
        corners = problem.survey.m * (grid.nx + 1) * (grid.nz + 1)
        parallel = resolve_parallel(parallel, corners * (COST_CORNER if self._kid == 0 else COST_CORNER / 4))
        #: the resolved choice (bool): the parallel or the serial numba build
        self.parallel = parallel
        self._mv = _assemble.matfree_matvec_par if parallel else _assemble.matfree_matvec_ser
        self._rmv = _assemble.matfree_rmatvec_par if parallel else _assemble.matfree_rmatvec_ser
        nz = problem.grid.nz
        self._nchunks = max(1, min(nz, 4 * _workers())) if parallel else 1

    def _numba_pack(self, w2):
        if self.dtype != np.float64 or self.reduced:   # R A P (components, active cells) runs in Python
            return None
        return (MODE_MATFREE, EMPTY2, self._xe, self._ze, self._sx, self._sz, int(self._kid), float(TWO_G_MGAL),
                int(self._nchunks), bool(self.parallel), w2)

    def _apply(self, v):
        out = np.empty(2 * self.problem.survey.m)   # the full [gx; gz] (the base class keeps the survey's rows)
        self._mv(self._xe, self._ze, self._sx, self._sz, self._kid, TWO_G_MGAL, v.astype(np.float64, copy=False),
                 out)
        return out.astype(self.dtype, copy=False)

    def _apply_adjoint(self, u):
        out = np.empty(self.problem.n_cells)        # every cell (the base class keeps the active ones)
        self._rmv(self._xe, self._ze, self._sx, self._sz, self._kid, TWO_G_MGAL, u.astype(np.float64, copy=False),
                  self._nchunks, out)
        return out.astype(self.dtype, copy=False)


#: ``spectra="auto"`` keeps the FFT operator's spectra in complex128 (float64 operators) up to this many
#: bytes and in complex64 above it (reports/scaling.md measures the accuracy: about 2e-8 relative in the products).
SPECTRA_AUTO_MAX_BYTES = 1 << 30
#: Workspace per chunk of depth rows in the FFT products, bytes (the model's spectrum is never held whole).
FFT_CHUNK_BYTES = 16 << 20
SPECTRA = ("auto", "complex128", "complex64")


class FFTOperator(GravityOperator):
    """Per-depth-row convolutions via FFT, for regular surveys.

    The survey must have one height and station spacing ``dx / k`` (integer
    ``k``) over uniform columns (``Survey.regular`` does). Stations are split
    into ``k`` phases; each (component, phase, depth row) is a Toeplitz block
    whose ``nx + D`` distinct values are stored as an rFFT of length
    ``nfft >= nx + D`` (``D = ceil(m/k) - 1``). ``A v`` costs one rFFT per
    model row, a contraction and ``2k`` short inverse FFTs; ``A^T u`` the
    reverse. O(n^2 log n) time and O(n^2) memory for an n x n grid.

    Parameters
    ----------
    problem : gravbench.Problem
        A problem with a regular survey.
    dtype : float64 or float32
        Precision of the products (vectors, FFTs and accumulation).
    parallel : bool or "auto"
        See :func:`make_operator`.
    check_inputs : bool
        Validate vectors on every product.
    spectra : {"auto", "complex128", "complex64"}
        Storage of the kernel spectra. ``auto``: complex64 for a float32
        operator; for float64, complex128 while the spectra take at most
        :data:`SPECTRA_AUTO_MAX_BYTES`, complex64 above (single-precision
        spectra with double-precision accumulation: about 2e-8 relative error
        in the products, reports/scaling.md). ``op.spectra`` is the choice.

    Notes
    -----
    Memory. When the survey is mirror-symmetric about each cell (phase ``r``
    at ``x_left + (r + 1/2) dx / k``, as ``Survey.regular``, and ``D = nx -
    1``), the table of phase ``k - 1 - r`` is the mirror image of phase
    ``r``'s: ``h'[e] = s h[2D - e]`` with ``s = +1`` for gz (even) and ``-1``
    for gx (odd), so its spectrum is ``s w^{2D f} conj(H[f])`` with ``w =
    exp(-2 pi i / nfft)`` and is not stored; a self-mirrored phase (the middle
    one for odd ``k``) has ``w^{-D f} H[f]`` real (gz) or imaginary (gx) and is
    stored as a real array. For the paper's ``k = 3`` this stores 2 complex
    and 2 real spectra per depth row instead of 6 complex ones (half the
    memory, and a third less table to compute at setup). The products run in
    chunks of depth rows (:data:`FFT_CHUNK_BYTES`), so beyond the spectra the
    workspace is a few tens of MB and the output vector.
    """

    method = "fft"
    # float32 models (e.g. CGLS's float32 vectors) are converted chunk by chunk, not copied whole
    _accepts = (np.dtype(np.float32), np.dtype(np.float64))

    def __init__(self, problem, dtype=np.float64, parallel="auto", check_inputs=True, spectra="auto"):
        super().__init__(problem, dtype, check_inputs)
        if spectra not in SPECTRA:
            raise ValueError(f"spectra must be one of {SPECTRA}, got {spectra!r}")
        grid, survey = problem.grid, problem.survey
        tp = _Toeplitz(grid, survey, problem.kernel)
        nx, nz, m = grid.nx, grid.nz, survey.m
        k, D, L = tp.k, tp.D, tp.L
        self.k, self.D = k, D
        self.nfft = nfft = scipy.fft.next_fast_len(L, real=True)
        F = nfft // 2 + 1
        single = self.dtype == np.float32
        self._fdt = np.float32 if single else np.float64
        self._cdt = np.complex64 if single else np.complex128
        # mirror symmetry of the phases (see Notes)
        xs = np.asarray(tp.xs, dtype=np.float64)
        x_left, dx = float(grid.x_edges[0]), float(grid.dx)
        sym = D == nx - 1 and bool(np.all(np.abs(xs + xs[::-1] - 2.0 * x_left - dx) <= 1e-9 * dx))
        #: whether the mirrored phases' spectra are derived instead of stored
        self.symmetric = sym
        computed = [r for r in range(k) if not sym or r <= k - 1 - r]
        self._crows = [(c, r) for c in range(2) for r in computed if not (sym and r == k - 1 - r)]
        self._rrows = [(c, r) for c in range(2) for r in computed if sym and r == k - 1 - r]
        nc, nr = len(self._crows), len(self._rrows)
        if spectra == "auto":
            full = nz * F * (16 * nc + 8 * nr)
            spectra = "complex64" if single or full > SPECTRA_AUTO_MAX_BYTES else "complex128"
        #: the spectra's storage: ``"complex128"`` or ``"complex64"``
        self.spectra = spectra
        hc = np.complex128 if spectra == "complex128" else np.complex64
        hr = np.float64 if spectra == "complex128" else np.float32
        work = (2 * k * nz * F + nz * nfft) * COST_MAC
        par = resolve_parallel(parallel, work)
        self.workers = _workers() if par else 1
        # per-frequency phase factors: w1 = w^{D f}, w2 = w^{2 D f}, w = exp(-2 pi i / nfft) (exact integer phases)
        f = np.arange(F, dtype=np.int64)
        self._w1 = np.exp(-2j * np.pi * ((D * f) % nfft) / nfft)
        self._w2 = np.exp(-2j * np.pi * ((2 * D * f) % nfft) / nfft)
        # Hc[kk, i, f]: complex spectra of the rows self._crows; Hr[kk, i, f]: real spectra of self._rrows.
        # Built in chunks of depth rows so that peak memory stays near the size of the spectra.
        self.Hc = np.empty((nz, nc, F), dtype=hc)
        self.Hr = np.empty((nz, nr, F), dtype=hr)
        npz = len(computed)
        rows = int(max(1, min(nz, (32 << 20) // (2 * npz * nfft * 8))))
        buf = np.zeros((2, npz, rows, nfft))
        pidx = {r: i for i, r in enumerate(computed)}
        rot = np.conj(self._w1)
        for k0 in range(0, nz, rows):
            k1 = min(nz, k0 + rows)
            tp.rows(k0, k1, buf, parallel, phases=computed)
            T = scipy.fft.rfft(buf[:, :, : k1 - k0], axis=-1, workers=self.workers)
            for i, (c, r) in enumerate(self._crows):
                self.Hc[k0:k1, i] = T[c, pidx[r]]
            for i, (c, r) in enumerate(self._rrows):
                X = T[c, pidx[r]] * rot
                self.Hr[k0:k1, i] = X.imag if c == 0 else X.real
            del T
        del buf
        s = np.arange(m)
        self._phase = s % k
        self._pos = D - s // k
        self._chunk = int(max(1, min(nz, FFT_CHUNK_BYTES // (F * np.dtype(self._cdt).itemsize))))
        #: the resolved choice (bool): parallel numba contractions and FFT workers, or serial
        self.parallel = par
        self._fwd = _assemble.fft_contract_fwd_par if par else _assemble.fft_contract_fwd_ser
        self._adj = _assemble.fft_contract_adj_par if par else _assemble.fft_contract_adj_ser
        self._nblocks = max(1, min(F // 16, 8 * self.workers)) if par else 1

    def _views(self, k0, k1):
        hc = self.Hc[k0:k1]
        return hc.view(hc.real.dtype), self.Hr[k0:k1]

    def _apply(self, v):
        grid = self.problem.grid
        nz, nx = grid.nz, grid.nx
        k, m = self.k, self.problem.survey.m
        F = self.Hc.shape[-1]
        cdt, rdt = self._cdt, self._fdt
        X = v.reshape(nz, nx)
        P = np.zeros((len(self._crows), F), dtype=cdt)
        Q = np.zeros_like(P)
        S = np.zeros((len(self._rrows), F), dtype=cdt)
        for k0 in range(0, nz, self._chunk):
            k1 = min(nz, k0 + self._chunk)
            V = scipy.fft.rfft(X[k0:k1].astype(rdt, copy=False), n=self.nfft, axis=-1, workers=self.workers)
            V = np.ascontiguousarray(V, dtype=cdt)
            hc, hr = self._views(k0, k1)
            self._fwd(hc, hr, V.view(rdt), self._nblocks, P.view(rdt), Q.view(rdt), S.view(rdt))
        Y = np.empty((2, k, F), dtype=cdt)
        for i, (c, r) in enumerate(self._crows):
            Y[c, r] = P[i]
            if self.symmetric and k - 1 - r != r:
                sgn = -1.0 if c == 0 else 1.0
                Y[c, k - 1 - r] = sgn * self._w2 * np.conj(Q[i])
        for i, (c, r) in enumerate(self._rrows):
            Y[c, r] = (1j * self._w1 if c == 0 else self._w1) * S[i]
        y = scipy.fft.irfft(Y, n=self.nfft, axis=-1, workers=self.workers)
        out = np.empty(2 * m, dtype=self.dtype)
        out[:m] = y[0, self._phase, self._pos]
        out[m:] = y[1, self._phase, self._pos]
        return out

    def _apply_adjoint(self, u, out=None):
        grid = self.problem.grid
        nz, nx = grid.nz, grid.nx
        k, m = self.k, self.problem.survey.m
        cdt, rdt = self._cdt, self._fdt
        w = np.zeros((2, k, self.nfft), dtype=rdt)
        u = u.astype(rdt, copy=False)
        w[0, self._phase, self._pos] = u[:m]
        w[1, self._phase, self._pos] = u[m:]
        W = scipy.fft.rfft(w, axis=-1, workers=self.workers)
        nc = len(self._crows)
        A = np.empty((nc, W.shape[-1]), dtype=cdt)
        B = np.zeros_like(A)
        for i, (c, r) in enumerate(self._crows):
            A[i] = W[c, r]
            if self.symmetric and k - 1 - r != r:
                sgn = -1.0 if c == 0 else 1.0
                B[i] = sgn * np.conj(self._w2) * W[c, k - 1 - r]
        E = np.empty((len(self._rrows), W.shape[-1]), dtype=cdt)
        for i, (c, r) in enumerate(self._rrows):
            E[i] = np.conj(1j * self._w1 if c == 0 else self._w1) * W[c, r]
        AP = A + B
        AM = A - B
        if out is None:
            out = np.empty(nz * nx, dtype=self.dtype)
        Xo = out.reshape(nz, nx)
        for k0 in range(0, nz, self._chunk):
            k1 = min(nz, k0 + self._chunk)
            Z = np.empty((k1 - k0, W.shape[-1]), dtype=cdt)
            hc, hr = self._views(k0, k1)
            self._adj(hc, hr, AP.view(rdt), AM.view(rdt), E.view(rdt), Z.view(rdt))
            Xo[k0:k1] = scipy.fft.irfft(Z, n=self.nfft, axis=-1, workers=self.workers)[:, :nx]
        return out

    def rmatvec_into(self, u, out):
        """``out[:] = A^T u`` without allocating a model-size result.

        ``out``: flat, C-contiguous, float64 or float32 (computed in the operator's
        precision, rounded as each chunk of depth rows is written).
        """
        a = self._vec(u, self.shape[0], "u")
        if not (isinstance(out, np.ndarray) and out.shape == (self.shape[1],) and out.dtype in self._accepts
                and out.flags.c_contiguous):
            raise ValueError(f"out must be a C-contiguous float64 or float32 array of shape ({self.shape[1]},), "
                             f"got {type(out).__name__} {getattr(out, 'dtype', '')} {np.shape(out)}")
        self.n_rmatvec += 1
        if self._wrap and self.reduced:   # R A P (components, active cells): through the full adjoint
            out[:] = self._reduced_adjoint(a)
        else:
            self._apply_adjoint(a, out)
        return out

    @property
    def nbytes(self):
        return self.Hc.nbytes + self.Hr.nbytes


#: ``auto`` uses the dense operator up to this many matrix entries when the
#: survey also allows FFT. Measured (reports/forward.md, "auto: dense vs FFT
#: crossover"): a single-threaded gemv pair beats the FFT product below about
#: 200,000-300,000 entries (n ~ 32 in the paper's setup: 6 n^3 entries), the FFT
#: product wins above it (2.5x at n = 50, 20x at n = 100) and builds faster too.
DENSE_AUTO_MAX_ENTRIES = 250_000


def _is_problem(problem):
    """Whether ``problem`` is a forward problem: a :class:`Grid`, a :class:`Survey` and a known kernel.

    Checked by what the operators use rather than by class, because
    :class:`gravbench.Problem` lives in the layer above (:mod:`gravbench.problem`).
    """
    return (isinstance(getattr(problem, "grid", None), Grid) and isinstance(getattr(problem, "survey", None), Survey)
            and getattr(problem, "kernel", None) in _KERNEL_ID)


def make_operator(problem, method="auto", *, dtype=np.float64, parallel="auto", check_inputs=True):
    """Build the forward operator of ``problem``.

    Parameters
    ----------
    problem : gravbench.Problem
    method : {"auto", "dense", "matfree", "fft"}
        ``auto`` picks ``dense`` for small problems (fewer than
        ``DENSE_AUTO_MAX_ENTRIES`` entries in A, or irregular surveys whose A
        fits in a quarter of the available memory), ``fft`` for larger regular
        surveys and ``matfree`` otherwise; ``op.reason`` says why.
    dtype : float64 or float32
    parallel : bool or "auto"
        Numba-parallel loops and multi-threaded FFTs (``True``), serial (``False``), or
        parallel only where the work pays for the threads (``"auto"``, see
        :func:`resolve_parallel`).
    check_inputs : bool
        Validate vectors (finite, right shape) on every product. ``False``
        times the numerics only.

    Returns
    -------
    GravityOperator
        ``shape = (2m, nz*nx)``, products in mGal per kg/m^3.

    Examples
    --------
    >>> import gravbench as gb
    >>> op = make_operator(gb.Problem.paper(n=60))
    >>> op.method, op.shape
    ('fft', (360, 3600))
    >>> make_operator(gb.Problem.paper(n=10)).method
    'dense'
    """
    if not _is_problem(problem):
        raise ValueError(f"problem must be a gravbench.Problem, got {type(problem).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    kw = dict(dtype=dtype, parallel=parallel, check_inputs=check_inputs)
    regular = problem.per_cell is not None
    if method == "dense":
        return DenseOperator(problem, **kw)
    if method == "matfree":
        return MatFreeOperator(problem, **kw)
    if method == "fft":
        if not regular:
            raise ValueError(
                f"method='fft' needs a regular survey (one height, station spacing dx/k over uniform columns), "
                f"but {irregular_reason(problem)}; use method='dense' or 'matfree' for this survey"
            )
        return FFTOperator(problem, **kw)
    entries = problem.n_data * getattr(problem, "n_active", problem.n_cells)
    nbytes = entries * np.dtype(dtype).itemsize
    avail = _available_memory()
    extra = _reduction_note(problem)
    if regular and entries <= DENSE_AUTO_MAX_ENTRIES and nbytes < avail / 4:
        op = DenseOperator(problem, **kw)
        op.reason = f"auto: A has {entries:,} entries (<= {DENSE_AUTO_MAX_ENTRIES:,}), a BLAS product is fastest"
    elif regular:
        op = FFTOperator(problem, **kw)
        op.reason = f"auto: regular survey and A would have {entries:,} entries: FFT is fastest"
    elif nbytes < avail / 4:
        op = DenseOperator(problem, **kw)
        op.reason = (f"auto: irregular survey, no FFT ({irregular_reason(problem)}); A fits in memory "
                     f"({nbytes / 2**20:,.1f} MiB): dense")
    else:
        op = MatFreeOperator(problem, **kw)
        op.reason = (f"auto: irregular survey, no FFT ({irregular_reason(problem)}) and A "
                     f"({nbytes / 2**30:,.1f} GiB) exceeds a quarter of the available memory: matrix-free")
    op.reason += extra
    return op


def irregular_reason(problem):
    """Why the survey of ``problem`` lacks the Toeplitz structure the FFT operator needs ('' when it has it).

    The FFT operator needs uniform grid columns, every station at one height
    (translation invariance along x of each depth row, station side included)
    and station spacing ``dx / k`` for an integer ``k``.
    """
    grid, survey = problem.grid, problem.survey
    if survey.regular_spacing(grid) is not None:
        return ""
    if not grid.uniform_x:
        return "the grid's columns are not uniform"
    if np.ptp(survey.z) > 1e-9 * max(1.0, abs(survey.z[0])):
        return (f"the stations are at varying heights (z from {survey.z.min():g} to {survey.z.max():g} m, e.g. "
                f"following topography)")
    return "the station spacing is not the cell width dx divided by an integer (or the stations are unsorted)"


def _reduction_note(problem):
    survey = problem.survey
    out = ""
    if survey.components != COMPONENTS:
        out += f"; components {'+'.join(survey.components)} (rows of the full [gx; gz] operator)"
    idx = getattr(problem, "active_index", None)
    if idx is not None:
        out += f"; {idx.size:,} of {problem.n_cells:,} cells active below the ground (A P, inactive cells held at 0)"
    return out


def dot_test(op, rng=None, n_trials=3):
    """Adjoint test: the largest ``|<A x, y> - <x, A^T y>| / (|<A x, y>| + tiny)`` over random vectors.

    Returns the worst relative error (pylops ``dottest`` style); a correct
    operator gives about 1e-15 in float64.
    """
    rng = np.random.default_rng(rng)
    worst = 0.0
    for _ in range(n_trials):
        x = rng.standard_normal(op.shape[1])
        y = rng.standard_normal(op.shape[0])
        a = float(np.dot(op.matvec(x), y))
        b = float(np.dot(x, op.rmatvec(y)))
        worst = max(worst, abs(a - b) / max(abs(a), abs(b), 1e-300))
    return worst
