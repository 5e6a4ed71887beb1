"""Surveys of one component and with a ground surface: operators, refiners, providers, torch, errors."""

import numpy as np
import pytest

import gravbench as gb
from gravbench.forward.operators import dot_test

KINDS = ("dense", "matfree", "fft", "auto")


def _grid():
    return gb.Grid(nx=16, nz=8, width=800.0, depth=400.0)


def _ground(grid):
    """A hill: the ground 0 .. 90 m below the datum (depth positive down) across the grid."""
    xs = np.linspace(grid.x_edges[0], grid.x_edges[-1], 33)
    return xs, 45.0 + 45.0 * np.cos(2 * np.pi * xs / grid.width)


@pytest.mark.parametrize("comps", [("gz",), ("gx",)])
@pytest.mark.parametrize("kind", KINDS)
def test_one_component_is_the_rows_of_the_full_operator(kind, comps):
    grid = _grid()
    full = gb.Problem(grid, gb.Survey.regular(grid, per_cell=2, height=1.0))
    one = gb.Problem(grid, gb.Survey.regular(grid, per_cell=2, height=1.0, components=comps))
    m = full.survey.m
    rows = slice(0, m) if comps == ("gx",) else slice(m, 2 * m)
    A = full.operator("dense").A
    op = one.operator(kind)
    assert op.shape == (m, grid.size) and one.n_data == m
    rng = np.random.default_rng(1)
    v, u = rng.standard_normal(grid.size), rng.standard_normal(m)
    np.testing.assert_allclose(op.matvec(v), A[rows] @ v, rtol=1e-10, atol=1e-12 * np.abs(A).max())
    np.testing.assert_allclose(op.rmatvec(u), A[rows].T @ u, rtol=1e-10, atol=1e-12 * np.abs(A).max())
    assert dot_test(op, rng=2) < 1e-12
    np.testing.assert_allclose(one.sensitivity(), A[rows], rtol=1e-12)


def test_components_order_and_values_are_checked():
    x = [0.0, 10.0]
    with pytest.raises(ValueError, match="fixed order"):
        gb.Survey(x, [0.0, 0.0], components=("gz", "gx"))
    for bad in ((), ("gy",), ("gz", "gz")):
        with pytest.raises(ValueError, match="components"):
            gb.Survey(x, [0.0, 0.0], components=bad)
    s = gb.Survey(x, [0.0, 0.0], components="gz")
    assert s.components == ("gz",) and s.n_data == 2 and s.component_rows.tolist() == [2, 3]


def test_active_cells_follow_the_ground_centres():
    grid = _grid()
    gx_, gz_ = _ground(grid)
    s = gb.Survey(grid.x_centers, np.interp(grid.x_centers, gx_, gz_), ground=(gx_, gz_))
    p = gb.Problem(grid, s)
    zg = np.interp(grid.x_centers, gx_, gz_)
    expect = grid.z_centers[:, None] > zg[None, :]
    assert np.array_equal(p.active, expect) and 0 < p.n_active < grid.size
    x = np.arange(p.n_active, dtype=float) + 1.0
    full = p.to_grid(x, fill=np.nan)
    assert np.isnan(full[~expect]).all() and np.array_equal(p.to_active(np.nan_to_num(full)), x)


@pytest.mark.parametrize("comps", [("gx", "gz"), ("gz",)])
@pytest.mark.parametrize("kind", KINDS)
def test_active_cell_operator_is_A_P(kind, comps):
    """Stations at one height above a hill: R A P against the full operator on the embedded model."""
    grid = _grid()
    gx_, gz_ = _ground(grid)
    base = gb.Survey.regular(grid, per_cell=2, height=1.0)
    topo = gb.Problem(grid, gb.Survey(base.x, base.z, components=comps, ground=(gx_, gz_)))
    flat = gb.Problem(grid, base)                     # no ground: every cell
    A = flat.operator("dense").A
    rows = topo.survey.component_rows
    op = topo.operator(kind)
    assert op.shape == (topo.n_data, topo.n_active)
    rng = np.random.default_rng(3)
    v = rng.standard_normal(topo.n_active)
    u = rng.standard_normal(topo.n_data)
    emb = np.zeros(grid.size)
    emb[topo.active.ravel()] = v
    scale = np.abs(A).max()
    np.testing.assert_allclose(op.matvec(v), (A @ emb)[rows], rtol=1e-10, atol=1e-12 * scale * np.abs(v).sum())
    np.testing.assert_allclose(op.rmatvec(u), (A[rows].T @ u)[topo.active.ravel()], rtol=1e-10,
                               atol=1e-12 * scale * np.abs(u).sum())
    assert dot_test(op, rng=4) < 1e-12
    if kind == "auto":
        assert "active below the ground" in op.reason


@pytest.mark.parametrize("kind", ("dense", "matfree", "auto"))
def test_dot_test_stations_on_the_topography(kind):
    grid = _grid()
    gx_, gz_ = _ground(grid)
    xs = np.linspace(5.0, 795.0, 30)
    p = gb.Problem(grid, gb.Survey(xs, np.interp(xs, gx_, gz_), components=("gz",), ground=(gx_, gz_)))
    op = p.operator(kind)
    assert dot_test(op, rng=5) < 1e-12
    assert np.all(np.isfinite(op.todense()))
    if kind == "auto":
        assert op.method == "dense" and "varying heights" in op.reason and "varying heights" in op.describe()
    with pytest.raises(ValueError, match="varying heights"):
        p.operator("fft")


def test_station_below_the_ground_is_refused():
    ground = ([0.0, 100.0], [0.0, 50.0])
    gb.Survey([50.0], [25.0], ground=ground)                      # on the ground: fine
    with pytest.raises(ValueError, match="below the ground"):
        gb.Survey([0.0, 50.0], [0.0, 26.0], ground=ground)
    with pytest.raises(ValueError, match="inside the ground"):
        gb.Survey([0.0], [1.0])                                   # no ground: the flat z = 0


def _topo_problem(comps=("gz",)):
    grid = gb.Grid(nx=14, nz=7, width=700.0, depth=350.0)
    gx_, gz_ = _ground(grid)
    xs = np.linspace(10.0, 690.0, 28)
    return gb.Problem(grid, gb.Survey(xs, np.interp(xs, gx_, gz_) - 0.5, components=comps, ground=(gx_, gz_)))


def _topo_data(p):
    rho = np.zeros(p.shape)
    rho[3:5, 5:9] = 300.0
    g = p.forward(rho)
    sigma = 0.02 * np.abs(g).max()
    return g + sigma * np.random.default_rng(0).standard_normal(g.size), sigma


@pytest.mark.parametrize("name", gb.refiners.names())
def test_every_refiner_keeps_inactive_cells_at_zero(name):
    """Every refiner solves for the active cells only; the regularised ones, which need the grid's
    neighbours, run on the whole grid internally: there the inactive cells must stay exactly 0."""
    p = _topo_problem()
    g, sigma = _topo_data(p)
    for kind in ("dense", "matfree"):
        op = p.operator(kind)
        res = gb.refiners.run(name, op, g, sigma=sigma, maxiter=15)
        assert res.x.shape == (p.n_active,) and np.all(np.isfinite(res.x))
        full = p.to_grid(res.x)
        assert np.all(full[~p.active] == 0.0)
        assert np.linalg.norm(op.matvec(res.x) - g) < np.linalg.norm(g)   # it did fit something
    if name in ("smooth", "sparse", "compact", "focusing"):
        from gravbench.refiners.regularized import _ActiveEmbedding

        emb = _ActiveEmbedding.of(p.operator("dense"))
        x0 = np.zeros(p.n_cells)
        res = gb.refiners.run(name, emb, g, x0, sigma=sigma, maxiter=15)
        assert res.x.shape == (p.n_cells,)
        assert np.all(res.x[~p.active.ravel()] == 0.0) and np.abs(res.x).max() > 0


@pytest.mark.parametrize("name", ["zero", "tikhonov", "depth-weighted", "smooth", "sparse", "compact"])
def test_classical_providers_on_a_topography_gz_survey(name):
    p = _topo_problem()
    g, sigma = _topo_data(p)
    rho0 = gb.providers.get(name)(g, p, sigma=sigma)
    assert rho0.shape == p.shape and np.all(np.isfinite(rho0))
    assert np.all(rho0[~p.active] == 0.0)


def test_learned_provider_names_its_components():
    pytest.importorskip("torch")
    p = gb.Problem(gb.Grid(nx=50, nz=50), gb.Survey.regular(gb.Grid(nx=50, nz=50), 3, 1.0, components=("gz",)))
    with pytest.raises(ValueError, match=r"trained on data components \('gx', 'gz'\).*measures \('gz',\)"):
        gb.providers.get("cnn")(np.ones(p.n_data), p)


def test_torch_layer_with_components_and_ground():
    torch = pytest.importorskip("torch")
    from gravbench.forward.torch import GravityLayer

    p = _topo_problem(("gz",))
    op = p.operator("dense")
    rho = np.random.default_rng(7).standard_normal(p.shape)
    for engine in ("dense", "operator"):
        layer = GravityLayer(p, engine=engine)
        x = torch.tensor(rho[None], requires_grad=True)
        d = layer(x)
        np.testing.assert_allclose(d.detach().numpy()[0], op.matvec(p.to_active(rho)), rtol=1e-10, atol=1e-12)
        d.sum().backward()
        grad = x.grad.numpy()[0]
        assert np.all(grad[~p.active] == 0.0)
        np.testing.assert_allclose(grad[p.active], op.rmatvec(np.ones(p.n_data)), rtol=1e-10, atol=1e-14)


def test_noise_of_one_component_block():
    g = np.array([1.0, -3.0, 2.0])
    np.testing.assert_allclose(gb.data.noise_sigma(g, 0.1, n_components=1), 0.3)
    np.testing.assert_allclose(gb.data.noise_sigma(np.r_[g, 10 * g], 0.1, n_components=2), np.r_[[0.3] * 3, [3.0] * 3])


def test_data_set_of_a_gz_survey_over_a_hill(tmp_path):
    p = _topo_problem(("gz",))
    sets = gb.data.build(p, families="blocks", count=6, seed=3, noise=0.01, splits={"train": 4, "test": 2},
                         out=tmp_path)
    ds = sets["test"]
    assert ds.g.shape == (2, p.survey.m) and np.all(ds.rho[:, ~p.active] == 0.0)
    np.testing.assert_allclose(ds.g_clean[0], p.forward(ds.rho[0].astype(np.float64)), rtol=1e-10, atol=1e-12)
    back = gb.data.load(tmp_path / "test.npz")
    assert back.problem.survey == p.survey and back.problem.n_active == p.n_active


@pytest.mark.parametrize("kind", ("dense", "matfree"))
@pytest.mark.parametrize("station", [(30.0, 40.0), (100.0, 20.0), (-20.0, 30.0), (50.0, 0.0), (130.0, 75.0)])
def test_exact_cell_at_a_station_inside_or_beside_it(kind, station):
    """A station on a ground that crosses a cell: split the cell at the station's depth; the part below
    is the usual station-above-cell case and the part above its mirror image (gz flips sign, gx does not)."""
    x0, z0 = station
    cell = gb.Grid.from_edges([0.0, 100.0], [0.0, 100.0])
    ground = ([-1e3, 1e3], [z0, z0]) if z0 < 50 else ([50.0, x0], [49.0, z0])   # the cell's centre below it
    got = gb.Problem(cell, gb.Survey([x0], [z0], ground=ground)).operator(kind).matvec(np.ones(1))

    def flat(z_top, z_bot):              # a cell below the station, through the established path
        g = gb.Grid.from_edges([0.0, 100.0], [z_top, z_bot])
        return gb.Problem(g, gb.Survey([x0], [0.0])).operator("dense").A[:, 0]

    below = flat(0.0, 100.0 - max(z0, 0.0))                 # [max(z0, 0), 100] seen from z0
    above = flat(0.0, z0) if z0 > 0 else np.zeros(2)        # mirror of [0, z0] about the station's depth
    expect = np.array([below[0] + above[0], below[1] - above[1]])
    np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-15)
    # and an independent brute-force sum of 1000 x 1000 line masses (midpoint rule, O(h^2))
    from gravbench.constants import TWO_G_MGAL

    n = 1000
    c = (np.arange(n) + 0.5) * (100.0 / n)
    X, Z = np.meshgrid(c - x0, c - z0)
    r2 = X * X + Z * Z
    brute = TWO_G_MGAL * (100.0 / n) ** 2 * np.array([np.sum(X / r2), np.sum(Z / r2)])
    np.testing.assert_allclose(got, brute, rtol=5e-3, atol=2e-6 * np.abs(brute).max())
