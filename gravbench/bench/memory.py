"""Peak resident memory (RSS) of a block of code, counting every allocator.

:mod:`tracemalloc` sees only Python's and NumPy's allocations; numba's
workspaces, torch tensors, FFT plans and BLAS buffers are invisible to it.
:class:`PeakRSS` measures the operating system's view instead, the resident
set size of the process:

* on Linux it resets the kernel's high-water mark (``echo 5 >
  /proc/self/clear_refs``, which resets ``VmHWM`` to the current RSS) when the
  block starts and reads ``VmHWM`` from ``/proc/self/status`` when it ends:
  exact, no thread, no sampling;
* elsewhere, or when ``clear_refs`` is not writable, a daemon thread samples
  the RSS every ``interval`` seconds (``psutil`` when installed, else
  ``/proc/self/statm``); a peak shorter than the interval may be missed.

``PeakRSS().mb`` is the peak RSS during the block minus the RSS when it
started (MiB): the memory the block added at its worst moment. ``peak_mb``
is the absolute peak (MiB). The RSS is process-wide: threads running other
work at the same time are counted too. Nested blocks work (an inner reset of
the high-water mark is carried over to the outer blocks).
"""

from __future__ import annotations

import os
import threading

__all__ = ["PeakRSS", "rss_mb", "peak_rss_mb", "reset_peak", "METHOD"]

_MIB = float(2**20)


def _status_kb(field):
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _statm_rss():
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _psutil_rss():
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss


def rss_mb():
    """The current resident set size of this process, MiB (``None`` when it cannot be read)."""
    kb = _status_kb(b"VmRSS:")
    if kb is not None:
        return kb / 1024.0
    b = _psutil_rss()
    return None if b is None else b / _MIB


def peak_rss_mb():
    """The high-water mark of the RSS (MiB) since the process started or the last :func:`reset_peak`."""
    kb = _status_kb(b"VmHWM:")
    if kb is not None:
        return kb / 1024.0
    try:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return r / (_MIB if os.uname().sysname == "Darwin" else 1024.0)
    except (ImportError, AttributeError):
        return None


def reset_peak():
    """Reset the RSS high-water mark to the current RSS (Linux ``clear_refs``); returns whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return _status_kb(b"VmHWM:") is not None


def _probe():
    return "hwm" if reset_peak() else "sampler"


#: how :class:`PeakRSS` measures on this machine: ``"hwm"`` (kernel high-water mark) or ``"sampler"``
METHOD = _probe()

_STACK = []
_LOCK = threading.Lock()


class PeakRSS:
    """Context manager: peak RSS of the process during the block.

    Parameters
    ----------
    interval : float
        Sampling period of the fallback sampler thread, s (not used with the
        kernel high-water mark).

    Attributes
    ----------
    mb : float
        Peak RSS during the block minus the RSS at its start, MiB (>= 0).
    peak_mb : float
        Absolute peak RSS during the block, MiB.
    base_mb : float
        RSS at the start of the block, MiB.
    method : str
        ``"hwm"`` or ``"sampler"`` (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> with PeakRSS() as pk:
    ...     a = np.ones(10_000_000)   # 76 MiB, touched
    ...     del a
    >>> pk.mb > 50
    True
    """

    def __init__(self, interval=0.002):
        self.interval = float(interval)
        self.method = METHOD
        self.mb = None
        self.peak_mb = None
        self.base_mb = None
        self._carry = 0.0
        self._stop = None
        self._thread = None

    def _sample(self):
        best = self._carry
        while not self._stop.wait(self.interval):
            r = rss_mb()
            if r is not None and r > best:
                best = r
        r = rss_mb()
        self._carry = max(best, r or 0.0)

    def __enter__(self):
        with _LOCK:
            if self.method == "hwm":
                # carry the high-water mark over to the blocks this one is nested in
                hwm = peak_rss_mb() or 0.0
                for outer in _STACK:
                    outer._carry = max(outer._carry, hwm)
                reset_peak()
            _STACK.append(self)
        self.base_mb = rss_mb() or 0.0
        self._carry = self.base_mb
        if self.method == "sampler":
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, name="gravbench-peak-rss", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.method == "sampler":
            self._stop.set()
            self._thread.join()
            peak = self._carry
        else:
            peak = max(self._carry, peak_rss_mb() or 0.0)
        with _LOCK:
            if self in _STACK:
                _STACK.remove(self)
            for outer in _STACK:
                outer._carry = max(outer._carry, peak)
        self.peak_mb = peak
        self.mb = max(0.0, peak - self.base_mb)
        return False
