"""Posterior sampling in a generator's latent space: preconditioned Crank-Nicolson (pCN) MCMC.

A trained generator ``G`` (the VAE decoder shipped for n = 50,
:mod:`gravbench.providers.vae`) maps ``z ~ N(0, I)`` to a density model. With
Gaussian noise the posterior of ``z`` given data ``g`` is

    p(z | g)  propto  N(z; 0, I) exp(-Phi(z)),     Phi(z) = ||(A G(z) - g) / sigma||^2 / (2 T),

(``T`` = ``temperature``, 1 for the plain posterior). pCN (Cotter, Roberts,
Stuart & White 2013) proposes ``z' = sqrt(1 - beta^2) z + beta xi``,
``xi ~ N(0, I)``, which leaves the prior invariant, and accepts with
probability ``min(1, exp(Phi(z) - Phi(z')))``: only the likelihood enters
the ratio. ``chains`` chains run as one batch through ``G`` and ``A``; each
starts from an approximate MAP point (``init_steps`` Adam steps on
``Phi(z) + ||z||^2 / 2`` from a prior draw), adapts its own ``beta`` towards
``target_accept`` during ``burn`` steps, then keeps every ``thin``-th state.
The samples are ``G(z)`` (kg/m^3); ``mean`` and ``std`` are their per-cell mean
and standard deviation; intervals come from their quantiles.

What this measures is the uncertainty *within the generator's range*: where
``G`` cannot reproduce the true model (the shipped VAE's validation
reconstruction error is 0.68), the posterior concentrates on the
best-fitting generated models and its intervals can miss the truth; the
calibration report measures by how much.

This module imports torch lazily (inside :func:`pcn_latent`).

References
----------
Cotter, S. L., Roberts, G. O., Stuart, A. M., White, D. (2013). MCMC methods
for functions: modifying old algorithms to make them faster. Statistical
Science 28(3), 424-446.
Laloy, E., Herault, R., Jacques, D., Linde, N. (2018). Training-image based
geostatistical inversion using a spatial generative adversarial neural
network. Water Resources Research 54, 381-406.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ._result import UncertaintyResult
from ..providers._torchutil import require_torch
from ..providers.latent import load_generator

__all__ = ["pcn_latent", "LatentSampler", "pcn_chains"]


def _int(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def _dense(op):
    A = getattr(op, "A", None)
    if A is not None:
        return np.asarray(A, dtype=np.float64)
    N, n = op.shape
    if N * n > 50_000_000:
        raise ValueError(f"pcn_latent needs a dense A; this operator ({N} x {n}) is too large")
    if hasattr(op, "todense"):
        return np.asarray(op.todense(), dtype=np.float64)
    return np.stack([op.rmatvec(e) for e in np.eye(N)])


def pcn_chains(phi, z0, *, steps, burn, thin, beta, target_accept=0.25, generator=None, window=25):
    """Run pCN chains (torch, no gradients) for a potential ``phi`` under the prior ``N(0, I)``.

    Parameters
    ----------
    phi : callable
        ``z (C, d) -> (C,)`` negative log-likelihood of every chain's state.
    z0 : tensor (C, d)
        Starting states.
    steps, burn, thin : int
        Iterations; the first ``burn`` adapt ``beta`` (every ``window`` steps,
        ``beta *= exp(2 (rate - target_accept))``, clipped to [1e-5, 1]) and are
        discarded; then every ``thin``-th state is kept.
    beta : float
        Initial step.
    target_accept : float
        Acceptance rate the adaptation aims at.
    generator : torch.Generator, optional

    Returns
    -------
    (Z, acceptance, beta, evals)
        Kept states ``(C * ((steps - burn) // thin), d)`` (grouped by step),
        per-chain acceptance rate after burn-in, final per-chain ``beta`` and
        the number of ``phi`` evaluations (states).
    """
    import torch

    z = z0.clone()
    C = z.shape[0]
    f = phi(z)
    evals = C
    b = torch.full((C,), float(beta), dtype=z.dtype)
    acc_win = torch.zeros(C)
    acc_total = torch.zeros(C)
    kept = []
    for t in range(steps):
        xi = torch.randn(z.shape, generator=generator, dtype=z.dtype)
        zp = torch.sqrt(1.0 - b * b)[:, None] * z + b[:, None] * xi
        fp = phi(zp)
        evals += C
        u = torch.rand(C, generator=generator, dtype=z.dtype)
        ok = torch.log(u) < (f - fp)
        z = torch.where(ok[:, None], zp, z)
        f = torch.where(ok, fp, f)
        okf = ok.to(torch.float32)
        if t < burn:
            acc_win += okf
            if (t + 1) % window == 0:
                rate = acc_win / window
                b = torch.clamp(b * torch.exp((2.0 * (rate - float(target_accept))).to(b.dtype)), 1e-5, 1.0)
                acc_win.zero_()
        else:
            acc_total += okf
            if (t - burn) % thin == thin - 1:
                kept.append(z.clone())
    Z = torch.cat(kept) if kept else z.clone()
    return Z, acc_total / max(1, steps - burn), b, evals


class LatentSampler:
    """A loaded generator and operator, reused across data vectors.

    Parameters
    ----------
    op : forward operator
        ``A`` (mGal per kg/m^3); its ``problem.shape`` (or ``shape``) picks the weights.
    kind : {"vae", "gan"}
        Which shipped generator.
    weights : path, optional
        A weights file instead of the shipped one.
    shape : tuple, optional
        Grid ``(nz, nx)`` when ``op`` has no ``problem``.
    """

    def __init__(self, op, kind="vae", weights=None, shape=None):

        torch = require_torch()
        self.torch = torch
        if shape is None:
            prob = getattr(op, "problem", None)
            if prob is None:
                raise ValueError("shape: give the grid (nz, nx) for an operator without a problem")
            shape = prob.shape
        self.shape = tuple(int(s) for s in shape)
        if op.shape[1] != self.shape[0] * self.shape[1]:
            raise ValueError(f"shape {self.shape} does not match the operator's {op.shape[1]} cells")
        self.gen, self.manifest, _ = load_generator(kind, shape=self.shape, weights=weights)
        self.kind = kind
        self.latent = int(self.gen.latent)
        self.A = torch.as_tensor(_dense(op).T.copy(), dtype=torch.float32)  # (n_cells, N)
        self.N = op.shape[0]

    def run(self, g, sigma, *, chains=4, steps=2000, burn=1000, thin=10, beta=0.1, target_accept=0.25,
            init_steps=200, init_lr=0.05, temperature=1.0, seed=0, threads=1):
        """Sample the latent posterior of one data vector; see :func:`pcn_latent`."""
        torch = self.torch
        threads = _int("threads", threads, 1)
        old = torch.get_num_threads()
        torch.set_num_threads(threads)  # small batches: extra threads only contend (25x slower on a busy machine)
        try:
            return self._run(g, sigma, chains, steps, burn, thin, beta, target_accept, init_steps, init_lr,
                             temperature, seed)
        finally:
            torch.set_num_threads(old)

    def _run(self, g, sigma, chains, steps, burn, thin, beta, target_accept, init_steps, init_lr, temperature, seed):
        torch = self.torch
        t0 = time.perf_counter()
        chains = _int("chains", chains, 1)
        steps = _int("steps", steps, 1)
        burn = _int("burn", burn, 0)
        thin = _int("thin", thin, 1)
        init_steps = _int("init_steps", init_steps, 0)
        if burn >= steps:
            raise ValueError(f"burn must be smaller than steps, got burn={burn}, steps={steps}")
        for name, v, hi in (("beta", beta, 1.0), ("target_accept", target_accept, 1.0)):
            if not (isinstance(v, (int, float)) and 0 < v <= hi):
                raise ValueError(f"{name} must be a number in (0, {hi}], got {v!r}")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
        g = np.asarray(g, dtype=np.float64).reshape(-1)
        if g.shape != (self.N,) or not np.isfinite(g).all():
            raise ValueError(f"g must be {self.N} finite data (mGal), got shape {np.shape(g)}")
        s = np.asarray(sigma, dtype=np.float64)
        s = np.full(self.N, float(s)) if s.ndim == 0 else s.reshape(-1)
        if s.shape != (self.N,) or not np.isfinite(s).all() or (s <= 0).any():
            raise ValueError(f"sigma must be a positive number or {self.N} positive standard deviations (mGal)")
        gt = torch.as_tensor(g, dtype=torch.float32)
        wt = torch.as_tensor(1.0 / s, dtype=torch.float32)
        T = float(temperature)
        gen, A = self.gen, self.A
        n_fwd = 0

        def phi(z):
            r = (gen(z).flatten(1) @ A - gt) * wt
            return 0.5 * r.pow(2).sum(1) / T, r

        gen_t = torch.Generator().manual_seed(int(seed))
        z = torch.randn(chains, self.latent, generator=gen_t)
        # approximate MAP start: Adam on Phi(z) + |z|^2 / 2
        if init_steps:
            z = z.clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=float(init_lr))
            for _ in range(init_steps):
                opt.zero_grad()
                f, _ = phi(z)
                (f + 0.5 * z.pow(2).sum(1)).sum().backward()
                opt.step()
                n_fwd += chains
            z = z.detach()
        with torch.no_grad():
            Z, acc, b, evals = pcn_chains(lambda zz: phi(zz)[0], z, steps=steps, burn=burn, thin=thin, beta=beta,
                                          target_accept=target_accept, generator=gen_t)
            n_fwd += evals
            R = gen(Z)
            n_fwd += Z.shape[0]
            chi = ((R.flatten(1) @ A - gt) * wt).pow(2).mean(1).sqrt()
        samples = R.numpy().astype(np.float64)
        info = {"acceptance": float(acc.mean()), "beta_final": [round(float(v), 5) for v in b],
                "chi_median": float(chi.median()), "chi_min": float(chi.min()), "generator_evals": int(n_fwd)}
        opts = {"kind": self.kind, "chains": chains, "steps": steps, "burn": burn, "thin": thin, "beta0": float(beta),
                "target_accept": float(target_accept), "init_steps": init_steps, "init_lr": float(init_lr),
                "temperature": T, "seed": int(seed), "latent": self.latent}
        return UncertaintyResult(mean=samples.mean(0), std=samples.std(0, ddof=1) if len(samples) > 1 else
                                 np.zeros(self.shape), samples=samples, method=f"pcn-{self.kind}", gaussian=False,
                                 options=opts, info=info, seconds=time.perf_counter() - t0)


def pcn_latent(op, g, sigma, *, kind="vae", weights=None, chains=4, steps=2000, burn=1000, thin=10, beta=0.1,
               target_accept=0.25, init_steps=200, init_lr=0.05, temperature=1.0, seed=0, threads=1):
    """Posterior samples of the density model in a generator's latent space by pCN MCMC.

    Parameters
    ----------
    op : forward operator
        ``A``, mGal per kg/m^3 (the grid must have shipped ``kind`` weights: n = 50).
    g : array (N,)
        Data, mGal.
    sigma : float or array (N,)
        Noise standard deviations, mGal.
    kind : {"vae", "gan"}
        Generator.
    weights : path, optional
        Weights file instead of the shipped one.
    chains : int
        Independent chains (one batch).
    steps, burn, thin : int
        Iterations per chain, of which the first ``burn`` adapt ``beta`` and
        are discarded; every ``thin``-th later state is kept:
        ``chains * (steps - burn) // thin`` samples.
    beta : float
        Initial pCN step in (0, 1].
    target_accept : float
        Acceptance rate the burn-in adapts ``beta`` towards.
    init_steps, init_lr : int, float
        Adam steps (and learning rate) towards the MAP point before sampling.
    temperature : float
        Likelihood temperature ``T`` (1: the posterior; > 1 widens it).
    seed : int
        Seeds the start, proposals and acceptances.
    threads : int
        Torch threads while sampling (restored afterwards).

    Returns
    -------
    UncertaintyResult
        ``gaussian=False`` (use sample quantiles); ``info`` holds the
        acceptance rate, final step sizes and the samples' data fit ``chi``
        (RMS of the weighted residual; 1 = the noise level).
    """
    return LatentSampler(op, kind=kind, weights=weights).run(
        g, sigma, chains=chains, steps=steps, burn=burn, thin=thin, beta=beta, target_accept=target_accept,
        init_steps=init_steps, init_lr=init_lr, temperature=temperature, seed=seed, threads=threads)
