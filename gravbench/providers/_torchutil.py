"""Lazy torch import, device handling and seeding for the ML providers.

Nothing here imports torch at module import time.
"""

from __future__ import annotations

import hashlib
import importlib

__all__ = ["require_torch", "device", "seed_all", "sha256_file", "TORCH_MISSING"]

TORCH_MISSING = (
    "this provider needs PyTorch, which is not installed; install it with "
    "pip install 'gravbench[ml]'  (or: pip install torch)"
)


def require_torch():
    """Import and return ``torch``; raise ``ImportError`` with the install command when missing."""
    try:
        return importlib.import_module("torch")
    except ImportError as exc:  # pragma: no cover - torch is installed in CI
        raise ImportError(TORCH_MISSING) from exc


def device(dev="cpu"):
    """A ``torch.device`` from ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a device; checks availability."""
    torch = require_torch()
    if isinstance(dev, torch.device):
        d = dev
    else:
        if not isinstance(dev, str):
            raise ValueError(f"device must be a string like 'cpu' or 'cuda', got {dev!r}")
        try:
            d = torch.device(dev)
        except RuntimeError:
            raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {dev!r}") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {dev!r} requested but CUDA is not available; use device='cpu'")
    return d


def seed_all(seed):
    """Seed torch (CPU and CUDA), numpy's global state untouched; returns a ``torch.Generator``."""
    torch = require_torch()
    if seed is None:
        seed = 0
    seed = int(seed)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def sha256_file(path, chunk=1 << 20):
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()
