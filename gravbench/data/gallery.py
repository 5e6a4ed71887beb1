"""PNG galleries of density-model families and data sets (matplotlib Agg, imported lazily)."""

from __future__ import annotations

import numpy as np

from .._mpl import grid_extent, model_panel, save_png
from .._mpl import pyplot as _plt
from .families import generate

__all__ = ["family_gallery", "dataset_gallery"]


def _model_axes(ax, rho, grid, vmax, title="", vmin=None):
    """Contrasts on a symmetric RdBu scale; with ``vmin`` (absolute densities) on viridis from vmin to vmax."""
    return model_panel(ax, rho, vmax=vmax, vmin=vmin, extent=grid_extent(grid), title=title, aspect="equal")


def family_gallery(path, family, problem, count=6, seed=0, with_data=True):
    """Write a PNG of ``count`` models of ``family`` on ``problem``'s grid, with their gx / gz below each.

    Returns the path.
    """
    plt = _plt()
    rho = generate(family, count, problem.shape, seed=seed)
    g = rho.reshape(count, -1).astype(np.float64) @ problem.sensitivity().T if with_data else None
    m = problem.survey.m
    rows = 2 if with_data else 1
    fig, axes = plt.subplots(rows, count, figsize=(1.9 * count + 0.8, 2.0 * rows + 0.4),
                             gridspec_kw={"height_ratios": [1.0, 0.6] if with_data else [1.0]}, squeeze=False)
    vmax, vmin = 1000.0, None
    if rho.min() > 0:  # absolute densities (the fwi family): their own range
        vmin, vmax = float(rho.min()), float(rho.max())
    for j in range(count):
        im = _model_axes(axes[0, j], rho[j], problem.grid, vmax, f"{family} #{j}", vmin=vmin)
        if with_data:
            a = axes[1, j]
            a.plot(problem.survey.x, g[j, :m], color="tab:blue", lw=1, label="gx")
            a.plot(problem.survey.x, g[j, m:], color="tab:red", lw=1, label="gz")
            a.tick_params(labelsize=6)
            a.set_xticks([])
            if j == 0:
                a.set_ylabel("mGal", fontsize=7)
                a.legend(fontsize=6, loc="best")
    fig.colorbar(im, ax=axes[0, :].tolist(), shrink=0.9, label="kg/m$^3$")
    fig.suptitle(f"family '{family}' on a {problem.shape[0]} x {problem.shape[1]} grid (seed {seed})", fontsize=9)
    save_png(fig, path, dpi=100)
    return path


def dataset_gallery(path, dataset, per_family=3):
    """Write a PNG with up to ``per_family`` models of every family in ``dataset`` and their data (noisy + clean)."""
    plt = _plt()
    fams = [int(c) for c in np.unique(dataset.family)]
    cols = per_family
    fig, axes = plt.subplots(2 * len(fams), cols, figsize=(2.1 * cols + 0.8, 2.6 * len(fams) + 0.4), squeeze=False,
                             gridspec_kw={"height_ratios": [1.0, 0.6] * len(fams)})
    m = dataset.problem.survey.m
    x = dataset.problem.survey.x
    vmax = float(np.abs(dataset.rho).max()) or 1.0
    for r, c in enumerate(fams):
        idx = np.flatnonzero(dataset.family == c)[:cols]
        for j in range(cols):
            a0, a1 = axes[2 * r, j], axes[2 * r + 1, j]
            if j >= idx.size:
                a0.axis("off")
                a1.axis("off")
                continue
            i = idx[j]
            _model_axes(a0, dataset.rho[i], dataset.problem.grid, vmax,
                        f"{dataset.family_names[c]} (sample {int(dataset.index[i])})")
            a1.plot(x, dataset.g[i, :m], ".", ms=1.5, color="tab:blue")
            a1.plot(x, dataset.g[i, m:], ".", ms=1.5, color="tab:red")
            a1.plot(x, dataset.g_clean[i, :m], color="tab:blue", lw=0.8, label="gx")
            a1.plot(x, dataset.g_clean[i, m:], color="tab:red", lw=0.8, label="gz")
            a1.set_xticks([])
            a1.tick_params(labelsize=6)
            if j == 0:
                a1.set_ylabel("mGal", fontsize=7)
    fig.suptitle(f"{dataset.meta.get('name') or ''} {dataset.split or ''}: {len(dataset)} models "
                 f"(dots: noisy g, lines: clean)", fontsize=9)
    fig.tight_layout()
    save_png(fig, path, dpi=100)
    return path
