"""``gravbench report table1``: gravbench's Table I (providers, CNN + refiners) -> reports/table1.md."""

from __future__ import annotations

from pathlib import Path

import typer


def _targets(res):
    """One line per issue target, computed from the results (met / NOT met)."""
    out = []
    for tag, rows in res["rows"].items():
        lvl = f"noise {float(tag) * 100:g} %"
        if "cnn" not in rows:
            out.append(f"{lvl}: no CNN row (weights missing?)")
            continue
        sub = f"cnn [first {res['refine_samples']}]"
        cnn_row = rows[sub] if sub in rows else rows["cnn"]  # same models as the classical / refiner rows
        cls = {k: rows[k]["model_error"]["mean"] for k in ("zero", "tikhonov", "depth-weighted") if k in rows}
        if cls:
            best = min(cls, key=cls.get)
            c = cnn_row["model_error"]["mean"]
            ok = c <= 0.5 * cls[best]
            out.append(f"{lvl}: CNN mean model error {c:.4f} vs best classical ({best}) {cls[best]:.4f}: ratio "
                       f"{c / cls[best]:.3f} (target <= 0.5): {'met' if ok else 'NOT met'}")
        c = cnn_row["model_error"]["mean"]
        for k, r in rows.items():
            if not k.startswith("cnn+"):
                continue
            lower = r["model_error"]["mean"] < c
            tm = rows.get("true model", {}).get("misfit", {}).get("mean")
            note = f"{lvl}: {k}: mean model error {r['model_error']['mean']:.4f} (CNN alone {c:.4f}, {'lower' if lower else 'not lower'}), mean misfit {r['misfit']['mean']:.3g} (noise level {tm:.3g})"
            if "chi2" in r:
                from ..bench.metrics import chi2_threshold

                hi = chi2_threshold(res["n_data"])
                c2 = r["chi2"]["median"]
                level = "at" if 2.0 - hi <= c2 <= hi else ("below (over-fitting the noise)" if c2 < 1 else "above")
                note += f", median chi2 {r['chi2']['median']:.3g} ({level} the noise level, 1 +- {hi - 1:.3f})"
            out.append(note)
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
        md = write_report(res, out, command=cmd)
        for s in res["summary_lines"]:
            console.print(s)
        console.print(f"[green]wrote[/green] {md}")
        failed = [s for s in res.get("notes", []) if " failed at " in s]
        if failed:  # the report is written, but a row that failed fails the command (exit 1)
            from . import RunFailed

            raise RunFailed(f"{len(failed)} row(s) of the table failed (first: {failed[0]}); see {md}")
