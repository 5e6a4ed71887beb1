"""Autograd bridge: the gravity operator ``A`` inside a torch graph.

:class:`GravityLayer` is an ``nn.Module`` computing ``d = A rho`` for a batch
``rho`` of shape ``(B, nz*nx)`` or ``(B, nz, nx)`` (kg/m^3) and returning
``(B, n_data)`` (mGal: the survey's components, gx block then gz block; ``2m``
for both); its backward pass is ``A^T``. With a ground surface only the active
cells enter ``A rho`` (inactive cells are air: their gradient is zero). Two engines:

* ``"dense"``: ``A`` held as a torch tensor on the layer's device (fast,
  ``8 * 2m * nz*nx`` bytes in float64; chosen when it fits in ``max_bytes``);
* ``"operator"``: the numpy operator's ``matvec``/``rmatvec`` (matrix-free or
  FFT; any size; data goes through the CPU).

Torch is imported only when this module is imported (it is never imported by
``import gravbench`` or ``import gravbench.forward``).

Examples
--------
>>> import torch, gravbench as gb
>>> from gravbench.forward.torch import GravityLayer
>>> prob = gb.Problem.paper(n=8)
>>> layer = GravityLayer(prob)
>>> rho = torch.ones(2, 8, 8, dtype=torch.float64, requires_grad=True)
>>> layer(rho).shape
torch.Size([2, 48])
"""

from __future__ import annotations

import numpy as np

try:
    import torch
except ImportError as exc:  # pragma: no cover
    raise ImportError(
        "gravbench.forward.torch needs PyTorch, which is not installed; "
        "install it with pip install 'gravbench[ml]'  (or: pip install torch)"
    ) from exc

from .operators import _is_problem

__all__ = ["GravityLayer", "apply_operator", "DEFAULT_MAX_BYTES"]

#: Largest dense A (bytes, at the requested dtype) the layer keeps as a tensor.
DEFAULT_MAX_BYTES = 512 * 2**20


def _flatten(rho, n_cells, shape):
    if rho.dim() == 3:
        if tuple(rho.shape[1:]) != tuple(shape):
            raise ValueError(f"rho must have shape (B, {shape[0]}, {shape[1]}) or (B, {n_cells}), got {tuple(rho.shape)}")
        return rho.reshape(rho.shape[0], n_cells)
    if rho.dim() == 2:
        if rho.shape[1] != n_cells:
            raise ValueError(f"rho must have shape (B, {n_cells}) or (B, {shape[0]}, {shape[1]}), got {tuple(rho.shape)}")
        return rho
    if rho.dim() == 1 and rho.shape[0] == n_cells:
        return rho[None, :]
    raise ValueError(f"rho must have shape (B, {n_cells}) or (B, {shape[0]}, {shape[1]}), got {tuple(rho.shape)}")


class _OperatorFunction(torch.autograd.Function):
    """``A x`` through a numpy LinearOperator; backward is ``A^T``."""

    @staticmethod
    def forward(ctx, x, op):
        ctx.op = op
        xn = x.detach().cpu().double().numpy()
        out = np.stack([op.matvec(row) for row in xn]) if xn.shape[0] else np.zeros((0, op.shape[0]))
        return torch.as_tensor(out, dtype=x.dtype, device=x.device)

    @staticmethod
    def backward(ctx, grad_out):
        op = ctx.op
        gn = grad_out.detach().cpu().double().numpy()
        out = np.stack([op.rmatvec(row) for row in gn]) if gn.shape[0] else np.zeros((0, op.shape[1]))
        return torch.as_tensor(out, dtype=grad_out.dtype, device=grad_out.device), None


def apply_operator(op, x):
    """``A x`` for a batch ``x`` of shape ``(B, n_cells)`` through a numpy operator ``op`` (autograd: ``A^T``)."""
    return _OperatorFunction.apply(x, op)


class GravityLayer(torch.nn.Module):
    """``rho -> A rho`` as a differentiable layer.

    Parameters
    ----------
    source : gravbench.Problem or operator
        A Problem (the operator is built from it) or a gravbench operator
        (anything with ``matvec``, ``rmatvec``, ``shape`` and ``problem``).
    engine : {"auto", "dense", "operator"}
        ``"auto"`` keeps a dense ``A`` when it needs at most ``max_bytes``.
    dtype : torch.dtype
        Dtype of the dense tensor (``torch.float32`` or ``torch.float64``).
        Inputs are cast to it.
    device : str or torch.device
        Where the dense ``A`` lives.
    max_bytes : int
        Limit for the dense engine under ``"auto"``.

    Notes
    -----
    Input ``(B, nz, nx)`` or ``(B, nz*nx)`` in kg/m^3, output ``(B, 2m)`` in mGal.
    The gradient of a loss ``L(A rho)`` with respect to ``rho`` is
    ``A^T dL/dd``, computed with the transpose, never by differentiating the kernel.
    """

    def __init__(self, source, engine="auto", dtype=torch.float64, device="cpu", max_bytes=DEFAULT_MAX_BYTES):
        super().__init__()
        if engine not in ("auto", "dense", "operator"):
            raise ValueError(f"engine must be 'auto', 'dense' or 'operator', got {engine!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if _is_problem(source):
            problem, op = source, None
        elif hasattr(source, "matvec") and hasattr(source, "rmatvec") and hasattr(source, "problem"):
            problem, op = source.problem, source
        else:
            raise ValueError(f"source must be a gravbench.Problem or operator, got {type(source).__name__}")
        self.problem = problem
        self.shape2d = tuple(problem.shape)
        self.n_cells = problem.n_cells
        self.n_data = problem.n_data
        idx = getattr(problem, "active_index", None)
        #: flat indices of the active cells (None: all): inactive cells (air) do not enter A rho
        self.active_index = None if idx is None else torch.as_tensor(idx, dtype=torch.long, device=device)
        nbytes = getattr(problem, "n_active", self.n_cells) * self.n_data * (8 if dtype == torch.float64 else 4)
        if engine == "auto":
            engine = "dense" if nbytes <= max_bytes else "operator"
        self.engine = engine
        self.dtype = dtype
        if engine == "dense":
            A = op.A if hasattr(op, "A") else problem.sensitivity()
            self.register_buffer("A", torch.as_tensor(np.asarray(A), dtype=dtype).to(device))
            self.op = None
        else:
            self.op = op if op is not None else problem.operator(method="auto")
            self.A = None

    def forward(self, rho):
        x = _flatten(rho, self.n_cells, self.shape2d)
        if self.active_index is not None:
            x = x.index_select(1, self.active_index.to(x.device))   # A P^T: the gradient on air cells is 0
        if self.engine == "dense":
            return x.to(self.A.dtype) @ self.A.T
        return apply_operator(self.op, x.to(self.dtype))

    def adjoint(self, u):
        """``A^T u`` for ``u`` of shape ``(B, n_data)``, on the whole grid ``(B, nz*nx)`` (0 on inactive cells).

        No autograd through the operator engine.
        """
        if self.engine == "dense":
            out = u.to(self.A.dtype) @ self.A
        else:
            un = u.detach().cpu().double().numpy()
            out = torch.as_tensor(np.stack([self.op.rmatvec(r) for r in un]), dtype=u.dtype, device=u.device)
        if self.active_index is None:
            return out
        full = torch.zeros((out.shape[0], self.n_cells), dtype=out.dtype, device=out.device)
        full[:, self.active_index.to(out.device)] = out
        return full

    def extra_repr(self):
        return f"engine={self.engine}, n_data={self.n_data}, n_cells={self.n_cells}"
