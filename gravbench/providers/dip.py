"""Deep image prior provider (CNN reparameterisation; Xu & Heagy, AGU 2023).

The density model is the output of an **untrained** convolutional decoder,
``rho = f_theta(z)``, with a fixed random input ``z`` (drawn from the seed).
The network is :class:`~gravbench.providers.vae.ConvDecoder`: a linear
layer, then blocks of [nearest upsample x2, 3x3 conv, LeakyReLU(0.2)], a 3x3
conv to one channel and ``lo + (hi - lo) * sigmoid`` (the density bounds).
The weights ``theta`` are fitted by Adam to the weighted data misfit

    phi(theta) = mean( (W (A f_theta(z) - g))^2 ),     W = diag(1 / sigma),

with the gradient ``A^T W^T W r`` pushed back through the network by the
torch bridge (:class:`gravbench.forward.torch.GravityLayer`). No training data.
The iterations stop by the **discrepancy principle**: as soon as the RMS
weighted residual ``sqrt(phi)`` is at most ``target`` (1.0: the noise level),
or after ``maxiter`` iterations. With ``sigma=None`` the weights are 1 (mGal)
and only ``maxiter`` stops.

Defaults: ``latent=32``, ``channels=(64, 32, 16, 8)``, ``lr=0.01``,
``maxiter=2000``, ``bounds=(-1000, 1000)`` kg/m^3 (the range of gravbench's
model families). The network is randomly initialised from ``seed``: results
are deterministic on one machine and thread count.

References
----------
Xu, Z. and Heagy, L. (2023). A deep image prior approach to gravity inversion
(CNN reparameterisation). AGU Fall Meeting.
Ulyanov, D., Vedaldi, A., Lempitsky, V. (2018). Deep image prior. CVPR.
"""

from __future__ import annotations

import time

import numpy as np

from .base import Provider, ProviderInfo

__all__ = ["DIPProvider", "fit_dip"]


def fit_dip(problem, g, sigma=None, *, latent=32, channels=(64, 32, 16, 8), bounds=(-1000.0, 1000.0), lr=0.01,
            maxiter=2000, target=1.0, seed=0, device="cpu", layer=None):
    """Fit a deep-image-prior network to one data vector.

    Parameters
    ----------
    problem : gravbench.Problem
        Geometry (grid and stations).
    g : array_like, shape (n_data,)
        Observed gravity, mGal.
    sigma : float or array_like, optional
        Noise std, mGal (scalar or per datum); ``None`` = unit weights.
    latent : int
        Size of the fixed random input vector.
    channels : sequence of int
        Decoder feature maps (see :class:`~gravbench.providers.vae.ConvDecoder`).
    bounds : (float, float)
        Density bounds ``(lo, hi)``, kg/m^3.
    lr : float
        Adam learning rate.
    maxiter : int
        Most Adam iterations.
    target : float or None
        Discrepancy target on the RMS weighted residual (stop when reached).
    seed : int
        Seeds the network's initial weights and the input ``z``.
    device : str
        Torch device.
    layer : GravityLayer, optional
        A prebuilt torch forward layer for ``problem`` (reused across calls).

    Returns
    -------
    dict
        ``rho`` (nz, nx) kg/m^3, ``chi`` (final RMS weighted residual),
        ``history`` (chi per iteration), ``niter``, ``converged`` (target met),
        ``n_matvec`` / ``n_rmatvec`` (operator applications), ``seconds``.
    """
    from ._torchutil import device as _device
    from ._torchutil import require_torch

    torch = require_torch()
    from ..forward.torch import GravityLayer
    from .vae import ConvDecoder

    lo, hi = (float(b) for b in bounds)
    if not hi > lo:
        raise ValueError(f"bounds must be (lo, hi) with hi > lo, kg/m^3; got {bounds!r}")
    if int(maxiter) != maxiter or maxiter < 1:
        raise ValueError(f"maxiter must be a positive integer, got {maxiter!r}")
    if not (lr > 0):
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if target is not None and not target > 0:
        raise ValueError(f"target must be > 0 or None, got {target!r}")
    g = np.asarray(g, dtype=np.float64)
    if g.shape != (problem.n_data,):
        raise ValueError(f"g must have shape ({problem.n_data},), got {g.shape}")
    w = np.ones_like(g) if sigma is None else 1.0 / np.broadcast_to(np.asarray(sigma, dtype=np.float64), g.shape)
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("sigma must be finite and > 0 (mGal)")
    dev = _device(device)
    t0 = time.perf_counter()
    torch.manual_seed(int(seed))
    net = ConvDecoder(int(latent), problem.shape, channels, lo=lo, hi=hi).to(dev)
    gz = torch.Generator().manual_seed(int(seed) + 1)
    z = torch.randn(1, int(latent), generator=gz).to(dev)
    if layer is None:
        layer = GravityLayer(problem, dtype=torch.float32, device=dev)
    gt = torch.as_tensor(g, dtype=torch.float32, device=dev)
    wt = torch.as_tensor(w, dtype=torch.float32, device=dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    hist = []
    best = (float("inf"), None)
    converged = False
    it = 0
    n_mv = n_rmv = 0
    for it in range(1, int(maxiter) + 1):
        opt.zero_grad(set_to_none=True)
        rho = net(z)
        r = (layer(rho)[0] - gt) * wt
        n_mv += 1
        phi = r.pow(2).mean()
        chi = float(phi.detach().sqrt())
        hist.append(chi)
        if chi < best[0]:
            best = (chi, rho.detach()[0].clone())
        if target is not None and chi <= target:
            converged = True
            break
        phi.backward()
        n_rmv += 1
        opt.step()
    else:
        with torch.no_grad():
            rho = net(z)
            chi = float(((layer(rho)[0] - gt) * wt).pow(2).mean().sqrt())
        n_mv += 1
        hist.append(chi)
        if chi < best[0]:
            best = (chi, rho[0].clone())
    rho_out = best[1] if not converged else rho.detach()[0]
    return {"rho": rho_out.double().cpu().numpy(), "chi": min(best[0], hist[-1]) if not converged else hist[-1],
            "history": np.asarray(hist), "niter": it, "converged": converged, "n_matvec": n_mv,
            "n_rmatvec": n_rmv, "seconds": time.perf_counter() - t0}


class DIPProvider(Provider):
    """Deep image prior (registered as ``dip``): an untrained decoder fitted to the data.

    Parameters
    ----------
    latent : int
        Size of the fixed random input (32).
    channels : sequence of int
        Decoder feature maps ((64, 32, 16, 8)).
    bounds : (float, float)
        Density bounds, kg/m^3 ((-1000, 1000)).
    lr : float
        Adam learning rate (0.01).
    maxiter : int
        Most iterations (2000).
    target : float or None
        Discrepancy target on the RMS weighted residual (1.0).
    seed : int
        Default seed of the network and its input (a call's ``seed`` overrides it).
    device : str
        Torch device.

    Notes
    -----
    Works on any grid (no weights). Each call costs up to ``maxiter`` network
    forward/backward passes, each with one ``A`` and one ``A^T`` product.
    """

    name = "dip"
    learned = False

    def __init__(self, *, latent=32, channels=(64, 32, 16, 8), bounds=(-1000.0, 1000.0), lr=0.01, maxiter=2000,
                 target=1.0, seed=0, device="cpu"):
        from ._torchutil import require_torch

        require_torch()
        self.opts = {"latent": int(latent), "channels": tuple(int(c) for c in channels),
                     "bounds": tuple(float(b) for b in bounds), "lr": float(lr), "maxiter": int(maxiter),
                     "target": target, "device": device}
        if not self.opts["bounds"][1] > self.opts["bounds"][0] or len(self.opts["bounds"]) != 2:
            raise ValueError(f"bounds must be (lo, hi) with hi > lo, kg/m^3; got {bounds!r}")
        if self.opts["maxiter"] < 1:
            raise ValueError(f"maxiter must be a positive integer, got {maxiter!r}")
        self.seed = seed
        self._layer = None
        self.last = None

    @property
    def cost(self):
        return f"up to {self.opts['maxiter']} Adam steps on an untrained decoder (1 A + 1 A^T each)"

    @property
    def info(self):
        return ProviderInfo(name="dip", grids=(), cost=self.cost, learned=False, extra=dict(self.opts))

    def _get_layer(self, problem):
        if self._layer is None or self._layer[0] is not problem:
            import torch

            from ..forward.torch import GravityLayer

            self._layer = (problem, GravityLayer(problem, dtype=torch.float32, device=self.opts["device"]))
        return self._layer[1]

    def _single(self, g, problem, sigma, seed):
        seed = self.seed if seed is None else seed
        out = fit_dip(problem, g, sigma, seed=0 if seed is None else int(seed), layer=self._get_layer(problem),
                      **self.opts)
        self.last = {k: v for k, v in out.items() if k != "rho"}
        return out["rho"]
