"""Matplotlib figures (Agg backend, imported lazily by the commands that draw)."""

from __future__ import annotations

import numpy as np

__all__ = ["model_and_data", "demo_model"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def demo_model(grid):
    """The built-in demonstration model: a dense block and a light lens, kg/m^3, shape ``(nz, nx)``.

    Defined on relative coordinates, so it looks the same at every grid size.
    """
    xc = (grid.x_centers - grid.x_edges[0]) / grid.width
    zc = (grid.z_centers - grid.z_edges[0]) / grid.depth
    X, Z = np.meshgrid(xc, zc)
    rho = np.zeros(grid.shape)
    rho[(np.abs(X - 0.3) < 0.1) & (np.abs(Z - 0.3) < 0.12)] = 400.0
    rho[((X - 0.68) / 0.16) ** 2 + ((Z - 0.45) / 0.08) ** 2 < 1.0] = -250.0
    return rho


def model_and_data(problem, rho, g, path, title="", g_est=None, rho_est=None):
    """Write a PNG: the density model(s) and the gx/gz profiles at the stations."""
    plt = _plt()
    m = problem.survey.m
    ncol = 2 if rho_est is not None else 1
    fig = plt.figure(figsize=(5.2 * ncol + 0.6, 7.0), constrained_layout=True)
    gs = fig.add_gridspec(2, ncol, height_ratios=[1.0, 1.4])
    ax = fig.add_subplot(gs[0, :])
    x = problem.survey.x
    colors = {"gx": "tab:blue", "gz": "tab:red"}
    for b, c in enumerate(getattr(problem.survey, "components", ("gx", "gz"))):   # gx block, then gz block
        ax.plot(x, g[b * m:(b + 1) * m], label=c, color=colors[c])
        if g_est is not None:
            ax.plot(x, g_est[b * m:(b + 1) * m], "--", color=colors[c], label=f"{c} (estimate)")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("gravity (mGal)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    grid = problem.grid
    ext = [grid.x_edges[0], grid.x_edges[-1], grid.z_edges[-1], grid.z_edges[0]]
    models = [("model", rho)] + ([("estimate", rho_est)] if rho_est is not None else [])
    vmax = max(float(np.abs(r).max()) for _, r in models) or 1.0
    for j, (name, r) in enumerate(models):
        a = fig.add_subplot(gs[1, j])
        im = a.imshow(np.asarray(r).reshape(grid.shape), extent=ext, cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                      aspect="auto", interpolation="nearest")
        a.set_xlabel("x (m)")
        a.set_ylabel("depth z (m)")
        a.set_title(name)
        fig.colorbar(im, ax=a, label="density contrast (kg/m$^3$)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
