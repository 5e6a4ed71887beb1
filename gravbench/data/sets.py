"""Standard data sets by name, built on first use into a cache directory and reused after.

Cache layout: ``<cache_dir()>/datasets/<name>-g<GENERATOR_VERSION>/<split>.npz``
where :func:`cache_dir` is ``$GRAVBENCH_CACHE`` or ``~/.cache/gravbench``.
The files hold the models, the clean data, and the data with the set's
default noise (1 % of each component's peak, noise seed = model seed).
Asking for another noise level, floor, model or seed re-noises the stored
clean data at load time (:func:`gravbench.data.add_noise`): deterministic, and
no rebuild. Each split is built when first asked for (the test split alone
is cheap; it is bitwise the same as in a full build). A build takes a file
lock, so concurrent processes build once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .dataset import add_noise, build, load
from .families import GENERATOR_VERSION

__all__ = ["STANDARD", "StandardSpec", "standard", "standard_paths", "cache_dir"]


@dataclass(frozen=True)
class StandardSpec:
    """A named data set: ``Problem.paper(n)``, split counts, families, seed and default noise."""

    n: int
    splits: tuple  # (train, val, test) counts
    families: str = "mixed"
    seed: int = 0
    noise: float = 0.01
    kernel: str = "exact"
    description: str = ""
    geometry: str = "paper"  # "paper": Problem.paper(n, kernel); "seed": Problem.seed(n) (midpoint kernel)

    def problem(self):
        from .. import Problem

        if self.geometry == "seed":
            return Problem.seed(n=self.n)
        return Problem.paper(n=self.n, kernel=self.kernel)


#: The named sets. ``paper-50`` is the seed paper's size (27,000 / 1,000 / 1,000 at n = 50).
STANDARD = {
    "paper-50": StandardSpec(50, (27_000, 1_000, 1_000), description="the seed paper's setup: n = 50, 3n stations"),
    "paper-25": StandardSpec(25, (9_000, 500, 500), description="n = 25, for quick training and tests"),
    "paper-100": StandardSpec(100, (9_000, 500, 500), description="n = 100, for the n = 100 CNN"),
    "paper-200": StandardSpec(200, (1_800, 100, 100), description="n = 200, test-size sets for large-grid benchmarks"),
    "small-16": StandardSpec(16, (512, 64, 64), description="n = 16, tiny: CI and examples"),
    "fwi-51": StandardSpec(51, (27_000, 1_000, 1_000), families="fwi", kernel="midpoint", geometry="seed",
                           description="the seed code's geometry (Problem.seed(51)) and OpenFWI-style absolute "
                                       "densities: the paper's Table I like for like"),
}


def cache_dir():
    """The cache root: ``$GRAVBENCH_CACHE`` if set, else ``~/.cache/gravbench`` (as a Path, not created)."""
    env = os.environ.get("GRAVBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gravbench"


def _spec(name):
    if name not in STANDARD:
        raise ValueError(f"unknown standard data set {name!r}; choose from {sorted(STANDARD)}")
    return STANDARD[name]


def standard_paths(name="paper-50"):
    """``{split: path}`` of the cached files of a standard set (they may not exist yet)."""
    _spec(name)
    d = cache_dir() / "datasets" / f"{name}-g{GENERATOR_VERSION}"
    return {s: d / f"{s}.npz" for s in ("train", "val", "test")}


def ensure_built(name="paper-50", progress=True, splits=("train", "val", "test")):
    """Build the missing ``splits`` of the standard set ``name`` into the cache; returns ``{split: path}``.

    Splits are built independently (``build(only=...)``) and are bitwise
    identical to those of a full build, so asking for the test split first
    does not pay for the training set.
    """
    spec = _spec(name)
    paths = standard_paths(name)
    splits = [splits] if isinstance(splits, str) else list(splits)
    for s in splits:
        if s not in paths:
            raise ValueError(f"split must be 'train', 'val' or 'test', got {s!r}")
    if all(paths[s].is_file() for s in splits):
        return paths
    d = paths["train"].parent
    d.mkdir(parents=True, exist_ok=True)
    import fcntl

    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait, then reuse
        try:
            missing = [s for s in splits if not paths[s].is_file()]
            if missing:
                build(spec.problem(), spec.families, seed=spec.seed, noise=spec.noise,
                      splits=dict(zip(("train", "val", "test"), spec.splits)), only=missing, out=d, name=name,
                      progress=progress)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return paths


def standard(name="paper-50", split="test", noise=0.01, *, noise_floor=0.0, noise_model="peak", noise_seed=None,
             progress=True):
    """A standard data set split, built into the cache on first use.

    Parameters
    ----------
    name : str
        A key of :data:`STANDARD` (``"paper-50"``, ``"paper-25"``, ``"paper-100"``, ``"paper-200"``, ``"small-16"``,
        ``"fwi-51"``).
    split : {"train", "val", "test"}
    noise, noise_floor, noise_model, noise_seed
        The noise of ``Dataset.g`` (see :func:`gravbench.data.add_noise`);
        anything other than the stored default is applied at load time from
        the stored clean data. ``noise_seed`` defaults to the set's seed.
    progress : bool
        Show a progress bar while building.

    Returns
    -------
    Dataset
    """
    spec = _spec(name)
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    paths = ensure_built(name, progress=progress, splits=(split,))
    ds = load(paths[split], spec.problem())
    want = {"model": noise_model, "level": float(noise), "floor": float(noise_floor),
            "seed": int(spec.seed if noise_seed is None else noise_seed)}
    if ds.noise != want:
        ds = add_noise(ds, noise, noise_floor=noise_floor, noise_model=noise_model, noise_seed=want["seed"])
    ds.meta["name"] = name
    return ds
