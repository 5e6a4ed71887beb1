"""The ``unet`` provider: a physics-informed U-Net that post-processes classical estimates.

The FBPConvNet recipe (Jin et al. 2017) on the model grid: a classical,
noise-aware linear inversion turns the data into images on the ``(nz, nx)``
grid, and a small 2D U-Net maps those images to the density model.

Inputs (``inputs=``, the ``"physics images"``)
---------------------------------------------
``dw``
    The depth-weighted minimum-norm model (``gravbench.providers.get(
    "depth-weighted").batch(G, problem, sigma=S)``: Li & Oldenburg depth
    weighting, lambda by the discrepancy principle with the given ``sigma``).
``tik``
    The data-space Tikhonov model (``get("tikhonov", engine="direct")``: the
    tikhonov refiner on the dense operator, the same lambda rules).
``atg``
    ``A^T W g`` with ``W = diag(1 / peak_c^2)`` (the peak ``|g|`` of each
    component), a back-projection that does not depend on ``sigma``.
``depth``
    The cell-centre depth over the grid depth, in [0, 1] (made inside the network).
``level``
    The relative noise level ``median(sigma / peak_c)`` as a constant image
    (0 when ``sigma`` is not given), divided by 0.05 (made inside the network).

The default and shipped inputs are ``dw, depth, level``: on the validation
split the depth-weighted image was a better base than the Tikhonov image,
adding ``tik`` or ``atg`` did not help, and depth and level helped a little
(the runs are tabulated in ``reports/unet.md``).

Without ``sigma`` (noise-free data, or the noise is unknown) the classical
images choose lambda by generalised cross-validation, as the ``tikhonov`` and
``depth-weighted`` providers do, and ``level`` is 0; the network was trained
on such draws too (``p_clean`` of them), so the same weights serve noisy data
with ``sigma`` and data without. (GCV rather than a small sigma floor: on 200 clean
validation models the depth-weighted image scores 0.714 with GCV and 0.80-0.82
with a floor of 0.1-1 % of the peak.) Every image is clipped to +-60,000 kg/m^3
and rounded to float16 before the network sees it, in training and at
inference alike (the training images are cached in that precision).

Network (:func:`build_model`)
-----------------------------
A 2D U-Net (shipped: widths 12/24/48/96, 274k parameters, 0.56 MB in
float16): ``widths = (w0, w1, ..., wL)`` channels per level, two 3x3
convolutions + ReLU per block, 2x2 max-pooling down (ceil mode: 50 -> 25 ->
13 -> 7), bilinear upsampling to the skip's size and concatenation on the way
up, a 1x1 convolution to one channel. Images are divided by the training
models' RMS density (``rho_scale``); with ``residual`` the output is the
first input image plus the network's correction (its last layer starts at
zero, so training starts from the classical estimate):
``rho = rho_scale * (x_0 + unet(x))``.

Training (``gravbench train unet``)
-----------------------------------
Each training model gets ``draws`` noise draws, the project's noise model
(Gaussian, ``sigma = level * peak |g_c|`` per component, the normals from
:func:`gravbench.data.noise.noisy` with the stream of the model's index) at a
level drawn per (model, draw): 0 (noise-free, no ``sigma``) with probability
``p_clean``, else uniform in ``(0, noise_max]``. Odd draws are flipped left
to right (images and model: the geometry is symmetric about the profile's
centre, so this is an exact augmentation). The physics images are computed
once (``jobs`` processes, one BLAS thread each) and cached per chunk of 1000
rows under ``<cache>/unet-inputs/`` keyed by the sha256 of the data, sigma,
problem and image kind, so an interrupted precompute resumes and a second
run pays nothing. The validation split gets one draw from the same mixture
(a fixed noise seed). Loss: the squared relative model error (as ``cnn``),
Adam with cosine decay, early stopping on the validation mean model error,
:func:`gravbench.providers._train.fit` (seeded, resumable, checkpointed).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import numpy as np

from . import get as _get_provider
from ._torchutil import require_torch, seed_all
from ._torchutil import device as _torch_device
from ._train import _progress, default_out, fit, load_state, load_weights, resolve_weights, save_weights
from .._cmdline import process_command
from .cnn import _resolve_dataset
from .._linalg.blas import single_thread_blas
from .base import NoWeightsError, Provider, ProviderInfo
from ..metrics import model_errors
from ..data import add_noise, cache_dir
from ..data.noise import noise_sigma, noisy
from ..data.sets import STANDARD, recorded
from ..geometry import Grid, Survey
from ..problem import Problem

__all__ = ["UNetProvider", "build_model", "train", "physics_images", "weights_for", "available", "WEIGHTS_DIR",
           "IMAGE_KINDS", "NET_KINDS", "DEFAULT_INPUTS", "DEFAULT_WIDTHS", "training_rows", "noise_levels",
           "probe_images", "probe_stats", "precompute", "inputs_cache_dir"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: channels computed from the data (cached for training) and channels the network makes itself
IMAGE_KINDS = ("dw", "tik", "atg")
NET_KINDS = ("depth", "level")
DEFAULT_INPUTS = ("dw", "depth", "level")
DEFAULT_WIDTHS = (12, 24, 48, 96)
#: version of the physics images (part of the cache key: bump when their definition changes)
INPUT_VERSION = 2
#: the ``level`` channel is ``level / LEVEL_SCALE``
LEVEL_SCALE = 0.05
#: noise seeds of the training draws (``TRAIN_NOISE_SEED + 100 * seed + draw``) and of the validation draw
TRAIN_NOISE_SEED = 10_000
VAL_NOISE_SEED = 9_999
CHUNK = 1000
#: images are clipped to +-IMAGE_CLIP (kg/m^3) before the float16 rounding (its range ends at 65504)
IMAGE_CLIP = 60_000.0


def _train_cmd(n):
    return f"gravbench train unet --dataset paper-{n}"


# --------------------------------------------------------------------------- physics images
def _parse_inputs(inputs):
    if isinstance(inputs, str):
        inputs = [s.strip() for s in inputs.replace("+", ",").split(",") if s.strip()]
    inputs = tuple(inputs)
    bad = [k for k in inputs if k not in IMAGE_KINDS + NET_KINDS]
    if not inputs or bad or len(set(inputs)) != len(inputs):
        raise ValueError(f"inputs must be distinct names from {IMAGE_KINDS + NET_KINDS}, got {inputs!r}")
    if inputs[0] not in IMAGE_KINDS:
        raise ValueError(f"the first input must be a physics image ({', '.join(IMAGE_KINDS)}), got {inputs[0]!r}")
    return inputs


def _parse_widths(widths):
    if isinstance(widths, str):
        widths = [s for s in re.split(r"[,x/ ]+", widths.strip()) if s]
    if isinstance(widths, (int, np.integer)):
        widths = (int(widths), 2 * int(widths), 4 * int(widths))
    try:
        w = tuple(int(v) for v in widths)
    except (TypeError, ValueError):
        raise ValueError(f"widths must be integers such as '12,24,48,96', got {widths!r}") from None
    if len(w) < 2 or min(w) < 1:
        raise ValueError(f"widths needs >= 2 levels of >= 1 channel, got {widths!r}")
    return w


def _unit(G, problem):
    """Per-datum peak |g| of each component of each row (mGal): the sigma of a unit noise level."""
    return noise_sigma(G, 1.0, n_components=len(problem.survey.components))


def noise_levels(G, problem, sigma):
    """Relative noise level per row, ``median(sigma / peak_c)``; 0 for rows without sigma (NaN) or all."""
    G = np.atleast_2d(np.asarray(G, dtype=np.float64))
    if sigma is None:
        return np.zeros(G.shape[0])
    S = np.broadcast_to(np.asarray(sigma, dtype=np.float64), G.shape)
    u = _unit(G, problem)
    with np.errstate(invalid="ignore", divide="ignore"):
        lv = np.median(S / np.where(u > 0, u, np.inf), axis=1)
    return np.where(np.isfinite(lv), lv, 0.0)


class _Solvers:
    """The classical providers that make the images, built once per process (each caches its dense A)."""

    def __init__(self):
        self._p = {}

    def get(self, kind):
        if kind not in self._p:
            self._p[kind] = (_get_provider("depth-weighted") if kind == "dw"
                             else _get_provider("tikhonov", engine="direct"))
        return self._p[kind]


def _image(kind, G, problem, S, solvers):
    """One image kind for the rows of ``G`` (``S``: sigma with NaN rows = no sigma, or None); float16-rounded."""
    B = G.shape[0]
    nz, nx = problem.shape
    if kind in ("dw", "tik"):
        p = solvers.get(kind)
        out = np.empty((B, nz, nx))
        known = np.zeros(B, bool) if S is None else np.all(np.isfinite(S), axis=1)
        if known.any():
            out[known] = p.batch(G[known], problem, sigma=S[known])
        if (~known).any():
            out[~known] = p.batch(G[~known], problem)
    elif kind == "atg":
        op = problem.operator()
        W = G / np.maximum(_unit(G, problem), 1e-300) ** 2
        out = np.stack([problem.to_grid(op.rmatvec(w)) for w in W])
    else:
        raise ValueError(f"unknown image kind {kind!r}")
    return np.clip(out, -IMAGE_CLIP, IMAGE_CLIP).astype(np.float16)


def physics_images(G, problem, sigma=None, *, inputs=DEFAULT_INPUTS, solvers=None):
    """The network's data-dependent inputs: ``(B, C, nz, nx)`` float32 images and ``(B,)`` noise levels.

    Parameters
    ----------
    G : array_like, shape (B, n_data)
        Observed gravity, mGal.
    problem : gravbench.Problem
    sigma : None or array_like broadcastable to (B, n_data)
        Noise std, mGal; rows holding NaN (internal use) or ``None`` mean "no sigma": lambda by GCV.
    inputs : sequence of str
        Channels (see the module docstring); only the ``IMAGE_KINDS`` among them are computed here.

    Returns
    -------
    images : ndarray (B, C_img, nz, nx) float32
        The ``dw`` / ``tik`` / ``atg`` images in the order of ``inputs`` (kg/m^3 for dw and tik).
    levels : ndarray (B,)
        Relative noise levels (0 without sigma).
    """
    inputs = _parse_inputs(inputs)
    G = np.ascontiguousarray(np.atleast_2d(np.asarray(G, dtype=np.float64)))
    S = None if sigma is None else np.broadcast_to(np.asarray(sigma, dtype=np.float64), G.shape)
    solvers = solvers or _Solvers()
    kinds = [k for k in inputs if k in IMAGE_KINDS]
    with single_thread_blas():  # one small eigendecomposition per row: BLAS threads only slow it down
        imgs = np.stack([_image(k, G, problem, S, solvers) for k in kinds], axis=1).astype(np.float32)
    return imgs, noise_levels(G, problem, S)


# --------------------------------------------------------------------------- the network
def build_model(inputs, nz, nx, *, widths=DEFAULT_WIDTHS, residual=True, in_scale=None, rho_scale=1.0):
    """The U-Net (a ``torch.nn.Module``): ``net(images, levels) -> rho`` of shape ``(B, nz, nx)``, kg/m^3.

    Parameters
    ----------
    inputs : sequence of str
        Channel names (module docstring); the ``IMAGE_KINDS`` among them are the ``images`` channels, in order.
    nz, nx : int
        Grid shape.
    widths : sequence of int
        Channels per level (``len(widths) - 1`` poolings).
    residual : bool
        Output = first image + correction.
    in_scale : sequence of float
        Divisors of the image channels (``rho_scale`` for dw / tik, an RMS for atg).
    rho_scale : float
        RMS density of the training models, kg/m^3: the network works in these units.
    """
    torch = require_torch()
    nn = torch.nn
    F = torch.nn.functional
    inputs = _parse_inputs(inputs)
    widths = _parse_widths(widths)
    kinds = [k for k in inputs if k in IMAGE_KINDS]
    sc = np.ones(len(kinds), np.float32) if in_scale is None else np.asarray(in_scale, np.float32)
    if sc.shape != (len(kinds),):
        raise ValueError(f"in_scale must have {len(kinds)} values (one per image channel), got shape {sc.shape}")

    def block(ci, co):
        return nn.Sequential(nn.Conv2d(ci, co, 3, padding=1), nn.ReLU(), nn.Conv2d(co, co, 3, padding=1), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inputs = inputs
            self.residual = bool(residual)
            self.register_buffer("in_scale", torch.as_tensor(sc))
            self.register_buffer("rho_scale", torch.tensor(float(rho_scale)))
            zc = (np.arange(nz, dtype=np.float32) + 0.5) / nz
            self.register_buffer("depth", torch.as_tensor(np.repeat(zc[:, None], nx, axis=1)))
            cin = len(inputs)
            self.enc = nn.ModuleList([block(cin if i == 0 else widths[i - 1], widths[i]) for i in range(len(widths))])
            self.dec = nn.ModuleList([block(widths[i + 1] + widths[i], widths[i]) for i in range(len(widths) - 1)])
            self.head = nn.Conv2d(widths[0], 1, 1)
            if self.residual:  # start from the classical estimate
                nn.init.zeros_(self.head.weight)
                nn.init.zeros_(self.head.bias)

        def stack(self, images, levels):
            x = images / self.in_scale[None, :, None, None]
            chans, j = [], 0
            B = x.shape[0]
            for k in self.inputs:
                if k in IMAGE_KINDS:
                    chans.append(x[:, j])
                    j += 1
                elif k == "depth":
                    chans.append(self.depth.expand(B, -1, -1))
                else:
                    chans.append((levels.to(x.dtype) / LEVEL_SCALE)[:, None, None].expand(B, nz, nx))
            return torch.stack(chans, 1), x[:, 0]

        def forward(self, images, levels):
            """``images`` (B, C_img, nz, nx) as :func:`physics_images` makes them, ``levels`` (B,) -> rho (B, nz, nx)."""
            x, first = self.stack(images.float(), levels)
            skips = []
            for i, e in enumerate(self.enc):
                if i:
                    x = F.max_pool2d(x, 2, ceil_mode=True)
                x = e(x)
                skips.append(x)
            for i in reversed(range(len(self.dec))):
                x = F.interpolate(x, size=skips[i].shape[-2:], mode="bilinear", align_corners=False)
                x = self.dec[i](torch.cat([x, skips[i]], 1))
            y = self.head(x)[:, 0]
            if self.residual:
                y = y + first * (self.in_scale[0] / self.rho_scale)
            return y * self.rho_scale

    return UNet()


# --------------------------------------------------------------------------- training data
def _problem_from_dict(d):
    sv = d["survey"]
    ground = sv.get("ground")
    survey = Survey(np.asarray(sv["x"]), np.asarray(sv["z"]), components=tuple(sv.get("components", ("gx", "gz"))),
                    ground=None if ground is None else (np.asarray(ground[0]), np.asarray(ground[1])))
    grid = Grid.from_edges(np.asarray(d["grid"]["x_edges"]), np.asarray(d["grid"]["z_edges"]))
    return Problem(grid, survey, d["kernel"])


def _draw_levels(index, noise_seed, p_clean, noise_max):
    """Level per row (0 = noise-free), from a stream keyed by (noise seed, sample index): subset-independent."""
    out = np.empty(len(index))
    for j, i in enumerate(index):
        u = np.random.default_rng([int(noise_seed), int(i), 0x0E7]).random(2)
        out[j] = 0.0 if u[0] < p_clean else noise_max * (1.0 - u[1])  # (0, noise_max]
    return out


def training_rows(g_clean, index, problem, noise_seed, *, p_clean=0.2, noise_max=0.05):
    """Noisy data, sigma (NaN rows: noise-free, no sigma) and levels of one draw.

    ``g = g_clean + level * peak_c * e`` with the normals ``e`` of :func:`gravbench.data.noise.noisy`
    (stream ``(noise_seed, index)``); returns ``(G, S, levels)``.
    """
    g_clean = np.atleast_2d(np.asarray(g_clean, dtype=np.float64))
    lv = _draw_levels(index, noise_seed, p_clean, noise_max)
    g1, unit = noisy(g_clean, index, 1.0, 0.0, "peak", int(noise_seed), n_components=len(problem.survey.components))
    G = g_clean + lv[:, None] * (g1 - g_clean)
    S = lv[:, None] * unit
    S[lv == 0] = np.nan
    return G, S, lv


def probe_images(problem, kind="dw", solvers=None):
    """The ``kind`` images of two fixed data vectors, with and without sigma: ``(2, nz, nx)`` float16.

    The data are those of a fixed two-block model (on relative coordinates) with 1 % noise sigma (row 0)
    and without sigma (row 1, GCV). They identify what the classical provider computes today: the
    training cache is keyed on them, and the manifest records their statistics so that a change of the
    ``depth-weighted`` / ``tikhonov`` providers (which would change the network's inputs) is caught.
    """
    nz, nx = problem.shape
    rho = np.zeros((nz, nx))
    rho[nz // 5: nz // 2, nx // 5: (2 * nx) // 5] = 300.0
    rho[nz // 3: (3 * nz) // 4, (3 * nx) // 5: (4 * nx) // 5] = -200.0
    rho = rho * problem.active if getattr(problem, "active_index", None) is not None else rho
    g = np.asarray(problem.forward(rho), dtype=np.float64)
    s = 0.01 * _unit(g[None], problem)[0]
    G = np.stack([g, g])
    S = np.stack([s, np.full_like(s, np.nan)])
    with single_thread_blas():
        return _image(kind, G, problem, S, solvers or _Solvers())


def probe_stats(images):
    """Per-row ``[mean |x|, RMS, max |x|]`` of probe images (kg/m^3), for the manifest and the tests."""
    a = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    return [[float(np.mean(np.abs(r))), float(np.sqrt(np.mean(r * r))), float(np.max(np.abs(r)))] for r in a]


def _key(kind, problem, G, S, probe=b""):
    h = hashlib.sha256()
    h.update(f"unet-inputs v{INPUT_VERSION} {kind}\n".encode())
    h.update(probe)
    h.update(json.dumps(problem.to_dict(), sort_keys=True).encode())
    h.update(np.ascontiguousarray(G, np.float64).tobytes())
    h.update(np.ascontiguousarray(S, np.float64).tobytes())
    return h.hexdigest()


def inputs_cache_dir():
    """``<cache>/unet-inputs``: the cached training images (float16 ``.npy`` per kind and chunk)."""
    return cache_dir() / "unet-inputs"


def _task(args):
    """Compute one (kind, chunk) of images in a worker and write it to ``path`` (atomically)."""
    pdict, kind, G, S, path = args
    with single_thread_blas():
        img = _image(kind, G, _problem_from_dict(pdict), S, _Solvers())
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, img, allow_pickle=False)
        os.replace(tmp, path)
    return img


def precompute(rows, problem, kinds, *, jobs=2, cache=True, progress=True, log=None):
    """Images of every kind for ``rows`` (a list of ``(G, S)`` chunks): ``{kind: [array per chunk]}``.

    Cached chunks are loaded; the rest are computed by ``jobs`` processes (spawned; one BLAS thread
    each) and written to :func:`inputs_cache_dir` when ``cache``. Returns the images and the seconds spent.
    """
    t0 = time.perf_counter()
    d = inputs_cache_dir()
    out = {k: [None] * len(rows) for k in kinds}
    todo = []
    for k in kinds:
        probe = probe_images(problem, k).tobytes() if cache else b""  # the provider's behaviour is in the key
        for c, (G, S) in enumerate(rows):
            path = d / f"{k}-{_key(k, problem, G, S, probe)[:32]}.npy" if cache else None
            if path is not None and path.is_file():
                try:
                    a = np.load(path, allow_pickle=False)
                    if a.shape == (G.shape[0],) + tuple(problem.shape) and a.dtype == np.float16:
                        out[k][c] = a
                        continue
                except (OSError, ValueError):
                    pass
            todo.append((k, c, (problem.to_dict(), k, G, S, None if path is None else str(path))))
    n_cached = sum(len(v) for v in out.values()) - len(todo)
    if log and todo:
        log(f"unet: computing {len(todo)} image chunks ({n_cached} cached) with {jobs} process(es)")
    with _progress(progress and bool(todo), "physics images", len(todo)) as prog:
        task = prog.add_task("physics images", total=len(todo), status="") if prog else None
        if int(jobs) <= 1 or len(todo) <= 1:
            for k, c, args in todo:
                out[k][c] = _task(args)
                if prog:
                    prog.advance(task)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(int(jobs), mp_context=mp.get_context("spawn")) as ex:
                futs = {ex.submit(_task, args): (k, c) for k, c, args in todo}
                for f in as_completed(futs):
                    k, c = futs[f]
                    out[k][c] = f.result()
                    if prog:
                        prog.advance(task)
    return out, time.perf_counter() - t0, len(todo), n_cached


def _assemble(ds, n, problem, kinds, noise_seeds, *, p_clean, noise_max, flip, jobs, cache, progress, log):
    """Images (N*draws, C, nz, nx) float16, levels, targets and the seconds spent, for the first ``n`` models.

    The level of a row is :func:`noise_levels` of its noisy data and sigma (the provider's rule), not the drawn
    level (``sigma / peak`` of the clean data): what the network is trained on is what it sees at inference.
    """
    gc = np.asarray(ds.g_clean[:n], dtype=np.float64)
    idx = np.asarray(ds.index[:n])
    rows, meta = [], []
    for d, s in enumerate(noise_seeds):
        G, S, _ = training_rows(gc, idx, problem, s, p_clean=p_clean, noise_max=noise_max)
        lv = noise_levels(G, problem, S)  # as the provider computes it from (g, sigma) at inference
        for a in range(0, n, CHUNK):
            rows.append((G[a:a + CHUNK], S[a:a + CHUNK]))
            meta.append((d, a, lv[a:a + CHUNK]))
    imgs, sec, n_new, n_cached = precompute(rows, problem, kinds, jobs=jobs, cache=cache, progress=progress, log=log)
    X, L, R = [], [], []
    rho = np.asarray(ds.rho[:n], dtype=np.float32)
    for c, (d, a, lv) in enumerate(meta):
        x = np.stack([imgs[k][c] for k in kinds], axis=1)
        r = rho[a:a + len(lv)]
        if flip and d % 2 == 1:
            x, r = x[..., ::-1], r[..., ::-1]
        X.append(np.ascontiguousarray(x))
        R.append(np.ascontiguousarray(r))
        L.append(lv)
    return (np.concatenate(X), np.concatenate(L).astype(np.float32), np.concatenate(R), sec, n_new, n_cached)


# --------------------------------------------------------------------------- weights lookup
def _manifests(weights_dir=None):
    d = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    out = []
    for m in sorted(d.glob("unet-*.json")):
        pt = m.with_suffix(".pt")
        try:
            man = json.loads(m.read_text())
        except (OSError, ValueError):
            continue
        if pt.exists() and isinstance(man, dict) and "shape" in man:
            out.append((pt, man))
    return out


def available(weights_dir=None):
    """``{n: path}`` of the shipped U-Net weights for ``Problem.paper(n)`` grids (``unet-<n>.pt``)."""
    return {int(man["n"]): pt for pt, man in _manifests(weights_dir)
            if man.get("n") is not None and pt.stem == f"unet-{man['n']}"}


def weights_for(problem, weights_dir=None):
    """The weight file trained for exactly ``problem``; ``NoWeightsError`` (listing what there is) otherwise."""
    want = problem.to_dict()
    mans = _manifests(weights_dir)
    for pt, man in mans:
        if man.get("problem") == want:
            return pt
    nz, nx = problem.shape
    have = "; ".join(f"{pt.name}: {man['shape'][0]}x{man['shape'][1]} grid, trained on "
                     f"{man.get('dataset', {}).get('name', '?')}" for pt, man in mans) or "none"
    named = [name for name, spec in STANDARD.items() if spec.problem() == problem]
    hint = (f"gravbench train unet --dataset {named[0]}" if named
            else "gravbench train unet --dataset <a data set built on this problem>")
    same = [pt.name for pt, man in mans if tuple(man["shape"]) == (nz, nx)]
    why = (f"the weights for a {nz}x{nx} grid ({', '.join(same)}) were trained for a different geometry "
           f"(stations, extent or kernel)" if same else f"no weights for a {nz}x{nx} grid")
    raise NoWeightsError(f"the unet provider has no weights for this problem ({problem.describe()}): {why}; "
                         f"it has: {have}; make them with: {hint}")


# --------------------------------------------------------------------------- the provider
class UNetProvider(Provider):
    """Physics-informed U-Net: classical images computed with the given sigma, then one network pass.

    Parameters
    ----------
    n : int, optional
        Check now that weights for ``Problem.paper(n)`` exist (``NoWeightsError`` otherwise).
    device : str
        Torch device (``"cpu"``, ``"cuda"``, ...).
    weights : path or str, optional
        A weight file (manifest beside it) or the name of weights in the user weights directory
        (``gravbench train unet`` writes ``<cache>/weights/unet-<n>.pt``), instead of the shipped ones.

    Notes
    -----
    ``sigma`` (mGal) sets the regularisation of the classical images (discrepancy principle) and the
    ``level`` channel; without it they use GCV and level 0, as the noise-free training draws did.
    """

    name = "unet"
    cost = ("a depth-weighted and a Tikhonov data-space solve (one N x N eigendecomposition each per data vector "
            "with sigma) + one U-Net pass")
    learned = True

    def __init__(self, n=None, device="cpu", weights=None):
        self._device = _torch_device(device)
        self._weights = resolve_weights(weights, "unet") if weights is not None else None
        self._nets = {}
        self._paths = {}
        self._solvers = _Solvers()
        if n is not None:
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"n must be a positive integer, got {n!r}")
            if (int(n), int(n)) not in set(self.grids()):
                have = ", ".join(f"{a}x{b}" for a, b in sorted(set(self.grids()))) or "none"
                raise NoWeightsError(f"the unet provider has no weights for a {n}x{n} grid (it has: {have}); "
                                     f"make them with: {_train_cmd(int(n))}")

    def grids(self):
        if self._weights is not None:
            try:
                return (tuple(json.loads(self._weights.with_suffix(".json").read_text())["shape"]),)
            except (OSError, ValueError, KeyError, TypeError):
                return ()
        return tuple(sorted({tuple(man["shape"]) for _, man in _manifests()}))

    @property
    def info(self):
        used = ({"any grid": str(self._weights)} if self._weights is not None
                else {f"{n}x{n}": str(p) for n, p in sorted(available().items())})
        return ProviderInfo(name=self.name, grids=tuple(self.grids()), cost=self.cost, learned=True,
                            extra={"weights": dict(self._paths) or used,
                                   "source": "user" if self._weights is not None else "shipped"})

    @property
    def manifest(self):
        """Manifests of the loaded networks, by grid shape ``(nz, nx)``."""
        return {tuple(man["shape"]): man for _, man in self._nets.values()}

    def _net(self, problem):
        path = self._weights if self._weights is not None else weights_for(problem)
        if path.name in self._nets:
            net, man = self._nets[path.name]
        else:
            sd, man = load_weights(path, map_location="cpu")
            try:
                cfg, nm = man["config"], man["normalisation"]
                net = build_model(cfg["inputs"], int(man["shape"][0]), int(man["shape"][1]), widths=cfg["widths"],
                                  residual=cfg["residual"], in_scale=nm["in_scale"], rho_scale=nm["rho_scale"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"the manifest {path.with_suffix('.json').name} of {path.name} has an invalid "
                                 f"config ({type(exc).__name__}: {exc}); reinstall gravbench or retrain the "
                                 f"weights") from None
            load_state(net, sd, path, man)
            net.eval().to(self._device)
            self._nets[path.name] = (net, man)
            self._paths[f"{man['shape'][0]}x{man['shape'][1]}"] = f"{path} (sha256 {str(man.get('sha256', ''))[:12]})"
        if man.get("problem") is not None and man["problem"] != problem.to_dict():
            raise NoWeightsError(f"the unet weights {path.name} were trained for a different problem "
                                 f"({man['shape'][0]}x{man['shape'][1]} grid, data set "
                                 f"{man.get('dataset', {}).get('name', '?')}); this problem is: {problem.describe()}; "
                                 f"train for it with: gravbench train unet --dataset <a data set on this problem>")
        return net, man

    def _batch(self, G, problem, sigma, seed):
        torch = require_torch()
        net, man = self._net(problem)
        imgs, lv = physics_images(G, problem, sigma, inputs=man["config"]["inputs"], solvers=self._solvers)
        out = []
        with torch.no_grad():
            for i in range(0, imgs.shape[0], 256):
                x = torch.as_tensor(imgs[i:i + 256], device=self._device)
                lt = torch.as_tensor(lv[i:i + 256], dtype=torch.float32, device=self._device)
                out.append(net(x, lt).cpu().numpy())
        return np.concatenate(out, 0).astype(np.float64)


# --------------------------------------------------------------------------- training
def _resolve(dataset, split, val=None):
    if hasattr(dataset, "rho") and hasattr(dataset, "g_clean"):
        if split == "train":
            return dataset
        if val is None:
            raise ValueError("dataset given as a Dataset object: pass its validation set as val=")
        return val
    return _resolve_dataset(dataset, split, 0.01)


def _predict(net, X, L, batch=256):
    torch = require_torch()
    out = []
    with torch.no_grad():
        for i in range(0, X.shape[0], batch):
            out.append(net(torch.as_tensor(X[i:i + batch]), torch.as_tensor(L[i:i + batch])).numpy())
    return np.concatenate(out, 0)


def train(dataset="paper-50", *, epochs=5, batch_size=32, lr=2e-3, seed=0, out=None, resume=False, device="cpu",
          progress=True, inputs=DEFAULT_INPUTS, widths=DEFAULT_WIDTHS, residual=True, draws=2, p_clean=0.2,
          noise_max=0.05, flip=True, max_train=None, max_val=None, level_val=200, patience=3, max_seconds=None,
          stop_after=None, checkpoint=None, threads=None, jobs=2, cache=True, val=None, command=None,
          weight_decay=0.0, lr_schedule="cosine", log=None, **unknown):
    """Train the U-Net provider and write its weights and manifest (see the module docstring).

    Parameters
    ----------
    dataset : str, path or Dataset
        A standard set name (``"paper-50"``), a training-set path (its ``val`` split beside it) or a
        ``Dataset`` (then pass ``val=``).
    epochs, batch_size, lr, seed
        Schedule: Adam, cosine decay from ``lr`` to ``lr/20`` over ``epochs``.
    out : path, optional
        Weight file (default ``<cache>/weights/unet-<n>.pt``; never the package unless it points there).
    resume : bool
        Continue from the checkpoint (``checkpoint`` or ``out`` with ``.ckpt``).
    inputs : str or sequence
        Channels, e.g. ``"dw,tik,depth,level"`` (the first must be a physics image: the residual's base).
    widths : str or sequence of int
        U-Net channels per level, e.g. ``"12,24,48,96"``.
    residual : bool
        Output = first image + correction.
    draws : int
        Noise draws per training model (odd draws flipped left to right when ``flip``).
    p_clean, noise_max : float
        Level mixture: noise-free (no sigma) with probability ``p_clean``, else uniform in (0, ``noise_max``].
    max_train, max_val : int, optional
        Use only the first models of the training / validation split.
    level_val : int
        Validation models scored at the fixed levels 0, 1, 3, 5 % for the manifest (0: skip).
    patience, max_seconds, stop_after
        Early stopping (epochs), a wall-clock limit (recorded as ``stop_after`` in ``reproduce``), or a
        fixed number of epochs of the schedule.
    threads : int, optional
        ``torch.set_num_threads``.
    jobs : int
        Processes computing the physics images.
    cache : bool
        Cache the physics images under ``<cache>/unet-inputs``.
    command : str, optional
        The command recorded in the manifest (default: this process's command line).

    Returns
    -------
    dict
        The manifest written beside the weights.
    """
    if unknown:
        raise ValueError(f"unknown option(s) for unet: {', '.join(sorted(unknown))}")
    inputs = _parse_inputs(inputs)
    widths = _parse_widths(widths)
    draws = int(draws)
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    if not 0.0 <= float(p_clean) <= 1.0:
        raise ValueError(f"p_clean must be in [0, 1], got {p_clean}")
    if not 0.0 < float(noise_max) < 1.0:
        raise ValueError(f"noise_max must be in (0, 1), got {noise_max}")
    residual = bool(residual) if not isinstance(residual, str) else residual.lower() in ("1", "true", "yes")
    flip = bool(flip) if not isinstance(flip, str) else flip.lower() in ("1", "true", "yes")
    log = log or (lambda *_: None)
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
    kinds = [k for k in inputs if k in IMAGE_KINDS]
    common = dict(p_clean=float(p_clean), noise_max=float(noise_max), jobs=int(jobs), cache=bool(cache),
                  progress=progress, log=log)
    t_pre = time.perf_counter()
    tr_seeds = [TRAIN_NOISE_SEED + 100 * int(seed) + d for d in range(draws)]
    Xtr, Ltr, Rtr, sec_tr, new_tr, cached_tr = _assemble(tr, n_tr, prob, kinds, tr_seeds, flip=flip, **common)
    Xva, Lva, Rva, sec_va, new_va, cached_va = _assemble(va, n_va, prob, kinds, [VAL_NOISE_SEED], flip=False,
                                                         **common)
    pre_seconds = time.perf_counter() - t_pre
    rho_tr = np.asarray(tr.rho[:n_tr], dtype=np.float64)
    rho_scale = float(np.sqrt(np.mean(rho_tr ** 2)))
    if not rho_scale > 0:
        raise ValueError("training models have no density contrast (all zero)")
    in_scale = [rho_scale if k in ("dw", "tik") else float(np.sqrt(np.mean(Xtr[:, j].astype(np.float64) ** 2)))
                or 1.0 for j, k in enumerate(kinds)]
    floor = 0.05 * float(rho_tr.max() - rho_tr.min()) / rho_scale  # as the cnn's loss: 5 % of the range per cell
    mk = dict(widths=widths, residual=residual, in_scale=in_scale, rho_scale=rho_scale)
    model = build_model(inputs, nz, nx, **mk)

    def loss_fn(net, x, lv, rho):
        d = ((net(x, lv) - rho) / rho_scale).flatten(1)
        den = (rho / rho_scale).flatten(1).pow(2).mean(1).clamp_min(floor ** 2)
        return torch.mean(d.pow(2).mean(1) / den)

    def val_fn(net, x, lv, rho):
        e = (torch.linalg.vector_norm((net(x, lv) - rho).flatten(1), dim=1)
             / torch.linalg.vector_norm(rho.flatten(1), dim=1).clamp_min(1e-30))
        return e.mean()

    train_t = (torch.from_numpy(Xtr), torch.from_numpy(Ltr), torch.from_numpy(Rtr))
    val_t = (torch.from_numpy(Xva), torch.from_numpy(Lva), torch.from_numpy(Rva))
    tag = f"{nx}" if nx == nz else f"{nz}x{nx}"
    out = Path(out) if out else default_out("unet", (nz, nx))
    ckpt = Path(checkpoint) if checkpoint else out.with_name(out.stem + ".ckpt")
    hist = fit(model, train_t, val_t, loss_fn=loss_fn, val_fn=val_fn, epochs=int(epochs), batch_size=int(batch_size),
               lr=float(lr), seed=int(seed), checkpoint=ckpt, resume=resume, device=device, progress=progress,
               patience=int(patience), max_seconds=max_seconds, stop_after=stop_after, description=f"unet-{tag}",
               lr_schedule=lr_schedule, weight_decay=float(weight_decay))
    model.eval().cpu()
    # metrics with the float16 weights, as shipped
    half = build_model(inputs, nz, nx, **mk)
    half.load_state_dict({k: (v.half().float() if v.is_floating_point() else v) for k, v in model.state_dict().items()})
    half.eval()
    ev = model_errors(Rva, _predict(half, Xva, Lva))
    by_level = {}
    t_lv = time.perf_counter()
    if int(level_val) > 0:
        sub = va.subset(slice(0, min(int(level_val), len(va.rho))))
        solvers = _Solvers()
        for lvl in (0.0, 0.01, 0.03, 0.05):
            ds = add_noise(sub, lvl) if lvl > 0 else sub
            imgs, lv = physics_images(ds.g if lvl > 0 else ds.g_clean, prob, ds.sigma if lvl > 0 else None,
                                      inputs=inputs, solvers=solvers)
            e = model_errors(ds.rho, _predict(half, imgs, lv.astype(np.float32)))
            by_level[f"{lvl:g}"] = {"mean": float(e.mean()), "median": float(np.median(e)), "count": int(len(e))}
    ds_name = str(dataset) if isinstance(dataset, (str, Path)) else f"<in-memory {type(dataset).__name__}>"
    fp = None
    if isinstance(dataset, str) and dataset in STANDARD:
        rec = recorded(dataset)
        if rec is not None:
            fp = {"name": dataset, "generator_version": rec.get("generator_version"),
                  **{s: rec.get("splits", {}).get(s) for s in ("train", "val")}}
    cmd = command or process_command()
    manifest = {
        "model": "unet",
        "n": int(nx) if nx == nz else None,
        "shape": [int(nz), int(nx)],
        "problem": prob.to_dict(),
        "config": {"inputs": list(inputs), "widths": list(widths), "residual": bool(residual),
                   "input_version": INPUT_VERSION, "level_scale": LEVEL_SCALE,
                   "image_probe": {k: probe_stats(probe_images(prob, k)) for k in kinds},
                   "image_probe_note": "probe_stats(probe_images(problem, kind)): [mean |x|, RMS, max |x|] of the "
                                       "images of a fixed two-block model with 1 % sigma and without sigma; the "
                                       "network expects the classical providers to still give these",
                   "images": "dw: get('depth-weighted'), tik: get('tikhonov', engine='direct'), both with the given "
                             "sigma (discrepancy principle) or GCV without it; atg: A^T diag(1/peak_c^2) g; "
                             "rounded to float16"},
        "normalisation": {"rho_scale": rho_scale, "in_scale": in_scale,
                          "note": "images / in_scale per channel; rho = rho_scale * (x_0 + unet(x)) with residual"},
        "command": cmd,
        "dataset": {"name": ds_name, "train_count": int(n_tr), "val_count": int(n_va),
                    "meta": {k: v for k, v in (getattr(tr, "meta", {}) or {}).items()
                             if isinstance(v, (str, int, float, bool))}},
        "noise": {"draws": draws, "p_clean": float(p_clean), "noise_max": float(noise_max), "flip_odd_draws": flip,
                  "train_noise_seeds": tr_seeds, "val_noise_seed": VAL_NOISE_SEED,
                  "model": "sigma = level * peak |g_c| per component (gravbench.data.noise, 'peak'); level 0 with "
                           "probability p_clean (no sigma: GCV images), else uniform in (0, noise_max]"},
        "training": {"epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr), "seed": int(seed),
                     "patience": int(patience), "device": str(device), "lr_schedule": lr_schedule,
                     "weight_decay": float(weight_decay), "loss": "squared relative model error (floor 5 % of the range)",
                     "epochs_run": hist["epochs_run"], "best_epoch": hist["best_epoch"], "stopped": hist["stopped"],
                     "seconds": round(hist["seconds"], 1), "precompute_seconds": round(pre_seconds, 1),
                     "precompute": {"train_chunks_computed": new_tr, "train_chunks_cached": cached_tr,
                                    "val_chunks_computed": new_va, "val_chunks_cached": cached_va, "jobs": int(jobs),
                                    "rows": int(Xtr.shape[0]) + int(Xva.shape[0])},
                     "torch_threads": int(torch.get_num_threads())},
        "metrics": {"val_model_error_mean": float(ev.mean()), "val_model_error_median": float(np.median(ev)),
                    "val_model_error_p90": float(np.quantile(ev, 0.9)),
                    "val": f"first {n_va} val models, one draw each from the training level mixture (noise seed "
                           f"{VAL_NOISE_SEED})",
                    "val_by_level": by_level,
                    "val_by_level_note": f"first {min(int(level_val), len(va.rho))} val models with the standard "
                                         "noise (gravbench.data.add_noise, the set's seed); 0: clean data, no sigma",
                    "val_by_level_seconds": round(time.perf_counter() - t_lv, 1),
                    "history": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in h.items()}
                                for h in hist["history"]]},
        "n_params": int(sum(p.numel() for p in model.parameters())),
    }
    if fp is not None:
        manifest["dataset_fingerprint"] = fp
    rep = cmd
    if hist["stopped"] == "time-limit":
        rep = re.sub(r"(-o )?max_seconds=\S+", f"\\1stop_after={hist['epochs_run']}", rep)
        if "stop_after" not in rep:
            rep += f"  (with stop_after={hist['epochs_run']})"
    manifest["reproduce"] = rep
    return save_weights(model.state_dict(), out, manifest, half=True)
