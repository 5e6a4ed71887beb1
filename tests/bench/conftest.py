"""pytest-benchmark cases.

``pytest --benchmark-only`` runs the default sweep (every operation at n = 50
and 200, the FFT operator also at 1000; minutes). ``GRAVBENCH_BENCH_SLOW=1``
adds the slow cases (latent searches, the paper-50 build, the large sizes).
The plain test command
runs with ``--benchmark-disable`` (see pyproject.toml): every case is executed
once, on the small sizes only, so benchmark code is exercised without making
the test suite slow. Use :func:`sizes` to parametrise.
"""

import sys


def full_run() -> bool:
    """True when the user asked for benchmarks (``--benchmark-only``) or set GRAVBENCH_BENCH_FULL=1."""
    import os

    return "--benchmark-only" in sys.argv or os.environ.get("GRAVBENCH_BENCH_FULL") == "1"


def slow_run() -> bool:
    """True when the slow benchmark cases are asked for too (GRAVBENCH_BENCH_SLOW=1)."""
    import os

    return os.environ.get("GRAVBENCH_BENCH_SLOW") == "1"


def sizes(full, quick, slow=None):
    """The sizes to parametrise over: ``full`` for benchmark runs (``slow`` instead when
    GRAVBENCH_BENCH_SLOW=1 and given), ``quick`` for the plain test run."""
    if not full_run():
        return list(quick)
    return list(slow) if slow is not None and slow_run() else list(full)
