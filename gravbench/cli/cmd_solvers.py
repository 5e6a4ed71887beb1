"""``gravbench report solvers``: refiners and Krylov solvers timed against SciPy and PyAMG."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app, report_app):
    @report_app.command("solvers")
    def report_solvers(
        out: Path = typer.Option(Path("reports"), "--out", help="Directory for solvers.md, solvers.json, solvers.png."),
        quick: bool = typer.Option(False, "--quick", help="Tiny sizes only (a smoke run, seconds)."),
    ):
        """Every refiner at n = 25..200, gmres/lgmres vs SciPy and PyAMG, the issue-3 targets (a few minutes)."""
        import time

        from . import UserError, console
        from ..bench.solvers_report import run

        if out.exists() and not out.is_dir():
            raise UserError(f"--out: {out} exists and is not a directory")
        t0 = time.perf_counter()
        with console.status("measuring solvers and refiners ...") as status:
            def log(msg):
                status.update(f"solvers: {msg.strip()}")
                console.log(msg)

            md, data = run(out, quick=quick, log=log)
        from rich.table import Table

        tab = Table(title="issue #3 targets")
        tab.add_column("target")
        tab.add_column("measured")
        tab.add_column("met")
        for t in data["targets"]:
            tab.add_row(t["target"], t["measured"], "yes" if t["met"] else "[red]NO[/red]")
        console.print(tab)
        console.print(f"wrote {md} (+ .json, .png) in {time.perf_counter() - t0:.0f} s")
