"""Physics of the 2D forward kernels (docs/conventions.md, docs/physics.md).

Every check compares against something the package did not compute: the
closed form written out again here (with ``atan(X/Z)`` and ``atan(Z/X)``
literally, not the ``atan2`` rewrite of the kernels), choclo's 3D prism of
very long strike, the infinite slab, the line mass, symmetry, and the
midpoint rule's convergence order.

A subset (``NOJIT_SUBSET``) is run again in a subprocess with
``NUMBA_DISABLE_JIT=1`` (the kernels as plain Python must give the same
answers).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gravbench as gb
from gravbench.constants import G, SI_TO_MGAL
from gravbench._numba import assemble as _assemble, kernels as _kernels
from gravbench.forward import sensitivity

ROOT = Path(__file__).resolve().parents[1]
NOJIT = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")


# ------------------------------------------------------------------------------------------
# The closed form of docs/physics.md, written independently in plain Python
# ------------------------------------------------------------------------------------------
def _t_atan(t, a):
    """``t * atan(a / t)`` with the limit 0 at ``t = 0``."""
    return 0.0 if t == 0.0 else t * math.atan(a / t)


def _a_ln_r(a, r):
    """``a * ln r`` with the limit 0 at ``a = 0`` (and at r = 0, where a = 0 too)."""
    return 0.0 if a == 0.0 else a * math.log(r)


def reference_cell(x1, x2, z1, z2, x0, z0):
    """(gx, gz) in mGal per kg/m^3 of the cell [x1, x2] x [z1, z2] at (x0, z0), from docs/physics.md."""
    gx = gz = 0.0
    for i, xi in ((1, x1), (2, x2)):
        for j, zj in ((1, z1), (2, z2)):
            s = 1.0 if i == j else -1.0
            X = xi - x0
            Z = zj - z0
            r = math.hypot(X, Z)
            gz += s * (_a_ln_r(X, r) + _t_atan(Z, X))
            gx += s * (_a_ln_r(Z, r) + _t_atan(X, Z))
    return 2.0 * G * SI_TO_MGAL * gx, 2.0 * G * SI_TO_MGAL * gz


def reference_matrix(xe, ze, sx, sz):
    m = len(sx)
    nx, nz = len(xe) - 1, len(ze) - 1
    A = np.empty((2 * m, nz * nx))
    for s in range(m):
        for k in range(nz):
            for i in range(nx):
                gx, gz = reference_cell(xe[i], xe[i + 1], ze[k], ze[k + 1], sx[s], sz[s])
                A[s, k * nx + i] = gx
                A[m + s, k * nx + i] = gz
    return A


def _random_case(seed, nx=7, nz=5, m=11):
    rng = np.random.default_rng(seed)
    xe = np.cumsum(np.r_[-180.0, rng.uniform(10.0, 60.0, nx)])
    ze = np.cumsum(np.r_[rng.choice([0.0, 3.0]), rng.uniform(5.0, 40.0, nz)])
    sx = rng.uniform(xe[0] - 100.0, xe[-1] + 100.0, m)
    sx[:3] = xe[[0, 2, -1]]  # stations exactly above cell edges
    sz = -rng.uniform(0.0, 20.0, m)
    sz[:2] = 0.0  # and on the surface
    return xe, ze, sx, sz


# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_form_general_path(seed):
    """Non-uniform grid, irregular survey (stations on edges and on the surface): general path."""
    xe, ze, sx, sz = _random_case(seed)
    A = sensitivity(xe, ze, sx, sz)
    R = reference_matrix(xe, ze, sx, sz)
    assert np.all(np.isfinite(A))
    np.testing.assert_allclose(A, R, rtol=1e-10, atol=1e-10 * np.abs(R).max())


@pytest.mark.parametrize("k", [1, 2, 3])
def test_closed_form_toeplitz_path(k):
    """Regular surveys take the Toeplitz fast path; it must equal the closed form too."""
    grid = gb.Grid(nx=6, nz=4, width=300.0, depth=200.0, x0=-40.0)
    survey = gb.Survey.regular(grid, per_cell=k, height=0.5)
    assert survey.regular_spacing(grid) == k
    A = sensitivity(grid.x_edges, grid.z_edges, survey.x, survey.z)
    R = reference_matrix(grid.x_edges, grid.z_edges, survey.x, survey.z)
    np.testing.assert_allclose(A, R, rtol=1e-10, atol=1e-10 * np.abs(R).max())


def test_scalar_kernel_matches_closed_form():
    rng = np.random.default_rng(5)
    for _ in range(50):
        x1 = rng.uniform(-100, 100)
        x2 = x1 + rng.uniform(1, 50)
        z1 = rng.uniform(0, 50)
        z2 = z1 + rng.uniform(1, 50)
        x0 = rng.uniform(-150, 150)
        z0 = -rng.uniform(0, 10)
        gx, gz = _kernels.exact_cell(x1, x2, z1, z2, x0, z0)
        rx, rz = reference_cell(x1, x2, z1, z2, x0, z0)
        f = 2.0 * G * SI_TO_MGAL
        scale = max(abs(rx), abs(rz))
        assert abs(f * gx - rx) <= 1e-10 * scale
        assert abs(f * gz - rz) <= 1e-10 * scale


# ------------------------------------------------------------------------------------------
# A 3D prism of very long strike (choclo): upward z and (easting, northing) -> our (x, depth)
# ------------------------------------------------------------------------------------------
def test_long_prism_choclo():
    prism = pytest.importorskip("choclo.prism")
    xe, ze, sx, sz = _random_case(11, nx=5, nz=4, m=9)
    A = sensitivity(xe, ze, sx, sz)
    m, nx, nz = sx.size, xe.size - 1, ze.size - 1
    rmax = math.hypot(max(xe[-1] - sx.min(), sx.max() - xe[0]), ze[-1] - sz.min())
    L = 1e4 * rmax  # strike half-length: truncation error ~ r^2 / (2 L^2) = 5e-9
    C = np.empty_like(A)
    for s in range(m):
        for k in range(nz):
            for i in range(nx):
                # easting = x, northing = strike (y), upward = -depth
                args = (sx[s], 0.0, -sz[s], xe[i], xe[i + 1], -L, L, -ze[k + 1], -ze[k], 1.0)
                C[s, k * nx + i] = prism.gravity_e(*args) * SI_TO_MGAL
                C[m + s, k * nx + i] = -prism.gravity_u(*args) * SI_TO_MGAL  # gz positive down
                assert prism.gravity_n(*args) == pytest.approx(0.0, abs=1e-12 * abs(C[m + s, k * nx + i]) + 1e-30)
    scale = np.abs(C).max()
    assert np.max(np.abs(A - C)) <= 1e-5 * scale
    # row by row (gx, gz of each station) the relative agreement holds too
    for row in range(2 * m):
        assert np.max(np.abs(A[row] - C[row])) <= 1e-5 * np.abs(C[row]).max()


# ------------------------------------------------------------------------------------------
def test_infinite_slab():
    """A very wide cell of thickness t: gz -> 2 pi G rho t, gx -> 0 at the centre."""
    t = 25.0
    for W in (1e6, 1e8):
        A = sensitivity([-W, W], [10.0, 10.0 + t], [0.0, 123.0], [-2.0, 0.0])
        slab = 2.0 * math.pi * G * t * SI_TO_MGAL
        # the finite width loses about 2 t / (pi W) of the field per edge pair
        tol = 4.0 * (10.0 + t) / (math.pi * W) + 1e-12
        assert abs(A[2, 0] - slab) <= tol * slab
        assert abs(A[3, 0] - slab) <= tol * slab
        assert abs(A[0, 0]) <= 1e-12 * slab
        # 123 m off centre: gx = 2 G rho t ln((W + 123) / (W - 123)) / 2 + O(t^2 / W), about 2 G rho t 123 / W
        assert abs(A[1, 0]) <= 2.0 * G * SI_TO_MGAL * t * 2.0 * 123.0 / W


def test_far_field_is_line_mass():
    """Far away, the exact cell approaches the line mass 2 G lambda (X, Z) / r^2, error O((h/r)^2)."""
    hx, hz = 10.0, 6.0
    errs = []
    for r in (50.0, 100.0, 200.0, 400.0, 800.0):
        for ang in (0.3, 0.9, 1.4):
            xc, zc = r * math.cos(ang), r * math.sin(ang)
            A = sensitivity([xc - hx / 2, xc + hx / 2], [zc - hz / 2, zc + hz / 2], [0.0], [0.0])
            lam = hx * hz
            line = 2.0 * G * SI_TO_MGAL * lam * np.array([xc, zc]) / (xc * xc + zc * zc)
            e = np.linalg.norm(A[:, 0] - line) / np.linalg.norm(line)
            assert e <= (max(hx, hz) / r) ** 2
            errs.append(e)
    assert errs[-1] < errs[0] / 100  # decays with distance


@pytest.mark.parametrize("kernel", ["exact", "midpoint"])
def test_symmetry_about_centre_line(kernel):
    """gz symmetric and gx antisymmetric about a cell's vertical centre line."""
    xc = 37.0
    d = np.array([0.0, 0.5, 3.0, 10.0, 55.0, 300.0])
    sx = np.r_[xc - d, xc + d]
    sz = np.r_[-np.linspace(0, 5, d.size), -np.linspace(0, 5, d.size)]
    A = sensitivity([xc - 8.0, xc + 8.0], [0.0, 30.0], sx, sz, kernel=kernel)
    m = sx.size
    gx, gz = A[:m, 0], A[m:, 0]
    n = d.size
    scale = np.abs(A).max()
    np.testing.assert_allclose(gz[:n], gz[n:], rtol=1e-13, atol=1e-14 * scale)
    np.testing.assert_allclose(gx[:n], -gx[n:], rtol=1e-13, atol=1e-14 * scale)
    assert abs(gx[0]) <= 1e-14 * scale  # on the centre line gx vanishes


@pytest.mark.parametrize("kernel", ["exact", "midpoint"])
def test_sign_conventions(kernel):
    """docs/conventions.md: gz > 0 for mass below, gx > 0 toward a mass on the right; units mGal."""
    #      station left of the cell, right of it, above it
    sx = np.array([-50.0, 150.0, 50.0])
    A = sensitivity([40.0, 60.0], [10.0, 30.0], sx, np.zeros(3), kernel=kernel)
    gx, gz = A[:3, 0], A[3:, 0]
    assert gx[0] > 0 and gx[1] < 0 and abs(gx[2]) < 1e-14 * gz[2]
    assert np.all(gz > 0)
    assert gz[2] > gz[0]
    # magnitude: 1000 kg/m^3 in a 20 m x 20 m cell 20 m below gives about 2 G lambda / r mGal
    est = 2.0 * G * 1000.0 * 400.0 / 20.0 * SI_TO_MGAL
    assert 0.5 * est < 1000.0 * gz[2] < 1.5 * est
    # the forward model of a Problem: [gx..., gz...] with rho[k, i] (k = depth row)
    grid = gb.Grid(nx=2, nz=2, width=20.0, depth=20.0)
    prob = gb.Problem(grid, gb.Survey([-30.0, 50.0], [0.0, 0.0]), kernel=kernel)
    rho = np.zeros((2, 2))
    rho[1, 1] = 500.0  # deep right cell
    g = prob.forward(rho)
    assert g[0] > 0 and g[1] < 0 and g[2] > 0 and g[3] > 0


def test_midpoint_converges_second_order():
    """A fixed block split into N x N midpoint cells: the error of the sum decays as h^2."""
    x1, x2, z1, z2 = 40.0, 160.0, 20.0, 80.0
    sx = np.array([0.0, 100.0, 250.0])
    sz = np.array([-1.0, 0.0, -5.0])
    exact = sensitivity([x1, x2], [z1, z2], sx, sz)[:, 0]
    Ns = [2, 4, 8, 16, 32]
    errs = []
    for N in Ns:
        Am = sensitivity(np.linspace(x1, x2, N + 1), np.linspace(z1, z2, N + 1), sx, sz, kernel="midpoint")
        errs.append(np.linalg.norm(Am.sum(axis=1) - exact) / np.linalg.norm(exact))
        # the exact kernel is additive: the subdivided block is the block
        Ae = sensitivity(np.linspace(x1, x2, N + 1), np.linspace(z1, z2, N + 1), sx, sz)
        np.testing.assert_allclose(Ae.sum(axis=1), exact, rtol=1e-11, atol=1e-12 * np.abs(exact).max())
    h = (x2 - x1) / np.array(Ns, dtype=float)
    order = np.polyfit(np.log(h), np.log(errs), 1)[0]
    assert 1.8 < order < 2.2, (order, errs)
    assert errs[-1] < 1e-3


@pytest.mark.parametrize("where", ["edge", "corner", "mid-top"])
def test_station_on_edge_or_corner(where):
    """A station on the surface exactly above a cell edge / at a cell corner gets the finite limit."""
    xe = np.array([0.0, 20.0, 45.0, 60.0])
    ze = np.array([0.0, 10.0, 35.0])
    x0 = {"edge": 20.0, "corner": 45.0, "mid-top": 30.0}[where]
    z0 = {"edge": -0.0, "corner": 0.0, "mid-top": 0.0}[where]
    A = sensitivity(xe, ze, [x0], [z0])
    assert np.all(np.isfinite(A))
    R = reference_matrix(xe, ze, [x0], [z0])
    np.testing.assert_allclose(A, R, rtol=1e-10, atol=1e-12 * np.abs(R).max())
    scale = np.abs(A).max()
    for eps in (1e-7, -1e-7):
        B = sensitivity(xe, ze, [x0 + eps], [z0 - abs(eps)])
        # the field of a 2D body is continuous; near a corner it varies like eps * ln(eps)
        assert np.max(np.abs(A - B)) <= 1e-5 * scale
    if where == "edge":  # the two shallow cells that share the edge under the station
        assert A[0, 0] < 0 < A[0, 1]  # the left cell pulls left, the right cell pulls right


# ------------------------------------------------------------------------------------------
# builds and paths agree
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", ["exact", "midpoint"])
@pytest.mark.parametrize("regular", [True, False])
def test_parallel_equals_serial(kernel, regular):
    grid = gb.Grid(nx=9, nz=6, width=450.0, depth=300.0)
    if regular:
        survey = gb.Survey.regular(grid, per_cell=2, height=1.0)
    else:
        xe, ze, sx, sz = _random_case(3, nx=9, nz=6, m=13)
        grid = gb.Grid.from_edges(xe, ze)
        survey = gb.Survey(sx, sz)
    args = (grid.x_edges, grid.z_edges, survey.x, survey.z)
    Ap = sensitivity(*args, kernel=kernel, parallel=True)
    As = sensitivity(*args, kernel=kernel, parallel=False)
    np.testing.assert_allclose(Ap, As, rtol=1e-14, atol=1e-15 * np.abs(As).max())


@pytest.mark.parametrize("kernel", ["exact", "midpoint"])
@pytest.mark.parametrize("k,height,extra", [(1, 1.0, 0), (2, 0.0, 0), (3, 1.0, 0), (3, 2.5, -2), (2, 1.0, 5)])
def test_toeplitz_equals_general(kernel, k, height, extra):
    """The Toeplitz fast path equals the general loop (m not a multiple of k, stations beyond the grid)."""
    grid = gb.Grid(nx=8, nz=5, width=400.0, depth=250.0, x0=100.0)
    base = gb.Survey.regular(grid, per_cell=k, height=height)
    if extra >= 0:  # extend the line beyond the right edge
        step = grid.dx / k
        x = np.r_[base.x, base.x[-1] + step * np.arange(1, extra + 1)]
    else:  # drop stations: m is not a multiple of k
        x = base.x[:extra]
    survey = gb.Survey(x, np.full(x.size, -height))
    assert survey.regular_spacing(grid) == k
    A = sensitivity(grid.x_edges, grid.z_edges, survey.x, survey.z, kernel=kernel)
    B = np.empty_like(A)
    from gravbench.constants import TWO_G_MGAL

    _assemble.fill_general_ser(grid.x_edges, grid.z_edges, np.ascontiguousarray(survey.x),
                               np.ascontiguousarray(survey.z), 0 if kernel == "exact" else 1, TWO_G_MGAL, B)
    np.testing.assert_allclose(A, B, rtol=1e-11, atol=1e-12 * np.abs(B).max())


def test_float32_assembly():
    prob = gb.Problem.paper(n=8)
    A64 = prob.sensitivity()
    A32 = prob.sensitivity(dtype=np.float32)
    assert A32.dtype == np.float32
    np.testing.assert_allclose(A32, A64, rtol=1e-6, atol=1e-7 * np.abs(A64).max())
    irregular = gb.Problem(prob.grid, gb.Survey([1.0, 7.0, 500.0], [0.0, -2.0, -1.0]))
    B32 = irregular.sensitivity(dtype=np.float32)
    np.testing.assert_allclose(B32, irregular.sensitivity(), rtol=1e-6, atol=1e-7 * np.abs(B32).max())


# ------------------------------------------------------------------------------------------
# the same physics with the JIT disabled (plain Python kernels)
# ------------------------------------------------------------------------------------------
NOJIT_SUBSET = [
    "test_closed_form_general_path",
    "test_closed_form_toeplitz_path",
    "test_scalar_kernel_matches_closed_form",
    "test_symmetry_about_centre_line",
    "test_sign_conventions",
    "test_station_on_edge_or_corner",
    "test_parallel_equals_serial",
    "test_toeplitz_equals_general",
]


@pytest.mark.skipif(NOJIT, reason="already running without the JIT")
def test_kernels_without_jit(tmp_path):
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           str(Path(__file__)), "-k", " or ".join(NOJIT_SUBSET)]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and "failed" not in r.stdout


def test_jit_is_really_disabled_in_subprocess():
    """Guard for the test above: under NUMBA_DISABLE_JIT the kernels are plain Python functions."""
    code = ("import gravbench._numba.kernels as k, gravbench._numba.assemble as a;"
            "print(type(k.exact_cell).__name__, type(a.fill_general_par).__name__)")
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, NUMBA_DISABLE_JIT="1"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["function", "function"]


# ------------------------------------------------------------------------------------------
# numba's on-disk cache from a read-only install
# ------------------------------------------------------------------------------------------
_CACHE_SCRIPT = r"""
import json, os, sys
import numpy as np
import gravbench as gb
from gravbench._numba import assemble as _assemble
from gravbench.forward import sensitivity
assert gb.__file__.startswith(sys.argv[1]), gb.__file__
prob = gb.Problem.paper(n=6)
# an irregular survey: the general loop (one compiled function keeps this test quick)
B = sensitivity(prob.grid.x_edges, prob.grid.z_edges, prob.survey.x[::-1].copy() + 0.1, prob.survey.z,
                parallel=False)
fns = [_assemble.fill_general_ser]
print(json.dumps({"hits": [sum(f.stats.cache_hits.values()) for f in fns],
                  "misses": [sum(f.stats.cache_misses.values()) for f in fns],
                  "sum": float(B.sum())}))
"""


@pytest.mark.skipif(NOJIT, reason="needs the JIT")
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("home_writable", [True, False])
def test_numba_cache_read_only_install(tmp_path, home_writable):
    """Import and run gravbench from a read-only copy, NUMBA_CACHE_DIR unset.

    With a writable HOME numba falls back to its user-wide cache
    (``~/.cache/numba``); with no writable HOME either, gravbench falls back
    to ``<tempdir>/gravbench-numba-cache-<uid>`` (gravbench/_cache.py).
    Either way the second run compiles nothing (cache hits, no misses).
    """
    site = tmp_path / "site"
    shutil.copytree(ROOT / "gravbench", site / "gravbench",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "*.pyc"))
    home = tmp_path / "home"
    home.mkdir()
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    pkg_dirs = [d for d in [site / "gravbench", *(site / "gravbench").rglob("*")] if d.is_dir()]
    if os.geteuid() == 0:
        # root ignores permission bits: make numba's makedirs fail the way a read-only
        # file system does (an OSError), with files where its cache directories would go
        for d in pkg_dirs:
            (d / "__pycache__").write_text("read-only install")
        if not home_writable:
            (home / ".cache").write_text("no writable home")
    for p in [site, *site.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    if not home_writable:
        home.chmod(0o555)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "XDG_"))}
    env.update(HOME=str(home), TMPDIR=str(tmpdir), PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1",
               NUMBA_NUM_THREADS="1")
    runs = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", _CACHE_SCRIPT, str(site)], env=env, cwd=str(tmpdir),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        import json

        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    assert not list(site.rglob("*.nbi")), "wrote into the read-only install"
    cache_root = (home / ".cache" / "numba") if home_writable else (tmpdir / f"gravbench-numba-cache-{os.getuid()}")
    assert list(cache_root.rglob("*.nbi")), f"no numba cache index under {cache_root}"
    assert sum(runs[0]["misses"]) > 0 and sum(runs[0]["hits"]) == 0
    assert sum(runs[1]["misses"]) == 0 and all(h > 0 for h in runs[1]["hits"])
    assert runs[0]["sum"] == runs[1]["sum"]
    for p in [site, home, *site.rglob("*")]:  # let pytest clean up
        p.chmod(0o755 if p.is_dir() else 0o644)


@pytest.mark.parametrize("shift", [-7.5, 123.0, -1e3])
def test_toeplitz_with_stations_off_the_grid(shift):
    """A regular line that starts left of the grid or is offset by a non-multiple of the spacing."""
    grid = gb.Grid(nx=6, nz=4, width=300.0, depth=120.0)
    x = grid.x_edges[0] + shift + np.arange(17) * (grid.dx / 2)
    survey = gb.Survey(x, np.full(x.size, -3.0))
    assert survey.regular_spacing(grid) == 2
    A = sensitivity(grid.x_edges, grid.z_edges, survey.x, survey.z)
    R = reference_matrix(grid.x_edges, grid.z_edges, survey.x, survey.z)
    np.testing.assert_allclose(A, R, rtol=1e-10, atol=1e-10 * np.abs(R).max())
    op = gb.Problem(grid, survey).operator("fft")
    v = np.random.default_rng(1).standard_normal(grid.size)
    np.testing.assert_allclose(op.matvec(v), R @ v, rtol=1e-10, atol=1e-10 * np.abs(R @ v).max())
