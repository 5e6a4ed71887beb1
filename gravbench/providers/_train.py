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

``save_weights(state_dict, path, manifest, *, half=True) -> dict``
    Writes ``path`` (``.pt``: float tensors stored as float16 when ``half``)
    and ``path.with_suffix(".json")``: the manifest plus ``sha256``,
    ``bytes``, ``file`` and ``gravbench_version``. Returns the manifest.

``load_weights(path, *, map_location="cpu") -> (state_dict, manifest)``
    Checks the file's sha256 against its manifest (``ValueError`` naming
    both hashes if they differ), then ``torch.load(weights_only=True)``;
    float16 tensors are returned as float32.

``command_line()`` -> the command that started this process (for manifests).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

from ._torchutil import require_torch, seed_all, sha256_file

__all__ = ["fit", "save_weights", "load_weights", "command_line"]


def command_line():
    """The command line of this process, as a string (``gravbench train ...`` when run from the CLI)."""
    argv = list(sys.argv)
    if argv and os.path.basename(argv[0]) in ("gravbench", "__main__.py"):
        argv[0] = "gravbench"
    return " ".join(argv)


def _progress(enabled, description, total):
    from contextlib import nullcontext

    if not enabled:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(), transient=False)


def fit(model, train, val, *, loss_fn, epochs, batch_size, lr, seed, checkpoint=None, resume=False,
        device="cpu", progress=True, patience=10, min_delta=0.0, weight_decay=0.0, val_fn=None,
        optimizer=None, lr_schedule="cosine", max_seconds=None, stop_after=None, description="training"):
    """Train ``model`` on ``train``, early-stopping on ``val``; see the module docstring."""
    torch = require_torch()
    from ._torchutil import device as _device

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
    if resume:
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
            perm = torch.randperm(n_train, generator=gen)
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


def save_weights(state_dict, path, manifest, *, half=True):
    """Write ``state_dict`` to ``path`` and its manifest to ``path.with_suffix('.json')``; see module docstring."""
    torch = require_torch()
    from .. import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {}
    for k, t in state_dict.items():
        t = t.detach().cpu()
        if half and t.is_floating_point():
            t = t.to(torch.float16)
        sd[k] = t.contiguous()
    torch.save(sd, path)
    man = dict(manifest)
    man.update({"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
                "gravbench_version": __version__, "dtype": "float16" if half else "float32"})
    path.with_suffix(".json").write_text(json.dumps(man, indent=2, sort_keys=False) + "\n")
    return man


def load_weights(path, *, map_location="cpu"):
    """Verify ``path`` against its manifest's sha256, then load it with ``weights_only=True``."""
    torch = require_torch()
    path = Path(path)
    mpath = path.with_suffix(".json")
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if not mpath.exists():
        raise ValueError(f"weights file {path} has no manifest {mpath.name}; refusing to load unverified weights")
    man = json.loads(mpath.read_text())
    got = sha256_file(path)
    if got != man.get("sha256"):
        raise ValueError(
            f"weights file {path} failed its integrity check: sha256 {got} does not match the manifest's "
            f"{man.get('sha256')}; the file is corrupted or was modified (retrain with: {man.get('command', 'gravbench train ...')})")
    sd = torch.load(path, map_location=map_location, weights_only=True)
    sd = {k: (t.float() if t.is_floating_point() else t) for k, t in sd.items()}
    return sd, man
