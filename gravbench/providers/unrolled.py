"""The ``unrolled`` provider: a learned gradient scheme with the gravity operator inside the network.

``K`` stages; stage ``k`` sees the current model ``x_k``, the data-misfit gradient
``A^T W (A x_k - g)`` (``W = diag(1 / peak_c^2)``, the per-component peak of ``|g|``: the
noise model's sigma for a unit level, so this is ``A^T (A x - g) / sigma^2`` up to the factor
``level^2``), the same gradient preconditioned by depth weights (``(z / dz)^2``: the inverse
square of Li & Oldenburg's gravity depth weighting with beta = 2), the cell depth and the
noise level, and returns an update (a small CNN, residual)::

    x_{k+1} = x_k - a_k grad_k / L - b_k pgrad_k / L_p + rho_scale * cnn_k([x_k, grad_k / L, pgrad_k / L_p, depth, level])

``L`` and ``L_p`` are the largest eigenvalues of ``A^T W A`` and of its preconditioned form, from
20 power iterations per data vector (no gradient through them), so the steps are scale-free.
``A`` and ``A^T`` run through :class:`gravbench.forward.torch.GravityLayer` (dense float32).
``x_0 = 0``; ``a_k``, ``b_k`` start at 1 and are learned with the CNNs (whose last layer starts at 0).

Training (``python -m gravbench.providers.unrolled train``): the ``paper-50`` training models, with
a fresh noise draw every epoch from torch's generator (level 0 with probability ``p_clean``, else
uniform in (0, ``noise_max``]; ``sigma = level * peak |g_c|``), loss the squared relative model
error (as ``unet``), Adam with cosine decay, :func:`gravbench.providers._train.fit` with a
checkpoint chain (one checkpoint per epoch under ``<cache>/checkpoints/unrolled-<n>``; the same
command resumes it bit for bit). No weights are shipped yet: the provider needs ``weights=``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ._torchutil import device as _torch_device
from ._torchutil import require_torch, seed_all
from ._train import checkpoints_dir, default_out, fit, load_state, load_weights, resolve_weights, save_weights
from .._cmdline import process_command
from .base import NoWeightsError, Provider, ProviderInfo
from .unet import _resolve, noise_levels, training_rows

__all__ = ["build_model", "train", "UnrolledProvider", "DEFAULT_STAGES", "DEFAULT_WIDTH"]

DEFAULT_STAGES = 6
DEFAULT_WIDTH = 24
LEVEL_SCALE = 0.05
VAL_NOISE_SEED = 9_999
POWER_ITERS = 20


def build_model(problem, *, stages=DEFAULT_STAGES, width=DEFAULT_WIDTH, rho_scale=1.0):
    """The unrolled network: ``net(g, level) -> rho`` ``(B, nz, nx)`` kg/m^3 for data ``g`` ``(B, n_data)`` mGal."""
    torch = require_torch()
    from ..forward.torch import GravityLayer

    nn = torch.nn
    stages, width = int(stages), int(width)
    if stages < 1 or width < 1:
        raise ValueError(f"stages and width must be positive integers, got {stages}, {width}")
    nz, nx = problem.shape
    nc = len(problem.survey.components)

    class Unrolled(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = GravityLayer(problem, engine="dense", dtype=torch.float32)
            self.layer._non_persistent_buffers_set.add("A")  # rebuilt from the problem: not in weights/checkpoints
            self.register_buffer("rho_scale", torch.tensor(float(rho_scale)))
            zc = np.asarray(problem.grid.z_centers, dtype=np.float64)
            z0 = float(np.min(np.diff(problem.grid.z_edges)))
            dep = zc / float(problem.grid.z_edges[-1] - problem.grid.z_edges[0])
            self.register_buffer("depth", torch.as_tensor(np.repeat(dep[:, None], nx, 1), dtype=torch.float32))
            prec = (zc / z0) ** 2
            self.register_buffer("prec", torch.as_tensor(np.repeat(prec[:, None] / prec.max(), nx, 1).reshape(-1),
                                                         dtype=torch.float32))
            self.a = nn.Parameter(torch.ones(stages))
            self.b = nn.Parameter(torch.ones(stages))
            self.cnns = nn.ModuleList()
            for _ in range(stages):
                c = nn.Sequential(nn.Conv2d(5, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(width, 1, 3, padding=1))
                nn.init.zeros_(c[-1].weight)
                nn.init.zeros_(c[-1].bias)
                self.cnns.append(c)

        def _w(self, g):
            m = g.shape[1] // nc
            peaks = g.abs().reshape(g.shape[0], nc, m).amax(2).clamp_min(1e-12)
            return (1.0 / peaks ** 2).repeat_interleave(m, 1)

        @torch.no_grad()
        def _lmax(self, w, p=None):
            v = torch.ones(w.shape[0], nz * nx, dtype=w.dtype, device=w.device)
            lam = torch.ones(w.shape[0], dtype=w.dtype, device=w.device)
            for _ in range(POWER_ITERS):
                u = v if p is None else v * p.sqrt()
                h = self.layer.adjoint(w * self.layer(u))
                h = h if p is None else h * p.sqrt()
                lam = torch.linalg.vector_norm(h, dim=1).clamp_min(1e-30)
                v = h / lam[:, None]
            return lam

        def forward(self, g, level):
            g = g.float()
            B = g.shape[0]
            w = self._w(g)
            L = self._lmax(w)[:, None]
            Lp = self._lmax(w, self.prec)[:, None]
            lv = (level.float() / LEVEL_SCALE)[:, None, None].expand(B, nz, nx)
            dep = self.depth.expand(B, -1, -1)
            rs = self.rho_scale
            x = torch.zeros(B, nz * nx, dtype=g.dtype, device=g.device)
            for k, cnn in enumerate(self.cnns):
                grad = self.layer.adjoint(w * (self.layer(x) - g)) / L
                pgrad = grad * L * self.prec / Lp
                inp = torch.stack([(x / rs).reshape(B, nz, nx), (grad / rs).reshape(B, nz, nx),
                                   (pgrad / rs).reshape(B, nz, nx), dep, lv], 1)
                x = x - self.a[k] * grad - self.b[k] * pgrad + rs * cnn(inp).reshape(B, -1)
            return x.reshape(B, nz, nx)

    return Unrolled()


def _levels(G, problem, sigma):
    return noise_levels(G, problem, sigma).astype(np.float32)


def train(dataset="paper-50", *, epochs=40, batch_size=32, lr=2e-3, seed=0, out=None, resume=True, device="cpu",
          progress=True, stages=DEFAULT_STAGES, width=DEFAULT_WIDTH, p_clean=0.2, noise_max=0.05, max_train=None,
          max_val=None, patience=8, stop_after=None, threads=None, checkpoint_dir=None, resume_from=None,
          command=None, val=None, on_epoch=None):
    """Train the unrolled network with a checkpoint chain; write weights + manifest at the end (or at ``stop_after``).

    ``resume=True`` (the default) continues the chain in ``checkpoint_dir`` (default
    ``<cache>/checkpoints/unrolled-<n>``) when there is one, so the same command resumes an interrupted run.
    Returns the manifest written beside the weights.
    """
    torch = require_torch()
    if threads:
        torch.set_num_threads(int(threads))
    seed_all(seed)
    tr = _resolve(dataset, "train", val)
    va = _resolve(dataset, "val", val)
    prob = tr.problem
    nz, nx = prob.shape
    n_tr = len(tr.rho) if max_train is None else min(int(max_train), len(tr.rho))
    n_va = len(va.rho) if max_val is None else min(int(max_val), len(va.rho))
    rho_tr = np.asarray(tr.rho[:n_tr], dtype=np.float32)
    rho_scale = float(np.sqrt(np.mean(rho_tr.astype(np.float64) ** 2)))
    if not rho_scale > 0:
        raise ValueError("training models have no density contrast (all zero)")
    floor = 0.05 * float(rho_tr.max() - rho_tr.min()) / rho_scale
    gc = torch.as_tensor(np.asarray(tr.g_clean[:n_tr], dtype=np.float32))
    m = gc.shape[1] // len(prob.survey.components)
    nc = len(prob.survey.components)
    unit = gc.abs().reshape(n_tr, nc, m).amax(2).repeat_interleave(m, 1)
    Gv, Sv, _ = training_rows(np.asarray(va.g_clean[:n_va], np.float64), np.asarray(va.index[:n_va]), prob,
                              VAL_NOISE_SEED, p_clean=p_clean, noise_max=noise_max)
    Lv = _levels(Gv, prob, np.where(np.isfinite(Sv), Sv, np.nan))
    model = build_model(prob, stages=stages, width=width, rho_scale=rho_scale)

    def loss_fn(net, g0, u, rho):
        B = g0.shape[0]
        r = torch.rand(B, 2)  # torch's global generator: its state is in every checkpoint
        lvl = torch.where(r[:, 0] < p_clean, torch.zeros(B), noise_max * (1.0 - r[:, 1]))
        g = g0 + lvl[:, None] * u * torch.randn_like(g0)
        d = ((net(g, lvl) - rho) / rho_scale).flatten(1)
        den = (rho / rho_scale).flatten(1).pow(2).mean(1).clamp_min(floor ** 2)
        return torch.mean(d.pow(2).mean(1) / den)

    def val_fn(net, g, lv, rho):
        e = (torch.linalg.vector_norm((net(g, lv) - rho).flatten(1), dim=1)
             / torch.linalg.vector_norm(rho.flatten(1), dim=1).clamp_min(1e-30))
        return e.mean()

    tag = f"{nx}" if nx == nz else f"{nz}x{nx}"
    config = {"stages": int(stages), "width": int(width), "p_clean": float(p_clean), "noise_max": float(noise_max),
              "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr), "seed": int(seed),
              "train_count": int(n_tr), "val_count": int(n_va), "dataset": str(dataset), "patience": int(patience)}
    cdir = Path(checkpoint_dir) if checkpoint_dir else checkpoints_dir() / f"unrolled-{tag}"
    hist = fit(model, (gc, unit, torch.as_tensor(rho_tr)),
               (torch.as_tensor(Gv, dtype=torch.float32), torch.as_tensor(Lv),
                torch.as_tensor(np.asarray(va.rho[:n_va], np.float32))),
               loss_fn=loss_fn, val_fn=val_fn, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
               seed=int(seed), device=device, progress=progress, patience=int(patience), stop_after=stop_after,
               description=f"unrolled-{tag}", checkpoint_dir=cdir, chain_key=config, resume=bool(resume),
               resume_from=resume_from, on_epoch=on_epoch)
    chain = json.loads((cdir / "chain.json").read_text())
    manifest = {"model": "unrolled", "n": int(nx) if nx == nz else None, "shape": [int(nz), int(nx)],
                "problem": prob.to_dict(), "config": config, "normalisation": {"rho_scale": rho_scale},
                "command": command or process_command(),
                "training": {k: hist[k] for k in ("best_epoch", "best_val", "epochs_run", "stopped")},
                "checkpoint_chain": {"dir": str(cdir), "chain": chain["chain"]},
                "n_params": int(sum(p.numel() for p in model.parameters()))}
    model.eval().cpu()
    return save_weights(model.state_dict(), Path(out) if out else default_out("unrolled", (nz, nx)), manifest, half=False)


class UnrolledProvider(Provider):
    """Learned gradient scheme (``K`` CNN stages, each seeing ``A^T W (A x - g)``); needs ``weights=``."""

    name = "unrolled"
    cost = "K x (2 dense A products + 1 small CNN) + 2 x 20 power-iteration products per data vector"
    learned = True
    components = ("gx", "gz")

    def __init__(self, weights=None, device="cpu"):
        self._device = _torch_device(device)
        self._weights = resolve_weights(weights, "unrolled") if weights is not None else None
        self._nets = {}

    def grids(self):
        if self._weights is None:
            return ()
        return (tuple(json.loads(self._weights.with_suffix(".json").read_text())["shape"]),)

    @property
    def info(self):
        return ProviderInfo(name=self.name, grids=self.grids(), cost=self.cost, learned=True,
                            extra={"weights": str(self._weights) if self._weights else "none shipped"})

    def _net(self, problem):
        if self._weights is None:
            raise NoWeightsError("the unrolled provider ships no weights yet; train them with: python -m "
                                 "gravbench.providers.unrolled train --dataset paper-50, then pass weights=PATH")
        key = str(self._weights)
        if key not in self._nets:
            sd, man = load_weights(self._weights)
            if man.get("problem") != problem.to_dict():
                raise NoWeightsError(f"the unrolled weights {self._weights.name} were trained for another problem; "
                                     f"this one is: {problem.describe()}")
            c = man["config"]
            net = build_model(problem, stages=c["stages"], width=c["width"],
                              rho_scale=man["normalisation"]["rho_scale"])
            load_state(net, sd, self._weights, man)
            self._nets[key] = net.eval().to(self._device)
        return self._nets[key]

    def _batch(self, G, problem, sigma, seed):
        torch = require_torch()
        net = self._net(problem)
        lv = _levels(G, problem, sigma)
        out = []
        with torch.no_grad():
            for i in range(0, G.shape[0], 256):
                out.append(net(torch.as_tensor(G[i:i + 256], dtype=torch.float32, device=self._device),
                               torch.as_tensor(lv[i:i + 256], device=self._device)).cpu().numpy())
        return np.concatenate(out, 0).astype(np.float64)


def _main(argv):
    import argparse

    ap = argparse.ArgumentParser(prog="python -m gravbench.providers.unrolled",
                                 description="train the unrolled provider (resumes its checkpoint chain)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--dataset", default="paper-50")
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--stages", type=int, default=DEFAULT_STAGES)
    t.add_argument("--width", type=int, default=DEFAULT_WIDTH)
    t.add_argument("--max-train", type=int, default=None)
    t.add_argument("--max-val", type=int, default=None)
    t.add_argument("--stop-after", type=int, default=None)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--checkpoint-dir", default=None)
    t.add_argument("--out", default=None)
    t.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    man = train(a.dataset, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed, stages=a.stages,
                width=a.width, max_train=a.max_train, max_val=a.max_val, stop_after=a.stop_after, threads=a.threads,
                checkpoint_dir=a.checkpoint_dir, out=a.out, progress=not a.no_progress,
                on_epoch=lambda h: print(json.dumps(h), flush=True))
    print(json.dumps({k: man[k] for k in ("file", "sha256", "training", "n_params")}, indent=1))


if __name__ == "__main__":  # pragma: no cover
    _main(sys.argv[1:])
