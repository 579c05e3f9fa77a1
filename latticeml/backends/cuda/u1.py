"""Kernel family ``u1`` on CUDA: compact U(1) gauge theory with the Wilson action, any D >= 2.

The functions of :mod:`latticeml.theories.u1` with the same names, signatures and conventions
(angles ``theta`` float64 ``(D, L0, ..., L{D-1})``, ``S = beta sum_{x, mu<nu} (1 - cos theta_P)``,
``F_mu(x) = dS/dtheta_mu(x) = beta Im(exp(i theta_mu(x)) A_mu(x))``), computed on the device:
inputs are NumPy arrays or :class:`~latticeml.backends.cuda.arrays.DeviceField` (the links of a
running trajectory), field-valued results are DeviceFields (``np.asarray`` copies them to the
host), scalars are floats. One configuration at a time (``batched=False``).

Kernels: one thread per site (plaquette angles and their cosines) or per link (staples, force,
drift); the per-link staple sum :func:`staple` serves both the staples and the force.
Gradient flow and stout smearing of U(1) links run as 1 x 1 phases in
:mod:`latticeml.backends.cuda.sun` (:func:`flow_step`, :func:`stout` here convert).
"""

from __future__ import annotations

import math

import numpy as np

from ...checks import finite_float, gauge_links
from . import sun as _matrices
from ._shim import cuda, device, grid, kernel
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
from .device import link_of, plane_of, u1_plaquette_angle

__all__ = [
    "action",
    "evolve",
    "flow_step",
    "force",
    "kinetic_energy",
    "mean_plaquette",
    "plaquette_angles",
    "polyakov_loop",
    "polyakov_loop_mean",
    "staples",
    "stout",
    "to_angles",
    "to_phases",
]


# ----------------------------------------------------------------------------- device functions and kernels


@device
def staple(theta, fwd, bwd, mu, s):
    """A_mu(x), the complex staple sum of link (mu, s) (:func:`latticeml.theories.u1.staple_at`)."""
    D = theta.shape[0]
    xp = fwd[s, mu]
    a = 0j
    for nu in range(D):
        if nu == mu:
            continue
        xm = bwd[s, nu]
        up = theta[nu, xp] - theta[mu, fwd[s, nu]] - theta[nu, s]
        lo = -theta[nu, bwd[xp, nu]] - theta[mu, xm] + theta[nu, xm]
        a += complex(math.cos(up), math.sin(up)) + complex(math.cos(lo), math.sin(lo))
    return a


@device
def wrap(t):
    """t mapped into (-pi, pi], as :func:`latticeml.groups.wrap_angle` (NumPy's remainder, the -pi edge to +pi)."""
    r = math.fmod(t + math.pi, 2.0 * math.pi)
    if r < 0.0:
        r += 2.0 * math.pi
    w = r - math.pi
    if w == -math.pi:
        w = math.pi
    return w


@kernel
def _plaquette_kernel(theta, fwd, plane_list, store, angles, cos_sums):
    """cos_sums[s] = sum over planes of cos theta_P(s); angles[p, s] = theta_P(s) if store."""
    for s in range(cuda.grid(1), theta.shape[1], cuda.gridsize(1)):  # grid-stride loop
        acc = 0.0
        for p in range(plane_list.shape[0]):
            mu, nu = plane_of(p, plane_list)
            a = u1_plaquette_angle(theta, fwd, mu, nu, s)
            if store:
                angles[p, s] = a
            acc += math.cos(a)
        cos_sums[s] = acc


@kernel
def _staples_kernel(theta, fwd, bwd, beta, want_force, out_force, out_staples):
    """Per link: out_staples = A_mu(x), or out_force = beta Im(exp(i theta_mu(x)) A_mu(x)) if want_force."""
    V = theta.shape[1]
    for i in range(cuda.grid(1), theta.shape[0] * V, cuda.gridsize(1)):  # grid-stride loop
        mu, s = link_of(i, V)
        a = staple(theta, fwd, bwd, mu, s)
        if want_force:
            t = theta[mu, s]
            out_force[mu, s] = beta * (math.sin(t) * a.real + math.cos(t) * a.imag)
        else:
            out_staples[mu, s] = a


@kernel
def _drift_kernel(theta, p, eps, out):
    """out = wrap(theta + eps p) elementwise (1-D views)."""
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):  # grid-stride loop
        out[i] = wrap(theta[i] + eps * p[i])


@kernel
def _polyakov_kernel(theta, fwd, starts, direction, n, out):
    """out[i] = exp(i sum_t theta_d(s + t d)), s = starts[i], the line of n links along d."""
    for i in range(cuda.grid(1), starts.shape[0], cuda.gridsize(1)):  # grid-stride loop
        s = starts[i]
        acc = theta[direction, s]
        for _ in range(n - 1):
            s = fwd[s, direction]
            acc += theta[direction, s]
        out[i] = complex(math.cos(acc), math.sin(acc))


@kernel
def _phases_kernel(theta, out):
    """out[i, 0, 0] = exp(i theta[i]) (flat links as 1 x 1 matrices)."""
    for i in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):  # grid-stride loop
        out[i, 0, 0] = complex(math.cos(theta[i]), math.sin(theta[i]))


@kernel
def _angles_kernel(U, out):
    """out[i] = arg U[i, 0, 0] in (-pi, pi]."""
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):  # grid-stride loop
        out[i] = math.atan2(U[i, 0, 0].imag, U[i, 0, 0].real)


# ----------------------------------------------------------------------------- input


def _links(theta, batched=False):
    """(flat device view (D, V), lattice shape) of U(1) links given on the host (validated) or the device."""
    check_one_configuration(batched)
    if isinstance(theta, DeviceField) or is_device_array(theta):
        data = to_device(theta, np.float64)
        shape = tuple(data.shape)[1:]
        if len(data.shape) != 1 + data.shape[0] or data.shape[0] < 2:
            raise ValueError(f"U(1) links must be angles of shape (D, L0, ..., L{{D-1}}) with D >= 2, got shape {shape}")
    else:
        links = gauge_links(theta, group="u1")
        shape = links.shape
        data = cuda.to_device(links.flat[0])
    return data.reshape(len(shape), int(np.prod(shape))), shape


# ----------------------------------------------------------------------------- public API (as latticeml.theories.u1)


def _plaquettes(theta, store):
    flat, shape = _links(theta)
    fwd, _ = tables(shape)
    plane_list = planes(len(shape))
    V = flat.shape[1]
    angles = device_array((plane_list.shape[0], V) if store else (1, 1), np.float64)
    cos_sums = device_array((V,), np.float64)
    _plaquette_kernel[grid(V)](flat, fwd, plane_list, store, angles, cos_sums)
    return angles, total(cos_sums), shape, plane_list.shape[0] * V


def plaquette_angles(theta, *, batched: bool = False) -> DeviceField:
    """Unwrapped plaquette angles ``theta_P(x)``, ``(n_planes, *shape)`` (:func:`latticeml.theories.u1.plaquette_angles`)."""
    check_one_configuration(batched)
    angles, _, shape, _ = _plaquettes(theta, True)
    return DeviceField(angles.reshape((angles.shape[0],) + shape))


def mean_plaquette(theta, *, batched: bool = False) -> float:
    """``<cos theta_P>`` over sites and planes."""
    check_one_configuration(batched)
    _, sums, _, n = _plaquettes(theta, False)
    return sums / n


def action(theta, *, beta: float, batched: bool = False) -> float:
    """Wilson action ``S = beta sum_{x, mu<nu} (1 - cos theta_P(x))``."""
    beta = finite_float(beta)
    check_one_configuration(batched)
    _, sums, _, n = _plaquettes(theta, False)
    return beta * (n - sums)


def _staples_or_force(theta, beta, want_force):
    flat, shape = _links(theta)
    fwd, bwd = tables(shape)
    D, V = flat.shape
    # the output not asked for is a 1 x 1 placeholder of its dtype (one kernel signature for both)
    out_force = device_array((D, V) if want_force else (1, 1), np.float64)
    out_staples = device_array((1, 1) if want_force else (D, V), np.complex128)
    _staples_kernel[grid(D * V)](flat, fwd, bwd, beta, want_force, out_force, out_staples)
    out = out_force if want_force else out_staples
    return DeviceField(out.reshape((D,) + shape))


def force(theta, *, beta: float, batched: bool = False) -> DeviceField:
    """``dS/dtheta_mu(x) = beta Im(exp(i theta_mu(x)) A_mu(x))``, same shape as ``theta``."""
    check_one_configuration(batched)
    return _staples_or_force(theta, finite_float(beta), True)


def staples(theta, *, batched: bool = False) -> DeviceField:
    """Complex staple sums ``A_mu(x)``, same shape as ``theta``."""
    check_one_configuration(batched)
    return _staples_or_force(theta, 1.0, False)


def evolve(theta, p, eps: float) -> DeviceField:
    """The molecular-dynamics drift ``theta + eps p`` wrapped into ``(-pi, pi]`` (a new field)."""
    x = to_device(theta, np.float64)
    q = to_device(p, np.float64)
    if tuple(q.shape) != tuple(x.shape):
        raise ValueError(f"momenta must have the shape of the links {tuple(x.shape)}, got {tuple(q.shape)}")
    out = device_array(x.shape, np.float64)
    n = int(np.prod(x.shape))
    _drift_kernel[grid(n)](x.reshape(n), q.reshape(n), float(eps), out.reshape(n))
    return DeviceField(out)


def kinetic_energy(p) -> float:
    """``K = 1/2 sum p^2`` of real momenta, summed on the device."""
    return 0.5 * sum_squares(to_device(p, np.float64))


def polyakov_loop(theta, *, direction: int = 0) -> DeviceField:
    """``exp(i sum_t theta_d(x + t d))`` over the lattice without axis d (:func:`latticeml.observables.loops.polyakov_loop`)."""
    flat, shape = _links(theta)
    if not 0 <= direction < len(shape):
        raise ValueError(f"direction={direction} out of range for a {len(shape)}-dimensional lattice")
    starts = cuda.to_device(_matrices.polyakov_starts(shape, direction))
    out = device_array((starts.shape[0],), np.complex128)
    _polyakov_kernel[grid(starts.shape[0])](flat, tables(shape)[0], starts, direction, shape[direction], out)
    return DeviceField(out.reshape(shape[:direction] + shape[direction + 1 :]))


def polyakov_loop_mean(theta, *, direction: int = 0) -> complex:
    """Average of :func:`polyakov_loop` over the remaining sites (copied to the host: one complex per site)."""
    return complex(np.asarray(polyakov_loop(theta, direction=direction)).mean())


def to_phases(theta) -> DeviceField:
    """Links as 1 x 1 unitary matrices ``exp(i theta)``, ``(D, *shape, 1, 1)`` complex128 (the kernel form of :mod:`latticeml.smearing`)."""
    flat, shape = _links(theta)
    n = flat.shape[0] * flat.shape[1]
    out = device_array((n, 1, 1), np.complex128)
    _phases_kernel[grid(n)](flat.reshape(n), out)
    return DeviceField(out.reshape((len(shape),) + shape + (1, 1)))


def to_angles(U) -> DeviceField:
    """Angles in (-pi, pi] of 1 x 1 phases ``(D, *shape, 1, 1)``: the inverse of :func:`to_phases`."""
    data = to_device(U, np.complex128)
    n = int(np.prod(tuple(data.shape)[:-2]))
    out = device_array((n,), np.float64)
    _angles_kernel[grid(n)](data.reshape(n, 1, 1), out)
    return DeviceField(out.reshape(tuple(data.shape)[:-2]))


def flow_step(theta, *, step_size: float, integrator: str = "rk3") -> DeviceField:
    """One Wilson-flow step of U(1) links (:func:`latticeml.smearing.gradient_flow.flow_step`), as 1 x 1 phases on the device."""
    return to_angles(_matrices.flow_step(to_phases(theta), step_size=step_size, integrator=integrator))


def stout(theta, *, rho: float, n_steps: int = 1) -> DeviceField:
    """Stout smearing of U(1) links, plaquette staples (:func:`latticeml.smearing.stout`), as 1 x 1 phases on the device."""
    return to_angles(_matrices.stout(to_phases(theta), rho=rho, n_steps=n_steps))
