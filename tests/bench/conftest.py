"""pytest-benchmark cases.

``pytest --benchmark-only`` runs the full size sweep. The plain test command
runs with ``--benchmark-disable`` (see pyproject.toml): every case is executed
once, on the small sizes only, so benchmark code is exercised without making
the test suite slow. Use :func:`sizes` to parametrise.
"""

import sys


def full_run() -> bool:
    """True when the user asked for benchmarks (``--benchmark-only``) or set GRAVBENCH_BENCH_FULL=1."""
    import os

    return "--benchmark-only" in sys.argv or os.environ.get("GRAVBENCH_BENCH_FULL") == "1"


def sizes(full, quick):
    """The sizes to parametrise over: ``full`` for benchmark runs, ``quick`` for the plain test run."""
    return list(full) if full_run() else list(quick)
