"""``gravbench report robustness``: the methods under a wrong sigma, correlated and heavy-tailed noise
-> reports/robustness-<n...>.md (+ .jsonl records).

Thin: validates the options, then calls :func:`gravbench.bench.robustness.run_conditions` and
:func:`gravbench.bench.robustness.write_report`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List

import typer

DEFAULT_NS = (50,)
DEFAULT_PROVIDERS = "zero,tikhonov,cnn"
DEFAULT_REFINERS = "none,cgls,icg,tikhonov"
DEFAULT_SAMPLES = 32


def register(app, report_app):
    @report_app.command("robustness")
    def robustness(
        n: List[int] = typer.Option(list(DEFAULT_NS), "--n", help="Grid sizes (each >= 4)."),
        providers: str = typer.Option(DEFAULT_PROVIDERS, "--providers", help="Comma-separated providers."),
        refiners: str = typer.Option(DEFAULT_REFINERS, "--refiners", help="Comma-separated refiners ('none' too)."),
        samples: int = typer.Option(DEFAULT_SAMPLES, "--samples", help="Test models per grid size."),
        noise: float = typer.Option(0.01, "--noise", help="Relative noise level (> 0)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the noise variants and stochastic providers."),
        out: Path = typer.Option(Path("reports"), "--out", help="Output directory."),
    ):
        """Nominal noise, sigma told x 0.5 and x 2, correlated and heavy-tailed noise: how error and chi2 move."""
        from . import UserError, console
        from .cmd_compare import _check_writable_dir, _split, available_providers, available_refiners, make_toolkit

        t0 = time.perf_counter()
        ns = list(dict.fromkeys(n))
        if any(v < 4 for v in ns):
            raise UserError(f"--n must be >= 4, got {ns}")
        if samples < 1:
            raise UserError(f"--samples must be >= 1, got {samples}")
        if not noise > 0:
            raise UserError(f"--noise must be > 0 (a relative level such as 0.01), got {noise}")
        if seed < 0:
            raise UserError(f"--seed must be >= 0, got {seed}")
        provs = _split("--providers", providers)
        refs = _split("--refiners", refiners)
        for p in provs:
            if p not in available_providers():
                raise UserError(f"unknown provider {p!r}; expected one of {', '.join(available_providers())}")
        for r in refs:
            if r not in available_refiners():
                raise UserError(f"unknown refiner {r!r}; expected one of {', '.join(available_refiners())}")
        _check_writable_dir("--out", out)

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from ..bench.cases import build_cases
        from ..bench.robustness import CONDITIONS, run_conditions, write_report

        stem = "robustness-" + "-".join(str(v) for v in ns)
        cases = build_cases(ns, provs, refs, samples=samples, noise=noise, seed=seed)
        _ = console.width
        real = getattr(console, "_c", None) or console
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=real) as bar:
            task = bar.add_task(f"{len(CONDITIONS)} conditions", total=len(cases) * len(CONDITIONS))
            records = run_conditions(cases, CONDITIONS, Path(out) / f"{stem}.jsonl", base=make_toolkit(),
                                     on_record=lambda rec, skipped: bar.advance(task))
        parts = ["gravbench report robustness --n " + " ".join(str(v) for v in ns)]
        if ",".join(provs) != DEFAULT_PROVIDERS:
            parts.append(f"--providers {','.join(provs)}")
        if ",".join(refs) != DEFAULT_REFINERS:
            parts.append(f"--refiners {','.join(refs)}")
        if samples != DEFAULT_SAMPLES:
            parts.append(f"--samples {samples}")
        if noise != 0.01:
            parts.append(f"--noise {noise:g}")
        if seed != 0:
            parts.append(f"--seed {seed}")
        if Path(out) != Path("reports"):
            parts.append(f"--out {out}")
        settings = {"samples": samples, "noise": f"{noise:g}", "seed": seed, "providers": ", ".join(provs),
                    "refiners": ", ".join(refs)}
        md = write_report(records, out, stem, command=" ".join(parts), wall_seconds=time.perf_counter() - t0,
                          settings=settings)
        nerr = sum(r["error"] is not None for r in records)
        console.print(f"{len(records)} cases ({nerr} with an error) in {time.perf_counter() - t0:.1f} s")
        console.print(f"wrote {md}")
        console.print(f"wrote {Path(out) / (stem + '.jsonl')}")
