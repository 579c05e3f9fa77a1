"""Improved gauge actions: plaquettes plus 2 x 1 rectangles (Luscher-Weisz, Iwasaki, any ``c1``).

M. Luscher and P. Weisz, "On-shell improved lattice gauge theories", Commun. Math. Phys. 97 (1985)
59 (tree-level Symanzik improvement); Y. Iwasaki, "Renormalization group analysis of lattice
theories and improved lattice action. II", UTHEP-118 (1983) (the renormalisation-group choice).

Fields and conventions
----------------------
* SU(N) links ``U`` complex128 ``(D, L0, ..., L{D-1}, N, N)``; U(1) links are angles ``theta``
  float64 ``(D, L0, ..., L{D-1})`` (``Re tr U / N`` is then ``cos theta``). ``batched=True`` adds
  a leading batch axis ``(B, D, ...)``.
* The action::

      S = beta sum_x [ c0 sum_{mu<nu} (1 - Re tr P_{mu nu}(x) / N) + c1 sum_{mu != nu} (1 - Re tr R_{mu nu}(x) / N) ],
      c0 = 1 - 8 c1,

  ``P`` the plaquettes, ``R_{mu nu}`` the 2 x 1 rectangles (long side along mu: two per plane and
  site). The normalisation ``c0 + 8 c1 = 1`` keeps the classical continuum limit of the Wilson action
  (``c1 = 0``): tree-level Luscher-Weisz :data:`LUSCHER_WEISZ_C1` ``= -1/12``, Iwasaki
  :data:`IWASAKI_C1` ``= -0.331``.
* Forces are gradients in the inner product ``<X, Y> = -2 tr XY`` of :mod:`latticeml.groups`:
  ``F = TA(G U^+)/2`` with ``G`` the gradient with respect to the link matrix, so
  ``F = -(beta/2N) TA(sum_k c_k C^(k) U^+)``, ``C^(k)`` the staple sums of the loop terms
  (:mod:`latticeml.smearing.paths`). For U(1) the force is ``dS/dtheta``.

The theories
------------
:class:`ImprovedU1` and :class:`ImprovedSUN` share the fields of the Wilson theories
(:class:`latticeml.theories.u1.U1Fields`, :class:`latticeml.theories.sun.SUNFields`) and take
their action and force from here; ``make_theory(name, shape, beta=..., action="iwasaki")``
(``"luscher-weisz"``, or ``c1=...``; :func:`rectangle_coefficient`) builds them for u1, su2, su3
and sun. They have no local updates (the rectangles through a link break the checkerboard of the
Wilson sweeps), so Metropolis and the heatbath refuse them and HMC samples them.
:class:`SmearedSUN` is the molecular-dynamics action of self-learning HMC: the improved action of
stout-smeared links (:mod:`latticeml.smearing`).

The loops are walked by the generic path kernels of :mod:`latticeml.smearing.paths`
(:func:`~latticeml.smearing.paths.loop_action` with the terms and weights of
:func:`~latticeml.smearing.paths.improved_terms`: one code path for every D, N and U(1)).
:data:`gauge_action_op` is the action as an autodiff op (the covariant nets' loss).
``latticeml.smearing`` re-exports :func:`gauge_action`, :func:`gauge_force`, :data:`gauge_action_op`
and the two constants for compatibility, lazily (this module imports ``latticeml.smearing.paths``).
"""

from __future__ import annotations

import numpy as np

from .. import backends
from ..autodiff.tensor import custom_op
from ..checks import finite_float
from ..smearing.paths import angle_gradient, improved_terms, link_matrices, loop_action
from .base import GAUGE_ACTIONS
from .sun import SUNFields
from .u1 import U1Fields

__all__ = [
    "LUSCHER_WEISZ_C1",
    "IWASAKI_C1",
    "gauge_action",
    "gauge_force",
    "gauge_action_op",
    "ACTION_C1",
    "rectangle_coefficient",
    "ImprovedU1",
    "ImprovedSUN",
    "SmearedSUN",
]

#: Tree-level Symanzik (Luscher-Weisz) rectangle coefficient.
LUSCHER_WEISZ_C1 = -1.0 / 12.0
#: Iwasaki's renormalisation-group improved rectangle coefficient.
IWASAKI_C1 = -0.331


def gauge_action(U, *, beta: float, c1: float = 0.0, batched: bool = False):
    """``beta sum_x [c0 sum_P (1 - Re tr P/N) + c1 sum_R (1 - Re tr R/N)]``, ``c0 = 1 - 8 c1`` (module docstring).

    ``c1 = 0`` is the Wilson action. A float (``(B,)`` if batched).
    """
    links = link_matrices(U, batched=batched)
    terms, coef = improved_terms(c1)
    S, _ = loop_action(links.flat, links.shape, terms, finite_float(beta) * coef)
    return S if batched else float(S[0])


def gauge_force(U, *, beta: float, c1: float = 0.0, batched: bool = False):
    """Force of :func:`gauge_action`: ``F = -(beta/2N) TA(sum_k c_k C^(k) U^+)``, same shape as U.

    su(N)-valued, with components ``-2 tr(T_a F) = d/dt S(exp(t T_a) U_mu(x))``; for U(1) the
    derivatives ``dS/dtheta_mu(x)``.
    """
    links = link_matrices(U, batched=batched)
    terms, coef = improved_terms(c1)
    _, G = loop_action(links.flat, links.shape, terms, finite_float(beta) * coef, want_gradient=True)
    return links.force(G)


def _action_op_fwd(U, *, beta, c1=0.0, batched=False):
    links = link_matrices(U, batched=batched)
    terms, coef = improved_terms(c1)
    S, G = loop_action(links.flat, links.shape, terms, finite_float(beta) * coef, want_gradient=True)
    return (S if batched else np.asarray(S[0])), (links, G, np.shape(U))


def _action_op_bwd(g, residuals, needs):
    links, G, shape = residuals
    gb = np.asarray(g, dtype=np.float64).reshape(-1)  # one seed per configuration
    G = G * gb[:, None, None, None, None]
    gU = angle_gradient(G, links.flat) if links.u1 else G
    return (gU.reshape(shape),)


#: Autodiff op: ``gauge_action_op(U, *, beta, c1=0.0, batched=False)`` -> S (scalar, or ``(B,)``).
#: The gradient is ``-(beta/N) sum_k c_k C^(k)`` (every loop through a link, opened at the link).
gauge_action_op = custom_op("gauge_action", _action_op_fwd, _action_op_bwd)


# ----------------------------------------------------------------------------- the theories
#
# An improved action is a theory of its own, not a Wilson theory with another action() bolted on:
# it shares the Wilson theories' fields (U1Fields, SUNFields) but not their local updates, whose
# kernels know only the plaquette staples. A rectangle through a link also couples it to links of
# the same checkerboard colour, so a checkerboard sweep would not even be a valid local update;
# these theories therefore have no local updates and every local sampler refuses them, naming hmc.

#: c1 of each named gauge action (``make_theory(..., action=name)``).
ACTION_C1 = {"wilson": 0.0, "luscher-weisz": LUSCHER_WEISZ_C1, "iwasaki": IWASAKI_C1}
assert tuple(ACTION_C1) == GAUGE_ACTIONS


def rectangle_coefficient(action: str = "wilson", c1: float = 0.0) -> float:
    """The rectangle coefficient that ``action`` and ``c1`` ask for (0.0: the Wilson action).

    ``c1 = 0`` means "not given" (it is the default of the ``c1`` coupling), so ``action`` decides;
    a non-zero ``c1`` with ``action="wilson"`` (the default) is that improved action; a non-zero
    ``c1`` with another named action must be that action's coefficient.
    """
    if action not in ACTION_C1:
        raise ValueError(f"unknown gauge action {action!r}; choose one of {', '.join(ACTION_C1)} (or give c1)")
    c1 = finite_float(c1, "c1")
    named = ACTION_C1[action]
    if c1 == 0.0 or c1 == named:
        return named
    if action != "wilson":
        raise ValueError(f"action {action!r} has c1 = {named:g}, but c1 = {c1:g} was given: give one of them")
    return c1


def _action_label(c1: float) -> str:
    for label, value in (("Luscher-Weisz", LUSCHER_WEISZ_C1), ("Iwasaki", IWASAKI_C1)):
        if c1 == value:
            return f"the {label} action (c1 = {c1:g})"
    return f"the improved gauge action c1 = {c1:g}"


class ImprovedU1(U1Fields):
    """Compact U(1) with the plaquette + rectangle action (module docstring, ``Re tr U / N = cos theta``).

    ``make_theory("u1", shape, beta=..., action="iwasaki")`` or ``c1=...`` builds it; ``c1`` must
    not be 0 (that is :class:`latticeml.theories.u1.U1`). No local updates: sample it with HMC.
    """

    def __init__(self, shape, *, beta: float, c1: float, backend: str = "cpu"):
        super().__init__(shape, beta=beta, backend=backend)
        self.c1 = _nonzero_c1(c1)
        self.name = "u1"
        self.improved = backends.kernels("improved", self.backend)

    @property
    def couplings(self):
        return {"beta": self.beta, "c1": self.c1}

    def describe(self):
        return f"u1 with {_action_label(self.c1)}"

    def action(self, field):
        return float(self.improved.gauge_action(field, beta=self.beta, c1=self.c1))

    def force(self, field):
        return self.improved.gauge_force(field, beta=self.beta, c1=self.c1)


class ImprovedSUN(SUNFields):
    """SU(N) with the plaquette + rectangle action ``beta sum_x [c0 sum_P (1 - Re tr P/N) + c1 sum_R (1 - Re tr R/N)]``.

    ``c1 = -1/12`` tree-level Luscher-Weisz, ``-0.331`` Iwasaki (module docstring); ``c1`` must not
    be 0 (that is :class:`latticeml.theories.sun.SUN`). ``make_theory("su3", shape, beta=...,
    action="iwasaki")`` or ``c1=...`` builds it. No local updates: sample it with HMC.
    """

    def __init__(self, shape, *, beta: float, N: int, c1: float, backend: str = "cpu"):
        super().__init__(shape, beta=beta, N=N, backend=backend)
        self.c1 = _nonzero_c1(c1)
        self.improved = backends.kernels("improved", self.backend)

    @property
    def couplings(self):
        return {**super().couplings, "c1": self.c1}

    def describe(self):
        return f"{self.name} with {_action_label(self.c1)}"

    def action(self, field):
        return float(self.improved.gauge_action(field, beta=self.beta, c1=self.c1))

    def force(self, field):
        return self.improved.gauge_force(field, beta=self.beta, c1=self.c1)


def _nonzero_c1(c1) -> float:
    c1 = finite_float(c1, "c1")
    if c1 == 0.0:
        raise ValueError("c1 = 0 is the Wilson action: build it with make_theory(name, shape, beta=...) (it has local updates)")
    return c1


class SmearedSUN(SUNFields):
    """``S_MD[U] = beta * S_g[U^(n)]``: the plaquette (+ rectangle, ``c1``) action of ``n`` stout-smeared layers.

    The molecular-dynamics action of self-learning HMC (:mod:`latticeml.samplers.slhmc`): ``rho``
    is ``(n_layers, n_terms)`` for the loop ``terms`` (:mod:`latticeml.smearing`); action and force
    are :func:`latticeml.smearing.smeared_action` and :func:`~latticeml.smearing.smeared_force`.
    :meth:`from_net` freezes a covariant net's weights. Not registered (it is not a target anyone
    samples); no local updates.
    """

    def __init__(self, shape, *, beta: float, N: int, rho, terms=("plaquette",), c1: float = 0.0, backend: str = "cpu"):
        super().__init__(shape, beta=beta, N=N, backend=backend)
        self.smeared = backends.kernels("smeared", self.backend)
        self.terms = self.smeared.check_terms(terms)
        self.rho = self.smeared.layer_weights(rho, self.terms).copy()
        self.rho.setflags(write=False)
        self.c1 = finite_float(c1, "c1")
        self.name = f"{self.name}_smeared"

    @classmethod
    def from_net(cls, net, shape, *, N: int) -> "SmearedSUN":
        """The molecular-dynamics theory of a :class:`~latticeml.nets.covariant.CovariantNet` (weights copied)."""
        rho = net.rho if len(net.rho) else np.zeros((1, len(net.terms)))
        return cls(shape, beta=net.beta_value, N=N, rho=rho, terms=net.terms, c1=net.c1)

    @property
    def couplings(self):
        return {"beta": self.beta, "N": self.N, "rho": self.rho.tolist(), "terms": list(self.terms), "c1": self.c1}

    def describe(self):
        return f"the smeared action of {len(self.rho)} stout layers ({self.name})"

    def action(self, field):
        return float(self.smeared.smeared_action(field, rho=self.rho, terms=self.terms, beta=self.beta, c1=self.c1))

    def force(self, field):
        return self.smeared.smeared_force(field, rho=self.rho, terms=self.terms, beta=self.beta, c1=self.c1)
