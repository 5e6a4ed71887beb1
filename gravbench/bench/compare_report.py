"""Tables, figures and the Markdown report of a comparison sweep.

Pure functions of the records written by :mod:`gravbench.bench.runner`
(plus, for the gallery, a few estimated models). Files are written
atomically: a temporary file in the target directory, then ``os.replace``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .metrics import success_band, summarize
from .runner import atomic_write_text

__all__ = ["report_stem", "no_weights_hint", "rich_tables", "markdown", "plot_error_vs_n", "plot_seconds_vs_n",
           "plot_gallery", "write_report", "pair_label"]


def report_stem(ns):
    """``compare-50-100`` for ``ns = [50, 100]``."""
    return "compare-" + "-".join(str(int(n)) for n in ns)


def pair_label(row):
    """``"provider -> refiner"`` (or just the provider when there is no refiner)."""
    return row["provider"] if row["refiner"] == "none" else f"{row['provider']} -> {row['refiner']}"


def no_weights_hint(error):
    """For a ``NoWeightsError`` record: ``(message, train command or None)``; else ``None``."""
    if not error or not str(error).startswith("NoWeightsError"):
        return None
    msg = str(error).split(":", 1)[1].strip()
    m = re.search(r"(gravbench train[^`'\";)\n]*)", msg)
    return msg, (m.group(1).strip().rstrip(".") if m else None)


def _f(v, fmt="{:.3g}"):
    return "-" if v is None else fmt.format(v)


def _pct(v):
    return "-" if v is None else f"{100 * v:.0f}%"


_COLS = ("#", "provider", "refiner", "model err mean", "median", "p90", "data misfit mean", "median", "p90",
         "chi2 median", "success", "over-fitted", "seconds mean", "A/A^T products", "iterations", "peak MiB", "errors")


def _cells(rank, row):
    me, dm = row["model_error"], row["data_misfit"]
    return [str(rank), row["provider"], row["refiner"], _f(me["mean"]), _f(me["median"]), _f(me["p90"]),
            _f(dm["mean"]), _f(dm["median"]), _f(dm["p90"]), _f(row["chi2"]["median"]), _pct(row["success_rate"]),
            "-" if row.get("overfit") is None else str(row["overfit"]), _f(row["seconds"]["mean"]), _f(row["n_matvec"]["mean"], "{:.0f}"), _f(row["niter"]["mean"], "{:.0f}"),
            _f(row["peak_mb"]["mean"], "{:.2f}"), f"{row['errors']}/{row['cases']}" if row["errors"] else "0"]


def _by_n(rows):
    out = {}
    for r in rows:
        out.setdefault(r["n"], []).append(r)
    return out


def rich_tables(records):
    """Renderables for the console: per grid size a ``rich.table.Table`` ranking the pairs by mean model error,
    followed by a note for pairs without results (no weights: the train command; other failures: the error).

    Compact (fits 80 columns); the Markdown report has every statistic.
    """
    from rich import box
    from rich.table import Table

    tables = []
    for n, rows in _by_n(summarize(records)).items():
        errs = any(r["errors"] for r in rows)
        cols = ["#", "provider -> refiner", "model err", "misfit", "chi2~", "ok", "s/model", "A+A^T", "it"] + (
            ["err"] if errs else [])
        t = Table(title=f"n = {n}: ranked by mean model error (chi2~ median, ok success rate)",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
        for c in cols:
            left = c.startswith("provider")
            t.add_column(c, justify="left" if left else "right", no_wrap=not left, min_width=16 if left else None)
        rank = 0
        blank = [""] * (len(cols) - 3)
        notes = []
        for r in rows:
            label = pair_label(r)
            if r["model_error"]["count"] == 0:
                hint = no_weights_hint(r["error"])
                if hint is not None:
                    msg, cmd = hint
                    t.add_row("-", label, "[yellow]no weights[/yellow]", *blank)
                    note = f"{r['provider']}: no weights for n={n}" + (f"; train them with: {cmd}" if cmd
                                                                       else f" ({msg})")
                else:
                    t.add_row("-", label, "[red]failed[/red]", *blank)
                    note = f"{label}: failed: {r['error']}"
                if note not in notes:
                    notes.append(note)
                continue
            rank += 1
            me, dm = r["model_error"], r["data_misfit"]
            cells = [str(rank), label, _f(me["mean"]), _f(dm["mean"]), _f(r["chi2"]["median"]),
                     _pct(r["success_rate"]), _f(r["seconds"]["mean"], "{:.2g}"), _f(r["n_matvec"]["mean"], "{:.0f}"),
                     _f(r["niter"]["mean"], "{:.0f}")]
            if errs:
                cells.append(f"{r['errors']}/{r['cases']}" if r["errors"] else "0")
            t.add_row(*cells)
        tables.append(t)
        if notes:
            from rich.text import Text

            tables.append(Text("\n".join(notes)))
    return tables


def _md_table(n, rows):
    lines = ["| " + " | ".join(_COLS) + " |", "|" + "|".join("---" if i in (1, 2) else "---:"
                                                            for i in range(len(_COLS))) + "|"]
    rank = 0
    notes = []
    for r in rows:
        if r["model_error"]["count"] == 0:
            hint = no_weights_hint(r["error"])
            if hint is not None:
                msg, cmd = hint
                text = f"no weights for n={n}" + (f"; train them with `{cmd}`" if cmd else f" ({msg})")
            else:
                text = f"failed: {r['error']}"
            lines.append(f"| - | {r['provider']} | {r['refiner']} | {text} |" + " |" * (len(_COLS) - 4))
            continue
        rank += 1
        lines.append("| " + " | ".join(_cells(rank, r)) + " |")
        if r["errors"]:
            notes.append(f"- {pair_label(r)}: {r['errors']} of {r['cases']} cases failed; first error: "
                         f"`{r['error']}`")
    return "\n".join(lines), notes


def _md_summary(rows):
    """Lines naming the most accurate pair, the cheapest pair that fits the data, and the paper's path."""
    ok = [r for r in rows if r["model_error"]["mean"] is not None]
    if not ok:
        return []
    out = []
    best = ok[0]  # rows are ranked by mean model error
    out.append(f"- Most accurate: **{pair_label(best)}** (mean model error {best['model_error']['mean']:.3g}, "
               f"{best['seconds']['mean']:.2g} s per model).")
    fit = [r for r in ok if r["success_rate"] is not None and r["success_rate"] >= 0.9
           and r["seconds"]["mean"] is not None]
    if fit:
        cheap = min(fit, key=lambda r: r["seconds"]["mean"])
        out.append(f"- Cheapest pair that fits >= 90 % of the models to the noise level: **{pair_label(cheap)}** "
                   f"({cheap['seconds']['mean']:.2g} s per model, mean model error "
                   f"{cheap['model_error']['mean']:.3g}).")
    lo = success_band(6 * ok[0]["n"])[0]  # 1 - 2 sqrt(2/N): two standard deviations below the target
    over = [r for r in ok if r["chi2"]["median"] is not None and r["chi2"]["median"] < lo]
    if over:
        out.append(f"- Fitting the noise (median chi2 < {lo:.3f}, two standard deviations below 1): "
                   + ", ".join(f"{pair_label(r)} ({r['chi2']['median']:.2g})" for r in over) + ".")
    out.append("")
    return out


def markdown(records, ns, *, command, wall_seconds=None, settings=None, figures=None, json_name=None,
             provider_notes=None):
    """The Markdown text of ``reports/compare-<n...>.md``."""
    settings = settings or {}
    rows = summarize(records)
    out = [f"# gravbench compare: n = {', '.join(str(n) for n in ns)}", ""]
    out.append("Every provider x refiner pair on the same held-out test models at each grid size "
               "(`Problem.paper(n)`: n x n cells over 1000 m x 1000 m, 3n stations at 1 m height, gx and gz). "
               "Regenerate with:")
    out += ["", "```", command, "```", ""]
    if settings:
        out.append("Settings: " + ", ".join(f"{k} = {v}" for k, v in settings.items()) + ".")
        out.append("")
    out.append("Metrics per test model, then mean / median / 90th percentile over the models: model error "
               "`||rho - rho_hat|| / ||rho||`, data misfit `||A rho_hat - g|| / ||g||` (g: the noisy data the "
               "inversion used), chi2 = reduced chi-squared `(1/N) sum((A rho_hat - g)/sigma)^2` (target 1), "
               "success = |chi2 - 1| <= 2 sqrt(2/N) (the data fitted to the noise level, `metrics.is_success`; "
               "over-fitted = chi2 below that band: fits the noise, not a success), seconds = provider + "
               "refiner wall time after a per-process warm-up (no compilation timed), A/A^T products = operator "
               "applications by the refiner, peak MiB = peak traced NumPy/Python heap of the provider or refiner call.")
    out.append("")
    for n, nrows in _by_n(rows).items():
        nd = 6 * n
        lo, hi = success_band(nd)
        out.append(f"## n = {n}  ({n * n} cells, {nd} data; success when {lo:.3f} <= chi2 <= {hi:.3f})")
        out.append("")
        out += _md_summary(nrows)
        tab, notes = _md_table(n, nrows)
        out.append(tab)
        out.append("")
        if notes:
            out += notes + [""]
    if provider_notes:
        out.append("## Test data")
        out.append("")
        out += [f"- {x}" for x in provider_notes]
        out.append("")
    if figures:
        out.append("## Figures")
        out.append("")
        for title, name in figures:
            out.append(f"### {title}")
            out.append("")
            out.append(f"![{title}]({name})")
            out.append("")
    out.append("## Run")
    out.append("")
    if json_name:
        out.append(f"Per-case records (JSON Lines, one record per case, every metric): `{json_name}`.")
    if wall_seconds is not None:
        try:
            load = f" (1-minute load average at the end: {os.getloadavg()[0]:.1f})"
        except (AttributeError, OSError):  # pragma: no cover - not on every platform
            load = ""
        out.append(f"Wall time of the run that wrote this report: {wall_seconds:.0f} s on {os.cpu_count()} "
                   f"CPU cores{load}, including the gallery re-runs and the report.")
    nerr = sum(r["error"] is not None for r in records)
    out.append(f"{len(records)} cases, {nerr} with an error.")
    out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ figures
def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _savefig(fig, path):
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=100, format="png")
    os.replace(tmp, path)
    return path


def _series(rows, key):
    out = {}
    for r in rows:
        v = r[key]["mean"]
        if v is None or v <= 0:
            continue
        out.setdefault((r["provider"], r["refiner"]), []).append((r["n"], v))
    return {k: sorted(v) for k, v in sorted(out.items())}


def _line_plot(series, path, ylabel, title, loglog):
    """One line per (provider, refiner): colour = provider, marker and dash = refiner."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9.0, 5.2), constrained_layout=True)
    cmap = plt.get_cmap("tab10")
    provs = list(dict.fromkeys(p for p, _ in series))
    refs = list(dict.fromkeys(r for _, r in series))
    marks = "osD^v<>ph*"
    dashes = ["-", "--", "-.", ":"]
    for (p, r), pts in series.items():
        x, y = zip(*pts)
        j = refs.index(r)
        ax.plot(x, y, marker=marks[j % len(marks)], linestyle=dashes[j % len(dashes)],
                color=cmap(provs.index(p) % 10), label=pair_label({"provider": p, "refiner": r}))
    ax.set_yscale("log")
    if loglog:
        ax.set_xscale("log")
    ns = sorted({q[0] for pts in series.values() for q in pts})
    if ns:
        ax.set_xticks(ns)
        ax.set_xticklabels([str(n) for n in ns])
        from matplotlib.ticker import NullLocator

        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("grid size n (n x n cells)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    if series:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    _savefig(fig, path)
    plt.close(fig)
    return path


def plot_error_vs_n(records, path):
    """Mean model error against n, one line per pair (PNG)."""
    return _line_plot(_series(summarize(records), "model_error"), path, "mean model error ||rho - rho_hat||/||rho||",
                      "Model error vs grid size", loglog=False)


def plot_seconds_vs_n(records, path):
    """Mean wall seconds against n, log-log, one line per pair (PNG)."""
    return _line_plot(_series(summarize(records), "seconds"), path, "mean seconds per model (provider + refiner)",
                      "Cost vs grid size (log-log)", loglog=True)


def plot_gallery(items, path, title=""):
    """True vs estimated models.

    Parameters
    ----------
    items : list of (n, label, rho_true, rho_hat, model_error)
        One row per ``n``: the true model first, then the estimates in order.
    path : str or Path
    """
    plt = _plt()
    rows = {}
    for n, label, rt, rh, me in items:
        rows.setdefault(n, [("true model", rt, None)]).append((label, rh, me))
    ncol = max(len(v) for v in rows.values()) if rows else 1
    fig, axes = plt.subplots(len(rows) or 1, ncol, figsize=(2.7 * ncol, 2.7 * max(len(rows), 1) + 0.4),
                             squeeze=False, constrained_layout=True)
    for i, (n, panels) in enumerate(rows.items()):
        vmax = float(np.abs(panels[0][1]).max()) or 1.0
        for j in range(ncol):
            ax = axes[i, j]
            if j >= len(panels):
                ax.axis("off")
                continue
            label, r, me = panels[j]
            im = ax.imshow(np.asarray(r), cmap="RdBu_r", vmin=-vmax, vmax=vmax, extent=[0, 1000, 1000, 0],
                           interpolation="nearest")
            ax.set_title(f"n={n}: {label}" + (f"\nerror {me:.3f}" if me is not None else ""), fontsize=8)
            ax.tick_params(labelsize=6)
            if j == 0:
                ax.set_ylabel("depth (m)", fontsize=7)
        fig.colorbar(im, ax=axes[i, :].tolist(), shrink=0.8, label="kg/m$^3$")
    if title:
        fig.suptitle(title, fontsize=10)
    _savefig(fig, path)
    plt.close(fig)
    return path


def best_pairs(records, n, k=3):
    """The ``k`` best (provider, refiner) pairs at ``n`` by mean model error (pairs with results only)."""
    rows = [r for r in summarize(records) if r["n"] == n and r["model_error"]["mean"] is not None]
    return [(r["provider"], r["refiner"]) for r in rows[:k]]


def write_report(records, out_dir, ns, *, command, wall_seconds=None, settings=None, gallery=None,
                 json_path=None, provider_notes=None):
    """Write ``<out_dir>/compare-<n...>.md`` and its PNGs; returns the list of written paths."""
    out_dir = Path(out_dir)
    stem = report_stem(ns)
    written = []
    figs = []
    p = plot_error_vs_n(records, out_dir / f"{stem}-error.png")
    figs.append(("Model error vs n", p.name))
    written.append(p)
    p = plot_seconds_vs_n(records, out_dir / f"{stem}-seconds.png")
    figs.append(("Seconds vs n (log-log)", p.name))
    written.append(p)
    if gallery:
        p = plot_gallery(gallery, out_dir / f"{stem}-gallery.png",
                         title="Test model 0: true vs the best estimates at each n")
        figs.append(("Gallery: true vs estimated (test model 0, best pairs)", p.name))
        written.append(p)
    json_name = None
    if json_path is not None:
        jp = Path(json_path)
        try:
            json_name = os.path.relpath(jp, out_dir)
        except ValueError:  # pragma: no cover - other drive on Windows
            json_name = str(jp)
    text = markdown(records, ns, command=command, wall_seconds=wall_seconds, settings=settings, figures=figs,
                    json_name=json_name, provider_notes=provider_notes)
    written.insert(0, atomic_write_text(out_dir / f"{stem}.md", text))
    return written
