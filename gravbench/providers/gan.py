"""Generative adversarial network (GAN) generator of density models, and its training.

The generator is the VAE's :class:`~gravbench.providers.vae.ConvDecoder`
(``z ~ N(0, I)``, ``latent=16``, ``channels=(32, 16, 8, 4)`` by default,
sigmoid output scaled to the training set's density range). The
discriminator mirrors it (:class:`~gravbench.providers.vae.ConvEncoder`
with spectral normalisation, one logit out).

Training: the non-saturating GAN loss (Goodfellow et al. 2014) with Adam
(``lr``, betas (0.5, 0.999)), one discriminator step per generator step.
Model selection: after each epoch, ``z`` is fitted by Adam to a fixed set of
validation models (projection, ``proj_steps`` steps) and the epoch with the
lowest mean relative model error ``||G(z*) - rho|| / ||rho||`` is kept -- the
quantity latent search depends on (can the generator represent unseen models?).

This module imports torch at import time; it is imported lazily.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import _train
from ._torchutil import device as _device
from .vae import ConvDecoder, ConvEncoder, _bounds, _check_options, manifest_head, model_config, splits, weights_path

__all__ = ["Generator", "Discriminator", "DEFAULTS", "train", "build", "project"]

#: Default architecture options (``train``'s ``**model_options``).
DEFAULTS = {"latent": 16, "channels": (32, 16, 8, 4), "proj_steps": 100, "proj_models": 32}


class Generator(ConvDecoder):
    """The GAN generator: a :class:`ConvDecoder`."""


class Discriminator(nn.Module):
    """``rho in [0, 1] (B, nz, nx) -> logit (B,)`` with spectral-normalised layers."""

    def __init__(self, shape, channels=(32, 16, 8, 4)):
        super().__init__()
        self.net = ConvEncoder(shape, channels, out=1, spectral=True)

    def forward(self, x01):
        return self.net(x01)[:, 0]


def build(config):
    """The :class:`Generator` described by a manifest's ``config``."""
    return Generator(config["latent"], tuple(config["shape"]), tuple(config["channels"]),
                     lo=config["lo"], hi=config["hi"])


def project(gen, target01, steps=150, lr=0.05, seed=0):
    """Fit ``z`` so that ``gen.unit(z)`` matches ``target01`` (B, nz, nx) in least squares.

    Returns ``(z, rel)``: the latent vectors and the relative error per model
    (on the [0, 1] scale). Adam from ``z = 0``; ``steps`` iterations.
    """
    gen.eval()
    z = torch.zeros(target01.shape[0], gen.latent, requires_grad=True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(int(steps)):
        opt.zero_grad(set_to_none=True)
        loss = ((gen.unit(z) - target01) ** 2).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        rel = (gen.unit(z) - target01).flatten(1).norm(dim=1) / target01.flatten(1).norm(dim=1).clamp_min(1e-12)
    return z.detach(), rel


def train(dataset="paper-50", *, epochs=20, batch_size=64, lr=2e-4, seed=0, out=None, resume=False,
          device="cpu", progress=True, max_train=None, command=None, **model_options):
    """Train the GAN on a data set's density models and save the generator + manifest.

    Parameters
    ----------
    dataset : str, path, Dataset, array or dict
        Training data (see :func:`gravbench.providers.vae.training_arrays`).
    epochs, batch_size : int
        Passes over the training set; models per step.
    lr : float
        Adam learning rate of both networks (betas (0.5, 0.999)).
    seed : int
        Seeds weights, batch order and latent draws.
    out : path, optional
        Generator weights (``.pt``); default ``<cache>/weights/gan-{n}.pt`` (the user's
        cache; the shipped weights are only replaced when ``out`` points at them).
        A checkpoint ``out + '.ckpt'`` is written after every epoch.
    resume : bool
        Continue from that checkpoint.
    device : str
        Torch device.
    progress : bool
        Rich progress bar.
    max_train : int, optional
        Use only the first ``max_train`` training models.
    command : str, optional
        Command line recorded in the manifest.
    **model_options
        ``latent`` (16), ``channels`` ((32, 16, 8, 4)), ``proj_steps`` (100),
        ``proj_models`` (32): the validation projection used for model selection.

    Returns
    -------
    dict
        The manifest (written as JSON beside the weights).
    """
    opts = _check_options(model_options, DEFAULTS)
    for k in ("epochs", "batch_size"):
        v = locals()[k]
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{k} must be a positive integer, got {v!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    dev = _device(device)
    rho_tr, rho_va, name = splits(dataset)
    if max_train is not None:
        rho_tr = rho_tr[:int(max_train)]
    shape = rho_tr.shape[1:]
    lo, hi = _bounds(rho_tr)
    x_tr = torch.as_tensor((rho_tr - lo) / (hi - lo), dtype=torch.float32)
    x_va = torch.as_tensor((rho_va[:opts["proj_models"]] - lo) / (hi - lo), dtype=torch.float32)
    torch.manual_seed(int(seed))
    G = Generator(opts["latent"], shape, opts["channels"], lo=lo, hi=hi).to(dev)
    D = Discriminator(shape, opts["channels"]).to(dev)
    optG = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    optD = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    out = Path(out) if out is not None else _train.default_out("gan", shape)  # the user's cache, never the package
    ckpt = out.with_name(out.name + ".ckpt")
    state = {"epoch": 0, "best_val": float("inf"), "best_epoch": -1, "history": [], "best_state": None}
    if resume:
        if not ckpt.exists():
            raise ValueError(f"resume=True but the checkpoint {ckpt} does not exist")
        saved = torch.load(ckpt, map_location=dev, weights_only=True)
        G.load_state_dict(saved["G"])
        D.load_state_dict(saved["D"])
        optG.load_state_dict(saved["optG"])
        optD.load_state_dict(saved["optD"])
        for k in state:
            state[k] = saved[k]
        state["epoch"] = int(state["epoch"])
    bce = nn.functional.binary_cross_entropy_with_logits
    n = x_tr.shape[0]
    nb = math.ceil(n / batch_size)
    t_start = time.perf_counter()
    elapsed0 = sum(h["seconds"] for h in state["history"])
    with _train._progress(progress, "gan", epochs) as prog:
        task = prog.add_task("gan", total=epochs, completed=state["epoch"], status="") if prog else None
        while state["epoch"] < epochs:
            ep = state["epoch"]
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(int(seed) * 1000003 + ep)
            perm = torch.randperm(n, generator=gen)
            G.train()
            D.train()
            ld = lg = 0.0
            for j in range(nb):
                real = x_tr[perm[j * batch_size:(j + 1) * batch_size]].to(dev)
                b = real.shape[0]
                z = torch.randn(b, G.latent, generator=gen).to(dev)
                fake = G.unit(z)
                optD.zero_grad(set_to_none=True)
                lossD = bce(D(real), torch.ones(b, device=dev)) + bce(D(fake.detach()), torch.zeros(b, device=dev))
                lossD.backward()
                optD.step()
                optG.zero_grad(set_to_none=True)
                lossG = bce(D(fake), torch.ones(b, device=dev))
                lossG.backward()
                optG.step()
                if not (torch.isfinite(lossD) and torch.isfinite(lossG)):
                    raise FloatingPointError(f"GAN loss became non-finite at epoch {ep}; lower lr")
                ld += float(lossD.detach()) * b
                lg += float(lossG.detach()) * b
            _, rel = project(G, x_va.to(dev), steps=opts["proj_steps"], seed=seed)
            v = float(rel.mean())
            sec = time.perf_counter() - t0
            state["history"].append({"epoch": ep, "loss_D": ld / n, "loss_G": lg / n, "val_proj_rel": v, "seconds": sec})
            if v < state["best_val"]:
                state["best_val"], state["best_epoch"] = v, ep
                state["best_state"] = {k: t.detach().cpu().clone() for k, t in G.state_dict().items()}
            state["epoch"] = ep + 1
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_name(ckpt.name + ".tmp")
            torch.save({"G": G.state_dict(), "D": D.state_dict(), "optG": optG.state_dict(),
                        "optD": optD.state_dict(), **state}, tmp)
            os.replace(tmp, ckpt)
            if prog:
                prog.update(task, completed=state["epoch"],
                            status=f"D {ld / n:.3f}  G {lg / n:.3f}  val proj {v:.4f}  best {state['best_val']:.4f}@{state['best_epoch']}")
    G.load_state_dict(state["best_state"])
    G.eval().cpu()
    manifest = {
        **manifest_head("gan", name, dataset, epochs, batch_size, lr, seed, opts, DEFAULTS, max_train, command,
                        rho_tr.shape[0], x_va.shape[0]),
        "config": model_config("gan", shape, lo, hi, {k: opts[k] for k in ("latent", "channels")}),
        "metrics": {"val_projection_rel_error_mean": state["best_val"],
                    "note": f"Adam projection of z onto {int(x_va.shape[0])} validation models, {opts['proj_steps']} steps, [0,1] scale",
                    "best_epoch": int(state["best_epoch"]), "epochs_run": int(state["epoch"]),
                    "train_seconds": round(elapsed0 + time.perf_counter() - t_start, 1)},
        "history": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in h.items()} for h in state["history"]],
        "trained": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    return _train.save_weights(G.state_dict(), out, manifest)
