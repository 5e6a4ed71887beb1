import numpy as np
import pytest

import gravbench as gb


def test_grid_edges_and_shape():
    g = gb.Grid(nx=4, nz=3, width=400.0, depth=300.0)
    assert g.shape == (3, 4)
    np.testing.assert_allclose(g.x_edges, [0, 100, 200, 300, 400])
    np.testing.assert_allclose(g.z_edges, [0, 100, 200, 300])
    assert g.uniform_x and g.uniform_z


def test_nonuniform_grid():
    g = gb.Grid.from_edges([0, 1, 3, 7], [0, 2, 5])
    assert g.shape == (2, 3) and not g.uniform_x


@pytest.mark.parametrize(
    "xe, ze, match",
    [([0, 1, 1, 2], [0, 1], "strictly increasing"), ([0], [0, 1], "at least 2"), ([0, np.nan], [0, 1], "finite"),
     ([0, 1], [-1, 1], "depths >= 0")],
)
def test_bad_edges(xe, ze, match):
    with pytest.raises(ValueError, match=match):
        gb.Grid.from_edges(xe, ze)


def test_empty_grid():
    with pytest.raises(ValueError, match="nx"):
        gb.Grid(nx=0, nz=3)


def test_regular_survey_positions():
    g = gb.Grid(nx=5, nz=5, width=500.0, depth=500.0)
    s = gb.Survey.regular(g, per_cell=3, height=2.0)
    assert s.m == 15
    np.testing.assert_allclose(s.x, (np.arange(15) + 0.5) * 500.0 / 15)
    assert np.all(s.z == -2.0)
    assert s.regular_spacing(g) == 3


def test_station_in_ground_rejected():
    with pytest.raises(ValueError, match=r"z\[1\].*inside the ground"):
        gb.Survey(x=[0.0, 1.0], z=[0.0, 0.5])


def test_station_nan_rejected():
    with pytest.raises(ValueError, match="finite"):
        gb.Survey(x=[0.0, np.nan], z=[0.0, 0.0])


def test_irregular_survey_detected():
    g = gb.Grid(nx=5, nz=5, width=500.0, depth=500.0)
    assert gb.Survey(x=[0.0, 10.0, 25.0], z=-1.0).regular_spacing(g) is None
    assert gb.Survey(x=[0.0, 100.0 / 3, 200.0 / 3], z=[-1.0, -1.0, -2.0]).regular_spacing(g) is None


def test_problem_paper():
    p = gb.Problem.paper(n=12)
    assert p.shape == (12, 12) and p.survey.m == 36 and p.n_data == 72 and p.per_cell == 3
    with pytest.raises(ValueError, match="kernel"):
        gb.Problem(p.grid, p.survey, kernel="bogus")


def test_check_model_shape():
    p = gb.Problem.paper(n=6)
    with pytest.raises(ValueError, match=r"shape \(nz, nx\) = \(6, 6\)"):
        p.grid.check_model(np.zeros((5, 6)))
    with pytest.raises(ValueError, match="NaN"):
        p.grid.check_model(np.full((6, 6), np.nan))
