"""``gravbench report uncertainty``: calibration of the uncertainty methods -> reports/uncertainty.md (+ .json, .png)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app, report_app):
    @report_app.command("uncertainty")
    def report_uncertainty(
        out: Path = typer.Option(Path("reports"), "--out", help="Directory for uncertainty.md, .json and the PNGs."),
        quick: bool = typer.Option(False, "--quick", help="small-16 data, n = 16 / 50 checks, no VAE (a smoke run)."),
        pcn_per_family: int = typer.Option(None, "--pcn-per-family", min=1,
                                           help="Test models per family for the sampled methods (default 6)."),
    ):
        """Coverage and CRPS of every uncertainty method on paper-50, the exactness check, n = 200 timing (minutes)."""
        import time

        from . import console
        from ..bench.uncertainty_report import run

        t0 = time.perf_counter()
        with console.status("measuring uncertainty calibration ...") as status:
            def log(msg):
                status.update(f"uncertainty: {msg}")
                console.log(msg)

            paths = run(out, quick=quick, log=log, pcn_per_family=pcn_per_family)
        console.print(f"wrote {', '.join(str(p) for p in paths)} in {time.perf_counter() - t0:.0f} s")
