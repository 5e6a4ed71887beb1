"""Variational autoencoder (VAE) generator of density models, and its training.

The decoder ``G(z)`` maps a latent vector ``z`` (``latent`` numbers, prior
``N(0, I)``) to a density model on an ``(nz, nx)`` grid; latent search
(:mod:`gravbench.providers.latent`) fits ``z`` to observed gravity. The same
decoder class (:class:`ConvDecoder`) is the GAN's generator
(:mod:`gravbench.providers.gan`) and the deep image prior's network
(:mod:`gravbench.providers.dip`).

Architecture (defaults for ``paper-50``)
---------------------------------------
Decoder: ``Linear(latent -> c0 * s_z * s_x)`` with ``s = ceil(n / 2^k)``, then
``k`` blocks of [nearest upsample x2, 3x3 conv, LeakyReLU(0.2)], a 3x3 conv to
one channel, a centre crop to ``(nz, nx)`` and ``lo + (hi - lo) * sigmoid``
(``lo``, ``hi``: the training set's density range, kg/m^3). Defaults:
``latent=16``, ``channels=(32, 16, 8, 4)`` (``k = 3``: 7 -> 14 -> 28 -> 56,
cropped to 50). Encoder: the mirror image (pad to ``2^k s``, stride-2 3x3
convs, linear to the mean and log-variance).

Loss: sum of squared errors on densities scaled to [0, 1] plus ``beta`` times
the KL divergence to ``N(0, I)`` (``beta=1``), averaged over the batch.

This module imports torch at import time; it is only imported lazily (by the
``vae`` provider or ``gravbench train vae``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import _train
from .. import data
from .._cmdline import command_line

__all__ = ["ConvDecoder", "ConvEncoder", "VAE", "DEFAULTS", "train", "build", "training_arrays", "splits",
           "weights_path", "model_config"]

#: Default architecture options (also the keys ``train`` accepts as ``**model_options``).
DEFAULTS = {"latent": 16, "channels": (32, 16, 8, 4), "beta": 1.0}

WEIGHTS_DIR = Path(__file__).parent / "weights"


def _base(n, k):
    return max(1, math.ceil(n / 2 ** k))


class ConvDecoder(nn.Module):
    """``z (B, latent) -> rho (B, nz, nx)`` in ``[lo, hi]`` kg/m^3.

    Parameters
    ----------
    latent : int
        Size of the input vector.
    shape : tuple of int
        Output grid ``(nz, nx)``.
    channels : sequence of int
        ``channels[0]`` feature maps after the linear layer; block ``i``
        upsamples x2 and convolves ``channels[i] -> channels[i+1]``.
    lo, hi : float
        Density bounds, kg/m^3: the output is ``lo + (hi - lo) * sigmoid(.)``.
    slope : float
        LeakyReLU negative slope.
    """

    def __init__(self, latent, shape, channels=(32, 16, 8, 4), lo=0.0, hi=1.0, slope=0.2):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2 or min(channels) < 1:
            raise ValueError(f"channels must hold at least two positive integers, got {channels}")
        if not (int(latent) >= 1):
            raise ValueError(f"latent must be a positive integer, got {latent!r}")
        if not hi > lo:
            raise ValueError(f"density bounds must satisfy hi > lo, got lo={lo}, hi={hi}")
        self.latent = int(latent)
        self.shape = (int(shape[0]), int(shape[1]))
        k = len(channels) - 1
        self.base = (_base(self.shape[0], k), _base(self.shape[1], k))
        self.channels = channels
        self.fc = nn.Linear(self.latent, channels[0] * self.base[0] * self.base[1])
        blocks = []
        for i in range(k):
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(channels[i], channels[i + 1], 3, padding=1),
                       nn.LeakyReLU(slope)]
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv2d(channels[-1], 1, 3, padding=1)
        self.register_buffer("lo", torch.tensor(float(lo)))
        self.register_buffer("hi", torch.tensor(float(hi)))
        self.slope = slope

    def unit(self, z):
        """The output scaled to [0, 1] (before the density bounds), shape ``(B, nz, nx)``."""
        h = self.fc(z).reshape(z.shape[0], self.channels[0], *self.base)
        h = nn.functional.leaky_relu(h, self.slope)
        h = self.out(self.blocks(h))[:, 0]
        H, W = h.shape[-2:]
        oz, ox = (H - self.shape[0]) // 2, (W - self.shape[1]) // 2
        h = h[:, oz:oz + self.shape[0], ox:ox + self.shape[1]]
        return torch.sigmoid(h)

    def forward(self, z):
        return self.lo + (self.hi - self.lo) * self.unit(z)


class ConvEncoder(nn.Module):
    """``rho in [0, 1] (B, nz, nx) -> features (B, out)``: stride-2 3x3 convs mirroring :class:`ConvDecoder`."""

    def __init__(self, shape, channels=(32, 16, 8, 4), out=32, slope=0.2, spectral=False):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        self.shape = (int(shape[0]), int(shape[1]))
        k = len(channels) - 1
        self.base = (_base(self.shape[0], k), _base(self.shape[1], k))
        self.padded = (self.base[0] * 2 ** k, self.base[1] * 2 ** k)
        rev = channels[::-1]
        wrap = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        layers = [wrap(nn.Conv2d(1, rev[0], 3, padding=1)), nn.LeakyReLU(slope)]
        for i in range(k):
            layers += [wrap(nn.Conv2d(rev[i], rev[i + 1], 3, stride=2, padding=1)), nn.LeakyReLU(slope)]
        self.convs = nn.Sequential(*layers)
        self.fc = wrap(nn.Linear(channels[0] * self.base[0] * self.base[1], out))

    def forward(self, x):
        pz, px = self.padded[0] - self.shape[0], self.padded[1] - self.shape[1]
        x = nn.functional.pad(x[:, None], (px // 2, px - px // 2, pz // 2, pz - pz // 2))
        return self.fc(self.convs(x).flatten(1))


class VAE(nn.Module):
    """Encoder + :class:`ConvDecoder`; ``forward(x01)`` returns ``(recon01, mu, logvar)``."""

    def __init__(self, shape, latent=16, channels=(32, 16, 8, 4), lo=0.0, hi=1.0, beta=1.0):
        super().__init__()
        self.latent = int(latent)
        self.beta = float(beta)
        self.encoder = ConvEncoder(shape, channels, out=2 * self.latent)
        self.decoder = ConvDecoder(self.latent, shape, channels, lo=lo, hi=hi)

    def encode(self, x01):
        """Mean and log-variance of ``q(z | x)`` for models scaled to [0, 1]."""
        h = self.encoder(x01)
        return h[:, :self.latent], h[:, self.latent:].clamp(-12.0, 8.0)

    def forward(self, x01):
        mu, logvar = self.encode(x01)
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        else:
            z = mu
        return self.decoder.unit(z), mu, logvar

    def loss(self, x01):
        """Per-sample mean of (sum of squared errors + beta KL)."""
        rec, mu, logvar = self(x01)
        sse = ((rec - x01) ** 2).flatten(1).sum(1)
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar).sum(1)
        return (sse + self.beta * kl).mean()


# ----------------------------------------------------------------------------- data


def training_arrays(dataset, split="train"):
    """Density models ``(N, nz, nx)`` float32 and their ``Problem`` from ``dataset``.

    ``dataset`` is a standard data-set name (``"paper-50"``, via
    :func:`gravbench.data.standard`), a path to a saved data set
    (:func:`gravbench.data.load`), an object with ``rho`` (and ``problem``) attributes,
    or an array ``(N, nz, nx)``. A ``dict`` ``{"train": ds, "val": ds}`` gives both splits.
    """
    if isinstance(dataset, dict):
        if split not in dataset:
            raise ValueError(f"dataset dict has no {split!r} split; keys: {sorted(dataset)}")
        dataset = dataset[split]
    name = None
    if isinstance(dataset, str) and not Path(dataset).exists():
        name = dataset
        dataset = data.standard(dataset, split=split)
    elif isinstance(dataset, (str, Path)):
        dataset = data.load(dataset)
    if isinstance(dataset, np.ndarray):
        rho, problem = dataset, None
    elif hasattr(dataset, "rho"):
        rho, problem = dataset.rho, getattr(dataset, "problem", None)
    else:
        raise ValueError(f"dataset must be a data-set name, path, Dataset or (N, nz, nx) array, got {type(dataset).__name__}")
    rho = np.asarray(rho, dtype=np.float32)
    if rho.ndim != 3 or rho.shape[0] < 1:
        raise ValueError(f"dataset densities must have shape (N, nz, nx), got {rho.shape}")
    if not np.all(np.isfinite(rho)):
        raise ValueError("dataset densities contain NaN or inf")
    return rho, problem, name


def splits(dataset):
    """``(rho_train, rho_val, name)``: named data sets and dicts give their own splits,
    a single set is split 90/10 (its last 10% validate)."""
    if isinstance(dataset, dict) or (isinstance(dataset, str) and not Path(dataset).exists()):
        rho_tr, _, name = training_arrays(dataset, "train")
        rho_va, _, _ = training_arrays(dataset, "val")
        return rho_tr, rho_va, name
    rho, _, name = training_arrays(dataset)
    if rho.shape[0] < 2:
        raise ValueError(f"a single data set needs at least 2 models to split off validation, got {rho.shape[0]}")
    cut = max(1, rho.shape[0] // 10)
    return rho[:-cut], rho[-cut:], name


def _bounds(rho):
    lo, hi = float(rho.min()), float(rho.max())
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def weights_path(kind, shape):
    """Default shipped-weights path: ``weights/{kind}-{n}.pt`` for square grids, ``{kind}-{nz}x{nx}.pt`` otherwise."""
    nz, nx = shape
    tag = f"{nx}" if nz == nx else f"{nz}x{nx}"
    return WEIGHTS_DIR / f"{kind}-{tag}.pt"


def model_config(kind, shape, lo, hi, options):
    """The JSON-able architecture description stored in a manifest."""
    cfg = {"kind": kind, "shape": [int(shape[0]), int(shape[1])], "lo": float(lo), "hi": float(hi)}
    for k, v in options.items():
        cfg[k] = list(v) if isinstance(v, tuple) else v
    return cfg


def build(config):
    """The ``VAE`` described by a manifest's ``config``."""
    return VAE(tuple(config["shape"]), latent=config["latent"], channels=tuple(config["channels"]),
               lo=config["lo"], hi=config["hi"], beta=config.get("beta", 1.0))


def _check_options(options, defaults):
    bad = set(options) - set(defaults)
    if bad:
        raise ValueError(f"unknown model option(s) {sorted(bad)}; expected some of {sorted(defaults)}")
    out = dict(defaults)
    out.update(options)
    if "channels" in out:
        ch = out["channels"]
        if isinstance(ch, str):  # from the command line: "32,16,8,4"
            ch = [c for c in ch.replace(" ", "").split(",") if c]
        try:
            out["channels"] = tuple(int(c) for c in ch)
        except (TypeError, ValueError):
            raise ValueError(f"channels must be integers like 32,16,8,4, got {out['channels']!r}") from None
    if "latent" in out and (int(out["latent"]) != out["latent"] or int(out["latent"]) < 1):
        raise ValueError(f"latent must be a positive integer, got {out['latent']!r}")
    return out


def _command(kind, dataset, epochs, batch_size, lr, seed, options, defaults, max_train=None):
    """The ``gravbench train`` command line that reproduces a run (model options as ``-o key=value``)."""
    import torch as _t

    ds = dataset if isinstance(dataset, str) else "<in-memory data set>"
    opts = [("-o", f"max_train={int(max_train)}", None)] if max_train is not None else []
    opts += [("-o", f"{k}={_fmt_option(v)}", None) for k, v in options.items() if defaults.get(k) != v]
    return command_line(f"gravbench train {kind} --dataset {ds}", [
        ("--epochs", epochs, None), ("--batch-size", batch_size, None), ("--lr", lr, None), ("--seed", seed, None),
        ("--threads", _t.get_num_threads(), None), *opts])


def _fmt_option(v):
    return ",".join(str(c) for c in v) if isinstance(v, tuple) else v


def manifest_head(kind, name, dataset, epochs, batch_size, lr, seed, opts, defaults, max_train, command, n_train,
                  n_val):
    """The first entries of a VAE / GAN manifest: what was trained, by which command, on what."""
    return {
        "kind": kind,
        "command": command or _command(kind, dataset, epochs, batch_size, lr, seed, opts, defaults, max_train),
        "python": (f"gravbench.providers.{kind}.train({name or 'dataset'!r}, epochs={epochs}, batch_size={batch_size}, "
                   f"lr={lr}, seed={seed}, max_train={max_train}, **{ {k: v for k, v in opts.items()} })"),
        "dataset": name or "in-memory",
        "n_train": int(n_train), "n_val": int(n_val),
    }


def train(dataset="paper-50", *, epochs=30, batch_size=64, lr=2e-3, seed=0, out=None, resume=False,
          device="cpu", progress=True, max_train=None, command=None, **model_options):
    """Train the VAE on a data set's density models and save weights + manifest.

    Parameters
    ----------
    dataset : str, path, Dataset, array or dict
        Training data (see :func:`training_arrays`); the ``"val"`` split (or the
        last 10% when only an array is given) selects the best epoch.
    epochs, batch_size : int
        Passes over the training set; models per step.
    lr : float
        Adam learning rate (cosine-decayed to lr/20).
    seed : int
        Seeds weights, batch order and the reparameterisation noise.
    out : path, optional
        Weights file (``.pt``); the manifest goes beside it as ``.json``.
        Default: ``<cache>/weights/vae-{n}.pt`` (the user's cache; the shipped weights
        are only replaced when ``out`` points at them).
    resume : bool
        Continue from the checkpoint ``out + '.ckpt'``.
    device : str
        ``"cpu"``, ``"cuda"``, ...
    progress : bool
        Show a rich progress bar.
    max_train : int, optional
        Use only the first ``max_train`` training models.
    command : str, optional
        The command line recorded in the manifest (default: reconstructed).
    **model_options
        ``latent`` (16), ``channels`` ((32, 16, 8, 4)), ``beta`` (1.0).

    Returns
    -------
    dict
        The manifest (also written as JSON): sha256, command, data set, config, metrics.
    """
    opts = _check_options(model_options, DEFAULTS)
    rho_tr, rho_va, name = splits(dataset)
    if max_train is not None:
        rho_tr = rho_tr[:int(max_train)]
    shape = rho_tr.shape[1:]
    lo, hi = _bounds(rho_tr)
    to01 = lambda r: torch.as_tensor((r - lo) / (hi - lo), dtype=torch.float32)  # noqa: E731
    torch.manual_seed(int(seed))
    model = VAE(shape, latent=opts["latent"], channels=opts["channels"], lo=lo, hi=hi, beta=opts["beta"])
    out = Path(out) if out is not None else _train.default_out("vae", shape)  # the user's cache, never the package
    ckpt = out.with_name(out.name + ".ckpt")

    def loss_fn(m, x):
        return m.loss(x)

    def val_fn(m, x):  # reconstruction error only (z = mean), comparable across epochs
        rec, _, _ = m(x)
        return ((rec - x) ** 2).flatten(1).sum(1).mean()

    hist = _train.fit(model, (to01(rho_tr),), (to01(rho_va),), loss_fn=loss_fn, val_fn=val_fn, epochs=int(epochs),
                      batch_size=int(batch_size), lr=float(lr), seed=int(seed), checkpoint=ckpt, resume=resume,
                      device=device, progress=progress, patience=max(5, int(epochs)), description="vae")
    model.eval().cpu()
    with torch.no_grad():
        x = to01(rho_va)
        rec = torch.cat([model(x[i:i + 256])[0] for i in range(0, x.shape[0], 256)])
        rel = (((rec - x) * (hi - lo)).flatten(1).norm(dim=1) / (x * (hi - lo) + lo).flatten(1).norm(dim=1).clamp_min(1e-12))
    manifest = {
        **manifest_head("vae", name, dataset, epochs, batch_size, lr, seed, opts, DEFAULTS, max_train, command,
                        rho_tr.shape[0], rho_va.shape[0]),
        "config": model_config("vae", shape, lo, hi, opts),
        "metrics": {"val_recon_sse": hist["best_val"],
                    "val_model_rel_error_mean": float(rel.mean()),
                    "val_model_rel_error_median": float(rel.median()),
                    "best_epoch": hist["best_epoch"], "epochs_run": hist["epochs_run"],
                    "train_seconds": round(hist["seconds"], 1)},
        "history": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in h.items()} for h in hist["history"]],
        "trained": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    man = _train.save_weights(model.state_dict(), out, manifest)
    if ckpt.exists() and not resume:
        pass  # keep the checkpoint for resuming; callers may delete it
    return man
