"""Lattice field theories: each theory is one unit (fields, action, force, starts, observables, local updates).

* :mod:`~latticeml.theories.base`     -- the protocol every theory follows, :class:`Parameter`, the
  registry (:func:`register_theory`, :func:`theory_registry`) and :func:`make_theory`
* :mod:`~latticeml.theories.phi4`     -- real scalar phi^4 (Albergo-Kanwar-Shanahan form, standard and
  hopping forms); :class:`Phi4` with Metropolis
* :mod:`~latticeml.theories.u1`       -- compact U(1), Wilson action, any D >= 2; :class:`U1` with
  Metropolis, heatbath (von Mises) and overrelaxation
* :mod:`~latticeml.theories.sun`      -- SU(N), Wilson action, any D >= 2; :class:`SUN` (``su2``,
  ``su3``, ``sun``) with the molecular-dynamics drift; its local updates (Metropolis,
  Creutz/Kennedy-Pendleton/Cabibbo-Marinari heatbath, overrelaxation) in
  :mod:`~latticeml.theories.sun_local`, the SU(3) fast path in :mod:`~latticeml.theories.su3_fast`
* :mod:`~latticeml.theories.improved` -- plaquette + rectangle actions (Luscher-Weisz, Iwasaki, any
  c1) and the theories :class:`ImprovedU1`, :class:`ImprovedSUN` (HMC only) and :class:`SmearedSUN`
  (the SLHMC molecular-dynamics action)

``make_theory("su3", (8, 8, 8, 8), beta=5.7)`` builds a theory by its registry name;
``action="iwasaki"`` (or ``c1=-0.331``) builds the improved one. Each module works on plain NumPy
arrays (layouts in :mod:`latticeml.lattice`); a theory object reaches its kernels through
:mod:`latticeml.backends`.

Adding a theory
---------------
Write ``theories/<name>.py`` with the array functions (action, force, ...) and a class deriving
from :class:`Theory`, decorated ``@register_theory("<name>")``, declaring its ``parameters`` and
implementing the protocol of :mod:`~latticeml.theories.base`; add its kernel family to
:data:`latticeml.backends.KERNELS` and its import to :func:`latticeml.theories.base._load_theories`
(the command line, the samplers and ``make_theory`` then know it). ``tests/test_theories.py``
checks every registered theory against the protocol.
"""

from . import phi4, sun, u1
from .base import (
    ACTION_PARAMETERS,
    GAUGE_ACTIONS,
    LOCAL_UPDATES,
    Parameter,
    Theory,
    make_theory,
    register_theory,
    theory_registry,
)
from .phi4 import Phi4
from .sun import SU2, SU3, SUN
from .u1 import U1

__all__ = [
    "phi4",
    "u1",
    "sun",
    "Theory",
    "Parameter",
    "LOCAL_UPDATES",
    "GAUGE_ACTIONS",
    "ACTION_PARAMETERS",
    "register_theory",
    "theory_registry",
    "make_theory",
    "Phi4",
    "U1",
    "SUN",
    "SU2",
    "SU3",
    "ImprovedU1",
    "ImprovedSUN",
    "SmearedSUN",
]

_IMPROVED = ("ImprovedU1", "ImprovedSUN", "SmearedSUN")


def __getattr__(name):
    # The improved-action theories import the smearing machinery; load it only when asked for.
    if name in _IMPROVED:
        from . import improved

        return getattr(improved, name)
    raise AttributeError(f"module 'latticeml.theories' has no attribute {name!r}")
