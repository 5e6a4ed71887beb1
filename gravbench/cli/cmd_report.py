"""``gravbench report ...``: one command per report generator (reports/ in the repository).

Each command validates its options, shows progress, calls the generator's
``run`` (or ``write_report``) in :mod:`gravbench.bench` / :mod:`gravbench.data`
and prints what it wrote. The generators import numba, torch or dask, so they
load inside the command bodies: ``gravbench --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import List, Optional

import typer

from . import RunFailed, UserError, command_line, console

ROBUSTNESS_NS = (50,)
ROBUSTNESS_PROVIDERS = "zero,tikhonov,cnn"
ROBUSTNESS_REFINERS = "none,cgls,icg,tikhonov"
ROBUSTNESS_SAMPLES = 32


@contextlib.contextmanager
def _status_log(console, title, prefix):
    """A rich status line showing the generator's latest message (after ``prefix``); each message is also logged."""
    with console.status(title) as status:
        def log(msg):
            status.update(f"{prefix}{str(msg).strip()}")
            console.log(msg)

        yield log


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
        from ..reports import classical as cr

        t0 = time.perf_counter()
        if assemble:
            md, js = cr.assemble(out)
            console.print(f"wrote {md}, {js}")
            return
        with _status_log(console, "measuring the classical inversions ...", "classical: ") as log:
            if part is not None:
                path = cr.run_part(part, out, quick=quick, log=log)
                console.print(f"wrote {path} in {time.perf_counter() - t0:.0f} s")
                return
            md, js = cr.run(out, quick=quick, log=log)
        console.print(f"wrote {md}, {js} in {time.perf_counter() - t0:.0f} s")

    @report_app.command("datasets")
    def report_datasets(
        out: Path = typer.Option(Path("reports"), "--out", help="Report directory (datasets.md, datasets/*.png)."),
        timing: bool = typer.Option(True, "--timing/--no-timing",
                                    help="Time a fresh paper-50 build (29,000 models, about 10-60 s)."),
    ):
        """Write reports/datasets.md and a gallery PNG per family."""
        from ..reports.datasets import run

        md = run(out, log=console.print, timing=timing)
        console.print(f"wrote {md}")

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
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from ..reports.dip import run

        cmd = command_line("gravbench report dip", [("--heldout", heldout, 24), ("--per-family", per_family, 20),
                                                    ("--plain-samples", plain_samples, 3), ("--jobs", jobs, 1)])
        t0 = time.perf_counter()
        _ = console.width  # the lazy console builds the rich Console; Progress needs the real one (a context manager)
        real = getattr(console, "_c", None) or console
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=real) as prog:
            task = prog.add_task("dip report: (set, method) pieces", total=None)

            def progress(done, total):
                prog.update(task, completed=done, total=total)

            md, js = run(out, heldout=heldout, per_family=per_family, plain_samples=plain_samples, jobs=jobs,
                         log=console.log, progress=progress, command=cmd)
        console.print(f"wrote {md}, {js} in {time.perf_counter() - t0:.0f} s")

    @report_app.command("forward")
    def report_forward(
        out: Path = typer.Option(Path("reports"), "--out", help="Directory for forward.md, forward.json, forward.png."),
        quick: bool = typer.Option(False, "--quick", help="Small sizes only (a smoke run, seconds)."),
    ):
        """Assembly vs np.full and SimPEG, every operator vs numpy BLAS, FFT at n=2000 (a few minutes)."""
        from ..reports.forward import run

        t0 = time.perf_counter()
        with _status_log(console, "measuring the forward core ...", "measuring the forward core: ") as log:
            md, js, png = run(out, quick=quick, log=log)
        console.print(f"wrote {md}, {js}, {png} in {time.perf_counter() - t0:.0f} s")

    @report_app.command("latent")
    def report_latent(
        out: Path = typer.Option(Path("reports"), "--out", help="Directory for latent.md, latent.json, PNGs and "
                                 "the latent-<kind>.jsonl records."),
        quick: bool = typer.Option(False, "--quick", help="A smoke run (seconds): 2 models, 2 starts, tiny budgets."),
        kinds: str = typer.Option("vae,gan", "--kinds", "--generators",
                                  help="Comma-separated generators to run: vae, gan (one per process to run both "
                                       "halves in parallel)."),
        assemble: bool = typer.Option(False, "--assemble", help="Run nothing: write the report from the JSONL "
                                      "records of --kinds (after the halves have run)."),
        threads: int = typer.Option(0, "--threads", help="torch threads (0: torch's default)."),
        dataset: str = typer.Option("paper-50", "--dataset", help="Standard data set whose test split is searched "
                                    "(the generators need weights for its grid); not paper-50: files are named "
                                    "latent-<dataset>.*"),
    ):
        """Laloy et al. (2019)'s latent search as he ran it (Adam 10,000 iterations, Gauss-Newton with a
        finite-difference Jacobian and full steps) beside gravbench's variants (damped / autodiff Gauss-Newton,
        DE, CNN warm start, restarts) on 20 test models of --dataset (paper-50) x 10 shared starts, with the
        generators' reconstruction / projection errors. Saves every search to latent-<kind>.jsonl and resumes
        from it; about 1-2 h per generator on one core on paper-50, minutes on fwi-51 (the estimate is printed
        at start)."""

        ks = tuple(k.strip() for k in kinds.split(",") if k.strip())
        bad = [k for k in ks if k not in ("vae", "gan")]
        if not ks or bad:
            raise UserError(f"--kinds must be a comma-separated list of vae, gan; got {kinds!r}")
        if threads < 0:
            raise UserError(f"--threads must be >= 0, got {threads}")
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} exists and is not a directory")
        from ..data.sets import STANDARD

        if dataset not in STANDARD:
            raise UserError(f"--dataset must be a standard data set ({', '.join(sorted(STANDARD))}), got {dataset!r}")
        try:
            from ..providers._torchutil import require_torch

            require_torch()
        except ImportError as exc:
            raise UserError(str(exc)) from None
        from ..reports.latent import run

        t0 = time.perf_counter()
        with _status_log(console, "latent search experiment ...", "latent search: ") as log:
            md, js, figs = run(out, quick=quick, log=log, kinds=ks, threads=threads or None, assemble_only=assemble,
                              dataset=dataset)
        console.print(f"wrote {md}, {js} and {len(figs)} figure(s) in {time.perf_counter() - t0:.0f} s")

    @report_app.command("robustness")
    def robustness(
        n: List[int] = typer.Option(list(ROBUSTNESS_NS), "--n", help="Grid sizes (each >= 4)."),
        providers: str = typer.Option(ROBUSTNESS_PROVIDERS, "--providers", help="Comma-separated providers."),
        refiners: str = typer.Option(ROBUSTNESS_REFINERS, "--refiners", help="Comma-separated refiners ('none' too)."),
        samples: int = typer.Option(ROBUSTNESS_SAMPLES, "--samples", help="Test models per grid size."),
        noise: float = typer.Option(0.01, "--noise", help="Relative noise level (> 0)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the noise variants and stochastic providers."),
        out: Path = typer.Option(Path("reports"), "--out", help="Output directory."),
    ):
        """Nominal noise, sigma told x 0.5 and x 2, correlated and heavy-tailed noise: how error and chi2 move."""
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
        cmd = command_line("gravbench report robustness --n " + " ".join(str(v) for v in ns), [
            ("--providers", ",".join(provs), ROBUSTNESS_PROVIDERS), ("--refiners", ",".join(refs), ROBUSTNESS_REFINERS),
            ("--samples", samples, ROBUSTNESS_SAMPLES), ("--noise", float(noise), 0.01), ("--seed", seed, 0),
            ("--out", Path(out), Path("reports"))])
        settings = {"samples": samples, "noise": f"{noise:g}", "seed": seed, "providers": ", ".join(provs),
                    "refiners": ", ".join(refs)}
        md = write_report(records, out, stem, command=cmd, wall_seconds=time.perf_counter() - t0,
                          settings=settings)
        nerr = sum(r["error"] is not None for r in records)
        console.print(f"{len(records)} cases ({nerr} with an error) in {time.perf_counter() - t0:.1f} s")
        console.print(f"wrote {md}")
        console.print(f"wrote {Path(out) / (stem + '.jsonl')}")

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
        from ..reports import scaling as sr

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

    @report_app.command("solvers")
    def report_solvers(
        out: Path = typer.Option(Path("reports"), "--out", help="Directory for solvers.md, solvers.json, solvers.png."),
        quick: bool = typer.Option(False, "--quick", help="Tiny sizes only (a smoke run, seconds)."),
    ):
        """Every refiner at n = 25..200, gmres/lgmres vs SciPy and PyAMG, the issue-3 targets (a few minutes)."""
        from ..reports.solvers import run

        if out.exists() and not out.is_dir():
            raise UserError(f"--out: {out} exists and is not a directory")
        t0 = time.perf_counter()
        with _status_log(console, "measuring solvers and refiners ...", "solvers: ") as log:
            md, data = run(out, quick=quick, log=log)
        from rich.table import Table

        tab = Table(title="issue #3 targets")
        tab.add_column("target")
        tab.add_column("measured")
        tab.add_column("met")
        for t in data["targets"]:
            tab.add_row(t["target"], t["measured"], "yes" if t["met"] else "[red]NO[/red]")
        console.print(tab)
        console.print(f"wrote {md} (+ .json, .png) in {time.perf_counter() - t0:.0f} s")

    @report_app.command("table1")
    def table1(
        dataset: str = typer.Option("paper-50", "--dataset", help="Standard data set (its test split is used)."),
        samples: int = typer.Option(1000, "--samples", help="Test models for the cheap providers (zero, cnn)."),
        refine_samples: int = typer.Option(1000, "--refine-samples", help="Test models for classical solvers and CNN + refiner rows."),
        latent_samples: int = typer.Option(3, "--latent-samples", help="Test models for vae / gan / dip (slow searches)."),
        out: Path = typer.Option(Path("reports"), "--out", help="Output directory."),
        seed: int = typer.Option(0, "--seed"),
    ):
        """Providers alone and CNN + each refiner on the test split, with 1 % noise and without; figures like the paper's 8-11."""
        from ..reports.table1 import run

        if samples < 1 or refine_samples < 1 or latent_samples < 1:
            raise UserError("--samples, --refine-samples and --latent-samples must be >= 1")
        md, res = run(out, log=console.print, dataset=dataset, samples=samples, refine_samples=refine_samples,
                      latent_samples=latent_samples, seed=seed)
        for s in res["summary_lines"]:
            console.print(s)
        console.print(f"[green]wrote[/green] {md}")
        failed = [s for s in res.get("notes", []) if " failed at " in s]
        if failed:  # the report is written, but a row that failed fails the command (exit 1)

            raise RunFailed(f"{len(failed)} row(s) of the table failed (first: {failed[0]}); see {md}")

    @report_app.command("uncertainty")
    def report_uncertainty(
        out: Path = typer.Option(Path("reports"), "--out", help="Directory for uncertainty.md, .json and the PNGs."),
        quick: bool = typer.Option(False, "--quick", help="small-16 data, n = 16 / 50 checks, no VAE (a smoke run)."),
        pcn_per_family: int = typer.Option(None, "--pcn-per-family", min=1,
                                           help="Test models per family for the sampled methods (default 6)."),
    ):
        """Coverage and CRPS of every uncertainty method on paper-50, the exactness check, n = 200 timing (minutes)."""
        from ..reports.uncertainty import run

        t0 = time.perf_counter()
        with _status_log(console, "measuring uncertainty calibration ...", "uncertainty: ") as log:
            paths = run(out, quick=quick, log=log, pcn_per_family=pcn_per_family)
        console.print(f"wrote {', '.join(str(p) for p in paths)} in {time.perf_counter() - t0:.0f} s")

    @report_app.command("unet")
    def report_unet(
        out: Path = typer.Option(Path("reports"), "--out", help="Directory for unet.md and unet.json."),
        quick: bool = typer.Option(False, "--quick", help="16 models at 0 and 1 % noise (a smoke run)."),
        samples: Optional[int] = typer.Option(None, "--samples", help="Test models per noise level (default 1000)."),
        weights: Optional[str] = typer.Option(None, "--weights", help="U-Net weights (.pt path or trained name) "
                                                                      "instead of the shipped ones."),
        assemble: bool = typer.Option(False, "--assemble", help="Measure nothing: rewrite unet.md from the unet.json "
                                      "in --out with this version's text."),
    ):
        """unet vs cnn, every classical provider (tikhonov, depth-weighted, smooth, sparse, compact) and zero, and unet -> cgls on paper-50 test, noise 0/1/3/5 % (minutes)."""
        if samples is not None and samples < 1:
            raise UserError(f"--samples must be >= 1, got {samples}")
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} exists and is not a directory")
        try:
            from ..providers._torchutil import require_torch

            require_torch()
        except ImportError as exc:
            raise UserError(str(exc)) from None
        if assemble:
            from ..reports.unet import assemble as assemble_unet

            try:
                md, js = assemble_unet(out)
            except FileNotFoundError as exc:
                raise UserError(str(exc)) from None
            console.print(f"wrote {md}, {js}")
            return
        from ..reports.unet import run

        cmd = command_line("gravbench report unet" + (" --quick" if quick else ""), [
            ("--out", out, Path("reports")), ("--samples", samples, None), ("--weights", weights, None)])
        t0 = time.perf_counter()
        with _status_log(console, "measuring the U-Net ...", "unet: ") as log:
            md, js = run(out, quick=quick, log=log, samples=samples, weights=weights, command=cmd)
        console.print(f"wrote {md}, {js} in {time.perf_counter() - t0:.0f} s")
