"""``gravbench train MODEL``: train a learned provider (cnn, vae, gan, unet) and write its weights + manifest."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .._cmdline import command_line


def _parse_options(items):
    out = {}
    for it in items or []:
        k, sep, v = it.partition("=")
        if not sep or not k:
            from . import UserError

            raise UserError(f"--option must look like key=value, got {it!r}")
        k = k.replace("-", "_")
        for conv in (int, float):
            try:
                out[k] = conv(v)
                break
            except ValueError:
                pass
        else:
            out[k] = {"true": True, "false": False, "none": None}.get(v.lower(), v)
    return out


def register(app, report_app):
    @app.command("train")
    def train(
        model: str = typer.Argument(..., help="cnn | vae | gan | unet"),
        dataset: str = typer.Option("paper-50", "--dataset", help="Standard data set name (paper-50, paper-100, ...) or a built training-set path."),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="Maximum epochs (early stopping on the val split may end sooner; default: the model's, cnn 40)."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Default: the model's (64)."),
        lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate (default: the model's; cnn 2e-3 with cosine decay to lr/20)."),
        seed: int = typer.Option(0, "--seed"),
        out: Optional[Path] = typer.Option(None, "--out", help="Weight file to write, .pt (default: <cache>/weights/<model>-<n>.pt, "
                                                               "never the installed package unless --out points there)."),
        resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint beside --out."),
        device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
        threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads (default: torch's choice)."),
        option: Optional[List[str]] = typer.Option(None, "--option", "-o",
                                                   help="Model option key=value (repeatable), e.g. -o arch=paper -o out_stride=2 -o max_seconds=840."),
    ):
        """Train a learned provider; seeded, resumable, early-stopped; writes <out>.pt and its manifest <out>.json."""
        import importlib

        from . import UserError, console

        import math

        if model not in ("cnn", "vae", "gan", "unet"):
            raise UserError(f"MODEL must be cnn, vae, gan or unet, got {model!r}")
        if epochs is not None and epochs < 1:
            raise UserError(f"--epochs must be an integer >= 1, got {epochs}")
        if batch_size is not None and batch_size < 1:
            raise UserError(f"--batch-size must be an integer >= 1, got {batch_size}")
        if lr is not None and not (lr > 0 and math.isfinite(lr)):
            raise UserError(f"--lr must be a finite number > 0, got {lr}")
        if seed < 0:
            raise UserError(f"--seed must be >= 0, got {seed}")
        if threads is not None and threads < 1:
            raise UserError(f"--threads must be >= 1, got {threads}")
        if out is not None:
            if out.suffix != ".pt":
                raise UserError(f"--out must name a .pt file (its .json manifest goes beside it), got {out}")
            if out.is_dir():
                raise UserError(f"--out: {out} is a directory; expected a .pt file name")
            if not out.parent.exists():
                raise UserError(f"--out: directory {out.parent} does not exist")
        opts = _parse_options(option)
        from . import RunFailed

        try:
            from ..providers._torchutil import require_torch

            require_torch()
            mod = importlib.import_module(f"gravbench.providers.{model}")
        except ImportError as exc:
            raise RunFailed(f"cannot train {model}: {exc}") from None
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        sched = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr)) if v is not None}
        opts["command"] = command_line(f"gravbench train {model} --dataset {dataset}", [
            *((f"--{k.replace('_', '-')}", v, None) for k, v in sched.items()), ("--seed", seed, None),
            ("--out", out, None), ("--resume", resume, False), ("--device", device, "cpu"),
            ("--threads", threads or None, None), *(("-o", o, None) for o in option or [])])
        try:
            man = mod.train(dataset, **sched, seed=seed, out=out, resume=resume, device=device, progress=True, **opts)
        except (ValueError, FileNotFoundError) as exc:
            raise RunFailed(str(exc)) from None
        from ..providers._train import default_out

        shape = man.get("shape") or (man.get("config") or {}).get("shape")
        where = out if out is not None else (default_out(model, tuple(shape)) if shape else man.get("file"))
        console.print(f"[green]wrote[/green] {where} (+ .json manifest)  sha256 {man.get('sha256', '')[:12]}...  "
                      f"{man.get('bytes', 0) / 1e6:.2f} MB", highlight=False)
        console.print(f"use them with: gravbench.providers.get({model!r}, weights={str(where)!r})", highlight=False)
        metrics = {k: v for k, v in (man.get("metrics") or {}).items() if isinstance(v, (int, float))}
        for k, v in metrics.items():
            console.print(f"  {k}: {v:.4g}")
