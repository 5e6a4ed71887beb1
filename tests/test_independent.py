"""Independent test sets (data/independent.py): apart from data/families.py, deterministic, fingerprinted."""

import ast
from pathlib import Path

import numpy as np
import pytest

import gravbench as gb
from gravbench.data import fingerprint as fpm
from gravbench.data import independent as ind
from gravbench.data import sets as std_mod

INDEPENDENT = [n for n, s in std_mod.STANDARD.items() if s.generator != "families"]


def test_independent_module_does_not_import_the_families_code():
    """The generators must not reuse families.py code or defaults: no import of it, at any level of the module."""
    src = Path(ind.__file__).read_text()
    names = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
            names.update(f"{node.module}.{a.name}" for a in node.names)
            names.update(a.name for a in node.names)
    bad = sorted(n for n in names if "families" in n or "_kernels" in n)
    assert not bad, f"data/independent.py imports {bad}"
    assert "families" not in "".join(line for line in src.splitlines() if "import" in line)


def test_there_are_two_independent_test_only_sets():
    assert {std_mod.STANDARD[n].generator for n in INDEPENDENT} >= {"rectangles", "sections"}
    for n in INDEPENDENT:
        train, val, test = std_mod.STANDARD[n].splits
        assert train == 0 and val == 0 and test >= 20


@pytest.mark.parametrize("gen", sorted(ind.GENERATORS))
def test_generators_are_deterministic_per_index(gen):
    a = ind.render_independent(gen, [3, 4, 5], (50, 50), seed=1)
    b = ind.render_independent(gen, [5], (50, 50), seed=1)            # a model does not depend on its neighbours
    assert np.array_equal(a[2], b[0])
    assert np.array_equal(a, ind.render_independent(gen, [3, 4, 5], (50, 50), seed=1))
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a, ind.render_independent(gen, [3, 4, 5], (50, 50), seed=2))


def test_rectangles_follow_their_specification():
    rho = ind.render_independent("rectangles", np.arange(300), (50, 50), seed=0)
    for m in rho:
        rows = np.flatnonzero(np.abs(m).sum(1))
        assert rows.min() >= 2 and rows.max() <= 50 - 5 - 1        # 2 cells below the top, 5 above the bottom
        vals = np.abs(m[m != 0])
        assert vals.min() >= 200 and vals.max() <= 600
    assert (rho > 0).any() and (rho < 0).any()


def test_sections_have_basement_basin_and_salt():
    rho = ind.render_independent("sections", np.arange(50), (50, 50), seed=0)
    assert (rho[:, -1] > 0).mean() > 0.5                          # basement at depth in most columns
    assert (rho[:, 2:10] < 0).mean() > 0.2                        # basin fill near the top
    assert np.all(rho[:, :2] == 0)                                # the top 2 rows are left empty
    assert np.all(np.isfinite(rho))


def test_bad_generator_and_small_grid_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown independent generator 'circles'"):
        ind.render_independent("circles", [0], (50, 50), seed=0)
    with pytest.raises(ValueError, match="rectangles needs at least"):
        ind.render_rectangles((8, 8), 0, 0)


@pytest.mark.parametrize("name", INDEPENDENT)
def test_fresh_build_matches_the_recorded_fingerprint(monkeypatch, tmp_path, name):
    monkeypatch.setenv("GRAVBENCH_CACHE", str(tmp_path))
    rec = std_mod.recorded(name)
    assert rec is not None, f"{name} has no valid recorded fingerprint: 'gravbench data fingerprints {name} --record'"
    got = std_mod.compute_standard(name, ("test",), progress=False)["test"]
    ok, how = fpm.compare(got, rec["splits"]["test"])
    assert ok and how["models"] == "bitwise", f"{name}: a fresh build differs from the record; bump INDEPENDENT_VERSION"
    ds = gb.data.standard(name, "test", progress=False)
    assert len(ds) == std_mod.STANDARD[name].splits[2]
    assert ds.family_counts() == {std_mod.STANDARD[name].generator: len(ds)}
    assert len(gb.data.standard(name, "train", progress=False)) == 0
    # the data are the forward model of the models, with the default 1 % peak noise
    p = std_mod.STANDARD[name].problem()
    g = p.operator("dense").A @ ds.rho[:3].reshape(3, -1).astype(np.float64).T
    np.testing.assert_allclose(ds.g_clean[:3], g.T, rtol=1e-9, atol=1e-12)
    assert 0 < np.abs(ds.g - ds.g_clean).max() < 0.05 * np.abs(ds.g_clean).max()


def test_compare_runs_on_an_independent_set(monkeypatch, tmp_path):
    from gravbench.cli import main

    monkeypatch.setenv("GRAVBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert main(["compare", "--dataset", "rectangles-50", "--samples", "2", "--providers", "zero,tikhonov",
                 "--refiners", "none", "--no-gallery", "--out", str(out), "--scaling", ""]) == 0
    md = (out / "compare-50-rectangles-50.md").read_text()
    assert "standard set rectangles-50 (test split)" in md and "--dataset rectangles-50" in md
    assert main(["compare", "--dataset", "rectangles-50", "--n", "25", "--samples", "2", "--out", str(out)]) != 0
    assert main(["compare", "--dataset", "no-such-set", "--samples", "2", "--out", str(out)]) != 0
