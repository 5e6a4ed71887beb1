"""Regional trends: a constant, linear or low-order polynomial fitted to a profile and removed.

A measured anomaly sits on a regional field from sources deeper or wider
than the model: removing a smooth trend before inversion keeps the inversion
from explaining it with mass at the grid's edges. The trend is a polynomial in
x of order ``k`` (0: constant, 1: linear, 2: quadratic, ...), fitted by
(weighted) least squares with :class:`numpy.polynomial.Polynomial` on a scaled
domain, on all stations or only on those outside a window that holds the
anomaly (``exclude``).

Examples
--------
>>> import numpy as np
>>> x = np.linspace(0.0, 1000.0, 11)
>>> reg = fit_regional(x, 2.0 + 0.003 * x, order="linear")
>>> [round(c, 6) for c in reg.coef]
[2.0, 0.003]
>>> bool(np.allclose(reg.remove(x, 2.0 + 0.003 * x), 0.0))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import Polynomial

__all__ = ["Regional", "fit_regional", "remove_regional", "ORDERS", "check_order"]

#: Named orders of the regional trend.
ORDERS = {"none": None, "constant": 0, "linear": 1, "quadratic": 2, "cubic": 3}


def check_order(order):
    """The polynomial order (an int >= 0, or None for no trend) of ``order``.

    ``order`` is a name of :data:`ORDERS` or an integer 0..10.
    """
    if order is None:
        return None
    if isinstance(order, str):
        key = order.strip().lower()
        if key in ORDERS:
            return ORDERS[key]
        try:
            order = int(key)
        except ValueError:
            raise ValueError(f"regional order must be one of {', '.join(ORDERS)} or an integer 0..10, "
                             f"got {order!r}") from None
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 0 <= order <= 10:
        raise ValueError(f"regional order must be one of {', '.join(ORDERS)} or an integer 0..10, got {order!r}")
    return int(order)


@dataclass(frozen=True)
class Regional:
    """A fitted regional trend ``t(x) = sum_j coef[j] x^j`` (x in m, t in the data's units, mGal).

    Attributes
    ----------
    order : int or None
        Polynomial order (None: no trend, ``t = 0``).
    coef : tuple of float
        Power-series coefficients in x (m), lowest first: mGal, mGal/m, mGal/m^2, ...
    n_fit : int
        Stations used in the fit.
    exclude : tuple of float or None
        The x window (m) left out of the fit.
    rms : float
        RMS of the data minus the trend over the fitted stations, mGal.
    """

    order: int | None
    coef: tuple
    n_fit: int
    exclude: tuple | None
    rms: float

    def __call__(self, x):
        """The trend at ``x`` (m), mGal."""
        x = np.asarray(x, dtype=np.float64)
        if self.order is None:
            return np.zeros_like(x)
        return Polynomial(np.asarray(self.coef))(x)

    def remove(self, x, d):
        """``d - t(x)``: the data with the trend removed."""
        return np.asarray(d, dtype=np.float64) - self(x)

    def to_dict(self):
        return {"order": self.order, "coef": [float(c) for c in self.coef], "n_fit": int(self.n_fit),
                "exclude": None if self.exclude is None else [float(v) for v in self.exclude],
                "rms": float(self.rms), "units": "mGal, mGal/m, mGal/m^2, ... (power series in x, m)"}

    def describe(self):
        if self.order is None:
            return "none"
        names = {0: "constant", 1: "linear", 2: "quadratic", 3: "cubic"}
        terms = " ".join(f"{c:+.4g}" + ("" if j == 0 else (" x" if j == 1 else f" x^{j}"))
                         for j, c in enumerate(self.coef))
        where = "" if self.exclude is None else f", fitted outside x in [{self.exclude[0]:g}, {self.exclude[1]:g}] m"
        return f"{names.get(self.order, f'order {self.order}')}: {terms} mGal (x in m{where})"


def fit_regional(x, d, order="linear", sigma=None, exclude=None):
    """Fit a polynomial regional trend to a profile.

    Parameters
    ----------
    x : array_like (m,)
        Station positions, m.
    d : array_like (m,)
        Data, mGal (e.g. gz).
    order : str or int or None
        ``"none"`` / None, ``"constant"`` (0), ``"linear"`` (1), ``"quadratic"`` (2), ``"cubic"`` (3) or an
        integer 0..10.
    sigma : float or array_like (m,), optional
        Data standard deviations, mGal: weights ``1 / sigma`` of the least-squares fit.
    exclude : (float, float), optional
        An x window (m) holding the anomaly: stations inside it are left out of the fit.

    Returns
    -------
    Regional

    Notes
    -----
    Minimises ``sum_i ((d_i - t(x_i)) / sigma_i)^2`` over the polynomial ``t`` of the
    given order (:meth:`numpy.polynomial.Polynomial.fit`, which scales x to [-1, 1]
    for conditioning), then converts to power-series coefficients in x.
    """
    k = check_order(order)
    xa = np.asarray(x, dtype=np.float64).ravel()
    da = np.asarray(d, dtype=np.float64).ravel()
    if xa.shape != da.shape or xa.size == 0:
        raise ValueError(f"x and d must be 1D arrays of equal, non-zero length, got {xa.shape} and {da.shape}")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(da))):
        raise ValueError("x and d must be finite")
    if sigma is None:
        w = np.ones_like(xa)
    else:
        s = np.broadcast_to(np.asarray(sigma, dtype=np.float64), xa.shape)
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError("sigma must be finite and > 0 (mGal)")
        w = 1.0 / s
    keep = np.ones(xa.size, dtype=bool)
    ex = None
    if exclude is not None:
        try:
            a, b = (float(v) for v in exclude)
        except (TypeError, ValueError):
            raise ValueError(f"exclude must be an x window (x1, x2) in m, got {exclude!r}") from None
        if not (np.isfinite(a) and np.isfinite(b) and a < b):
            raise ValueError(f"exclude must be a window (x1, x2) with x1 < x2 (m), got {exclude!r}")
        ex = (a, b)
        keep = (xa < a) | (xa > b)
    if k is None:
        return Regional(None, (), 0, ex, float(np.sqrt(np.mean(da[keep] ** 2))) if keep.any() else 0.0)
    n = int(keep.sum())
    if n < k + 1 or np.unique(xa[keep]).size < k + 1:
        raise ValueError(f"a regional trend of order {k} needs at least {k + 1} stations at distinct x in the fit, "
                         f"got {n}" + ("" if ex is None else f" outside the excluded window {ex}"))
    p = Polynomial.fit(xa[keep], da[keep], k, w=w[keep])
    coef = np.zeros(k + 1)
    c = p.convert().coef
    coef[:c.size] = c
    res = da[keep] - Polynomial(coef)(xa[keep])
    return Regional(k, tuple(float(v) for v in coef), n, ex, float(np.sqrt(np.mean(res ** 2))))


def remove_regional(x, d, order="linear", sigma=None, exclude=None):
    """``(d - t(x), t)``: the data with a fitted regional trend removed, and the :class:`Regional` ``t``.

    Parameters as :func:`fit_regional`.
    """
    reg = fit_regional(x, d, order, sigma, exclude)
    return reg.remove(x, d), reg
