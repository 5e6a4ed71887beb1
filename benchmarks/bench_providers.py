"""Provider inference: one model and a batch of 100 (zero, tikhonov, depth-weighted, cnn).

The CNN uses the shipped weights for the grid (n = 50, 100); other sizes use
no network (``NotImplementedError``: skipped).
``setup`` builds the problem, the data and the provider and calls it once, so
loading, numba compilation and the per-problem eigendecompositions' caches
are outside the timed call. Data: ``mixed`` models with 1% peak noise, built
by :func:`gravbench.data.build` (seed 11).
"""

PROVIDERS = ["zero", "tikhonov", "depth-weighted", "cnn"]
SIZES = [50, 100, 200]


def _setup(n, name, batch):
    import numpy as np

    import gravbench as gb

    prob = gb.Problem.paper(n=n)
    ds = gb.data.build(prob, count=batch, seed=11, noise=0.01)["all"]
    G, S = np.asarray(ds.g, dtype=np.float64), np.asarray(ds.sigma, dtype=np.float64)
    if name == "cnn":
        import torch

        from gravbench.providers import cnn

        torch.set_num_threads(1)
        if n in cnn.available():
            p = gb.providers.get("cnn", n=n)
        else:
            raise NotImplementedError(f"no cnn weights for n={n}")
    elif name == "tikhonov":
        p = gb.providers.get("tikhonov", engine="direct")
    else:
        p = gb.providers.get(name)
    try:
        p.batch(G[:1], prob, sigma=S[:1])
    except gb.providers.NotApplicable as exc:   # e.g. the direct engine's dense A beyond its memory cap
        raise NotImplementedError(str(exc)) from None
    return p, prob, G, S, ds


class ProviderInference:
    """Wall time of one provider call (batch of 1) and of ``batch`` on 100 models."""

    params = [SIZES, PROVIDERS]
    param_names = ["n", "provider"]
    timeout = 600
    number = 1
    # full-run budget (asv run: every benchmark at most ~5 s of samples, one round): issue 15
    rounds = 1
    repeat = (1, 5, 5.0)
    warmup_time = 0.2

    def setup(self, n, name):
        self.p, self.prob, self.G, self.S, self.ds = _setup(n, name, 100)

    def time_batch1(self, n, name):
        self.p(self.G[0], self.prob, sigma=self.S[0])

    def time_batch100(self, n, name):
        self.p.batch(self.G, self.prob, sigma=self.S)


class ProviderMetrics:
    """Mean model error of each provider over the 100 models (``setup_cache``: one batch per case)."""

    params = [SIZES, PROVIDERS]
    param_names = ["n", "provider"]
    timeout = 900

    def setup_cache(self):
        import numpy as np

        out = {}
        for n in SIZES:
            for name in PROVIDERS:
                try:
                    p, prob, G, S, ds = _setup(n, name, 100)
                except NotImplementedError:
                    continue
                R = p.batch(G, prob, sigma=S).reshape(len(G), -1)
                rho = np.asarray(ds.rho, dtype=np.float64).reshape(len(G), -1)
                out[n, name] = float(np.mean(np.linalg.norm(R - rho, axis=1) / np.linalg.norm(rho, axis=1)))
        return out

    def setup(self, cache, n, name):
        if (n, name) not in cache:
            raise NotImplementedError(f"{name} cannot run at n={n}")

    def track_model_error(self, cache, n, name):
        return cache[n, name]

    track_model_error.unit = "relative L2"
