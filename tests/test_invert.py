"""``gravbench invert``: the example profile is inverted back to its planted body; bad files are one line."""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

import gravbench.invert as gi
from gravbench.metrics import is_success
from gravbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ridge-profile.csv"


def _planted(path):
    """The planted body's centre (x, elevation), m, from the comment the generator writes."""
    text = path.read_text()
    m = re.search(r"planted body: x = ([-\d.]+) m, elevation = ([-\d.]+) m", text)
    return float(m.group(1)), float(m.group(2))


def _centroid(rho, active, grid, datum, frac=0.5):
    """Density-weighted centre (x, elevation) of the recovered anomaly: the cells above ``frac`` of its peak."""
    r = np.where(active, rho, 0.0)
    w = np.where(r > frac * r.max(), r, 0.0)
    X, Z = np.meshgrid(grid["x_centers"], grid["z_centers"])
    return float((w * X).sum() / w.sum()), float(datum - (w * Z).sum() / w.sum())


def test_example_csv_is_reproducible(tmp_path):
    spec = importlib.util.spec_from_file_location("make_ridge_profile", ROOT / "examples" / "make_ridge_profile.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.write(tmp_path / "ridge.csv")
    assert Path(out).read_text() == EXAMPLE.read_text()


def test_invert_example_finds_the_planted_body(tmp_path, capsys):
    out = tmp_path / "inv"
    assert main(["invert", str(EXAMPLE), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "chi2" in text and "regional gz" in text and "varying heights" in text
    summ = json.loads((out / "summary.json").read_text())
    z = np.load(out / "model.npz", allow_pickle=False)
    rho, active = z["rho"], z["active"]
    assert np.all(rho[~active] == 0.0) and (~active).any()
    xe, ze = z["x_edges"], z["z_edges"]
    grid = {"x_centers": 0.5 * (xe[1:] + xe[:-1]), "z_centers": 0.5 * (ze[1:] + ze[:-1])}
    dx, dz = float(xe[1] - xe[0]), float(ze[1] - ze[0])
    cx, ce = _centroid(rho, active, grid, float(z["datum_elevation"]))
    bx, be = _planted(EXAMPLE)
    assert abs(cx - bx) <= 2 * dx, (cx, bx)
    assert abs(ce - be) <= 2 * dz, (ce, be)
    n = summ["n_data"]
    assert summ["success"] and is_success(summ["chi2"], n)
    # the data file holds the residuals that give the reported chi2
    d = np.genfromtxt(out / "data.csv", delimiter=",", skip_header=2, usecols=(7, 8))
    np.testing.assert_allclose(np.mean((d[:, 0] / d[:, 1]) ** 2), summ["chi2"], rtol=1e-3)
    # the joint regional trend is near the planted one (-12 mGal + 0.8 mGal/km)
    c0, c1 = summ["regional"]["gz"]["coef"]
    assert abs(c0 + 12.0) < 0.3 and abs(c1 - 8e-4) < 1e-4
    assert (out / "invert.png").stat().st_size > 10_000 and (out / "model.csv").exists()


def _write(tmp_path, text, name="bad.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = "x,elevation,gz\n0,10,1.0\n10,11,1.5\n20,12,1.2\n30,12,0.9\n"


@pytest.mark.parametrize("text, words", [
    ("x,elevation,gz\n0,10,1.0\n10,11,abc\n20,12,1.2\n", ["row 3", "column 'gz'", "'abc' is not a number"]),
    ("x,elevation,gz\n0,10,1.0\n10,11\n20,12,1.2\n", ["row 3", "expected 3 fields"]),
    ("x,gz\n0,1.0\n10,1.5\n20,1.2\n", ["row 1", "missing column 'elevation'"]),
    ("x,elevation,gz,color\n0,1,1,red\n", ["row 1", "column 4", "unknown column"]),
    ("# units: mGal\n\n", ["no header row"]),
    ("x,elevation,gz,sigma_gz\n0,10,1.0,0.1\n10,11,1.5,-0.1\n20,12,1.2,0.1\n", ["row 3", "column 'sigma_gz'",
                                                                               "must be > 0"]),
    ("x,elevation,gz\n0,10,1.0\n10,11,nan\n20,12,1.2\n", ["row 3", "column 'gz'", "not finite"]),
    ("x,elevation,gz\n0,10,1.0\n10,11,1.5\n0,12,1.2\n", ["rows 2 and 4", "column 'x'", "same x"]),
    ("x,elevation,gz,ground\n0,10,1.0,9\n10,11,1.5,12\n20,12,1.2,12\n", ["row 3", "column 'elevation'",
                                                                        "below the ground"]),
    ("# units: furlongs\n" + GOOD, ["unknown gravity units"]),
])
def test_bad_files_are_one_line_naming_row_and_column(tmp_path, capsys, text, words):
    p = _write(tmp_path, text)
    assert main(["invert", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for w in words:
        assert w in err[0], (w, err[0])
    assert not (tmp_path / "o").exists()


def test_bad_options_are_one_line(tmp_path, capsys):
    p = _write(tmp_path, GOOD, "good.csv")
    for args, word in ((["--method", "nope"], "--method"), (["--regional", "wavy"], "--regional"),
                       (["--operator", "x"], "--operator"), (["--regional-exclude", "1"], "--regional-exclude")):
        assert main(["invert", str(p), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and word in err[0]
    assert main(["invert", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_units_header_and_option_convert_to_mgal(tmp_path):
    p1 = _write(tmp_path, GOOD, "a.csv")
    p2 = _write(tmp_path, "# units: uGal\n" + GOOD.replace("1.0", "1000").replace("1.5", "1500")
                .replace("1.2", "1200").replace("0.9", "900"), "b.csv")
    a, b = gi.read_profile(p1), gi.read_profile(p2)
    np.testing.assert_allclose(a.data["gz"], b.data["gz"])
    np.testing.assert_allclose(gi.read_profile(p1, units="m/s^2").data["gz"], a.data["gz"] * 1e5)
    assert a.components == ("gz",) and a.sigma["gz"] is None


def test_method_parsing_and_gx_gz_profile(tmp_path):
    assert gi.parse_method("smooth") == (None, "smooth")
    assert gi.parse_method("depth-weighted") == ("depth-weighted", None)
    assert gi.parse_method("zero->cgls") == ("zero", "cgls")
    for bad in ("nope", "cgls->zero", "a->b->c", ""):
        with pytest.raises(ValueError, match="method"):
            gi.parse_method(bad)
    # a profile with both components and a uniform sigma column, flat ground: the FFT-able geometry
    x = np.arange(0.0, 1000.0 + 1, 25.0)
    import gravbench as gb

    grid = gb.Grid.from_edges([400.0, 600.0], [100.0, 250.0])
    d = gb.Problem(grid, gb.Survey(x, np.zeros_like(x), ground=(x, np.zeros_like(x)))).forward([[500.0]])
    rows = "\n".join(f"{xi},100,{gxi:.6f},{gzi:.6f},0.01" for xi, gxi, gzi in zip(x, d[:x.size], d[x.size:]))
    p = _write(tmp_path, "x,elevation,gx,gz,sigma\n" + rows + "\n", "both.csv")
    res, files = gi.invert_csv(p, tmp_path / "both", method="zero->cgls", regional="none", figure=False)
    assert res.problem.survey.components == ("gx", "gz") and res.n_data == 2 * x.size
    assert res.problem.n_active == res.problem.n_cells
    assert res.chi2 < 1.5 and "invert.png" not in files
