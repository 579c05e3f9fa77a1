"""Molecular-dynamics integrators as values: a registry of symplectic, time-reversible integrators.

HMC (:mod:`latticeml.samplers.hmc`) and SLHMC (:mod:`latticeml.samplers.slhmc`) move a field and
its momentum along Hamilton's equations of ``H = K(p) + S(field)``::

    d field / dt = p      (theory.evolve:  phi + eps p;  theta + eps p;  U -> exp(eps P) U)
    d p / dt     = -F     (F = theory.force(field), the gradient of S)

An *integrator* is a plain function that approximates ``n_steps`` steps of size ``step_size`` of
this flow. Like blackjax's integrators (``velocity_verlet``, ``mclachlan``, ...) it is a value
a sampler takes, not a branch inside the sampler; every integrator has the one signature::

    integrator(field, momentum, force, *, force_fn, evolve_fn, step_size, n_steps) -> IntegratorResult

* ``field``, ``momentum``: the start point (theory's shapes; never modified: every update
  builds new arrays);
* ``force``: ``force_fn(field)`` if the caller already has it (HMC caches the force of the
  last trajectory's end point), else ``None`` (then it is computed, and counted);
* ``force_fn(field) -> F`` and ``evolve_fn(field, p, eps) -> field``: the theory's force and
  drift (HMC passes ``theory.force``, or ``lambda f: theory.force(f, aux)`` with auxiliary
  fields, and ``theory.evolve``);
* ``step_size`` (eps > 0), ``n_steps`` (n >= 1): assumed valid here; the public entry points
  (:func:`latticeml.samplers.hmc.integrate`, the samplers) check them.

It returns an :class:`IntegratorResult` ``(field, momentum, force, n_force_evaluations,
log_jacobian)``: the end point, ``force_fn`` at the end field (the next trajectory's first kick
when the proposal is accepted), the number of ``force_fn`` calls, and ``log |det J|`` of the map
``(field, p) -> (field', p')`` (0 for a symplectic integrator; HMC accepts with probability
``min(1, exp(log_jacobian - dH))``).

Every integrator here is *symmetric* (running it with ``-p'`` from the end returns to
``(field, -p)``: time reversible, to rounding) and *symplectic* (volume preserving), so the HMC
proposal followed by a momentum flip is a volume-preserving involution and the Metropolis test
makes the chain exact; all have an energy violation ``dH = O(step_size^2)`` at fixed
trajectory length ``tau = n eps``.

Registered integrators
----------------------
``"leapfrog"`` -- :func:`leapfrog`, the velocity Verlet form (kick-drift-kick) of the leapfrog
(L. Verlet, Phys. Rev. 159 (1967) 98; for HMC: S. Duane, A. D. Kennedy, B. J. Pendleton,
D. Roweth, PLB 195 (1987) 216). One step of size eps::

    p <- p - eps/2 F(field);   field <- evolve(field, p, eps);   p <- p - eps/2 F(field)

The half kicks of neighbouring steps are merged into one kick of eps, so a trajectory is::

    p <- p - eps/2 F;   [ field <- evolve(field, p, eps);  p <- p - eps F ] x n,  the last kick eps/2

``n + 1`` force evaluations, ``n`` when the start force is given.

``"omelyan"`` -- :func:`omelyan`, the second-order minimum-norm integrator 2MN of I. P. Omelyan,
I. M. Mryglod, R. Folk, Comput. Phys. Commun. 151 (2003) 272 (eq. 31 there, position-Verlet-like
form with the force at the ends), as used for lattice gauge theory by T. Takaishi and Ph. de
Forcrand, PRE 73 (2006) 036706. One step of size eps::

    p <- p - lam eps F;   field <- evolve(field, p, eps/2);   p <- p - (1 - 2 lam) eps F;
    field <- evolve(field, p, eps/2);   p <- p - lam eps F,

with ``lam = OMELYAN_LAMBDA = 0.1931833275037836``, the value that minimises the norm of the
eps^3 error terms of the shadow Hamiltonian (for ``lam = 1/2`` this is two leapfrog half steps).
The end kicks ``lam eps`` of neighbouring steps are merged into ``2 lam eps``: ``2 n + 1`` force
evaluations per trajectory, ``2 n`` with the start force given. At equal step size its energy
violation is about 10 to 80 times smaller than the leapfrog's (tests/test_integrators.py measures
phi^4 9x, U(1) 20x, SU(2) 11x, SU(3) 80x), so it wins also at equal cost (2MN at 2 eps against
leapfrog at eps).

Registry
--------
:data:`INTEGRATORS` maps names to functions; :func:`get_integrator` turns a name or a callable
into the function (unknown names raise ``ValueError`` listing the registered ones);
:func:`integrator_name` gives the name a sampler records in its settings (the registered name,
else the function's ``__name__``); :func:`register_integrator` adds one. :func:`sexton_weingarten`
is a factory (it needs the fast force), so it is not in the registry: pass the function it
returns, or register it under a name of your own.

Adding an integrator
--------------------
Write a function with the signature above and register it::

    def two_half_leapfrogs(field, momentum, force, *, force_fn, evolve_fn, step_size, n_steps):
        return leapfrog(field, momentum, force, force_fn=force_fn, evolve_fn=evolve_fn,
                        step_size=step_size / 2, n_steps=2 * n_steps)

    register_integrator("leapfrog_half", two_half_leapfrogs)
    hmc.sampler(theory, step_size=0.1, n_steps=10, integrator="leapfrog_half")

Keep it symmetric and either symplectic or honest about its Jacobian, or the chain is no longer
exact. Two kinds the library is built to take:

* **Multi-time-scale** (J. C. Sexton, D. H. Weingarten, NPB 380 (1992) 665): split the action
  ``S = S_slow + S_fast`` (e.g. the pseudofermion action, expensive and smooth, and the gauge
  action, cheap and stiff) and nest the integrations. :func:`sexton_weingarten` is the example,
  a *factory*: ``sexton_weingarten(fast_force_fn, n_inner)`` binds the fast force and returns a
  function of the signature above (``force_fn`` is still the full force, so it plugs into HMC
  with any theory unchanged, auxiliary fields included)::

      p <- p - eps/2 F_slow;   [ n_inner leapfrog steps of K + S_fast with step eps/n_inner;
                                 p <- p - eps F_slow ] x n,  the last slow kick eps/2,

  ``F_slow = force_fn - fast_force_fn``. Nested symmetric, symplectic maps are symmetric and
  symplectic, and the error is ``O(eps^2)`` in the slow and ``O((eps/n_inner)^2)`` in the fast
  force: the stiff, cheap force gets the small step, the expensive one is computed ``n``
  times per trajectory (with the start force cached).
* **Learned** (L2HMC: D. Levy, M. D. Hoffman, J. Sohl-Dickstein, ICLR 2018, arXiv:1711.09268):
  the kicks and drifts are scaled and shifted by networks, the map is no longer volume
  preserving, and the integrator returns ``log_jacobian = log |det d(field', p')/d(field, p)|``;
  HMC adds it to the acceptance, ``min(1, exp(log_jacobian - dH))``. The signature has no
  generator: what such an integrator draws per trajectory (L2HMC's direction variable) its
  sampler draws and binds in, e.g. with ``functools.partial``, so every draw stays explicit.
  :func:`latticeml.samplers.l2hmc.learned_integrator` is that integrator (a factory of a trained
  model and a direction); :func:`latticeml.samplers.l2hmc.l2hmc_step` draws the direction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from ..checks import check_count

__all__ = [
    "IntegratorResult",
    "OMELYAN_LAMBDA",
    "leapfrog",
    "omelyan",
    "INTEGRATORS",
    "register_integrator",
    "get_integrator",
    "integrator_name",
    "sexton_weingarten",
]

#: lambda of Omelyan's minimum-norm 2MN integrator, Omelyan, Mryglod, Folk, CPC 151 (2003) 272:
#: lam = 1/2 - (2 sqrt(326) + 36)^(1/3) / 12 + 1 / (6 (2 sqrt(326) + 36)^(1/3)).
OMELYAN_LAMBDA = 0.1931833275037836


class IntegratorResult(NamedTuple):
    """What an integrator returns.

    field:               the end field.
    momentum:            the end momentum.
    force:               ``force_fn(field)`` at the end field (cached by HMC for the next trajectory).
    n_force_evaluations: how many times ``force_fn`` was called.
    log_jacobian:        ``log |det d(field', p')/d(field, p)|`` of the map; 0 for symplectic
                         integrators, nonzero for learned ones (HMC adds it to the acceptance).
    """

    field: np.ndarray
    momentum: np.ndarray
    force: np.ndarray
    n_force_evaluations: int
    log_jacobian: float = 0.0


def leapfrog(field, momentum, force, *, force_fn: Callable, evolve_fn: Callable, step_size: float, n_steps: int) -> IntegratorResult:
    """Leapfrog (velocity Verlet, kick-drift-kick) with merged half kicks; formulas in the module docstring."""
    n_force = 0
    if force is None:
        force = force_fn(field)
        n_force += 1
    eps = step_size
    p = momentum - 0.5 * eps * force
    for i in range(n_steps):
        field = evolve_fn(field, p, eps)
        force = force_fn(field)
        n_force += 1
        p = p - (0.5 * eps if i == n_steps - 1 else eps) * force
    return IntegratorResult(field, p, force, n_force)


def omelyan(field, momentum, force, *, force_fn: Callable, evolve_fn: Callable, step_size: float, n_steps: int) -> IntegratorResult:
    """Omelyan-Mryglod-Folk 2MN with ``lam = OMELYAN_LAMBDA`` and merged end kicks; formulas in the module docstring."""
    n_force = 0
    if force is None:
        force = force_fn(field)
        n_force += 1
    eps = step_size
    lam = OMELYAN_LAMBDA
    p = momentum - lam * eps * force
    for i in range(n_steps):
        field = evolve_fn(field, p, 0.5 * eps)
        force = force_fn(field)
        p = p - (1.0 - 2.0 * lam) * eps * force
        field = evolve_fn(field, p, 0.5 * eps)
        force = force_fn(field)
        n_force += 2
        # the lam eps end kick of this step and the lam eps start kick of the next one, merged
        p = p - (lam * eps if i == n_steps - 1 else 2.0 * lam * eps) * force
    return IntegratorResult(field, p, force, n_force)


def sexton_weingarten(fast_force_fn: Callable, n_inner: int) -> Callable:
    """The multi-time-scale leapfrog of Sexton and Weingarten, NPB 380 (1992) 665, as an integrator value.

    ``fast_force_fn(field)`` is the force of the cheap, stiff part ``S_fast`` of the action (it
    must not depend on auxiliary fields); the integrator's ``force_fn`` stays the full force and
    the slow force is ``force_fn - fast_force_fn``. Each outer step of size eps replaces the drift
    by ``n_inner`` leapfrog steps of ``K + S_fast`` of size ``eps / n_inner`` (formulas in the
    module docstring). ``n_force_evaluations`` counts the full-force calls (``n_steps``, plus
    one without a start force); the fast force is called ``n_steps * n_inner + 1`` times. The
    function's ``__name__`` (what a sampler records) is ``"sexton_weingarten_<n_inner>"``;
    register it under a name of your own to say which split it uses.
    """
    if not callable(fast_force_fn):
        raise TypeError(f"fast_force_fn must be a function field -> force, got {type(fast_force_fn).__name__}")
    n_inner = check_count(n_inner, "n_inner", minimum=1)

    def integrator(field, momentum, force, *, force_fn, evolve_fn, step_size, n_steps):
        n_force = 0
        if force is None:
            force = force_fn(field)
            n_force += 1
        eps = step_size
        fast = fast_force_fn(field)
        p = momentum - 0.5 * eps * (force - fast)
        for i in range(n_steps):
            inner = leapfrog(field, p, fast, force_fn=fast_force_fn, evolve_fn=evolve_fn, step_size=eps / n_inner, n_steps=n_inner)
            field, p, fast = inner.field, inner.momentum, inner.force
            force = force_fn(field)
            n_force += 1
            p = p - (0.5 * eps if i == n_steps - 1 else eps) * (force - fast)
        return IntegratorResult(field, p, force, n_force)

    integrator.__name__ = integrator.__qualname__ = f"sexton_weingarten_{n_inner}"
    return integrator


#: name -> integrator function; :func:`register_integrator` adds to it.
INTEGRATORS: dict[str, Callable] = {"leapfrog": leapfrog, "omelyan": omelyan}


def register_integrator(name: str, fn: Callable | None = None, *, overwrite: bool = False):
    """Register ``fn`` under ``name`` (then ``integrator=name`` works everywhere); returns ``fn``.

    Usable as a decorator, ``@register_integrator("mine")``. A name already taken by another
    function raises ``ValueError`` unless ``overwrite=True`` (a chain's settings record the
    name, so silently rebinding it would make two different chains look alike).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"an integrator's name must be a non-empty string, got {name!r}")
    if fn is None:
        return lambda f: register_integrator(name, f, overwrite=overwrite)
    if not callable(fn):
        raise TypeError(f"register_integrator({name!r}, fn): fn must be a function with the integrator signature, got {type(fn).__name__}")
    if not overwrite and INTEGRATORS.get(name, fn) is not fn:
        raise ValueError(f"an integrator named {name!r} is already registered; choose another name or pass overwrite=True")
    INTEGRATORS[name] = fn
    return fn


def get_integrator(integrator) -> Callable:
    """The integrator function for a registered name, or ``integrator`` itself if it is callable."""
    if callable(integrator):
        return integrator
    if isinstance(integrator, str) and integrator in INTEGRATORS:
        return INTEGRATORS[integrator]
    raise ValueError(
        f"unknown integrator {integrator!r}; registered: {', '.join(map(repr, INTEGRATORS))} "
        "(or pass a function with the integrator signature; see latticeml.samplers.integrators)"
    )


def integrator_name(integrator) -> str:
    """The name a sampler records for ``integrator``: its registered name, else its ``__name__``."""
    fn = get_integrator(integrator)
    if isinstance(integrator, str):
        return integrator
    for name, registered in INTEGRATORS.items():
        if registered is fn:
            return name
    return getattr(fn, "__name__", type(fn).__name__)
