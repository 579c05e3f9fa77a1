"""Gauge-invariant loops: rectangular R x T Wilson loops and Polyakov loops, for U(1) and SU(N) in any D.

Shapes and conventions (see :mod:`latticeml.lattice`)
-----------------------------------------------------
* Links are U(1) angles ``theta`` float64 ``(D, L0, ..., L{D-1})`` or SU(N) matrices ``U``
  complex128 ``(D, L0, ..., L{D-1}, N, N)``; the group is read off the dtype (real -> U(1),
  complex -> SU(N)). Every function takes ``batched=False``; with ``batched=True`` the links carry a
  leading batch axis ``(B, D, ...)`` and every result gains a leading ``B`` axis (as in
  :mod:`latticeml.theories`). The kernels run one configuration at a time.
* Planes ``mu < nu`` are ordered ``(0,1), (0,2), ..., (0,D-1), (1,2), ...`` (:func:`planes`).
* The straight Wilson line of length ``n`` along ``mu`` starting at ``x`` is
  ``L_mu^n(x) = U_mu(x) U_mu(x + mu) ... U_mu(x + (n-1) mu)``.
* The R x T loop in plane (mu, nu) with corner x, extent R along ``mu`` and T along ``nu`` is
  ``W(x) = L_mu^R(x) L_nu^T(x + R mu) [L_mu^R(x + T nu)]^dagger [L_nu^T(x)]^dagger``;
  we measure ``Re tr W / N`` (SU(N)) or ``cos(angle of W)`` (U(1)). For R = T = 1 this is the
  plaquette ``U_mu(x) U_nu(x+mu) U_mu(x+nu)^dagger U_nu(x)^dagger``.
  ``orientation="mu"`` measures only these loops, ``"nu"`` only the loops with R along ``nu`` and
  T along ``mu``, and ``"both"`` (default) the mean of the two at every corner x.
* A loop must not wrap around the torus: the extent along a direction must be < its L.

The loops are built from Wilson lines: the lines of R and T links along each direction are built
once (R + T matrix products per site) and shared by every plane, and closing a loop then costs two
products per site, instead of 2 (R + T) for walking each loop of each plane. The lines are
batched NumPy products over flat sites gathered with the neighbour table of
:func:`latticeml.lattice.neighbour_table`, so one function serves every D; they are observables,
measured once per configuration, and compile nothing (a Numba version cost 3-5 s of compilation
before the first number of every SU(N) chain, bench_coldstart.py).

Polyakov loops ``P(x) = tr prod_{t=0}^{L_0-1} U_0(x + t 0) / N`` (``exp(i sum theta)`` for U(1))
wind once around the torus; their mean is the order parameter of the centre symmetry.
References: K. G. Wilson, PRD 10 (1974) 2445 (Wilson loops); A. M. Polyakov, PLB 72 (1978) 477
and L. Susskind, PRD 20 (1979) 2610 (Polyakov loop); I. Montvay and G. Muenster, *Quantum Fields
on a Lattice* (CUP 1994), ch. 3-4.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from ..checks import gauge_links
from ..lattice import neighbour_table, planes

__all__ = [
    "planes",
    "wilson_line",
    "wilson_loop_field",
    "wilson_loops",
    "wilson_loop",
    "plaquette",
    "polyakov_loop",
    "polyakov_loop_mean",
    "polyakov_correlator",
]

_ORIENTATIONS = ("both", "mu", "nu")


# ----------------------------------------------------------------------------- input handling


def _as_links(links, batched: bool):
    """Validate gauge links and view them with flat sites (:func:`latticeml.checks.gauge_links`).

    Returns ``(group, flat, shape)``: group "u1" with flat float64 ``(B, D, V)``, or "su" with flat
    complex128 ``(B, D, V, N, N)`` (B = 1 when not batched). Real dtypes mean U(1) angles, complex
    dtypes SU(N) matrices.
    """
    links = np.asarray(links)
    if links.dtype.kind not in "fc":  # integer "angles" are almost surely a mistake here
        raise TypeError(f"links have dtype {links.dtype}: use float64 angles for U(1) or complex128 matrices for SU(N)")
    links = gauge_links(links, batched=batched, min_dim=1)
    return links.group, links.flat, links.shape


def _unbatch(x, batched: bool):
    """Drop the batch axis of a per-configuration result when the input was a single configuration."""
    if batched:
        return x
    x = x[0]
    return x.item() if np.ndim(x) == 0 else x


@lru_cache(maxsize=256)
def _shifted_sites(shape: tuple[int, ...], mu: int, n: int) -> np.ndarray:
    """Flat index of ``x + n mu_hat`` for every site x (read-only, cached)."""
    idx = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    out = np.roll(idx, -n, axis=mu).ravel()
    out.setflags(write=False)
    return out


def _close_su_loops(A, B, a_end, b_end):
    """``Re tr[ A(s) B(a_end[s]) (B(s) A(b_end[s]))^dagger ] / N`` for every site s: shape (V,).

    A are the lines along the first side (ending at a_end), B those along the second (ending at b_end).
    """
    m1 = A @ B[a_end]  # along the first side, then up the second
    m2 = B @ A[b_end]  # the other way round the rectangle
    return np.einsum("sij,sij->s", m1, m2.conj()).real / A.shape[-1]


# ----------------------------------------------------------------------------- Wilson lines and loops


def wilson_line(links, mu: int, n: int, *, batched: bool = False) -> np.ndarray:
    """Straight Wilson lines ``L_mu^n(x)`` of ``n`` links along ``mu`` from every site x.

    Returns U(1) angle sums ``(*shape)`` (not wrapped) or SU(N) matrices ``(*shape, N, N)``, with a
    leading ``B`` axis if ``batched``. ``n`` may exceed ``L_mu`` (the line then winds around the torus).
    """
    group, flat, shape = _as_links(links, batched)
    D = len(shape)
    if not 0 <= mu < D:
        raise ValueError(f"direction mu={mu} out of range for a {D}-dimensional lattice")
    if int(n) != n or n < 1:
        raise ValueError(f"a Wilson line needs n >= 1 links, got n={n}")
    out = np.stack([_lines(group, f, shape, mu, int(n)) for f in flat])
    return _unbatch(out.reshape((len(flat),) + shape + flat.shape[3:]), batched)


def _lines(group, flat, shape, mu, n, starts=None):
    """Lines of n links along mu from the sites ``starts`` (default all) of one configuration ``flat`` (D, V, ...).

    Plain NumPy (a gather and a batched product per link): an observable, not a hot loop, and no
    Numba kernel to compile before a chain's first number.
    """
    fwd, _ = neighbour_table(shape)
    sites = np.arange(fwd.shape[0]) if starts is None else starts
    link = flat[mu]
    out = link[sites]
    for _ in range(n - 1):
        sites = fwd[sites, mu]
        out = out + link[sites] if group == "u1" else out @ link[sites]
    return out


def _check_loop(shape, R, T, orientation):
    for name, v in (("R", R), ("T", T)):
        if int(v) != v or v < 1:
            raise ValueError(f"loop extent {name} must be an integer >= 1, got {v}")
    if orientation not in _ORIENTATIONS:
        raise ValueError(f"orientation must be one of {_ORIENTATIONS}, got {orientation!r}")
    if len(shape) < 2:
        raise ValueError(f"Wilson loops need a lattice with D >= 2, got shape {shape}")
    sides = []  # (extent along mu, extent along nu) of each measured orientation
    if orientation in ("both", "mu"):
        sides.append((R, T))
    if orientation in ("both", "nu") and not (orientation == "both" and R == T):
        sides.append((T, R))
    for mu, nu in planes(len(shape)):
        for a, b in sides:
            if a >= shape[mu] or b >= shape[nu]:
                raise ValueError(
                    f"a {a} x {b} loop does not fit in plane ({mu},{nu}) of the {shape} lattice: it would wrap "
                    f"around the torus (the extent along each direction must be < L). Use a larger lattice, a "
                    f"smaller loop, or orientation='mu'/'nu' to measure only the orientation that fits."
                )
    return sides


def _loop_field_flat(group, flat, shape, R, T, orientation):
    """Per-plane, per-site loop values ``(n_planes, V)`` averaged over the requested orientations."""
    sides = _check_loop(shape, R, T, orientation)
    D, V = len(shape), flat.shape[1]
    cache = {}

    def line(mu, n):  # each line field is built once and shared by the planes that need it
        if (mu, n) not in cache:
            cache[mu, n] = _lines(group, flat, shape, mu, n)
        return cache[mu, n]

    out = np.zeros((len(planes(D)), V))
    for p, (mu, nu) in enumerate(planes(D)):
        for a, b in sides:
            A, B = line(mu, a), line(nu, b)
            a_end, b_end = _shifted_sites(shape, mu, a), _shifted_sites(shape, nu, b)
            if group == "u1":
                out[p] += np.cos(A + B[a_end] - A[b_end] - B)
            else:
                out[p] += _close_su_loops(A, B, a_end, b_end)
        out[p] /= len(sides)
    return out


def _loop_fields(links, R, T, orientation, batched):
    """Per-plane, per-site loops ``(B, n_planes, V)`` and the lattice shape."""
    group, flat, shape = _as_links(links, batched)
    return np.stack([_loop_field_flat(group, f, shape, R, T, orientation) for f in flat]), shape


def wilson_loop_field(links, R: int, T: int, *, orientation: str = "both", batched: bool = False) -> np.ndarray:
    """Per-site R x T Wilson loops ``(n_planes, *shape)``: ``Re tr W / N`` (SU(N)) or ``cos`` (U(1)).

    Entry ``[p, x]`` is the loop in plane ``planes(D)[p] = (mu, nu)`` with lower corner x, extent
    R along mu and T along nu (``orientation="mu"``), R along nu and T along mu (``"nu"``), or the
    mean of the two (``"both"``, the default). Gauge invariant site by site. ``batched=True``: links
    ``(B, D, ...)`` and a result ``(B, n_planes, *shape)``.
    """
    W, shape = _loop_fields(links, R, T, orientation, batched)
    return _unbatch(W.reshape(W.shape[:2] + shape), batched)


def wilson_loops(links, R: int, T: int, *, orientation: str = "both", batched: bool = False) -> np.ndarray:
    """R x T Wilson loops averaged over sites, one value per plane: shape ``(n_planes,)`` (``(B, n_planes)`` if batched).

    See :func:`wilson_loop_field` for the orientations; call it twice with ``orientation="mu"`` and
    ``"nu"`` for the two orientations separately (needed when only one fits, e.g. long temporal loops).
    """
    W, _ = _loop_fields(links, R, T, orientation, batched)
    return _unbatch(W.mean(axis=2), batched)


def wilson_loop(links, R: int, T: int, *, orientation: str = "both", batched: bool = False):
    """R x T Wilson loop averaged over sites, planes and (by default) both orientations: a float (``(B,)`` if batched)."""
    W, _ = _loop_fields(links, R, T, orientation, batched)
    return _unbatch(W.mean(axis=(1, 2)), batched)


def plaquette(links, *, batched: bool = False):
    """Average plaquette ``<Re tr U_P / N>`` (``<cos theta_P>`` for U(1)), the 1 x 1 Wilson loop: a float (``(B,)`` if batched)."""
    return wilson_loop(links, 1, 1, batched=batched)


# ----------------------------------------------------------------------------- Polyakov loops


def _polyakov_flat(group, flat, shape, direction):
    """Polyakov loops of one configuration ``flat`` (D, V, ...) as a complex field over the other axes."""
    # the loops start on the slice x_d = 0
    starts = np.ascontiguousarray(
        np.moveaxis(np.arange(flat.shape[1], dtype=np.int64).reshape(shape), direction, 0)[0].ravel()
    )
    lines = _lines(group, flat, shape, direction, shape[direction], starts)
    if group == "u1":
        P = np.exp(1j * lines)
    else:
        P = np.trace(lines, axis1=-2, axis2=-1) / lines.shape[-1]
    return P.reshape(shape[:direction] + shape[direction + 1 :])


def _polyakov_fields(links, direction, batched):
    group, flat, shape = _as_links(links, batched)
    if not 0 <= direction < len(shape):
        raise ValueError(f"direction={direction} out of range for a {len(shape)}-dimensional lattice")
    return np.stack([_polyakov_flat(group, f, shape, direction) for f in flat]), shape


def polyakov_loop(links, *, direction: int = 0, batched: bool = False) -> np.ndarray:
    """Polyakov loops along ``direction``: a complex field over the remaining axes.

    ``P(x) = tr prod_{t=0}^{L-1} U_d(x + t d) / N`` for SU(N) and ``exp(i sum_t theta_d(x + t d))``
    for U(1), with L the extent along d; the result has the lattice shape with axis d removed
    (and a leading B axis if batched).
    """
    P, _ = _polyakov_fields(links, direction, batched)
    return _unbatch(P, batched)


def polyakov_loop_mean(links, *, direction: int = 0, batched: bool = False):
    """Spatial average of the Polyakov loop: a complex number (``(B,)`` if batched); its ensemble mean vanishes in the confined phase."""
    P, _ = _polyakov_fields(links, direction, batched)
    return _unbatch(P.reshape(len(P), -1).mean(axis=1), batched)


def polyakov_correlator(links, *, direction: int = 0, spatial_directions=None, batched: bool = False) -> np.ndarray:
    """``C(r) = < P(x) P(x + r k)^* >`` for r = 0, ..., L_k // 2, averaged over x and spatial directions k.

    ``spatial_directions`` (default: every direction but ``direction``) are the lattice directions
    k averaged over; they must have equal extents L_k (pass a subset otherwise). Returns a complex
    array of length ``L_k // 2 + 1`` per configuration (``(B, L_k // 2 + 1)`` if batched);
    ``C(0) = mean |P|^2``. Its ensemble mean is real (reflection symmetry), so average ``.real`` over
    configurations. Compare the 2D U(1) closed form :func:`latticeml.exact.u1_2d_polyakov_correlator`.
    """
    P, shape = _polyakov_fields(links, direction, batched)
    D = len(shape)
    if spatial_directions is None:
        spatial_directions = [k for k in range(D) if k != direction]
    spatial_directions = [int(k) for k in spatial_directions]
    if not spatial_directions or any(k == direction or not 0 <= k < D for k in spatial_directions):
        raise ValueError(
            f"spatial_directions must be a non-empty list of directions other than direction={direction} "
            f"in range(0, {D}), got {spatial_directions}"
        )
    extents = {shape[k] for k in spatial_directions}
    if len(extents) != 1:
        raise ValueError(
            f"spatial directions {spatial_directions} have unequal extents {[shape[k] for k in spatial_directions]} "
            f"on the {shape} lattice; pass spatial_directions=[...] with directions of equal extent"
        )
    L = extents.pop()
    site_axes = tuple(range(1, P.ndim))
    C = np.zeros((len(P), L // 2 + 1), dtype=np.complex128)
    for k in spatial_directions:
        axis = 1 + (k if k < direction else k - 1)  # array axis of direction k in P (B, ...)
        for r in range(L // 2 + 1):
            C[:, r] += np.mean(P * np.conj(np.roll(P, -r, axis=axis)), axis=site_axes)
    return _unbatch(C / len(spatial_directions), batched)
