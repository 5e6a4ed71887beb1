"""``gravbench report classical``: regularised refiners vs SimPEG, written to reports/classical.md (+ .json)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app, report_app):
    @report_app.command("classical")
    def report_classical(
        out: Path = typer.Option(Path("reports"), "--out", help="Directory for classical.md and classical.json."),
        quick: bool = typer.Option(False, "--quick", help="Tiny counts, no n = 1000 (a smoke run)."),
        part: str = typer.Option(None, "--part", help="Measure one section (blocks, gc, paper50, scaling) into "
                                                     "OUT/classical-part-<name>.json, e.g. in parallel processes."),
        assemble: bool = typer.Option(False, "--assemble", help="Write the report from the four part files."),
    ):
        """smooth / sparse / compact vs SimPEG L2 / sparse on blocks models, paper-50 per family, n = 200 and 1000
        (about 20 minutes on a loaded 2-core machine)."""
        import time

        from . import console
        from ..bench import classical_report as cr

        t0 = time.perf_counter()
        if assemble:
            md, js = cr.assemble(out)
            console.print(f"wrote {md}, {js}")
            return
        with console.status("measuring the classical inversions ...") as status:
            def log(msg):
                status.update(f"classical: {msg}")
                console.log(msg)

            if part is not None:
                path = cr.run_part(part, out, quick=quick, log=log)
                console.print(f"wrote {path} in {time.perf_counter() - t0:.0f} s")
                return
            md, js = cr.run(out, quick=quick, log=log)
        console.print(f"wrote {md}, {js} in {time.perf_counter() - t0:.0f} s")
