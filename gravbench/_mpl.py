"""Matplotlib, loaded on first use with the Agg backend, and one atomic PNG writer.

Every module that draws gets pyplot from :func:`pyplot` (so ``import gravbench``
never imports matplotlib and no module picks a backend of its own) and writes
figures with :func:`save_png` (a temporary file renamed into place: a figure
is either the old one or the new one, never half written).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["pyplot", "save_png"]


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend (unless a backend was already chosen)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path, dpi=100):
    """Write ``fig`` to ``path`` as PNG atomically and close it; returns the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    try:
        fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
        pyplot().close(fig)
    return path
