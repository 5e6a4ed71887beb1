"""Provider inference: one model and a batch of 100 (zero, tikhonov, depth-weighted, cnn).

The CNN uses the shipped weights for the grid (n = 50, 100); other sizes use
an untrained network of the same architecture (the cost per call is the same).
``setup`` builds the problem, the data and the provider and calls it once, so
loading, numba compilation and the per-problem eigendecompositions' caches
are outside the timed call. Data: ``mixed`` models with 1% peak noise, built
by :func:`gravbench.data.build` (seed 11).
"""

PROVIDERS = ["zero", "tikhonov", "depth-weighted", "cnn"]


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
    p.batch(G[:1], prob, sigma=S[:1])
    return p, prob, G, S, ds


class ProviderInference:
    """Wall time of one provider call (batch of 1) and of ``batch`` on 100 models; ``track_`` the model error."""

    params = [[50, 100], PROVIDERS]
    param_names = ["n", "provider"]
    timeout = 600
    number = 1
    repeat = (2, 5, 60.0)

    def setup(self, n, name):
        self.p, self.prob, self.G, self.S, self.ds = _setup(n, name, 100)

    def time_batch1(self, n, name):
        self.p(self.G[0], self.prob, sigma=self.S[0])

    def time_batch100(self, n, name):
        self.p.batch(self.G, self.prob, sigma=self.S)

    def track_model_error(self, n, name):
        import numpy as np

        R = self.p.batch(self.G, self.prob, sigma=self.S).reshape(len(self.G), -1)
        rho = np.asarray(self.ds.rho, dtype=np.float64).reshape(len(self.G), -1)
        return float(np.mean(np.linalg.norm(R - rho, axis=1) / np.linalg.norm(rho, axis=1)))

    track_model_error.unit = "relative L2"
