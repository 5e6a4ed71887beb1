"""Matplotlib figures (Agg backend, imported lazily by the commands that draw)."""

from __future__ import annotations

import numpy as np

from ._mpl import grid_extent, model_panel, save_png
from ._mpl import pyplot as _plt

__all__ = ["model_and_data", "demo_model", "inversion_figure", "model_panel"]


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
    models = [("model", rho)] + ([("estimate", rho_est)] if rho_est is not None else [])
    vmax = max(float(np.abs(r).max()) for _, r in models) or 1.0
    for j, (name, r) in enumerate(models):
        a = fig.add_subplot(gs[1, j])
        im = model_panel(a, np.asarray(r).reshape(grid.shape), vmax=vmax, extent=grid_extent(grid), title=name,
                         fontsize=None, ticks=True, aspect="auto")
        a.set_xlabel("x (m)")
        a.set_ylabel("depth z (m)")
        fig.colorbar(im, ax=a, label="density contrast (kg/m$^3$)")
    save_png(fig, path, dpi=110)
    return path


def inversion_figure(result, path):
    """Write the PNG of a profile inversion (:class:`gravbench.invert.InversionResult`).

    Panels, top to bottom: the data as measured with the regional trend removed; the
    anomaly (observed - regional, with error bars) and the predicted data; normalised residuals
    ``(predicted - observed) / sigma`` with the +-1 band; the density section against
    elevation (m, up) with inactive cells (air) blank, the ground surface and the stations.
    """
    plt = _plt()
    p = result.problem
    grid, prof = p.grid, result.profile
    m = prof.m
    comps = p.survey.components
    fig = plt.figure(figsize=(10.0, 10.5), constrained_layout=True)
    gs = fig.add_gridspec(4, 1, height_ratios=[0.7, 1.1, 0.55, 1.6])
    colors = {"gx": "tab:blue", "gz": "tab:red"}
    a0 = fig.add_subplot(gs[0])
    for b, c in enumerate(comps):
        sl = slice(b * m, (b + 1) * m)
        a0.plot(prof.x, prof.data[c], "o", ms=2.5, color=colors[c], label=f"{c} as measured")
        if result.regional.get(c, {}).get("order") is not None:
            a0.plot(prof.x, result.regional_values[sl], "--", color="k", lw=1,
                    label=f"{c} regional: {result.regional[c]['description'].split(' mGal')[0]} mGal")
    a0.set_ylabel("gravity (mGal)")
    a0.legend(loc="best", fontsize=7)
    a0.grid(alpha=0.3)
    a0.set_title(f"{result.method}: chi2 = {result.chi2:.3f} ({'in' if result.success else 'outside'} the success "
                 f"band), {p.survey.m} stations")
    ax = fig.add_subplot(gs[1], sharex=a0)
    for b, c in enumerate(comps):
        sl = slice(b * m, (b + 1) * m)
        ax.errorbar(prof.x, result.observed[sl], yerr=result.sigma[sl], fmt="o", ms=3, color=colors[c], alpha=0.7,
                    label=f"{c} observed - regional")
        ax.plot(prof.x, result.predicted[sl], "-", color="k" if c == "gz" else "tab:cyan", lw=1.5,
                label=f"{c} predicted")
    ax.set_ylabel("anomaly (mGal)")
    ax.legend(loc="best", fontsize=7)
    ax.grid(alpha=0.3)
    ar = fig.add_subplot(gs[2], sharex=a0)
    for b, c in enumerate(comps):
        sl = slice(b * m, (b + 1) * m)
        ar.plot(prof.x, result.residual[sl] / result.sigma[sl], "o", ms=3, color=colors[c], label=c)
    ar.axhspan(-1, 1, color="0.85", zorder=0)
    ar.axhline(0, color="k", lw=0.8)
    ar.set_ylabel("residual / sigma")
    ar.grid(alpha=0.3)
    a = fig.add_subplot(gs[3], sharex=a0)
    a.set_facecolor("0.88")                 # air (masked cells) and the sky show grey, not as zero density
    elev_edges = result.datum - grid.z_edges
    r = np.ma.masked_where(~np.asarray(p.active), result.rho)
    vmax = float(np.abs(result.rho).max()) or 1.0
    im = a.pcolormesh(grid.x_edges, elev_edges, r, cmap="RdBu_r", vmin=-vmax, vmax=vmax, shading="flat")
    xg = np.concatenate([[grid.x_edges[0]], prof.x, [grid.x_edges[-1]]])
    eg = np.concatenate([[prof.ground[0]], prof.ground, [prof.ground[-1]]])
    a.plot(xg, eg, color="saddlebrown", lw=1.5, label="ground")
    a.plot(prof.x, prof.elevation, "v", color="k", ms=3, label="stations")
    a.set_xlabel("x (m)")
    a.set_ylabel("elevation (m)")
    a.set_xlim(grid.x_edges[0], grid.x_edges[-1])
    a.set_ylim(elev_edges[-1], max(float(prof.elevation.max()), elev_edges[0]) + 0.05 * grid.depth)
    a.legend(loc="lower right", fontsize=7)
    a.set_title("density contrast (air above the ground: grey, no cells)")
    fig.colorbar(im, ax=a, label="density contrast (kg/m$^3$)")
    return save_png(fig, path, dpi=110)
