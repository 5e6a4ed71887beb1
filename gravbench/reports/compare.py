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

from .._mpl import pyplot as _plt
from .._mpl import model_panel, save_png

from ..metrics import success_band, summarize
from .._atomic import atomic_write_text
from ..bench.compare import best_pairs, pair_label, report_stem, run_comparison
from ..bench.stats import ALPHA, LEVEL, analyse
from .._load import load_average
from ..problem import Problem

__all__ = ["report_stem", "no_weights_hint", "rich_tables", "markdown", "plot_error_vs_n", "plot_seconds_vs_n",
           "plot_pareto", "plot_gallery", "write_report", "pair_label", "pareto_front", "analysis_json",
           "training_costs", "best_pairs", "run"]


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


_COLS = ("#", "provider", "refiner", "model err mean [95% CI]", "vs leader: mean diff [95% CI]", "better on",
         "p (Holm)", "tied", "median", "p90", "data misfit mean [95% CI]", "chi2 median", "success", "over-fitted",
         "seconds mean [95% CI]", "A/A^T products", "iterations", "peak MiB", "errors")


def _ci(c, fmt="{:.3g}"):
    """``mean [lo, hi]`` of a :func:`gravbench.bench.stats.mean_ci` dict (just the mean with one model)."""
    if c is None or c["mean"] is None:
        return "-"
    if c["lo"] is None:
        return fmt.format(c["mean"])
    return f"{fmt.format(c['mean'])} [{fmt.format(c['lo'])}, {fmt.format(c['hi'])}]"


def _pm(c, fmt="{:.2f}"):
    """``mean ± half`` (compact), the mean alone with one model."""
    if c is None or c["mean"] is None:
        return "-"
    return fmt.format(c["mean"]) + ("" if c["half"] is None else " ± " + fmt.format(c["half"]))


def _tie_mark(a):
    if a is None:
        return "-"
    if a.get("vs_leader") is None and a.get("tied"):
        return "leader"
    return {True: "tied", False: "no"}.get(a.get("tied"), "n/a")


def _cells(rank, row, a=None):
    me, dm = row["model_error"], row["data_misfit"]
    a = a or {}
    ci = a.get("ci", {})
    d = a.get("vs_leader")
    return [str(rank), row["provider"], row["refiner"], _ci(ci.get("model_error")) if ci else _f(me["mean"]),
            "-" if d is None else _ci(d, "{:+.2g}"), "-" if d is None else _pct(d["better"]),
            _f(a.get("p_holm"), "{:.2g}"), _tie_mark(a) if a else "-", _f(me["median"]), _f(me["p90"]),
            _ci(ci.get("data_misfit")) if ci else _f(dm["mean"]), _f(row["chi2"]["median"]),
            _pct(row["success_rate"]),
            "-" if row.get("overfit") is None else str(row["overfit"]), _ci(ci.get("seconds"), "{:.2g}") if ci else _f(row["seconds"]["mean"]),
            _f(row["n_matvec"]["mean"], "{:.0f}"), _f(row["niter"]["mean"], "{:.0f}"),
            _f(row["peak_mb"]["mean"], "{:.2f}"), f"{row['errors']}/{row['cases']}" if row["errors"] else "0"]


def _analysis_by_n(records, analysis=None):
    return {s["n"]: s for s in (analysis or analyse(records))["sizes"]}


def _by_n(rows):
    out = {}
    for r in rows:
        out.setdefault(r["n"], []).append(r)
    return out


def rich_tables(records, summary=None, analysis=None):
    """Renderables for the console: per grid size a ``rich.table.Table`` ranking the pairs by mean model error,
    followed by a note for pairs without results (no weights: the train command; other failures: the error).

    Compact; the Markdown report has every statistic. ``summary`` / ``analysis``: the records'
    :func:`~gravbench.metrics.summarize` / :func:`~gravbench.bench.stats.analyse` when already computed.
    """
    from rich import box
    from rich.table import Table

    tables = []
    an = _analysis_by_n(records, analysis)
    for n, rows in _by_n(summarize(records) if summary is None else summary).items():
        errs = any(r["errors"] for r in rows)
        cols = ["#", "provider -> refiner", "model err", "±95%", "tie", "misfit", "chi2~", "ok", "s/model", "A+A^T",
                "it"] + (["err"] if errs else [])
        t = Table(title=f"n = {n}: ranked by mean model error (±95%: interval half-width; tie =: not separable "
                        f"from the leader; chi2~ median, ok success rate)",
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
                hint = no_weights_hint(r["error"] or r.get("reason"))
                if hint is not None:
                    msg, cmd = hint
                    t.add_row("-", label, "[yellow]no weights[/yellow]", *blank)
                    note = f"{r['provider']}: no weights for n={n}" + (f"; train them with: {cmd}" if cmd
                                                                       else f" ({msg})")
                elif r.get("skipped") and not r["errors"]:
                    t.add_row("-", label, "[yellow]skipped[/yellow]", *blank)
                    note = f"{label}: skipped: {r['reason']}"
                else:
                    t.add_row("-", label, "[red]failed[/red]", *blank)
                    note = f"{label}: failed: {r['error']}"
                if note not in notes:
                    notes.append(note)
                continue
            rank += 1
            me, dm = r["model_error"], r["data_misfit"]
            a = next((p for p in an[n]["pairs"] if p["label"] == label), {}) if n in an else {}
            half = a.get("ci", {}).get("model_error", {}).get("half")
            mark = {"leader": "lead", "tied": "=", "no": "", "n/a": "?"}.get(_tie_mark(a) if a else "no", "")
            cells = [str(rank), label, _f(me["mean"]), _f(half, "{:.2g}"), mark, _f(dm["mean"]),
                     _f(r["chi2"]["median"]),
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


def _md_table(n, rows, an=None):
    apairs = {p["label"]: p for p in (an or {}).get("pairs", [])}
    lines = ["| " + " | ".join(_COLS) + " |", "|" + "|".join("---" if i in (1, 2) else "---:"
                                                            for i in range(len(_COLS))) + "|"]
    rank = 0
    notes = []
    for r in rows:
        if r["model_error"]["count"] == 0:
            hint = no_weights_hint(r["error"] or r.get("reason"))
            if hint is not None:
                msg, cmd = hint
                text = f"no weights for n={n}" + (f"; train them with `{cmd}`" if cmd else f" ({msg})")
            elif r.get("skipped") and not r["errors"]:
                text = f"skipped: {r['reason']}"
            else:
                text = f"failed: {r['error']}"
            lines.append(f"| - | {r['provider']} | {r['refiner']} | {text} |" + " |" * (len(_COLS) - 4))
            continue
        rank += 1
        lines.append("| " + " | ".join(_cells(rank, r, apairs.get(pair_label(r)))) + " |")
        if r["errors"]:
            notes.append(f"- {pair_label(r)}: {r['errors']} of {r['cases']} cases failed; first error: "
                         f"`{r['error']}`")
    return "\n".join(lines), notes


def _md_summary(rows, an=None):
    """Lines naming the most accurate pair (and every pair tied with it), the cheapest pair that fits the data,
    and the pairs that fit the noise."""
    ok = [r for r in rows if r["model_error"]["mean"] is not None]
    if not ok:
        return []
    out = []
    best = ok[0]  # rows are ranked by mean model error
    lead = next((p for p in (an or {}).get("pairs", []) if p["label"] == pair_label(best)), None)
    me = _ci(lead["ci"]["model_error"]) if lead else f"{best['model_error']['mean']:.3g}"
    line = f"- Most accurate: **{pair_label(best)}** (mean model error {me}, {best['seconds']['mean']:.2g} s per model)"
    if an is not None:
        tied = [t for t in an["tied"] if t != pair_label(best)]
        if tied:
            line += (f"; statistically tied with it (paired t-test on the same models, Holm-corrected, "
                     f"{100 * ALPHA:.0f} %): " + ", ".join(f"**{t}**" for t in tied))
        else:
            line += "; every other pair is worse on the paired test (Holm-corrected, 5 %)"
    out.append(line + ".")
    fit = [r for r in ok if r["success_rate"] is not None and r["success_rate"] >= 0.9
           and r["seconds"]["mean"] is not None]
    if fit:
        cheap = min(fit, key=lambda r: r["seconds"]["mean"])
        out.append(f"- Cheapest pair that fits >= 90 % of the models to the noise level: **{pair_label(cheap)}** "
                   f"({cheap['seconds']['mean']:.2g} s per model, mean model error "
                   f"{cheap['model_error']['mean']:.3g}).")
    lo = success_band(Problem.paper(int(ok[0]["n"])).n_data)[0]  # 1 - 2 sqrt(2/N): two standard deviations below the target
    over = [r for r in ok if r["chi2"]["median"] is not None and r["chi2"]["median"] < lo]
    if over:
        out.append(f"- Fitting the noise (median chi2 < {lo:.3f}, two standard deviations below 1): "
                   + ", ".join(f"{pair_label(r)} ({r['chi2']['median']:.2g})" for r in over) + ".")
    out.append("")
    return out


_BAND_NAMES = {4: ("top quarter", "2nd quarter", "3rd quarter", "bottom quarter")}


def _md_gravity(an):
    """The gravity metrics of every pair: excess-mass and centroid errors with intervals, error by depth band."""
    pairs = [p for p in an["pairs"] if p["ci"]["model_error"]["mean"] is not None]
    if not pairs:
        return []
    nb = max(len(p["depth_error"]) for p in pairs)
    bands = _BAND_NAMES.get(nb, tuple(f"band {b + 1}" for b in range(nb)))
    cols = ["#", "pair", "model err mean", "excess-mass error [95% CI]", "lateral centroid error, m [95% CI]",
            "depth centroid error, m [95% CI]"] + [f"error in {b}" for b in bands]
    out = ["| " + " | ".join(cols) + " |", "|---:|---|" + "---:|" * (len(cols) - 2)]
    for i, p in enumerate(pairs, 1):
        c = p["ci"]
        out.append("| " + " | ".join([str(i), p["label"], _f(c["model_error"]["mean"]), _ci(c["mass_error"], "{:.2g}"),
                                       _ci(c["x_centroid_error"], "{:.0f}"), _ci(c["z_centroid_error"], "{:.0f}")]
                                      + [_f(d["mean"], "{:.3f}") for d in p["depth_error"]]
                                      + ["-"] * (nb - len(p["depth_error"]))) + " |")
    return out


def _md_families(an):
    """Mean model error ± the 95 % half-width per family and pair; the family leader in bold, ties marked =."""
    fams = an.get("families") or {}
    if not fams:
        return []
    names = list(fams)
    out = ["| # | pair | " + " | ".join(f"{f} (k = {fams[f]['models']})" for f in names) + " |",
           "|---:|---|" + "---:|" * len(names)]
    for i, p in enumerate([p for p in an["pairs"] if p["ci"]["model_error"]["mean"] is not None], 1):
        cells = []
        for f in names:
            row = fams[f]["pairs"].get(p["label"])
            txt = _pm(row["ci"] if row else None)
            if row and fams[f]["leader"] == p["label"]:
                txt = f"**{txt}**"
            elif row and row["tied"] is True and row["ci"]["mean"] is not None:
                txt = f"= {txt}"
            cells.append(txt)
        out.append(f"| {i} | {p['label']} | " + " | ".join(cells) + " |")
    out.append("")
    for f in names:
        fa = fams[f]
        if fa["leader"] is None:
            continue
        lc = fa["pairs"][fa["leader"]]["ci"]
        others = [t for t in fa["tied"] if t != fa["leader"]]
        if fa["models"] < 2:
            tail = "; too few models to test ties"
        elif others:
            tail = f"; tied with it: {', '.join(others)}" if len(others) <= 4 else f"; {len(others)} pairs tied with it"
        else:
            tail = "; no pair tied with it"
        out.append(f"- {f}: leader **{fa['leader']}** ({_ci(lc)}, {fa['models']} models){tail}.")
    return out


def training_costs(providers, ns):
    """Training cost of the learned providers, from the shipped weight manifests.

    Parameters
    ----------
    providers : iterable of str
    ns : iterable of int

    Returns
    -------
    list of dict
        One per (provider, n) with a manifest ``gravbench/providers/weights/<provider>-<n>.json``:
        ``provider``, ``n``, ``seconds`` (training wall time, s, or ``None`` when not recorded),
        ``epochs``, ``threads``, ``command``.
    """
    import json

    wdir = Path(__file__).resolve().parent.parent / "providers" / "weights"
    out = []
    for p in providers:
        for n in ns:
            f = wdir / f"{p}-{int(n)}.json"
            if not f.is_file():
                continue
            try:
                man = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            tr = man.get("training") if isinstance(man.get("training"), dict) else {}
            out.append({"provider": p, "n": int(n), "seconds": tr.get("seconds"), "epochs": tr.get("epochs_run"),
                        "threads": tr.get("torch_threads"), "command": man.get("reproduce") or man.get("command")})
    return out


def analysis_json(records, *, command=None, settings=None, analysis=None):
    """The statistics of :func:`gravbench.bench.stats.analyse` as JSON text (for ``compare-<n...>.json``)."""
    import json

    doc = {"command": command, "settings": settings or {}}
    doc.update(analysis or analyse(records))
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


def markdown(records, ns, *, command, wall_seconds=None, settings=None, figures=None, json_name=None,
             provider_notes=None, stem=None, training=None, summary=None, analysis=None):
    """The Markdown text of ``reports/compare-<n...>.md``."""
    settings = settings or {}
    rows = summarize(records) if summary is None else summary
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
               "applications by the refiner, peak MiB = peak resident memory (RSS) the provider or refiner call added (numba and torch allocations included).")
    out.append("")
    out.append(f"Uncertainty: every mean comes with a {100 * LEVEL:.0f} % Student-t confidence interval over the test "
               "models (`mean [lo, hi]`; coverage checked on synthetic draws in `tests/test_stats.py`). All pairs see "
               "the same models, so each pair is compared with the leader (the lowest mean model error) on the "
               "per-model differences: their mean with its interval, the share of models on which the pair is "
               "better, and the paired t-test p-value, Holm-corrected over the comparisons at that grid size. A pair "
               f"whose corrected p-value is >= {ALPHA:g} is **tied** with the leader: these data cannot separate them. "
               "Gravity metrics: excess-mass error `|M_hat - M| / sum |rho| a` (the anomalous mass is fixed by the "
               "data), the lateral and depth errors of the anomaly centroid (weights `|rho| a`, metres) and the "
               "model error by depth quarter `||(rho - rho_hat)_band|| / ||rho||` (their squares add up to the "
               "squared model error).")
    out.append("")
    an = _analysis_by_n(records, analysis)
    for n, nrows in _by_n(rows).items():
        nd = Problem.paper(int(n)).n_data
        a = an.get(n)
        lo, hi = success_band(nd)
        out.append(f"## n = {n}  ({n * n} cells, {nd} data; success when {lo:.3f} <= chi2 <= {hi:.3f})")
        out.append("")
        out += _md_summary(nrows, a)
        tab, notes = _md_table(n, nrows, a)
        out.append(tab)
        out.append("")
        if notes:
            out += notes + [""]
        if a is not None:
            grav = _md_gravity(a)
            if grav:
                out += [f"### n = {n}: gravity metrics (means over the models; intervals of the depth bands in "
                        "the JSON)", ""] + grav + [""]
            fam = _md_families(a)
            if fam:
                out += [f"### n = {n}: model error per family (mean ± 95 % half-width; **bold** the family's "
                        "leader, = tied with it on the paired test within the family)", ""] + fam + [""]
    if training:
        out += ["## Training cost (learned providers)", "",
                "The seconds per model above are inference only. Training cost from the shipped weight manifests "
                "(wall time of the training command; the training-set build is extra); see docs/protocol.md.", "",
                "| provider | n | training wall time | epochs | threads | command |", "|---|---:|---:|---:|---:|---|"]
        for t in training:
            sec = "not recorded" if t["seconds"] is None else f"{t['seconds']:.0f} s"
            out.append(f"| {t['provider']} | {t['n']} | {sec} | {_f(t['epochs'], '{}')} | {_f(t['threads'], '{}')} "
                       f"| `{t['command']}` |")
        out.append("")
    if provider_notes:
        out.append("## Test data")
        out.append("")
        out += [f"- {x}" for x in provider_notes]
        out.append("")
    if figures:
        out.append("## Figures")
        out.append("")
        for fig in figures:
            title, name = fig[0], fig[1]
            out.append(f"### {title}")
            out.append("")
            out.append(f"![{title}]({name})")
            out.append("")
            if len(fig) > 2 and fig[2]:
                out += [fig[2], ""]
    out.append("## Run")
    out.append("")
    if json_name:
        out.append(f"Per-case records (JSON Lines, one record per case, every metric): `{json_name}`.")
    out.append(f"Every mean with its interval, the paired comparisons and the per-family statistics (JSON): "
               f"`{stem or report_stem(ns)}.json`.")
    if wall_seconds is not None:
        la = load_average()
        load = "" if la is None else f" (1-minute load average at the end: {la[0]:.1f})"
        out.append(f"Wall time of the run that wrote this report: {wall_seconds:.0f} s on {os.cpu_count()} "
                   f"CPU cores{load}, including the gallery re-runs and the report.")
    nerr = sum(r["error"] is not None for r in records)
    nskip = sum(r.get("status") == "skipped" for r in records)
    out.append(f"{len(records)} cases, {nerr} with an error" + (f", {nskip} skipped by design." if nskip else "."))
    out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ figures
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
    ncol = 4 if len(series) > 12 else 2  # the legend sits below the axes, in columns
    rows = -(-len(series) // ncol)
    fig, ax = plt.subplots(figsize=(10.0, 4.8 + 0.17 * rows), layout="constrained")
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
        fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="outside lower center", ncol=ncol)
    return save_png(fig, path)


def plot_error_vs_n(records, path, summary=None):
    """Mean model error against n, one line per pair (PNG)."""
    return _line_plot(_series(summarize(records) if summary is None else summary, "model_error"), path, "mean model error ||rho - rho_hat||/||rho||",
                      "Model error vs grid size", loglog=False)


def _method_family(refiner):
    """The method family of a pair for the cost-vs-n plot: its refiner (the provider alone for ``none``)."""
    return "provider alone" if refiner == "none" else refiner


def plot_seconds_vs_n(records, path, summary=None):
    """Seconds per model against n, log-log, one line per method family (refiner; median over providers) (PNG)."""
    fam = {}
    for r in summarize(records) if summary is None else summary:
        v = r["seconds"]["mean"]
        if v is None or v <= 0:
            continue
        fam.setdefault((_method_family(r["refiner"]), r["n"]), []).append(v)
    series = {}
    for (f, n), vals in fam.items():
        series.setdefault((f, "none"), []).append((n, float(np.median(vals))))
    series = {k: sorted(v) for k, v in sorted(series.items())}
    return _line_plot(series, path, "seconds per model (median over providers of the pair means)",
                      "Cost vs grid size per method family (log-log)", loglog=True)


def _pareto_note(an):
    """The closing note under the Pareto figure: what it shows and which pairs form the front."""
    lines = ["One panel per grid size: every pair's mean model error (bar: its 95 % interval over the test models) "
             "against its mean seconds per model (provider + refiner, log scale). Red: the Pareto front, the pairs "
             "that no other pair beats on both accuracy and cost, joined by a staircase (the best error reachable "
             "within a time budget); ringed: the pairs tied with the leader on the paired test. Timings are wall "
             "times on a shared machine (see Run); the ranking along the error axis does not depend on them."]
    for sz in an["sizes"]:
        pts, labs = [], []
        for p in sz["pairs"]:
            me, sec = p["ci"]["model_error"]["mean"], p["ci"]["seconds"]["mean"]
            if me is not None and sec is not None and sec > 0:
                pts.append((sec, me))
                labs.append(p["label"])
        if pts:
            front = pareto_front(pts)
            lines.append(f"- n = {sz['n']}: front, fastest first: " + ", ".join(
                f"{labs[i]} ({pts[i][0]:.2g} s, {pts[i][1]:.3g})" for i in front) + ".")
    return "\n\n".join([lines[0], "\n".join(lines[1:])]) if len(lines) > 1 else lines[0]


def pareto_front(points):
    """Indices of the Pareto-optimal points (no other point is both faster and more accurate).

    Parameters
    ----------
    points : sequence of (seconds, error)
        Lower is better in both.

    Returns
    -------
    list of int
        Indices into ``points``, by increasing seconds (so by decreasing error).

    Examples
    --------
    >>> pareto_front([(1.0, 0.9), (2.0, 0.8), (3.0, 0.85), (0.5, 1.0)])
    [3, 0, 1]
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    out = []
    best = np.inf
    for i in order:
        if points[i][1] < best:
            out.append(i)
            best = points[i][1]
    return out


def plot_pareto(records, path, analysis=None):
    """Per grid size: mean model error (with its 95 % interval) against mean seconds per model (log x) for
    every pair; the Pareto front drawn and its pairs labelled; pairs tied with the leader ringed (PNG)."""
    plt = _plt()
    sizes = (analysis or analyse(records))["sizes"]
    ncol = max(len(sizes), 1)
    fig, axes = plt.subplots(1, ncol, figsize=(6.4 * ncol, 5.4), squeeze=False, constrained_layout=True)
    for ax, sz in zip(axes[0], sizes):
        pts, labs, halves, tied = [], [], [], []
        for p in sz["pairs"]:
            me, sec = p["ci"]["model_error"], p["ci"]["seconds"]
            if me["mean"] is None or sec["mean"] is None or sec["mean"] <= 0:
                continue
            pts.append((sec["mean"], me["mean"]))
            labs.append(p["label"])
            halves.append(me["half"] or 0.0)
            tied.append(bool(p.get("tied")))
        if not pts:
            ax.set_title(f"n = {sz['n']}: no results")
            continue
        x = np.array([q[0] for q in pts])
        y = np.array([q[1] for q in pts])
        front = pareto_front(pts)
        on = np.zeros(len(pts), bool)
        on[front] = True
        ax.errorbar(x[~on], y[~on], yerr=np.array(halves)[~on], fmt="o", color="0.6", ms=4, lw=0.8, capsize=2,
                    label="pair (mean, 95 % CI)")
        ax.errorbar(x[on], y[on], yerr=np.array(halves)[on], fmt="o", color="C3", ms=6, lw=1.0, capsize=2,
                    label="Pareto front")
        ax.plot(x[front], y[front], "-", color="C3", lw=1.2, drawstyle="steps-post")
        tmask = np.array(tied)
        if tmask.any():
            ax.plot(x[tmask], y[tmask], "o", ms=11, mfc="none", mec="k", mew=1.0, label="tied with the leader")
        for k, i in enumerate(front):
            ax.annotate(labs[i], (x[i], y[i]), xytext=(6, 8 if k % 2 == 0 else -12), textcoords="offset points",
                        fontsize=7, color="C3")
        ax.set_xscale("log")
        ax.set_xlabel("mean seconds per model (provider + refiner, log scale)")
        ax.set_ylabel("mean model error ||rho - rho_hat||/||rho||")
        ax.set_title(f"n = {sz['n']}: accuracy vs cost ({len(pts)} pairs)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper right")
    return save_png(fig, path)


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
            im = model_panel(ax, r, vmax=vmax, extent=[0, 1000, 1000, 0], ticks=True,
                             title=f"n={n}: {label}" + (f"\nerror {me:.3f}" if me is not None else ""))
            ax.tick_params(labelsize=6)
            if j == 0:
                ax.set_ylabel("depth (m)", fontsize=7)
        fig.colorbar(im, ax=axes[i, :].tolist(), shrink=0.8, label="kg/m$^3$")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_png(fig, path)


def write_report(records, out_dir, ns, *, command, wall_seconds=None, settings=None, gallery=None,
                 json_path=None, provider_notes=None, stem=None, training=None, summary=None, analysis=None):
    """Write ``<out_dir>/<stem>.md`` (default stem ``compare-<n...>``), ``<stem>.json`` (every mean with its
    interval, the paired comparisons, per family) and the PNGs; returns the list of written paths.

    ``summary`` / ``analysis``: the records' summary and statistics when already computed (else computed here,
    once)."""
    out_dir = Path(out_dir)
    stem = stem or report_stem(ns)
    rows = summarize(records) if summary is None else summary
    an = analyse(records) if analysis is None else analysis
    written = []
    figs = []
    p = plot_error_vs_n(records, out_dir / f"{stem}-error.png", rows)
    figs.append(("Model error vs n", p.name))
    written.append(p)
    p = plot_pareto(records, out_dir / f"{stem}-pareto.png", an)
    figs.append(("Accuracy vs cost: the Pareto front per grid size", p.name, _pareto_note(an)))
    written.append(p)
    if len({int(r["n"]) for r in records}) > 2:
        p = plot_seconds_vs_n(records, out_dir / f"{stem}-seconds.png", rows)
        figs.append(("Seconds vs n per method family (log-log)", p.name))
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
    written.insert(0, atomic_write_text(out_dir / f"{stem}.json",
                                        analysis_json(records, command=command, settings=settings, analysis=an)))
    text = markdown(records, ns, command=command, wall_seconds=wall_seconds, settings=settings, figures=figs,
                    json_name=json_name, provider_notes=provider_notes, stem=stem, training=training, summary=rows,
                    analysis=an)
    written.insert(0, atomic_write_text(out_dir / f"{stem}.md", text))
    return written


def run(out="reports", quick=False, log=print, *, ns=(50, 100), command=None, **options):
    """Run a comparison (:func:`gravbench.bench.compare.run_comparison`) and write its report into ``out``.

    The reports' common entry point. ``quick``: 4 test models per size and no gallery.
    ``options`` go to :func:`~gravbench.bench.compare.run_comparison` (``providers``,
    ``refiners``, ``samples``, ``noise``, ``seed``, ``resume``, ``overwrite``, ...);
    the records go to ``out/<stem>.jsonl`` unless ``records_path`` is given. Returns the
    :class:`~gravbench.bench.compare.Comparison`.
    """
    if quick:
        options.setdefault("samples", 4)
        options.setdefault("gallery", False)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = report_stem(ns, options.get("sigma_scale", 1.0), options.get("noise_kind", "gaussian"))
    options.setdefault("records_path", out / f"{stem}.jsonl")
    c = run_comparison(ns, log=log, **options)
    if command is None:
        command = "gravbench.reports.compare.run(" + ", ".join(
            [f"{str(out)!r}", f"ns={list(c.ns)}"] + [f"{k}={v!r}" for k, v in options.items()
                                                     if k not in ("records_path", "on_record", "on_stage")]) + ")"
    for p in write_report(c.records, out, c.ns, command=command, wall_seconds=c.wall_seconds, settings=c.settings,
                          gallery=c.gallery, json_path=c.records_path, provider_notes=c.sources, stem=c.stem,
                          training=training_costs(c.providers, c.ns), summary=c.summary):
        log(f"wrote {p}")
    return c
