"""A generic, seeded training loop with resumable checkpoints and early stopping.

Shared by every trained provider (CNN here; VAE/GAN in
:mod:`gravbench.providers.latent`). Nothing imports torch at module import.

Signatures
----------
``fit(model, train, val, *, loss_fn, epochs, batch_size, lr, seed, checkpoint=None,
resume=False, device="cpu", progress=True, patience=10, min_delta=0.0,
weight_decay=0.0, val_fn=None, optimizer=None, lr_schedule="cosine",
max_seconds=None, stop_after=None, description="training") -> dict``

    * ``model``: a ``torch.nn.Module``.
    * ``train``, ``val``: tuples of tensors with the same first dimension
      (e.g. ``(inputs, targets)``); batches are slices of them, shuffled
      each epoch with ``torch.Generator().manual_seed(seed + epoch)`` so a
      resumed run draws the same batches as an uninterrupted one.
    * ``loss_fn(model, *batch) -> scalar tensor`` (the training loss; may
      use ``model.training``); ``val_fn(model, *batch) -> scalar tensor``
      (default ``loss_fn``) is evaluated under ``torch.no_grad`` and
      averaged over the validation set weighted by batch size.
    * ``optimizer``: ``None`` (Adam with ``lr``, ``weight_decay``) or a
      callable ``params -> torch.optim.Optimizer``.
    * ``lr_schedule``: ``"cosine"`` (cosine decay to lr/20 over ``epochs``),
      ``"exp"`` (exponential decay to lr/20 over ``epochs``: ``lr 20^(-epoch/epochs)``)
      or ``"constant"``.
    * ``checkpoint``: a path; after every epoch it holds the model,
      optimizer, epoch, best state and history (``torch.save``; loaded back
      with ``weights_only=True``). ``resume=True`` continues from it.
    * Early stopping: stop when the validation loss has not improved by
      more than ``min_delta`` (relative) for ``patience`` epochs, or after
      ``max_seconds``, or after ``stop_after`` epochs of the ``epochs``-long
      schedule (reproduces a time-limited run exactly); the best-validation
      weights are loaded into ``model`` at the end.
    * Returns ``{"best_epoch", "best_val", "epochs_run", "stopped",
      "history": [{"epoch", "train", "val", "lr", "seconds"}...],
      "seconds"}``.

    * ``checkpoint_dir`` (with ``chain_key``, ``resume_from``): a :class:`CheckpointChain`, one
      checkpoint per epoch that also holds the torch / numpy / Python RNG states, the epoch's data order
      and the schedule position (numpy's and Python's global generators are seeded with ``seed`` too),
      plus ``chain.json`` with the sha256 of every checkpoint. ``resume=True`` continues from its last
      checkpoint (from scratch when there is none, so the same call starts and resumes a run);
      ``resume_from=k`` from checkpoint k. Resuming gives the same checkpoint bytes as an uninterrupted run.
    * ``on_epoch(history_entry)``: called after every epoch (e.g. a log line).

``save_weights(state_dict, path, manifest, *, half=True) -> dict``
    Writes ``path`` (``.pt``: float tensors stored as float16 when ``half``)
    and ``path.with_suffix(".json")``: the manifest plus ``sha256``,
    ``bytes``, ``file`` and ``gravbench_version``. Returns the manifest.
    The pair is written atomically: both files are first written completely
    (and fsynced) as hidden ``.<name>.pending`` files, then renamed into place;
    a process killed between the two renames leaves the new weights with the
    pending manifest, which :func:`load_weights` finds and renames (roll
    forward), so a reader sees the old pair or the new pair, never a mix.

``load_weights(path, *, map_location="cpu") -> (state_dict, manifest)``
    Checks the file's sha256 against its manifest (``ValueError`` naming
    both hashes if they differ), then ``torch.load(weights_only=True)``;
    float16 tensors are returned as float32. An unreadable manifest, or a
    file torch refuses to load as plain tensors, is a ``ValueError`` saying so.

``user_weights_dir()`` -> ``<cache>/weights`` (``$GRAVBENCH_CACHE/weights``):
    where ``gravbench train`` writes by default (never into the package).

``resolve_weights(weights, kind)`` -> the ``.pt`` path of ``weights`` given as
    a path or as a name in :func:`user_weights_dir` (``"my-cnn"`` ->
    ``<cache>/weights/my-cnn.pt``).

``gravbench._cmdline.process_command()`` -> the command that started this process (for manifests).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from pathlib import Path

from ._torchutil import device as _device
from ._torchutil import require_torch, seed_all, sha256_file
from .. import __version__
from ..data import cache_dir

__all__ = ["fit", "save_weights", "load_weights", "user_weights_dir", "resolve_weights",
           "default_out", "load_state", "CheckpointChain", "checkpoints_dir", "get_rng_state", "set_rng_state"]


def _progress(enabled, description, total):
    from contextlib import nullcontext

    if not enabled:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(), transient=False)


def fit(model, train, val, *, loss_fn, epochs, batch_size, lr, seed, checkpoint=None, resume=False,
        device="cpu", progress=True, patience=10, min_delta=0.0, weight_decay=0.0, val_fn=None,
        optimizer=None, lr_schedule="cosine", max_seconds=None, stop_after=None, description="training",
        checkpoint_dir=None, chain_key=None, resume_from=None, on_epoch=None):
    """Train ``model`` on ``train``, early-stopping on ``val``; see the module docstring."""
    torch = require_torch()

    dev = _device(device)
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if lr_schedule not in ("cosine", "constant", "exp"):
        raise ValueError(f"lr_schedule must be 'cosine', 'exp' or 'constant', got {lr_schedule!r}")
    train = tuple(train)
    val = tuple(val)
    n_train = int(train[0].shape[0])
    if any(int(t.shape[0]) != n_train for t in train) or n_train == 0:
        raise ValueError("train tensors must be non-empty and share their first dimension")
    n_val = int(val[0].shape[0])
    if any(int(t.shape[0]) != n_val for t in val) or n_val == 0:
        raise ValueError("val tensors must be non-empty and share their first dimension")
    val_fn = val_fn or loss_fn

    seed_all(seed)
    model.to(dev)
    opt = optimizer(model.parameters()) if optimizer else torch.optim.Adam(
        model.parameters(), lr=lr, weight_decay=weight_decay)

    def lr_at(epoch):
        if lr_schedule == "constant":
            return lr
        lo = lr / 20
        if lr_schedule == "exp":  # exponential decay from lr to lr/20 over the schedule's epochs
            return lr * (lo / lr) ** (epoch / max(1, epochs))
        return lo + 0.5 * (lr - lo) * (1 + math.cos(math.pi * epoch / max(1, epochs)))

    state = {"epoch": 0, "best_val": float("inf"), "best_epoch": -1, "bad": 0, "history": [], "best_state": None}
    ckpt = Path(checkpoint) if checkpoint else None
    chain = None
    if checkpoint_dir is not None:
        import random

        import numpy as np

        np.random.seed(int(seed) % 2**32)   # a chain carries every generator's state, so it seeds all three
        random.seed(int(seed))
        chain = CheckpointChain(checkpoint_dir, key=chain_key)
        saved = chain.load(resume_from) if (resume or resume_from is not None) else None
        if saved is not None:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            for k in ("epoch", "best_val", "best_epoch", "bad", "history", "best_state"):
                state[k] = saved[k]
            state["epoch"] = int(state["epoch"])
            state["best_val"] = float(state["best_val"])
            state["history"] = chain.with_seconds(state["history"])
            set_rng_state(saved["rng"])
    elif resume:
        if ckpt is None or not ckpt.exists():
            raise ValueError(f"resume=True but the checkpoint {ckpt} does not exist")
        saved = torch.load(ckpt, map_location=dev, weights_only=True)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        for k in ("epoch", "best_val", "best_epoch", "bad", "history", "best_state"):
            state[k] = saved[k]
        state["epoch"] = int(state["epoch"])
        state["best_val"] = float(state["best_val"])

    def to_dev(ts):
        return tuple(t.to(dev) for t in ts)

    def evaluate():
        model.eval()
        tot = 0.0
        with torch.no_grad():
            for i in range(0, n_val, batch_size):
                b = to_dev(t[i:i + batch_size] for t in val)
                tot += float(val_fn(model, *b)) * int(b[0].shape[0])
        return tot / n_val

    t_start = time.perf_counter()
    elapsed0 = sum(h["seconds"] for h in state["history"])
    stopped = "epochs"
    if state["bad"] >= patience:
        stopped = "early-stop"
    n_batches = math.ceil(n_train / batch_size)
    with _progress(progress, description, epochs) as prog:
        task = prog.add_task(description, total=epochs, completed=state["epoch"], status="") if prog else None
        last = epochs if stop_after is None else min(epochs, int(stop_after))
        while state["epoch"] < last and stopped == "epochs":
            ep = state["epoch"]
            t0 = time.perf_counter()
            for gparam in opt.param_groups:
                gparam["lr"] = lr_at(ep)
            gen = torch.Generator().manual_seed(int(seed) * 1000003 + ep)
            perm = torch.randperm(n_train, generator=gen)  # the data order: a function of (seed, epoch) only
            model.train()
            tot = 0.0
            for j in range(n_batches):
                idx = perm[j * batch_size:(j + 1) * batch_size]
                b = to_dev(t[idx] for t in train)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model, *b)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training loss became {float(loss)} at epoch {ep}; lower lr")
                loss.backward()
                opt.step()
                tot += float(loss.detach()) * int(idx.shape[0])
            v = evaluate()
            sec = time.perf_counter() - t0
            state["history"].append({"epoch": ep, "train": tot / n_train, "val": v, "lr": lr_at(ep), "seconds": sec})
            if v < state["best_val"] * (1 - min_delta):
                state["best_val"], state["best_epoch"], state["bad"] = v, ep, 0
                state["best_state"] = {k: t.detach().cpu().clone() for k, t in model.state_dict().items()}
            else:
                state["bad"] += 1
            state["epoch"] = ep + 1
            if ckpt is not None:
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                tmp = ckpt.with_name(ckpt.name + ".tmp")
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), **state}, tmp)
                os.replace(tmp, ckpt)
            if chain is not None:
                chain.save(state["epoch"], {
                    "model": model.state_dict(), "optimizer": opt.state_dict(),
                    **{k: v for k, v in state.items() if k != "history"},
                    "history": [{k: v for k, v in h.items() if k != "seconds"} for h in state["history"]],
                    "rng": get_rng_state(), "data_order": perm.clone(),
                    "schedule": {"lr_schedule": lr_schedule, "lr": float(lr), "epochs": int(epochs),
                                 "next_lr": float(lr_at(state["epoch"]))},
                }, {"train": tot / n_train, "val": v, "lr": lr_at(ep), "seconds": sec})
            if on_epoch is not None:
                on_epoch(state["history"][-1])
            if prog:
                prog.update(task, completed=state["epoch"],
                            status=f"train {tot / n_train:.4g}  val {v:.4g}  best {state['best_val']:.4g}@{state['best_epoch']}")
            if state["bad"] >= patience:
                stopped = "early-stop"
            elif max_seconds is not None and time.perf_counter() - t_start > max_seconds:
                stopped = "time-limit"
            elif state["epoch"] >= last and last < epochs:
                stopped = "stop-after"
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    return {
        "best_epoch": int(state["best_epoch"]),
        "best_val": float(state["best_val"]),
        "epochs_run": int(state["epoch"]),
        "stopped": stopped,
        "history": state["history"],
        "seconds": elapsed0 + (time.perf_counter() - t_start),
    }


def user_weights_dir():
    """Where trained weights go by default: ``<cache>/weights`` (``$GRAVBENCH_CACHE`` or ``~/.cache/gravbench``)."""

    return cache_dir() / "weights"


def default_out(kind, shape):
    """The default weights file of ``gravbench train <kind>``: ``<cache>/weights/<kind>-<n>.pt`` (never the package)."""
    nz, nx = (shape, shape) if isinstance(shape, int) else tuple(shape)
    tag = f"{nx}" if nz == nx else f"{nz}x{nx}"
    return user_weights_dir() / f"{kind}-{tag}.pt"


def resolve_weights(weights, kind="weights"):
    """The weights file named by ``weights``: an existing path, or a name in :func:`user_weights_dir`.

    Parameters
    ----------
    weights : str or Path
        ``"path/to/file.pt"``, or a name such as ``"cnn-50"`` / ``"my-run"`` (``.pt`` optional) of
        weights written by ``gravbench train`` into the user weights directory.
    kind : str
        For messages (``"cnn"``, ``"vae"``, ...).

    Raises
    ------
    ValueError
        Neither a file nor a known name (the message lists the user weights there are).
    """
    if not isinstance(weights, (str, os.PathLike)) or not str(weights):
        raise ValueError(f"weights must be a weights file path or the name of trained weights, got {weights!r}")
    p = Path(weights).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        raise ValueError(f"weights: {p} is a directory; expected a .pt file (with its .json manifest beside it)")
    d = user_weights_dir()
    if p.parent == Path(".") and not str(weights).startswith("."):
        cand = d / (p.name if p.suffix == ".pt" else p.name + ".pt")
        if cand.is_file():
            return cand
    have = sorted(q.stem for q in d.glob("*.pt")) if d.is_dir() else []
    raise ValueError(f"weights: no file {p} and no trained {kind} weights of that name in {d} "
                     f"(there: {', '.join(have) or 'none'}); train some with: gravbench train {kind} --out PATH")


def _pending(path):
    path = Path(path)
    return path.with_name(f".{path.name}.pending")


def _write_synced(path, data):
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _serialise(torch, state_dict, name):
    """The bytes ``torch.save`` writes for ``state_dict`` into a file called ``name``.

    torch names the zip archive inside the file after the file's stem (``cnn-50/data.pkl``;
    ``archive/...`` when it writes to a buffer), so the bytes are made by saving to a file
    of that name in a private temporary directory: the same weights give the same file,
    and the same sha256, wherever they are written.
    """
    with tempfile.TemporaryDirectory(prefix="gravbench-weights-") as tmp:
        f = Path(tmp) / name
        torch.save(state_dict, f)
        return f.read_bytes()


def save_weights(state_dict, path, manifest, *, half=True):
    """Write ``state_dict`` to ``path`` and its manifest to ``path.with_suffix('.json')``; see module docstring."""
    torch = require_torch()

    path = Path(path)
    mpath = path.with_suffix(".json")
    if path.suffix != ".pt":
        raise ValueError(f"weights file must end in .pt, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {}
    for k, t in state_dict.items():
        t = t.detach().cpu()
        if half and t.is_floating_point():
            t = t.to(torch.float16)
        sd[k] = t.contiguous()
    data = _serialise(torch, sd, path.name)

    man = dict(manifest)
    man.update({"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                "gravbench_version": __version__, "dtype": "float16" if half else "float32"})
    text = (json.dumps(man, indent=2, sort_keys=False) + "\n").encode("utf-8")
    pw, pm = _pending(path), _pending(mpath)
    try:
        _write_synced(pw, data)
        _write_synced(pm, text)
        os.replace(pw, path)   # from here on, load_weights rolls the manifest forward if we die
        os.replace(pm, mpath)
    except BaseException:
        if pw.exists():  # the old pair is intact: drop the new files
            for q in (pw, pm):
                try:
                    os.unlink(q)
                except OSError:
                    pass
        raise
    return man


def _read_manifest(mpath, path):
    try:
        man = json.loads(Path(mpath).read_text(encoding="utf-8"))
        if not isinstance(man, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"the manifest {mpath} of the weights {path.name} is unreadable ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:120]}); the weights cannot be verified: reinstall gravbench "
                         f"or retrain them (gravbench train ...)") from None
    return man


def _roll_forward(path, mpath):
    """Finish a save that died between its two renames: the pending manifest that matches ``path`` goes in place."""
    pm = _pending(mpath)
    if not pm.exists() or _pending(path).exists():
        return False
    try:
        man = json.loads(pm.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if isinstance(man, dict) and man.get("sha256") == sha256_file(path):
        os.replace(pm, mpath)
        return True
    return False


def load_weights(path, *, map_location="cpu"):
    """Verify ``path`` against its manifest's sha256, then load it with ``weights_only=True``."""
    torch = require_torch()
    path = Path(path)
    mpath = path.with_suffix(".json")
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if not mpath.exists() and not _roll_forward(path, mpath):
        raise ValueError(f"weights file {path} has no manifest {mpath.name}; refusing to load unverified weights")
    got = sha256_file(path)
    try:
        man = _read_manifest(mpath, path)
    except ValueError:
        if not _roll_forward(path, mpath):
            raise
        man = _read_manifest(mpath, path)
    if got != man.get("sha256") and _roll_forward(path, mpath):
        man = _read_manifest(mpath, path)
    if got != man.get("sha256"):
        raise ValueError(
            f"weights file {path} failed its integrity check: sha256 {got} does not match the manifest's "
            f"{man.get('sha256')}; the file is corrupted or was modified (retrain with: {man.get('command', 'gravbench train ...')})")
    try:
        sd = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch's message suggests an unsafe retry; do not pass it on
        raise ValueError(f"weights file {path} is not a plain tensor file: torch refused to load it safely "
                         f"({type(exc).__name__}); its manifest hash matches, so both were replaced; gravbench only "
                         f"loads tensors (weights_only=True): reinstall gravbench or retrain the weights") from None
    if not isinstance(sd, dict) or not all(hasattr(t, "is_floating_point") for t in sd.values()):
        raise ValueError(f"weights file {path} does not hold a state dict of tensors")
    sd = {k: (t.float() if t.is_floating_point() else t) for k, t in sd.items()}
    return sd, man


def load_state(module, state_dict, path, manifest):
    """``module.load_state_dict(state_dict)`` with a clear ``ValueError`` when the manifest does not fit the file.

    The sha256 check covers the weights file, not its manifest: an edited ``config`` builds a
    network whose layers do not match the stored tensors.
    """
    try:
        module.load_state_dict(state_dict)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        first = " ".join(str(exc).split())[:160]
        raise ValueError(f"the manifest {Path(path).with_suffix('.json').name} does not describe the weights in "
                         f"{Path(path).name} (config {manifest.get('config')!r}; {first}); the manifest was edited "
                         f"or belongs to other weights: reinstall gravbench or retrain them") from None
    return module


# --------------------------------------------------------------------------- checkpoint chains
def checkpoints_dir():
    """Where checkpoint chains go by default: ``<cache>/checkpoints`` (never the repository)."""
    return cache_dir() / "checkpoints"


def get_rng_state():
    """The torch, numpy (global) and Python ``random`` states as plain tensors / ints (``weights_only`` loadable)."""
    import random

    import numpy as np

    torch = require_torch()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    ver, pstate, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": {"version": int(ver), "state": torch.tensor(list(pstate), dtype=torch.int64),
                       "gauss_next": gauss_next}}


def set_rng_state(st):
    """Restore what :func:`get_rng_state` returned."""
    import random

    import numpy as np

    torch = require_torch()
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), int(n["pos"]), int(n["has_gauss"]),
                         float(n["cached_gaussian"])))
    p = st["python"]
    random.setstate((int(p["version"]), tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))


def _canonical(obj):
    """``obj`` rebuilt with every string interned: pickle shares objects by identity, so the same values
    must be the same objects whether they were made in this process or loaded from a checkpoint."""
    import sys

    if isinstance(obj, str):
        return sys.intern(obj)
    if isinstance(obj, dict):
        return {_canonical(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_canonical(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_canonical(v) for v in obj)
    return obj


class CheckpointChain:
    """One checkpoint per epoch in ``directory`` (``epoch-0001.pt`` ...) and a manifest ``chain.json``.

    Every checkpoint holds what the next epoch needs to be computed bit for bit (model, optimiser,
    schedule position, early-stopping state, the RNG states of torch, numpy and Python, the epoch's data
    order); it holds no wall-clock times, so the same epoch gives the same bytes in any run. Its bytes are
    written to a hidden pending file, fsynced and renamed into place, and then ``chain.json`` (written the
    same way) records its sha256, size, losses and seconds: the manifest lists the sha256 of every
    checkpoint of the chain. ``key`` (any JSON value, e.g. the training configuration) is stored in the
    manifest; a chain made with another key is refused rather than resumed.
    """

    MANIFEST = "chain.json"

    def __init__(self, directory, key=None):
        self.dir = Path(directory).expanduser()
        self.key = key
        self.path = self.dir / self.MANIFEST
        self.manifest = self._read()
        if self.manifest is not None and key is not None and self.manifest.get("key") != key:
            raise ValueError(f"the checkpoint chain in {self.dir} was made by a different training configuration "
                             f"(its key {json.dumps(self.manifest.get('key'))[:200]} is not "
                             f"{json.dumps(key)[:200]}); use another --checkpoint-dir or delete that one")

    def _read(self):
        if not self.path.exists():
            return None
        try:
            man = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(man, dict) or not isinstance(man.get("chain"), list):
                raise ValueError("not a checkpoint-chain manifest")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"the checkpoint manifest {self.path} is unreadable ({type(exc).__name__}); "
                             f"delete the directory to start again") from None
        return man

    @staticmethod
    def name(epoch):
        return f"epoch-{int(epoch):04d}.pt"

    @property
    def epochs(self):
        """Epoch numbers (1-based: checkpoint k is the state after k epochs) recorded in the manifest."""
        return [int(e["epoch"]) for e in (self.manifest or {}).get("chain", [])]

    def entry(self, epoch):
        for e in (self.manifest or {}).get("chain", []):
            if int(e["epoch"]) == int(epoch):
                return e
        raise ValueError(f"the checkpoint chain in {self.dir} has no epoch {epoch} (it has: {self.epochs or 'none'})")

    def load(self, epoch=None):
        """The checkpoint after ``epoch`` epochs (default: the last one), sha256-checked; None if there is none.

        Resuming from ``epoch`` drops the later entries from the manifest (they are recomputed).
        """
        torch = require_torch()
        if not self.epochs:
            if epoch is not None:
                raise ValueError(f"resume_from={epoch}: the checkpoint chain in {self.dir} is empty")
            return None
        ent = self.entry(self.epochs[-1] if epoch is None else epoch)
        f = self.dir / ent["file"]
        got = sha256_file(f) if f.exists() else None
        if got != ent["sha256"]:
            raise ValueError(f"checkpoint {f} failed its integrity check (sha256 {got} vs the chain's "
                             f"{ent['sha256']}); resume from an earlier epoch (resume_from=) or delete the chain")
        saved = torch.load(f, map_location="cpu", weights_only=True)
        self.manifest["chain"] = [e for e in self.manifest["chain"] if int(e["epoch"]) <= int(ent["epoch"])]
        return saved

    def with_seconds(self, history):
        """``history`` (from a checkpoint) with each epoch's seconds put back from the manifest."""
        secs = {int(e["epoch"]) - 1: float(e.get("seconds", 0.0)) for e in (self.manifest or {}).get("chain", [])}
        return [{**h, "seconds": secs.get(int(h["epoch"]), 0.0)} for h in history]

    def save(self, epoch, obj, info):
        """Write checkpoint ``epoch`` (atomically) and record it (sha256, bytes, ``info``) in the manifest."""
        torch = require_torch()
        self.dir.mkdir(parents=True, exist_ok=True)
        name = self.name(epoch)
        data = _serialise(torch, _canonical(obj), name)
        path = self.dir / name
        pend = _pending(path)
        _write_synced(pend, data)
        os.replace(pend, path)
        man = self.manifest or {"format": "gravbench checkpoint chain v1", "key": self.key, "chain": []}
        man["chain"] = [e for e in man["chain"] if int(e["epoch"]) < int(epoch)]
        man["chain"].append({"epoch": int(epoch), "file": name, "sha256": hashlib.sha256(data).hexdigest(),
                             "bytes": len(data), **{k: (float(v) if isinstance(v, (int, float)) else v)
                                                    for k, v in info.items()}})
        man["gravbench_version"] = __version__
        text = (json.dumps(man, indent=2) + "\n").encode("utf-8")
        pm = _pending(self.path)
        _write_synced(pm, text)
        os.replace(pm, self.path)
        self.manifest = man
        return man["chain"][-1]
