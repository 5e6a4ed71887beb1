"""``gravbench compare``: every provider x refiner pair on the same held-out models, per grid size.

Thin: validates the options, shows progress, calls
:func:`gravbench.bench.compare.run_comparison` and
:func:`gravbench.reports.compare.write_report`, and prints.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from ..bench.cases import default_providers, default_refiners  # noqa: E402
from ..bench.compare import DEFAULT_NOISE, DEFAULT_NS, DEFAULT_SAMPLES, DEFAULT_SEED  # noqa: E402, F401

DEFAULT_PROVIDERS = ",".join(default_providers())   # simpeg-l2,simpeg-sparse (gravbench[peers]) are opt-in
DEFAULT_REFINERS = ",".join(default_refiners())
DEFAULT_OUT = Path("reports")


def make_toolkit():
    """The sources of test data, providers and refiners (gravbench's own)."""
    from ..bench.runner import Toolkit

    return Toolkit()


def available_providers():
    from .. import providers

    return tuple(providers.names())


def available_refiners():
    from ..bench.cases import NO_REFINER

    try:
        from .. import refiners

        names = tuple(refiners.names())
    except (ImportError, AttributeError):  # pragma: no cover - refiners not installed
        names = ()
    return (NO_REFINER,) + names


def _split(opt, value):
    out = []
    for v in value if isinstance(value, (list, tuple)) else [value]:
        out += [x.strip() for x in str(v).split(",") if x.strip()]
    if not out:
        from . import UserError

        raise UserError(f"{opt} needs at least one name")
    return list(dict.fromkeys(out))


def _check_writable_dir(opt, d):
    from ._options import writable_dir

    writable_dir(opt, d)


def _command(ns, providers, refiners, samples, noise, seed, out, json_path, scheduler, weights=None,
             sigma_scale=1.0, noise_kind="gaussian", dataset=None):
    from . import command_line

    return command_line("gravbench compare --n " + " ".join(str(n) for n in ns), [
        ("--providers", ",".join(providers), DEFAULT_PROVIDERS), ("--refiners", ",".join(refiners), DEFAULT_REFINERS),
        ("--samples", samples, DEFAULT_SAMPLES), ("--noise", float(noise), DEFAULT_NOISE), ("--seed", seed, DEFAULT_SEED),
        ("--sigma-scale", float(sigma_scale), 1.0), ("--noise-kind", noise_kind, "gaussian"),
        ("--dataset", dataset, None), ("--out", Path(out), DEFAULT_OUT), ("--json", json_path, None), ("--scheduler", scheduler or None, None),
        *(("--weights", item, None) for item in weights or [])])


def register(app, report_app):
    @app.command("compare", context_settings={"allow_extra_args": True})
    def compare(
        ctx: typer.Context,
        n: List[int] = typer.Option(list(DEFAULT_NS), "--n",
                                    help="Grid sizes: --n 50 100 (n x n cells, 3n stations; each >= 4)."),
        providers: str = typer.Option(DEFAULT_PROVIDERS, "--providers",
                                      help="Comma-separated initial-guess providers (gravbench.providers.names())."),
        refiners: str = typer.Option(DEFAULT_REFINERS, "--refiners",
                                     help="Comma-separated refiners; 'none' scores the provider's model as is."),
        samples: int = typer.Option(DEFAULT_SAMPLES, "--samples", help="Held-out test models per grid size."),
        noise: float = typer.Option(DEFAULT_NOISE, "--noise", help="Relative noise level of the data (>= 0)."),
        seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seed of built test sets and stochastic providers."),
        out: Path = typer.Option(DEFAULT_OUT, "--out", help="Directory for compare-<n...>.md and its PNGs."),
        json_path: Optional[Path] = typer.Option(None, "--json",
                                                 help="JSON Lines record file (default: OUT/compare-<n...>.jsonl)."),
        resume: bool = typer.Option(False, "--resume",
                                    help="Keep the records in --json (and of an interrupted run) and skip their cases."),
        overwrite: bool = typer.Option(False, "--overwrite",
                                       help="Discard the records of an interrupted run (or replace a --json file "
                                            "that is not a record file) instead of refusing; an earlier record "
                                            "file is always replaced only once the new run has finished."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                                help="Dask scheduler: tcp://host:port, or local:N for a LocalCluster."),
        timeout: float = typer.Option(5.0, "--timeout", help="Seconds to wait for the Dask scheduler (> 0)."),
        gallery: bool = typer.Option(True, "--gallery/--no-gallery", help="Draw true vs estimated models."),
        weights: Optional[List[str]] = typer.Option(
            None, "--weights", help="PROVIDER=WEIGHTS (repeatable): a learned provider's weights, a .pt path or the "
                                    "name of weights made by 'gravbench train' (e.g. --weights cnn=cnn-50)."),
        sigma_scale: float = typer.Option(1.0, "--sigma-scale",
                                          help="Robustness: tell the methods this multiple of the true noise sigma "
                                               "(0.5, 2); the report gets a -sigma<s> suffix."),
        noise_kind: str = typer.Option("gaussian", "--noise-kind",
                                       help="Robustness: gaussian (the test set's noise), correlated (along the "
                                            "profile) or heavy (Student-t, 3 dof), same sigma."),
        dataset: Optional[str] = typer.Option(
            None, "--dataset", help="A standard data set whose test split holds the test models (e.g. the "
                                    "independent rectangles-50 or sections-50); --n defaults to its grid size."),
        scaling: Optional[Path] = typer.Option(
            Path("reports/scaling.json"), "--scaling",
            help="Scaling report whose largest feasible n per method skips larger cases (with the reason in "
                 "the record); ignored when the file does not exist. --scaling '' runs every case."),
    ):
        """Run every provider x refiner pair on held-out models at each grid size; rank them; write a report.

        Exit code 1 when any case failed (the report is still written and the count printed); cases skipped by
        design (no weights for a grid, a method that cannot run at that size, an optional package missing) are
        not failures, unless no case ran at all.
        """
        import math
        import os

        from . import RunFailed, UserError, console, err_console

        t_start = time.perf_counter()
        ns = list(n)
        for extra in ctx.args:
            try:
                ns.append(int(extra))
            except ValueError:
                raise UserError(f"unexpected argument {extra!r} (lists of names take commas: "
                                "--providers zero,tikhonov)") from None
        ns = list(dict.fromkeys(ns))
        if dataset is not None:
            from ..data import STANDARD

            if dataset not in STANDARD:
                raise UserError(f"--dataset: unknown standard data set {dataset!r}; choose from "
                                f"{', '.join(sorted(STANDARD))}")
            if ns == list(DEFAULT_NS):
                ns = [STANDARD[dataset].n]
            elif ns != [STANDARD[dataset].n]:
                raise UserError(f"--dataset {dataset} has grid size n = {STANDARD[dataset].n}; got --n "
                                f"{' '.join(map(str, ns))}")
        for v in ns:
            if v < 4:
                raise UserError(f"--n must be >= 4, got {v}")
        if samples < 1:
            raise UserError(f"--samples must be >= 1, got {samples}")
        if not (noise >= 0 and math.isfinite(noise)):
            raise UserError(f"--noise must be a finite number >= 0 (a relative level such as 0.01), got {noise}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise UserError(f"--timeout must be a finite number of seconds > 0, got {timeout}")
        if scheduler is not None:
            nw = scheduler.partition(":")[2] if scheduler.startswith("local") else None
            if not (("://" in scheduler and scheduler.split("://", 1)[1]) or scheduler == "local"
                    or (nw is not None and nw.isdigit() and int(nw) >= 1)):
                raise UserError(f"--scheduler must be tcp://host:port or local:N with N >= 1 worker processes, "
                                f"got {scheduler!r}")
        if resume and overwrite:
            raise UserError("--resume and --overwrite exclude each other: --resume continues the records in --json, "
                            "--overwrite replaces them")
        if seed < 0:
            raise UserError(f"--seed must be >= 0, got {seed}")
        from ..bench.robustness import NOISE_KINDS

        if not sigma_scale > 0:
            raise UserError(f"--sigma-scale must be > 0 (e.g. 0.5 or 2), got {sigma_scale}")
        if noise_kind not in NOISE_KINDS:
            raise UserError(f"--noise-kind must be one of {', '.join(NOISE_KINDS)}, got {noise_kind!r}")
        perturbed = sigma_scale != 1.0 or noise_kind != "gaussian"
        if perturbed and not noise > 0:
            raise UserError("--sigma-scale/--noise-kind need noisy data (--noise > 0)")
        provs = _split("--providers", providers)
        refs = _split("--refiners", refiners)
        known_p = available_providers()
        for p in provs:
            if p not in known_p:
                raise UserError(f"unknown provider {p!r}; expected one of {', '.join(known_p)}")
        known_r = available_refiners()
        for r in refs:
            if r not in known_r:
                raise UserError(f"unknown refiner {r!r}; expected one of {', '.join(known_r)}")
        wopts = {}
        for item in weights or []:
            pname, sep, spec = item.partition("=")
            if not sep or not pname or not spec:
                raise UserError(f"--weights must look like PROVIDER=WEIGHTS (e.g. cnn=cnn-50), got {item!r}")
            if pname not in provs:
                raise UserError(f"--weights {item}: provider {pname!r} is not in --providers ({', '.join(provs)})")
            wopts[pname] = spec
        from ..bench.compare import report_stem

        stem = report_stem(ns, sigma_scale, noise_kind, dataset)
        _check_writable_dir("--out", out)
        jpath = Path(json_path) if json_path is not None else Path(out) / f"{stem}.jsonl"
        if jpath.is_dir():
            raise UserError(f"--json: {jpath} is a directory; expected a record file name such as "
                            f"{jpath / (stem + '.jsonl')}")
        _check_writable_dir("--json", jpath.parent)
        if jpath.exists() and not os.access(jpath, os.W_OK):
            raise UserError(f"--json: {jpath} is read-only; make it writable or choose another file")
        from ..bench import runner
        from ..bench.compare import run_comparison
        from ..bench.runner import partial_path
        from ..reports import compare as compare_report

        if resume and not jpath.exists() and not partial_path(jpath).exists():
            err_console.print(f"[yellow]--resume: {jpath} does not exist yet; starting a new sweep[/yellow]")
        limits = None
        if scaling is not None and str(scaling) not in ("", "."):
            from ..reports.scaling import limits as scaling_limits

            try:
                limits = scaling_limits(scaling)
            except (ValueError, KeyError, TypeError) as exc:
                raise UserError(f"--scaling {scaling}: not a scaling report ({exc})") from None
        client = None
        if scheduler:
            with console.status(f"connecting to the Dask scheduler {scheduler} ..."):
                client = runner.connect(scheduler, timeout=timeout)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        _ = console.width  # the lazy console creates its rich Console on first use
        real_console = getattr(console, "_c", None) or console
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=real_console, transient=False) as bar:
                tasks = {v: bar.add_task(f"n = {v:>4}", total=samples * len(provs) * len(refs)) for v in ns}

                def on_record(rec, skipped):
                    bar.advance(tasks[int(rec["n"])])

                c = run_comparison(ns, provs, refs, samples=samples, noise=noise, seed=seed, records_path=jpath,
                                   resume=resume, overwrite=overwrite, toolkit=make_toolkit(), weights=wopts,
                                   sigma_scale=sigma_scale, noise_kind=noise_kind, limits=limits, scheduler=client,
                                   gallery=gallery, on_record=on_record, dataset=dataset,
                                   on_stage=lambda text: bar.console.print(text, highlight=False),
                                   log=lambda m: err_console.print(m, highlight=False, soft_wrap=True))
        except KeyboardInterrupt:
            err_console.print(f"Finished cases are kept in {partial_path(jpath)} ({jpath} is unchanged); rerun the "
                              "same command with --resume to continue.", highlight=False, soft_wrap=True)
            raise  # gravbench.cli.main prints "Interrupted." and exits 130
        except (runner.SweepMismatch, runner.OutputExists) as exc:
            raise UserError(str(exc)) from None
        except runner.SweepLocked as exc:
            raise RunFailed(str(exc)) from None
        except ValueError as exc:   # a weights name that does not resolve ("weights cnn=...: ...")
            raise UserError(f"--{exc}" if str(exc).startswith("weights ") else str(exc)) from None
        finally:
            if client is not None:
                cluster = getattr(client, "cluster", None)
                client.close()
                if cluster is not None and scheduler.startswith("local"):
                    cluster.close()
        records = c.records
        try:  # the records are complete and in place; an interrupt now only loses the report
            for t in compare_report.rich_tables(records, c.summary):
                console.print(t)
            for line in c.sources:
                if " weights: " in line:
                    console.print(line, highlight=False, soft_wrap=True)
            wall = time.perf_counter() - t_start
            cmd = _command(ns, provs, refs, samples, noise, seed, out, json_path, scheduler, weights, sigma_scale,
                           noise_kind, dataset)
            written = compare_report.write_report(records, out, ns, command=cmd, wall_seconds=wall,
                                                  settings=c.settings, gallery=c.gallery, json_path=jpath,
                                                  provider_notes=c.sources, stem=stem,
                                                  training=compare_report.training_costs(provs, ns),
                                                  summary=c.summary)
        except KeyboardInterrupt:
            err_console.print(f"The records are complete in {jpath}; rerun the same command with --resume to write "
                              "the report without running any case again.", highlight=False, soft_wrap=True)
            raise
        counts = runner.count_status(records)
        nerr, nskip = counts["error"], counts["skipped"]
        console.print(f"{len(records)} cases ({nerr} failed, {nskip} skipped by design) in {wall:.1f} s; "
                      f"records: {jpath}")
        for p in written:
            console.print(f"wrote {p}")
        if nerr:
            first = next(r["error"] for r in records if r.get("status") == "error")
            raise RunFailed(f"{nerr} of {len(records)} cases failed (first: {first}); see {jpath}")
        if records and not counts["ok"]:
            first = next(r["reason"] for r in records if r.get("status") == "skipped")
            raise RunFailed(f"no case ran: all {len(records)} were skipped (first reason: {first})")
