"""Latent search providers: fit a generator's latent vector to observed gravity.

A trained generator ``G`` (the VAE's decoder, :mod:`gravbench.providers.vae`,
or the GAN's generator, :mod:`gravbench.providers.gan`) maps ``z`` in
``R^latent`` to a density model. Latent search minimises the **data** misfit

    phi(z) = || W (A G(z) - g) ||^2,      W = diag(1 / sigma),

never a distance to a true model. Methods (``method=``):

``"adam"``
    Adam on ``phi`` (Laloy et al. 2019's profile: lr 0.01, no prior term).
    One forward run and one gradient (reverse-mode) pass per iteration.
``"gn-fd"``
    Damped Gauss-Newton, ``dz = -(J^T J + lam I)^-1 (J^T r + lam z)``, which
    minimises ``phi + lam ||z||^2`` (``lam = 1``: a N(0, I) prior on ``z``),
    with the Jacobian ``J = W A dG/dz`` by central differences (step ``h``):
    ``2 latent`` forward runs per Jacobian (Laloy's variant). A backtracking
    line search (halve the step until that objective decreases, one forward
    run per trial; ``linesearch=0`` takes every full step as Laloy did).
    Laloy et al.'s own scheme (their ``inversion/strategy_2.py``) is
    ``method="gn-fd", h=0.25, lam=1, linesearch=0``: central differences with
    step 0.25, a constant ``lam = 1`` and full steps; ``tol`` stops a start at
    a fixed point of the iteration.
``"gn-autodiff"``
    The same step with ``J`` by forward-mode automatic differentiation
    (``torch.func.jacfwd`` vectorised with ``vmap``): ``latent`` tangent passes.
``"de"``
    Differential evolution (:func:`scipy.optimize.differential_evolution`,
    ``vectorized=True``: each generation's population goes through ``G`` and
    ``A`` as one batch) in the box ``[-bound, bound]^latent``.

The providers (``vae``, ``gan``) default to ``"gn-autodiff"``: in
``gravbench report latent`` (paper-50, 1 % noise) it is the best search from
random starts in the VAE (92 % of 200 searches in the success band within
10,000 evaluations, 94 % restarted) at the lowest cost, where Adam with
Laloy's settings reaches 58 % and 1,000 Adam iterations (the default before)
gave a model error of 1.49 on Table I's 20 models (worse than the zero
model). ``search`` itself keeps ``method="adam"`` as its default.

Random multi-start: ``starts`` independent searches from ``z ~ N(0, I)``
(Adam and Gauss-Newton run them as one batch; each start stops on its own),
the lowest misfit wins. ``warm_start="cnn"`` (the seed paper's warm start)
replaces the first start by ``z0 = argmin ||G(z) - rho_cnn||^2``, found by Adam
from the CNN provider's model (no gravity evaluations), then fits the data.

Every search stops a start at its first entry into the success band of
:func:`gravbench.metrics.is_success` (``target="band"``, the default:
``chi2 = mean((W r)^2) <= 1 + 2 sqrt(2/N)``; a fit with ``d`` free parameters
has ``E[chi2] ~ 1 - d/N``, so running on could leave the band from below), or
when its RMS weighted residual ``sqrt(mean((W r)^2))`` is at most a numeric
``target``, or after ``maxiter`` iterations (``max_evals`` for DE). Whether a
start succeeded is then :func:`~gravbench.metrics.is_success` of its
``chi ** 2`` (:meth:`SearchResult.success`): a step that jumps below the band
stops the start too, over-fitted, which is not a success.

Cost accounting (:class:`SearchResult`): ``forward`` counts models pushed
through ``G`` and ``A``; ``derivs`` counts derivative passes (a reverse-mode
gradient or one forward-mode tangent counts as one). ``evals = forward + derivs``.

References
----------
Laloy, E., Linde, N., Ruffino, C., Herault, R., Gasso, G., Jacques, D. (2019).
Gradient-based deterministic inversion of geophysical data with generative
adversarial networks: is it feasible? Computers & Geosciences 133, 104333.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _train, get
from ._torchutil import device as _device
from ._torchutil import require_torch
from .base import NoWeightsError, Provider, ProviderInfo, check_count, check_real
from ..metrics import is_success, success_band
from ..data.sets import STANDARD

__all__ = ["VAEProvider", "GANProvider", "SearchResult", "search", "load_generator", "available_grids",
           "METHODS", "LALOY_ADAM"]

METHODS = ("adam", "gn-fd", "gn-autodiff", "de")

#: Laloy et al. (2019)'s Adam settings: learning rate 0.01, 10,000 iterations, no prior term.
LALOY_ADAM = {"lr": 0.01, "maxiter": 10_000}

_DEFAULT_MAXITER = {"adam": 1000, "gn-fd": 30, "gn-autodiff": 30, "de": None}
PROVIDER_METHOD = "gn-autodiff"  # the vae / gan providers' default search (see the module docstring)
_DEFAULT_STARTS = {"adam": 8, "gn-fd": 4, "gn-autodiff": 4, "de": 1}

_WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass
class SearchResult:
    """Outcome of a (multi-start) latent search on one data vector.

    Attributes
    ----------
    z : ndarray, shape (S, latent)
        Final latent vector of every start.
    chi : ndarray, shape (S,)
        Final RMS weighted residual ``sqrt(mean((W (A G(z) - g))^2))`` (1 = noise level).
    forward, derivs : ndarray of int, shape (S,)
        Forward runs and derivative passes spent by each start.
    reached : ndarray of float, shape (S,)
        Evaluations (forward + derivs) when the start first met ``target``; NaN if never.
    seconds : ndarray, shape (S,)
        Wall seconds per start (batched starts share a batch's time equally).
    niter : ndarray of int, shape (S,)
        Iterations (generations for DE) per start.
    history : list
        Best chi per iteration (over all starts).
    """

    z: np.ndarray
    chi: np.ndarray
    forward: np.ndarray
    derivs: np.ndarray
    reached: np.ndarray
    seconds: np.ndarray
    niter: np.ndarray
    method: str = ""
    history: list = field(default_factory=list)

    @property
    def evals(self):
        return self.forward + self.derivs

    @property
    def best(self):
        return int(np.argmin(self.chi))

    def success(self, n_data):
        """Per start: :func:`gravbench.metrics.is_success` of ``chi ** 2`` with ``n_data`` data."""

        return np.array([is_success(float(c) ** 2, n_data) for c in self.chi], dtype=bool)


# ----------------------------------------------------------------------------- weights


def available_grids(kind):
    """Grids ``(nz, nx)`` with shipped ``kind`` weights (``kind`` = ``"vae"`` or ``"gan"``)."""
    out = []
    for js in sorted(_WEIGHTS_DIR.glob(f"{kind}-*.json")):
        try:
            cfg = json.loads(js.read_text())["config"]
            if js.with_suffix(".pt").exists():
                out.append(tuple(int(s) for s in cfg["shape"]))
        except (ValueError, KeyError, TypeError):
            continue
    return tuple(out)


def _train_hint(kind, shape):
    """The training command for a ``shape`` grid: a standard data set of that shape, else a data set path."""
    sets = [name for name, spec in STANDARD.items() if (spec.n, spec.n) == tuple(shape)]
    if sets:
        return " or ".join(f"gravbench train {kind} --dataset {name}" for name in sets)
    return f"gravbench train {kind} --dataset <a training set of {shape[0]}x{shape[1]} models>"


def load_generator(kind, shape=None, weights=None, device="cpu"):
    """The generator of ``kind`` for grid ``shape`` (shipped weights) or from a weights file.

    Raises :class:`~gravbench.providers.NoWeightsError` (naming the grids that
    have weights and the training command) when none exist for ``shape``;
    ``ValueError`` when a file fails its sha256 check.

    Returns
    -------
    (generator, manifest, encoder_or_None)
    """
    if kind not in ("vae", "gan"):
        raise ValueError(f"kind must be 'vae' or 'gan', got {kind!r}")
    dev = _device(device)
    if weights is None:
        if shape is None:
            raise ValueError("give the grid shape or a weights file")
        from .vae import weights_path

        path = weights_path(kind, tuple(shape))
        if not path.exists() or not path.with_suffix(".json").exists():
            have = available_grids(kind)
            grids = ", ".join(f"{a}x{b}" for a, b in have) or "none"
            raise NoWeightsError(
                f"no {kind} weights for the {shape[0]}x{shape[1]} grid; shipped grids: {grids}. "
                f"Train them with: {_train_hint(kind, shape)}  (or pass weights=PATH)")
    else:
        path = _train.resolve_weights(weights, kind)
    sd, man = _train.load_weights(path, map_location="cpu")
    cfg = man.get("config")
    if not isinstance(cfg, dict) or cfg.get("kind") != kind:
        raise ValueError(f"weights file {path} is not a {kind} generator (manifest config: {cfg!r})")
    have = tuple(cfg.get("shape") or ())
    if shape is not None and have != tuple(shape):
        grid = "x".join(str(v) for v in have) or "unknown"
        raise NoWeightsError(
            f"weights file {path} is for the {grid} grid, not {shape[0]}x{shape[1]}; "
            f"train matching weights with: {_train_hint(kind, shape)}")
    encoder = None
    try:
        if kind == "vae":
            from .vae import build
        else:
            from .gan import build
        model = build(cfg)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"the manifest {path.with_suffix('.json').name} of {path.name} has an invalid config "
                         f"({type(exc).__name__}: {exc}); it was edited or is damaged: reinstall gravbench or "
                         f"retrain the weights") from None
    _train.load_state(model, sd, path, man)
    if kind == "vae":
        gen, encoder = model.decoder, model
    else:
        gen = model
    gen.eval().to(dev)
    for p in gen.parameters():
        p.requires_grad_(False)
    if encoder is not None:
        encoder.eval().to(dev)
    return gen, man, encoder


# ----------------------------------------------------------------------------- search


def _torch():
    return require_torch()


class _Misfit:
    """``z (S, latent) -> W (A G(z) - g)`` of shape ``(S, n_data)`` in torch, with evaluation counters."""

    def __init__(self, gen, layer, g, w):
        torch = _torch()
        self.gen, self.layer = gen, layer
        dev = next(iter(gen.buffers())).device
        self.g = torch.as_tensor(np.asarray(g), dtype=torch.float32, device=dev)
        self.w = torch.as_tensor(np.asarray(w), dtype=torch.float32, device=dev)
        self.dev = dev

    def __call__(self, z):
        return (self.layer(self.gen(z)).to(z.dtype) - self.g) * self.w

    @staticmethod
    def chi(r):
        return r.pow(2).mean(-1).sqrt()


def _adam(mis, z0, *, lr, maxiter, target, betas=(0.9, 0.999), eps=1e-8):
    torch = _torch()
    S, d = z0.shape
    z = z0.clone()
    m = torch.zeros_like(z)
    v = torch.zeros_like(z)
    active = torch.ones(S, dtype=torch.bool)
    chi = torch.full((S,), float("inf"))
    fwd = np.zeros(S, dtype=np.int64)
    der = np.zeros(S, dtype=np.int64)
    reached = np.full(S, np.nan)
    niter = np.zeros(S, dtype=np.int64)
    secs = np.zeros(S)
    hist = []
    b1, b2 = betas
    for it in range(1, int(maxiter) + 1):
        idx = torch.nonzero(active).flatten()
        if idx.numel() == 0:
            break
        t0 = time.perf_counter()
        za = z[idx].clone().requires_grad_(True)
        r = mis(za)
        c = _Misfit.chi(r)
        loss = 0.5 * r.pow(2).sum()
        (grad,) = torch.autograd.grad(loss, za)
        ii = idx.numpy()
        fwd[ii] += 1
        c = c.detach()
        chi[idx] = c
        done = c <= target if target is not None else torch.zeros_like(c, dtype=torch.bool)
        # a start that already fits stops before its update (its forward run is counted, no gradient needed)
        step_idx = idx[~done]
        der[step_idx.numpy()] += 1
        reached[ii[done.numpy()]] = fwd[ii[done.numpy()]] + der[ii[done.numpy()]]
        active[idx[done]] = False
        g = grad[~done]
        m[step_idx] = b1 * m[step_idx] + (1 - b1) * g
        v[step_idx] = b2 * v[step_idx] + (1 - b2) * g * g
        mh = m[step_idx] / (1 - b1 ** it)
        vh = v[step_idx] / (1 - b2 ** it)
        z[step_idx] = z[step_idx] - lr * mh / (vh.sqrt() + eps)
        niter[ii] = it
        secs[ii] += (time.perf_counter() - t0) / len(ii)
        hist.append(float(chi.min()))
    # final misfit of starts still running after maxiter
    idx = torch.nonzero(active).flatten()
    if idx.numel():
        t0 = time.perf_counter()
        with torch.no_grad():
            c = _Misfit.chi(mis(z[idx]))
        chi[idx] = c
        fwd[idx.numpy()] += 1
        ok = (c <= target).numpy() if target is not None else np.zeros(len(idx), bool)
        ii = idx.numpy()
        reached[ii[ok]] = fwd[ii[ok]] + der[ii[ok]]
        secs[ii] += (time.perf_counter() - t0) / len(ii)
    return z, chi.numpy(), fwd, der, reached, secs, niter, hist


def _jacobian(mis, z, mode, h, need_r=True):
    """Weighted residual ``r (S, N)`` and Jacobian ``J (S, N, d)`` at ``z``; returns (r, J, n_fwd, n_der) per start."""
    torch = _torch()
    S, d = z.shape
    if mode == "fd":
        eye = torch.eye(d, dtype=z.dtype)
        zp = (z[:, None, :] + h * eye).reshape(S * d, d)
        zm = (z[:, None, :] - h * eye).reshape(S * d, d)
        with torch.no_grad():
            r = mis(z) if need_r else None
            rp = mis(zp).reshape(S, d, -1)
            rm = mis(zm).reshape(S, d, -1)
        J = ((rp - rm) / (2 * h)).transpose(1, 2)
        return r, J, 2 * d + 1, 0
    from torch.func import jacfwd, vmap

    with torch.no_grad():
        r = mis(z) if need_r else None
    # forward mode, vectorised over the latent directions and the starts (the primal is shared by the tangents)
    J = vmap(jacfwd(lambda z1: mis(z1[None])[0]))(z)
    return r, J.detach(), 1, d


def _gauss_newton(mis, z0, *, mode, lam, maxiter, target, h=1e-2, linesearch=8, tol=0.0):
    """Damped Gauss-Newton on ``||r(z)||^2 + lam ||z||^2`` with backtracking (step halved up to ``linesearch`` times).

    ``linesearch=0``: every full step is taken (Laloy's scheme). ``tol > 0``: a start whose accepted step
    moves ``z`` by less than ``tol`` (Euclidean norm) stops there (a fixed point of the iteration).
    """
    torch = _torch()
    S, d = z0.shape
    z = z0.clone()
    fwd = np.zeros(S, dtype=np.int64)
    der = np.zeros(S, dtype=np.int64)
    reached = np.full(S, np.nan)
    niter = np.zeros(S, dtype=np.int64)
    secs = np.zeros(S)
    hist = []
    eye = torch.eye(d, dtype=torch.float64)
    t0 = time.perf_counter()
    with torch.no_grad():
        r = mis(z)
    fwd += 1
    chi = _Misfit.chi(r)
    obj = r.double().pow(2).sum(-1) + lam * z.double().pow(2).sum(-1)
    active = torch.ones(S, dtype=torch.bool)
    secs += (time.perf_counter() - t0) / S
    for it in range(1, int(maxiter) + 1):
        t0 = time.perf_counter()
        if target is not None:
            done = active & (chi <= target)
            dd = torch.nonzero(done).flatten().numpy()
            reached[dd] = fwd[dd] + der[dd]
            active &= ~done
        idx = torch.nonzero(active).flatten()
        if idx.numel() == 0:
            break
        ii = idx.numpy()
        _, J, nf, nd = _jacobian(mis, z[idx], mode, h, need_r=False)
        fwd[ii] += nf - 1  # the residual at z is known
        der[ii] += nd
        Jd = J.double()
        H = Jd.transpose(1, 2) @ Jd + lam * eye
        rhs = Jd.transpose(1, 2) @ r[idx].double()[..., None] + lam * z[idx].double()[..., None]
        dz = (-torch.linalg.solve(H, rhs)[..., 0]).to(z.dtype)
        step = torch.ones(len(ii), dtype=z.dtype)
        pending = torch.ones(len(ii), dtype=torch.bool)
        for _ in range(int(linesearch) + 1):
            pi = torch.nonzero(pending).flatten()
            if pi.numel() == 0:
                break
            gi = idx[pi]
            zt = z[gi] + step[pi, None] * dz[pi]
            with torch.no_grad():
                rt = mis(zt)
            fwd[gi.numpy()] += 1
            ot = rt.double().pow(2).sum(-1) + lam * zt.double().pow(2).sum(-1)
            ok = (ot < obj[gi]) if linesearch else torch.ones(len(gi), dtype=torch.bool)
            acc = gi[ok]
            z[acc], r[acc], obj[acc] = zt[ok], rt[ok], ot[ok]
            chi[acc] = _Misfit.chi(rt[ok])
            pending[pi[ok]] = False
            step[pi[~ok]] *= 0.5
            if not linesearch:
                break
        stalled = idx[pending]  # no decrease along the Gauss-Newton direction: a stationary point
        active[stalled] = False
        if tol > 0:
            moved = (step[:, None] * dz).norm(dim=1)
            fixed = idx[(~pending) & (moved < tol)]
            if target is not None and fixed.numel():
                fd_ = fixed[chi[fixed] <= target].numpy()
                reached[fd_] = fwd[fd_] + der[fd_]
            active[fixed] = False
        niter[ii] = it
        secs[ii] += (time.perf_counter() - t0) / len(ii)
        hist.append(float(chi.min()))
    if target is not None:
        done = torch.nonzero(active & (chi <= target)).flatten().numpy()
        reached[done] = fwd[done] + der[done]
    return z, chi.numpy(), fwd, der, reached, secs, niter, hist


def _de(mis, d, *, starts, seed, max_evals, target, bound, popsize, maxiter=None, mutation=(0.5, 1.0),
        recombination=0.7):
    from scipy.optimize import differential_evolution

    torch = _torch()
    Z = np.zeros((starts, d))
    chi = np.zeros(starts)
    fwd = np.zeros(starts, dtype=np.int64)
    reached = np.full(starts, np.nan)
    secs = np.zeros(starts)
    niter = np.zeros(starts, dtype=np.int64)
    hist = []
    pop = int(popsize) * d
    if maxiter is None:
        maxiter = max(1, int(max_evals) // pop - 1)
    for s in range(starts):
        count = [0]

        def f(x):
            zb = torch.as_tensor(np.ascontiguousarray(x.T), dtype=torch.float32, device=mis.dev)
            with torch.no_grad():
                c2 = mis(zb).pow(2).mean(-1)
            count[0] += x.shape[1]
            return c2.double().cpu().numpy()

        def cb(intermediate_result):
            if target is not None and intermediate_result.fun <= target ** 2:
                if np.isnan(reached[s]):
                    reached[s] = count[0]
                return True
            return False

        t0 = time.perf_counter()
        res = differential_evolution(f, [(-bound, bound)] * d, vectorized=True, updating="deferred",
                                     popsize=int(popsize), maxiter=int(maxiter), seed=int(seed) + s,
                                     polish=False, tol=0.0, atol=0.0, callback=cb, mutation=mutation,
                                     recombination=recombination, init="latinhypercube")
        secs[s] = time.perf_counter() - t0
        Z[s] = res.x
        chi[s] = float(np.sqrt(res.fun))
        fwd[s] = count[0]
        niter[s] = int(res.nit)
        if target is not None and chi[s] <= target and np.isnan(reached[s]):
            reached[s] = count[0]
        hist.append(float(chi[s]))
    return torch.as_tensor(Z, dtype=torch.float32), chi, fwd, np.zeros(starts, dtype=np.int64), reached, secs, niter, hist


def _check_search_options(target, lr, lam, linesearch, max_evals, popsize, bound, h=1e-2):
    """Validated latent-search settings (ValueError naming the option and its range)."""
    if isinstance(target, str) and target != "band":
        raise ValueError(f"target must be 'band', a number > 0 or None, got {target!r}")
    return (target if isinstance(target, str) else check_real("target", target, positive=True, allow_none=True),
            check_real("lr", lr, positive=True),
            check_real("lam", lam, minimum=0.0),
            check_count("linesearch", linesearch, minimum=0),
            check_count("max_evals", max_evals),
            check_count("popsize", popsize),
            check_real("bound", bound, positive=True))


def search(gen, layer, g, sigma=None, *, method="adam", z0=None, starts=None, seed=0, maxiter=None,
           target="band", lr=0.01, lam=1.0, h=1e-2, linesearch=8, max_evals=10_000, popsize=4, bound=3.0,
           tol=0.0):
    """Latent search on one data vector; see the module docstring.

    Parameters
    ----------
    gen : torch.nn.Module
        Generator ``z (S, latent) -> rho (S, nz, nx)`` kg/m^3 (has attribute ``latent``).
    layer : gravbench.forward.torch.GravityLayer
        The forward operator as a torch layer.
    g : array_like, shape (n_data,)
        Observed gravity, mGal.
    sigma : float or array_like, optional
        Noise std, mGal; ``None`` = unit weights (then ``target`` is in mGal).
    method : {"adam", "gn-fd", "gn-autodiff", "de"}
    z0 : array_like, shape (S, latent), optional
        Starting latent vectors (default: ``starts`` draws from N(0, I)).
    starts : int, optional
        Number of random starts (DE: independent runs) when ``z0`` is not given.
    seed : int
        Seeds the random starts and DE.
    maxiter : int, optional
        Iterations (Adam, Gauss-Newton) or DE generations; default 1000 / 30 / from ``max_evals``.
    target : "band", float or None
        ``"band"``: stop a start at its first entry into the success band
        (``|chi2 - 1| <= 2 sqrt(2/N)``, :func:`gravbench.metrics.success_band`;
        without ``sigma`` it runs ``maxiter``: noise-free data have no noise level); a number: stop when the RMS weighted residual is at
        most ``target``; ``None``: run ``maxiter``.
    lr : float
        Adam learning rate (0.01, Laloy).
    lam : float
        Gauss-Newton damping (1: N(0, I) prior on z, Laloy).
    h : float
        Central-difference step for ``"gn-fd"``.
    linesearch : int
        Gauss-Newton backtracking: halve the step up to this many times until
        ``||r||^2 + lam ||z||^2`` decreases (0: take the full step once; a start
        whose step never decreases it stops, at a stationary point).
        With ``linesearch=0`` every full Gauss-Newton step is taken, whether or
        not it decreases the objective (Laloy et al.'s scheme).
    tol : float
        Gauss-Newton only: a start whose accepted step moves ``z`` by less than
        ``tol`` stops (a fixed point of the iteration; 0: never).
    max_evals : int
        DE budget per run (forward runs) when ``maxiter`` is not given.
    popsize : int
        DE population = ``popsize * latent``.
    bound : float
        DE search box ``[-bound, bound]^latent``.

    Returns
    -------
    SearchResult
    """
    torch = _torch()
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    target, lr, lam, linesearch, max_evals, popsize, bound = _check_search_options(
        target, lr, lam, linesearch, max_evals, popsize, bound)
    h = check_real("h", h, positive=True)
    tol = check_real("tol", tol, minimum=0.0)
    seed = check_count("seed", seed, minimum=0)
    if starts is not None:
        starts = check_count("starts", starts)
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 1 or g.shape[0] != layer.n_data:
        raise ValueError(f"g must have shape ({layer.n_data},), got {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("g contains NaN or inf")
    if sigma is None:
        w = np.ones_like(g)
    else:
        s = np.broadcast_to(np.asarray(sigma, dtype=np.float64), g.shape)
        if np.any(~np.isfinite(s)) or np.any(s <= 0):
            raise ValueError("sigma must be finite and > 0 (mGal)")
        w = 1.0 / s
    if isinstance(target, str):
        if target != "band":
            raise ValueError(f"target must be 'band', a number > 0 or None, got {target!r}")
        if sigma is None:  # noise-free data: no noise level to stop at, minimise the misfit for maxiter
            target = None
        else:

            target = float(np.sqrt(success_band(g.size)[1]))
    mis = _Misfit(gen, layer, g, w)
    d = int(gen.latent)
    if maxiter is None:
        maxiter = _DEFAULT_MAXITER[method]
    if maxiter is not None and (int(maxiter) != maxiter or maxiter < 1):
        raise ValueError(f"maxiter must be a positive integer, got {maxiter!r}")
    if method == "de":
        S = int(starts or 1)
        out = _de(mis, d, starts=S, seed=seed, max_evals=max_evals, target=target, bound=bound,
                  popsize=popsize, maxiter=maxiter)
    else:
        if z0 is None:
            S = int(starts or _DEFAULT_STARTS[method])
            if S < 1:
                raise ValueError(f"starts must be >= 1, got {starts!r}")
            gen_ = torch.Generator().manual_seed(int(seed))
            z0 = torch.randn(S, d, generator=gen_)
        else:
            z0 = torch.as_tensor(np.asarray(z0), dtype=torch.float32)
            if z0.ndim != 2 or z0.shape[1] != d:
                raise ValueError(f"z0 must have shape (S, {d}), got {tuple(z0.shape)}")
        z0 = z0.to(mis.dev)
        if method == "adam":
            out = _adam(mis, z0, lr=lr, maxiter=maxiter, target=target)
        else:
            out = _gauss_newton(mis, z0, mode="fd" if method == "gn-fd" else "autodiff", lam=lam,
                                maxiter=maxiter, target=target, h=h, linesearch=linesearch, tol=tol)
    z, chi, fwd, der, reached, secs, niter, hist = out
    return SearchResult(z=z.detach().cpu().numpy(), chi=np.asarray(chi, dtype=np.float64), forward=fwd,
                        derivs=der, reached=reached, seconds=secs, niter=niter, method=method, history=hist)


def fit_to_model(gen, rho, z0=None, steps=300, lr=0.05, starts=8, seed=0):
    """``z`` with ``G(z)`` closest to ``rho`` (least squares on the [0, 1] scale): the warm start's first stage.

    Adam from ``z0`` (or ``starts`` random draws plus ``z = 0``); returns the best ``z`` of shape ``(latent,)``.
    No gravity evaluations.
    """
    torch = _torch()
    lo, hi = float(gen.lo), float(gen.hi)
    tgt = torch.as_tensor((np.asarray(rho, dtype=np.float32) - lo) / (hi - lo), device=gen.lo.device)
    tgt = tgt.clamp(0.0, 1.0)
    if z0 is None:
        gg = torch.Generator().manual_seed(int(seed))
        z0 = torch.cat([torch.zeros(1, gen.latent), torch.randn(max(0, starts - 1), gen.latent, generator=gg)])
    z = torch.as_tensor(np.asarray(z0), dtype=torch.float32).reshape(-1, gen.latent).clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(int(steps)):
        opt.zero_grad(set_to_none=True)
        loss = ((gen.unit(z) - tgt) ** 2).flatten(1).sum(1)
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        e = ((gen.unit(z) - tgt) ** 2).flatten(1).sum(1)
    return z.detach()[int(torch.argmin(e))].cpu().numpy()


# ----------------------------------------------------------------------------- providers


class _LatentProvider(Provider):
    kind = "vae"
    learned = True

    def __init__(self, n=None, *, method=PROVIDER_METHOD, starts=None, warm_start=None, maxiter=None, device="cpu",
                 seed=0, weights=None, target="band", lr=0.01, lam=1.0, linesearch=8, max_evals=10_000, popsize=4,
                 bound=3.0, cnn_options=None, warm_steps=300):
        require_torch()
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if warm_start not in (None, "cnn"):
            raise ValueError(f"warm_start must be 'cnn' or None, got {warm_start!r}")
        starts = check_count("starts", starts, allow_none=True)
        maxiter = check_count("maxiter", maxiter, allow_none=True)
        target, lr, lam, linesearch, max_evals, popsize, bound = _check_search_options(
            target, lr, lam, linesearch, max_evals, popsize, bound)
        warm_steps = check_count("warm_steps", warm_steps, minimum=0)
        if seed is not None:
            seed = check_count("seed", seed, minimum=0)
        if n is not None:
            n = check_count("n", n)
        if cnn_options is not None and not isinstance(cnn_options, dict):
            raise ValueError(f"cnn_options must be a dict of cnn provider options, got {cnn_options!r}")
        _device(device)  # "gpu", "cuda" without CUDA, ...: a ValueError naming the device now, not at the first call
        if weights is not None:
            weights = _train.resolve_weights(weights, self.kind)
        self.method, self.starts, self.warm_start = method, starts, warm_start
        self.maxiter, self.device, self.seed, self.weights = maxiter, device, seed, weights
        self.opts = {"target": target, "lr": lr, "lam": lam, "linesearch": linesearch, "max_evals": max_evals,
                     "popsize": popsize, "bound": bound}
        self.cnn_options = dict(cnn_options or {})
        self.warm_steps = int(warm_steps)
        self._cache = {}
        self._layers = {}
        if n is not None:  # fail early when the grid has no weights
            self._generator((int(n), int(n)))

    @property
    def cost(self):
        return (f"latent search ({self.method}, {self.starts or _DEFAULT_STARTS[self.method]} start(s)): "
                f"up to {self.maxiter or _DEFAULT_MAXITER[self.method] or self.opts['max_evals']} iterations/evaluations "
                f"of generator + forward operator")

    def grids(self):
        if self.weights is not None:
            try:
                return (tuple(self._generator(None)[1]["config"]["shape"]),)
            except (ValueError, KeyError):
                return ()
        return available_grids(self.kind)

    @property
    def info(self):
        used = {("any grid" if k is None else f"{k[0]}x{k[1]}"): self._weights_used(k, v[1])
                for k, v in self._cache.items()}
        if not used:
            if self.weights is not None:
                used = {"any grid": str(self.weights)}
            else:
                from .vae import weights_path

                used = {f"{a}x{b}": str(weights_path(self.kind, (a, b))) for a, b in available_grids(self.kind)}
        return ProviderInfo(name=self.kind, grids=tuple(self.grids()), cost=self.cost, learned=True,
                            extra={"method": self.method, "warm_start": self.warm_start, "weights": used,
                                   "source": "user" if self.weights is not None else "shipped"})

    def _weights_used(self, key, man):
        if self.weights is not None:
            path = self.weights
        else:
            from .vae import weights_path

            path = weights_path(self.kind, key)
        return f"{path} (sha256 {str(man.get('sha256', ''))[:12]})"

    def _generator(self, shape):
        key = tuple(shape) if shape is not None else None
        if key not in self._cache:
            self._cache[key] = load_generator(self.kind, shape, self.weights, self.device)
        return self._cache[key]

    def _layer(self, problem):
        key = id(problem)
        if key not in self._layers:
            import torch

            from ..forward.torch import GravityLayer

            self._layers = {key: (problem, GravityLayer(problem, dtype=torch.float32, device=self.device))}
        return self._layers[key][1]

    def warm_z(self, g, problem, sigma, seed):
        """The CNN warm start's latent vector (CNN model -> nearest ``G(z)``)."""
        gen, _, enc = self._generator(problem.shape)
        cnn = self._cnn = getattr(self, "_cnn", None) or get("cnn", **self.cnn_options)
        rho_cnn = cnn(g, problem, sigma=sigma, seed=seed)
        z0 = None
        if enc is not None:
            import torch

            x = torch.as_tensor((np.clip(rho_cnn, float(gen.lo), float(gen.hi)) - float(gen.lo))
                                / (float(gen.hi) - float(gen.lo)), dtype=torch.float32)[None]
            with torch.no_grad():
                z0 = enc.encode(x.to(gen.lo.device))[0].cpu().numpy()
        return fit_to_model(gen, rho_cnn, z0=z0, steps=self.warm_steps, seed=0 if seed is None else seed)

    def run(self, g, problem, sigma=None, seed=None):
        """The full :class:`SearchResult` for one data vector (the provider call returns ``G(z_best)``)."""
        import torch

        gen, _, _ = self._generator(problem.shape)
        seed = self.seed if seed is None else seed
        seed = 0 if seed is None else int(seed)
        torch.manual_seed(seed)
        z0 = None
        starts = self.starts
        if self.warm_start == "cnn":
            zw = self.warm_z(g, problem, sigma, seed)
            S = int(starts or 1)
            gg = torch.Generator().manual_seed(seed)
            z0 = np.concatenate([zw[None], torch.randn(S - 1, gen.latent, generator=gg).numpy()])
            if self.method == "de":
                raise ValueError("warm_start='cnn' works with method 'adam', 'gn-fd' or 'gn-autodiff', not 'de'")
        return search(gen, self._layer(problem), g, sigma, method=self.method, z0=z0, starts=starts, seed=seed,
                      maxiter=self.maxiter, **self.opts)

    def _single(self, g, problem, sigma, seed):
        import torch

        res = self.run(g, problem, sigma, seed)
        gen, _, _ = self._generator(problem.shape)
        with torch.no_grad():
            rho = gen(torch.as_tensor(res.z[res.best][None], device=gen.lo.device))[0]
        return rho.double().cpu().numpy()

    def __repr__(self):
        return f"<provider {self.kind!r} method={self.method!r} warm_start={self.warm_start!r}>"


class VAEProvider(_LatentProvider):
    """Latent search in the VAE decoder (registered as ``vae``).

    Parameters
    ----------
    n : int, optional
        Grid size (``n x n``) whose shipped weights to load now (otherwise on the
        first call, from the problem's grid). Raises
        :class:`~gravbench.providers.NoWeightsError` when there are none.
    method : {"gn-autodiff", "adam", "gn-fd", "de"}
        Search method (see :mod:`gravbench.providers.latent`); default
        ``"gn-autodiff"``, the best random-start search of ``reports/latent.md``.
    starts : int, optional
        Random starts (default 8 for Adam, 4 for Gauss-Newton, 1 DE run).
    warm_start : {None, "cnn"}
        Start from the CNN provider's model (projected into the latent space).
    maxiter : int, optional
        Iterations (default 1000 Adam, 30 Gauss-Newton; DE: from ``max_evals``).
    device : str
        Torch device.
    seed : int
        Default seed (a call's ``seed`` overrides it).
    weights : path, optional
        A weights file with its JSON manifest instead of the shipped one.
    target : "band", float or None
        ``"band"`` (default): stop at the first entry into the success band of
        :func:`gravbench.metrics.is_success`; a number: stop at this RMS
        weighted residual.
    lr, lam, linesearch, max_evals, popsize, bound :
        Method settings (see :func:`search`).
    """

    name = "vae"
    kind = "vae"


class GANProvider(_LatentProvider):
    """Latent search in the GAN generator (registered as ``gan``); options as :class:`VAEProvider`."""

    name = "gan"
    kind = "gan"
