"""The theory protocol, the registry of theories and :func:`make_theory`.

A *theory* is a target distribution ``exp(-S)`` on a lattice, bundled with everything a sampler
needs. Samplers are written once against this protocol and never ask which theory they hold; a
theory chooses its Numba kernels in Python (through :mod:`latticeml.backends`) and passes only
arrays and scalars into them, so ``cache=True`` holds.

What a theory must provide
--------------------------
identity
    ``name`` (the registry name: ``"phi4"``, ``"u1"``, ``"su2"``, ``"su3"``, ``"sun"``),
    ``shape``, ``dim``, ``volume``, ``backend``; ``params``, a JSON-able dict of the shape and the
    couplings such that ``make_theory(t.name, t.shape, **couplings)`` rebuilds it (``couplings``
    is ``params`` without ``"shape"``); the class attribute ``parameters``, a tuple of
    :class:`Parameter` (the couplings it declares; the command line builds its flags from them).
fields
    ``field_shape`` and ``field_dtype`` (phi^4 ``shape`` float64, U(1) ``(D, *shape)`` float64,
    SU(N) ``(D, *shape, N, N)`` complex128), ``check_field(field) -> field`` (a validated
    C-contiguous array of that shape and dtype, or an error that says what is wrong),
    ``hot_start(rng)``, ``cold_start()``,
    ``observables(field) -> dict[str, float]`` (the default measurements).
dynamics (HMC)
    ``action(field) -> float``, ``force(field) -> array`` (the gradient of S, Lie-algebra valued
    for SU(N)), ``random_momentum(rng)``, ``kinetic_energy(p) -> float``,
    ``evolve(field, p, eps) -> field`` (the flow of ``d field/dt = p``: ``phi + eps p``,
    ``theta + eps p`` or ``exp(eps P) U``).

What a theory may provide
-------------------------
auxiliary fields
    ``draw_auxiliary(rng, field)`` returns fields that live for one trajectory (pseudofermions),
    or None (the default here: no auxiliary field, no random numbers drawn). A theory that returns
    a value accepts it as a second argument, ``action(field, aux)`` and ``force(field, aux)``;
    HMC passes it only when it is not None.
local updates
    ``local_updates``, a frozenset of ``{"metropolis", "heatbath", "overrelax"}`` (empty here),
    and for each algorithm in it a sweep, in place on the C-contiguous working copy the sampler
    passes (every extent even: the sweeps run over a checkerboard):
    ``metropolis_sweep(rng, field, *, step_size, hits) -> acceptance`` (fraction accepted),
    ``heatbath_sweep(rng, field) -> trials_per_draw``, ``overrelax_sweep(field)``; with
    ``metropolis_step_size`` (the default proposal width) and ``local_variables`` (sites or links
    a sweep visits). A sampler refuses a theory whose ``local_updates`` lacks its algorithm, with
    one line naming the algorithms that do support it: nothing ever samples another action than
    the one asked for (an improved gauge action has no local updates, since the rectangles through
    a link break the checkerboard; it is sampled by HMC).

The registry
------------
:func:`register_theory` (a class decorator) enters a class under its registry name;
:func:`theory_registry` lists them; :func:`make_theory` builds one by name, checking every
coupling against the class's ``parameters`` (a missing or unknown coupling is an error that names
it and the ones the theory takes) and then against the physics (finite beta, lam >= 0, ...,
checked by the class itself with :mod:`latticeml.checks`). A class may override
:meth:`Theory.from_couplings` to build another class from the same name: the gauge theories
return the improved-action theory of :mod:`latticeml.theories.improved` when ``action`` or ``c1``
asks for one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import backends
from ..lattice import check_shape

__all__ = [
    "Parameter",
    "Theory",
    "register_theory",
    "theory_registry",
    "make_theory",
    "LOCAL_UPDATES",
    "GAUGE_ACTIONS",
    "ACTION_PARAMETERS",
    "check_in_place",
]

#: The local-update algorithms a theory may offer (see the module docstring).
LOCAL_UPDATES = ("metropolis", "heatbath", "overrelax")

_KINDS = ("float", "int", "choice")

#: The gauge actions a gauge theory may be built with (``action=``); the improved ones add 2 x 1
#: rectangles with the coefficient c1 of :mod:`latticeml.theories.improved`.
GAUGE_ACTIONS = ("wilson", "luscher-weisz", "iwasaki")


class Parameter(NamedTuple):
    """A coupling a theory declares (the command line makes a ``--name`` flag of each).

    name:    keyword of the theory's constructor and of :func:`make_theory` (``"beta"``, ``"m2"``).
    kind:    ``"float"``, ``"int"`` or ``"choice"`` (one of ``choices``).
    help:    one line for ``--help``.
    default: the value when it is not given; None means required.
    choices: the allowed values of a ``"choice"`` parameter (empty otherwise).
    """

    name: str
    kind: str
    help: str
    default: Any = None
    choices: tuple = ()

    @property
    def required(self) -> bool:
        return self.default is None


#: The couplings every gauge theory declares after its own (u1, su2, su3, sun).
ACTION_PARAMETERS = (
    Parameter(
        "action",
        "choice",
        "gauge action: wilson (plaquettes), luscher-weisz (tree-level Symanzik, c1 = -1/12) or iwasaki (c1 = -0.331)",
        "wilson",
        GAUGE_ACTIONS,
    ),
    Parameter("c1", "float", "rectangle coefficient of an improved gauge action (0 = Wilson; instead of --action)", 0.0),
)


class Theory:
    """Base class of the theories: identity, the backend's kernels, and the optional parts' defaults.

    Subclasses set ``family`` (the kernel family :mod:`latticeml.backends` resolves, e.g.
    ``"sun"``), ``parameters``, and implement the protocol of the module docstring. The
    constructor takes the lattice ``shape`` and ``backend`` (``"cpu"``; see
    :func:`latticeml.backends.available_backends`).
    """

    #: registry name (set by :func:`register_theory`; a class may compute it per instance).
    name: str = "theory"
    #: kernel family of :mod:`latticeml.backends` for action, force, plaquette and evolve.
    family: str = ""
    #: kernel family of the local-update sweeps (None: the theory has none).
    local_family: str | None = None
    #: the couplings the theory declares.
    parameters: tuple = ()
    #: the local-update algorithms it offers (a subset of LOCAL_UPDATES).
    local_updates: frozenset = frozenset()

    def __new__(cls, *args, backend: str = "cpu", **kwargs):
        # a backend may run a theory with a class of its own (backends.theory_class): on "cuda",
        # U1(...) builds a CudaU1, a subclass, which Python then initialises with the same arguments
        return super().__new__(backends.theory_class(cls, backend))

    def __init__(self, shape, *, backend: str = "cpu"):
        self.shape = check_shape(shape)
        self.dim = len(self.shape)
        self.volume = int(np.prod(self.shape))
        self.backend = backends.check_backend(backend)
        self.kernels = backends.kernels(self.family, self.backend)

    # ----------------------------------------------------------------- identity

    @property
    def couplings(self) -> dict:
        """The couplings as keyword arguments of :func:`make_theory` (JSON values)."""
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    @property
    def params(self) -> dict:
        """``{"shape": [...], **couplings}``, JSON-able (stored with ensembles and checkpoints)."""
        return {"shape": list(self.shape), **self.couplings}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def from_couplings(cls, name: str, shape, *, backend: str = "cpu", **couplings) -> Theory:
        """Build the theory registered as ``name`` from checked couplings (defaults filled in).

        The default is ``cls(shape, backend=backend, **couplings)``; the gauge theories override it
        to choose between the Wilson and the improved action.
        """
        return cls(shape, backend=backend, **couplings)

    # ----------------------------------------------------------------- defaults of the optional parts

    def kinetic_energy(self, p) -> float:
        """``K(p) = 1/2 |p|^2`` for real momenta (SU(N) overrides it with ``-tr P^2``)."""
        return 0.5 * float(np.vdot(p, p).real)

    def draw_auxiliary(self, rng, field):
        """No auxiliary fields: returns None and draws no random numbers."""
        return

    @property
    def local_kernels(self):
        """The module of the local-update sweeps for this backend (:mod:`latticeml.backends`)."""
        if self.local_family is None:
            raise ValueError(f"{self.describe()} has no local updates; sample it with hmc")
        return backends.kernels(self.local_family, self.backend)

    def describe(self) -> str:
        """A few words naming the theory in messages, e.g. ``"su3 (Wilson action)"``."""
        return self.name


def check_in_place(field, dtype, what: str) -> np.ndarray:
    """``field`` itself if a kernel can update it in place (C-contiguous, of ``dtype``), else ValueError.

    The local-update sweeps write into the array they are given; a strided view or another dtype
    would be silently copied by the kernel's reshape and the update lost.
    """
    if not isinstance(field, np.ndarray) or field.dtype != dtype or not field.flags.c_contiguous or not field.flags.writeable:
        got = f"{field.dtype}, contiguous={field.flags.c_contiguous}" if isinstance(field, np.ndarray) else type(field).__name__
        raise ValueError(f"{what} must be a writeable C-contiguous {np.dtype(dtype).name} array to update in place, got {got}; pass np.array(field, order='C')")
    return field


# ----------------------------------------------------------------------------- the registry

_REGISTRY: dict[str, type] = {}
_ORDER = ("phi4", "u1", "su2", "su3", "sun")  # how listings and messages show the built-in theories


def register_theory(name: str):
    """Class decorator: enter ``cls`` in the registry as ``name`` (and set ``cls.name``).

    ``cls.parameters`` must be a tuple of :class:`Parameter` with known kinds and, for choices,
    defaults among the choices; a name can be registered once.
    """

    def decorate(cls):
        if name in _REGISTRY:
            raise ValueError(f"a theory named {name!r} is already registered ({_REGISTRY[name].__name__})")
        for p in cls.parameters:
            if not isinstance(p, Parameter) or p.kind not in _KINDS:
                raise TypeError(f"{cls.__name__}.parameters must be Parameter(name, kind in {_KINDS}, ...), got {p!r}")
            if p.kind == "choice" and (not p.choices or (p.default is not None and p.default not in p.choices)):
                raise ValueError(f"{cls.__name__}: choice parameter {p.name!r} needs choices containing its default")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def theory_registry() -> dict[str, type]:
    """Registry name -> theory class (a copy), in registration order: phi4, u1, su2, su3, sun."""
    _load_theories()
    first = [n for n in _ORDER if n in _REGISTRY]
    return {n: _REGISTRY[n] for n in first + [n for n in _REGISTRY if n not in first]}


def _load_theories():
    # The theory modules register their classes when imported; importing the package imports them.
    from . import phi4, sun, u1  # noqa: F401


def _convert(p: Parameter, value):
    if p.kind == "choice":
        if value not in p.choices:
            raise ValueError(f"{p.name} must be one of {', '.join(map(str, p.choices))}; got {value!r}")
        return value
    if p.kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)) or int(value) != value:
            raise ValueError(f"{p.name} must be an integer, got {value!r}")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{p.name} must be a real number, got {value!r}")
    return float(value)


def make_theory(name: str, shape, *, backend: str = "cpu", **couplings) -> Theory:
    """Build the theory registered as ``name`` on a lattice of ``shape`` with ``couplings``.

    ``phi4`` (m2, lam), ``u1`` (beta), ``su2``/``su3`` (beta), ``sun`` (beta, N); the gauge
    theories also take ``action`` (``"wilson"``, ``"luscher-weisz"``, ``"iwasaki"``) or ``c1``
    for an improved action (:mod:`latticeml.theories.improved`). Every coupling is checked: a
    missing or unknown one raises ValueError naming it and the couplings the theory takes, an
    unknown theory one naming the known theories.
    """
    registry = theory_registry()
    if not isinstance(name, str) or name.lower() not in registry:
        raise ValueError(f"unknown theory {name!r}; choose one of {', '.join(registry)}")
    name = name.lower()
    cls = registry[name]
    declared = {p.name: p for p in cls.parameters}
    takes = ", ".join(f"{p.name}{'' if p.required else ' (optional)'}" for p in cls.parameters)
    unknown = [k for k in couplings if k not in declared]
    if unknown:
        raise ValueError(f"theory {name!r} takes no coupling {unknown[0]!r}; it takes {takes}")
    missing = [p.name for p in cls.parameters if p.required and couplings.get(p.name) is None]
    if missing:
        raise ValueError(f"theory {name!r} needs the coupling {missing[0]!r}; it takes {takes}")
    values = {}
    for p in cls.parameters:
        value = couplings.get(p.name)
        values[p.name] = p.default if value is None else _convert(p, value)
    return cls.from_couplings(name, shape, backend=backend, **values)
