"""The torch autograd bridge: forward = op.matvec, backward = op.rmatvec, for every engine and input layout."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gravbench as gb  # noqa: E402
from gravbench.forward.torch import GravityLayer  # noqa: E402


@pytest.fixture(scope="module")
def prob():
    return gb.Problem.paper(n=8)


@pytest.fixture(scope="module")
def dense_op(prob):
    return prob.operator("dense")


@pytest.mark.parametrize("engine", ["dense", "operator"])
@pytest.mark.parametrize("layout", ["flat", "grid"])
def test_forward_equals_matvec(prob, dense_op, engine, layout):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3, prob.n_cells)) * 300.0
    layer = GravityLayer(prob, engine=engine)
    x = torch.tensor(X if layout == "flat" else X.reshape(3, *prob.shape))
    got = layer(x).detach().numpy()
    want = np.stack([dense_op.matvec(v) for v in X])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("engine", ["dense", "operator"])
def test_backward_equals_rmatvec(prob, dense_op, engine):
    """The vector-Jacobian product of A rho with u is A^T u (checked against the numpy operator)."""
    rng = np.random.default_rng(2)
    layer = GravityLayer(prob, engine=engine)
    x = torch.tensor(rng.normal(size=(4, *prob.shape)), requires_grad=True)
    U = rng.normal(size=(4, prob.n_data))
    (layer(x) * torch.tensor(U)).sum().backward()
    want = np.stack([dense_op.rmatvec(u) for u in U]).reshape(4, *prob.shape)
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("engine", ["dense", "operator"])
def test_gradcheck(prob, engine):
    layer = GravityLayer(prob, engine=engine)
    x = torch.randn(2, prob.n_cells, dtype=torch.float64, requires_grad=True, generator=torch.Generator().manual_seed(0))
    assert torch.autograd.gradcheck(layer, (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["matfree", "fft"])
def test_from_operator(prob, dense_op, method):
    """Built from a matrix-free / FFT operator (not a Problem), both directions agree with the dense A."""
    op = prob.operator(method)
    layer = GravityLayer(op, engine="operator")
    assert layer.op is op
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2, prob.n_cells))
    x = torch.tensor(X, requires_grad=True)
    y = layer(x)
    np.testing.assert_allclose(y.detach().numpy(), X @ dense_op.A.T, rtol=1e-9, atol=1e-9 * np.abs(y.detach().numpy()).max())
    U = rng.normal(size=(2, prob.n_data))
    (y * torch.tensor(U)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), U @ dense_op.A, rtol=1e-9, atol=1e-9 * np.abs(U @ dense_op.A).max())


def test_auto_and_float32(prob, dense_op):
    layer = GravityLayer(prob, dtype=torch.float32)
    assert layer.engine == "dense" and layer.A.dtype == torch.float32
    assert GravityLayer(prob, max_bytes=10).engine == "operator"
    x = torch.ones(1, *prob.shape, dtype=torch.float32)
    np.testing.assert_allclose(layer(x).numpy()[0], dense_op.matvec(np.ones(prob.n_cells)), rtol=1e-5)
    # adjoint helper
    u = torch.ones(1, prob.n_data, dtype=torch.float64)
    np.testing.assert_allclose(GravityLayer(prob).adjoint(u).numpy()[0], dense_op.rmatvec(np.ones(prob.n_data)), rtol=1e-12)


def test_bad_inputs(prob):
    layer = GravityLayer(prob)
    with pytest.raises(ValueError, match="rho must have shape"):
        layer(torch.ones(2, 7, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="rho must have shape"):
        layer(torch.ones(2, prob.n_cells + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="engine"):
        GravityLayer(prob, engine="sparse")
    with pytest.raises(ValueError, match="source"):
        GravityLayer(np.ones((3, 3)))
