"""Kernel family ``sun`` on CUDA: SU(2) and SU(3) gauge theory with the Wilson action, any D >= 2,
and the gauge-field kernels around it: gradient flow, stout smearing, Polyakov loops, clover charge.

The functions of :mod:`latticeml.theories.sun` with the same names, signatures and conventions
(links complex128 ``(D, L0, ..., L{D-1}, N, N)``, ``S = beta sum_{x, mu<nu} (1 - Re tr U_P / N)``,
``F_mu(x) = (beta / 2N) TA(U_mu(x) A_mu(x))``, the drift ``U -> exp(eps P) U`` re-unitarised),
computed on the device. Inputs are NumPy arrays (validated as on the cpu; ``check=True`` tests
them for SU(N) on the host) or :class:`~latticeml.backends.cuda.arrays.DeviceField` (the links of a
running trajectory or flow, taken as they are); field-valued results are DeviceFields, scalars
floats. One configuration at a time (``batched=False``).

Also here, on links in the same layout with N = 1, 2, 3 (N = 1: U(1) as 1 x 1 phases, from
:mod:`latticeml.backends.cuda.u1`):

* :func:`flow_generator`, :func:`flow_step`, :func:`flow`: the Wilson flow ``dV/dt = Z(V) V``,
  ``Z = TA(C U^+) = -TA(U A)`` with Luscher's RK3 (M. Luscher, JHEP 08 (2010) 071, appendix C),
  as :mod:`latticeml.smearing.gradient_flow` (plaquette action, ``c1 = 0``);
* :func:`stout`: ``U -> exp(rho Z(U)) U`` (C. Morningstar and M. Peardon, PRD 69 (2004) 054501),
  isotropic plaquette staples, as :func:`latticeml.smearing.stout` (an Euler flow step of size rho);
* :func:`polyakov_loop`: ``tr prod_t U_d(x + t d) / N`` (:func:`latticeml.observables.loops.polyakov_loop`);
* :func:`clover_field_strength`, :func:`topological_charge_density`: the clover ``F_{mu nu}`` and
  ``q(x)`` of :mod:`latticeml.observables.topology` (D = 4 for q).

Kernels: one thread per site (plaquettes, Polyakov lines, charge density), per link (staples,
force, generator, ``exp(X) U``) or per plane and site (clover). Per-thread colour matrices are
``MAXN x MAXN`` local arrays (:mod:`latticeml.backends.cuda.device`).
"""

from __future__ import annotations

import numpy as np
from numba import complex128

from ... import groups
from ...checks import check_count, finite_float, gauge_links, positive_float
from ._shim import cuda, grid, kernel
from .arrays import (
    DeviceField,
    check_one_configuration,
    device_array,
    is_device_array,
    planes,
    sum_squares,
    tables,
    to_device,
    total,
)
from .device import (
    MAXN,
    add_into,
    adj_mul,
    copy_into,
    expm_into,
    link_of,
    mat_mul,
    mat_mul_adj,
    plane_of,
    plaquette_at,
    re_trace_mul,
    restore_special_unitary_into,
    staple_into,
    ta_into,
)

__all__ = [
    "action",
    "clover_field_strength",
    "evolve",
    "exp_multiply",
    "flow",
    "flow_generator",
    "flow_step",
    "force",
    "kinetic_energy",
    "mean_plaquette",
    "plaquette_field",
    "polyakov_loop",
    "polyakov_loop_mean",
    "polyakov_starts",
    "staples",
    "stout",
    "topological_charge",
    "topological_charge_density",
]

#: The flow integrators of :mod:`latticeml.smearing.gradient_flow`.
FLOW_INTEGRATORS = ("rk3", "euler")


# ----------------------------------------------------------------------------- kernels


@kernel
def _plaquette_kernel(U, fwd, plane_list, store, field, site_sums):
    """site_sums[s] = sum over planes of Re tr U_P(s) / N; field[p, s] the terms if store."""
    for s in range(cuda.grid(1), U.shape[1], cuda.gridsize(1)):  # grid-stride loop
        n = U.shape[2]
        w0 = cuda.local.array((MAXN, MAXN), complex128)
        w1 = cuda.local.array((MAXN, MAXN), complex128)
        acc = 0.0
        for p in range(plane_list.shape[0]):
            mu, nu = plane_of(p, plane_list)
            val = plaquette_at(U, fwd, mu, nu, s, w0, w1, n)
            if store:
                field[p, s] = val
            acc += val
        site_sums[s] = acc


@kernel
def _staples_kernel(U, fwd, bwd, scale, want_projection, out):
    """Per link: out = A_mu(x), or scale TA(U_mu(x) A_mu(x)) if want_projection (the force, or the flow generator with scale -1)."""
    D = U.shape[0]
    V = U.shape[1]
    for i in range(cuda.grid(1), D * V, cuda.gridsize(1)):  # grid-stride loop
        n = U.shape[2]
        mu, s = link_of(i, V)
        a = cuda.local.array((MAXN, MAXN), complex128)
        m = cuda.local.array((MAXN, MAXN), complex128)
        w0 = cuda.local.array((MAXN, MAXN), complex128)
        w1 = cuda.local.array((MAXN, MAXN), complex128)
        staple_into(U, fwd, bwd, mu, s, a, w0, w1, n)
        if want_projection:
            mat_mul(U[mu, s], a, m, n)
            ta_into(m, scale, out[mu, s], n)
        else:
            copy_into(a, out[mu, s], n)


@kernel
def _exp_mul_kernel(X, eps, U, restore, out):
    """Per link (flat (M, N, N)): out = exp(eps X) U, re-unitarised if restore (the HMC drift, the flow and stout steps)."""
    for m in range(cuda.grid(1), U.shape[0], cuda.gridsize(1)):  # grid-stride loop
        n = U.shape[1]
        Y = cuda.local.array((MAXN, MAXN), complex128)
        E = cuda.local.array((MAXN, MAXN), complex128)
        w1 = cuda.local.array((MAXN, MAXN), complex128)
        w2 = cuda.local.array((MAXN, MAXN), complex128)
        for i in range(n):
            for j in range(n):
                Y[i, j] = eps * X[m, i, j]
        expm_into(Y, E, w1, w2, n)
        mat_mul(E, U[m], out[m], n)
        if restore:
            restore_special_unitary_into(out[m], n)


@kernel
def _polyakov_kernel(U, fwd, starts, direction, length, out):
    """out[i] = tr(U_d(s) U_d(s + d) ... U_d(s + (length-1) d)) / N, s = starts[i]."""
    for i in range(cuda.grid(1), starts.shape[0], cuda.gridsize(1)):  # grid-stride loop
        n = U.shape[2]
        line = cuda.local.array((MAXN, MAXN), complex128)
        tmp = cuda.local.array((MAXN, MAXN), complex128)
        s = starts[i]
        copy_into(U[direction, s], line, n)
        for _ in range(length - 1):
            s = fwd[s, direction]
            mat_mul(line, U[direction, s], tmp, n)
            copy_into(tmp, line, n)
        tr = 0j
        for k in range(n):
            tr += line[k, k]
        out[i] = tr / n


@kernel
def _clover_kernel(U, fwd, bwd, plane_list, out):
    """out[p, s] = traceless anti-Hermitian part of (C - C^+)/8, C the four plaquettes of plane p at s (:func:`latticeml.observables.topology._clover_kernel`)."""
    V = U.shape[1]
    for i in range(cuda.grid(1), plane_list.shape[0] * V, cuda.gridsize(1)):  # grid-stride loop
        n = U.shape[2]
        p, s = link_of(i, V)
        mu, nu = plane_of(p, plane_list)
        C = cuda.local.array((MAXN, MAXN), complex128)
        t1 = cuda.local.array((MAXN, MAXN), complex128)
        t2 = cuda.local.array((MAXN, MAXN), complex128)
        leaf = cuda.local.array((MAXN, MAXN), complex128)
        x_pm = fwd[s, mu]
        x_pn = fwd[s, nu]
        x_mm = bwd[s, mu]
        x_mn = bwd[s, nu]
        x_mm_pn = fwd[x_mm, nu]
        x_mm_mn = bwd[x_mm, nu]
        x_mn_pm = fwd[x_mn, mu]
        # leaf 1: U_mu(x) U_nu(x+mu) U_mu(x+nu)^+ U_nu(x)^+
        mat_mul(U[mu, s], U[nu, x_pm], t1, n)
        mat_mul(U[nu, s], U[mu, x_pn], t2, n)
        mat_mul_adj(t1, t2, C, n)
        # leaf 2: U_nu(x) U_mu(x-mu+nu)^+ U_nu(x-mu)^+ U_mu(x-mu)
        mat_mul(U[nu, x_mm], U[mu, x_mm_pn], t1, n)
        mat_mul_adj(U[nu, s], t1, t2, n)
        mat_mul(t2, U[mu, x_mm], leaf, n)
        add_into(leaf, C, n)
        # leaf 3: U_mu(x-mu)^+ U_nu(x-mu-nu)^+ U_mu(x-mu-nu) U_nu(x-nu)
        mat_mul(U[nu, x_mm_mn], U[mu, x_mm], t1, n)
        mat_mul(U[mu, x_mm_mn], U[nu, x_mn], t2, n)
        adj_mul(t1, t2, leaf, n)
        add_into(leaf, C, n)
        # leaf 4: U_nu(x-nu)^+ U_mu(x-nu) U_nu(x-nu+mu) U_mu(x)^+
        mat_mul(U[mu, x_mn], U[nu, x_mn_pm], t1, n)
        adj_mul(U[nu, x_mn], t1, t2, n)
        mat_mul_adj(t2, U[mu, s], leaf, n)
        add_into(leaf, C, n)
        ta_into(C, 0.25, out[p, s], n)


@kernel
def _charge_density_kernel(F, out):
    """q(s) = -(1/4 pi^2) Re[tr F01 F23 - tr F02 F13 + tr F03 F12] (planes 01, 02, 03, 12, 13, 23)."""
    for s in range(cuda.grid(1), F.shape[1], cuda.gridsize(1)):  # grid-stride loop
        n = F.shape[2]
        norm = -1.0 / (4.0 * np.pi * np.pi)
        out[s] = norm * (re_trace_mul(F[0, s], F[5, s], n) - re_trace_mul(F[1, s], F[4, s], n) + re_trace_mul(F[2, s], F[3, s], n))


# ----------------------------------------------------------------------------- input


def _links(U, batched=False, check=False):
    """(flat device view (D, V, N, N), lattice shape) of links on the host (validated) or the device (N = 1, 2, 3)."""
    check_one_configuration(batched)
    if isinstance(U, DeviceField) or is_device_array(U):
        data = to_device(U, np.complex128)
        dims = tuple(data.shape)
        if len(dims) < 5 or len(dims) != 3 + dims[0] or dims[-1] != dims[-2]:
            raise ValueError(f"links must have shape (D, L0, ..., L{{D-1}}, N, N) with D >= 2, got shape {dims}")
        shape = dims[1:-2]
    else:
        links = gauge_links(U, group="su")
        if check:
            groups.check_special_unitary(links.flat, name="links")
        shape = links.shape
        data = cuda.to_device(links.flat[0])
    N = tuple(data.shape)[-1]
    if N > MAXN:
        raise ValueError(f"the CUDA kernels cover SU(2) and SU(3) (and U(1)); SU({N}) runs on backend='cpu'")
    return data.reshape((len(shape), int(np.prod(shape)), N, N)), tuple(shape)


def _as_field(data, shape):
    return DeviceField(data.reshape((data.shape[0],) + tuple(shape) + tuple(data.shape[2:])))


# ----------------------------------------------------------------------------- action, force, drift (as latticeml.theories.sun)


def _plaquettes(U, check, store):
    flat, shape = _links(U, check=check)
    fwd, _ = tables(shape)
    plane_list = planes(len(shape))
    V = flat.shape[1]
    field = device_array((plane_list.shape[0], V) if store else (1, 1), np.float64)
    site_sums = device_array((V,), np.float64)
    _plaquette_kernel[grid(V)](flat, fwd, plane_list, store, field, site_sums)
    return field, total(site_sums), shape, plane_list.shape[0] * V


def plaquette_field(U, *, batched: bool = False, check: bool = True) -> DeviceField:
    """``Re tr U_P(x) / N`` for every plane and site, ``(n_planes, *shape)`` (:func:`latticeml.theories.sun.plaquette_field`)."""
    check_one_configuration(batched)
    field, _, shape, _ = _plaquettes(U, check, True)
    return DeviceField(field.reshape((field.shape[0],) + shape))


def mean_plaquette(U, *, batched: bool = False, check: bool = True) -> float:
    """``<Re tr U_P / N>`` over sites and planes."""
    check_one_configuration(batched)
    _, sums, _, n = _plaquettes(U, check, False)
    return sums / n


def action(U, *, beta: float, batched: bool = False, check: bool = True) -> float:
    """Wilson action ``S = beta sum_{x, mu<nu} (1 - Re tr U_P(x) / N)``."""
    beta = finite_float(beta)
    check_one_configuration(batched)
    _, sums, _, n = _plaquettes(U, check, False)
    return beta * (n - sums)


def _staples_or_projection(U, check, scale, want_projection, per_colour=False):
    """Per link A_mu(x), or ``scale TA(U A)`` (``scale / (2N)`` if ``per_colour``: the force's beta / 2N)."""
    flat, shape = _links(U, check=check)
    fwd, bwd = tables(shape)
    if per_colour:
        scale = scale / (2.0 * tuple(flat.shape)[-1])
    out = device_array(flat.shape, np.complex128)
    _staples_kernel[grid(flat.shape[0] * flat.shape[1])](flat, fwd, bwd, float(scale), want_projection, out)
    return _as_field(out, shape)


def staples(U, *, batched: bool = False, check: bool = True) -> DeviceField:
    """Staple sums ``A_mu(x)``, same shape as ``U``."""
    check_one_configuration(batched)
    return _staples_or_projection(U, check, 1.0, False)


def force(U, *, beta: float, batched: bool = False, check: bool = True) -> DeviceField:
    """``F_mu(x) = (beta / 2N) TA(U_mu(x) A_mu(x))``, same shape as ``U``."""
    check_one_configuration(batched)
    return _staples_or_projection(U, check, finite_float(beta), True, per_colour=True)


def exp_multiply(X, U, *, eps: float = 1.0, restore: bool = False) -> DeviceField:
    """``exp(eps X) U`` link by link (re-unitarised if ``restore``); X, U of the same shape ``(..., N, N)``."""
    u = to_device(U, np.complex128)
    x = to_device(X, np.complex128)
    if tuple(x.shape) != tuple(u.shape):
        raise ValueError(f"momenta must have the shape of the links {tuple(u.shape)}, got {tuple(x.shape)}")
    N = tuple(u.shape)[-1]
    if N > MAXN:
        raise ValueError(f"the CUDA kernels cover SU(2) and SU(3) (and U(1)); SU({N}) runs on backend='cpu'")
    M = int(np.prod(tuple(u.shape)[:-2]))
    out = device_array((M, N, N), np.complex128)
    _exp_mul_kernel[grid(M)](x.reshape(M, N, N), float(eps), u.reshape(M, N, N), bool(restore), out)
    return DeviceField(out.reshape(tuple(u.shape)))


def evolve(U, P, eps: float) -> DeviceField:
    """The molecular-dynamics drift ``exp(eps P) U`` link by link, re-unitarised (:func:`latticeml.theories.sun.evolve`)."""
    return exp_multiply(P, U, eps=eps, restore=True)


def kinetic_energy(P) -> float:
    """``K = -tr P^2 = sum_ij |P_ij|^2`` summed over the links, on the device."""
    return sum_squares(to_device(P, np.complex128))


# ----------------------------------------------------------------------------- gradient flow and stout smearing


def flow_generator(U, *, eps: float = 1.0) -> DeviceField:
    """``eps Z(U)``, ``Z = TA(C U^+) = -TA(U A)`` (plaquette staples; :func:`latticeml.smearing.gradient_flow.flow_generator`)."""
    return _staples_or_projection(U, False, -float(eps), True)


def flow_step(U, *, step_size: float, integrator: str = "rk3") -> DeviceField:
    """One Wilson-flow step (:func:`latticeml.smearing.gradient_flow.flow_step`, ``c1 = 0``), on the device.

    RK3 (Luscher 2010, appendix C): ``W1 = exp(Z0/4) V``, ``W2 = exp(8/9 Z1 - 17/36 Z0) W1``,
    ``V' = exp(3/4 Z2 - 8/9 Z1 + 17/36 Z0) W2`` with ``Z_i = eps Z(W_i)``; Euler: ``exp(Z0) V``.
    """
    eps = positive_float(step_size, "step_size")
    if integrator not in FLOW_INTEGRATORS:
        raise ValueError(f"unknown flow integrator {integrator!r}; choose one of {FLOW_INTEGRATORS}")
    V0 = _as_field(*_links(U))  # on the device from here on
    Z0 = flow_generator(V0, eps=eps)
    if integrator == "euler":
        return exp_multiply(Z0, V0)
    W1 = exp_multiply(0.25 * Z0, V0)
    Z1 = flow_generator(W1, eps=eps)
    W2 = exp_multiply((8.0 / 9.0) * Z1 - (17.0 / 36.0) * Z0, W1)
    Z2 = flow_generator(W2, eps=eps)
    return exp_multiply(0.75 * Z2 - (8.0 / 9.0) * Z1 + (17.0 / 36.0) * Z0, W2)


def flow(U, *, step_size: float, n_steps: int, integrator: str = "rk3") -> DeviceField:
    """``n_steps`` flow steps; the links stay on the device throughout."""
    U = _as_field(*_links(U))
    for _ in range(check_count(n_steps, "n_steps", minimum=1)):
        U = flow_step(U, step_size=step_size, integrator=integrator)
    return U


def stout(U, *, rho: float, n_steps: int = 1) -> DeviceField:
    """Stout smearing ``U -> exp(rho TA(C U^+)) U``, ``n_steps`` times, plaquette staples (:func:`latticeml.smearing.stout`)."""
    rho = finite_float(rho, "rho")
    U = _as_field(*_links(U))
    for _ in range(check_count(n_steps, "n_steps", minimum=1)):
        U = exp_multiply(flow_generator(U, eps=rho), U)
    return U


# ----------------------------------------------------------------------------- Polyakov loops, clover charge


def polyakov_starts(shape, direction: int) -> np.ndarray:
    """Flat sites of the slice ``x_d = 0`` in the order of the remaining axes (where the lines start)."""
    V = int(np.prod(shape))
    return np.ascontiguousarray(np.moveaxis(np.arange(V, dtype=np.int64).reshape(shape), direction, 0)[0].ravel())


def polyakov_loop(U, *, direction: int = 0) -> DeviceField:
    """``tr prod_t U_d(x + t d) / N`` over the lattice without axis d (:func:`latticeml.observables.loops.polyakov_loop`)."""
    flat, shape = _links(U)
    if not 0 <= direction < len(shape):
        raise ValueError(f"direction={direction} out of range for a {len(shape)}-dimensional lattice")
    starts = cuda.to_device(polyakov_starts(shape, direction))
    out = device_array((starts.shape[0],), np.complex128)
    _polyakov_kernel[grid(starts.shape[0])](flat, tables(shape)[0], starts, direction, shape[direction], out)
    return DeviceField(out.reshape(shape[:direction] + shape[direction + 1 :]))


def polyakov_loop_mean(U, *, direction: int = 0) -> complex:
    """Average of :func:`polyakov_loop` over the remaining sites (one complex per site copied to the host)."""
    return complex(np.asarray(polyakov_loop(U, direction=direction)).mean())


def _clover(U):
    flat, shape = _links(U)
    fwd, bwd = tables(shape)
    plane_list = planes(len(shape))
    N = tuple(flat.shape)[-1]
    out = device_array((plane_list.shape[0], flat.shape[1], N, N), np.complex128)
    _clover_kernel[grid(plane_list.shape[0] * flat.shape[1])](flat, fwd, bwd, plane_list, out)
    return out, shape


def clover_field_strength(U) -> DeviceField:
    """Clover ``F_{mu nu}(x)``, ``(n_planes, *shape, N, N)`` (:func:`latticeml.observables.topology.clover_field_strength`)."""
    F, shape = _clover(U)
    return _as_field(F, shape)


def topological_charge_density(U) -> DeviceField:
    """Clover charge density ``q(x)`` of 4D links, ``(L0, L1, L2, L3)`` (:func:`latticeml.observables.topology.topological_charge_density`)."""
    F, shape = _clover(U)
    if len(shape) != 4:
        raise ValueError(f"the clover topological charge density is defined in D = 4, got a {len(shape)}-dimensional lattice {shape}")
    q = device_array((F.shape[1],), np.float64)
    _charge_density_kernel[grid(F.shape[1])](F, q)
    return DeviceField(q.reshape(shape))


def topological_charge(U) -> float:
    """Clover charge ``Q = sum_x q(x)``, summed on the device."""
    q = topological_charge_density(U)
    return total(q.data.reshape(q.size))
