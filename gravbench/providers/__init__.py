"""Initial-guess providers: a starting density model from observed gravity.

A provider is a callable ``provider(g, problem, *, sigma=None, seed=None)``
returning ``rho0`` of shape ``(nz, nx)`` in kg/m^3; ``provider.batch(G,
problem, ...)`` does many at once and ``provider.info`` describes it (name,
grids it was trained for, cost per call). Any refiner in
:mod:`gravbench.refiners` can start from ``rho0``.

Built-in providers
------------------
zero
    ``rho0 = 0`` (the classical refiners' usual start).
tikhonov
    Data-space Tikhonov solution, alpha by the discrepancy principle.
depth-weighted
    Minimum-norm model with Li & Oldenburg (1996) depth weighting.
cnn
    A 1D-convolutional network trained on ``paper-50`` / ``paper-100`` (torch).
vae, gan
    Latent search in a trained generator (torch; :mod:`gravbench.providers.latent`).
dip
    Deep image prior (Xu & Heagy 2023; :mod:`gravbench.providers.dip`).
unet
    A 2D U-Net on depth-weighted / Tikhonov images computed with the given sigma
    (torch; :mod:`gravbench.providers.unet`).
smooth, sparse, compact
    Model-space regularised inversions from zero (:mod:`gravbench.refiners.regularized`).
simpeg-l2, simpeg-sparse
    SimPEG's inversions as peers (optional ``gravbench[peers]``, entry points;
    :mod:`gravbench.providers.peers`).

Usage
-----
>>> import numpy as np, gravbench as gb
>>> prob = gb.Problem.paper(n=10)
>>> g = prob.forward(np.full(prob.shape, 100.0))     # mGal
>>> p = gb.providers.get("tikhonov")
>>> p(g, prob, sigma=0.01).shape
(10, 10)
>>> gb.providers.get("cnn", n=50).info.grids   # shipped weights' grids; not run (imports torch)  # doctest: +SKIP
((50, 50), (51, 51), (100, 100))

Registering a third-party provider
----------------------------------
In your package's ``pyproject.toml``::

    [project.entry-points."gravbench.providers"]
    my-net = "mypkg.providers:make_my_net"

``make_my_net(**options)`` must return an object with the provider call
signature (subclass :class:`gravbench.providers.base.Provider` to get input
checks and ``batch`` for free). At run time, :func:`register` does the same
without packaging.
"""

from __future__ import annotations

import importlib
import importlib.util

from .base import NotApplicable, NoWeightsError, Provider, ProviderInfo

__all__ = ["get", "names", "register", "NoWeightsError", "NotApplicable", "Provider", "ProviderInfo",
           "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "gravbench.providers"

#: Built-in names -> ``"module:attr"`` (imported lazily, on first ``get``).
_BUILTIN = {
    "zero": "gravbench.providers.classical:Zero",
    "tikhonov": "gravbench.providers.classical:Tikhonov",
    "depth-weighted": "gravbench.providers.classical:DepthWeighted",
    "cnn": "gravbench.providers.cnn:CNNProvider",
    "vae": "gravbench.providers.latent:VAEProvider",
    "gan": "gravbench.providers.latent:GANProvider",
    "dip": "gravbench.providers.dip:DIPProvider",
    "smooth": "gravbench.providers.regularized:Smooth",
    "sparse": "gravbench.providers.regularized:Sparse",
    "compact": "gravbench.providers.regularized:Compact",
    "unet": "gravbench.providers.unet:UNetProvider",
}

#: Providers added at run time with :func:`register` (name -> factory).
_RUNTIME = {}


def _entry_points():
    from importlib.metadata import entry_points

    try:
        return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    except TypeError:  # pragma: no cover - Python < 3.10 API
        return {ep.name: ep for ep in entry_points().get(ENTRY_POINT_GROUP, [])}


def register(name, factory, *, overwrite=False):
    """Register a provider factory under ``name`` for this process.

    Parameters
    ----------
    name : str
        The name :func:`get` will accept.
    factory : callable
        ``factory(**options)`` returning a provider (or a :class:`Provider` subclass).
    overwrite : bool, optional
        Allow replacing an existing run-time registration or shadowing a built-in.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise ValueError(f"factory must be callable, got {type(factory).__name__}")
    if not overwrite and (name in _RUNTIME or name in _BUILTIN):
        raise ValueError(f"provider {name!r} is already registered; pass overwrite=True to replace it")
    _RUNTIME[name] = factory


def unregister(name):
    """Remove a run-time registration (built-ins and entry points stay)."""
    _RUNTIME.pop(name, None)


def names():
    """All provider names: built-ins, entry points and run-time registrations, sorted.

    Built-ins whose module is not (yet) present in this installation are left out.
    """
    out = set(_RUNTIME)
    for name, target in _BUILTIN.items():
        mod = target.split(":")[0]
        if importlib.util.find_spec(mod) is not None:
            out.add(name)
    out.update(_entry_points())
    return tuple(sorted(out))


def _load_target(target):
    mod, _, attr = target.partition(":")
    obj = importlib.import_module(mod)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def get(name, **options):
    """The provider called ``name``, built with ``options``.

    Parameters
    ----------
    name : str
        One of :func:`names`.
    **options
        Passed to the provider's factory (e.g. ``n=50`` for ``cnn``).

    Returns
    -------
    provider
        Callable ``provider(g, problem, *, sigma=None, seed=None) -> (nz, nx)``.
    """
    if name in _RUNTIME:
        return _RUNTIME[name](**options)
    if name in _BUILTIN:
        target = _BUILTIN[name]
        if importlib.util.find_spec(target.split(":")[0]) is not None:
            return _load_target(target)(**options)
    eps = _entry_points()
    if name in eps:
        return eps[name].load()(**options)
    raise ValueError(f"unknown provider {name!r}; expected one of {', '.join(names())}")
