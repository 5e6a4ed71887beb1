"""Bad input to the forward core: a ValueError naming the argument, never a numba traceback or a NaN.

Also: ``import gravbench`` and ``gravbench --help`` load neither torch nor dask.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback

import numpy as np
import pytest

import gravbench as gb
from gravbench.forward import sensitivity

XE = np.array([0.0, 10.0, 20.0, 30.0])
ZE = np.array([0.0, 5.0, 15.0])
SX = np.array([1.0, 12.0, 25.0])
SZ = np.array([-1.0, 0.0, -2.0])


def _raises(fn, *words):
    """Call fn, expect a plain ValueError whose message contains every word; no numba frames."""
    with pytest.raises(ValueError) as info:
        fn()
    msg = str(info.value)
    for w in words:
        assert w in msg, (w, msg)
    assert "numba" not in msg.lower() and "\n" not in msg.strip(), msg
    frames = "".join(traceback.format_tb(info.value.__traceback__))
    assert "numba/core" not in frames and "numba\\core" not in frames
    assert type(info.value).__module__ == "builtins" or isinstance(info.value, ValueError)
    return msg


@pytest.mark.parametrize("fn,words", [
    (lambda: sensitivity(XE, ZE, SX, [-1.0, 0.5, -2.0]), ("stations_z[1]", "inside the ground")),
    (lambda: sensitivity(XE, ZE + 10.0, SX, [-1.0, 5.0, -2.0]), ("stations_z[1]", "inside the ground")),
    (lambda: gb.Survey([0.0, 1.0], [0.0, 1e-9]), ("z[1]", "z <= 0")),
    (lambda: sensitivity(XE, ZE, [1.0, np.nan, 2.0], SZ), ("stations_x[1]", "finite")),
    (lambda: sensitivity(XE, ZE, SX, [-1.0, -np.inf, 0.0]), ("stations_z[1]", "finite")),
    (lambda: sensitivity([0.0, np.inf, 30.0], ZE, SX, SZ), ("x_edges", "finite")),
    (lambda: sensitivity(XE, [0.0, np.nan, 15.0], SX, SZ), ("z_edges", "finite")),
    (lambda: sensitivity([0.0, 10.0, 10.0, 30.0], ZE, SX, SZ), ("x_edges", "strictly increasing")),
    (lambda: sensitivity(XE, [0.0, 15.0, 5.0], SX, SZ), ("z_edges", "strictly increasing")),
    (lambda: sensitivity(XE, [-5.0, 5.0, 15.0], SX, SZ), ("z_edges", ">= 0")),
    (lambda: sensitivity([0.0], ZE, SX, SZ), ("x_edges", "empty")),
    (lambda: sensitivity(XE, [], SX, SZ), ("z_edges", "empty")),
    (lambda: sensitivity(XE, ZE, [], []), ("stations_x", "empty")),
    (lambda: sensitivity(XE, ZE, SX, SZ[:2]), ("stations_x", "stations_z", "same length")),
    (lambda: sensitivity(XE, ZE, [["a"]], SZ), ("stations_x",)),
    (lambda: sensitivity(XE, ZE, SX, SZ, kernel="prism"), ("kernel", "exact")),
    (lambda: sensitivity(XE, ZE, SX, SZ, dtype=np.int32), ("dtype", "float64")),
    (lambda: gb.Grid(nx=0, nz=3), ("nx", "empty")),
    (lambda: gb.Grid(nx=3, nz=2, width=-1.0), ("width",)),
    (lambda: gb.Survey([], []), ("station",)),
])
def test_bad_geometry(fn, words):
    _raises(fn, *words)


@pytest.fixture(scope="module")
def prob():
    grid = gb.Grid(nx=6, nz=5, width=600.0, depth=300.0)  # 30 cells, 36 data: shapes differ
    return gb.Problem(grid, gb.Survey.regular(grid, per_cell=3))


@pytest.mark.parametrize("method", ["dense", "matfree", "fft"])
def test_bad_vectors(prob, method):
    op = prob.operator(method)
    n, m2 = prob.n_cells, prob.n_data
    _raises(lambda: op.matvec(np.zeros(n + 1)), "v must have shape", str(n))
    _raises(lambda: op.matvec(np.zeros((prob.shape[0] + 1, prob.shape[1]))), "v must have shape")
    _raises(lambda: op.rmatvec(np.zeros(n)), "u must have shape", str(m2))
    _raises(lambda: op.normal_matvec(np.zeros(m2)), "v must have shape")
    bad = np.zeros(n)
    bad[3] = np.nan
    _raises(lambda: op.matvec(bad), "v", "NaN")
    _raises(lambda: op.normal_matvec(bad), "v", "NaN")
    badu = np.zeros(m2)
    badu[-1] = np.inf
    _raises(lambda: op.rmatvec(badu), "u", "NaN or inf")
    _raises(lambda: op.matvec(np.zeros(n, dtype=complex)), "v must be real")
    _raises(lambda: op.matvec(np.array(["x"] * n)), "v must be an array of numbers")
    assert op.n_matvec == 0 and op.n_rmatvec == 0  # failed calls are not counted


def test_bad_densities(prob):
    rho = np.zeros(prob.shape)
    _raises(lambda: prob.forward(rho[:-1]), "rho", "shape", str(prob.shape))
    _raises(lambda: prob.forward(np.zeros(prob.n_cells + 2)), "rho", "shape")
    rho[2, 3] = np.nan
    _raises(lambda: prob.forward(rho), "rho", "NaN")
    rho[2, 3] = -np.inf
    _raises(lambda: prob.forward(rho), "rho", "NaN or inf")


def test_bad_methods(prob):
    irregular = gb.Problem(prob.grid, gb.Survey([1.0, 50.0, 51.0], [0.0, -1.0, -1.0]))
    _raises(lambda: irregular.operator("fft"), "method='fft'", "regular survey")
    _raises(lambda: prob.operator("fast"), "method", "auto")
    _raises(lambda: prob.operator("dense", dtype=np.complex128), "dtype")
    _raises(lambda: gb.Problem(prob.grid, prob.survey, kernel="cube"), "kernel")
    deep = gb.Grid.from_edges([0.0, 10.0], [20.0, 30.0])
    _raises(lambda: gb.forward.toeplitz_table(deep, gb.Survey([1.0, 2.5], [0.0, 0.0])), "irregular")
    from gravbench.forward import DenseOperator

    _raises(lambda: DenseOperator(prob, A=np.zeros((3, 3))), "A must have shape")


def test_dense_too_big_for_memory():
    """A dense A larger than the available memory: a clear ValueError, not a MemoryError deep in numpy."""
    big = gb.Problem.paper(n=3000)  # A would need 1.3 TB
    _raises(lambda: big.sensitivity(), "GiB", "method='fft'")
    _raises(lambda: big.operator("dense"), "GiB", "matfree")


def test_no_silent_nan_at_singular_points():
    """Stations on corners, edges and at the surface: every entry finite (the limits of docs/physics.md)."""
    grid = gb.Grid(nx=4, nz=3, width=40.0, depth=30.0)
    x = np.r_[grid.x_edges, grid.x_centers]
    for kernel in ("exact",):
        A = sensitivity(grid.x_edges, grid.z_edges, x, np.zeros_like(x), kernel=kernel)
        assert np.all(np.isfinite(A))
        for method in ("dense", "matfree"):
            op = gb.Problem(grid, gb.Survey(x, np.zeros_like(x)), kernel=kernel).operator(method)
            assert np.all(np.isfinite(op.matvec(np.ones(grid.size))))


def test_cli_user_error_is_one_line():
    """A bad option value reaches a CLI user as one line, exit code 2 (a usage error)."""
    from gravbench.cli import main

    code = main(["forward", "--n", "6", "--method", "nonsense"])
    assert code == 2


# ------------------------------------------------------------------------------------------
# import hygiene: no torch, no dask (subprocess checks of sys.modules, not timings)
# ------------------------------------------------------------------------------------------
_MODULES = """
import json, sys
{body}
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'dask', 'distributed'))))
"""


@pytest.mark.parametrize("body", [
    "import gravbench",
    "import gravbench as gb; gb.Problem.paper(n=4).forward([[0.0] * 4] * 4)",
    "import gravbench.forward, gravbench.forward.operators",
    "import gravbench.cli\ntry:\n    gravbench.cli.main(['--help'])\nexcept SystemExit:\n    pass",
])
def test_import_does_not_load_torch_or_dask(body):
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", _MODULES.format(body=body)], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = json.loads(r.stdout.strip().splitlines()[-1])
    assert loaded == [], f"{body!r} imported {loaded[:5]}"
