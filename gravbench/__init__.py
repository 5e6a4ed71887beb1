"""gravbench: a Numba-accelerated library and benchmark suite for 2D gravity inversion.

Quick start
-----------
>>> import gravbench as gb
>>> prob = gb.Problem.paper(n=20)            # 20 x 20 cells, 60 stations, gx and gz
>>> rho = gb.data.generate("blocks", count=1, shape=prob.shape, seed=0)[0]
>>> g = prob.forward(rho)                    # mGal, [gx..., gz...]
>>> g.shape
(120,)

Submodules (loaded on first use, so ``import gravbench`` stays light and never
imports torch or dask): ``forward``, ``solvers``, ``refiners``, ``providers``,
``data``, ``metrics`` (model error, chi2, the success rule), ``bench``, ``constants``, ``uncertainty``, ``invert`` (a measured profile -> a model);
``Problem`` too (it lives in
``gravbench.problem``, above the forward core). Conventions, formulas and the
layer picture: the ``docs/`` folder of the repository.
"""

from __future__ import annotations

import importlib

from ._cache import ensure_cache_dir
from .geometry import Grid, Survey

ensure_cache_dir()  # numba needs a writable cache even from a read-only install (see _cache.py)

__version__ = "0.1.0"

_SUBMODULES = ("forward", "solvers", "refiners", "providers", "data", "bench", "constants", "cli", "plotting",
               "uncertainty", "invert", "metrics")

__all__ = ["Grid", "Survey", "Problem", "__version__", *_SUBMODULES]


def __getattr__(name):
    if name == "Problem":  # lazy: gravbench.problem imports the forward core (numba, SciPy)
        mod = importlib.import_module(".problem", __name__)
        globals()[name] = mod.Problem
        return mod.Problem
    if name in _SUBMODULES:
        mod = importlib.import_module(f".{name}", __name__)
        globals()[name] = mod
        return mod
    raise AttributeError(f"module 'gravbench' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES) | {"Problem"})
