"""Matplotlib, loaded on first use with the Agg backend, one atomic PNG writer and the model panel.

Every module that draws gets pyplot from :func:`pyplot` (so ``import gravbench``
never imports matplotlib and no module picks a backend of its own), writes
figures with :func:`save_png` (a temporary file renamed into place: a figure
is either the old one or the new one, never half written) and draws density
models with :func:`model_panel` (one colour convention for every report).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["pyplot", "save_png", "model_panel", "grid_extent"]


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


def grid_extent(grid):
    """``imshow`` extent of a grid's model, m: ``[x_left, x_right, z_bottom, z_top]`` (depth down)."""
    return [grid.x_edges[0], grid.x_edges[-1], grid.z_edges[-1], grid.z_edges[0]]


def model_panel(ax, rho, *, vmax=None, vmin=None, cmap=None, extent=None, title="", fontsize=8, ticks=False,
                aspect=None):
    """Draw one density model (``(nz, nx)``, kg/m^3, row 0 at the top) on ``ax``; returns the image.

    Contrasts (``vmin`` None): a symmetric range ``[-vmax, vmax]`` on ``RdBu_r`` (dense red,
    light blue), ``vmax`` by default ``max |rho|`` (1 for an all-zero model). Absolute
    values (``vmin`` given, e.g. densities or standard deviations): ``viridis`` from
    ``vmin`` to ``vmax``. Cells are drawn as cells (no interpolation); axis ticks are
    hidden unless ``ticks``; ``extent`` (m, see :func:`grid_extent`) places the model.
    """
    rho = np.asarray(rho)
    if vmax is None:
        vmax = float(np.abs(rho).max()) or 1.0
    if vmin is None:
        vmin, default = -vmax, "RdBu_r"
    else:
        default = "viridis"
    kw = {} if aspect is None else {"aspect": aspect}
    im = ax.imshow(rho, cmap=cmap or default, vmin=vmin, vmax=vmax, extent=extent, interpolation="nearest", **kw)
    if not ticks:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)
    return im
