"""Theories as objects: a target distribution exp(-S) bundled with what samplers need.

A sampler is written once against this small interface and works for every theory; the theory
chooses its Numba kernels in Python and passes only arrays and scalars into them (no jitted
functions are passed around, so ``cache=True`` holds).

    theory.name, theory.shape, theory.params        identity (params is JSON-able)
    theory.check_field(field) -> field               validated C-contiguous float64/complex128 array
    theory.hot_start(rng), theory.cold_start()       starting configurations
    theory.action(field) -> float                    S
    theory.force(field) -> array                     gradient of S (Lie-algebra valued for SU(N))
    theory.random_momentum(rng) -> array             p ~ exp(-K(p))
    theory.kinetic_energy(p) -> float                K(p) = 1/2 |p|^2
    theory.evolve(field, p, eps) -> field            the flow of dU/dt = p: U + eps p, or exp(eps p) U
    theory.observables(field) -> dict[str, float]    the default measurements (keys as in `latticeml sample --json`)

Field shapes: phi^4 ``shape``; U(1) ``(D, *shape)`` angles; SU(N) ``(D, *shape, N, N)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import groups
from .._linalg import mat_mul
from .._threads import _n_chunks
from ..lattice import check_shape
from ..observables import loops, topology
from . import phi4, sun, u1

__all__ = ["Theory", "Phi4", "U1", "SUN", "make_theory"]


class Theory:
    """Base class; see the module docstring for the interface."""

    name: str = "theory"

    def __init__(self, shape):
        self.shape = check_shape(shape)
        self.dim = len(self.shape)
        self.volume = int(np.prod(self.shape))

    @property
    def params(self) -> dict:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def kinetic_energy(self, p) -> float:
        return 0.5 * float(np.vdot(p, p).real)


class Phi4(Theory):
    """Real scalar phi^4 in the Albergo-Kanwar-Shanahan form (see :mod:`latticeml.theories.phi4`)."""

    name = "phi4"

    def __init__(self, shape, *, m2: float, lam: float):
        super().__init__(shape)
        self.m2, self.lam = float(m2), float(lam)

    @property
    def params(self):
        return {"shape": list(self.shape), "m2": self.m2, "lam": self.lam}

    def check_field(self, field):
        field = np.asarray(field)
        if field.shape != self.shape:
            raise ValueError(f"phi^4 field must have the lattice shape {self.shape}, got {field.shape}")
        if not np.issubdtype(field.dtype, np.floating):
            raise TypeError(f"phi^4 field must be real (float64), got dtype {field.dtype}")
        return np.ascontiguousarray(field, dtype=np.float64)

    def hot_start(self, rng):
        return phi4.hot_start(rng, self.shape)

    def cold_start(self):
        return phi4.cold_start(self.shape)

    def action(self, field):
        return float(phi4.action(field, m2=self.m2, lam=self.lam))

    def force(self, field):
        return phi4.force(field, m2=self.m2, lam=self.lam)

    def random_momentum(self, rng):
        return rng.standard_normal(self.shape)

    def evolve(self, field, p, eps):
        return field + eps * p

    def observables(self, field):
        M = float(field.mean())
        return {
            "magnetization": M,
            "abs_magnetization": abs(M),
            "susceptibility": self.volume * M * M,
            "action_density": self.action(field) / self.volume,
        }


class U1(Theory):
    """Compact U(1) with the Wilson action in D dimensions (see :mod:`latticeml.theories.u1`)."""

    name = "u1"

    def __init__(self, shape, *, beta: float):
        super().__init__(shape)
        if self.dim < 2:
            raise ValueError(f"a gauge theory needs D >= 2 dimensions, got shape {self.shape}")
        self.beta = float(beta)

    @property
    def params(self):
        return {"shape": list(self.shape), "beta": self.beta}

    def check_field(self, field):
        field = np.asarray(field)
        if field.shape != (self.dim,) + self.shape:
            raise ValueError(f"U(1) links must have shape (D, *shape) = {(self.dim,) + self.shape}, got {field.shape}")
        if not np.issubdtype(field.dtype, np.floating):
            raise TypeError(f"U(1) links are real angles (float64), got dtype {field.dtype}")
        return np.ascontiguousarray(field, dtype=np.float64)

    def hot_start(self, rng):
        return u1.hot_start(rng, self.shape)

    def cold_start(self):
        return u1.cold_start(self.shape)

    def action(self, field):
        return float(u1.action(field, beta=self.beta))

    def force(self, field):
        return u1.force(field, beta=self.beta)

    def random_momentum(self, rng):
        return rng.standard_normal((self.dim,) + self.shape)

    def evolve(self, field, p, eps):
        return groups.wrap_angle(field + eps * p)

    def observables(self, field):
        obs = {"plaquette": float(loops.plaquette(field))}
        if all(L > 2 for L in self.shape):
            obs["wilson_loop_1x2"] = float(loops.wilson_loop(field, 1, 2))
            obs["wilson_loop_2x2"] = float(loops.wilson_loop(field, 2, 2))
        if self.dim == 2:
            Q = float(topology.topological_charge_u1(field))
            obs["topological_charge"] = Q
            obs["topological_susceptibility"] = Q * Q / self.volume
        return obs


# ----------------------------------------------------------------------------- SU(N) molecular-dynamics drift
# (the HMC link update; written for latticeml.samplers.hmc)


@njit(inline="always", cache=True)
def _su2_project_into(U):
    """Nearest SU(2) matrix in the quaternion form [[a, b], [-b*, a*]], |a|^2 + |b|^2 = 1, in place.

    For a matrix that is SU(2) up to rounding this removes the drift (the cheap SU(2) case of a
    re-unitarisation, no determinant needed).
    """
    a = 0.5 * (U[0, 0] + U[1, 1].conjugate())
    b = 0.5 * (U[0, 1] - U[1, 0].conjugate())
    r = np.sqrt(a.real * a.real + a.imag * a.imag + b.real * b.real + b.imag * b.imag)
    a /= r
    b /= r
    U[0, 0] = a
    U[0, 1] = b
    U[1, 0] = -b.conjugate()
    U[1, 1] = a.conjugate()


@njit(parallel=True, cache=True)
def _evolve_sun(U, P, eps, n_chunks):
    """``exp(eps P_m) U_m`` for every link m, re-unitarised: U, P complex128 ``(M, N, N)``, a new array.

    One pass over the links fuses the exponential (exact for N = 2, Cayley-Hamilton for N = 3,
    Taylor with scaling and squaring for N >= 4; :mod:`latticeml.groups`), the product and a
    re-unitarisation. Without the last, rounding drift grows with the number of MD steps
    (measured: |U U^dagger - 1| reaches 4e-14 after 300 SU(3) trajectories of 10 steps); with it
    links stay in SU(N) to ~1e-15 forever. The links are split into contiguous chunks with their
    own scratch matrices (``n_chunks``, chosen in Python: ``get_num_threads`` inside a kernel would
    stop Numba from caching it); every link is computed independently, so the result does not
    depend on the number of threads or chunks.
    """
    M = U.shape[0]
    n = U.shape[1]
    out = np.empty_like(U)
    n_chunks = max(1, min(M, n_chunks))
    for c in prange(n_chunks):
        X = np.empty((n, n), dtype=np.complex128)
        E = np.empty((n, n), dtype=np.complex128)
        work1 = np.empty((n, n), dtype=np.complex128)
        work2 = np.empty((n, n), dtype=np.complex128)
        for m in range(c * M // n_chunks, (c + 1) * M // n_chunks):
            for i in range(n):
                for j in range(n):
                    X[i, j] = eps * P[m, i, j]
            if n == 2:
                groups.expm_su2_into(X, E)
            elif n == 3:
                groups.expm_su3_into(X, E)
            else:
                groups.expm_taylor_into(X, E, work1, work2)
            mat_mul(E, U[m], out[m])
            if n == 2:
                _su2_project_into(out[m])
            else:
                groups.reunitarize_into(out[m])
    return out


class SUN(Theory):
    """SU(N) with the Wilson action (see :mod:`latticeml.theories.sun`)."""

    def __init__(self, shape, *, beta: float, N: int):
        super().__init__(shape)
        if self.dim < 2:
            raise ValueError(f"a gauge theory needs D >= 2 dimensions, got shape {self.shape}")
        if int(N) != N or N < 2:
            raise ValueError(f"SU(N) needs an integer N >= 2, got {N}")
        self.beta, self.N = float(beta), int(N)
        self.name = {2: "su2", 3: "su3"}.get(self.N, "sun")

    @property
    def params(self):
        return {"shape": list(self.shape), "beta": self.beta, "N": self.N}

    def check_field(self, field):
        field = np.asarray(field)
        want = (self.dim,) + self.shape + (self.N, self.N)
        if field.shape != want:
            raise ValueError(f"SU({self.N}) links must have shape (D, *shape, N, N) = {want}, got {field.shape}")
        if field.dtype != np.complex128:
            raise TypeError(f"SU(N) links must be complex128, got dtype {field.dtype}")
        groups.check_special_unitary(field)
        return np.ascontiguousarray(field)

    def hot_start(self, rng):
        return sun.hot_start(rng, self.shape, self.N)

    def cold_start(self):
        return sun.cold_start(self.shape, self.N)

    # Samplers call these on fields that check_field validated and that every update keeps in
    # SU(N), so the unitarity test (which costs more than the kernels themselves) is skipped.
    def action(self, field):
        return float(sun.action(field, beta=self.beta, check=False))

    def force(self, field):
        return sun.force(field, beta=self.beta, check=False)

    def random_momentum(self, rng):
        return groups.random_algebra(rng, self.N, (self.dim,) + self.shape)

    def kinetic_energy(self, p) -> float:
        # K = -tr P^2 = sum_ij |P_ij|^2 = 1/2 sum_a p_a^2 for anti-Hermitian P (groups.py conventions)
        return float(np.vdot(p, p).real)

    def evolve(self, field, p, eps):
        # exp(eps P) U link by link, re-unitarised, in one fused Numba pass (_evolve_sun)
        field = np.ascontiguousarray(field, dtype=np.complex128)
        p = np.ascontiguousarray(p, dtype=np.complex128)
        if p.shape != field.shape:
            raise ValueError(f"momenta must have the shape of the links {field.shape}, got {p.shape}")
        N = field.shape[-1]
        links, momenta = field.reshape(-1, N, N), p.reshape(-1, N, N)
        return _evolve_sun(links, momenta, float(eps), _n_chunks(links.shape[0])).reshape(field.shape)

    def observables(self, field):
        obs = {"plaquette": float(sun.mean_plaquette(field, check=False))}
        obs["polyakov_loop"] = float(abs(loops.polyakov_loop_mean(field)))
        if all(L > 2 for L in self.shape):
            obs["wilson_loop_2x2"] = float(loops.wilson_loop(field, 2, 2))
        return obs


def make_theory(name: str, shape, **couplings) -> Theory:
    """Build a theory by name: ``phi4`` (m2, lam), ``u1`` (beta), ``su2``/``su3`` (beta), ``sun`` (beta, N)."""
    name = name.lower()
    try:
        if name == "phi4":
            return Phi4(shape, m2=couplings["m2"], lam=couplings["lam"])
        if name == "u1":
            return U1(shape, beta=couplings["beta"])
        if name in ("su2", "su3"):
            return SUN(shape, beta=couplings["beta"], N=int(name[2]))
        if name == "sun":
            return SUN(shape, beta=couplings["beta"], N=couplings["N"])
    except KeyError as exc:
        raise ValueError(f"theory {name!r} needs the coupling {exc.args[0]!r}") from None
    raise ValueError(f"unknown theory {name!r}; choose one of phi4, u1, su2, su3, sun")
