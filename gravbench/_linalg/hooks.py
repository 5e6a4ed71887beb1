"""Operator hooks, the packed tuple and the compiled / Python twin builder.

Every iterative method is written ONCE as a plain function in NumPy style
(``np.dot``, slicing, in-place updates) that applies the operator only through
three hooks:

* ``op_A(P, v, out)``: ``out = A v`` (rectangular forward operator),
* ``op_At(P, u, out)``: ``out = A^T u``,
* ``op_S(P, v, out, tmp)``: ``out = S v`` for a square system ``S`` (a matrix,
  or ``A^T A`` applied as ``A`` then ``A^T`` through ``tmp``; never formed).

:func:`twin` compiles that function with ``njit(cache=True)`` (``P`` is then
a packed tuple and the hooks dispatch to a BLAS gemv or to the matrix-free
numba kernels of :mod:`gravbench._numba.assemble`, so the whole iteration
runs in compiled code), and also builds a pure-Python twin from the same code
object in which the hooks call ``P.matvec`` / ``P.rmatvec`` of any
``LinearOperator`` (FFT operators, SciPy sparse matrices, float32 operators,
user callbacks). One algorithm, two drivers, identical arithmetic.

The packed tuple ``P`` is described in :mod:`.packing`.
"""

from __future__ import annotations

import types

import numpy as np
from numba import njit

from .._numba import assemble as _asm
from .packing import MODE_MATFREE, MODE_MATRIX

__all__ = ["op_A", "op_At", "op_S", "Twin", "twin", "hooked"]


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
