"""``gravbench report scaling``: cost versus n for every method; writes reports/scaling.md (+ .json, .png)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app, report_app):
    @report_app.command("scaling")
    def report_scaling(
        out: Path = typer.Option(Path("reports"), "--out", help="Directory for scaling.md/.json/.jsonl/.png."),
        quick: bool = typer.Option(False, "--quick", help="n = 50, 100, 200 only (a smoke run)."),
        n: Optional[List[int]] = typer.Option(None, "--n", help="Grid sizes (default 50 ... 8000)."),
        methods: Optional[str] = typer.Option(None, "--methods",
                                              help="Comma-separated refiner / provider names (default: all)."),
        time_budget: float = typer.Option(20.0, "--time-budget", help="Stop a method after a case longer than this (s)."),
        memory_budget: float = typer.Option(4096.0, "--memory-budget",
                                            help="Stop a method after a case adding more RSS than this (MiB)."),
        cgls: Optional[List[int]] = typer.Option(None, "--cgls",
                                                 help="Also time CGLS end to end at these n (float64 and float32)."),
        cgls_only: bool = typer.Option(False, "--cgls-only", help="Only the --cgls check (no method sweep)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Discard earlier records instead of resuming."),
    ):
        """Wall time, operator applications and peak RSS against n per method, with exponents (minutes)."""
        import time

        from . import UserError, console
        from ..bench import scaling_report as sr

        for v in list(n or []) + list(cgls or []):
            if v < 4:
                raise UserError(f"--n and --cgls sizes must be >= 4, got {v}")
        if time_budget <= 0 or memory_budget <= 0:
            raise UserError("--time-budget and --memory-budget must be > 0")
        if cgls_only and not cgls:
            raise UserError("--cgls-only needs --cgls N")
        names = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
        t0 = time.perf_counter()
        try:
            if cgls_only:
                checks = []
                for size in cgls:
                    for c in sr.cgls_compare(size, out, log=console.log):
                        checks.append(c)
                        console.print(
                            f"n={c['n']} {c['dtype']}: total {c['seconds_total']:.1f} s (problem "
                            f"{c['seconds_problem']:.2f}, operator {c['seconds_operator']:.1f}, data "
                            f"{c['seconds_data']:.1f}, CGLS {c['seconds_cgls']:.1f} s, {c['niter']} iterations), "
                            f"peak RSS {c['peak_rss_mb']:.0f} MiB, chi2 {c['chi2']:.3f}"
                            + (f", vs float64 {c['rel_diff_vs_float64']:.1e}" if 'rel_diff_vs_float64' in c else ""))
                import json
                Path(out).mkdir(parents=True, exist_ok=True)
                (Path(out) / "scaling-cgls.json").write_text(json.dumps(checks, indent=1))
                md, js, png = sr.write(out)
            else:
                md, js, png = sr.run(out, quick=quick, log=console.log, methods=names, sizes=n or None,
                                     time_budget=time_budget, memory_budget=memory_budget, overwrite=overwrite,
                                     cgls_check=list(cgls) if cgls else None)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        console.print(f"wrote {md}, {js}, {png} in {time.perf_counter() - t0:.0f} s")
