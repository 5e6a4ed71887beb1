"""Test-wide pytest configuration.

pyproject.toml's ``addopts`` has ``--benchmark-disable`` so the plain test run
executes each pytest-benchmark case once without timing it. An explicit
``pytest --benchmark-only`` asks for timings, so it re-enables benchmarking
instead of failing with "Can't have both --benchmark-only and
--benchmark-disable".
"""

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if config.getoption("benchmark_only", False):
        config.option.benchmark_disable = False
