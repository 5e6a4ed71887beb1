"""One BLAS thread limiter for the whole package.

The solver and refiner loops call BLAS on vectors and mid-sized matrices
(``np.dot`` inside numba uses SciPy's OpenBLAS); those calls never gain from
BLAS threads, and on a machine whose cores are shared OpenBLAS's threaded
gemv / ddot were measured up to 100x slower than one thread at n = 50
(reports/forward.md). Parallelism inside the loops comes from numba instead.
"""

from __future__ import annotations

import contextlib
import threading

from threadpoolctl import ThreadpoolController

__all__ = ["blas_libs", "single_thread_blas", "blas_threads"]

_LIBS = []


def blas_libs():
    """The loaded BLAS libraries (NumPy's, SciPy's) as threadpoolctl controllers, cached."""
    if not _LIBS:
        _LIBS.append([lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"])
    return _LIBS[0]


class _SingleThread:
    """Context: every BLAS on one thread inside the block, restored after.

    Re-entrant: the outermost block saves and restores. Acts in the main thread
    only: OpenBLAS ignores thread-count increases requested from other threads,
    so a restore from a worker thread would leave it on one thread for good.
    """

    __slots__ = ("libs",)
    _depth = 0
    _saved = None

    def __init__(self, libs):
        self.libs = libs

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        cls = _SingleThread
        if cls._depth == 0:
            cls._saved = [(lib, lib.get_num_threads()) for lib in self.libs]
            for lib in self.libs:
                lib.set_num_threads(1)
        cls._depth += 1
        return self

    def __exit__(self, *exc):
        if threading.current_thread() is not threading.main_thread():
            return False
        cls = _SingleThread
        cls._depth -= 1
        if cls._depth == 0:
            for lib, n in cls._saved:
                lib.set_num_threads(n)
            cls._saved = None
        return False


def single_thread_blas(libs=None):
    """Context manager: BLAS on one thread inside the block, restored after (re-entrant).

    Parameters
    ----------
    libs : list of threadpoolctl controllers, optional
        The libraries to limit (default: every loaded BLAS, :func:`blas_libs`).

    Examples
    --------
    >>> import numpy as np
    >>> with single_thread_blas():
    ...     y = np.ones((300, 2500)) @ np.ones(2500)
    """
    return _SingleThread(blas_libs() if libs is None else libs)


def blas_threads(n):
    """Context manager: BLAS on at most ``n`` threads inside the block, restored after.

    ``None`` leaves BLAS as it is; ``1`` is :func:`single_thread_blas`. The one
    BLAS limiter of the package: callers that take a thread count (the Gaussian
    prior's numerics, the SimPEG peers) come through here.

    Examples
    --------
    >>> import numpy as np
    >>> with blas_threads(None):
    ...     y = np.ones((3, 4)) @ np.ones(4)
    >>> with blas_threads(1):
    ...     y = np.ones((3, 4)) @ np.ones(4)
    """
    if n is None:
        return contextlib.nullcontext()
    if int(n) == 1:
        return single_thread_blas()
    return ThreadpoolController().limit(limits=int(n), user_api="blas")
