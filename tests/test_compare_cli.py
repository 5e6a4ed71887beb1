"""``gravbench compare``: the command end to end with stand-in sources, and its one-line errors."""

import json
import subprocess
import sys

import pytest

from gravbench import metrics
from gravbench.bench import runner
from gravbench.bench.runner import read_records
from gravbench.cli import cmd_compare, main
from tests import test_bench_runner as T

ARGS = ["compare", "--n", "8", "10", "--providers", "zero,flaky", "--refiners", "none,cgls3", "--samples", "3",
        "--noise", str(T.NOISE), "--seed", str(T.SEED)]


@pytest.fixture
def standins(monkeypatch):
    monkeypatch.setattr(cmd_compare, "make_toolkit", lambda: T.TK)
    monkeypatch.setattr(cmd_compare, "available_providers", lambda: ("zero", "flaky"))
    monkeypatch.setattr(cmd_compare, "available_refiners", lambda: ("none", "cgls3"))


def test_compare_writes_records_report_and_figures(tmp_path, standins, capsys):
    assert main(ARGS + ["--out", str(tmp_path)]) == 1  # the flaky provider fails on one model: exit 1
    cap = capsys.readouterr()
    out = cap.out
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and "4 of 24 cases failed" in err[0] and "flaky provider fails" in err[0]
    assert "n = 8" in out and "n = 10" in out and "zero -> cgls3" in out
    recs = read_records(tmp_path / "compare-8-10.jsonl")
    assert len(recs) == 2 * 3 * 2 * 2
    for r in recs:
        assert tuple(r) == metrics.RECORD_KEYS
    assert sum(r["error"] is not None for r in recs) == 2 * 2  # flaky on model 1, both refiners, both n
    md = (tmp_path / "compare-8-10.md").read_text()
    assert "gravbench compare --n 8 10" in md and "| 1 | zero | cgls3 |" in md
    assert "- Most accurate: **zero -> cgls3**" in md
    for name in ("error", "pareto", "gallery"):
        png = tmp_path / f"compare-8-10-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "compare-8-10-seconds.png").exists()  # cost vs n only with more than two sizes
    doc = json.loads((tmp_path / "compare-8-10.json").read_text())
    assert [s["n"] for s in doc["sizes"]] == [8, 10] and doc["sizes"][0]["leader"] == "zero -> cgls3"
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporaries


def test_compare_json_option_and_resume(tmp_path, standins, capsys):
    jp = tmp_path / "sub" / "recs.jsonl"
    assert main(ARGS + ["--out", str(tmp_path), "--json", str(jp), "--no-gallery"]) == 1
    first = read_records(jp)
    # resume of a finished sweep keeps every record and adds none
    assert main(ARGS + ["--out", str(tmp_path), "--json", str(jp), "--resume", "--no-gallery"]) == 1
    assert len(read_records(jp)) == len(first)
    # drop the last three records: resume runs exactly those again
    lines = jp.read_text().splitlines()
    jp.write_text("\n".join(lines[:-3]) + "\n")
    assert main(ARGS + ["--out", str(tmp_path), "--json", str(jp), "--resume", "--no-gallery"]) == 1
    again = read_records(jp)
    T._same(first, again)


def test_no_weights_row_says_how_to_train(tmp_path, monkeypatch, capsys):
    from gravbench.providers import NoWeightsError

    def get_provider(name, n):
        if name == "learned":
            raise NoWeightsError(f"no weights for a {n}x{n} grid (have 50x50); make them with "
                                 f"`gravbench train cnn --n {n}`")
        return T.fake_get_provider(name, n)

    tk = T.Toolkit(load=T.fake_load, get_provider=get_provider, refine=T.fake_refine, warmup=False)
    monkeypatch.setattr(cmd_compare, "make_toolkit", lambda: tk)
    monkeypatch.setattr(cmd_compare, "available_providers", lambda: ("zero", "learned"))
    monkeypatch.setattr(cmd_compare, "available_refiners", lambda: ("none", "cgls3"))
    args = ["compare", "--n", "8", "--providers", "zero,learned", "--refiners", "none", "--samples", "2",
            "--out", str(tmp_path), "--no-gallery"]
    assert main(args) == 0  # no weights is skipped by design, not a failure
    out = " ".join(capsys.readouterr().out.split())
    assert "learned: no weights for n=8; train them with: gravbench train cnn --n 8" in out
    recs = read_records(tmp_path / "compare-8.jsonl")
    skipped = [r for r in recs if r["provider"] == "learned"]
    assert len(skipped) == 2 and all(r["status"] == "skipped" and r["error"] is None for r in skipped)
    assert all(r["reason"].startswith("NoWeightsError: no weights for a 8x8 grid") for r in skipped)
    md = (tmp_path / "compare-8.md").read_text()
    assert "| - | learned | none | no weights for n=8; train them with `gravbench train cnn --n 8`" in md


@pytest.mark.parametrize("extra, message", [
    (["--providers", "nope"], "unknown provider 'nope'"),
    (["--refiners", "zero,nope"], "unknown refiner 'zero'"),
    (["--n", "3"], "--n must be >= 4"),
    (["--noise", "-0.1"], "--noise must be a finite number >= 0"),
    (["--noise", "inf"], "--noise must be a finite number >= 0"),
    (["--noise", "nan"], "--noise must be a finite number >= 0"),
    (["--timeout", "-1"], "--timeout must be a finite number of seconds > 0"),
    (["--n", "0"], "--n must be >= 4"),
    (["--n", "abc"], "Invalid value for '--n'"),
    (["--bogus-flag"], "No such option: --bogus-flag"),
    (["--resume", "--overwrite"], "--resume and --overwrite exclude each other"),
    (["--scheduler", "somewhere"], "--scheduler must be"),
    (["--samples", "0"], "--samples must be >= 1"),
    (["--scheduler", "tcp://127.0.0.1:9", "--timeout", "1"], "cannot reach the Dask scheduler"),
    (["--scheduler", "local:0"], "local:N"),
])
def test_bad_input_is_one_line(tmp_path, standins, capsys, extra, message):
    base = ["compare", "--n", "8", "--providers", "zero", "--refiners", "none", "--samples", "1",
            "--out", str(tmp_path)]
    code = 1 if "tcp://127.0.0.1:9" in extra else 2  # an unreachable scheduler fails the run; a bad value is usage
    assert main(base + extra) == code
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_unwritable_output_directory(tmp_path, standins, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["compare", "--n", "8", "--providers", "zero", "--refiners", "none", "--out",
                 str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--out: cannot create directory" in err and len(err.splitlines()) == 1


def test_debug_shows_the_traceback(tmp_path, standins):
    from gravbench.cli import UserError

    with pytest.raises(UserError):
        main(["--debug", "compare", "--n", "3", "--out", str(tmp_path)])


def test_subprocess_error_and_light_help():
    """A real process: unknown provider -> one line on stderr, exit 1; --help imports neither torch nor dask."""
    p = subprocess.run([sys.executable, "-m", "gravbench", "compare", "--providers", "nope"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2
    assert "unknown provider 'nope'" in p.stderr and "Traceback" not in p.stderr
    code = ("import sys, gravbench.bench, gravbench.bench.runner, gravbench.reports.compare; "
            "from gravbench.cli import main; main(['compare', '--help']); "
            "print(sorted(m for m in ('torch', 'dask', 'distributed') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "--scheduler" in p.stdout and p.stdout.strip().endswith("[]")


def test_ctrl_c_then_resume_from_the_command_line(tmp_path, standins, monkeypatch, capsys):
    """Ctrl-C mid-sweep exits 130 and names --resume; the resumed run ends with the uninterrupted records."""
    args = ARGS + ["--no-gallery"]
    assert main(args + ["--out", str(tmp_path / "full")]) == 1
    full = read_records(tmp_path / "full" / "compare-8-10.jsonl")
    stopper = T.Interrupting(4)
    monkeypatch.setattr(cmd_compare, "make_toolkit", lambda: T.Toolkit(
        load=T.fake_load, get_provider=T.fake_get_provider, refine=stopper, warmup=False))
    assert main(args + ["--out", str(tmp_path / "part")]) == 130
    assert "--resume" in capsys.readouterr().err
    part = tmp_path / "part" / "compare-8-10.jsonl"
    assert not part.exists()
    assert 0 < len(read_records(runner.partial_path(part))) < len(full)
    monkeypatch.setattr(cmd_compare, "make_toolkit", lambda: T.TK)
    assert main(args + ["--out", str(tmp_path / "part"), "--resume"]) == 1
    T._same(full, read_records(part))
