"""The CNN provider: direct inversion of a gx/gz profile into a density model.

Input: ``g`` of length ``2m`` (``m = 3n`` stations, gx then gz, mGal) seen as a
``(2, m)`` two-channel 1D signal. Output: an ``(nz, nx)`` model in kg/m^3.

Architectures (``arch=``)
-------------------------
``"paper-full"`` (shipped as ``cnn-fwi-51``, for ``Problem.seed(51)``)
    The seed paper's network, layer for layer: Conv1D 32 / 64 / 128 filters
    (kernel 3, stride 2, Keras ``padding="valid"``, LeakyReLU) on the
    ``(2, 3n)`` gx / gz input, flatten, dense 250 / 500 / 1000 / 1500
    (LeakyReLU, dropout 0.1), dense ``nz*nx``, sigmoid scaled to the density
    range. 6.64M parameters at n = 51 (13 MB in float16). The input is
    standardised: the training set's mean of every datum (buffer ``g_mean``)
    is subtracted, then each channel is divided by its RMS deviation.
``"paper"`` (shipped as ``cnn-50`` and ``cnn-100``, for ``Problem.paper(n)``)
    A *reduced* variant kept for those weights (the name is historical; it is
    not the paper's network): the same three convolutions with ReLU and
    ``padding=1``, flatten, one dense layer of ``hidden`` units (ReLU), dense
    to an ``out_stride``-times coarser grid, bilinear upsampling, sigmoid
    scaled to the density range (0.81M parameters at n = 50).
``"unet1d"`` (an option; no shipped weights)
    The same Conv1D front end kept fully convolutional in x, which the
    physics allows (each depth row of A is a Toeplitz block: the data are
    translation-equivariant in x): a stride-3 convolution takes the 3
    stations above each cell column to one position (length ``nx``), a 1D
    U-Net (two stride-2 levels, a dilated stack 1/2/4/8 at the bottom so the
    receptive field covers the whole profile, skip connections), then a
    per-column head that emits ``k`` depth profiles of length ``nz`` per x
    position, refined by two 3x3 2D convolutions, sigmoid scaled to the
    density range.

Which weights: the provider reads every ``weights/cnn-*.json`` manifest and
uses the file whose recorded problem (grid edges, stations, kernel) equals
the problem it is called on (:func:`weights_for`); when none does it raises
``NoWeightsError`` listing the files there are and the training command.

Normalisation (stored in the weights as buffers)
------------------------------------------------
``g_scale`` (2,): the RMS of gx and of gz over the noise-free training data;
the network sees ``g / g_scale`` per channel. ``rho_lo``, ``rho_hi``: the
training models' density range; the sigmoid output ``s`` becomes
``rho_lo + (rho_hi - rho_lo) s``.

Training (``gravbench train cnn``): Adam (or AdamW, ``optimizer="adamw"``,
decoupled weight decay as Keras' ``weight_decay``) with cosine or exponential
(``lr_schedule="exp"``) decay to lr/20, loss ``"rel"`` (squared relative model
error) or ``"mse"`` (mean squared error of the range-scaled density, the
paper's), optional noise augmentation (each batch sees ``g_clean + u * noise *
sigma_unit * e``, ``u ~ U(0, noise_aug)``, ``e ~ N(0, 1)``; 0 = noise-free as in
the paper's Table I), early stopping on the validation split's mean relative
model error, seeded and resumable (``--resume``), a wall-clock limit
(``max_seconds``) recorded in the manifest as the exact ``stop_after`` to
reproduce. The shipped ``cnn-fwi-51`` command is in its manifest.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._cmdline import process_command
from . import _train
from ._torchutil import device as _device
from ._torchutil import require_torch, seed_all
from .. import data as _data
from ..metrics import model_errors
from .base import NoWeightsError, Provider, ProviderInfo
from ..data import cache_dir
from ..data.sets import STANDARD
from ..problem import Problem

__all__ = ["CNNProvider", "build_model", "train", "available", "catalogue", "weights_for", "WEIGHTS_DIR"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def _train_cmd(n):
    return f"gravbench train cnn --dataset paper-{n}"


def _manifests(weights_dir=None):
    """``[(path, manifest)]`` of every CNN weight file with a readable manifest, sorted by file name."""
    d = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    out = []
    for m in sorted(d.glob("cnn-*.json")):
        pt = m.with_suffix(".pt")
        try:
            man = json.loads(m.read_text())
        except Exception:
            continue
        if pt.exists() and "shape" in man:
            out.append((pt, man))
    return out


def _unreadable(weights_dir=None):
    """CNN weight files whose manifest is missing, unreadable or incomplete (loading them says what is wrong)."""
    d = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    good = {pt for pt, _ in _manifests(weights_dir)}
    return [pt for pt in sorted(d.glob("cnn-*.pt")) if pt not in good]


def available(weights_dir=None):
    """``{n: path}`` of the shipped CNN weight files for ``Problem.paper(n)`` grids (``cnn-<n>.pt``).

    Every weight file, whatever its geometry, is listed by :func:`catalogue`;
    the provider picks the one trained for the problem it is given. A
    ``cnn-<n>.pt`` whose manifest cannot be read is listed too, so that loading
    it explains what is wrong instead of reporting no weights.
    """
    out = {}
    for pt, man in _manifests(weights_dir):
        if man.get("n") is not None and pt.stem == f"cnn-{man['n']}":
            out[int(man["n"])] = pt
    for pt in _unreadable(weights_dir):
        if pt.stem[4:].isdigit():
            out.setdefault(int(pt.stem[4:]), pt)
    return out


def _describe_manifest_problem(man):
    p = man.get("problem") or {}
    sv = p.get("survey") or {}
    nz, nx = man["shape"]
    z = sv.get("z") or [None]
    h = f"{-z[0]:g} m up" if z[0] is not None else "?"
    return (f"{nz}x{nx} grid, {len(sv.get('x') or [])} stations {h}, kernel={p.get('kernel', '?')}, "
            f"arch={man.get('config', {}).get('arch', '?')}, trained on {man.get('dataset', {}).get('name', '?')}")


def catalogue(weights_dir=None):
    """``[(path, description)]`` of every CNN weight file (grid, stations, kernel, architecture, data set)."""
    return [(pt, _describe_manifest_problem(man)) for pt, man in _manifests(weights_dir)]


def weights_for(problem, weights_dir=None):
    """The weight file trained for exactly ``problem`` (grid, stations, kernel); ``NoWeightsError`` if none.

    The message lists every weight file there is and the command that trains one for this problem.
    """
    want = problem.to_dict()
    mans = _manifests(weights_dir)
    for pt, man in mans:
        if man.get("problem") == want:
            return pt
    nz, nx = problem.shape
    for pt in _unreadable(weights_dir):  # a damaged manifest is not "no weights": loading names the problem
        if pt.stem == f"cnn-{nx}" and nz == nx:
            _train.load_weights(pt, map_location="cpu")
    have = "; ".join(f"{pt.name}: {_describe_manifest_problem(man)}" for pt, man in mans) or "none"

    named = [name for name, spec in STANDARD.items() if spec.problem() == problem]
    if named:
        hint = f"gravbench train cnn --dataset {named[0]}"
    elif nz == nx and problem == _paper(nx, problem.kernel) and problem.kernel == "exact":
        hint = _train_cmd(nx)
    else:
        hint = "gravbench train cnn --dataset <a data set built on this problem>"
    same = [pt.name for pt, man in mans if tuple(man["shape"]) == (nz, nx)]
    why = (f"weights for a {nz}x{nx} grid ({', '.join(same)}) were trained for a different geometry "
           f"(stations, extent or kernel)" if same else f"no weights for a {nz}x{nx} grid")
    raise NoWeightsError(f"the cnn provider has no weights for this problem ({problem.describe()}): {why}; "
                         f"it has: {have}; make them with: {hint}")


def _paper(n, kernel="exact"):
    return Problem.paper(int(n), kernel=kernel)


def build_model(n_stations, nz, nx, *, arch="paper", width=32, hidden=256, head_k=4, out_stride=1,
                g_scale=(1.0, 1.0), rho_lo=0.0, rho_hi=1.0, g_mean=None, dropout=0.1):
    """The network (a ``torch.nn.Module``); see the module docstring for ``arch``.

    ``g_mean`` (``2 n_stations``, mGal; ``arch="paper-full"`` only) is
    subtracted from the data before the per-channel scaling by ``g_scale``;
    ``dropout`` is the dense layers' dropout rate (``"paper-full"``).
    """
    torch = require_torch()
    nn = torch.nn

    class _Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("g_scale", torch.as_tensor(np.asarray(g_scale, dtype=np.float32)))
            self.register_buffer("rho_lo", torch.tensor(float(rho_lo)))
            self.register_buffer("rho_hi", torch.tensor(float(rho_hi)))

        def normalise(self, g):
            return g.reshape(g.shape[0], 2, -1) / self.g_scale[None, :, None]

        def unit(self, logits):
            return torch.sigmoid(logits)

        def forward(self, g):
            """``g`` (B, 2m) mGal -> rho (B, nz, nx) kg/m^3."""
            s = self.unit(self.logits(self.normalise(g)))
            return self.rho_lo + (self.rho_hi - self.rho_lo) * s

    if arch == "paper-full":
        class PaperFull(_Base):
            """The seed paper's network, layer for layer (Keras ``padding="valid"`` convolutions)."""

            def __init__(self):
                super().__init__()
                gm = np.zeros(2 * n_stations, np.float32) if g_mean is None else np.asarray(g_mean, np.float32)
                if gm.shape != (2 * n_stations,):
                    raise ValueError(f"g_mean must have {2 * n_stations} values, got shape {gm.shape}")
                self.register_buffer("g_mean", torch.as_tensor(gm))
                L = n_stations
                for _ in range(3):
                    L = (L - 3) // 2 + 1
                if L < 1:
                    raise ValueError(f"arch='paper-full' needs at least 15 stations, got {n_stations}")
                act = nn.LeakyReLU(0.01)
                self.enc = nn.Sequential(
                    nn.Conv1d(2, 32, 3, stride=2), act,
                    nn.Conv1d(32, 64, 3, stride=2), act,
                    nn.Conv1d(64, 128, 3, stride=2), act, nn.Flatten())
                layers, w_in = [], 128 * L
                for w in (250, 500, 1000, 1500):
                    layers += [nn.Linear(w_in, w), nn.LeakyReLU(0.01), nn.Dropout(float(dropout))]
                    w_in = w
                self.dense = nn.Sequential(*layers)
                self.out = nn.Linear(w_in, nz * nx)

            def normalise(self, g):
                return ((g - self.g_mean[None, :]).reshape(g.shape[0], 2, -1)) / self.g_scale[None, :, None]

            def logits(self, x):
                return self.out(self.dense(self.enc(x))).reshape(x.shape[0], nz, nx)

        return PaperFull()

    if arch == "paper":
        class Paper(_Base):
            def __init__(self):
                super().__init__()
                L = n_stations
                for _ in range(3):
                    L = (L + 2 - 3) // 2 + 1
                self.enc = nn.Sequential(
                    nn.Conv1d(2, 32, 3, stride=2, padding=1), nn.ReLU(),
                    nn.Conv1d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                    nn.Conv1d(64, 128, 3, stride=2, padding=1), nn.ReLU())
                self.hz, self.hx = -(-nz // out_stride), -(-nx // out_stride)
                self.dec = nn.Sequential(nn.Flatten(), nn.Linear(128 * L, hidden), nn.ReLU(),
                                         nn.Linear(hidden, self.hz * self.hx))

            def logits(self, x):
                y = self.dec(self.enc(x)).reshape(x.shape[0], 1, self.hz, self.hx)
                if (self.hz, self.hx) != (nz, nx):
                    y = torch.nn.functional.interpolate(y, size=(nz, nx), mode="bilinear", align_corners=False)
                return y[:, 0]

        return Paper()

    if arch != "unet1d":
        raise ValueError(f"arch must be 'paper-full', 'paper' or 'unet1d', got {arch!r}")
    if n_stations % nx != 0:
        raise ValueError(f"arch='unet1d' needs a whole number of stations per cell column; got {n_stations} stations for nx={nx}")
    per = n_stations // nx
    c = int(width)

    def block(ci, co, k=3, d=1, s=1):
        return nn.Sequential(nn.Conv1d(ci, co, k, stride=s, padding=d * (k - 1) // 2 if s == 1 else (k - 1) // 2,
                                       dilation=d), nn.GroupNorm(1, co), nn.GELU())

    class UNet1D(_Base):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv1d(2, c, 5, padding=2), nn.GELU(),
                                      nn.Conv1d(c, c, per, stride=per), nn.GELU())
            self.e1 = block(c, c)
            self.d1 = block(c, 2 * c, k=3, s=2)
            self.d2 = block(2 * c, 4 * c, k=3, s=2)
            self.mid = nn.Sequential(*[block(4 * c, 4 * c, d=d) for d in (1, 2, 4, 8)])
            self.u2 = block(6 * c, 2 * c)
            self.u1 = block(3 * c, c)
            self.u0 = block(2 * c, 2 * c)
            self.head = nn.Conv1d(2 * c, head_k * nz, 1)
            self.ref = nn.Sequential(nn.Conv2d(head_k, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 1, 3, padding=1))
            self.skip = nn.Conv2d(head_k, 1, 1)

        def logits(self, x):
            f = torch.nn.functional
            x0 = self.e1(self.stem(x))            # (B, c, nx)
            x1 = self.d1(x0)                       # (B, 2c, nx/2)
            x2 = self.mid(self.d2(x1))             # (B, 4c, nx/4)
            y = f.interpolate(x2, size=x1.shape[-1], mode="linear", align_corners=False)
            y = self.u2(torch.cat([y, x1], 1))
            y = f.interpolate(y, size=x0.shape[-1], mode="linear", align_corners=False)
            y = self.u1(torch.cat([y, x0], 1))
            y = self.u0(torch.cat([y, x0], 1))
            h = self.head(y).reshape(x.shape[0], head_k, nz, nx)
            return (self.ref(h) + self.skip(h))[:, 0]

    return UNet1D()


def _resolve_dataset(dataset, split, noise, val=None):
    if hasattr(dataset, "rho") and hasattr(dataset, "g"):
        if split == "train":
            return dataset
        if val is None:
            raise ValueError("dataset given as a Dataset object: pass its validation set as val=")
        return val
    p = Path(str(dataset))
    if p.exists():
        if split != "train":
            vp = p.parent / (p.name.replace("train", split))
            if vp.exists() and vp != p:
                return _data.load(vp)
            raise ValueError(f"dataset path {p} given; no '{split}' split found beside it (expected {vp})")
        return _data.load(p)
    return _data.standard(str(dataset), split=split, noise=noise)


def _unit_sigma(ds, noise):
    """Noise std per datum for a unit noise level (sigma / noise), mGal."""
    sig = np.asarray(ds.sigma, dtype=np.float64)
    if noise and np.all(np.isfinite(sig)) and np.any(sig > 0):
        return sig / noise
    # noise-free set: 1% of the per-sample max |g| per component (scaled to a unit level)
    g = np.asarray(ds.g_clean, dtype=np.float64)
    m = g.shape[1] // 2
    s = np.empty_like(g)
    s[:, :m] = np.abs(g[:, :m]).max(1, keepdims=True)
    s[:, m:] = np.abs(g[:, m:]).max(1, keepdims=True)
    return s


#: The small fixed batch the shipped weights are checked on (tests compare with the manifest's metric).
CHECK_BATCH = {"count": 64, "seed": 987_654, "noise": 0.01, "families": "mixed"}
CHECK_BATCH_DOC = ("gravbench.data.build(problem, families='mixed', count=64, seed=987654, noise=0.01)['all']: "
                   "fresh models (a seed no standard split uses), mean relative model error")


def check_batch(problem, families=None):
    """The fixed check batch for ``problem`` (see :data:`CHECK_BATCH`); ``families`` overrides ``"mixed"``."""
    c = CHECK_BATCH
    return _data.build(problem, families=families or c["families"], count=c["count"], seed=c["seed"],
                       noise=c["noise"])["all"]


def rel_errors(rho_hat, rho):
    """Per-sample relative L2 model errors ``||rho_hat - rho|| / ||rho||`` (:func:`gravbench.metrics.model_errors`)."""
    return model_errors(rho, rho_hat)


def train(dataset="paper-50", *, epochs=40, batch_size=64, lr=2e-3, seed=0, out=None, resume=False, device="cpu",
          progress=True, arch="paper", width=32, hidden=256, head_k=4, out_stride=1, noise=0.01, noise_aug=1.5, patience=6,
          max_train=None, max_seconds=None, checkpoint=None, threads=None, val=None, loss="rel", command=None, stop_after=None,
          optimizer="adam", weight_decay=0.0, lr_schedule="cosine", out_range="zero", dropout=0.1, **unknown):
    """Train a CNN provider and write its weights and manifest.

    Parameters
    ----------
    dataset : str or path
        A standard data set name (``"paper-50"``, ``"paper-100"``; built by
        :func:`gravbench.data.standard`) or the path of a training set built by
        :func:`gravbench.data.build` (its ``val`` split must sit beside it),
        or a ``Dataset`` object (then pass the validation set as ``val``).
    epochs, batch_size, lr, seed : int, int, float, int
        Training schedule; Adam with cosine decay from ``lr`` to ``lr/20``.
    out : path, optional
        Weight file to write (default: ``<cache>/weights/cnn-<n>.pt``, see
        :func:`gravbench.providers._train.user_weights_dir`; the package's shipped
        weights are only replaced when ``out`` points there); the manifest is
        written beside it as ``.json`` (the pair atomically).
    resume : bool
        Continue from the checkpoint (``checkpoint`` or ``out`` + ``.ckpt``).
    device : str
        ``"cpu"``, ``"cuda"``, ...
    progress : bool
        Show a rich progress bar.
    arch, width, hidden, head_k : model options (see :func:`build_model`).
    noise : float
        Noise level of the standard data set to load (its ``sigma`` sets the augmentation scale).
    noise_aug : float
        Upper end of the augmentation noise factor ``u ~ U(0, noise_aug)``
        (times ``noise`` times the unit sigma); 0 trains on clean data.
    patience : int
        Early-stopping patience, epochs.
    max_train : int, optional
        Use only the first ``max_train`` training models.
    max_seconds : float, optional
        Stop after this much training time (the best epoch so far is kept).
        The manifest's ``reproduce`` command replaces it by ``stop_after``.
    stop_after : int, optional
        Run only the first ``stop_after`` epochs of the ``epochs``-long schedule.
    loss : {"rel", "mse"}
        ``"rel"``: mean over the batch of ``||rho_hat - rho||^2 / max(||rho||^2, (0.05 range)^2 N)``
        in range units (the squared relative model error, the reported metric);
        ``"mse"``: plain mean squared error.
    threads : int, optional
        ``torch.set_num_threads``.
    optimizer : {"adam", "adamw"}
        Adam with L2 ``weight_decay`` or AdamW (decoupled weight decay, Keras'
        ``weight_decay``: the paper's choice with 1e-4).
    weight_decay : float
    lr_schedule : {"cosine", "exp", "constant"}
        ``"exp"``: exponential decay from ``lr`` to ``lr/20`` over ``epochs``.
    out_range : {"zero", "data"}
        Output range of the sigmoid: ``"zero"``: ``[min(0, rho_min), rho_max]``
        of the training models (contrasts); ``"data"``: ``[rho_min, rho_max]``
        widened by 2 % of the span (absolute densities such as ``fwi-51``).
    dropout : float
        Dropout of the dense layers (``arch="paper-full"``).
    val : Dataset, optional
        Validation set when ``dataset`` is a ``Dataset`` object.
    command : str, optional
        The command recorded in the manifest (default: this process's command line).

    Returns
    -------
    dict
        The manifest written beside the weights.
    """
    if unknown:
        raise ValueError(f"unknown option(s) for cnn: {', '.join(sorted(unknown))}")
    if loss not in ("rel", "mse"):
        raise ValueError(f"loss must be 'rel' or 'mse', got {loss!r}")
    if optimizer not in ("adam", "adamw"):
        raise ValueError(f"optimizer must be 'adam' or 'adamw', got {optimizer!r}")
    if out_range not in ("zero", "data"):
        raise ValueError(f"out_range must be 'zero' or 'data', got {out_range!r}")
    torch = require_torch()
    if threads:
        torch.set_num_threads(int(threads))
    seed_all(seed)
    tr = _resolve_dataset(dataset, "train", noise, val)
    va = _resolve_dataset(dataset, "val", noise, val)
    prob = tr.problem
    nz, nx = prob.shape
    n_tr = len(tr.rho) if max_train is None else min(int(max_train), len(tr.rho))
    rho_tr = np.asarray(tr.rho[:n_tr], dtype=np.float32)
    gc_tr = np.asarray(tr.g_clean[:n_tr], dtype=np.float32)
    su_tr = _unit_sigma(tr, noise)[:n_tr].astype(np.float32) * float(noise or 0.01)
    m = gc_tr.shape[1] // 2
    g_mean = None
    if arch == "paper-full":  # standardise: per-datum training mean off, then per-channel RMS of the rest
        g_mean = gc_tr.astype(np.float64).mean(0)
        dev = gc_tr - g_mean[None, :].astype(np.float32)
        g_scale = (float(np.sqrt(np.mean(dev[:, :m] ** 2))), float(np.sqrt(np.mean(dev[:, m:] ** 2))))
    else:
        g_scale = (float(np.sqrt(np.mean(gc_tr[:, :m] ** 2))), float(np.sqrt(np.mean(gc_tr[:, m:] ** 2))))
    if out_range == "data":
        span = float(rho_tr.max() - rho_tr.min())
        lo, hi = float(rho_tr.min()) - 0.02 * span, float(rho_tr.max()) + 0.02 * span
    else:
        lo, hi = float(min(0.0, rho_tr.min())), float(rho_tr.max())
    if not hi > lo:
        raise ValueError("training models have no density contrast (max == min)")
    mk = dict(arch=arch, width=width, hidden=hidden, head_k=head_k, out_stride=out_stride, g_scale=g_scale,
              rho_lo=lo, rho_hi=hi, g_mean=None if g_mean is None else g_mean.tolist(), dropout=dropout)
    model = build_model(m, nz, nx, **mk)
    if arch == "paper-full":  # start from the training set's mean model: output bias = logit of its scaled value
        with torch.no_grad():
            u = np.clip((rho_tr.astype(np.float64).mean(0) - lo) / (hi - lo), 1e-4, 1 - 1e-4).ravel()
            model.out.bias.copy_(torch.as_tensor(np.log(u / (1 - u)), dtype=torch.float32))
    scale = hi - lo
    aug = float(noise_aug)

    def loss_fn(net, g, s, rho):
        if net.training and aug > 0:
            u = torch.rand(g.shape[0], 1) * aug
            g = g + u * s * torch.randn_like(g)
        d = ((net(g) - rho) / scale).flatten(1)
        if loss == "rel":  # squared relative error, the metric's square (floor: 5% of the range per cell)
            den = (rho / scale).flatten(1).pow(2).mean(1).clamp_min(0.05 ** 2)
            return torch.mean(d.pow(2).mean(1) / den)
        return torch.mean(d ** 2)

    def val_fn(net, g, s, rho):
        pred = net(g)
        e = torch.linalg.vector_norm((pred - rho).flatten(1), dim=1) / torch.linalg.vector_norm(rho.flatten(1), dim=1).clamp_min(1e-30)
        return e.mean()

    train_t = (torch.from_numpy(gc_tr), torch.from_numpy(su_tr), torch.from_numpy(rho_tr))
    va_g = np.asarray(va.g, dtype=np.float32)  # noisy validation data, as at inference
    val_t = (torch.from_numpy(va_g), torch.zeros_like(torch.from_numpy(va_g)), torch.from_numpy(np.asarray(va.rho, np.float32)))
    n = nx if nx == nz else f"{nz}x{nx}"
    if checkpoint:
        ckpt = Path(checkpoint)
    elif out:
        ckpt = Path(out).with_name(Path(out).stem + ".ckpt")
    else:  # never inside the package: the cache directory
        ckpt = cache_dir() / "checkpoints" / f"cnn-{n}.ckpt"
    out = Path(out) if out else _train.default_out("cnn", (nz, nx))  # the user's cache, never the package by default
    hist = _train.fit(model, train_t, val_t, loss_fn=loss_fn, val_fn=val_fn, epochs=int(epochs),
                      batch_size=int(batch_size), lr=float(lr), seed=int(seed), checkpoint=ckpt, resume=resume,
                      device=device, progress=progress,
                      patience=int(patience), max_seconds=max_seconds, stop_after=stop_after, description=f"cnn-{n}",
                      lr_schedule=lr_schedule, weight_decay=float(weight_decay),
                      optimizer=(lambda ps: torch.optim.AdamW(ps, lr=float(lr), weight_decay=float(weight_decay)))
                      if optimizer == "adamw" else None)
    model.eval().cpu()
    # metrics on the validation split (float16 weights, as shipped)
    half = build_model(m, nz, nx, **mk)
    half.load_state_dict({k: (v.half().float() if v.is_floating_point() else v) for k, v in model.state_dict().items()})
    half.eval()
    with torch.no_grad():
        pv = half(torch.from_numpy(va_g)).numpy()
        pvc = half(torch.from_numpy(np.asarray(va.g_clean, np.float32))).numpy()
    ev, evc = rel_errors(pv, va.rho), rel_errors(pvc, va.rho)
    fams = (getattr(tr, "meta", {}) or {}).get("families")
    chk_fam = "fwi" if isinstance(fams, dict) and set(fams) == {"fwi"} else None
    chk = check_batch(prob, chk_fam)
    with torch.no_grad():
        ec = rel_errors(half(torch.from_numpy(np.asarray(chk.g, np.float32))).numpy(), chk.rho)
    ds_name = str(dataset) if isinstance(dataset, (str, Path)) else f"<in-memory {type(dataset).__name__}>"
    manifest = {
        "model": "cnn",
        "n": int(nx) if nx == nz else None,
        "shape": [int(nz), int(nx)],
        "problem": prob.to_dict(),
        "config": {"arch": arch, "width": int(width), "hidden": int(hidden), "head_k": int(head_k),
                   "out_stride": int(out_stride), "n_stations": int(m), "dropout": float(dropout)},
        "normalisation": {"g_scale_mgal": list(g_scale), "rho_lo": lo, "rho_hi": hi,
                          "note": "input g/g_scale per channel (gx, gz RMS of the clean training data); "
                                  "output rho_lo + (rho_hi - rho_lo) * sigmoid"},
        "command": command or process_command(),
        "dataset": {"name": ds_name, "train_count": int(n_tr), "val_count": int(len(va.rho)), "noise": noise,
                    "meta": {k: v for k, v in (getattr(tr, "meta", {}) or {}).items()
                             if isinstance(v, (str, int, float, bool))}},
        "training": {"loss": loss, "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr), "seed": int(seed),
                     "noise_aug": aug, "patience": int(patience), "device": str(device),
                     "optimizer": optimizer, "weight_decay": float(weight_decay), "lr_schedule": lr_schedule,
                     "out_range": out_range,
                     "epochs_run": hist["epochs_run"], "best_epoch": hist["best_epoch"], "stopped": hist["stopped"],
                     "seconds": round(hist["seconds"], 1),
                     "torch_threads": int(torch.get_num_threads())},
        "metrics": {"val_model_error_mean": float(ev.mean()), "val_model_error_median": float(np.median(ev)),
                    "val_model_error_p90": float(np.quantile(ev, 0.9)),
                    "val_clean_model_error_mean": float(evc.mean()),
                    "check_batch_model_error_mean": float(ec.mean()),
                    "check_batch": CHECK_BATCH_DOC if chk_fam is None else CHECK_BATCH_DOC.replace("'mixed'", repr(chk_fam)),
                    "check_batch_families": chk_fam or CHECK_BATCH["families"],
                    "history": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in h.items()}
                                for h in hist["history"]]},
        "n_params": int(sum(p.numel() for p in model.parameters())),
    }
    cmd = manifest["command"]
    if hist["stopped"] == "time-limit":
        import re

        cmd = re.sub(r"(-o )?max_seconds=\S+", f"\\1stop_after={hist['epochs_run']}", cmd)
        if "stop_after" not in cmd:
            cmd += f"  (with stop_after={hist['epochs_run']})"
    manifest["reproduce"] = cmd
    man = _train.save_weights(model.state_dict(), out, manifest, half=True)
    return man


class CNNProvider(Provider):
    """A trained CNN: one network forward pass per model.

    The provider picks, for each problem it is called on, the shipped weight
    file whose manifest's problem (grid edges, stations, kernel) equals it
    exactly (:func:`weights_for`): ``cnn-50.pt`` / ``cnn-100.pt`` for
    ``Problem.paper(50 / 100)``, ``cnn-fwi-51.pt`` (the seed paper's network,
    ``arch="paper-full"``) for ``Problem.seed(51)``. When none fits it raises
    :class:`~gravbench.providers.NoWeightsError` listing the weights there are
    and the training command.

    Parameters
    ----------
    n : int, optional
        Check now that weights for an ``n x n`` grid exist (``NoWeightsError``
        otherwise); which file is used is still decided per problem.
    device : str
        Torch device.
    weights : path or str, optional
        A weight file (with its manifest beside it) or the name of weights trained
        into the user weights directory (``gravbench train cnn`` writes
        ``<cache>/weights/cnn-<n>.pt``: ``weights="cnn-50"``), instead of the shipped ones.
        ``info.extra["weights"]`` names the files in use.
    """

    name = "cnn"
    #: the network reads the data vector [gx; gz] it was trained on
    components = ("gx", "gz")
    cost = "one network forward pass (no operator products)"
    learned = True

    def __init__(self, n=None, device="cpu", weights=None):
        self._device = _device(device)
        self._weights = _train.resolve_weights(weights, "cnn") if weights is not None else None
        self._nets = {}
        self._paths = {}
        if n is not None:
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"n must be a positive integer, got {n!r}")
            shapes = set(self.grids())
            if (int(n), int(n)) not in shapes:
                have = ", ".join(f"{a}x{b}" for a, b in sorted(shapes)) or "none"
                raise NoWeightsError(f"the cnn provider has no weights for a {n}x{n} grid (it has: {have}); "
                                     f"make them with: {_train_cmd(int(n))}")
            try:  # load the Problem.paper(n) network now when there is one (others load on first call)
                self._net(_paper(int(n)))
            except NoWeightsError:
                pass

    def grids(self):
        if self._weights is not None:
            try:
                man = json.loads(self._weights.with_suffix(".json").read_text())
                return (tuple(man["shape"]),)
            except Exception:  # noqa: BLE001 - loading says what is wrong
                return ()
        return tuple(sorted({tuple(man["shape"]) for _, man in _manifests()}))

    @property
    def info(self):
        if self._weights is not None:
            used = {"any grid": str(self._weights)}
        else:
            used = {f"{n}x{n}": str(p) for n, p in sorted(available().items())}
        loaded = dict(self._paths)
        return ProviderInfo(name=self.name, grids=tuple(self.grids()), cost=self.cost, learned=True,
                            extra={"weights": loaded or used,
                                   "source": "user" if self._weights is not None else "shipped"})

    @property
    def manifest(self):
        """Manifests of the loaded networks, by grid shape ``(nz, nx)``."""
        return {tuple(v[1]["shape"]): v[1] for v in self._nets.values()}

    def _net(self, problem):
        path = self._weights if self._weights is not None else weights_for(problem)
        key = path.name
        if key in self._nets:
            net, man = self._nets[key]
            self._check_problem(problem, man)
            return net, man
        sd, man = _train.load_weights(path, map_location="cpu")
        shape = tuple(problem.shape)
        if tuple(man["shape"]) != shape:
            raise NoWeightsError(f"weights {path.name} are for a {man['shape'][0]}x{man['shape'][1]} grid, "
                                 f"not {shape[0]}x{shape[1]}; make them with: {_train_cmd(shape[1])}")
        self._check_problem(problem, man)
        try:
            cfg = man["config"]
            nm = man["normalisation"]
            net = build_model(cfg["n_stations"], shape[0], shape[1], arch=cfg["arch"], width=cfg["width"],
                              hidden=cfg["hidden"], head_k=cfg["head_k"], out_stride=cfg.get("out_stride", 1),
                              g_scale=nm["g_scale_mgal"], rho_lo=nm["rho_lo"], rho_hi=nm["rho_hi"],
                              dropout=cfg.get("dropout", 0.1))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"the manifest {path.with_suffix('.json').name} of {path.name} has an invalid config "
                             f"({type(exc).__name__}: {exc}); it was edited or is damaged: reinstall gravbench or "
                             f"retrain the weights") from None
        _train.load_state(net, sd, path, man)
        net.eval().to(self._device)
        self._nets[key] = (net, man)
        self._paths[f"{shape[0]}x{shape[1]}"] = f"{path} (sha256 {str(man.get('sha256', ''))[:12]})"
        return net, man

    @staticmethod
    def _check_problem(problem, man):
        want = man.get("problem")
        if want is not None and problem.to_dict() != want:
            raise NoWeightsError(
                f"the cnn weights for {man['shape'][0]}x{man['shape'][1]} were trained for a different geometry "
                f"(stations, extent or kernel): {_describe_manifest_problem(man)}; this problem is: "
                f"{problem.describe()}; train for it with: gravbench train cnn --dataset <a data set built on this problem>")

    def _batch(self, G, problem, sigma, seed):
        torch = require_torch()
        net, _ = self._net(problem)
        with torch.no_grad():
            x = torch.as_tensor(G, dtype=torch.float32, device=self._device)
            out = [net(x[i:i + 512]).cpu().numpy() for i in range(0, x.shape[0], 512)]
        return np.concatenate(out, 0).astype(np.float64)
