"""asv benchmarks of the solvers and refiners.

Problems follow the seed paper's setup (``Problem.paper(n)``, operator
``auto``: dense up to n = 50, FFT above), a block and a lens, 1% Gaussian
noise, zero start. ``setup`` compiles every numba loop on a tiny problem first
(:func:`gravbench.reports.solvers.warm_up`), so compilation is never
timed. ``track_*`` report iterations, operator applications, model error and
data misfit next to the ``time_*`` figures.
"""

import numpy as np

SIZES = [25, 50, 100, 200]
REFINERS = ["gd", "pgd", "cgls", "gmres", "lgmres", "icg", "picg", "tikhonov"]

_WARM = []


def _warm():
    if not _WARM:
        from gravbench.reports.solvers import warm_up

        warm_up()
        _WARM.append(True)


def _case(n):
    from gravbench.reports.solvers import problem_case

    return problem_case(n)


class Refiners:
    """Every refiner with its default settings (sigma known: discrepancy stops where the refiner has one)."""

    params = (SIZES, REFINERS)
    param_names = ["n", "refiner"]
    timeout = 900

    def setup(self, n, refiner):
        import gravbench as gb

        _warm()
        self.prob, self.op, self.rho, self.g, self.sigma = _case(n)
        def run():
            if refiner == "tikhonov":    # cold: build and diagonalise K every time (no reuse across calls)
                gb.refiners.tikhonov.clear_cache()
            return gb.refiners.run(refiner, self.op, self.g, sigma=self.sigma)

        self.run = run
        self._res = None

    def _result(self):
        if self._res is None:
            self._res = self.run()
        return self._res

    def time_refine(self, n, refiner):
        self.run()

    def track_iterations(self, n, refiner):
        return self._result().niter

    track_iterations.unit = "iterations"

    def track_applications(self, n, refiner):
        r = self._result()
        return r.n_matvec + r.n_rmatvec

    track_applications.unit = "A and A^T products"

    def track_model_error(self, n, refiner):
        return float(np.linalg.norm(self._result().x - self.rho) / np.linalg.norm(self.rho))

    track_model_error.unit = "||rho - rho_hat|| / ||rho||"

    def track_data_misfit(self, n, refiner):
        return float(self._result().info["misfit"])

    track_data_misfit.unit = "||A rho_hat - g|| / ||g||"


class NormalEquationKrylov:
    """gmres / lgmres on A^T A x = A^T g: gravbench against SciPy and PyAMG on the same LinearOperator."""

    params = (SIZES, ["gmres", "lgmres"], ["gravbench", "scipy", "pyamg"])
    param_names = ["n", "method", "implementation"]
    timeout = 900

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

    def track_normal_products(self, n, method, impl):
        self.op.reset_counters()
        self.run()
        return self.op.n_matvec

    track_normal_products.unit = "A^T A products"


class SquareSolvers:
    """cg / gmres / lgmres / steepest descent on the normal equations, fixed budget (cost per iteration)."""

    params = ([25, 50, 100], ["cg", "gmres", "lgmres", "steepest_descent"])
    param_names = ["n", "solver"]
    timeout = 600

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

    def track_iterations(self, n, solver):
        return self.f(self.N, self.b, rtol=1e-12, **self.kw).niter

    track_iterations.unit = "iterations"
