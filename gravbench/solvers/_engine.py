"""Shared machinery: packed operators, operator hooks, compiled/Python twins, validation.

Every iterative method is written ONCE as a plain function in numpy style
(``np.dot``, slicing, in-place updates) that applies the operator only through
three hooks:

* ``op_A(P, v, out)``: ``out = A v`` (rectangular forward operator),
* ``op_At(P, u, out)``: ``out = A^T u``,
* ``op_S(P, v, out, tmp)``: ``out = S v`` for a square system ``S`` (a matrix,
  or ``A^T A`` applied as ``A`` then ``A^T`` through ``tmp``; never formed).

:func:`twin` compiles that function with ``njit(cache=True)`` (``P`` is then
a packed tuple and the hooks dispatch to a BLAS gemv or to the matrix-free
numba kernels of :mod:`gravbench.forward._assemble`, so the whole iteration
runs in compiled code), and also builds a pure-Python twin from the same code
object in which the hooks call ``P.matvec`` / ``P.rmatvec`` of any
``LinearOperator`` (FFT operators, SciPy sparse matrices, float32 operators,
user callbacks). One algorithm, two drivers, identical arithmetic.

The packed tuple ``P`` is ``(mode, M, xe, ze, sx, sz, kid, factor, nchunks, parallel, w2)``:
mode 0 = square matrix ``M``; 1 = dense rectangular ``A = M``; 2 = matrix-free
gravity operator (``M`` unused); ``w2`` (data-space weights squared, or a
length-1 dummy) turns ``op_S`` into ``A^T diag(w2) A``.
"""

from __future__ import annotations

import time
import types

import numpy as np
from numba import njit

from ..forward import _assemble as _asm
from ._result import CONVERGED_CODES, STATUS, Result


def _ensure_parallel_runtime():
    """Start numba's threading layer before any cached kernel is loaded.

    The compiled loops link in the parallel matrix-free kernels; a cached loop
    loaded into a fresh process before any ``parallel=True`` function was
    compiled or called fails with ``Symbol not found: allocate_sched`` (or
    crashes). Launching the threads first makes those symbols available.
    """
    try:
        from numba.np.ufunc.parallel import _launch_threads

        _launch_threads()
    except Exception:  # pragma: no cover - a numba without this hook compiles instead of crashing
        pass


_ensure_parallel_runtime()

MODE_MATRIX = 0
MODE_DENSE = 1
MODE_MATFREE = 2

_EMPTY1 = np.zeros(1)
_EMPTY2 = np.zeros((1, 1))


# ----------------------------------------------------------------------------------
# compiled hooks
# ----------------------------------------------------------------------------------
@njit(cache=True)
def op_A(P, v, out):
    """out = A v."""
    if P[0] == MODE_MATFREE:
        if P[9]:
            _asm.matfree_matvec_par(P[2], P[3], P[4], P[5], P[6], P[7], v, out)
        else:
            _asm.matfree_matvec_ser(P[2], P[3], P[4], P[5], P[6], P[7], v, out)
    else:
        np.dot(P[1], v, out)


@njit(cache=True)
def op_At(P, u, out):
    """out = A^T u."""
    if P[0] == MODE_MATFREE:
        if P[9]:
            _asm.matfree_rmatvec_par(P[2], P[3], P[4], P[5], P[6], P[7], u, P[8], out)
        else:
            _asm.matfree_rmatvec_ser(P[2], P[3], P[4], P[5], P[6], P[7], u, P[8], out)
    else:
        np.dot(u, P[1], out)


@njit(cache=True)
def op_S(P, v, out, tmp):
    """out = S v: the matrix itself (mode 0) or A^T (A v) (modes 1, 2)."""
    if P[0] == MODE_MATRIX:
        np.dot(P[1], v, out)
    else:
        op_A(P, v, tmp)
        if P[10].size == tmp.size:
            tmp *= P[10]
        op_At(P, tmp, out)


# ----------------------------------------------------------------------------------
# Python hooks (same names, substituted into the twin's globals)
# ----------------------------------------------------------------------------------
def _py_op_A(P, v, out):
    out[:] = P.matvec(v)


def _py_op_At(P, u, out):
    into = getattr(P, "rmatvec_into", None)
    if into is not None and out.flags.c_contiguous:
        into(u, out)             # no model-size temporary (the FFT operator writes in place)
    else:
        out[:] = P.rmatvec(u)


def _py_op_S(P, v, out, tmp):
    out[:] = np.ravel(P.matvec(v))


_PY_HOOKS = {"op_A": _py_op_A, "op_At": _py_op_At, "op_S": _py_op_S}


class Twin:
    """A compiled kernel and its pure-Python twin built from the same code."""

    def __init__(self, impl):
        self.impl = impl
        self.jit = njit(cache=True)(impl)
        self._py = None

    @property
    def py(self):
        """The Python twin (built on first use, so helpers defined later in the module are seen)."""
        if self._py is None:
            impl = self.impl
            g = dict(impl.__globals__)
            g.update(_PY_HOOKS)
            self._py = types.FunctionType(impl.__code__, g, impl.__name__ + "_py", impl.__defaults__,
                                          impl.__closure__)
        return self._py

    def __call__(self, compiled, *args):
        return (self.jit if compiled else self.py)(*args)


def twin(impl):
    """Decorator: ``Twin(impl)``."""
    return Twin(impl)


def hooked(impl):
    """Decorator for a loop helper that applies the operator (calls ``op_A`` / ``op_At`` / ``op_S``).

    Returns the ``njit(cache=True)`` build, which the compiled loops call; its Python
    twin (hooks substituted, as in :class:`Twin`) joins the hooks under the same name,
    so the Python twin of a loop calling the helper applies ``P.matvec`` / ``P.rmatvec``.
    """
    t = Twin(impl)
    _PY_HOOKS[impl.__name__] = t.py
    return t.jit


# ----------------------------------------------------------------------------------
# packing operators
# ----------------------------------------------------------------------------------
def _gravity_classes():
    from ..forward.operators import DenseOperator, GravityOperator, MatFreeOperator

    return GravityOperator, DenseOperator, MatFreeOperator


def pack_gravity(op, w2=None):
    """Packed tuple for an operator whose products can run in numba (gravbench dense / matrix-free
    float64 operators, 2D float64 ndarrays taken as ``A``), else None. ``w2``: data weights squared."""
    from ..constants import TWO_G_MGAL

    w2 = _EMPTY1 if w2 is None else np.ascontiguousarray(w2, dtype=np.float64)
    GravityOperator, DenseOperator, MatFreeOperator = _gravity_classes()
    if isinstance(op, np.ndarray) and op.ndim == 2 and op.dtype == np.float64:
        return _pack_dense(op, w2)
    if isinstance(op, DenseOperator) and op.A.dtype == np.float64:
        return _pack_dense(op.A, w2, getattr(op, "parallel", None))
    if isinstance(op, MatFreeOperator) and op.dtype == np.float64:
        return (MODE_MATFREE, _EMPTY2, op._xe, op._ze, op._sx, op._sz, int(op._kid), float(TWO_G_MGAL),
                int(op._nchunks), bool(op.parallel), w2)
    return None


def _pack_dense(A, w2, parallel=None):
    """Dense A: products are BLAS gemv calls from numba (one BLAS thread, see :class:`_OneBlasThread`)."""
    return pack_matrix(A, MODE_DENSE, w2)


_BLAS_LIBS = []


class _OneBlasThread:
    """Context: every loaded BLAS on one thread, restored on exit (threadpoolctl; a no-op without it).

    The loops' vector operations (``np.dot`` of two vectors, small gemv) never gain
    from BLAS threads, and on a shared machine OpenBLAS's threaded ``ddot`` on
    40,000 entries took 15 ms instead of 4 us (measured here, load average 9 on
    2 cores). Parallelism inside the loops comes from numba instead.
    """

    __slots__ = ("saved",)

    def __enter__(self):
        if not _BLAS_LIBS:
            try:
                from threadpoolctl import ThreadpoolController

                _BLAS_LIBS.append([c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"])
            except Exception:  # noqa: BLE001 - optional dependency
                _BLAS_LIBS.append([])
        libs = _BLAS_LIBS[0]
        self.saved = [lib.get_num_threads() for lib in libs]
        for lib in libs:
            lib.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        for lib, n in zip(_BLAS_LIBS[0], self.saved):
            lib.set_num_threads(n)
        return False


def blas_context(op=None):
    """The BLAS thread limit under which every solver / refiner loop runs (one thread)."""
    return _OneBlasThread()


def pack_matrix(M, mode=MODE_MATRIX, w2=None):
    w2 = _EMPTY1 if w2 is None else w2
    return (mode, np.ascontiguousarray(M, dtype=np.float64), _EMPTY1, _EMPTY1, _EMPTY1, _EMPTY1, 0, 0.0, 1, False,
            w2)


class _NormalBase:
    pass


def NormalOperator(op, w2=None):
    """``A^T A`` (or ``A^T diag(w2) A``) of a forward operator as a square ``LinearOperator``.

    Never formed: each product is one ``A`` and one ``A^T`` application. Solvers
    recognise it (and ``op.normal()``) and run the whole iteration in numba for
    dense and matrix-free float64 gravbench operators.

    Parameters
    ----------
    op : LinearOperator or ndarray, shape (N, n)
        The forward operator ``A``.
    w2 : array_like, shape (N,), optional
        Data weights squared (``1 / sigma^2``, mGal^-2).
    """
    from scipy.sparse.linalg import LinearOperator, aslinearoperator

    class _Normal(LinearOperator, _NormalBase):
        def __init__(self, op, w2):
            n = op.shape[1]
            super().__init__(dtype=np.dtype(np.float64), shape=(n, n))
            self.op = op
            self.w2 = None if w2 is None else np.ascontiguousarray(w2, dtype=np.float64)
            self._L = op if hasattr(op, "rmatvec") else aslinearoperator(op)

        def _matvec(self, v):
            v = np.ravel(v)
            if self.w2 is None and hasattr(self.op, "normal_matvec"):
                return self.op.normal_matvec(v)
            u = self._L.matvec(v)
            if self.w2 is not None:
                u = u * self.w2
            return self._L.rmatvec(u)

        def _rmatvec(self, v):
            return self._matvec(v)

        def __repr__(self):
            return f"<NormalOperator of {self.op!r}>"

    if w2 is not None and np.shape(w2) != (op.shape[0],):
        raise ValueError(f"w2 must have shape ({op.shape[0]},), got {np.shape(w2)}")
    return _Normal(op, w2)


def normal_of(A):
    """``(op, w2)`` if ``A`` is ``NormalOperator(op, w2)`` or ``op.normal()`` of a gravbench operator, else None."""
    if isinstance(A, _NormalBase):
        return A.op, A.w2
    impl = getattr(A, "_CustomLinearOperator__matvec_impl", None)
    owner = getattr(impl, "__self__", None)
    GravityOperator = _gravity_classes()[0]
    if isinstance(owner, GravityOperator) and getattr(impl, "__name__", "") == "normal_matvec":
        return owner, None
    return None


class Square:
    """A square system prepared for a solver: packed tuple or Python operator, counters."""

    def __init__(self, A, name="A"):
        from scipy.sparse.linalg import LinearOperator, aslinearoperator

        self.grav = None        # operator whose counters we update (normal equations)
        self.normal = False
        self.compiled = False
        self.P = None
        self.tmp = _EMPTY1
        self.ctx = blas_context(None)
        GravityOperator = _gravity_classes()[0]
        if isinstance(A, GravityOperator):
            raise ValueError(f"{name} must be square, got a {A.shape[0]}x{A.shape[1]} forward operator; "
                             f"pass op.normal() (or gravbench.solvers.NormalOperator(op)) for A^T A x = A^T b")
        nrm = normal_of(A)
        if nrm is not None:
            op, w2 = nrm
            self.grav = op
            self.normal = True
            self.n = op.shape[1]
            P = pack_gravity(op, w2)
            if P is not None:
                self.P, self.compiled = P, True
                self.tmp = np.empty(op.shape[0])
                self.ctx = blas_context(op)
            else:
                self.P = A
            return
        if isinstance(A, np.ndarray):
            M = A
            if M.ndim != 2 or M.shape[0] != M.shape[1]:
                raise ValueError(f"{name} must be a square matrix, got shape {M.shape}")
            if not np.issubdtype(M.dtype, np.number) or np.iscomplexobj(M):
                raise ValueError(f"{name} must be a real floating matrix, got dtype {M.dtype}")
            if not np.all(np.isfinite(M)):
                raise ValueError(f"{name} contains NaN or inf")
            self.n = M.shape[0]
            self.P, self.compiled = pack_matrix(M.astype(np.float64, copy=False)), True
            return
        try:
            L = A if isinstance(A, LinearOperator) else aslinearoperator(A)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{name} must be an ndarray, a sparse matrix or a LinearOperator, got "
                             f"{type(A).__name__}") from e
        if L.shape[0] != L.shape[1]:
            raise ValueError(f"{name} must be square, got shape {L.shape}")
        self.n = L.shape[0]
        self.P = L

    @property
    def engine(self):
        return "numba" if self.compiled else "python"

    def account(self, nmv):
        """Counts for the Result; in compiled mode push them into the gravbench operator's counters."""
        if self.normal:
            if self.compiled and hasattr(self.grav, "n_matvec"):
                self.grav.n_matvec += int(nmv)
                self.grav.n_rmatvec += int(nmv)
            return int(nmv), int(nmv)
        return int(nmv), 0


# ----------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------
def check_vector(name, v, n, *, allow_2d=None):
    """Flat finite float64 copy of ``v`` with ``n`` entries (``allow_2d``: an accepted 2D shape)."""
    a = np.asarray(v)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise ValueError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    if a.ndim == 2 and a.shape[1] == 1 and a.shape[0] == n:
        a = a[:, 0]
    elif allow_2d is not None and a.shape == tuple(allow_2d):
        a = a.ravel()
    if a.shape != (n,):
        extra = f" or {tuple(allow_2d)}" if allow_2d is not None else ""
        raise ValueError(f"{name} must have shape ({n},){extra}, got {np.shape(v)}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return np.array(a, dtype=np.float64, copy=True)


def check_tol(name, value, *, positive=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'} and finite, got {value!r}")
    return v


def check_int(name, value, default, *, minimum=1):
    if value is None:
        return int(default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum} or None, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_callback(callback):
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable or None, got {type(callback).__name__}")
    return callback


def make_result(x, code, niter, hist, nh, n_matvec, n_rmatvec, t0, info):
    code = int(code)
    return Result(x=x, converged=code in CONVERGED_CODES, niter=int(niter), residuals=np.array(hist[:nh]),
                  n_matvec=int(n_matvec), n_rmatvec=int(n_rmatvec), seconds=time.perf_counter() - t0,
                  status=STATUS[code], info=info)


# ----------------------------------------------------------------------------------
# square-system driver shared by cg, gmres, lgmres, steepest descent
# ----------------------------------------------------------------------------------
class SquareRun:
    """Validated inputs of one square solve: system, b, x0, tolerance, budget."""

    def __init__(self, A, b, x0, rtol, atol, maxiter, callback, default_maxiter):
        self.t0 = time.perf_counter()
        self.sys = Square(A)
        n = self.sys.n
        self.b = check_vector("b", b, n)
        self.x = np.zeros(n) if x0 is None else check_vector("x0", x0, n)
        rtol = check_tol("rtol", rtol)
        atol = check_tol("atol", atol)
        self.bnorm = float(np.linalg.norm(self.b))
        self.tol = max(atol, rtol * self.bnorm)
        self.maxiter = check_int("maxiter", maxiter, default_maxiter(n), minimum=0)
        self.callback = check_callback(callback)
        # a callback cannot be called from compiled code: run the Python twin then
        self.compiled = self.sys.compiled and self.callback is None
        if self.sys.compiled and not self.compiled:
            self.P = _PyMatrix(self.sys)
        else:
            self.P = self.sys.P

    def call(self, kernel, *args):
        """Run ``kernel`` (a :class:`Twin`) compiled or in Python, under the operator's BLAS limit."""
        with self.sys.ctx:
            return kernel(self.compiled, self.P, *args)

    def result(self, x, code, niter, hist, nh, nmv, info):
        if self.compiled:
            nm, nr = self.sys.account(nmv)
        else:
            nm, nr = (int(nmv), int(nmv) if self.sys.normal else 0)
        info = dict(info)
        info.setdefault("engine", "numba" if self.compiled else "python")
        return make_result(x, code, niter, hist, nh, nm, nr, self.t0, info)

    def trivial(self):
        """b = 0: x = 0 solves it exactly (SciPy returns the same)."""
        if self.bnorm == 0.0:
            return self.result(np.zeros_like(self.b), 0, 0, np.zeros(1), 1, 0, {})
        return None


class _PyMatrix:
    """Python-side application of a packed system (used when a callback forces the Python twin)."""

    def __init__(self, sys):
        self.sys = sys
        P = sys.P
        if P[0] == MODE_MATRIX:
            M = P[1]
            self.matvec = lambda v: M @ v
        else:
            op = sys.grav
            w2 = P[10] if P[10].size == op.shape[0] else None
            L = NormalOperator(op, w2)
            self.matvec = L.matvec


# ----------------------------------------------------------------------------------
# small dense helpers used inside the Krylov loops
# ----------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------
# allocation-free vector kernels shared by both twins (compiled: inlined calls;
# Python twin: one compiled call each, no temporaries of the model size)
# ----------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------
# prologue and stop tests of the loops (both twins)
# ----------------------------------------------------------------------------------
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
