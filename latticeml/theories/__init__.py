"""Lattice field theories: fields, actions, forces and staples.

* :mod:`~latticeml.theories.phi4` -- real scalar phi^4 (Albergo-Kanwar-Shanahan form, standard and hopping forms)
* :mod:`~latticeml.theories.u1`   -- compact U(1) gauge theory, Wilson action, any D >= 2
* :mod:`~latticeml.theories.sun`  -- SU(N) gauge theory, Wilson action, any D >= 2

Each module works on plain NumPy arrays (layouts in :mod:`latticeml.lattice`) and exposes the
per-site Numba helpers that local update algorithms need (``local_delta_action``, ``staple_at``,
``staple_into``).
"""

from . import phi4, sun, u1
from .models import make_theory

__all__ = ["phi4", "u1", "sun", "make_theory"]
