"""``gravbench report table1``: gravbench's Table I (providers, CNN + refiners) -> reports/table1[-<dataset>].md."""

from __future__ import annotations

from pathlib import Path

import typer


def _targets(res):
    """One line per issue target, computed from the results (met / NOT met)."""
    from ..bench.metrics import success_band

    out = []
    fwi = res["dataset"].startswith("fwi")
    for tag, rows in res["rows"].items():
        lvl = f"noise {float(tag) * 100:g} %"
        noisy = float(tag) > 0
        if "cnn" not in rows:
            out.append(f"{lvl}: no CNN row (weights missing?)")
            continue
        sub = f"cnn [first {res['refine_samples']}]"
        cnn_row = rows[sub] if sub in rows else rows["cnn"]  # same models as the classical / refiner rows
        c = cnn_row["model_error"]["mean"]
        if fwi and not noisy:
            full = rows["cnn"]["model_error"]["mean"]
            pm = rows.get("prior-mean", {}).get("model_error", {}).get("mean")
            out.append(f"{lvl}: CNN mean model error {full:.4f} (paper 0.049): "
                       f"{'met' if full <= 0.049 else 'NOT met'} (target <= 0.049)")
            if pm:
                out.append(f"{lvl}: CNN / prior-mean model error {full:.4f} / {pm:.4f} = {full / pm:.3f}: "
                           f"{'met' if full <= 0.7 * pm else 'NOT met'} (target <= 0.7)")
            out.append(f"{lvl}: CNN mean relative misfit {rows['cnn']['misfit']['mean']:.3g} (paper 0.0027)")
        elif not fwi:
            cls = {k: rows[k]["model_error"]["mean"] for k in ("zero", "tikhonov", "depth-weighted") if k in rows}
            if cls:
                best = min(cls, key=cls.get)
                ok = c <= 0.5 * cls[best]
                out.append(f"{lvl}: CNN mean model error {c:.4f} vs best classical ({best}) {cls[best]:.4f}: ratio "
                           f"{c / cls[best]:.3f} (target <= 0.5): {'met' if ok else 'NOT met'}")
        cm = cnn_row["misfit"]["mean"]
        for k, r in rows.items():
            if not k.startswith("cnn+"):
                continue
            me, mis = r["model_error"]["mean"], r["misfit"]["mean"]
            tm = rows.get("true model", {}).get("misfit", {}).get("mean")
            note = (f"{lvl}: {k}: mean model error {me:.4f} (CNN alone {c:.4f}, {100 * (me / c - 1):+.1f} %), "
                    f"mean misfit {mis:.3g} (CNN alone {cm:.3g}; noise level {tm:.3g})")
            if not noisy and k in ("cnn+gd", "cnn+gmres", "cnn+lgmres", "cnn+icg"):
                ok = mis < cm and me <= 1.01 * c
                note += f": lowers the misfit without raising the error by > 1 %: {'met' if ok else 'NOT met'}"
            if noisy and "chi2" in r:
                lo, hi = success_band(res["n_data"])
                note += (f", median chi2 {r['chi2']['median']:.3g} (success band {lo:.3f}..{hi:.3f}), success "
                         f"{100 * r.get('success_rate', 0):.0f}%, over-fitted {r.get('overfit', 0)} of {r['count']}")
                if k in ("cnn+gmres", "cnn+lgmres"):
                    note += f": {'met' if r.get('success_rate', 0) >= 0.99 else 'NOT met'} (ends in the success band)"
            out.append(note)
    ind = res.get("independent")
    if ind:
        out.append(f"independent OpenFWI-style models ({ind['count']}, noise-free): CNN mean model error "
                   f"{ind['cnn']['model_error']['mean']:.4f}, prior-mean {ind['prior-mean']['model_error']['mean']:.4f}")
    return out


def register(app, report_app):
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
        from . import UserError, console
        from ..bench.table1 import run_table1, write_report

        if samples < 1 or refine_samples < 1 or latent_samples < 1:
            raise UserError("--samples, --refine-samples and --latent-samples must be >= 1")
        refine_samples = min(refine_samples, samples)
        latent_samples = min(latent_samples, samples)
        if not out.exists():
            out.mkdir(parents=True)
        res = run_table1(dataset=dataset, samples=samples, refine_samples=refine_samples,
                         latent_samples=latent_samples, seed=seed, log=console.print)
        res["summary_lines"] = _targets(res)
        cmd = (f"gravbench report table1 --dataset {dataset} --samples {samples} --refine-samples {refine_samples} "
               f"--latent-samples {latent_samples}")
        md = write_report(res, out, command=cmd)  # table1.md for paper-50, table1-<dataset>.md otherwise
        for s in res["summary_lines"]:
            console.print(s)
        console.print(f"[green]wrote[/green] {md}")
        failed = [s for s in res.get("notes", []) if " failed at " in s]
        if failed:  # the report is written, but a row that failed fails the command (exit 1)
            from . import RunFailed

            raise RunFailed(f"{len(failed)} row(s) of the table failed (first: {failed[0]}); see {md}")
