"""The benchmark harness: the case matrix, metrics, the sweep runner and the statistics of a comparison.

Import-light: the submodules load on first attribute access, so
``import gravbench.bench`` imports neither numba kernels, torch nor dask.

Modules
-------
cases
    :class:`Case`, :func:`build_cases`: the (n, noise, model, provider, refiner) matrix.
metrics
    :func:`model_error`, :func:`data_misfit`, :func:`chi2`, :func:`evaluate`, :func:`summarize`.
runner
    :func:`run_cases` (local or Dask, resumable JSON Lines records), :func:`run_case`, :class:`Toolkit`.
stats
    :func:`mean_ci` (Student-t), :func:`paired_diff`, :func:`holm`, :func:`compare_with_leader`, :func:`analyse`.
memory
    :class:`PeakRSS`: peak resident memory of a block (numba and torch allocations count).
robustness
    wrong sigma, correlated and heavy-tailed noise: ``gravbench report robustness``.

The report generators that use them are in :mod:`gravbench.reports`.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Case": "cases", "build_cases": "cases", "NO_REFINER": "cases", "SkipCase": "cases",
    "model_error": "metrics", "data_misfit": "metrics", "chi2": "metrics", "chi2_threshold": "metrics",
    "is_success": "metrics", "fit_status": "metrics", "success_band": "metrics", "evaluate": "metrics",
    "summary": "metrics", "summarize": "metrics",
    "RECORD_KEYS": "metrics",
    "run_cases": "runner", "run_case": "runner", "estimate": "runner", "Toolkit": "runner", "TestSet": "runner",
    "read_records": "runner", "PeakRSS": "memory",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        mod = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        val = getattr(mod, name)
        globals()[name] = val
        return val
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module 'gravbench.bench' has no attribute {name!r}") from None


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
