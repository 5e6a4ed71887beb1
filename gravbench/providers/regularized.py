"""The model-space regularised inversions as providers that start from zero: ``smooth``, ``sparse``, ``compact``.

Each call runs ``gravbench.refiners.run(name, op, g, x0=None, sigma=sigma)``
(:mod:`gravbench.refiners.regularized`) on the problem's operator (``"auto"``:
dense for small grids, FFT for large ones), so ``smooth -> none`` in a
comparison is the classical inversion on its own and ``cnn -> sparse`` is the
refiner started from (and regularised towards) the CNN model.
"""

from __future__ import annotations

import numpy as np

from .base import Provider
from .. import refiners

__all__ = ["Regularized", "Smooth", "Sparse", "Compact"]


class Regularized(Provider):
    """A regularised refiner run from ``rho0 = 0`` (the reference model is zero too).

    Parameters
    ----------
    method : {"auto", "dense", "matfree", "fft"}
        Forward operator for the inner solves.
    **options
        Refiner options (``norms``, ``alphas``, ``bounds``, ``weighting``, ...; see
        :func:`gravbench.refiners.regularized.refine`).
    """

    name = "regularized"
    refiner = "sparse"
    cost = "beta search + IRLS: a few hundred A and A^T products"

    def __init__(self, method="auto", **options):
        if method not in ("auto", "dense", "matfree", "fft"):
            raise ValueError(f"method must be one of 'auto', 'dense', 'matfree', 'fft', got {method!r}")

        bad = [k for k in options if k not in refiners.options(self.refiner)]
        if bad:
            raise ValueError(f"unknown option(s) {bad} for provider {self.name!r}; valid: "
                             f"{', '.join(refiners.options(self.refiner))}")
        self.method = method
        self.options = options
        self._ops = {}
        self.last = None

    def _op(self, problem):
        op = self._ops.get(problem)
        if op is None:
            if len(self._ops) > 4:
                self._ops.clear()
            op = self._ops[problem] = problem.operator(method=self.method)
        return op

    def _single(self, g, problem, sigma, seed):

        if sigma is None:
            raise ValueError(f"provider {self.name!r} needs sigma (the noise std, mGal): beta is set by the "
                             f"discrepancy principle")
        res = refiners.run(self.refiner, self._op(problem), g, None, sigma=sigma, **self.options)
        self.last = res
        return problem.to_grid(res.x)   # (nz, nx); inactive cells (above the ground) 0

    def _batch(self, G, problem, sigma, seed):
        out = np.empty((G.shape[0],) + tuple(problem.shape))
        for k in range(G.shape[0]):
            out[k] = self._single(G[k], problem, None if sigma is None else sigma[k], seed)
        return out


class Smooth(Regularized):
    """``smooth`` from zero: L2 smallness + smoothness, sensitivity weights, beta by the discrepancy principle."""

    name = "smooth"
    refiner = "smooth"
    cost = "beta search: tens of A and A^T products"


class Sparse(Regularized):
    """``sparse`` from zero: norms (0, 1, 1) by IRLS."""

    name = "sparse"
    refiner = "sparse"


class Compact(Regularized):
    """``compact`` from zero: minimum volume (p = 0 on the model, Last & Kubik 1983)."""

    name = "compact"
    refiner = "compact"
