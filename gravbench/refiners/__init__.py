"""Refiners: inversion methods that improve a starting model ``x0`` given data ``g``.

Every refiner is called the same way::

    res = gravbench.refiners.run(name, op, g, x0=None, *, sigma=None, rtol=None, maxiter=None,
                                 profile="default", **options)

and returns a :class:`gravbench.solvers.Result` (``x`` is the flat model in
kg/m^3; ``residuals`` the history of ``||A x - g|| / ||g||``; ``n_matvec`` /
``n_rmatvec`` the operator applications; ``info`` extras such as ``alpha``,
``misfit`` and, with ``sigma``, ``chi2 = ||W_d r||^2 / N``). For dense and
matrix-free float64 gravbench operators the iteration runs entirely in numba;
other operators (FFT, any LinearOperator) run the same algorithm in Python.

==========  ===============================================================  ==========================
name        method                                                           module
==========  ===============================================================  ==========================
gd          gradient descent on ||W_d (A x - g)||^2 (line search; paper:     :mod:`.gd`
            fixed step 1e-5), optional bounds (projected gradient)
pgd         ``gd`` with bounds (projected gradient)                          :mod:`.gd`
cgls        CGLS with damping and discrepancy stop (= LSQR iterates)         :mod:`.cgls`
gmres       GMRES on the normal equations A^T W A x = A^T W g                :mod:`.normal`
lgmres      LGMRES on the normal equations                                   :mod:`.normal`
icg         regularised weighted CG with adaptive alpha (docs/algorithms.md) :mod:`.icg`
picg        ``icg`` with bounds (projected ICG)                              :mod:`.icg`
tikhonov    data-space Tikhonov, alpha by discrepancy / GCV / L-curve        :mod:`.tikhonov`
smooth      model-space L2: smallness + x/z smoothness, sensitivity           :mod:`.regularized`
            weighting, bounds, beta by the discrepancy principle
sparse      ``smooth`` with lp norms (0, 1, 1) by IRLS (SimPEG's Sparse)      :mod:`.regularized`
compact     minimum volume, p = 0 on the model (Last & Kubik 1983)            :mod:`.regularized`
focusing    minimum gradient support, q = 0 (Portniaguine & Zhdanov 1999)    :mod:`.regularized`
==========  ===============================================================  ==========================

``profile="paper"`` uses the seed paper's settings where it gives them
(docs/algorithms.md): GD lr 1e-5, tol 1e-6, 100 iterations; GMRES rtol 1e-6, 5000
iterations; LGMRES inner 30, outer 50, rtol 1e-6, 5000; ICG 100 iterations,
residual 1e-6, q = 0.25.

Examples
--------
>>> import numpy as np, gravbench as gb
>>> prob = gb.Problem.paper(n=12)
>>> op = prob.operator("dense")
>>> rho = np.zeros(prob.shape); rho[4:8, 4:8] = 300.0
>>> g = op.matvec(rho.ravel())
>>> res = gb.refiners.run("cgls", op, g, maxiter=50)
>>> bool(res.residuals[-1] < res.residuals[0])
True
"""

from __future__ import annotations

import importlib
import inspect

__all__ = ["run", "names", "get", "options"]

#: name -> (module, function, fixed keyword arguments)
_REGISTRY = {
    "gd": ("gd", "refine", {}),
    "pgd": ("gd", "refine_bounded", {}),
    "cgls": ("cgls", "refine", {}),
    "gmres": ("normal", "refine_gmres", {}),
    "lgmres": ("normal", "refine_lgmres", {}),
    "icg": ("icg", "refine", {}),
    "picg": ("icg", "refine_bounded", {}),
    "tikhonov": ("tikhonov", "refine", {}),
    "smooth": ("regularized", "refine_smooth", {}),
    "sparse": ("regularized", "refine_sparse", {}),
    "compact": ("regularized", "refine_compact", {}),
    "focusing": ("regularized", "refine_focusing", {}),
}

_COMMON = ("sigma", "rtol", "maxiter", "profile")


def _available():
    out = {}
    for name, (mod, fn, fixed) in _REGISTRY.items():
        try:
            m = importlib.import_module(f".{mod}", __name__)
        except ImportError:
            continue
        if hasattr(m, fn):
            out[name] = (getattr(m, fn), fixed)
    return out


def names():
    """Names of the available refiners (a tuple)."""
    return tuple(_available())


def get(name):
    """The refiner function registered under ``name``."""
    avail = _available()
    if name not in avail:
        raise ValueError(f"unknown refiner {name!r}; valid names: {', '.join(avail)}")
    return avail[name][0]


def _params(f):
    names_ = [p.name for p in inspect.signature(f).parameters.values() if p.kind is not p.VAR_KEYWORD]
    inner = getattr(f, "options_of", None)
    if inner is not None:
        names_ += [p for p in _params(inner) if p not in names_]
    return [p for p in names_ if p not in ("op", "g", "x0")]


def options(name):
    """Keyword options accepted by refiner ``name`` (beyond ``op, g, x0``), common ones first."""
    return tuple(_params(get(name)))


def run(name, op, g, x0=None, *, sigma=None, rtol=None, maxiter=None, profile="default", **options_):
    """Run refiner ``name`` on operator ``op`` and data ``g`` from ``x0``.

    Parameters
    ----------
    name : str
        One of :func:`names`.
    op : gravbench forward operator (or any LinearOperator / 2D ndarray), shape (N, n)
        mGal per kg/m^3.
    g : array_like, shape (N,)
        Data, mGal (``[gx..., gz...]``).
    x0 : array_like, shape (n,) or (nz, nx), optional
        Starting model, kg/m^3 (zeros).
    sigma : float or array_like (N,), optional
        Noise standard deviation, mGal (scalar or per datum).
    rtol, maxiter : optional
        Tolerance and iteration budget (each refiner's default, or the profile's).
    profile : {"default", "paper"}
        ``paper``: the seed paper's settings (docs/algorithms.md).
    **options_
        Refiner-specific options (see :func:`options`); unknown names raise ``ValueError``.

    Returns
    -------
    Result
    """
    f = get(name)
    params = _params(f)
    bad = [k for k in options_ if k not in params or k in _COMMON]
    if bad:
        valid = [p for p in params if p not in _COMMON]
        raise ValueError(f"unknown option(s) {', '.join(map(repr, bad))} for refiner {name!r}; "
                         f"valid options: {', '.join(valid) if valid else '(none)'}")
    return f(op, g, x0, sigma=sigma, rtol=rtol, maxiter=maxiter, profile=profile, **options_)
