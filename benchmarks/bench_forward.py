"""asv benchmarks of the forward core: assembly of A and the three operators.

Sizes follow the seed paper's setup (``Problem.paper(n)``: n x n cells, 3n
stations, gx and gz). Every ``setup`` builds the problem and calls each
jitted function once on a tiny problem, so numba compilation is never timed.
Combinations that do not fit the machine raise ``NotImplementedError`` in
``setup`` (asv skips them): the dense matrix when it would take more than a
quarter of the available memory, the matrix-free operator above n = 400
(one product at n = 1000 takes tens of seconds).

The default suite runs n = 50 and 200; the large operator sizes (400 to
2000) are in the slow suites ``SlowOperators`` and ``SlowOperatorBuild``
(``GRAVBENCH_ASV_SLOW=1 asv run -E existing -b Slow``) and in ``gravbench
report scaling``. The
``track_`` figures come from ``setup_cache`` (one operator per case, built once).
"""

import numpy as np

import gravbench as gb
from gravbench.forward import sensitivity
from gravbench.forward.operators import _available_memory

SIZES = [50, 200]
SLOW_OP_SIZES = [400, 1000, 2000]
OP_SIZES = [50, 200]
MATFREE_MAX_N = 400


def _dense_bytes(n):
    return 6 * n**3 * 8  # (2 * 3n) x n^2 float64


#: slow suites are defined only when asked for: ``GRAVBENCH_ASV_SLOW=1 asv run -E existing -b Slow``
_SLOW = __import__("os").environ.get("GRAVBENCH_ASV_SLOW") == "1"


def _warm(method=None, kernel="exact"):
    """Compile (or load from cache) every numba function the timed code uses."""
    p = gb.Problem.paper(n=4, kernel=kernel)
    sensitivity(p.grid.x_edges, p.grid.z_edges, p.survey.x, p.survey.z, kernel=kernel)
    if method is not None:
        op = p.operator(method)
        op.normal_matvec(np.ones(p.n_cells))


class Assembly:
    """Dense A: the fast Toeplitz path against filling an array of the same size."""

    params = (SIZES, ["exact", "midpoint"])
    param_names = ["n", "kernel"]
    timeout = 600
    # full-run budget (asv run: every benchmark at most ~5 s of samples, one round): issue 15
    rounds = 1
    repeat = (1, 5, 5.0)
    warmup_time = 0.2

    def setup(self, n, kernel):
        if 2 * _dense_bytes(n) > _available_memory() / 2:
            raise NotImplementedError("A does not fit comfortably in memory")
        _warm(kernel=kernel)
        self.p = gb.Problem.paper(n=n, kernel=kernel)
        self.args = (self.p.grid.x_edges, self.p.grid.z_edges, self.p.survey.x, self.p.survey.z)
        self.shape = (self.p.n_data, self.p.n_cells)

    def time_sensitivity(self, n, kernel):
        sensitivity(*self.args, kernel=kernel, disable_checks=True)

    def time_sensitivity_serial(self, n, kernel):
        sensitivity(*self.args, kernel=kernel, disable_checks=True, parallel=False)

    def time_sensitivity_parallel(self, n, kernel):
        """The parallel build forced (``parallel="auto"`` goes serial when the cores are busy)."""
        sensitivity(*self.args, kernel=kernel, disable_checks=True, parallel=True)

    def time_fill_reference(self, n, kernel):
        """np.full of the same shape and dtype: the memory-speed floor."""
        np.full(self.shape, 1.0)

    def peakmem_sensitivity(self, n, kernel):
        sensitivity(*self.args, kernel=kernel, disable_checks=True)


class AssemblyGeneral:
    """Dense A from an irregular survey (no Toeplitz structure): one kernel value per entry."""

    params = [[50, 200]]
    param_names = ["n"]
    timeout = 600
    # full-run budget (asv run: every benchmark at most ~5 s of samples, one round): issue 15
    rounds = 1
    repeat = (1, 5, 5.0)
    warmup_time = 0.2

    def setup(self, n):
        _warm()
        p = gb.Problem.paper(n=n)
        rng = np.random.default_rng(0)
        x = np.sort(rng.uniform(0.0, p.grid.width, p.survey.m))
        z = -rng.uniform(0.5, 2.0, x.size)
        self.args = (p.grid.x_edges, p.grid.z_edges, x, z)
        sensitivity(self.args[0][:5], self.args[1][:5], x[:3], z[:3])  # compile the general path

    def time_sensitivity_general(self, n):
        sensitivity(*self.args, disable_checks=True)


class Operators:
    """matvec, rmatvec and normal_matvec of each operator (float64, all cores)."""

    params = (OP_SIZES, ["dense", "matfree", "fft"])
    param_names = ["n", "method"]
    timeout = 900
    # full-run budget (asv run: every benchmark at most ~5 s of samples, one round): issue 15
    rounds = 1
    repeat = (1, 5, 5.0)
    warmup_time = 0.2

    def setup(self, n, method):
        if method == "dense" and 2 * _dense_bytes(n) > _available_memory() / 2:
            raise NotImplementedError("A does not fit comfortably in memory")
        if method == "matfree" and n > MATFREE_MAX_N:
            raise NotImplementedError("matrix-free products take too long at this size")
        _warm(method)
        self.p = gb.Problem.paper(n=n)
        self.op = self.p.operator(method, check_inputs=False)
        rng = np.random.default_rng(0)
        self.v = rng.standard_normal(self.p.n_cells)
        self.u = rng.standard_normal(self.p.n_data)

    def time_matvec(self, n, method):
        self.op.matvec(self.v)

    def time_rmatvec(self, n, method):
        self.op.rmatvec(self.u)

    def time_normal_matvec(self, n, method):
        self.op.normal_matvec(self.v)



class OperatorMetrics:
    """Adjoint mismatch and stored bytes of each operator (``setup_cache``: each operator built once)."""

    params = (OP_SIZES, ["dense", "matfree", "fft"])
    param_names = ["n", "method"]
    timeout = 900

    def setup_cache(self):
        out = {}
        for n in OP_SIZES:
            for method in ["dense", "matfree", "fft"]:
                op = gb.Problem.paper(n=n).operator(method)
                out[n, method] = {"dot": gb.forward.dot_test(op, rng=0, n_trials=1), "bytes": op.nbytes}
        return out

    def track_dot_test(self, cache, n, method):
        """Relative adjoint mismatch |<Ax, y> - <x, A^T y>| / |<Ax, y>|."""
        return cache[n, method]["dot"]

    track_dot_test.unit = "relative error"

    def track_operator_bytes(self, cache, n, method):
        return cache[n, method]["bytes"]

    track_operator_bytes.unit = "bytes"


class OperatorBuild:
    """Constructing an operator (assembly for dense, the rFFT'd Toeplitz table for fft)."""

    params = (OP_SIZES, ["dense", "fft"])
    param_names = ["n", "method"]
    timeout = 900
    # full-run budget (asv run: every benchmark at most ~5 s of samples, one round): issue 15
    rounds = 1
    repeat = (1, 5, 5.0)
    warmup_time = 0.2

    def setup(self, n, method):
        if method == "dense" and 2 * _dense_bytes(n) > _available_memory() / 2:
            raise NotImplementedError("A does not fit comfortably in memory")
        _warm(method)
        self.p = gb.Problem.paper(n=n)

    def time_build(self, n, method):
        self.p.operator(method)

    def peakmem_build_and_normal_matvec(self, n, method):
        """Peak memory of building the operator and one A^T A v (no dense A for fft)."""
        op = self.p.operator(method, check_inputs=False)
        op.normal_matvec(np.ones(self.p.n_cells))


class BlasReference:
    """numpy's dense A.T @ (A @ v): the yardstick of the normal_matvec targets."""

    params = [[50, 200]]
    param_names = ["n"]
    timeout = 600
    # full-run budget (asv run: every benchmark at most ~5 s of samples, one round): issue 15
    rounds = 1
    repeat = (1, 5, 5.0)
    warmup_time = 0.2

    def setup(self, n):
        _warm()
        p = gb.Problem.paper(n=n)
        self.A = p.sensitivity()
        self.v = np.random.default_rng(0).standard_normal(p.n_cells)

    def time_numpy_normal_matvec(self, n):
        self.A.T @ (self.A @ self.v)


if _SLOW:
    class SlowOperators(Operators):
        """Operators at n = 400, 1000, 2000 (slow suite)."""

        params = (SLOW_OP_SIZES, ["dense", "matfree", "fft"])


if _SLOW:
    class SlowOperatorBuild(OperatorBuild):
        """Operator construction at n = 400, 1000, 2000 (slow suite)."""

        params = (SLOW_OP_SIZES, ["dense", "fft"])
