"""The command line: the main job runs, bad input is one line and exit 1, --help is light."""

import subprocess
import sys

import numpy as np
import pytest

from gravbench.cli import main


def test_forward_command_writes_png(tmp_path, capsys):
    out = tmp_path / "f.png"
    assert main(["forward", "--n", "8", "--out", str(out)]) == 0
    assert out.exists() and out.stat().st_size > 1000
    text = capsys.readouterr().out
    assert "operator" in text and "gz range" in text


def test_forward_bad_n_is_one_line(capsys):
    assert main(["forward", "--n", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--n must be >= 4" in err[0]


def test_forward_bad_method(capsys):
    assert main(["forward", "--n", "8", "--method", "bogus"]) == 2
    assert "--method" in capsys.readouterr().err


def test_forward_missing_dir(tmp_path, capsys):
    assert main(["forward", "--n", "8", "--out", str(tmp_path / "nope" / "f.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unknown_command_exit_nonzero():
    assert main(["no-such-command"]) != 0


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\n"
        "from gravbench.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'dask', 'distributed') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr


def test_demo_model_is_size_independent():
    import gravbench as gb
    from gravbench.plotting import demo_model

    a = demo_model(gb.Problem.paper(n=20).grid)
    b = demo_model(gb.Problem.paper(n=40).grid)
    # same fraction of the section is anomalous at both resolutions (within a cell's worth)
    assert abs((a != 0).mean() - (b != 0).mean()) < 0.03
    assert a.max() == 400.0 and a.min() == -250.0 and np.isfinite(a).all()


def test_report_unet_assemble_without_json_is_a_clear_error(tmp_path, capsys):
    pytest.importorskip("torch")
    assert main(["report", "unet", "--assemble", "--out", str(tmp_path)]) == 2
    assert "unet.json" in capsys.readouterr().err
