"""``gravbench report latent``: Laloy et al.'s latent-search experiment on gravity -> reports/latent.md (+ PNG, JSON)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app, report_app):
    @report_app.command("latent")
    def report_latent(
        out: Path = typer.Option(Path("reports"), "--out", help="Directory for latent.md, latent.json and PNGs."),
        quick: bool = typer.Option(False, "--quick", help="A smoke run (seconds): one model, 4 starts, tiny caps."),
        kinds: str = typer.Option("vae,gan", "--generators", help="Comma-separated generators: vae, gan."),
        threads: int = typer.Option(0, "--threads", help="torch threads (0: torch's default)."),
    ):
        """Success rate, evaluations and seconds of Adam, Gauss-Newton (fd / autodiff), DE and the CNN warm start
        over many random starts in the shipped VAE and GAN (up to ~10 minutes)."""
        import time

        from . import UserError, console

        ks = tuple(k.strip() for k in kinds.split(",") if k.strip())
        bad = [k for k in ks if k not in ("vae", "gan")]
        if not ks or bad:
            raise UserError(f"--generators must be a comma-separated list of vae, gan; got {kinds!r}")
        if threads < 0:
            raise UserError(f"--threads must be >= 0, got {threads}")
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} exists and is not a directory")
        try:
            from ..providers._torchutil import require_torch

            require_torch()
        except ImportError as exc:
            raise UserError(str(exc)) from None
        from ..bench.latent import run

        t0 = time.perf_counter()
        with console.status("latent search experiment ...") as status:
            def log(msg):
                status.update(f"latent search: {msg}")
                console.log(msg)

            md, js, figs = run(out, quick=quick, log=log, kinds=ks, threads=threads or None)
        console.print(f"wrote {md}, {js} and {len(figs)} figure(s) in {time.perf_counter() - t0:.0f} s")
