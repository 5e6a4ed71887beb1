"""asv benchmarks of gravbench.data: model generation per family and data set builds.

``Generate``: 1,000 models of each family at the paper's grid sizes.
``SlowBuildPaper50`` (slow suite, ``GRAVBENCH_ASV_SLOW=1``): the full ``paper-50`` standard set (29,000 models, gx and gz at
150 stations, noise, three ``.npz`` files) built from scratch into a temporary
directory; the target is <= 60 s on a 2-core machine. ``setup`` renders and
builds a tiny set first so numba compilation (or cache loading) is never
timed.
"""

import shutil
import tempfile

import gravbench as gb
from gravbench.data import BASE_FAMILIES, STANDARD, build, generate

SIZES = [50, 200]


#: slow suites are defined only when asked for: ``GRAVBENCH_ASV_SLOW=1 asv run -E existing -b Slow``
_SLOW = __import__("os").environ.get("GRAVBENCH_ASV_SLOW") == "1"


def _warm():
    for fam in BASE_FAMILIES:
        generate(fam, 2, (4, 4), seed=0)
    build(gb.Problem.paper(n=4), count=8, seed=0)


class Generate:
    """1,000 models of one family on an n x n grid."""

    params = (SIZES, list(BASE_FAMILIES) + ["mixed"])
    param_names = ["n", "family"]
    timeout = 300
    # full-run budget (asv run: every benchmark at most ~5 s of samples, one round): issue 15
    rounds = 1
    repeat = (1, 5, 5.0)
    warmup_time = 0.2

    def setup(self, n, family):
        _warm()

    def time_generate_1000(self, n, family):
        generate(family, 1000, (n, n), seed=0)

    def peakmem_generate_1000(self, n, family):
        generate(family, 1000, (n, n), seed=0)


class BuildSmall:
    """Build (models + gravity + noise + split) in memory: n x n grid, 2,000 models."""

    params = [[50, 200]]
    param_names = ["n"]
    timeout = 300
    # full-run budget (asv run: every benchmark at most ~5 s of samples, one round): issue 15
    rounds = 1
    repeat = (1, 5, 5.0)
    warmup_time = 0.2

    def setup(self, n):
        _warm()
        self.p = gb.Problem.paper(n=n)
        self.p.sensitivity()

    def time_build_2000(self, n):
        build(self.p, count=2000, seed=0, splits=(0.9, 0.05, 0.05))


if _SLOW:
    class SlowBuildPaper50:
        """The full paper-50 set from scratch (target <= 60 s; slow suite)."""

        number = 1
        repeat = 1
        rounds = 1
        warmup_time = 0
        timeout = 900

        def setup(self):
            _warm()
            self.spec = STANDARD["paper-50"]
            self.p = self.spec.problem()
            self.dir = tempfile.mkdtemp(prefix="gravbench-asv-")

        def teardown(self):
            shutil.rmtree(self.dir, ignore_errors=True)

        def _build(self):
            build(self.p, self.spec.families, seed=self.spec.seed, noise=self.spec.noise,
                  splits=dict(zip(("train", "val", "test"), self.spec.splits)), out=self.dir, name="paper-50")

        def time_build_paper50(self):
            self._build()

        def peakmem_build_paper50(self):
            self._build()
