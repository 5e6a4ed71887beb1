"""Synthetic density models and gravity data sets: seeded, fast, checked.

Public API
----------
FAMILIES
    ``("blocks", "layers", "faults", "intrusions", "channels", "smooth", "fwi", "mixed")``.
generate(family, count, shape, seed) -> (count, nz, nx) float32, kg/m^3
    Models of one family (or a mixture); see :mod:`gravbench.data.families`.
build(problem, families="mixed", count=..., seed=0, noise=0.01, splits=..., out=DIR) -> {split: Dataset}
    Models + gravity (forward core) + noise, split, optionally saved as ``.npz``.
load(path, problem=None) -> Dataset
    Read with ``allow_pickle=False``; sha256 and geometry checked.
standard(name="paper-50", split="test", noise=0.01) -> Dataset
    Named sets built into :func:`cache_dir` on first use, checked against the
    fingerprints recorded in the package (:mod:`gravbench.data.fingerprint`).
add_noise(dataset, noise, ...) -> Dataset
    Re-noise stored clean data (:mod:`gravbench.data.noise`).
fit_regional(x, d, order="linear", sigma=None, exclude=None) -> Regional
    A constant / linear / polynomial regional trend, removed before inversion (:mod:`gravbench.data.regional`).
"""

from .dataset import Dataset, add_noise, build, load, save
from .families import BASE_FAMILIES, FAMILIES, GENERATOR_VERSION, MIXED_PROPORTIONS, PARAMS, generate
from .noise import NOISE_MODELS, noise_sigma
from .regional import Regional, fit_regional, remove_regional
from .sets import STANDARD, cache_dir, ensure_built, standard, standard_paths

__all__ = ["FAMILIES", "BASE_FAMILIES", "PARAMS", "MIXED_PROPORTIONS", "GENERATOR_VERSION", "NOISE_MODELS",
           "Dataset", "generate", "build", "load", "save", "add_noise", "noise_sigma", "standard", "STANDARD",
           "standard_paths", "ensure_built", "cache_dir", "Regional", "fit_regional", "remove_regional"]
