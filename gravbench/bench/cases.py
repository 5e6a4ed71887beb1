"""The case matrix of a comparison sweep.

A case is one (grid size, noise level, test model, provider, refiner) combination;
:func:`build_cases` expands the options of ``gravbench compare`` into the
list the runner executes, in a deterministic order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["Case", "build_cases", "NO_REFINER", "SkipCase", "default_providers", "default_refiners"]

#: pseudo-refiner name: evaluate the provider's initial model as it is
NO_REFINER = "none"

#: the default lists of ``gravbench compare`` (the SimPEG peers join when installed: :func:`default_providers`)
#: (``unet``: 0.03 s per model at n = 50 in ``compare``, below the 0.1 s a default provider may cost; its weights exist
#: for n = 50 only, so its n = 100 cases are recorded as skipped)
BASE_PROVIDERS = ("zero", "tikhonov", "depth-weighted", "cnn", "unet", "smooth", "sparse", "compact")
#: gmres, lgmres, compact and focusing are opt-in (``--refiners``): slower, and not better on the default sets
BASE_REFINERS = ("none", "gd", "cgls", "icg", "tikhonov", "smooth", "sparse")
PEER_PROVIDERS = ("simpeg-l2", "simpeg-sparse")


def default_providers():
    """:data:`BASE_PROVIDERS`: the default providers of ``gravbench compare``.

    The SimPEG peers (:data:`PEER_PROVIDERS`, ``pip install gravbench[peers]``)
    are opt-in (``--providers ...,simpeg-l2,simpeg-sparse``): SimPEG's sparse
    inversion takes minutes per model at n = 50 on two cores, far beyond the
    default run's budget; ``gravbench report classical`` compares them.
    """
    return tuple(BASE_PROVIDERS)


def default_refiners():
    """:data:`BASE_REFINERS`."""
    return BASE_REFINERS


class SkipCase(Exception):
    """Raised by a provider, refiner or toolkit for a case that cannot run by design.

    The runner records such a case with ``status="skipped"`` and the message as its
    ``reason`` (not as an error). :class:`gravbench.providers.NoWeightsError`,
    :class:`gravbench.providers.NotApplicable` (e.g. a problem too large for a method)
    and an ``ImportError`` of an optional package are treated the same way.
    """


@dataclass(frozen=True, order=True)
class Case:
    """One inversion to run and score.

    Parameters
    ----------
    n : int
        Grid size: an ``n x n`` grid over 1000 m x 1000 m with ``3n`` stations (``Problem.paper(n)``).
    noise : float
        Relative noise level of the data (e.g. 0.01 = 1 %), as in ``gravbench.data``.
    model : int
        Index of the test model in the held-out set of size ``samples``.
    provider : str
        Initial-guess provider name (``gravbench.providers.get``).
    refiner : str
        Refiner name (``gravbench.refiners.run``) or ``"none"`` for the provider's output alone.
    seed : int
        Seed of the test set (for sizes without a standard set) and of stochastic providers.
    samples : int
        Size of the test set the model is drawn from.
    """

    n: int
    noise: float
    model: int
    provider: str
    refiner: str
    seed: int = 0
    samples: int = 1

    @property
    def key(self):
        """The identity of the case in a record file: ``(n, noise, model, provider, refiner)``."""
        return case_key(self)

    def to_dict(self):
        return asdict(self)


def case_key(obj):
    """``(n, noise, model, provider, refiner)`` of a :class:`Case` or a record dict."""
    get = obj.get if isinstance(obj, dict) else lambda k: getattr(obj, k)
    return (int(get("n")), round(float(get("noise")), 12), int(get("model")), str(get("provider")),
            str(get("refiner")))


def _names(name, values):
    vals = [values] if isinstance(values, str) else list(values)
    if not vals:
        raise ValueError(f"{name} must name at least one entry")
    out = []
    for v in vals:
        if not isinstance(v, str) or not v:
            raise ValueError(f"{name} must be non-empty strings, got {v!r}")
        if v not in out:
            out.append(v)
    return out


def build_cases(ns, providers, refiners, samples=1, noise=0.01, seed=0):
    """Expand sweep options into cases.

    Parameters
    ----------
    ns : int or sequence of int
        Grid sizes (each >= 4).
    providers, refiners : str or sequence of str
        Names; duplicates are dropped, order kept.
    samples : int
        Test models per grid size (>= 1).
    noise : float
        Relative noise level (>= 0).
    seed : int
        Seed (>= 0).

    Returns
    -------
    list of Case
        Ordered by ``n``, then model, then provider, then refiner, so that the
        refiners of one (model, provider) run next to each other and share the
        provider's output.

    Examples
    --------
    >>> cs = build_cases([8], ["zero"], ["none", "gd"], samples=2)
    >>> len(cs), cs[1].refiner
    (4, 'gd')
    """
    ns = [ns] if isinstance(ns, int) else list(ns)
    if not ns:
        raise ValueError("ns must name at least one grid size")
    for n in ns:
        if isinstance(n, bool) or not isinstance(n, int) or n < 4:
            raise ValueError(f"n must be an integer >= 4, got {n!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    try:
        noise = float(noise)
    except (TypeError, ValueError):
        raise ValueError(f"noise must be a number >= 0 (relative level, e.g. 0.01), got {noise!r}") from None
    if not (noise >= 0.0 and math.isfinite(noise)):
        raise ValueError(f"noise must be a finite number >= 0 (relative level, e.g. 0.01), got {noise}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    provs = _names("providers", providers)
    refs = _names("refiners", refiners)
    out = []
    for n in dict.fromkeys(ns):
        for k in range(samples):
            for p in provs:
                for r in refs:
                    out.append(Case(n=n, noise=noise, model=k, provider=p, refiner=r, seed=seed, samples=samples))
    return out
