"""asv benchmarks of the solvers and refiners.

Problems follow the seed paper's setup (``Problem.paper(n)``, operator
``auto``: dense up to n = 50, FFT above), a block and a lens, 1% Gaussian
noise, zero start. ``setup`` compiles every numba loop on a tiny problem first
(:func:`gravbench.bench.timing.warm_up`), so compilation is never
timed. The ``track_*`` figures (iterations, operator applications, model
error, data misfit) come from one run per case in ``setup_cache`` (computed
once per ``asv run``, not once per track method); the ``time_*`` classes do
nothing else. Sizes n = 50 and 200; larger ones are in ``gravbench report
scaling``.
"""

import numpy as np

SIZES = [50, 200]
REFINERS = ["gd", "pgd", "cgls", "gmres", "lgmres", "icg", "picg", "tikhonov"]

_WARM = []


def _warm():
    if not _WARM:
        from gravbench.bench.timing import warm_up

        warm_up()
        _WARM.append(True)


def _case(n):
    from gravbench.bench.timing import problem_case

    return problem_case(n)


def _refine(n, refiner):
    import gravbench as gb

    _, op, _, g, sigma = _case(n)
    if refiner == "tikhonov":    # cold: build and diagonalise K every time (no reuse across calls)
        gb.refiners.tikhonov.clear_cache()
    return gb.refiners.run(refiner, op, g, sigma=sigma)


class Refiners:
    """Every refiner with its default settings (sigma known: discrepancy stops where the refiner has one)."""

    params = (SIZES, REFINERS)
    param_names = ["n", "refiner"]
    timeout = 900
    # full-run budget (asv run: every benchmark at most ~5 s of samples, one round): issue 15
    rounds = 1
    repeat = (1, 5, 5.0)
    warmup_time = 0.2

    def setup(self, n, refiner):
        _warm()
        self.case = _case(n)
        _, self.op, _, self.g, self.sigma = self.case

    def time_refine(self, n, refiner):
        import gravbench as gb

        if refiner == "tikhonov":
            gb.refiners.tikhonov.clear_cache()
        gb.refiners.run(refiner, self.op, self.g, sigma=self.sigma)


class RefinerMetrics:
    """What each refiner reaches (one run per case, in ``setup_cache``)."""

    params = (SIZES, REFINERS)
    param_names = ["n", "refiner"]
    timeout = 1200

    def setup_cache(self):
        _warm()
        out = {}
        for n in SIZES:
            rho = _case(n)[2]
            for refiner in REFINERS:
                r = _refine(n, refiner)
                out[n, refiner] = {"niter": r.niter, "applications": r.n_matvec + r.n_rmatvec,
                                   "model_error": float(np.linalg.norm(r.x - rho) / np.linalg.norm(rho)),
                                   "data_misfit": float(r.info["misfit"])}
        return out

    def track_iterations(self, cache, n, refiner):
        return cache[n, refiner]["niter"]

    track_iterations.unit = "iterations"

    def track_applications(self, cache, n, refiner):
        return cache[n, refiner]["applications"]

    track_applications.unit = "A and A^T products"

    def track_model_error(self, cache, n, refiner):
        return cache[n, refiner]["model_error"]

    track_model_error.unit = "||rho - rho_hat|| / ||rho||"

    def track_data_misfit(self, cache, n, refiner):
        return cache[n, refiner]["data_misfit"]

    track_data_misfit.unit = "||A rho_hat - g|| / ||g||"


class NormalEquationKrylov:
    """gmres / lgmres on A^T A x = A^T g: gravbench against SciPy and PyAMG on the same LinearOperator."""

    params = (SIZES, ["gmres", "lgmres"], ["gravbench", "scipy", "pyamg"])
    param_names = ["n", "method", "implementation"]
    timeout = 900
    # full-run budget (asv run: every benchmark at most ~5 s of samples, one round): issue 15
    rounds = 1
    repeat = (1, 5, 5.0)
    warmup_time = 0.2

    def setup(self, n, method, impl):
        import pyamg.krylov
        import scipy.sparse.linalg as sla

        import gravbench as gb

        if impl == "pyamg" and method == "lgmres":
            raise NotImplementedError("pyamg has no lgmres")
        _warm()
        self.prob, self.op, self.rho, self.g, self.sigma = _case(n)
        N = self.op.normal()
        b = self.op.rmatvec(self.g)
        kw = dict(rtol=1e-6, maxiter=5)
        if impl == "gravbench":
            f = gb.solvers.gmres if method == "gmres" else gb.solvers.lgmres
            self.run = lambda: f(N, b, restart=20, **kw) if method == "gmres" else f(N, b, inner_m=20, **kw)
        elif impl == "scipy":
            if method == "gmres":
                self.run = lambda: sla.gmres(N, b, restart=20, **kw)
            else:
                self.run = lambda: sla.lgmres(N, b, inner_m=20, **kw)
        else:
            self.run = lambda: pyamg.krylov.gmres(N, b, tol=1e-6, restart=20, maxiter=5, orthog="mgs")

    def time_solve(self, n, method, impl):
        self.run()


class SquareSolvers:
    """cg / gmres / lgmres / steepest descent on the normal equations, fixed budget (cost per iteration)."""

    params = (SIZES, ["cg", "gmres", "lgmres", "steepest_descent"])
    param_names = ["n", "solver"]
    timeout = 600
    # full-run budget (asv run: every benchmark at most ~5 s of samples, one round): issue 15
    rounds = 1
    repeat = (1, 5, 5.0)
    warmup_time = 0.2

    def setup(self, n, solver):
        import gravbench as gb

        _warm()
        self.prob, self.op, self.rho, self.g, self.sigma = _case(n)
        self.N = self.op.normal()
        self.b = self.op.rmatvec(self.g)
        self.f = getattr(gb.solvers, solver)
        self.kw = {"maxiter": 100} if solver in ("cg", "steepest_descent") else {"maxiter": 4}

    def time_solve(self, n, solver):
        self.f(self.N, self.b, rtol=1e-12, **self.kw)


class SolverMetrics:
    """Iterations of the square solvers and A^T A products of the normal-equation Krylov runs (``setup_cache``)."""

    params = (SIZES, ["cg", "gmres", "lgmres", "steepest_descent"])
    param_names = ["n", "solver"]
    timeout = 900

    def setup_cache(self):
        import gravbench as gb

        _warm()
        out = {}
        for n in SIZES:
            _, op, _, g, _ = _case(n)
            N, b = op.normal(), op.rmatvec(g)
            for solver in ["cg", "gmres", "lgmres", "steepest_descent"]:
                kw = {"maxiter": 100} if solver in ("cg", "steepest_descent") else {"maxiter": 4}
                op.reset_counters()
                r = getattr(gb.solvers, solver)(N, b, rtol=1e-12, **kw)
                out[n, solver] = {"niter": r.niter, "normal_products": op.n_matvec}
        return out

    def track_iterations(self, cache, n, solver):
        return cache[n, solver]["niter"]

    track_iterations.unit = "iterations"

    def track_normal_products(self, cache, n, solver):
        return cache[n, solver]["normal_products"]

    track_normal_products.unit = "A^T A products"
