"""``gravbench report forward``: time the forward core and write reports/forward.md (+ .json, .png)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app, report_app):
    @report_app.command("forward")
    def report_forward(
        out: Path = typer.Option(Path("reports"), "--out", help="Directory for forward.md, forward.json, forward.png."),
        quick: bool = typer.Option(False, "--quick", help="Small sizes only (a smoke run, seconds)."),
    ):
        """Assembly vs np.full and SimPEG, every operator vs numpy BLAS, FFT at n=2000 (a few minutes)."""
        import time

        from . import console
        from ..bench.forward_report import run

        t0 = time.perf_counter()
        with console.status("measuring the forward core ...") as status:
            def log(msg):
                status.update(f"measuring the forward core: {msg}")
                console.log(msg)

            md, js, png = run(out, quick=quick, log=log)
        console.print(f"wrote {md}, {js}, {png} in {time.perf_counter() - t0:.0f} s")
