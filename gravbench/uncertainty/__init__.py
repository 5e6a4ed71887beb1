"""Uncertainty: posterior means, per-cell spreads and samples, and their calibration.

Every method takes the same inputs, ``(op, g, sigma, **options)`` (a forward
operator, data in mGal, noise standard deviations in mGal), and returns one
frozen :class:`UncertaintyResult` with ``mean``, ``std`` and ``samples``
(``(S, nz, nx)``, kg/m^3) plus what was used (``options``) and diagnostics
(``info``). Providers and refiners are left as they are.

Methods
-------
linear_gaussian(op, g, sigma, prior, samples=0, sampler="direct")
    The exact linear-Gaussian posterior of the L2 (Tikhonov) family, in data
    space and matrix-free (runs on the FFT operator at n = 200); samples by
    perturb-and-optimise, exact only for a fixed prior / regularisation
    weight with every perturbed problem solved to convergence
    (:mod:`gravbench.uncertainty.linear`). :class:`LinearGaussian` keeps the
    precomputation for many data vectors.
pcn_latent(op, g, sigma, kind="vae", chains=4, steps=2000, ...)
    pCN MCMC in a generator's latent space with the data likelihood
    (:mod:`gravbench.uncertainty.latent`; imports torch when called).

Priors (:mod:`gravbench.uncertainty.priors`): :class:`KroneckerPrior`
(stationary separable kernel with stated length scales), :class:`LowRankPrior`
(a training split's covariance, low rank plus diagonal), :class:`DiagonalPrior`.

Calibration (:mod:`gravbench.uncertainty.calibration`): :func:`coverage`,
:func:`crps`, :func:`crps_gaussian`, :func:`crps_ensemble`, :func:`reliability`.
"""

from __future__ import annotations

from ._result import UncertaintyResult
from .calibration import LEVELS, RELIABILITY_LEVELS, coverage, crps, crps_ensemble, crps_gaussian, reliability
from .linear import SAMPLERS, LinearGaussian, linear_gaussian
from .priors import KERNELS, DiagonalPrior, GaussianPrior, KroneckerPrior, LowRankPrior

__all__ = ["UncertaintyResult", "linear_gaussian", "LinearGaussian", "pcn_latent", "LatentSampler",
           "GaussianPrior", "KroneckerPrior", "LowRankPrior", "DiagonalPrior", "KERNELS", "SAMPLERS",
           "coverage", "crps", "crps_gaussian", "crps_ensemble", "reliability", "LEVELS", "RELIABILITY_LEVELS"]


def __getattr__(name):  # the torch-based sampler loads on first use
    if name in ("pcn_latent", "LatentSampler"):
        from . import latent

        return getattr(latent, name)
    raise AttributeError(f"module 'gravbench.uncertainty' has no attribute {name!r}")
