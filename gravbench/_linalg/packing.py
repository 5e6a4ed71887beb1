"""The packed tuple that carries an operator into the compiled loops.

``P = (mode, M, xe, ze, sx, sz, kid, factor, nchunks, parallel, w2)``:
mode 0 = square matrix ``M``; 1 = dense rectangular ``A = M``; 2 = matrix-free
gravity operator (``M`` unused; the grid edges, stations, kernel id and the
factor 2G in mGal feed :mod:`gravbench._numba.assemble`); ``w2`` (data-space
weights squared, or a length-1 dummy) turns ``op_S`` into ``A^T diag(w2) A``.
An operator that can run inside numba builds its own tuple
(``op._numba_pack(w2)``), so nothing here imports the operators; and this
module imports nothing from gravbench, so the operators can import it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MODE_MATRIX", "MODE_DENSE", "MODE_MATFREE", "EMPTY1", "EMPTY2", "pack_matrix", "pack_gravity"]

MODE_MATRIX = 0
MODE_DENSE = 1
MODE_MATFREE = 2

EMPTY1 = np.zeros(1)
EMPTY2 = np.zeros((1, 1))


# ----------------------------------------------------------------------------------
# packing operators
# ----------------------------------------------------------------------------------
def pack_matrix(M, mode=MODE_MATRIX, w2=None):
    """Packed tuple of a matrix: square ``S`` (mode 0) or a dense rectangular ``A`` (mode 1)."""
    w2 = EMPTY1 if w2 is None else w2
    return (mode, np.ascontiguousarray(M, dtype=np.float64), EMPTY1, EMPTY1, EMPTY1, EMPTY1, 0, 0.0, 1, False,
            w2)


def pack_gravity(op, w2=None):
    """Packed tuple for an operator whose products can run in numba, else None.

    2D float64 ndarrays are taken as a dense ``A``; an operator object packs itself
    through its ``_numba_pack(w2)`` method (gravbench's dense and matrix-free float64
    operators), which returns None when it cannot. ``w2``: data weights squared.
    """
    w2 = EMPTY1 if w2 is None else np.ascontiguousarray(w2, dtype=np.float64)
    if isinstance(op, np.ndarray):
        return pack_matrix(op, MODE_DENSE, w2) if op.ndim == 2 and op.dtype == np.float64 else None
    pack = getattr(op, "_numba_pack", None)
    return pack(w2) if pack is not None else None
