"""Validation shared by the solvers and refiners: clear errors naming the argument."""

from __future__ import annotations

import numpy as np

__all__ = ["check_vector", "check_tol", "check_int", "check_callback"]


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
    """``value`` as a finite float ``>= 0`` (``> 0`` with ``positive``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'} and finite, got {value!r}")
    return v


def check_int(name, value, default, *, minimum=1):
    """``value`` as an int ``>= minimum``; None gives ``default``."""
    if value is None:
        return int(default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum} or None, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_callback(callback):
    """``callback`` if callable or None, else a ValueError."""
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable or None, got {type(callback).__name__}")
    return callback
