"""When to run a loop on all cores, and how much memory there is (the forward package's policy).

Used by the assembly (:mod:`gravbench.forward._sensitivity`) and the operators
(:mod:`gravbench.forward.operators`, which re-exports these names); it sits below
both so that neither has to import the other to ask.
"""

from __future__ import annotations

import os

import numpy as np
from .._load import load_average

__all__ = ["PARALLEL_MIN_SECONDS", "COST_CORNER", "COST_MAC", "COST_COPY", "idle_cores", "resolve_parallel"]


def _workers():
    try:
        import numba

        return max(1, int(numba.get_num_threads()))
    except Exception:  # pragma: no cover
        return os.cpu_count() or 1


#: ``parallel="auto"`` runs a loop on all cores only when its serial run would take
#: longer than this (seconds, estimated from the work count and the per-item costs
#: below). A numba parallel region costs tens of microseconds on an idle machine, but
#: up to a scheduler time slice (several ms) per region when other processes share
#: the cores: small products are faster serial (see reports/forward.md).
PARALLEL_MIN_SECONDS = 5e-3

#: Rough serial costs per work item (seconds), used only for the parallel decision.
COST_CORNER = 40e-9  # one (log, atan2) corner term
COST_MAC = 2e-9  # one complex multiply-add of the FFT contraction
COST_COPY = 1e-9  # one entry of the dense matrix written (page faults included)


def idle_cores():
    """Cores not busy with other work: ``cpu_count - 1-min load average + 1`` (this process counts
    as one), capped to ``[0, cpu_count]``; ``cpu_count`` when the load is unknown."""
    n = os.cpu_count() or 1
    la = load_average()
    if la is None:  # pragma: no cover - not on this platform
        return n
    load = la[0]
    return max(0.0, min(float(n), n - load + 1.0))


def resolve_parallel(parallel, seconds):
    """Decide whether to use the parallel build.

    Parameters
    ----------
    parallel : bool or "auto"
        ``True``/``False`` force the parallel/serial build; ``"auto"`` picks parallel
        when the estimated serial time ``seconds`` exceeds :data:`PARALLEL_MIN_SECONDS`,
        more than one thread is available, and at least 1.5 cores are idle
        (:func:`idle_cores`; on a machine whose cores are taken by other processes the
        threads only wait for each other: measured slower than serial at every size,
        reports/forward.md).
    seconds : float
        Estimated serial run time of the loop.
    """
    if isinstance(parallel, str):
        if parallel != "auto":
            raise ValueError(f"parallel must be True, False or 'auto', got {parallel!r}")
        return seconds >= PARALLEL_MIN_SECONDS and _workers() > 1 and idle_cores() >= 1.5
    if isinstance(parallel, (bool, np.bool_, int, np.integer)):
        return bool(parallel)
    raise ValueError(f"parallel must be True, False or 'auto', got {parallel!r}")


def _available_memory():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover
        pass
    return 4 * 1024**3
