"""Physical constants and unit factors, defined once for the whole package.

All numerics run in SI units; conversion to mGal happens once, at the end of
the public functions.
"""

#: Newtonian constant of gravitation, m^3 kg^-1 s^-2 (CODATA 2018).
G = 6.6743e-11

#: 1 m/s^2 expressed in mGal (1 mGal = 1e-5 m/s^2).
SI_TO_MGAL = 1.0e5

#: 2 G in mGal per (kg/m^3 * m): the prefactor of every 2D kernel.
TWO_G_MGAL = 2.0 * G * SI_TO_MGAL

__all__ = ["G", "SI_TO_MGAL", "TWO_G_MGAL"]
