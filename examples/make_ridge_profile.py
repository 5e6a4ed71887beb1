"""Make ``examples/ridge-profile.csv``: a synthetic but realistic gz (Bouguer anomaly) profile.

The setting, in the CSV's terms (x along the profile, elevation positive up):

* a 4 km profile with a station every 50 m (81 stations) walked over a hill:
  the ground rises from 310 m to a 420 m summit at x = 2.6 km and falls to
  330 m (the sensor sits on the ground);
* one planted body: a dense block (+400 kg/m^3 density contrast) 400 m wide
  and 200 m tall, centred at x = 1.6 km with its centre 350 m below the datum
  elevation 420 m (i.e. at 70 m elevation);
* a regional field: -12 mGal + 0.8 mGal/km (a linear trend from a deeper,
  wider source);
* Gaussian noise with sigma = 0.02 mGal (seeded), written in the
  ``sigma_gz`` column.

The anomaly of the block is the exact closed-form gz of one rectangular
2D cell (docs/physics.md) at each station, computed on a one-cell grid, so
it does not depend on the grid that ``gravbench invert`` builds. The planted
body's centre and size are also written as comment lines, for the test that
checks the inversion finds it (tests/test_invert.py).

Run from the repository root:

    python examples/make_ridge_profile.py            # rewrites examples/ridge-profile.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import gravbench as gb

#: the planted body: centre x (m), centre elevation (m), width (m), height (m), density contrast (kg/m^3)
BODY = {"x": 1600.0, "elevation": 70.0, "width": 400.0, "height": 200.0, "density": 400.0}
#: regional trend: constant (mGal) and slope (mGal/m)
REGIONAL = (-12.0, 0.8e-3)
NOISE = 0.02
SEED = 14


def ground_elevation(x):
    """The hill: 310 m at x = 0, a 420 m summit at x = 2600 m, 330 m at x = 4000 m (smooth)."""
    x = np.asarray(x, dtype=np.float64)
    base = 310.0 + 20.0 * x / 4000.0
    return base + (420.0 - 310.0 - 20.0 * 2600.0 / 4000.0) * np.exp(-((x - 2600.0) / 800.0) ** 2)


def make_profile(seed=SEED):
    """``(x, elevation, gz, sigma, anomaly)``: stations, elevations (m) and gz (mGal) of the example."""
    x = np.arange(0.0, 4000.0 + 1e-9, 50.0)
    elev = ground_elevation(x)
    datum = float(elev.max())
    b = BODY
    z_top = datum - (b["elevation"] + 0.5 * b["height"])          # depth below the datum, positive down
    grid = gb.Grid.from_edges([b["x"] - 0.5 * b["width"], b["x"] + 0.5 * b["width"]],
                              [z_top, z_top + b["height"]])
    zs = datum - elev
    survey = gb.Survey(x, zs, components=("gz",), ground=(x, zs))
    anomaly = gb.Problem(grid, survey).forward(np.array([[b["density"]]]), method="dense")
    regional = REGIONAL[0] + REGIONAL[1] * x
    noise = NOISE * np.random.default_rng(seed).standard_normal(x.size)
    return x, elev, anomaly + regional + noise, np.full(x.size, NOISE), anomaly


def write(path, seed=SEED):
    x, elev, gz, sig, anomaly = make_profile(seed)
    b = BODY
    with open(path, "w") as fh:
        fh.write("# gravbench example: synthetic Bouguer gz profile over a hill (examples/make_ridge_profile.py)\n")
        fh.write("# units: mGal\n")
        fh.write(f"# planted body: x = {b['x']:g} m, elevation = {b['elevation']:g} m (centre), width = "
                 f"{b['width']:g} m, height = {b['height']:g} m, density contrast = {b['density']:g} kg/m^3\n")
        fh.write(f"# regional: {REGIONAL[0]:g} mGal + {REGIONAL[1] * 1e3:g} mGal/km * x; noise sigma = {NOISE:g} mGal, "
                 f"seed {seed}; peak anomaly {anomaly.max():.3f} mGal\n")
        fh.write("x,elevation,gz,sigma_gz\n")
        for row in zip(x, elev, gz, sig):
            fh.write(f"{row[0]:.1f},{row[1]:.2f},{row[2]:.5f},{row[3]:.3f}\n")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("ridge-profile.csv"))
    ap.add_argument("--seed", type=int, default=SEED)
    a = ap.parse_args()
    print(write(a.out, a.seed))


if __name__ == "__main__":
    main()
