"""``gravbench report dip``: the deep image prior against the L2 providers; writes reports/dip.md (+ .json)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app, report_app):
    @report_app.command("dip")
    def report_dip(
        out: Path = typer.Option(Path("reports"), "--out", help="Directory for dip.md and dip.json."),
        heldout: int = typer.Option(24, "--heldout", min=1, help="Held-out rectangular-block models (n = 50)."),
        per_family: int = typer.Option(20, "--per-family", min=0,
                                       help="Models per family of the paper-50 test split (0: skip)."),
        plain_samples: int = typer.Option(3, "--plain-samples", min=0,
                                          help="Held-out models for the slow pre-recipe dip (2,000 steps each)."),
        jobs: int = typer.Option(1, "--jobs", min=1, help="Worker processes (one torch thread each)."),
    ):
        """dip vs tikhonov / depth-weighted / smooth: held-out blocks and each paper-50 family (~190 dip fits)."""
        import time

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from . import console
        from ..bench.dip_report import run

        parts = ["gravbench report dip"]
        if heldout != 24:
            parts.append(f"--heldout {heldout}")
        if per_family != 20:
            parts.append(f"--per-family {per_family}")
        if plain_samples != 3:
            parts.append(f"--plain-samples {plain_samples}")
        if jobs != 1:
            parts.append(f"--jobs {jobs}")
        t0 = time.perf_counter()
        _ = console.width  # the lazy console builds the rich Console; Progress needs the real one (a context manager)
        real = getattr(console, "_c", None) or console
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=real) as prog:
            task = prog.add_task("dip report: (set, method) pieces", total=None)

            def progress(done, total):
                prog.update(task, completed=done, total=total)

            md, js = run(out, heldout=heldout, per_family=per_family, plain_samples=plain_samples, jobs=jobs,
                         log=console.log, progress=progress, command=" ".join(parts))
        console.print(f"wrote {md}, {js} in {time.perf_counter() - t0:.0f} s")
