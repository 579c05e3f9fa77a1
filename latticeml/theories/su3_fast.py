"""The SU(3) structure-of-arrays fast path of the Wilson kernels: plaquette sums, staples and force.

:mod:`latticeml.theories.sun` calls this module for N = 3 on lattices of ``MIN_SITES`` sites or more
(where the time goes; :func:`applies`); it computes the same numbers as sun's per-site kernels for
any N, to rounding. Two entry points:

* :func:`plaquette_sums` -- ``sums[b] = sum_{x, mu<nu} Re tr U_P(x) / 3`` and, if asked, the field
  ``Re tr U_P(x) / 3`` of every plane and site;
* :func:`staples_or_force` -- the staple sums ``A_mu(x)`` or the force ``scale * TA(U_mu(x) A_mu(x))``.

Both take the links as sun's kernels see them, complex128 ``(B, D, V, 3, 3)``, C-contiguous, sites
flattened in C order (``latticeml.checks.gauge_links(...).flat``), and the lattice shape; their
tasks run on as many threads as Numba is set to (:func:`latticeml._threads.run_chunks`).

Structure of arrays
-------------------
Many sites are processed together: float64 blocks with the re/im parts of the 9 matrix elements as
18 rows and the sites along the columns, so that LLVM emits SIMD instructions across sites.
(Vectorising over sites rather than within a 3x3 matrix is what lattice QCD codes do, e.g.
P. Boyle et al., "Grid", arXiv:1512.03487.) The 3x3 arithmetic on such columns is
:func:`latticeml._linalg.su3_mul` and its neighbours (``soa3_load`` / ``soa3_store``).

Plane-blocked layout
--------------------
Write a site as x = (x0, y, z, i): i = x_{D-1} (extent L), z = x_{D-2} (extent Lz) and
y = (x1, ..., x_{D-3}). A *slab* is fixed x0; a *plane* is fixed (x0, y): Lz rows of L sites.
(D = 2 has no z, a plane is one row, Lz = 1; D = 3 has no y, one plane per slab.) A plane of one
U_mu is stored as an (18, (Lz + 2) W) block, W = L + 2: component k of the site (z, i) sits at
[k, (z + 1) W + i + 1]. Columns i = -1, L and rows z = -1, Lz are halos (copies of the periodic
neighbours), so every neighbour in the i and z directions is the same block read at a fixed
column offset (+-1, +-W), and one vectorised loop runs over a whole plane: "position"
t = (z W + i + 1) for t in [0, Lz W), the halo columns between rows included (their results are
thrown away; 2 of every W). Neighbours in y are other planes of the same slab (neighbour tables
of the y lattice), in x0 the same plane of the previous or next slab.

* Staples and force transpose the field into that form one slab at a time, into a ring of three
  slabs per thread (x0 - 1, x0, x0 + 1), so the transposed copy stays in cache and each link is
  transposed about once (the ring takes about 3 (1 + 2/L)^2 / L0 of the field's memory per
  thread). A neighbour is (dj, pl, off): slab offset, plane, column offset (:func:`_step`).
* The plaquette, which reads forward neighbours only and does a quarter of the force's arithmetic
  per link, walks each plane along x0 with a ring of two planes that stays in L2, re-transposes
  the plane's neighbours in the other directions, and prefetches the next planes' links while it
  computes (memory traffic, not arithmetic, is what limits it).

Loops over positions are cut into blocks of at most ``BLOCK``, accumulated in (18, BLOCK + 8)
arrays whose row stride must be a compile-time constant (see :func:`_su3_staples_plane`); the 8
extra columns keep their rows in different L1 cache sets.

The staples are summed link by link: 4 (D - 1) matrix products per link, 48 per site in 4D. (A
scheme that computes each plaquette's partial products once and scatters them to its four links
needs 36, at the price of write conflicts between threads.)
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit

from .._linalg import (
    prefetch,
    soa3_add_store,
    soa3_load,
    soa3_store,
    su3_add,
    su3_adj,
    su3_mul,
    su3_re_trace_mul_adj,
    su3_traceless_antihermitian,
)
from .._threads import run_chunks
from ..lattice import neighbour_table

__all__ = ["BLOCK", "MIN_SITES", "applies", "plaquette_sums", "staples_or_force"]

#: Sites (B * V) from which sun's public functions take this path for N = 3. Below it the per-site
#: kernels of :mod:`latticeml.theories.sun` serve: on a 4^4 lattice they are as fast for the
#: plaquette and 2.5x slower for the force (0.1 vs 0.2 ms, 1.0 vs 0.4 ms on one thread), but
#: this path's kernels take ~25 s more to compile with an empty Numba cache, which a small run
#: never earns back (at 0.6 ms per force call that is 40 000 calls). From 8^4 on this path is
#: 1.6x (plaquette) to 4x (force) faster. Measured with benchmarks/bench_coldstart.py and a
#: 1-thread timing of both paths at 2^4 .. 8^4 (shared 2-core machine).
MIN_SITES = 2048


def applies(N: int, n_sites: int) -> bool:
    """Whether sun's public functions use this path: SU(3) on at least ``MIN_SITES`` sites (batch included)."""
    return N == 3 and n_sites >= MIN_SITES


BLOCK = 128  # positions per block (see the module docstring)


@njit(inline="always", cache=True)
def _step(dj, pl, off, d, sign, yf, yb, D, W):
    """Move the neighbour (dj, pl, off) by sign * e_d."""
    if d == 0:
        return dj + sign, pl, off
    if d == D - 1:
        return dj, pl, off + sign
    if d == D - 2:
        return dj, pl, off + sign * W
    if sign > 0:
        return dj, yf[pl, d - 1], off
    return dj, yb[pl, d - 1], off


@njit(inline="always", cache=True)
def _slot(j, dj):
    """Ring slot of slab j + dj (dj in -1, 0, 1; j >= -1 counts slabs from the chunk's first one)."""
    return (j + dj + 1) % 3


@njit(inline="always", cache=True)
def _first_column(t0, off, W):
    """Column read at position t0 by an operand at column offset off (position t is column t + W + off).

    Clamping it into [0, 2^40] tells LLVM that every column index in the block loop is
    non-negative (and does not overflow), so it drops Numba's negative-index wraparound, which
    would otherwise turn the vector loads into gathers or stop the vectorisation.
    """
    return min(max(t0 + W + off, 0), 1 << 40)


@njit(cache=True)
def _fill_plane(Uf, b, x0, pl, Ys, Lz, backward, skip, blocks):
    """Transpose plane pl of slab x0 of every U_mu, mu != skip, into blocks (D, 18, (Lz + 2) W), halos included.

    The halo row z = -1 is filled only if ``backward`` (the plaquette reads forward neighbours
    only; the halo columns are always filled, since the values computed at halo positions must
    stay finite). Every stored position, halo or not, is copied straight from the field (the
    halos from the periodic images); copying halos from the block itself would be less data but
    makes LLVM version the loops for self-aliasing, which cost seconds of compile time.
    """
    D = blocks.shape[0]
    W = blocks.shape[2] // (Lz + 2)
    L = W - 2
    for mu in range(D):
        if mu == skip:
            continue
        blk = blocks[mu]
        for zh in range(0 if backward else 1, Lz + 2):
            z = zh - 1  # z = -1 is z = Lz - 1, z = Lz is z = 0
            if z < 0:
                z = Lz - 1
            elif z == Lz:
                z = 0
            s0 = ((x0 * Ys + pl) * Lz + z) * L
            c0 = zh * W + 1
            for i in range(L):
                src = Uf[b, mu, s0 + i]
                for k in range(18):
                    blk[k, c0 + i] = src[k]
            left = Uf[b, mu, s0 + L - 1]  # i = -1 is i = L - 1
            right = Uf[b, mu, s0]  # i = L is i = 0
            for k in range(18):
                blk[k, c0 - 1] = left[k]
                blk[k, c0 + L] = right[k]


@njit(cache=True)
def _fill_slab(Uf, b, x0, Lz, backward, ring_slot):
    """Transpose slab x0 (every plane, every U_mu) into ring_slot (Ys, D, 18, (Lz + 2) W)."""
    Ys = ring_slot.shape[0]
    for pl in range(Ys):
        _fill_plane(Uf, b, x0, pl, Ys, Lz, backward, -1, ring_slot[pl])


@njit(inline="always", cache=True)
def _chunk_slabs(c, per_b, L0):
    """Batch index and slab range [t0, t1) of chunk c (each configuration is cut into per_b chunks)."""
    b = c // per_b
    k = c - b * per_b
    return b, k * L0 // per_b, (k + 1) * L0 // per_b


@njit(inline="always", cache=True)
def _prefetch_share(Uf, pf_first, n_pf, pf_len, step, n_steps):
    """Prefetch share ``step`` of ``n_steps`` of the cache lines of n_pf ranges of Uf (pf_len float64
    each, starting at the flat indices pf_first[:n_pf]). The plaquette kernel calls it once per step
    of its arithmetic, so the loads of the links it will transpose next overlap the arithmetic. (The
    staples kernel, with 4x the arithmetic per link, gained nothing measurable from it.)"""
    lines_per_range = (pf_len + 7) // 8
    n_lines = n_pf * lines_per_range
    for g in range(step * n_lines // n_steps, (step + 1) * n_lines // n_steps):
        r = g // lines_per_range
        prefetch(Uf, pf_first[r] + (g - r * lines_per_range) * 8)


@njit(inline="always", cache=True)
def _plane_start(b, mu, x0, pl, D, V, Ys, Lz, L):
    """Flat float64 index in the (B, D, V, 18) link view of the first site of plane pl of slab x0 of U_mu."""
    return ((b * D + mu) * V + (x0 * Ys + pl) * Lz * L) * 18


@njit(inline="always", cache=True)
def _forward_block(blocks, cen, nxt, d, link, D, W):
    """(block, column offset) holding U_link(x + e_d) for the plaquette's planes (see _su3_plaquette)."""
    if d == 0:
        return blocks[nxt, link], 0
    if d == D - 1:
        return blocks[cen, link], 1
    if d == D - 2:
        return blocks[cen, link], W
    return blocks[1 + d, link], 0


@njit(fastmath=True, cache=True)
def _su3_plaquette_plane(blocks, cen, nxt, Lz, site_mask, field, store, s0, Uf, pf_first, n_pf, pf_len):
    """Sum of Re tr U_P over the planes (mu, nu) and the sites of the lattice plane in blocks[cen].

    blocks (slots, D, 18, (Lz + 2) W): the plane itself in slot cen, its x0 + 1 neighbour in slot
    nxt, its neighbour in y direction d (1 <= d < D - 2) in slot 1 + d. field (P, V) gets
    Re tr U_P / 3 if store; s0 is the plane's first site; site_mask (Lz W) is 1 at the positions
    of sites and 0 at the halo columns.
    While it computes, it prefetches n_pf ranges of pf_len float64 each of Uf (starting at the
    flat indices pf_first[:n_pf]: the links the next planes' transpositions will read), spread
    evenly over its (block, plane) steps so that the loads overlap the arithmetic.
    Flops per site and plane: 2 matrix products (2 x 198) + Re tr(A B^+) (18 mul + 17 add) = 431.
    """
    D = blocks.shape[1]
    W = blocks.shape[3] // (Lz + 2)
    L = W - 2
    npos = Lz * W
    n_planes = D * (D - 1) // 2
    vals = np.empty((n_planes, npos))  # Re tr U_P at every position, halo columns included
    acc = 0.0
    n_steps = ((npos + BLOCK - 1) // BLOCK) * n_planes
    step = 0  # (block, plane) steps done
    # blocks of positions outermost: the operands of one block stay in L1/L2 while every (mu, nu)
    # reads them
    for t0 in range(0, npos, BLOCK):
        n = min(BLOCK, npos - t0)
        p = 0
        for mu in range(D):
            for nu in range(mu + 1, D):
                _prefetch_share(Uf, pf_first, n_pf, pf_len, step, n_steps)
                step += 1
                A = blocks[cen, mu]  # U_mu(x)
                C = blocks[cen, nu]  # U_nu(x)
                B1, off1 = _forward_block(blocks, cen, nxt, mu, nu, D, W)  # U_nu(x+mu)
                C2, off2 = _forward_block(blocks, cen, nxt, nu, mu, D, W)  # U_mu(x+nu)
                c0, c1, c2 = _first_column(t0, 0, W), _first_column(t0, off1, W), _first_column(t0, off2, W)
                cm = min(max(t0, 0), 1 << 40)  # see _first_column
                row = vals[p]
                for i in range(n):
                    val = su3_re_trace_mul_adj(
                        su3_mul(soa3_load(A, i + c0), soa3_load(B1, i + c1)),
                        su3_mul(soa3_load(C, i + c0), soa3_load(C2, i + c2)),
                    )
                    row[i + cm] = val
                    acc += val * site_mask[i + cm]  # the halo columns between rows do not count
                p += 1
    if store:  # keep the sites, drop the halo columns: contiguous copies of L values
        for p in range(n_planes):
            for z in range(Lz):
                for i in range(L):
                    field[p, s0 + z * L + i] = vals[p, z * W + 1 + i] * (1.0 / 3.0)
    return acc


@njit(nogil=True, cache=True)
def _su3_plaquette(Uf, yf, L0, Lz, L, per_plane, field, store, partial, start, stop):
    """SU(3) version of sun._plaquette_generic on the (B, D, V, 18) float64 view of the links.

    The plaquettes read forward neighbours only, so each task walks one lattice plane (b, y) along
    x0 (a range of per_plane-th of L0) with a ring of two transposed planes (x0, x0 + 1), and
    transposes the x0 plane's neighbours in the y directions into slots of their own (without the
    link U_d, which no plaquette at x reads). This kernel runs the tasks ``start <= c < stop``. That is about 1.75 transpositions per link in 4D
    instead of one, but the blocks of one task (3 planes, ~0.5 MB at L = 16) stay in L2, which is
    what the plaquette, with only 2586 flops per 576 bytes of links per site, needs.
    """
    B, D, V, _ = Uf.shape
    Ys = V // (L0 * Lz * L)
    W = L + 2
    site_mask = np.zeros(Lz * W)
    for z in range(Lz):
        site_mask[z * W + 1 : z * W + 1 + L] = 1.0
    for c in range(start, stop):  # tasks (b, plane, range of x0); partial[c] = the task's sum
        b = c // (Ys * per_plane)
        pl = (c // per_plane) % Ys
        k = c % per_plane
        t0, t1 = k * L0 // per_plane, (k + 1) * L0 // per_plane
        blocks = np.empty((max(D - 1, 2), D, 18, (Lz + 2) * W))
        _fill_plane(Uf, b, t0 % L0, pl, Ys, Lz, False, -1, blocks[0])
        acc = 0.0
        pf_first = np.empty(D * max(D - 2, 1), dtype=np.int64)
        plane_len = Lz * L * 18
        for x0 in range(t0, t1):
            cen = (x0 - t0) % 2
            nxt = 1 - cen
            _fill_plane(Uf, b, (x0 + 1) % L0, pl, Ys, Lz, False, -1, blocks[nxt])
            for d in range(1, D - 2):
                _fill_plane(Uf, b, x0, yf[pl, d - 1], Ys, Lz, False, d, blocks[1 + d])
            n_pf = 0
            if x0 + 1 < t1:  # the planes the next step transposes
                for mu in range(D):
                    pf_first[n_pf] = _plane_start(b, mu, (x0 + 2) % L0, pl, D, V, Ys, Lz, L)
                    n_pf += 1
                for d in range(1, D - 2):
                    for mu in range(D):
                        if mu != d:
                            pf_first[n_pf] = _plane_start(b, mu, x0 + 1, yf[pl, d - 1], D, V, Ys, Lz, L)
                            n_pf += 1
            acc += _su3_plaquette_plane(
                blocks, cen, nxt, Lz, site_mask, field[b], store, (x0 * Ys + pl) * Lz * L, Uf, pf_first, n_pf, plane_len
            )
        partial[c] = acc


@njit(fastmath=True, cache=True)
def _su3_staples_plane(ring, j, pl, yf, yb, Lz, scale, want_force, out, s0):
    """Staple sums (or forces) of the D links at each site of plane pl of slab j, into out (D, V, 18).

    Flops per link and direction nu != mu: 4 matrix products (4 x 198) + 2 matrix sums (2 x 18) = 828;
    the force adds U A (198) and the scaled TA projection (21) per link.
    """
    D = ring.shape[2]
    W = ring.shape[4] // (Lz + 2)
    L = W - 2
    npos = Lz * W
    # Accumulators allocated here, with a compile-time row stride: LLVM then knows that their 18
    # rows do not overlap and vectorises the position loop (it does not for arrays passed in,
    # whose stride it cannot see).
    S = np.empty((18, BLOCK + 8))
    G = np.empty((18, BLOCK + 8))
    # blocks outermost: the operands of one block (all links of the few planes it touches) stay
    # in L2 while every (mu, nu) reads them
    for t0 in range(0, npos, BLOCK):
        n = min(BLOCK, npos - t0)
        for mu in range(D):
            dj1, pl1, off1 = _step(0, pl, 0, mu, 1, yf, yb, D, W)  # x + mu
            Umu = ring[_slot(j, 0), pl, mu]
            S[:, :n] = 0.0
            for nu in range(D):
                if nu == mu:
                    continue
                dj2, pl2, off2 = _step(0, pl, 0, nu, 1, yf, yb, D, W)  # x + nu
                dj3, pl3, off3 = _step(0, pl, 0, nu, -1, yf, yb, D, W)  # x - nu
                dj4, pl4, off4 = _step(dj1, pl1, off1, nu, -1, yf, yb, D, W)  # x + mu - nu
                P1 = ring[_slot(j, dj1), pl1, nu]  # U_nu(x+mu)
                P2 = ring[_slot(j, dj2), pl2, mu]  # U_mu(x+nu)
                P3 = ring[_slot(j, 0), pl, nu]  # U_nu(x)
                Q1 = ring[_slot(j, dj4), pl4, nu]  # U_nu(x+mu-nu)
                Q2 = ring[_slot(j, dj3), pl3, mu]  # U_mu(x-nu)
                Q3 = ring[_slot(j, dj3), pl3, nu]  # U_nu(x-nu)
                c0, c1, c2 = _first_column(t0, 0, W), _first_column(t0, off1, W), _first_column(t0, off2, W)
                c3, c4 = _first_column(t0, off3, W), _first_column(t0, off4, W)
                for i in range(n):
                    up = su3_mul(
                        su3_mul(soa3_load(P1, i + c1), su3_adj(soa3_load(P2, i + c2))),
                        su3_adj(soa3_load(P3, i + c0)),
                    )
                    lo = su3_mul(
                        su3_adj(su3_mul(soa3_load(Q2, i + c3), soa3_load(Q1, i + c4))),
                        soa3_load(Q3, i + c3),
                    )
                    soa3_add_store(S, i, su3_add(up, lo))
            R = S
            if want_force:
                c0 = _first_column(t0, 0, W)
                for i in range(n):
                    m = su3_mul(soa3_load(Umu, i + c0), soa3_load(S, i))
                    soa3_store(G, i, su3_traceless_antihermitian(m, scale))
                R = G
            # keep the sites, drop the halo columns between rows
            z = t0 // W
            col = t0 - z * W - 1
            for i in range(n):
                if 0 <= col < L:
                    dst = out[mu, s0 + z * L + col]
                    for k in range(18):
                        dst[k] = R[k, i]
                col += 1
                if col == L + 1:
                    col = -1
                    z += 1


@njit(nogil=True, cache=True)
def _su3_staples(Uf, yf, yb, L0, Lz, L, per_b, scale, want_force, out, start, stop):
    """SU(3) version of sun._staples_chunk for the tasks ``start <= c < stop`` (ranges of slabs, per_b
    per configuration); ``out`` is the (B, D, V, 18) float64 view of the result."""
    B, D, V, _ = Uf.shape
    Ys = V // (L0 * Lz * L)
    W = L + 2
    for c in range(start, stop):
        b, t0, t1 = _chunk_slabs(c, per_b, L0)
        ring = np.empty((3, Ys, D, 18, (Lz + 2) * W))
        _fill_slab(Uf, b, (t0 - 1) % L0, Lz, True, ring[_slot(-1, 0)])
        _fill_slab(Uf, b, t0 % L0, Lz, True, ring[_slot(0, 0)])
        for j in range(t1 - t0):
            _fill_slab(Uf, b, (t0 + j + 1) % L0, Lz, True, ring[_slot(j, 1)])
            for pl in range(Ys):
                _su3_staples_plane(ring, j, pl, yf, yb, Lz, scale, want_force, out[b], ((t0 + j) * Ys + pl) * Lz * L)


def _su3_geometry(shape, B):
    """Neighbour tables of the y lattice, L0, Lz, L and the number of chunks per configuration."""
    D = len(shape)
    if D > 3:
        yf, yb = neighbour_table(shape[1:-2])
    else:  # no y coordinates: one plane per slab
        yf = yb = np.zeros((1, 0), dtype=np.int64)
    L0, L = shape[0], shape[-1]
    Lz = shape[-2] if D > 2 else 1
    # enough chunks to keep every thread busy; each chunk re-transposes one or two slabs
    per_b = max(1, min(L0, -(-get_num_threads() // B)))
    return yf, yb, L0, Lz, L, per_b


def _plaquette_tasks_per_plane(shape, B):
    """Tasks per lattice plane (b, y) of _su3_plaquette: enough to keep every thread busy."""
    planes_per_slab = int(np.prod(shape[1:-2])) if len(shape) > 3 else 1
    return max(1, min(shape[0], -(-get_num_threads() // (B * planes_per_slab))))


def _as_real_view(Uc):
    """(B, D, V, 3, 3) complex128 -> (B, D, V, 18) float64 view (re, im interleaved), no copy."""
    return Uc.view(np.float64).reshape(Uc.shape[:3] + (18,))


# ----------------------------------------------------------------------------- entry points


def plaquette_sums(links, shape, field, store, sums, *, tasks_per_plane=None):
    """``sums[b] = sum_{x, mu<nu} Re tr U_P(x) / 3``; if ``store``, ``field[b, p, s] = Re tr U_P(x) / 3``.

    links: complex128 ``(B, D, V, 3, 3)``, C-contiguous; shape: the lattice shape (product V);
    field: float64 ``(B, n_planes, V)`` (planes in the order of :func:`latticeml.lattice.planes`),
    or any float64 3-d array if not ``store``; sums: float64 ``(B,)``. ``tasks_per_plane`` cuts
    each lattice plane's walk along x0 into that many tasks (default: enough to keep every thread
    busy; the tests try every cut).
    """
    B = links.shape[0]
    yf, _, L0, Lz, L, _ = _su3_geometry(shape, B)
    if tasks_per_plane is None:
        tasks_per_plane = _plaquette_tasks_per_plane(shape, B)
    ntask = B * (links.shape[2] // (L0 * Lz * L)) * tasks_per_plane
    partial = np.zeros(ntask)
    run_chunks(
        "sun", ntask, _su3_plaquette, _as_real_view(links), yf, L0, Lz, L, tasks_per_plane, field, store, partial,
        size=B * links.shape[2], per_thread=1,
    )
    sums[:] = partial.reshape(B, -1).sum(axis=1) * (1.0 / 3.0)


def staples_or_force(links, shape, scale, want_force, out, *, chunks_per_config=None):
    """``out = A_mu(x)``, or ``scale * TA(U_mu(x) A_mu(x))`` if ``want_force`` (sun's module docstring).

    links and out: complex128 ``(B, D, V, 3, 3)``, C-contiguous; shape: the lattice shape.
    ``chunks_per_config`` cuts each configuration into that many ranges of slabs (default: enough
    to keep every thread busy; the tests try every cut).
    """
    B = links.shape[0]
    yf, yb, L0, Lz, L, per_b = _su3_geometry(shape, B)
    if chunks_per_config is not None:
        per_b = chunks_per_config
    run_chunks(
        "sun", B * per_b, _su3_staples, _as_real_view(links), yf, yb, L0, Lz, L, per_b, float(scale), bool(want_force),
        _as_real_view(out), size=B * links.shape[2], per_thread=1,
    )
