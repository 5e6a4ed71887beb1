"""SimPEG as a peer: ``simpeg-l2`` and ``simpeg-sparse`` providers (optional, ``pip install gravbench[peers]``).

They run SimPEG's standard gravity-inversion recipes on the same data and
return the model on gravbench's grid, so ``gravbench compare`` can put the tool
practitioners use today in the same table. The core never imports SimPEG: the
providers are registered through the ``gravbench.providers`` entry-point group
(``pyproject.toml``) and SimPEG is imported when a provider is built.

The equivalent 3D problem
-------------------------
A 2D cell is a prism of very long strike: a ``discretize.TensorMesh`` with one
cell of length ``2 L`` along y, ``L = 1e4 * hypot(width, depth)`` (gravbench's
forward agrees with SimPEG's choclo engine on it to ~1e-8, see
reports/forward.md). SimPEG's z points up and its cells run from the bottom, its
density is in g/cc, its gz is positive up and its data interleave ``(gx, gz)``
per receiver; :func:`to_simpeg_model`, :func:`to_simpeg_data` and
:func:`from_simpeg_model` convert.

The regularisation is built explicitly from a smallness and the x and z
first-order smoothness terms: SimPEG's default ``Sparse`` / ``WeightedLeastSquares``
on a one-cell-thick mesh adds a y-gradient whose operator has no rows, which
breaks the IRLS threshold (a percentile of an empty array).

Recipes (recorded in ``provider.settings``)
--------------------------------------------
``simpeg-l2``: ``WeightedLeastSquares`` (Smallness + SmoothnessFirstOrder x, z,
alphas 1, SimPEG's default length scales), ``UpdateSensitivityWeights``,
``BetaEstimate_ByEig(beta0_ratio=10)``, ``BetaSchedule(cooling_factor=2,
cooling_rate=1)``, ``TargetMisfit(chifact=1)``, ``UpdatePreconditioner``,
``ProjectedGNCG(maxIter=50, cg_maxiter=30, cg_rtol=1e-3)``.

``simpeg-sparse``: ``Sparse`` with SparseSmallness + SparseSmoothness x, z,
norms ``[0, 1, 1]``, the same weighting and beta estimate,
``UpdateIRLS(max_irls_iterations=100, f_min_change=1e-4,
irls_cooling_factor=1.2, chifact_target=1)``: IRLS run to convergence
(SimPEG's default ``f_min_change=1e-2`` ends IRLS about 10 cycles in, with the
threshold still large; 1e-4 is the value of SimPEG's gravity tutorials, and
stops after about 100 cycles on blocks models at n = 50),
``ProjectedGNCG(maxIter=200, cg_maxiter=30, cg_rtol=1e-3)`` with its own
stopping tests ``tolF``, ``tolX``, ``tolG`` set to 1e-12 (``opt_tol``): with
SimPEG's defaults (0.1 relative to the first objective value) the optimiser
stops ~10 IRLS iterations in, long before IRLS has converged.

Timing and ``gc.collect()``
---------------------------
SimPEG's ``BaseInvProblem.evalFunction`` calls ``gc.collect()`` on every
evaluation; in a process holding torch (hundreds of thousands of tracked
objects) each full collection costs tens of ms and dominates a small
inversion. The providers therefore run SimPEG under ``gc.freeze()`` (objects
that existed before the run move to the permanent generation, so the
collections SimPEG asks for only scan what the inversion allocated) and
``gc.unfreeze()`` afterwards; ``gc_freeze=False`` turns this off. SimPEG's
algorithm is untouched. reports/classical.md measures both.

BLAS threads: SimPEG's products with its dense G are BLAS calls; on a loaded
two-core machine OpenBLAS's default two threads made a 300 x 2500 product 13x
slower than one thread (6.5 ms vs 0.48 ms, load average 10). gravbench's own
operators run small products under a one-thread BLAS limit, so the peers do the
same by default (``blas_threads=1``; ``None`` leaves BLAS alone).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import io
import time

import numpy as np

from .._linalg.blas import blas_threads as limit_blas
from .base import Provider

__all__ = ["SimPEGL2", "SimPEGSparse", "simpeg_available", "build_simpeg_problem", "to_simpeg_model",
           "from_simpeg_model", "to_simpeg_data", "PEER_NAMES"]

#: the providers this module offers (registered as entry points)
PEER_NAMES = ("simpeg-l2", "simpeg-sparse")


def simpeg_available():
    """True when SimPEG and discretize can be imported (without importing them)."""
    return importlib.util.find_spec("simpeg") is not None and importlib.util.find_spec("discretize") is not None


def _require():
    if not simpeg_available():
        raise ImportError("the SimPEG peers need SimPEG: pip install 'gravbench[peers]' (simpeg>=0.22)")


def to_simpeg_model(rho, shape):
    """gravbench model (kg/m^3, (nz, nx) top row first) -> SimPEG model (g/cc, bottom layer first)."""
    return np.asarray(rho, dtype=np.float64).reshape(shape)[::-1, :].ravel() * 1e-3


def from_simpeg_model(m, shape):
    """SimPEG model (g/cc, bottom layer first) -> gravbench model (kg/m^3, (nz, nx))."""
    return (np.asarray(m, dtype=np.float64).reshape(shape)[::-1, :] * 1e3).copy()


def to_simpeg_data(g, m):
    """gravbench data ``[gx..., gz...]`` (gz down) -> SimPEG ``[gx0, gz0, gx1, ...]`` (gz up), mGal."""
    g = np.asarray(g, dtype=np.float64)
    out = np.empty(2 * m)
    out[0::2] = g[:m]
    out[1::2] = -g[m:2 * m]
    return out


def build_simpeg_problem(problem, strike=1e4):
    """``(mesh, survey_factory)`` of SimPEG's equivalent pseudo-2D problem.

    Parameters
    ----------
    problem : gravbench.Problem
    strike : float
        Strike half-length in units of the grid diagonal (``L = strike * hypot(width, depth)``).
    """
    _require()
    import discretize
    from simpeg.potential_fields import gravity

    grid, sv = problem.grid, problem.survey
    L = float(strike) * float(np.hypot(grid.width, grid.depth))
    mesh = discretize.TensorMesh([np.diff(grid.x_edges), [2 * L], np.diff(grid.z_edges)[::-1]],
                                 origin=[grid.x_edges[0], -L, -grid.z_edges[-1]])
    locs = np.c_[sv.x, np.zeros(sv.m), -np.asarray(sv.z)]

    def survey():
        rx = gravity.receivers.Point(locs, components=["gx", "gz"])
        return gravity.survey.Survey(gravity.sources.SourceField(receiver_list=[rx]))

    return mesh, survey


class _SimPEGBase(Provider):
    learned = False
    recipe = ""
    #: the SimPEG survey is built with receivers of both components (to_simpeg_data interleaves them)
    components = ("gx", "gz")

    def __init__(self, bounds=None, gc_freeze=True, blas_threads=1, verbose=False, **settings):
        _require()
        if blas_threads is not None and (isinstance(blas_threads, bool) or not isinstance(blas_threads, int)
                                         or blas_threads < 1):
            raise ValueError(f"blas_threads must be None or an integer >= 1, got {blas_threads!r}")
        self.blas_threads = blas_threads
        if bounds is not None:
            try:
                lo, hi = bounds
            except (TypeError, ValueError):
                raise ValueError(f"bounds must be (lo, hi) in kg/m^3, got {bounds!r}") from None
            bounds = (-np.inf if lo is None else float(lo), np.inf if hi is None else float(hi))
            if not bounds[0] < bounds[1]:
                raise ValueError(f"bounds must satisfy lo < hi, got {bounds!r}")
        self.bounds = bounds
        self.gc_freeze = bool(gc_freeze)
        self.verbose = bool(verbose)
        bad = [k for k in settings if k not in self.SETTINGS]
        if bad:
            raise ValueError(f"unknown setting(s) {bad} for {self.name}; valid: {sorted(self.SETTINGS)}")
        self.settings = {**self.SETTINGS, **settings}
        self._sims = {}
        self.last = {}

    def _sim(self, problem):
        key = (problem.grid.x_edges.tobytes(), problem.grid.z_edges.tobytes(), np.asarray(problem.survey.x).tobytes(),
               np.asarray(problem.survey.z).tobytes())
        hit = self._sims.get(key)
        if hit is None:
            from simpeg import maps
            from simpeg.potential_fields import gravity

            mesh, survey = build_simpeg_problem(problem)
            sim = gravity.simulation.Simulation3DIntegral(
                mesh=mesh, survey=survey(), rhoMap=maps.IdentityMap(nP=mesh.n_cells), engine="choclo",
                store_sensitivities="ram", sensitivity_dtype=np.float64)
            sim.G  # noqa: B018 - build the sensitivity once per problem (not timed per model)
            hit = self._sims[key] = (mesh, sim)
        return hit

    def _regularization(self, mesh):
        raise NotImplementedError

    def _directives(self):
        raise NotImplementedError

    def _single(self, g, problem, sigma, seed):
        from simpeg import data, data_misfit, directives, inverse_problem, inversion, optimization

        if sigma is None:
            raise ValueError(f"{self.name} needs sigma (the noise std, mGal): SimPEG's target misfit is chi2 = 1")
        mesh, sim = self._sim(problem)
        m = problem.survey.m
        sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (2 * m,))
        dobs = to_simpeg_data(g, m)
        dat = data.Data(sim.survey, dobs=dobs, standard_deviation=np.abs(to_simpeg_data(sig, m)))
        dmis = data_misfit.L2DataMisfit(data=dat, simulation=sim)
        reg = self._regularization(mesh)
        st = self.settings
        lo, hi = (-np.inf, np.inf) if self.bounds is None else (self.bounds[0] * 1e-3, self.bounds[1] * 1e-3)
        opt = optimization.ProjectedGNCG(lower=lo, upper=hi, cg_maxiter=st["cg_maxiter"], cg_rtol=st["cg_rtol"])
        opt.maxIter = st["max_iter"]
        opt.maxIterLS = 20
        if st.get("opt_tol") is not None:   # let UpdateIRLS's own test (or maxIter) end the run
            opt.tolF = opt.tolX = opt.tolG = st["opt_tol"]
        inv_prob = inverse_problem.BaseInvProblem(dmis, reg, opt)
        dirs = [directives.UpdateSensitivityWeights(every_iteration=False),
                directives.BetaEstimate_ByEig(beta0_ratio=st["beta0_ratio"], random_seed=0 if seed is None else seed)]
        dirs += self._directives(directives)
        dirs.append(directives.UpdatePreconditioner())
        inv = inversion.BaseInversion(inv_prob, directiveList=dirs)
        m0 = np.zeros(mesh.n_cells)
        t0 = time.perf_counter()
        if self.gc_freeze:
            gc.collect()
            gc.freeze()
        try:
            out = io.StringIO()
            with contextlib.ExitStack() as stack:
                if not self.verbose:
                    stack.enter_context(contextlib.redirect_stdout(out))
                stack.enter_context(limit_blas(self.blas_threads))
                mrec = inv.run(m0)
        finally:
            if self.gc_freeze:
                gc.unfreeze()
        self.last = {"seconds": time.perf_counter() - t0, "iterations": int(opt.iter), "beta": float(inv_prob.beta),
                     "phi_d": float(inv_prob.phi_d), "chi2": float(inv_prob.phi_d) / (2 * m)}
        return from_simpeg_model(mrec, problem.shape)

    def _batch(self, G, problem, sigma, seed):
        out = np.empty((G.shape[0],) + tuple(problem.shape))
        for k in range(G.shape[0]):
            out[k] = self._single(G[k], problem, None if sigma is None else sigma[k], seed)
        return out


class SimPEGL2(_SimPEGBase):
    """SimPEG L2 inversion (smallness + x, z smoothness, sensitivity weights, beta cooling to chi2 = 1).

    Parameters
    ----------
    bounds : (lo, hi), optional
        Density bounds, kg/m^3 (``ProjectedGNCG``'s lower / upper; open by default).
    gc_freeze : bool
        Run SimPEG under ``gc.freeze()`` (see the module docstring).
    blas_threads : int or None
        BLAS thread limit during the inversion (threadpoolctl; 1 by default, None: no limit).
    verbose : bool
        Let SimPEG print its iteration table.
    **settings
        Override the recipe: ``max_iter``, ``cg_maxiter``, ``cg_rtol``, ``beta0_ratio``, ``cooling_factor``.
    """

    name = "simpeg-l2"
    cost = "SimPEG ProjectedGNCG with beta cooling (seconds per model at n = 50)"
    SETTINGS = {"max_iter": 50, "cg_maxiter": 30, "cg_rtol": 1e-3, "beta0_ratio": 10.0, "cooling_factor": 2.0}

    def _regularization(self, mesh):
        from simpeg import regularization as R

        objs = [R.Smallness(mesh), R.SmoothnessFirstOrder(mesh, orientation="x"),
                R.SmoothnessFirstOrder(mesh, orientation="z")]
        return R.WeightedLeastSquares(mesh, objfcts=objs)

    def _directives(self, directives):
        return [directives.BetaSchedule(coolingFactor=self.settings["cooling_factor"], coolingRate=1),
                directives.TargetMisfit(chifact=1.0)]


class SimPEGSparse(_SimPEGBase):
    """SimPEG sparse-norm inversion (IRLS, norms [0, 1, 1] on smallness, x and z gradients).

    Parameters
    ----------
    norms : sequence of 3 floats
        ``[p_s, q_x, q_z]`` in [0, 2].
    bounds, gc_freeze, verbose
        As :class:`SimPEGL2`.
    **settings
        ``max_iter``, ``cg_maxiter``, ``cg_rtol``, ``beta0_ratio``, ``max_irls_iterations``,
        ``f_min_change``, ``irls_cooling_factor``, ``opt_tol`` (tolF = tolX = tolG of the optimiser;
        None keeps SimPEG's defaults).
    """

    name = "simpeg-sparse"
    cost = "SimPEG ProjectedGNCG + UpdateIRLS to convergence (seconds per model at n = 50)"
    SETTINGS = {"max_iter": 200, "cg_maxiter": 30, "cg_rtol": 1e-3, "beta0_ratio": 10.0,
                "max_irls_iterations": 100, "f_min_change": 1e-4, "irls_cooling_factor": 1.2, "opt_tol": 1e-12}

    def __init__(self, norms=(0.0, 1.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        ns = [float(v) for v in norms]
        if len(ns) != 3 or not all(0 <= v <= 2 for v in ns):
            raise ValueError(f"norms must be three numbers in [0, 2] (smallness, x, z), got {norms!r}")
        self.norms = ns
        self.settings["norms"] = ns

    def _regularization(self, mesh):
        from simpeg import regularization as R

        rm = R.RegularizationMesh(mesh)
        objs = [R.SparseSmallness(rm), R.SparseSmoothness(rm, orientation="x"),
                R.SparseSmoothness(rm, orientation="z")]
        return R.Sparse(rm, objfcts=objs, norms=list(self.norms))

    def _directives(self, directives):
        st = self.settings
        return [directives.UpdateIRLS(max_irls_iterations=st["max_irls_iterations"], f_min_change=st["f_min_change"],
                                      irls_cooling_factor=st["irls_cooling_factor"], chifact_target=1.0,
                                      verbose=False)]
