"""The sparse refiner's SimPEG-style IRLS schedule (recipe="simpeg")."""

import numpy as np
import pytest

import gravbench as gb
from gravbench.refiners import regularized as reg


def _case():
    prob = gb.Problem.paper(n=12)
    op = prob.operator("dense")
    rho = np.zeros(prob.shape)
    rho[3:7, 4:8] = 300.0
    g0 = op.matvec(rho.ravel())
    sigma = 0.01 * np.abs(g0).max()
    g = g0 + sigma * np.random.default_rng(0).standard_normal(g0.size)
    return op, g, sigma, rho


def test_simpeg_recipe_fits_to_the_noise_and_differs_from_the_default():
    op, g, sigma, rho = _case()
    a = gb.refiners.run("sparse", op, g, sigma=sigma)
    b = gb.refiners.run("sparse", op, g, sigma=sigma, recipe="simpeg")
    assert b.info["success"] and a.info["success"]
    assert b.info["n_irls"] > a.info["n_irls"]           # cooled by 1.2, not 3: more IRLS steps
    assert not np.allclose(a.x, b.x)


def test_bad_recipe_is_a_one_line_error():
    op, g, sigma, _ = _case()
    with pytest.raises(ValueError, match="recipe must be one of"):
        gb.refiners.run("sparse", op, g, sigma=sigma, recipe="simpg")


def test_simpeg_beta_rule_and_total_gradient():
    assert reg._simpeg_beta_factor(1.05) == 1.0
    assert reg._simpeg_beta_factor(2.0) == pytest.approx(0.5 * (0.75 + 0.5))
    assert reg._simpeg_beta_factor(0.5) == pytest.approx(0.5 * (2.0 + 2.0))
    nz, nx = 3, 4
    fx = np.ones(nz * (nx - 1))
    fz = np.zeros((nz - 1) * nx)
    tx, tz = reg._total_gradient(fx, fz, nz, nx)
    # interior cells see two x faces (1), edge cells one (0.5); faces average their two cells
    np.testing.assert_allclose(tx.reshape(nz, nx - 1), [[0.75, 1.0, 0.75]] * nz)
    np.testing.assert_allclose(tz.reshape(nz - 1, nx), [[0.5, 1.0, 1.0, 0.5]] * (nz - 1))
