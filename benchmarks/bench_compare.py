"""One end-to-end ``gravbench compare`` case by grid size: provider -> refiner -> metrics.

Runs :func:`gravbench.bench.runner.run_case` on test model 0 with classical
pieces (provider ``tikhonov`` then refiner ``cgls``: always available, no
weights needed). ``setup`` loads the test set and runs the case once, so numba
compilation and data loading are never timed; every timed run starts from fresh
provider and operator objects (nothing they cached from the previous repeat is
reused), so it costs what one new model costs in a sweep plus building the
operator. The ``track_`` metrics come from one run per size in ``setup_cache``.
n = 50 in the default suite; n = 100 and 200 in the slow suite ``SlowCompareCase``
(``GRAVBENCH_ASV_SLOW=1 asv run -E existing -b Slow``).
"""

#: slow suites are defined only when asked for: ``GRAVBENCH_ASV_SLOW=1 asv run -E existing -b Slow``
_SLOW = __import__("os").environ.get("GRAVBENCH_ASV_SLOW") == "1"


PROVIDER, REFINER = "tikhonov", "cgls"
SIZES = [50]
SLOW_SIZES = [100, 200]


def _case(n):
    from gravbench.bench.cases import Case

    return Case(n=n, noise=0.01, model=0, provider=PROVIDER, refiner=REFINER, seed=0, samples=1)


class CompareCase:
    """Time and peak memory of ``run_case`` (provider + refiner + metrics on one model)."""

    params = [SIZES]
    param_names = ["n"]
    timeout = 600
    number = 1
    # full-run budget (asv run: every benchmark at most ~5 s of samples, one round): issue 15
    rounds = 1
    repeat = (1, 5, 5.0)
    warmup_time = 0.2

    def setup(self, n):
        from gravbench.bench import runner

        self.runner = runner
        self.tk = runner.Toolkit()
        self.case = _case(n)
        rec = runner.run_case(self.case, self.tk)  # warm: data, operator, numba, provider
        if rec["error"] is not None:
            raise NotImplementedError(f"case failed: {rec['error']}")

    def _run(self):
        # fresh provider and operator objects: what they cache inside (e.g. the Tikhonov
        # eigendecomposition for this model's noise level) must not turn repeats into cache hits
        self.runner.clear_caches(data=False, objects=True)
        return self.runner.run_case(self.case, self.tk)

    def time_case(self, n):
        """Wall time of provider + refiner + metrics on one model."""
        self._run()

    def peakmem_case(self, n):
        """Peak resident memory of the process after the case."""
        self._run()


class CompareCaseMetrics:
    """What the end-to-end case achieves: errors, operator applications, iterations."""

    params = [SIZES]
    param_names = ["n"]
    timeout = 900

    def setup_cache(self):
        from gravbench.bench import runner

        tk = runner.Toolkit()
        return {n: runner.run_case(_case(n), tk) for n in SIZES}

    def _get(self, records, n, key):
        rec = records[n]
        if rec["error"] is not None:
            raise NotImplementedError(f"case failed: {rec['error']}")
        return rec[key]

    def track_model_error(self, records, n):
        """||rho - rho_hat|| / ||rho||."""
        return self._get(records, n, "model_error")

    track_model_error.unit = "relative"

    def track_data_misfit(self, records, n):
        """||A rho_hat - g|| / ||g||."""
        return self._get(records, n, "data_misfit")

    track_data_misfit.unit = "relative"

    def track_n_matvec(self, records, n):
        """Operator applications (A v plus A^T u) by the refiner."""
        return self._get(records, n, "n_matvec")

    track_n_matvec.unit = "products"

    def track_niter(self, records, n):
        return self._get(records, n, "niter")

    track_niter.unit = "iterations"


if _SLOW:
    class SlowCompareCase(CompareCase):
        """``run_case`` at n = 100 and 200 (slow suite)."""

        params = [SLOW_SIZES]
