"""latticeml: machine learning for lattice field theory, for teaching and prototyping.

Fields are plain NumPy arrays (see ``latticeml.lattice`` for the layout conventions);
Numba kernels do the loops over sites; every random draw takes an explicit
``numpy.random.Generator``.
"""

__version__ = "0.1.0"
