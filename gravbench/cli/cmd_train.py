"""``gravbench train MODEL``: train a learned provider (cnn, vae, gan, unet) and write its weights + manifest."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .._cmdline import command_line


#: model options (-o key=value) that must be finite numbers > 0
_POSITIVE_OPTIONS = ("max_seconds",)


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

        from . import _options as opt
        from . import console

        opt.choice("MODEL", model, ("cnn", "vae", "gan", "unet"))
        opt.integer("--epochs", epochs, minimum=1)
        opt.integer("--batch-size", batch_size, minimum=1)
        opt.number("--lr", lr, gt=0)
        opt.integer("--seed", seed, minimum=0)
        opt.integer("--threads", threads, minimum=1)
        if out is not None:
            # a .pt gravbench wrote has its .json manifest beside it; any other existing file is not overwritten
            opt.out_file("--out", out, suffix=".pt", ours=lambda p: p.with_suffix(".json").exists())
        opts = _parse_options(option)
        for key in _POSITIVE_OPTIONS:
            if key in opts:
                opt.number(f"-o {key}", opts[key], gt=0)
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
