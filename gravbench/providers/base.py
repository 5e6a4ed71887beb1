"""The provider base class, its description and the shared input checks.

A provider maps observed gravity ``g`` (mGal, ``[gx..., gz...]``, length
``problem.n_data``) to an initial density model ``rho0`` (kg/m^3, shape
``problem.shape``). Subclasses implement :meth:`Provider._batch` (many data
vectors at once) or :meth:`Provider._single`; the public methods validate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..problem import Problem

__all__ = ["Provider", "ProviderInfo", "NoWeightsError", "NotApplicable", "check_data", "check_real", "check_count"]


class NotApplicable(ValueError):
    """The method cannot run on this problem by design (too large for it, a grid it does not support).

    Benchmark sweeps record such a case as skipped, with the message as the reason.
    """


class NoWeightsError(NotApplicable):
    """A learned provider has no weights for the requested grid.

    The message names the grids it has and the ``gravbench train ...`` command
    that makes weights for the requested one.
    """


@dataclass(frozen=True)
class ProviderInfo:
    """What a provider is and what it costs.

    Attributes
    ----------
    name : str
        Registry name.
    grids : tuple of tuple
        ``(nz, nx)`` grids with trained weights; empty for methods that work on any grid.
    cost : str
        A one-line note on the cost of one call (e.g. "one network forward pass").
    learned : bool
        True for providers with trained weights.
    extra : dict
        Anything else (weights file, manifest metrics, ...).
    """

    name: str
    grids: tuple = ()
    cost: str = ""
    learned: bool = False
    extra: dict = field(default_factory=dict)


def check_real(name, value, *, minimum=None, positive=False, maximum=None, unit="", allow_none=False):
    """A finite real option value as ``float``; ``ValueError`` naming it and the accepted range otherwise.

    Parameters
    ----------
    name : str
        The option's name, as the caller typed it (``"lr"``, ``"bound"``).
    value : object
        The value given.
    minimum, maximum : float, optional
        Inclusive bounds.
    positive : bool
        Require ``value > 0`` (``minimum`` is then ignored).
    unit : str
        Appended to the message (``"s"``, ``"kg/m^3"``).
    allow_none : bool
        Return ``None`` for ``None``.
    """
    import math

    if value is None and allow_none:
        return None
    if positive:
        want = "> 0"
    elif minimum is not None and maximum is not None:
        want = f"in [{minimum:g}, {maximum:g}]"
    elif minimum is not None:
        want = f">= {minimum:g}"
    elif maximum is not None:
        want = f"<= {maximum:g}"
    else:
        want = "finite"
    want = f"a finite number {want}" + (f" ({unit})" if unit else "")
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {want}, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {want}, got {value!r}") from None
    if (not math.isfinite(v) or (positive and not v > 0) or (minimum is not None and not positive and v < minimum)
            or (maximum is not None and v > maximum)):
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return v


def check_count(name, value, *, minimum=1, allow_none=False):
    """An integer option value ``>= minimum`` as ``int``; ``ValueError`` naming it otherwise (``2.5``, ``True``, NaN)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_problem(problem):
    if not isinstance(problem, Problem):
        raise ValueError(f"problem must be a gravbench.Problem, got {type(problem).__name__}")
    return problem


def check_data(G, problem, name="g", batch=False):
    """Validate data ``G`` for ``problem``: ``(n_data,)`` or, with ``batch``, ``(B, n_data)``.

    Returns a float64 array of shape ``(B, n_data)``.
    """
    check_problem(problem)
    a = np.asarray(G)
    if a.dtype == object or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be a numeric array, got dtype {a.dtype}")
    nd = problem.n_data
    if batch:
        if a.ndim != 2 or a.shape[1] != nd:
            raise ValueError(f"{name} must have shape (B, {nd}) for this problem, got {a.shape}")
    else:
        if a.shape != (nd,):
            raise ValueError(f"{name} must have shape ({nd},) (gx then gz, mGal), got {a.shape}")
        a = a[None, :]
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return np.ascontiguousarray(a, dtype=np.float64)


def check_sigma(sigma, shape):
    """``None`` or noise std (mGal): scalar, ``(n_data,)`` or ``(B, n_data)``; returned broadcast to ``shape``."""
    if sigma is None:
        return None
    s = np.asarray(sigma, dtype=np.float64)
    try:
        s = np.broadcast_to(s, shape)
    except ValueError:
        raise ValueError(f"sigma must be a scalar or broadcast to {shape}, got shape {np.shape(sigma)}") from None
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError("sigma must be finite and > 0 (noise std in mGal)")
    return s


class Provider:
    """Base class for initial-guess providers.

    Subclasses set ``name`` and implement ``_batch(G, problem, sigma, seed)``
    returning ``(B, nz, nx)`` (or ``_single(g, problem, sigma, seed)``).
    """

    name = "base"
    cost = ""
    learned = False
    #: the data components this provider's input must hold (``None``: any survey's). Learned providers whose
    #: network reads the data vector set the components they were trained on, e.g. ``("gx", "gz")``.
    components = None

    @property
    def info(self) -> ProviderInfo:
        return ProviderInfo(name=self.name, grids=tuple(self.grids()), cost=self.cost, learned=self.learned)

    def grids(self):
        """Grids ``(nz, nx)`` this provider has weights for; empty = any grid."""
        return ()

    def __call__(self, g, problem, *, sigma=None, seed=None):
        """An initial model for one data vector.

        Parameters
        ----------
        g : array_like, shape (n_data,)
            Observed gravity, mGal, ``[gx..., gz...]``.
        problem : gravbench.Problem
            The geometry ``g`` was measured on.
        sigma : float or array_like, optional
            Noise standard deviation, mGal (scalar or per datum).
        seed : int, optional
            Seed for stochastic providers.

        Returns
        -------
        ndarray, shape (nz, nx)
            Density contrast, kg/m^3; exactly 0 on the inactive cells (above the survey's ground).
        """
        self._check_components(problem)
        G = check_data(g, problem)
        s = check_sigma(sigma, G.shape)
        return self._run(G, problem, s, seed)[0]

    def batch(self, G, problem, *, sigma=None, seed=None):
        """Initial models for ``B`` data vectors ``G`` of shape ``(B, n_data)``; returns ``(B, nz, nx)``."""
        self._check_components(problem)
        G = check_data(G, problem, name="G", batch=True)
        s = check_sigma(sigma, G.shape)
        return self._run(G, problem, s, seed)

    def _check_components(self, problem):
        need = self.components
        have = getattr(getattr(problem, "survey", None), "components", None)
        if need is not None and have is not None and tuple(have) != tuple(need):
            verb = "was trained on" if self.learned else "needs"
            raise ValueError(
                f"provider {self.name!r} {verb} data components {tuple(need)} ({' and '.join(need)} at every "
                f"station); this survey measures {tuple(have)}: use a provider that reads any survey "
                f"(zero, tikhonov, depth-weighted, smooth, sparse, compact)")

    def _run(self, G, problem, sigma, seed):
        out = np.asarray(self._batch(G, problem, sigma, seed), dtype=np.float64)
        B = G.shape[0]
        idx = getattr(problem, "active_index", None)
        if idx is None:
            return out.reshape((B,) + tuple(problem.shape))
        if out.size == B * idx.size:            # a model on the active cells: embed it in the grid
            full = np.zeros((B, problem.n_cells))
            full[:, idx] = out.reshape(B, idx.size)
            return full.reshape((B,) + tuple(problem.shape))
        out = out.reshape((B,) + tuple(problem.shape)).copy()
        out[:, ~problem.active] = 0.0           # inactive cells (air) hold exactly zero
        return out

    def _batch(self, G, problem, sigma, seed):
        out = np.empty((G.shape[0],) + tuple(problem.shape))
        for b in range(G.shape[0]):
            s = None if sigma is None else sigma[b]
            sd = None if seed is None else int(seed) + b
            x = np.asarray(self._single(G[b], problem, s, sd))
            out[b] = problem.to_grid(x) if hasattr(problem, "to_grid") else x.reshape(problem.shape)
        return out

    def _single(self, g, problem, sigma, seed):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"<provider {self.name!r}>"
