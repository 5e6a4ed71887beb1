"""The one reader of the machine's load average (recorded in reports, used by the parallel policy)."""

from __future__ import annotations

import os

__all__ = ["load_average"]


def load_average(digits=None):
    """The 1, 5 and 15 minute load averages as a list of floats, or ``None`` where the platform has none.

    Parameters
    ----------
    digits : int, optional
        Round each value to this many decimals (default: as the system reports them).

    Examples
    --------
    >>> la = load_average(2)
    >>> la is None or (len(la) == 3 and all(v >= 0 for v in la))
    True
    """
    try:
        values = os.getloadavg()
    except (OSError, AttributeError):  # pragma: no cover - not on every platform
        return None
    return [float(v) if digits is None else round(float(v), digits) for v in values]
