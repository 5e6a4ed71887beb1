"""Peak RSS measurement (gravbench.bench.memory): numpy, numba and torch buffers outside Python's allocator."""

import numpy as np
import pytest
from numba import njit

from gravbench.bench import memory
from gravbench.bench.memory import PeakRSS, rss_mb
from gravbench.bench.runner import _Peak

MIB = 2**20
SIZE = 160 * MIB          # bytes per test buffer
SLACK = 64.0              # MiB of allocator / interpreter noise tolerated above the buffer


@njit(cache=True)
def _numba_buffer(nbytes):
    a = np.ones(nbytes // 8)   # allocated by numba's runtime (NRT), not by Python or NumPy
    return a.sum()


def _check(mb, nbytes):
    want = nbytes / MIB
    assert 0.9 * want <= mb <= want + SLACK, (mb, want)


def test_numpy_buffer_freed_inside_block_counts():
    _numba_buffer(8)  # compile outside the block
    with PeakRSS() as pk:
        a = np.ones(SIZE // 8)     # touched pages: resident
        del a
    _check(pk.mb, SIZE)
    assert pk.peak_mb >= pk.base_mb + pk.mb - 1e-9


def test_numba_runtime_buffer_counts():
    _numba_buffer(8)
    with PeakRSS() as pk:
        assert _numba_buffer(SIZE) == SIZE // 8
    _check(pk.mb, SIZE)


def test_torch_buffer_counts():
    torch = pytest.importorskip("torch")
    with PeakRSS() as pk:
        t = torch.ones(SIZE // 4, dtype=torch.float32)
        del t
    _check(pk.mb, SIZE)


def test_nested_blocks_and_runner_peak():
    with _Peak() as outer:
        a = np.ones(SIZE // 8)
        del a
        with PeakRSS() as inner:   # resets the kernel's high-water mark: the outer block keeps its peak
            b = np.ones(SIZE // 16)
            del b
    _check(inner.mb, SIZE // 2)
    _check(outer.mb, SIZE)


def test_sampler_fallback(monkeypatch):
    monkeypatch.setattr(memory, "METHOD", "sampler")
    with PeakRSS(interval=0.001) as pk:
        a = np.ones(SIZE // 8)
        import time
        time.sleep(0.05)   # let the sampler see it (a sampler can miss shorter peaks by design)
        del a
    assert pk.method == "sampler"
    _check(pk.mb, SIZE)
    assert rss_mb() > 0
