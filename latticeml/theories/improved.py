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

The loops are walked by the generic path kernels of :mod:`latticeml.smearing.paths` (one code path
for every D, N and U(1)). ``latticeml.smearing`` re-exports :func:`gauge_action` and
:func:`gauge_force` for compatibility.
"""

from __future__ import annotations

from .. import smearing as _smearing  # the kernels move to latticeml.smearing.paths

__all__ = ["LUSCHER_WEISZ_C1", "IWASAKI_C1", "gauge_action", "gauge_force"]

#: Tree-level Symanzik (Luscher-Weisz) rectangle coefficient.
LUSCHER_WEISZ_C1 = -1.0 / 12.0
#: Iwasaki's renormalisation-group improved rectangle coefficient.
IWASAKI_C1 = -0.331


def gauge_action(U, *, beta: float, c1: float = 0.0, batched: bool = False):
    """``beta sum_x [c0 sum_P (1 - Re tr P/N) + c1 sum_R (1 - Re tr R/N)]``, ``c0 = 1 - 8 c1`` (module docstring).

    ``c1 = 0`` is the Wilson action. A float (``(B,)`` if batched).
    """
    return _smearing.gauge_action(U, beta=beta, c1=c1, batched=batched)


def gauge_force(U, *, beta: float, c1: float = 0.0, batched: bool = False):
    """Force of :func:`gauge_action`: ``F = -(beta/2N) TA(sum_k c_k C^(k) U^+)``, same shape as U.

    su(N)-valued, with components ``-2 tr(T_a F) = d/dt S(exp(t T_a) U_mu(x))``; for U(1) the
    derivatives ``dS/dtheta_mu(x)``.
    """
    return _smearing.gauge_force(U, beta=beta, c1=c1, batched=batched)
