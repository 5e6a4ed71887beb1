"""Slow suite (``GRAVBENCH_ASV_SLOW=1 asv run -E existing -b Slow``). Deep image prior (``dip``): one fit at n = 25 and 50 on a rectangular-block model with 1 % noise.

``time_fit`` is the wall time of one call with the provider's defaults (start
fit + Adam steps, then the L-BFGS finish on the same weights, up to the
discrepancy stop or the budget of ``maxiter`` steps / evaluations); the
``track_`` methods record what the call reached (model error, reduced chi2,
iterations: Adam steps plus L-BFGS evaluations). Data: the ``blocks`` family, seed 11, model 0. ``setup``
builds the problem and the torch forward layer and runs one short fit, so
imports and allocations are outside the timed call.
"""


#: slow suites are defined only when asked for: ``GRAVBENCH_ASV_SLOW=1 asv run -E existing -b Slow``
_SLOW = __import__("os").environ.get("GRAVBENCH_ASV_SLOW") == "1"


if _SLOW:
    class SlowDIPFit:
        params = [[25, 50]]
        param_names = ["n"]
        timeout = 900
        number = 1
        repeat = (1, 3, 120.0)

        def setup(self, n):
            import torch

            import gravbench as gb

            torch.set_num_threads(1)
            self.prob = gb.Problem.paper(n=n)
            ds = gb.data.build(self.prob, families="blocks", count=1, seed=11, noise=0.01)["all"]
            self.rho, self.g, self.sigma = ds.rho[0], ds.g[0], ds.sigma[0]
            self.p = gb.providers.get("dip")
            gb.providers.get("dip", maxiter=2)(self.g, self.prob, sigma=self.sigma)

        def time_fit(self, n):
            self.p(self.g, self.prob, sigma=self.sigma, seed=0)

        def _run(self):
            if getattr(self, "_out", None) is None:
                from gravbench.bench.metrics import evaluate

                rho_hat = self.p(self.g, self.prob, sigma=self.sigma, seed=0)
                self._out = {**evaluate(self.prob.operator("dense"), self.rho, rho_hat, self.g, self.sigma),
                             "niter": self.p.last["niter"]}
            return self._out

        def track_model_error(self, n):
            return self._run()["model_error"]

        track_model_error.unit = "relative L2"

        def track_chi2(self, n):
            return self._run()["chi2"]

        track_chi2.unit = "reduced chi2"

        def track_niter(self, n):
            return self._run()["niter"]

        track_niter.unit = "Adam steps + L-BFGS evaluations"
