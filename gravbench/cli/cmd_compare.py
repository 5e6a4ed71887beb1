"""``gravbench compare``: every provider x refiner pair on the same held-out models, per grid size.

Thin: validates the options, then calls :func:`gravbench.bench.runner.run_cases`
and :func:`gravbench.bench.compare_report.write_report`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

#: defaults chosen so that ``gravbench compare --n 50 100`` takes <= 5 minutes on 2 cores (warm numba cache)
DEFAULT_NS = (50, 100)
from ..bench.cases import default_providers, default_refiners  # noqa: E402

DEFAULT_PROVIDERS = ",".join(default_providers())   # + simpeg-l2,simpeg-sparse with gravbench[peers]
DEFAULT_REFINERS = ",".join(default_refiners())
DEFAULT_SAMPLES = 8
DEFAULT_NOISE = 0.01
DEFAULT_SEED = 0
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
    import os
    import tempfile

    from . import UserError

    d = Path(d)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{opt}: cannot create directory {d} ({exc.strerror or exc})") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".gravbench-write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise UserError(f"{opt}: directory {d} is not writable ({exc.strerror or exc})") from None


def _command(ns, providers, refiners, samples, noise, seed, out, json_path, scheduler):
    parts = ["gravbench compare --n " + " ".join(str(n) for n in ns)]
    if ",".join(providers) != DEFAULT_PROVIDERS:
        parts.append(f"--providers {','.join(providers)}")
    if ",".join(refiners) != DEFAULT_REFINERS:
        parts.append(f"--refiners {','.join(refiners)}")
    if samples != DEFAULT_SAMPLES:
        parts.append(f"--samples {samples}")
    if noise != DEFAULT_NOISE:
        parts.append(f"--noise {noise:g}")
    if seed != DEFAULT_SEED:
        parts.append(f"--seed {seed}")
    if Path(out) != DEFAULT_OUT:
        parts.append(f"--out {out}")
    if json_path is not None:
        parts.append(f"--json {json_path}")
    if scheduler:
        parts.append(f"--scheduler {scheduler}")
    return " ".join(parts)


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
        resume: bool = typer.Option(False, "--resume", help="Keep the records in --json and skip their cases."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                                help="Dask scheduler: tcp://host:port, or local:N for a LocalCluster."),
        timeout: float = typer.Option(5.0, "--timeout", help="Seconds to wait for the Dask scheduler."),
        gallery: bool = typer.Option(True, "--gallery/--no-gallery", help="Draw true vs estimated models."),
    ):
        """Run every provider x refiner pair on held-out models at each grid size; rank them; write a report."""
        from . import UserError, console, err_console

        t_start = time.perf_counter()
        ns = list(n)
        for extra in ctx.args:
            try:
                ns.append(int(extra))
            except ValueError:
                raise UserError(f"unexpected argument {extra!r} (lists of names take commas: "
                                "--providers zero,tikhonov)") from None
        ns = list(dict.fromkeys(ns))
        for v in ns:
            if v < 4:
                raise UserError(f"--n must be >= 4, got {v}")
        if samples < 1:
            raise UserError(f"--samples must be >= 1, got {samples}")
        if not noise >= 0:
            raise UserError(f"--noise must be >= 0 (a relative level such as 0.01), got {noise}")
        if seed < 0:
            raise UserError(f"--seed must be >= 0, got {seed}")
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
        from ..bench.compare_report import report_stem

        stem = report_stem(ns)
        _check_writable_dir("--out", out)
        jpath = Path(json_path) if json_path is not None else Path(out) / f"{stem}.jsonl"
        _check_writable_dir("--json", jpath.parent)
        if resume and not jpath.exists():
            err_console.print(f"[yellow]--resume: {jpath} does not exist yet; starting a new sweep[/yellow]")

        from ..bench import compare_report, runner
        from ..bench.cases import build_cases

        cases = build_cases(ns, provs, refs, samples=samples, noise=noise, seed=seed)
        tk = make_toolkit()
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
                tasks = {v: bar.add_task(f"n = {v:>4}", total=sum(c.n == v for c in cases)) for v in ns}

                def on_record(rec, skipped):
                    bar.advance(tasks[int(rec["n"])])

                records = runner.run_cases(cases, jpath, resume=resume, toolkit=tk, scheduler=client,
                                           on_record=on_record)
        except KeyboardInterrupt:
            err_console.print(f"Finished cases are in {jpath}; rerun the same command with --resume to continue.",
                              highlight=False, soft_wrap=True)
            raise  # gravbench.cli.main prints "Interrupted." and exits 130
        except runner.SweepMismatch as exc:
            raise UserError(str(exc)) from None
        finally:
            if client is not None:
                cluster = getattr(client, "cluster", None)
                client.close()
                if cluster is not None and scheduler.startswith("local"):
                    cluster.close()

        for t in compare_report.rich_tables(records):
            console.print(t)
        items = []
        if gallery:
            from ..bench.cases import Case

            with console.status("drawing the gallery (re-running the best pairs on test model 0) ..."):
                for v in ns:
                    for p, r in compare_report.best_pairs(records, v, k=3):
                        case = Case(n=v, noise=noise, model=0, provider=p, refiner=r, seed=seed, samples=samples)
                        try:
                            rt, rh = runner.estimate(case, tk)
                        except Exception:  # noqa: BLE001 - the table already reports the failure
                            continue
                        rec = next((x for x in records if x["n"] == v and x["model"] == 0 and x["provider"] == p
                                    and x["refiner"] == r), None)
                        items.append((v, compare_report.pair_label({"provider": p, "refiner": r}), rt, rh,
                                      None if rec is None else rec["model_error"]))
        sources = []
        for v in ns:
            try:
                sources.append(f"n = {v}: test models from {runner.test_set(v, samples, noise, seed, tk).source}")
            except Exception:  # noqa: BLE001
                pass
        wall = time.perf_counter() - t_start
        cmd = _command(ns, provs, refs, samples, noise, seed, out, json_path, scheduler)
        settings = {"samples": samples, "noise": f"{noise:g}", "seed": seed, "providers": ", ".join(provs),
                    "refiners": ", ".join(refs)}
        written = compare_report.write_report(records, out, ns, command=cmd, wall_seconds=wall, settings=settings,
                                              gallery=items, json_path=jpath, provider_notes=sources)
        nerr = sum(r["error"] is not None for r in records)
        console.print(f"{len(records)} cases ({nerr} with an error) in {wall:.1f} s; records: {jpath}")
        for p in written:
            console.print(f"wrote {p}")
