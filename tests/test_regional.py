"""Regional trend removal recovers planted trends (checked against numpy.polyfit on the same data)."""

import numpy as np
import pytest

from gravbench.data.regional import check_order, fit_regional, remove_regional


@pytest.mark.parametrize("order, coef", [("constant", [-7.5]), ("linear", [3.0, 2e-3]),
                                         ("quadratic", [1.0, -1e-3, 4e-7]), (3, [0.5, 1e-3, -2e-7, 5e-11])])
def test_recovers_a_planted_trend(order, coef):
    rng = np.random.default_rng(11)
    x = np.sort(rng.uniform(-500.0, 4500.0, 120))
    trend = np.polynomial.polynomial.polyval(x, coef)
    d = trend + 0.01 * rng.standard_normal(x.size)
    reg = fit_regional(x, d, order)
    # the planted trend within the noise: the fitted curve within 4 standard errors of its own mean
    assert np.max(np.abs(reg(x) - trend)) < 0.01
    ref = np.polyfit(x, d, len(coef) - 1)[::-1]                     # an independent least-squares fit
    np.testing.assert_allclose(reg.coef, ref, rtol=1e-6, atol=1e-12)
    res, reg2 = remove_regional(x, d, order)
    np.testing.assert_allclose(res, d - reg(x))
    assert reg2.to_dict()["order"] == len(coef) - 1 and "mGal" in reg2.describe()


def test_excluded_window_keeps_the_anomaly_out():
    x = np.linspace(0.0, 4000.0, 81)
    anomaly = 1.5 * np.exp(-((x - 2000.0) / 250.0) ** 2)
    d = -12.0 + 8e-4 * x + anomaly
    biased = fit_regional(x, d, "linear")
    clean = fit_regional(x, d, "linear", exclude=(1000.0, 3000.0))
    np.testing.assert_allclose(clean.coef, [-12.0, 8e-4], rtol=1e-5, atol=1e-6)
    assert abs(biased.coef[0] + 12.0) > 0.1                          # the anomaly pulls an all-station fit up
    assert clean.n_fit == int(np.sum((x < 1000) | (x > 3000)))


def test_weights_and_bad_input():
    x = np.linspace(0.0, 10.0, 11)
    d = 2.0 + 0.0 * x
    d[5] = 100.0
    sig = np.ones_like(x)
    sig[5] = 1e6                                                     # the outlier has no weight
    assert abs(fit_regional(x, d, "constant", sigma=sig).coef[0] - 2.0) < 1e-3
    assert fit_regional(x, d, "none").order is None and np.all(fit_regional(x, d, None)(x) == 0)
    assert check_order("2") == 2 and check_order("LINEAR") == 1
    for bad in ("wavy", -1, 11, 1.5, True):
        with pytest.raises(ValueError, match="regional order"):
            check_order(bad)
    with pytest.raises(ValueError, match="at least 3 stations"):
        fit_regional(x[:2], d[:2], "quadratic")
    with pytest.raises(ValueError, match="exclude"):
        fit_regional(x, d, "linear", exclude=(5.0, 1.0))
    with pytest.raises(ValueError, match="sigma"):
        fit_regional(x, d, "linear", sigma=0.0)
