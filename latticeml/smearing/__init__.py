"""Smearing of gauge links: paths and staples, APE, stout (forward and backward) and the gradient flow.

Modules (each opens with its shapes, conventions, algorithm and citation):

* :mod:`~latticeml.smearing.paths`          -- links in kernel form, products of links along paths,
  parallel transport of site-local matrices (the L-CNN's), staple sums per loop term and their
  backward pass, weighted sums of Wilson loops; the Numba kernels all of this runs on.
* :mod:`~latticeml.smearing.ape_smearing`   -- APE smearing (Albanese et al., PLB 192 (1987) 163).
* :mod:`~latticeml.smearing.stout_smearing` -- stout smearing and its backward pass, the stout force
  (Morningstar & Peardon, PRD 69 (2004) 054501), the autodiff op :data:`stout_op`, actions and forces
  of stout-smeared links.
* :mod:`~latticeml.smearing.gradient_flow`  -- the gradient (Wilson) flow, its energy density and
  the scale t0 (Luscher, JHEP 08 (2010) 071). Not a normalizing flow (those are :mod:`latticeml.flows`).

The improved gauge actions (plaquette + rectangle, Luscher-Weisz, Iwasaki) live with the theories,
in :mod:`latticeml.theories.improved`. This package re-exports :func:`gauge_action`,
:func:`gauge_force`, :data:`gauge_action_op`, :data:`LUSCHER_WEISZ_C1` and :data:`IWASAKI_C1` from
there for compatibility, *lazily* (module ``__getattr__``): ``theories.improved`` imports
:mod:`latticeml.smearing.paths`, so an eager import here would be a cycle whenever the theories are
imported first.

Conventions common to all: SU(N) links complex128 ``(D, L0, ..., L{D-1}, N, N)``, U(1) links float64
angles ``(D, L0, ..., L{D-1})`` (the group is read off the dtype by
:func:`latticeml.checks.gauge_links`), ``batched=True`` adds a leading batch axis; algebra
conventions of :mod:`latticeml.groups` (``TA``, ``<X, Y> = -2 tr XY``, forces ``TA(G U^+)/2``).
"""

from __future__ import annotations

from . import paths  # first: theories.improved imports it while this package may still be initialising
from .ape_smearing import ape
from .gradient_flow import FlowResult, energy_density, flow_generator, flow_step, scale_t0, wilson_flow
from .paths import (
    LOOP_TERMS,
    check_terms,
    layer_weights,
    parallel_transport,
    path_product,
    staple_sums,
    term_paths,
    term_weights,
)
from .stout_smearing import (
    StoutResiduals,
    force_from_gradient,
    smeared_action,
    smeared_force,
    stout,
    stout_backward,
    stout_forward,
    stout_generator,
    stout_op,
)

_FROM_IMPROVED = ("gauge_action", "gauge_force", "gauge_action_op", "LUSCHER_WEISZ_C1", "IWASAKI_C1")

__all__ = [
    "LOOP_TERMS",
    "check_terms",
    "term_weights",
    "layer_weights",
    "term_paths",
    "path_product",
    "parallel_transport",
    "staple_sums",
    "ape",
    "stout",
    "stout_generator",
    "StoutResiduals",
    "stout_forward",
    "stout_backward",
    "stout_op",
    "force_from_gradient",
    "smeared_action",
    "smeared_force",
    "flow_generator",
    "flow_step",
    "wilson_flow",
    "FlowResult",
    "energy_density",
    "scale_t0",
    *_FROM_IMPROVED,
]


def __getattr__(name):
    """The improved-action names, re-exported lazily from :mod:`latticeml.theories.improved`."""
    if name in _FROM_IMPROVED:
        from ..theories import improved

        return getattr(improved, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_FROM_IMPROVED))
