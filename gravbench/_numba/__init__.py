"""The numba kernels of the forward problem, below every other layer that compiles code.

``kernels``: the scalar line-mass and corner terms of one cell and one station.
``assemble``: the numba loops over them (dense fill, matrix-free ``A v`` and
``A^T u``, the Toeplitz table, the FFT contractions).

They live here, not in :mod:`gravbench.forward`, because the compiled solver
loops of :mod:`gravbench._linalg` call the matrix-free loops directly, and the
forward operators in turn use :mod:`gravbench._linalg`: both import this
package, and neither imports the other's layer upwards.
"""
