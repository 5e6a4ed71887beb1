"""Report generators: each writes one committed report under ``reports/`` (Markdown, JSON, PNG).

One module per report, run by ``gravbench report <name>`` (``gravbench compare``
for :mod:`.compare`); each Markdown file starts with the command that
regenerates it. Submodules load on first attribute access (they import numba,
torch or matplotlib), so ``import gravbench.reports`` is cheap.

Modules
-------
classical
    the regularised refiners against SimPEG (``reports/classical.md``).
compare
    rich tables and ``reports/compare-<n...>.md`` with PNGs (intervals, ties, per family, Pareto front).
datasets
    the model families and standard data sets with galleries (``reports/datasets.md``).
dip
    the deep image prior against the L2 providers (``reports/dip.md``).
forward
    assembly and operator timings against NumPy BLAS and SimPEG (``reports/forward.md``).
latent
    Laloy et al.'s latent-search experiment (``reports/latent.md``).
scaling
    cost against n for every refiner and provider to n = 8000 (``reports/scaling.md``).
solvers
    the refiners and Krylov solvers against SciPy and PyAMG (``reports/solvers.md``).
table1
    the seed paper's Table I (``reports/table1*.md``).
uncertainty
    calibration of the uncertainty methods (``reports/uncertainty.md``).
"""

from __future__ import annotations

import importlib

__all__ = ["classical", "compare", "datasets", "dip", "forward", "latent", "scaling", "solvers", "table1", "uncertainty"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'gravbench.reports' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
