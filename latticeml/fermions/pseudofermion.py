"""Dynamical staggered fermions through pseudofermions: a gauge theory times ``det(M)^k``.

Target and pseudofermions
-------------------------
``Z = int DU det(M[U])^k exp(-S_g[U])`` with the staggered ``M = m + D``
(:mod:`latticeml.fermions.staggered`), ``k = n_staggered`` (one staggered field, ``k = 1``, is
``N_f = 4`` tastes in 4D, 2 in 2D, without rooting). Each factor is an integral over a complex
pseudofermion (D. H. Weingarten, D. N. Petcher, PLB 99 (1981) 333; in HMC: S. Gottlieb, W. Liu,
D. Toussaint, R. L. Renken, R. L. Sugar, PRD 35 (1987) 2531):

* ``k = 2``, one field on all sites: ``det(M^dagger M) = det M^2 ∝ int Dphi exp(-phi^dagger (M^dagger M)^-1 phi)``;
* ``k = 1``, even-odd (T. DeGrand, P. Rossi, CPC 60 (1990) 211): ``M^dagger M = m^2 - D^2`` is block
  diagonal in parity and ``det(m^2 - D_eo D_oe) = det M``, so one field on the even sites,
  ``phi_e^dagger (m^2 - D_eo D_oe)^-1 phi_e``, gives ``det M``.

``n_staggered = k`` uses ``k // 2`` full fields and ``k % 2`` even ones. Heatbath (each
trajectory, :meth:`StaggeredFermions.draw_auxiliary`): ``chi`` complex Gaussian with
``<|chi_i|^2> = 1`` on all sites, ``phi = M^dagger chi`` (projected on the even sites for an even
field: ``(M^dagger chi)_e = m chi_e - D_eo chi_o`` has covariance ``m^2 - D_eo D_oe``).

Action and force
----------------
``S = S_g + sum_fields phi^dagger X``, ``X = A^-1 phi`` (A the field's normal operator, solved by
CG, :mod:`latticeml.fermions.cg`). With ``Y = M X`` (X zero off its sites),
``dS_f = -X^dagger d(M^dagger M) X = -2 Re Y^dagger dD X``; varying ``U_mu(x) -> exp(t T) U_mu(x)``
only touches the two hops over that link, and with the link matrix::

    W_mu(x) = eta_mu(x) [ U_mu(x) X(x+mu) Y(x)^dagger + X(x) Y(x+mu)^dagger U_mu(x)^dagger ]

(``eta`` with the antiperiodic sign, summed over pseudofermion fields), ``d/dt S_f = -Re tr(T W)``.
In the conventions of :mod:`latticeml.theories.sun` (``F = sum_a T_a dS/dt_a``, ``tr T_a T_b =
-delta/2``) the SU(N) force is ``F_mu(x) = TA(W_mu(x)) / 2``; for U(1) (``T = i``)
``dS/dtheta_mu(x) = Im W_mu(x)``. The tests check both against finite differences of the action.

The theory wrapper
------------------
:class:`StaggeredFermions` wraps a gauge theory of the registry (u1, su2, su3, sun; Wilson or
improved action) and is itself a theory for HMC and SLHMC through the auxiliary-field hook of
:mod:`latticeml.samplers.hmc`: ``draw_auxiliary(rng, field)`` -> a tuple of pseudofermions,
``action(field, aux)``, ``force(field, aux)``. Without ``aux`` (what ``hmc.init`` calls, whose
cache HMC discards when the theory has aux) ``action(field)`` and ``force(field)`` return the
*gauge part only*: the fermion part needs the pseudofermions. ``gauge_force`` is the stiff, cheap
part a multi-time-scale integrator puts on the fine scale (:func:`two_time_scale`).
The last CG solution is cached (keyed on an exact copy of the field and the pseudofermion), so
the action at the end of a trajectory reuses the solve of the last force evaluation.

Observables (:meth:`StaggeredFermions.observables`): the gauge theory's (plaquette
``<Re tr U_P / N>``, ``polyakov_loop = |(1/V_s) sum_x tr P(x) / N|``), ``polyakov_loop_trace =
Re (1/V_s) sum_x tr prod_t U_0(t, x)`` (trace *not* divided by N: Nagai and Tomiya's
normalisation), and the chiral condensate ``(1/V) Re tr M^-1`` (trace over sites and colour) from
Z2 noise (:mod:`latticeml.fermions.condensate`), with noise drawn from a generator seeded by a
hash of the field: the observables stay a deterministic function of the configuration.
"""

from __future__ import annotations

import hashlib

import numpy as np
from numba import njit

from .. import groups, smearing
from ..smearing import stout_smearing
from ..smearing.paths import link_matrices as smearing_link_matrices
from ..checks import check_count, check_rng, positive_float
from ..observables import loops
from .cg import DEFAULT_TOL, solve_normal
from .staggered import StaggeredLinks, apply_D, prepare, prepare_matrices

__all__ = ["StaggeredFermions", "fermion_force", "force_matrices_into", "pseudofermion_kinds", "two_time_scale"]


def pseudofermion_kinds(n_staggered: int) -> tuple[str, ...]:
    """The pseudofermion fields of ``det M^k``: ``k // 2`` times ``"all"``, then ``"even"`` if k is odd."""
    k = check_count(n_staggered, "n_staggered", minimum=1)
    return ("all",) * (k // 2) + ("even",) * (k % 2)


@njit(cache=True)
def gradient_matrices_into(phases, fwd, X, Y, out):
    """``out[mu, x] += eta_mu(x) [X(x) Y(x+mu)^dagger - Y(x) X(x+mu)^dagger]``: the gradient
    ``G = dS_f/dRe U + i dS_f/dIm U`` of the pseudofermion action with respect to the links it sees
    (the autodiff convention of :mod:`latticeml.smearing`; ``TA(G U^dagger)/2`` is the force of
    :func:`force_matrices_into`). X, Y (V, N); out (D, V, N, N)."""
    D, V = phases.shape
    N = X.shape[1]
    for mu in range(D):
        for s in range(V):
            f = fwd[s, mu]
            eta = phases[mu, s]
            for i in range(N):
                for j in range(N):
                    out[mu, s, i, j] += eta * (X[s, i] * np.conj(Y[f, j]) - Y[s, i] * np.conj(X[f, j]))


@njit(cache=True)
def force_matrices_into(U, phases, fwd, X, Y, out):
    """``out[mu, x] += W_mu(x)`` (module docstring) for flat links U (D, V, N, N), X, Y (V, N)."""
    D, V, N, _ = U.shape
    A = np.empty((N, N), dtype=np.complex128)
    B = np.empty((N, N), dtype=np.complex128)
    for mu in range(D):
        for s in range(V):
            f = fwd[s, mu]
            eta = phases[mu, s]
            for i in range(N):
                for j in range(N):
                    A[i, j] = X[f, i] * np.conj(Y[s, j])  # X(x+mu) Y(x)^+
                    B[i, j] = X[s, i] * np.conj(Y[f, j])  # X(x) Y(x+mu)^+
            for i in range(N):
                for j in range(N):
                    acc = 0.0j
                    for c in range(N):
                        acc += U[mu, s, i, c] * A[c, j] + B[i, c] * np.conj(U[mu, s, j, c])
                    out[mu, s, i, j] += eta * acc


def fermion_force(links: StaggeredLinks, solutions, mass: float, group: str, shape_out) -> np.ndarray:
    """The pseudofermion force from the CG solutions ``X`` of every field (module docstring), shaped ``shape_out``."""
    W = np.zeros(links.U.shape, dtype=np.complex128)
    for X in solutions:
        Xf = np.ascontiguousarray(X).reshape(-1, links.N)
        Y = mass * Xf + apply_D(links, X).reshape(-1, links.N)
        force_matrices_into(links.U, links.phases, links.fwd, Xf, Y, W)
    if group == "u1":
        return W[:, :, 0, 0].imag.reshape(shape_out)
    return (0.5 * groups.traceless_antihermitian(W)).reshape(shape_out)


def two_time_scale(theory, n_inner: int):
    """Sexton-Weingarten two-time-scale leapfrog with the gauge force of ``theory`` on the fine scale.

    A thin wrapper of :func:`latticeml.samplers.integrators.sexton_weingarten`
    (``fast_force_fn = theory.gauge_force``, which takes no pseudofermions).
    """
    from ..samplers.integrators import sexton_weingarten

    return sexton_weingarten(theory.gauge_force, n_inner)


class StaggeredFermions:
    """A gauge theory with ``n_staggered`` dynamical staggered fields of mass ``mass`` (module docstring).

    gauge:        a gauge theory from :func:`latticeml.theories.make_theory` (u1, su2, su3, sun).
    mass:         the staggered mass m > 0.
    n_staggered:  k in ``det(M)^k`` (1: even-odd field, 2: one full field, ...).
    tol:          CG relative residual; n_noise: Z2 noise vectors per condensate measurement.
    rho, terms:   if rho is given, ``(n_layers, n_terms)`` stout weights of the loop ``terms``
                  (:mod:`latticeml.smearing`): the fermions see the smeared links ``U^NN[U]``
                  (Nagai-Tomiya's trainable stout net) and the force is pulled back through the
                  layers (Morningstar-Peardon's stout force, :func:`latticeml.smearing.stout_backward`).
    """

    def __init__(self, gauge, *, mass: float, n_staggered: int = 1, tol: float = DEFAULT_TOL, n_noise: int = 4,
                 rho=None, terms=("plaquette",)):
        self.gauge = gauge
        # the fermions may see stout-smeared links U^NN[U] (the covariant net of self-learning HMC)
        self.terms = smearing.check_terms(terms)
        self.rho = None if rho is None else smearing.layer_weights(rho, self.terms).copy()
        self.mass = positive_float(mass, "mass")
        self.n_staggered = check_count(n_staggered, "n_staggered", minimum=1)
        self.kinds = pseudofermion_kinds(self.n_staggered)
        self.tol = positive_float(tol, "tol")
        self.n_noise = check_count(n_noise, "n_noise", minimum=1)
        if gauge.field_dtype == np.float64:  # U(1) angles
            self.group, self.N = "u1", 1
        else:
            self.group, self.N = "su", int(gauge.N)
        if any(L % 2 for L in gauge.shape):
            raise ValueError(f"staggered fermions need even extents in every direction, got shape {gauge.shape}")
        self.shape, self.dim, self.volume = gauge.shape, gauge.dim, gauge.volume
        self.name = gauge.name
        self.field_shape, self.field_dtype = gauge.field_shape, gauge.field_dtype
        self.local_updates = frozenset()  # sampled by HMC/SLHMC only: the determinant is non-local
        self.cg_solves = 0
        self.cg_iterations = 0
        self._cache = self._smeared_cache = None

    # ------------------------------------------------------------------ identity

    @property
    def couplings(self) -> dict:
        c = {**self.gauge.couplings, "fermions": "staggered", "mass": self.mass, "n_staggered": self.n_staggered}
        if self.rho is not None:
            c.update(rho=self.rho.tolist(), terms=list(self.terms))
        return c

    @property
    def params(self) -> dict:
        return {"shape": list(self.shape), **self.couplings}

    def describe(self) -> str:
        return f"{self.gauge.describe()} with {self.n_staggered} staggered field(s) of mass {self.mass:g}"

    def __repr__(self):
        return f"StaggeredFermions({self.gauge!r}, mass={self.mass!r}, n_staggered={self.n_staggered})"

    # ------------------------------------------------------------------ gauge parts (delegated)

    def check_field(self, field):
        return self.gauge.check_field(field)

    def hot_start(self, rng):
        return self.gauge.hot_start(rng)

    def cold_start(self):
        return self.gauge.cold_start()

    def random_momentum(self, rng):
        return self.gauge.random_momentum(rng)

    def kinetic_energy(self, p) -> float:
        return self.gauge.kinetic_energy(p)

    def evolve(self, field, p, eps):
        return self.gauge.evolve(field, p, eps)

    def gauge_force(self, field):
        """The gauge action's force alone (the fine scale of :func:`two_time_scale`)."""
        return self.gauge.force(field)

    # ------------------------------------------------------------------ fermions

    def links(self, field) -> StaggeredLinks:
        """The kernels' view of the links the fermions see (:func:`latticeml.fermions.staggered.prepare`), smeared if ``rho``."""
        if self.rho is None:
            return prepare(field, self.group)
        return self._smeared(field)[0]

    def _smeared(self, field):
        """(StaggeredLinks of U^NN[U], the smearing package's LinkMatrices of U, the layers' residuals)."""
        lm = smearing_link_matrices(field)
        flat, residuals = stout_smearing._smear_chain(lm.flat, lm.shape, self.rho, self.terms)
        return prepare_matrices(flat[0], lm.shape), lm, residuals

    def draw_auxiliary(self, rng, field):
        """Heatbath pseudofermions ``phi = M^dagger chi`` (even-projected for an even field): a tuple, one per field."""
        check_rng(rng)
        links = self.links(field)
        out = []
        for kind in self.kinds:
            chi = (rng.standard_normal(links.shape + (self.N, 2)) @ np.array([1.0, 1.0j])) / np.sqrt(2.0)
            phi = self.mass * chi - apply_D(links, chi)
            if kind == "even":
                phi.reshape(-1, self.N)[links.odd] = 0.0
            out.append(phi)
        return tuple(out)

    def _solve(self, field, aux):
        """CG solutions X = A^-1 phi for every pseudofermion, with the links; cached for the last (field, aux)."""
        c = self._cache
        if c is not None and c[1] is aux and np.array_equal(c[0], field):
            return c[2], c[3]
        self._smeared_cache = None if self.rho is None else self._smeared(field)  # the force pulls back through it
        links = prepare(field, self.group) if self.rho is None else self._smeared_cache[0]
        sols = []
        for kind, phi in zip(self.kinds, aux):
            res = solve_normal(links, phi, self.mass, sites=kind, tol=self.tol)
            self.cg_solves += 1
            self.cg_iterations += res.iterations
            sols.append(res.x)
        self._cache = (np.array(field, copy=True), aux, links, sols)
        return links, sols

    def _check_aux(self, aux):
        if not isinstance(aux, tuple) or len(aux) != len(self.kinds):
            raise ValueError(f"aux must be the tuple of {len(self.kinds)} pseudofermion(s) that draw_auxiliary returns")

    def fermion_action(self, field, aux) -> float:
        """``sum_fields phi^dagger A^-1 phi`` (real, positive)."""
        self._check_aux(aux)
        _, sols = self._solve(field, aux)
        return float(sum(np.vdot(phi, X).real for phi, X in zip(aux, sols)))

    def fermion_force(self, field, aux) -> np.ndarray:
        """The pseudofermion force (module docstring), shape of the gauge field; through the smearing if ``rho``."""
        self._check_aux(aux)
        links, sols = self._solve(field, aux)
        if self.rho is None:
            return fermion_force(links, sols, self.mass, self.group, self.field_shape)
        _, lm, residuals = self._smeared_cache
        G = self._link_gradient(links, sols)
        for res in reversed(residuals):
            G, _ = stout_smearing.stout_backward(G, res, want_rho=False)
        return lm.force(G)

    def _link_gradient(self, links, sols) -> np.ndarray:
        """``G = dS_f/dRe U + i dS_f/dIm U`` with respect to the links the fermions see, kernel form (1, D, V, N, N)."""
        G = np.zeros((1,) + links.U.shape, dtype=np.complex128)
        for X in sols:
            Xf = np.ascontiguousarray(X).reshape(-1, links.N)
            Y = self.mass * Xf + apply_D(links, X).reshape(-1, links.N)
            gradient_matrices_into(links.phases, links.fwd, Xf, Y, G[0])
        return G

    def set_rho(self, rho) -> None:
        """New stout weights (training); forgets the cached solve, which belonged to the old smeared links."""
        self.rho = smearing.layer_weights(rho, self.terms).copy()
        self._cache = None

    def rho_gradient(self, field, aux) -> tuple[float, np.ndarray]:
        """``(S_f, dS_f/drho)`` of the smeared fermion action (``(n_layers, n_terms)``): what training needs."""
        if self.rho is None:
            raise ValueError("rho_gradient needs a theory built with rho (smeared fermion links)")
        self._check_aux(aux)
        links, sols = self._solve(field, aux)
        S = float(sum(np.vdot(phi, X).real for phi, X in zip(aux, sols)))
        _, _, residuals = self._smeared_cache
        G = self._link_gradient(links, sols)
        g_rho = np.zeros_like(self.rho)
        for layer in range(len(residuals) - 1, -1, -1):
            G, g = stout_smearing.stout_backward(G, residuals[layer], want_rho=True)
            g_rho[layer] = g
        return S, g_rho

    def action(self, field, aux=None) -> float:
        """``S_g + S_f(aux)``; without aux the gauge action only (module docstring)."""
        S = float(self.gauge.action(field))
        return S if aux is None else S + self.fermion_action(field, aux)

    def force(self, field, aux=None):
        """``F_g + F_f(aux)``; without aux the gauge force only (module docstring)."""
        F = self.gauge.force(field)
        return F if aux is None else F + self.fermion_force(field, aux)

    @property
    def mean_cg_iterations(self) -> float:
        """Mean CG iterations per solve since construction (or :meth:`reset_cg_counts`)."""
        return self.cg_iterations / self.cg_solves if self.cg_solves else float("nan")

    def reset_cg_counts(self):
        self.cg_solves = self.cg_iterations = 0

    # ------------------------------------------------------------------ measurements

    def noise_rng(self, field) -> np.random.Generator:
        """A generator seeded by a hash of ``field``: noise that is a deterministic function of the configuration."""
        digest = hashlib.blake2b(np.ascontiguousarray(field).tobytes(), digest_size=16).digest()
        return np.random.default_rng(int.from_bytes(digest, "little"))

    def observables(self, field) -> dict:
        from .condensate import chiral_condensate

        obs = dict(self.gauge.observables(field))
        P = loops.polyakov_loop_mean(field, direction=0)
        obs.setdefault("polyakov_loop", float(abs(P)))  # U(1)'s gauge observables lack it
        obs["polyakov_loop_trace"] = float(np.real(P)) * self.N
        cc = chiral_condensate(self.links(field), self.mass, self.noise_rng(field), n_noise=self.n_noise)
        obs["chiral_condensate"] = cc.value
        obs["chiral_condensate_noise_error"] = cc.error
        return obs
