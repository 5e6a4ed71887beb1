"""``gravbench data make|show|standard|fingerprints``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def _parse_splits(text):
    from . import UserError

    if text is None or text.strip().lower() in ("", "none", "all"):
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if all(p.isdigit() for p in parts):
            return tuple(int(p) for p in parts)
        return tuple(float(p) for p in parts)
    except ValueError:
        raise UserError(f"--splits must be comma-separated fractions or counts, e.g. 0.9,0.05,0.05; got {text!r}")


def _parse_families(text):
    """``mixed`` | ``blocks`` | ``blocks,layers`` | ``blocks=0.5,smooth=0.5``."""
    from . import UserError

    text = text.strip()
    if "," not in text and "=" not in text:
        return text
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if any("=" in p for p in parts):
        out = {}
        for p in parts:
            name, _, w = p.partition("=")
            try:
                out[name.strip()] = float(w) if w else 1.0
            except ValueError:
                raise UserError(f"--families: weight of {name!r} must be a number, got {w!r}")
        return out
    return parts


def _meta_table(ds, title):
    import numpy as np
    from rich.table import Table

    m = ds.meta
    t = Table(title=title, show_header=False)
    t.add_row("file", str(ds.path) if ds.path else "(in memory)")
    t.add_row("name / split", f"{m.get('name') or '-'} / {m.get('split')}  (splits {m.get('splits')})")
    t.add_row("problem", ds.problem.describe())
    t.add_row("models", f"{len(ds):,}  rho {ds.rho.dtype} {tuple(ds.rho.shape)}, "
                        f"{float(ds.rho.min()):.0f} .. {float(ds.rho.max()):.0f} kg/m^3")
    t.add_row("families", ", ".join(f"{k} {v}" for k, v in ds.family_counts().items()))
    t.add_row("proportions", ", ".join(f"{k} {v:.3g}" for k, v in m.get("families", {}).items()))
    n = m.get("noise", {})
    med = float(np.median(ds.sigma)) if ds.sigma.size else 0.0
    t.add_row("noise", f"{n.get('model')}: {n.get('level')} relative + {n.get('floor')} mGal floor, "
                       f"seed {n.get('seed')}  (sigma median {med:.3g} mGal)")
    t.add_row("seed", str(m.get("seed")))
    t.add_row("versions", f"gravbench {m.get('gravbench_version')}, generator {m.get('generator_version')}, "
                          f"format {m.get('format_version')}")
    t.add_row("forward", f"{m.get('forward')} (kernel {m.get('kernel')})")
    if m.get("params"):
        t.add_row("params", str(m.get("params")))
    t.add_row("sha256", str(m.get("sha256")))
    return t


def register(app, report_app):
    data_app = typer.Typer(help="Synthetic density models and gravity data sets.", no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("make")
    def make(
        n: int = typer.Option(50, "--n", help="Grid size: n x n cells over 1000 m x 1000 m, 3n stations."),
        count: int = typer.Option(28000, "--count", help="Total number of models."),
        families: str = typer.Option("mixed", "--families",
                                     help="mixed | a family | a,b,c (equal shares) | a=0.5,b=0.5."),
        noise: float = typer.Option(0.01, "--noise", help="Relative noise level (0.01 = 1 %)."),
        noise_floor: float = typer.Option(0.0, "--noise-floor", help="Absolute noise floor, mGal."),
        noise_model: str = typer.Option("peak", "--noise-model", help="peak (per component) | datum."),
        noise_seed: int = typer.Option(None, "--noise-seed", help="Noise seed (default: --seed)."),
        seed: int = typer.Option(0, "--seed", help="Model seed."),
        splits: str = typer.Option("0.9,0.05,0.05", "--splits",
                                   help="train,val,test fractions or counts; 'all' for one split."),
        kernel: str = typer.Option("exact", "--kernel", help="exact | midpoint."),
        method: str = typer.Option(None, "--method",
                                   help="Forward operator: dense | fft | matfree | auto (default: dense GEMM when A "
                                        "fits in 1 GiB, else auto)."),
        out: Path = typer.Option(..., "--out", help="Output directory (one <split>.npz per split)."),
    ):
        """Generate models, compute gx/gz, add noise, split and save .npz files."""
        import time

        from rich.table import Table

        from . import UserError, console
        from .. import Problem
        from ..data import build

        from . import _options as opt
        from ..data.dataset import _split_counts
        from ..data.families import resolve_families
        from ..data.noise import NOISE_MODELS

        opt.integer("--n", n, minimum=2)
        opt.integer("--count", count, minimum=1)
        opt.integer("--seed", seed, minimum=0)
        opt.integer("--noise-seed", noise_seed, minimum=0)
        if method is not None:
            opt.choice("--method", method, ("dense", "fft", "matfree", "auto"))
        opt.choice("--kernel", kernel, ("exact", "midpoint"))
        opt.choice("--noise-model", noise_model, NOISE_MODELS)
        opt.number("--noise", noise, ge=0, what=" (a relative level such as 0.01)")
        opt.number("--noise-floor", noise_floor, ge=0, what=" (mGal)")
        fams = _parse_families(families)
        opt.library("--families", resolve_families, fams, argname="a family")
        spl = _parse_splits(splits)
        opt.library("--splits", _split_counts, count, spl)
        opt.out_dir("--out", out)
        prob = Problem.paper(n=n, kernel=kernel)
        t0 = time.perf_counter()
        sets = build(prob, fams, count=count, seed=seed, noise=noise, noise_floor=noise_floor,
                     noise_model=noise_model, noise_seed=noise_seed, splits=spl, out=out,
                     method=method, progress=True)
        dt = time.perf_counter() - t0
        tab = Table(title=f"gravbench data make  ({count:,} models, n = {n})")
        for col in ("split", "models", "families", "file", "MiB"):
            tab.add_column(col)
        for s, ds in sets.items():
            tab.add_row(s, f"{len(ds):,}", ", ".join(f"{k} {v}" for k, v in ds.family_counts().items()),
                        str(ds.path), f"{ds.path.stat().st_size / 2**20:.1f}")
        console.print(tab)
        console.print(f"built in {dt:.2f} s ({count / dt:,.0f} models/s incl. gravity and saving)")

    @data_app.command("show")
    def show(
        path: Path = typer.Argument(..., help="A .npz written by 'gravbench data make' or build()."),
        png: Path = typer.Option(None, "--png", help="Gallery PNG to write (default: PATH with .png)."),
        per_family: int = typer.Option(3, "--per-family", help="Models shown per family."),
    ):
        """Print a data set's metadata and write a PNG gallery (models per family with gx/gz)."""
        from . import UserError, console
        from ..data import load
        from ..data.gallery import dataset_gallery

        if per_family < 1:
            raise UserError(f"--per-family must be >= 1, got {per_family}")
        ds = load(path)
        console.print(_meta_table(ds, f"gravbench data show {path.name}"))
        png = png or path.with_suffix(".png")
        if png.parent and not png.parent.exists():
            raise UserError(f"--png: directory {png.parent} does not exist")
        dataset_gallery(png, ds, per_family=per_family)
        console.print(f"gallery: {png}")

    @data_app.command("standard")
    def standard_cmd(
        name: str = typer.Argument("paper-50", help="A standard set: paper-50, paper-25, paper-100, paper-200, "
                                                    "small-16."),
    ):
        """Build a standard data set into the cache (if needed), check it against its recorded fingerprints
        and print where it lives and its fingerprints."""
        import time

        from . import UserError, console
        from ..data import STANDARD, cache_dir, standard, standard_paths
        from ..data.fingerprint import RECORD_PATH, RTOL, compare, fingerprint
        from ..data.sets import recorded

        if name not in STANDARD:
            raise UserError(f"unknown standard data set {name!r}; choose from {', '.join(sorted(STANDARD))}")
        t0 = time.perf_counter()
        fps = {}
        for s in ("train", "val", "test"):
            fps[s] = fingerprint(standard(name, s, progress=True))  # checked against the record (rebuilt if stale)
        paths = standard_paths(name)
        console.print(f"{name}: {STANDARD[name].description}; cache {cache_dir()} ({time.perf_counter() - t0:.1f} s)")
        rec = recorded(name)
        for s, p in paths.items():
            console.print(f"  {s:5s} {p}  ({p.stat().st_size / 2**20:.1f} MiB, {fps[s]['count']:,} models)")
            console.print(f"        models {fps[s]['models']}\n        data   {fps[s]['data']}\n"
                          f"        noisy  {fps[s]['noisy']}")
        if rec is None:
            console.print(f"  no valid recorded fingerprint for {name} in {RECORD_PATH} (checked by file sha256 only); "
                          f"record it with 'gravbench data fingerprints {name} --record'")
        else:
            hows = [compare(fps[s], rec["splits"][s])[1] for s in paths]
            exact = all(v == "bitwise" for h in hows for v in h.values())
            console.print(f"  fingerprints match the record in {RECORD_PATH.name} (generator version "
                          f"{rec['generator_version']}): " + ("bitwise" if exact else
                          f"models bitwise, data within the relative tolerance {RTOL:g}"))

    @data_app.command("fingerprints")
    def fingerprints_cmd(
        names: Optional[List[str]] = typer.Argument(None, help="Standard sets (default: all of them)."),
        record: bool = typer.Option(False, "--record",
                                    help="Rebuild the sets from scratch in the cache and write their fingerprints "
                                         "into the package's data/fingerprints.json."),
    ):
        """Fingerprints (sha256 of models, clean data, noisy data) of standard sets against the recorded ones.

        Without --record: builds missing splits, computes each split's fingerprints from the cached files and
        compares them with the record (exit 1 if any differs). With --record: deletes the cached splits,
        rebuilds them with this code and records their fingerprints (for a new or changed set).
        """
        from rich.table import Table

        from . import UserError, console
        from ..data import STANDARD
        from ..data import fingerprint as fpm
        from ..data import sets as std_sets

        names = list(names or sorted(STANDARD))
        bad = [n for n in names if n not in STANDARD]
        if bad:
            raise UserError(f"unknown standard data set(s) {bad}; choose from {', '.join(sorted(STANDARD))}")
        if record:
            std_sets.record(names, log=console.print)
            console.print(f"[green]recorded[/green] {', '.join(names)} in {fpm.RECORD_PATH}")
        tab = Table(title="standard data set fingerprints (sha256, first 16 hex digits)")
        for col in ("set", "split", "models", "models sha256", "data sha256", "noisy sha256", "record"):
            tab.add_column(col)
        differ = 0
        for nm in names:
            rec = std_sets.recorded(nm)
            for s, fp in std_sets.compute_standard(nm).items():
                r = (rec or {}).get("splits", {}).get(s)
                if r is None:
                    status = "not recorded"
                else:
                    ok, how = fpm.compare(fp, r)
                    if not ok:
                        status = "[red]DIFFERS: " + ", ".join(k for k, v in how.items() if v == "differs") + "[/red]"
                        differ += 1
                    elif all(v == "bitwise" for v in how.values()):
                        status = "match (bitwise)"
                    else:
                        status = "match (" + ", ".join(f"{k} {v}" for k, v in how.items()) + ")"
                tab.add_row(nm, s, f"{fp['count']:,}", fp["models"][:16], fp["data"][:16],
                            fp["noisy"][:16], status)
        console.print(tab)
        if differ:
            console.print(f"[red]{differ} split(s) differ from the record in {fpm.RECORD_PATH}[/red]")
            raise typer.Exit(1)
