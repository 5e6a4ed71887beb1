"""``gravbench forward``: the field of a built-in model, with a summary and a PNG."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app, report_app):
    @app.command("forward")
    def forward(
        n: int = typer.Option(50, "--n", help="Grid size: n x n cells, 3n stations (the paper's setup)."),
        method: str = typer.Option("auto", "--method", help="Operator: auto | dense | matfree | fft."),
        kernel: str = typer.Option("exact", "--kernel", help="exact | midpoint (the paper's line mass)."),
        out: Path = typer.Option(Path("forward.png"), "--out", help="PNG to write (model and gx/gz profiles)."),
    ):
        """Compute gx and gz of a built-in model (a block and a lens) and plot them."""
        import time

        from rich.table import Table

        from . import UserError, console
        from .. import Problem
        from ..plotting import demo_model, model_and_data

        if n < 4:
            raise UserError(f"--n must be >= 4, got {n}")
        if method not in ("auto", "dense", "matfree", "fft"):
            raise UserError(f"--method must be auto, dense, matfree or fft, got {method!r}")
        if out.parent and not out.parent.exists():
            raise UserError(f"--out: directory {out.parent} does not exist")
        prob = Problem.paper(n=n, kernel=kernel)
        rho = demo_model(prob.grid)
        with console.status("compiling / building the operator (first run compiles numba kernels)..."):
            t0 = time.perf_counter()
            op = prob.operator(method=method)
            t_build = time.perf_counter() - t0
            t0 = time.perf_counter()
            g = op.matvec(rho.ravel())
            t_apply = time.perf_counter() - t0
        m = prob.survey.m
        tab = Table(title=f"gravbench forward  (n = {n})", show_header=False)
        tab.add_row("problem", prob.describe())
        tab.add_row("operator", f"{op.method}" + (f"  [dim]({op.reason})[/dim]" if op.reason else ""))
        tab.add_row("A shape", f"{op.shape[0]} x {op.shape[1]}  ({op.nbytes / 2**20:.1f} MiB held)")
        tab.add_row("build time", f"{t_build:.3f} s")
        tab.add_row("A v time", f"{t_apply * 1e3:.2f} ms")
        tab.add_row("gx range", f"{g[:m].min():+.4f} .. {g[:m].max():+.4f} mGal")
        tab.add_row("gz range", f"{g[m:].min():+.4f} .. {g[m:].max():+.4f} mGal")
        model_and_data(prob, rho, g, out, title=f"built-in model, n = {n}, {op.method} operator")
        tab.add_row("figure", str(out))
        console.print(tab)
