"""``gravbench invert DATA.csv``: invert a measured gravity profile (the logic is in :mod:`gravbench.invert`)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app, report_app):
    @app.command("invert")
    def invert(
        data: Path = typer.Argument(..., help="CSV with columns x (m), elevation (m, up), gz [, gx, sigma_gz, "
                                              "sigma_gx, sigma, ground]; '# units: mGal' header comment."),
        method: str = typer.Option("smooth", "--method",
                                   help="A provider, a refiner, or 'provider->refiner' (e.g. depth-weighted->sparse)."),
        weighting: str = typer.Option("depth", "--weighting",
                                      help="Cell weighting for refiners that take one: depth | sensitivity | none."),
        regional_mode: str = typer.Option("joint", "--regional-mode",
                                          help="joint: trend fitted with the model | first: fitted to the data "
                                               "first, then removed."),
        out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default: <DATA stem>-inversion "
                                                               "beside DATA)."),
        units: Optional[str] = typer.Option(None, "--units", help="Gravity units of DATA: mGal, uGal, m/s^2, gu "
                                                                  "(default: the header comment, else mGal)."),
        regional: str = typer.Option("linear", "--regional",
                                     help="Trend removed first: none, constant, linear, quadratic, cubic or an "
                                          "order 0..10."),
        regional_exclude: Optional[List[float]] = typer.Option(
            None, "--regional-exclude", help="x window (m) left out of the trend fit: give it twice, "
                                             "--regional-exclude X1 --regional-exclude X2."),
        sigma: Optional[float] = typer.Option(None, "--sigma", help="One std for every datum, mGal (default: the "
                                                                    "file's sigma columns, else 2% of the peak)."),
        dx: Optional[float] = typer.Option(None, "--dx", help="Cell width, m (default: median station spacing)."),
        dz: Optional[float] = typer.Option(None, "--dz", help="Cell height, m (default: dx)."),
        depth: Optional[float] = typer.Option(None, "--depth", help="Grid depth below the highest ground point, m "
                                                                    "(default: half the profile + relief)."),
        pad: int = typer.Option(5, "--pad", help="Padding cells beyond the end stations on each side."),
        sensor_height: float = typer.Option(0.0, "--sensor-height", help="Sensor height above the ground, m "
                                                                         "(without a ground column)."),
        kernel: str = typer.Option("exact", "--kernel", help="exact | midpoint."),
        operator: str = typer.Option("auto", "--operator", help="auto | dense | matfree | fft."),
        seed: int = typer.Option(0, "--seed", help="Seed of stochastic providers."),
        figure: bool = typer.Option(True, "--figure/--no-figure", help="Write invert.png."),
    ):
        """Invert a gravity profile CSV: regional removal, grid under the topography, model, data, chi2, PNG."""
        import math

        from rich.markup import escape
        from rich.table import Table

        from . import RunFailed, UserError, console
        from . import _options as opt
        from .. import invert as gi

        if not data.exists():
            raise UserError(f"DATA: no such file: {data}")
        opt.number("--dx", dx, gt=0, what=" (a cell width, m)")
        opt.number("--dz", dz, gt=0, what=" (a cell height, m)")
        opt.number("--depth", depth, gt=0, what=" (m below the highest ground point)")
        opt.integer("--pad", pad, minimum=0, what=" (padding cells)")
        opt.number("--sigma", sigma, gt=0, what=" (one std per datum, mGal)")
        opt.number("--sensor-height", sensor_height, what=" (m)")
        outdir = Path(out) if out is not None else data.with_name(data.stem + "-inversion")
        if regional_exclude is not None and len(regional_exclude) not in (0, 2):
            raise UserError(f"--regional-exclude must be given twice (x1 and x2, m), got {len(regional_exclude)} "
                            f"value(s)")
        opt.choice("--operator", operator, ("auto", "dense", "matfree", "fft"))
        opt.choice("--weighting", weighting, ("depth", "sensitivity", "none"))
        opt.choice("--regional-mode", regional_mode, ("joint", "first"))
        from ..data.regional import check_order

        opt.library("--regional", check_order, regional)
        opt.choice("--kernel", kernel, ("exact", "midpoint"))
        opt.library("--method", gi.parse_method, method)
        opt.out_dir("--out", outdir)  # before any work: an existing file or a read-only folder is refused here
        try:
            prof = gi.read_profile(data, units=units, sensor_height=sensor_height)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        with console.status("starting...") as status:
            res = gi.invert_profile(
                prof, method, regional=regional, regional_exclude=tuple(regional_exclude) if regional_exclude
                else None, regional_mode=regional_mode, weighting=weighting, sigma=sigma, dx=dx, dz=dz, depth=depth,
                pad=pad, kernel=kernel, operator=operator,
                seed=seed, log=lambda s: status.update(f"{s}..."))
            status.update("writing the model, the data and the figure...")
            files = gi.write_outputs(res, outdir, figure=figure)
        s = res.summary()
        p = res.problem
        tab = Table(title=f"gravbench invert  {data.name}", show_header=False)
        tab.add_row("stations", f"{p.survey.m} ({', '.join(p.survey.components)}; file units {prof.units}), "
                                f"x {prof.x[0]:g} .. {prof.x[-1]:g} m, elevation {prof.elevation.min():g} .. "
                                f"{prof.elevation.max():g} m")
        tab.add_row("grid", f"{p.grid.nx} x {p.grid.nz} cells of {p.grid.dx:g} x {p.grid.dz:g} m, "
                            f"{p.n_active:,} active below the ground; depth {p.grid.depth:g} m below the datum "
                            f"(elevation {res.datum:g} m)")
        tab.add_row("operator", escape(res.operator))
        for c, r in res.regional.items():
            tab.add_row(f"regional {c}", escape(f"{r['description']}; {r['mode']}"))
        tab.add_row("sigma", res.sigma_note)
        it = res.info.get("niter")
        tab.add_row("method", method + (f"  ({it} iteration{'' if it == 1 else 's'}, {res.info['n_matvec']} A "
                                        f"products)" if it is not None else ""))
        band = s["success_band"]
        tab.add_row("chi2", f"{res.chi2:.3f}  (success band {band[0]:.3f} .. {band[1]:.3f}: "
                            + ("[green]in[/green])" if res.success else "[red]outside[/red])"))
        tab.add_row("density", f"{s['rho_min_kg_m3']:+.1f} .. {s['rho_max_kg_m3']:+.1f} kg/m^3")
        tab.add_row("time", f"{res.seconds['total']:.2f} s")
        tab.add_row("wrote", ", ".join(str(f) for f in files.values()))
        console.print(tab)
        if not math.isfinite(res.chi2):
            raise RunFailed(f"the inversion with {method} produced a non-finite misfit (chi2 = {res.chi2})")
