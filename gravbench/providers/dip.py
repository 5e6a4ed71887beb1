"""Deep image prior provider (CNN reparameterisation; Xu & Heagy, AGU 2023).

The density model is the output of an **untrained** convolutional decoder,
``rho = f_theta(z)``, with a small input ``z`` drawn once from the seed. No
training data: the weights ``theta`` are fitted to one data vector. The
default follows the authors' recipe (their public ``DIP-Inv`` code), adapted
to gravity:

1. **Start at the reference model.** Before any forward evaluation, the
   weights are fitted (Adam, at most ``start_steps`` cheap steps, no operator
   products) so that ``f_theta(z) ~= m_ref`` (default ``m_ref = 0``, the
   background contrast).
2. **Annealed pull toward the reference.** Adam then minimises

   .. math::

      L_t(\\theta) = (1 - \\beta_t)\\, \\frac{\\chi^2(f_\\theta(z))}{\\chi^2(m_{ref})}
                    + \\beta_t\\, \\phi_m(f_\\theta(z) - m_{ref}),
      \\qquad \\beta_t = e^{-t/\\tau},\\ t = 0, 1, 2, \\ldots

   with :math:`\\chi^2 = \\frac1N \\sum_i ((A\\rho - g)_i / \\sigma_i)^2` (reduced
   chi-squared, normalised by its value at the reference model so the
   balance does not depend on the signal-to-noise ratio) and
   :math:`\\phi_m(d) = \\mathrm{mean}|d| / s` (``reg="l1"``) or
   :math:`\\mathrm{mean}(d^2) / s^2` (``reg="l2"``), ``s = (hi - lo) / 2``.
   ``beta`` starts at 1 (only the reference) and fades as the data take over.
3. **Depth or sensitivity weighting of the data gradient.** The gradient of
   the data term with respect to the model, ``A^T W^T W r``, is multiplied
   cell by cell by ``w`` before it goes back through the network
   (``weighting="depth"``: ``w ~ (z + z0)^power``; ``"sensitivity"``:
   ``w ~ (sum_i (A_ij / sigma_i)^2)^(-power/2)``; ``"none"``: ``w = 1``),
   normalised to mean 1. Gravity sensitivities decay with depth, so without
   it the data pull every change toward the surface.
4. **Discrepancy stop.** The loop ends at the first iterate whose chi2 is in
   the success band of :func:`gravbench.metrics.is_success` (that
   function is called, not re-implemented), or after the budget of
   ``maxiter`` evaluations; then the iterate with the lowest chi2 is returned.
   An Adam blow-up (chi2 above ``backtrack`` times its best value) returns to
   the best weights and Adam's moments there, with half the learning rate.
5. **L-BFGS finish** (``finish="lbfgs"``, the default; not in the authors'
   recipe). Plain Adam reaches the band slowly: on held-out blocks 15 % of
   the fits were still at chi2 ~ 1.2-2 after 2,000 steps (the last data
   components are the ill-conditioned ones). After ``switch`` Adam steps
   (``beta`` has faded to ``exp(-switch / tau)``) the **same network
   weights** are optimised further by L-BFGS (strong-Wolfe line search, in
   float64) on ``chi2 + mu_k * mean(((rho - m_ref) / s)^2 / w)``, a
   depth-weighted L2 pull toward the reference (``w`` the cell weights of
   step 3: it penalises shallow cells more) with ``mu_k = finish_reg *
   2^-k`` halved every ``finish_stage`` evaluations, until an evaluation's
   chi2 is in the band. The model is always the network's output: no
   classical solver touches it. Each L-BFGS evaluation is one ``A`` and one
   ``A^T`` product and counts against ``maxiter``.

Network (:class:`DIPDecoder`): ``Linear(latent -> c0 * s_z * s_x)`` and
LeakyReLU(0.2), then blocks of [upsample x2 (bilinear), 3x3 conv,
LeakyReLU(0.2)], optional dropout, a 3x3 conv to one channel, a centre crop
to ``(nz, nx)`` and ``lo + (hi - lo) * sigmoid`` (the density bounds; with
the symmetric default bounds ``sigmoid = 1/2`` is a zero contrast).

The data misfit goes through gravbench's operator inside the torch graph
(:class:`gravbench.forward.torch.GravityLayer`, dense ``A`` in float64 when it
fits, else the FFT / matrix-free operator), so its gradient is ``A^T``
applied to the weighted residual.

The pre-recipe behaviour of this provider (a random start, no reference
term, no weighting, lr 0.01, 32 latent values, channels (64, 32, 16, 8),
nearest upsampling) is the option set :data:`PLAIN`.

References
----------
Xu, Z. and Heagy, L. (2023). A deep image prior approach to geophysical
inversion (DIP-Inv). AGU Fall Meeting.
Ulyanov, D., Vedaldi, A., Lempitsky, V. (2018). Deep image prior. CVPR.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ._torchutil import device as _device
from ._torchutil import require_torch
from .base import Provider, ProviderInfo
from ..metrics import is_success
from ..refiners._common import layer_depth_weights

__all__ = ["DIPProvider", "fit_dip", "start_network", "beta_schedule", "cell_weights", "DEFAULTS", "PLAIN",
           "ADAM_ONLY"]

#: Default options of :func:`fit_dip` and the ``dip`` provider (frozen after tuning on a validation set;
#: see ``gravbench report dip``).
DEFAULTS = {
    "latent": 8,
    "channels": (32, 16, 8, 4),
    "upsample": "bilinear",
    "dropout": 0.0,
    "bounds": (-1500.0, 1500.0),
    "m_ref": 0.0,
    "start": "reference",
    "start_steps": 500,
    "start_lr": 1e-2,
    "start_tol": 1e-3,
    "reg": "l1",
    "tau": 30.0,
    "lr": 5e-3,
    "maxiter": 2000,
    "weighting": "depth",
    "power": 1.0,
    "weight_on": "gradient",
    "stop": True,
    "backtrack": 2.0,
    "keep_moments": True,
    "lr_decay": 1.0,
    "finish": "lbfgs",
    "switch": 200,
    "history": 20,
    "finish_reg": 100.0,
    "finish_stage": 50,
    "finish_double": True,
    "threads": 1,
}

#: The provider's behaviour before the recipe (random start, data misfit only, no weighting).
PLAIN = {
    "latent": 32,
    "channels": (64, 32, 16, 8),
    "upsample": "nearest",
    "bounds": (-1000.0, 1000.0),
    "start": "random",
    "tau": 0.0,
    "lr": 0.01,
    "maxiter": 2000,
    "weighting": "none",
    "backtrack": 0.0,
    "finish": "adam",
}

#: The recipe with Adam for the whole budget and Adam restarted on a backtrack (this provider's default before
#: the L-BFGS finish; ``gb.providers.get("dip", **ADAM_ONLY)``).
ADAM_ONLY = {"finish": "adam", "keep_moments": False}

_LAZY = {}


def _torch_parts():
    """torch, nn and the decoder class (built on first use, so importing this module does not import torch)."""
    if _LAZY:
        return _LAZY["torch"], _LAZY["DIPDecoder"]
    torch = require_torch()
    nn = torch.nn

    class DIPDecoder(nn.Module):
        """``z (B, latent) -> rho (B, nz, nx)`` in ``[lo, hi]`` kg/m^3 (see the module docstring)."""

        def __init__(self, latent, shape, channels, lo, hi, upsample="bilinear", dropout=0.0, slope=0.2):
            super().__init__()
            k = len(channels) - 1
            self.shape = (int(shape[0]), int(shape[1]))
            self.base = (max(1, math.ceil(self.shape[0] / 2 ** k)), max(1, math.ceil(self.shape[1] / 2 ** k)))
            self.channels = tuple(channels)
            self.slope = slope
            self.fc = nn.Linear(int(latent), channels[0] * self.base[0] * self.base[1])
            blocks = []
            for i in range(k):
                up = (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False) if upsample == "bilinear"
                      else nn.Upsample(scale_factor=2, mode="nearest"))
                blocks += [up, nn.Conv2d(channels[i], channels[i + 1], 3, padding=1), nn.LeakyReLU(slope)]
            if dropout > 0:
                blocks.append(nn.Dropout(float(dropout)))
            self.blocks = nn.Sequential(*blocks)
            self.out = nn.Conv2d(channels[-1], 1, 3, padding=1)
            self.lo, self.hi = float(lo), float(hi)
            self.gain = None  # optional (nz, nx) tensor multiplying the pre-sigmoid output (output weighting)

        def forward(self, z):
            h = nn.functional.leaky_relu(self.fc(z), self.slope)
            h = h.reshape(z.shape[0], self.channels[0], *self.base)
            h = self.out(self.blocks(h))[:, 0]
            oz, ox = (h.shape[-2] - self.shape[0]) // 2, (h.shape[-1] - self.shape[1]) // 2
            h = h[:, oz:oz + self.shape[0], ox:ox + self.shape[1]]
            if self.gain is not None:
                h = h * self.gain
            return self.lo + (self.hi - self.lo) * torch.sigmoid(h)

    class ScaleGrad(torch.autograd.Function):
        """Identity forward; multiplies the incoming gradient by ``w`` (the weighting of the data gradient)."""

        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(w)
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):
            (w,) = ctx.saved_tensors
            return grad * w, None

    _LAZY.update(torch=torch, DIPDecoder=DIPDecoder, ScaleGrad=ScaleGrad)
    return torch, DIPDecoder


def beta_schedule(step, tau):
    """The annealing weight ``beta = exp(-step / tau)`` of the reference term (``tau = 0``: ``beta = 0``).

    Parameters
    ----------
    step : int or array_like
        Adam step index, 0 for the first step.
    tau : float
        Decay constant, steps (>= 0).

    Examples
    --------
    >>> float(beta_schedule(0, 100.0)), round(float(beta_schedule(100, 100.0)), 6)
    (1.0, 0.367879)
    """
    step = np.asarray(step, dtype=np.float64)
    if tau == 0:
        return np.zeros_like(step)
    return np.exp(-step / float(tau))


def cell_weights(problem, weighting="depth", power=1.0, sigma=None):
    """Per-cell weights of the data gradient, mean 1, flat C order (``nz * nx``).

    Parameters
    ----------
    problem : gravbench.Problem
    weighting : {"depth", "sensitivity", "none"}
        ``"depth"``: ``(d + z0)^power`` with ``d`` the cell-centre depth below the
        highest station and ``z0`` half the top cell height, m (the inverse of
        :func:`gravbench.refiners._common.depth_weights`, Li & Oldenburg's
        ``(d + z0)^(-power/2)`` squared, i.e. the preconditioner of a depth-weighted
        model norm); ``"sensitivity"``:
        ``(sum_i (A_ij / sigma_i)^2)^(-power/2)``; ``"none"``: ones.
    power : float
        Exponent (>= 0).
    sigma : array_like, optional
        Noise std per datum, mGal (sensitivity weighting only).

    Returns
    -------
    ndarray, shape (nz * nx,)
    """
    if weighting not in ("depth", "sensitivity", "none"):
        raise ValueError(f"weighting must be 'depth', 'sensitivity' or 'none', got {weighting!r}")
    if not (np.isfinite(power) and power >= 0):
        raise ValueError(f"power must be a finite number >= 0, got {power!r}")
    grid = problem.grid
    if weighting == "none":
        return np.ones(problem.n_cells)
    if weighting == "depth":
        ze = np.asarray(grid.z_edges, dtype=np.float64)
        top = float(np.min(problem.survey.z))
        w = np.repeat(1.0 / layer_depth_weights(grid.z_centers, ze[1] - ze[0], top, float(power)), grid.nx)
    else:
        A = np.asarray(problem.sensitivity())
        s = np.ones(A.shape[0]) if sigma is None else np.broadcast_to(np.asarray(sigma, dtype=np.float64), A.shape[:1])
        w = np.sqrt(((A / s[:, None]) ** 2).sum(axis=0)) ** (-float(power))
    return w / w.mean()


def _check_options(o):
    """Validate the options of :func:`fit_dip`; returns a normalised copy."""
    o = dict(o)
    try:
        lo, hi = (float(b) for b in o["bounds"])
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be (lo, hi) kg/m^3, got {o['bounds']!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(f"bounds must be (lo, hi) with hi > lo, kg/m^3; got {o['bounds']!r}")
    o["bounds"] = (lo, hi)
    for k in ("latent", "maxiter", "history"):
        v = o[k]
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{k} must be a positive integer, got {v!r}")
        o[k] = int(v)
    for k in ("start_steps", "switch", "finish_stage", "threads"):
        v = o[k]
        if isinstance(v, bool) or int(v) != v or v < 0:
            raise ValueError(f"{k} must be an integer >= 0, got {v!r}")
        o[k] = int(v)
    for k in ("keep_moments", "finish_double"):
        if not isinstance(o[k], (bool, np.bool_)):
            raise ValueError(f"{k} must be True or False, got {o[k]!r}")
    ch = tuple(o["channels"])
    if len(ch) < 2 or any(int(c) != c or c < 1 for c in ch):
        raise ValueError(f"channels must hold at least two positive integers, got {o['channels']!r}")
    o["channels"] = tuple(int(c) for c in ch)
    for k in ("lr", "start_lr", "start_tol"):
        if not (np.isfinite(o[k]) and o[k] > 0):
            raise ValueError(f"{k} must be a finite number > 0, got {o[k]!r}")
        o[k] = float(o[k])
    if not (np.isfinite(o["finish_reg"]) and o["finish_reg"] >= 0):
        raise ValueError(f"finish_reg must be a finite number >= 0, got {o['finish_reg']!r}")
    if not (np.isfinite(o["tau"]) and o["tau"] >= 0):
        raise ValueError(f"tau must be a finite number >= 0 (steps), got {o['tau']!r}")
    if not (0.0 <= o["dropout"] < 1.0):
        raise ValueError(f"dropout must be in [0, 1), got {o['dropout']!r}")
    for k, allowed in (("upsample", ("bilinear", "nearest")), ("start", ("reference", "random")),
                       ("reg", ("l1", "l2")), ("finish", ("adam", "lbfgs")), ("weight_on", ("gradient", "output")),
                       ("weighting", ("depth", "sensitivity", "none"))):
        if o[k] not in allowed:
            raise ValueError(f"{k} must be one of {', '.join(map(repr, allowed))}, got {o[k]!r}")
    if not (o["backtrack"] == 0 or (np.isfinite(o["backtrack"]) and o["backtrack"] > 1)):
        raise ValueError(f"backtrack must be 0 (off) or a finite factor > 1, got {o['backtrack']!r}")
    if not (np.isfinite(o["lr_decay"]) and 0 < o["lr_decay"] <= 1):
        raise ValueError(f"lr_decay must be in (0, 1], got {o['lr_decay']!r}")
    if not (np.isfinite(o["power"]) and o["power"] >= 0):
        raise ValueError(f"power must be a finite number >= 0, got {o['power']!r}")
    return o


def _start(problem, o, seed, dev, sigma=None):
    """The network, its input and the start fit to ``m_ref``: ``(net, z, m_ref tensor, steps, max |f - m_ref|)``."""
    torch, DIPDecoder = _torch_parts()
    lo, hi = o["bounds"]
    mref = np.broadcast_to(np.asarray(o["m_ref"], dtype=np.float64), tuple(problem.shape))
    if not np.all(np.isfinite(mref)) or np.any(mref <= lo) or np.any(mref >= hi):
        raise ValueError(f"m_ref must be a scalar or ({problem.shape[0]}, {problem.shape[1]}) array strictly inside "
                         f"bounds ({lo}, {hi}) kg/m^3")
    torch.manual_seed(seed)
    net = DIPDecoder(o["latent"], problem.shape, o["channels"], lo, hi, o["upsample"], o["dropout"]).to(dev)
    if o["weight_on"] == "output" and o["weighting"] != "none":
        net.gain = torch.as_tensor(cell_weights(problem, o["weighting"], o["power"], sigma).reshape(problem.shape),
                                   dtype=torch.float32, device=dev)
    z = torch.randn(1, o["latent"], generator=torch.Generator().manual_seed(seed + 1)).to(dev)
    mref_t = torch.tensor(np.array(mref, dtype=np.float32), device=dev)[None]
    scale = 0.5 * (hi - lo)
    n_start = 0
    if o["start"] == "reference":
        opt0 = torch.optim.Adam(net.parameters(), lr=o["start_lr"])
        for n_start in range(o["start_steps"] + 1):
            out = net(z)
            dev_max = float((out.detach() - mref_t).abs().max()) / scale
            if dev_max <= o["start_tol"] or n_start == o["start_steps"]:
                break
            opt0.zero_grad(set_to_none=True)
            ((out - mref_t) / scale).pow(2).mean().backward()
            opt0.step()
    with torch.no_grad():
        net.eval()
        start_error = float((net(z) - mref_t).abs().max())
        net.train()
    return net, z, mref_t, n_start, start_error


def _adam_state(opt, params):
    """Copies of Adam's per-parameter state (step, first and second moments); empty before the first step."""
    return [{k: (v.clone() if hasattr(v, "clone") else v) for k, v in opt.state[q].items()} if q in opt.state else None
            for q in params]


def _set_adam_state(opt, params, state):
    """Put back a state saved by :func:`_adam_state`."""
    for q, st in zip(params, state):
        if st is None:
            opt.state.pop(q, None)
        else:
            opt.state[q] = {k: (v.clone() if hasattr(v, "clone") else v) for k, v in st.items()}


def start_network(problem, seed=0, device="cpu", **options):
    """The decoder after the start fit (step 1 of :func:`fit_dip`), for inspection and tests.

    Parameters
    ----------
    problem : gravbench.Problem
    seed : int
    device : str
    **options
        Keys of :data:`DEFAULTS` (``start``, ``start_steps``, ``start_lr``, ``start_tol``, ``m_ref``, network shape).

    Returns
    -------
    net : torch.nn.Module
        The decoder in eval mode; ``net(z)`` has shape ``(1, nz, nx)``, kg/m^3.
    z : torch.Tensor, shape (1, latent)
        Its fixed input.
    info : dict
        ``steps`` (Adam steps of the start fit) and ``error`` (``max |f(z) - m_ref|``, kg/m^3).
    """
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}; expected some of {sorted(DEFAULTS)}")
    o = _check_options({**DEFAULTS, **options})
    net, z, _, steps, err = _start(problem, o, int(seed), _device(device))
    return net.eval(), z, {"steps": steps, "error": err}


def fit_dip(problem, g, sigma=None, *, seed=0, device="cpu", layer=None, progress=None, **options):
    """Fit a deep-image-prior network to one data vector.

    Parameters
    ----------
    problem : gravbench.Problem
        Geometry (grid and stations).
    g : array_like, shape (n_data,)
        Observed gravity, mGal.
    sigma : float or array_like, optional
        Noise std, mGal (scalar or per datum). ``None``: unit weights, no
        discrepancy stop (only ``maxiter``).
    seed : int
        Seeds the network's initial weights and the input ``z`` (and dropout).
    device : str
        Torch device (``"cpu"``, ``"cuda"``, ...).
    layer : GravityLayer, optional
        A prebuilt torch forward layer for ``problem`` (reused across calls).
    progress : callable, optional
        ``progress(step, maxiter, chi2)`` after every Adam step of the fit.
    **options
        Any key of :data:`DEFAULTS`:

        latent : int
            Size of the input vector ``z ~ N(0, 1)`` (8).
        channels : sequence of int
            Decoder feature maps ((32, 16, 8, 4): three upsampling blocks).
        upsample : {"bilinear", "nearest"}
        dropout : float
            Dropout probability before the last convolution (0: none). The
            returned model and the stopping test use the network without dropout.
        bounds : (float, float)
            Density bounds ``(lo, hi)``, kg/m^3 ((-1500, 1500); symmetric about the zero reference).
        m_ref : float or array_like (nz, nx)
            Reference model, kg/m^3 (0), inside the bounds.
        start : {"reference", "random"}
            Fit the start weights to ``m_ref`` first, or keep the random init.
        start_steps, start_lr, start_tol
            At most ``start_steps`` Adam steps (lr ``start_lr``) on
            ``mean((f - m_ref)^2)``, stopping once ``max |f - m_ref| <=
            start_tol * (hi - lo) / 2``.
        reg : {"l1", "l2"}
            Norm of the reference term.
        tau : float
            Annealing constant of ``beta = exp(-step / tau)``, steps; 0 drops the
            reference term (data misfit only).
        lr : float
            Adam learning rate of the fit.
        maxiter : int
            Budget of Adam steps of the fit (each: one ``A`` and one ``A^T`` product).
        weighting : {"depth", "sensitivity", "none"}, power : float
            Weighting of the data gradient (:func:`cell_weights`).
        stop : bool
            Stop at the first iterate in the chi2 success band (needs ``sigma``).
        backtrack : float
            When chi2 exceeds ``backtrack`` times its best value so far (an Adam
            blow-up), return to the best weights and halve the learning rate (0: off).
        keep_moments : bool
            On a backtrack, put back Adam's moments saved at the best weights
            (True) or restart them from zero (False, the earlier behaviour: a fresh
            Adam's first steps are full-size in every weight and often blow up again).
        lr_decay : float
            Learning-rate factor reached at ``maxiter`` (exponential decay; 1: constant).
        weight_on : {"gradient", "output"}
            Apply the cell weights to the data gradient (step 3) or multiply the
            network's pre-sigmoid output map by them (a reparameterisation).
        finish : {"lbfgs", "adam"}
            After ``switch`` Adam steps, continue with L-BFGS on the same weights
            (step 5), or use Adam for the whole budget.
        switch : int
            Adam steps before the L-BFGS finish.
        history : int
            L-BFGS memory (pairs).
        finish_reg : float
            ``mu_0`` of the depth-weighted pull toward ``m_ref`` in the finish
            (in units of the reduced chi2; with ``sigma=None``, of the mean
            squared residual in mGal^2; 0: data misfit only).
        finish_stage : int
            L-BFGS evaluations per halving of ``mu`` (a stage also ends when the line
            search fails, i.e. at a minimum of the current loss).
        finish_double : bool
            Run the finish with float64 weights (float32 line searches stall).
        threads : int
            Torch intra-op threads during the fit (restored afterwards; 0: leave
            as is). One is fastest for this small network; note that numba's
            OpenMP layer resets torch's count to the core count after a parallel
            numba call, which made dip 2-3x slower in mixed runs.

    Returns
    -------
    dict
        ``rho`` (nz, nx) kg/m^3; ``chi2`` (reduced chi-squared of ``rho``, or the
        mean squared residual when ``sigma`` is None); ``history`` (chi2 before each
        Adam step, then of the returned iterate); ``beta`` (the schedule used);
        ``niter`` (iterations of the fit: Adam steps plus ``backtracks``, returns to
        the best weights with the step halved after chi2 rose above ``backtrack``
        times its best value, plus L-BFGS evaluations; ``len(history) == niter + 1``
        and ``niter <= maxiter``); ``start_steps`` (steps of the start
        fit) and ``start_error`` (``max |f - m_ref|`` after it, kg/m^3);
        ``converged`` (stopped in the success band); ``n_matvec`` / ``n_rmatvec``
        (operator applications); ``seconds``.

    Notes
    -----
    The loop is deterministic for a given seed, device and thread count.
    """
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}; expected some of {sorted(DEFAULTS)}")
    o = _check_options({**DEFAULTS, **options})
    torch, _ = _torch_parts()
    before = torch.get_num_threads()
    if o["threads"] and o["threads"] != before:
        torch.set_num_threads(o["threads"])
    try:
        return _fit(problem, g, sigma, seed, device, layer, progress, o)
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _fit(problem, g, sigma, seed, device, layer, progress, o):
    """The body of :func:`fit_dip` (options already checked)."""
    torch, _ = _torch_parts()
    ScaleGrad = _LAZY["ScaleGrad"]
    g = np.asarray(g, dtype=np.float64)
    if g.shape != (problem.n_data,):
        raise ValueError(f"g must have shape ({problem.n_data},), got {g.shape}")
    if sigma is None:
        w = np.ones_like(g)
    else:
        try:
            w = 1.0 / np.broadcast_to(np.asarray(sigma, dtype=np.float64), g.shape)
        except ValueError:
            raise ValueError(f"sigma must be a scalar or have shape {g.shape}, got shape {np.shape(sigma)}") from None
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError("sigma must be finite and > 0 (mGal)")
    lo, hi = o["bounds"]
    dev = _device(device)
    t0 = time.perf_counter()
    seed = int(seed)
    if layer is None:
        from ..forward.torch import GravityLayer

        layer = GravityLayer(problem, dtype=torch.float64, device=dev)
    f64 = torch.float64
    gt = torch.as_tensor(g, dtype=f64, device=dev)
    wt = torch.as_tensor(w, dtype=f64, device=dev)
    scale = 0.5 * (hi - lo)
    cw = torch.as_tensor(cell_weights(problem, o["weighting"], o["power"], None if sigma is None else 1.0 / w),
                         dtype=torch.float32, device=dev).reshape(1, *problem.shape)

    # 1. start weights: f(z) ~= m_ref, no operator products
    net, z, mref_t, n_start, start_error = _start(problem, o, seed, dev, None if sigma is None else 1.0 / w)

    # 2. the fit: (1 - beta) chi2 / chi2_ref + beta phi_m
    N = g.size
    use_stop = bool(o["stop"]) and sigma is not None
    betas = beta_schedule(np.arange(o["maxiter"]), o["tau"])
    with torch.no_grad():
        chi2_ref = float((((layer(mref_t.to(f64))[0] - gt) * wt) ** 2).mean())
    chi2_ref = max(chi2_ref, 1e-30)
    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=o["lr"])
    hist = []
    best = (math.inf, None)
    converged = False
    n_mv, n_rmv = 1, 0
    it = 0
    dropout = o["dropout"] > 0
    lr_factor, n_back, snapshot = 1.0, 0, None

    def chi2_of(rho):
        return ((layer(rho.to(f64))[0] - gt) * wt).pow(2).mean()

    n_adam = min(o["maxiter"], o["switch"]) if o["finish"] == "lbfgs" else o["maxiter"]
    for it in range(n_adam):
        beta = float(betas[it])
        rho = net(z)
        if dropout:  # the stopping test and the returned model use the network without dropout
            with torch.no_grad():
                net.eval()
                rho_eval = net(z)
                net.train()
                c_eval = float(chi2_of(rho_eval))
            n_mv += 1
        rho_d = ScaleGrad.apply(rho, cw) if o["weighting"] != "none" and o["weight_on"] == "gradient" else rho
        chi2 = chi2_of(rho_d)
        n_mv += 1
        c = c_eval if dropout else float(chi2.detach())
        hist.append(c)
        if c < best[0]:
            best = (c, (rho_eval if dropout else rho.detach())[0].clone())
            if o["backtrack"]:
                snapshot = ([q.detach().clone() for q in params],
                            _adam_state(opt, params) if o["keep_moments"] else None)
        if use_stop and is_success(c, N):
            converged = True
            break
        if o["backtrack"] and c > o["backtrack"] * best[0]:
            # a blow-up: return to the best weights (and Adam's moments there), halve the step
            with torch.no_grad():
                for q, q0 in zip(params, snapshot[0]):
                    q.copy_(q0)
            lr_factor *= 0.5
            n_back += 1
            if snapshot[1] is not None:
                _set_adam_state(opt, params, snapshot[1])
            else:
                opt = torch.optim.Adam(params, lr=o["lr"] * lr_factor)
            if progress is not None:
                progress(it + 1, o["maxiter"], c)
            continue
        for grp in opt.param_groups:
            grp["lr"] = o["lr"] * lr_factor * o["lr_decay"] ** (it / o["maxiter"])
        d = (rho - mref_t) / scale
        phi_m = d.abs().mean() if o["reg"] == "l1" else d.pow(2).mean()
        loss = (1.0 - beta) * chi2 / chi2_ref + beta * phi_m if beta > 0 else chi2 / chi2_ref
        opt.zero_grad(set_to_none=True)
        loss.backward()
        n_rmv += 1
        opt.step()
        if progress is not None:
            progress(it + 1, o["maxiter"], c)
    n_steps = it if converged else n_adam
    # the first L-BFGS evaluation is the last Adam iterate's (where the Adam-only loop evaluates its final model)
    n_lbfgs = o["maxiter"] - n_adam + 1 if not converged and n_adam < o["maxiter"] else 0
    if n_lbfgs > 0:
        # the finish: L-BFGS on the network weights from the last Adam iterate, on chi2 + mu_k * (depth-weighted
        # distance to m_ref); every evaluation is a model f(z) whose chi2 is recorded, the first in the band ends
        # the fit. No dropout here (eval mode): the line search needs a deterministic loss.
        net.eval()
        if o["finish_double"]:  # float64 weights: L-BFGS's line search needs a loss resolved below float32's eps
            net.double()
            if net.gain is not None:
                net.gain = net.gain.double()
            z, mref_t = z.double(), mref_t.double()
        count = [0]

        class _Stop(Exception):
            pass

        mu = [0.0]
        # depth-weighted L2 pull toward m_ref for the finish: mean(((rho - m_ref) / s)^2 / w), w the gradient weights
        inv_w = (1.0 / cw).reshape(1, *problem.shape).to(mref_t.dtype)

        def closure():
            if count[0] >= n_lbfgs:
                raise _Stop
            nonlocal best, converged, n_mv, n_rmv
            for q in params:
                q.grad = None
            rho = net(z)
            chi2 = chi2_of(rho)
            c = float(chi2.detach())
            count[0] += 1
            n_mv += 1
            hist.append(c)
            if c < best[0]:
                best = (c, rho.detach()[0].clone())
            if progress is not None:
                progress(min(n_adam + count[0], o["maxiter"]), o["maxiter"], c)
            if use_stop and is_success(c, N):
                converged = True
                raise _Stop
            loss = chi2
            if mu[0] > 0:
                loss = chi2 + mu[0] * (((rho - mref_t) / scale).pow(2) * inv_w).mean()
            loss.backward()
            n_rmv += 1
            return loss

        stalls, stage = 0, 0
        while count[0] < n_lbfgs and stalls < (2 if o["finish_reg"] == 0 else 8):
            # L-BFGS ends a step early when its line search fails (at a minimum of the current loss, or after a
            # first step into the flat, saturated part of the sigmoid): restart it with an empty history. With
            # finish_reg > 0 each stage (finish_stage evaluations or an early end) halves mu. Restarts in a row
            # that end early without lowering chi2 (2 without the pull, 8 with it) end the fit.
            mu[0] = o["finish_reg"] * 0.5 ** stage if o["finish_reg"] > 0 else 0.0
            before, n0 = best[0], count[0]
            left = n_lbfgs - count[0]
            if mu[0] > 0:
                left = min(left, o["finish_stage"])
            lb = torch.optim.LBFGS(params, lr=1.0, max_iter=left, max_eval=left, history_size=o["history"],
                                   tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
            try:
                lb.step(closure)
            except _Stop:
                break
            stage += 1
            early = count[0] - n0 < left
            stalls = stalls + 1 if early and best[0] >= before * (1.0 - 1e-6) else 0
        n_steps = n_adam + count[0] - 1  # one history entry per evaluation: len(history) == niter + 1
    elif not converged:
        with torch.no_grad():
            net.eval()
            rho = net(z)
            c = float(chi2_of(rho))
        n_mv += 1
        hist.append(c)
        if c < best[0]:
            best = (c, rho[0].clone())
    return {"rho": best[1].double().cpu().numpy(), "chi2": best[0], "history": np.asarray(hist),
            "beta": betas[:max(min(n_steps, n_adam), 1)], "niter": n_steps, "start_steps": n_start,
            "start_error": start_error,
            "converged": converged, "backtracks": n_back, "n_matvec": n_mv, "n_rmatvec": n_rmv,
            "seconds": time.perf_counter() - t0}


class DIPProvider(Provider):
    """Deep image prior (registered as ``dip``): an untrained decoder fitted to the data.

    Parameters
    ----------
    seed : int
        Default seed of the network and its input (a call's ``seed`` overrides it).
    device : str
        Torch device.
    **options
        Options of :func:`fit_dip` (keys of :data:`DEFAULTS`); ``gb.providers.get("dip", **PLAIN)``
        gives the pre-recipe behaviour.

    Notes
    -----
    Works on any grid (no weights). Each call costs at most ``start_steps``
    network passes without operator products plus ``maxiter`` Adam steps and
    L-BFGS evaluations, each one ``A`` and one ``A^T`` product.
    """

    name = "dip"
    learned = False

    def __init__(self, *, seed=0, device="cpu", progress=None, **options):
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown dip option(s) {sorted(unknown)}; expected some of {sorted(DEFAULTS)}")
        self.opts = _check_options({**DEFAULTS, **options})
        _device(device)
        self.device = device
        self.seed = seed
        self.progress = progress
        self._layer = None
        self.last = None

    @property
    def cost(self):
        o = self.opts
        steps = ("Adam steps" if o["finish"] == "adam" or o["switch"] >= o["maxiter"]
                 else f"Adam steps / L-BFGS evaluations (L-BFGS after {o['switch']})")
        return (f"<= {o['start_steps']} start steps (no operator products) + <= {o['maxiter']} "
                f"{steps} (1 A + 1 A^T each)")

    @property
    def info(self):
        return ProviderInfo(name="dip", grids=(), cost=self.cost, learned=False,
                            extra={**self.opts, "device": str(self.device)})

    def _get_layer(self, problem):
        if self._layer is None or self._layer[0] is not problem:
            import torch

            from ..forward.torch import GravityLayer

            self._layer = (problem, GravityLayer(problem, dtype=torch.float64, device=self.device))
        return self._layer[1]

    def _single(self, g, problem, sigma, seed):
        seed = self.seed if seed is None else seed
        out = fit_dip(problem, g, sigma, seed=0 if seed is None else int(seed), device=self.device,
                      layer=self._get_layer(problem), progress=self.progress, **self.opts)
        self.last = {k: v for k, v in out.items() if k != "rho"}
        return out["rho"]
