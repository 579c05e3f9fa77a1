"""What ILDG and NERSC files share: the site and direction order, and the checks on reading.

Index order (the mapping both formats need)
-------------------------------------------
latticeml stores 4D SU(3) links as complex128 ``U[mu, t, x, y, z, a, b]`` of shape
``(4, L0, L1, L2, L3, 3, 3)``: direction first, then the sites with lattice axis 0 = time
(``L0 = Lt``, ``L1 = Lx``, ``L2 = Ly``, ``L3 = Lz``), then the colour row ``a`` and column ``b``;
direction ``mu = 0`` is time and ``mu = 1, 2, 3`` are x, y, z (DESIGN.md).

ILDG (``ildg-binary-data``) and NERSC files store the same numbers site by site, x running fastest
and t slowest, and at each site the four links in the order x, y, z, t, each a row-major 3 x 3
(NERSC ``4D_SU3_GAUGE``: only its first two rows) of complex numbers (real, imaginary)::

    file[t, z, y, x, nu, a, b]      nu = 0, 1, 2, 3  <->  x, y, z, t
    U[mu, t, x, y, z, a, b] = file[t, z, y, x, (mu - 1) mod 4, a, b]

so the file's ``DIMENSION_1..4`` / ``lx, ly, lz, lt`` are our ``L1, L2, L3, L0``. The site
index of the SciDAC checksum is the file's lexicographic rank ``x + Lx (y + Ly (z + Lz t))``.

Checks on reading
-----------------
:func:`verify` compares a header value (plaquette, link trace) with the one recomputed from the
links, within what the header's printed digits and the data's precision allow, and raises
:class:`GaugeFormatError` naming both numbers when they disagree.
"""

from __future__ import annotations

import decimal

import numpy as np

__all__ = ["GaugeFormatError", "to_file_order", "from_file_order", "link_trace", "plaquette", "verify", "check_su3_4d"]

#: file direction nu (x, y, z, t) for each of our directions mu (t, x, y, z)
_FILE_DIRECTION = (3, 0, 1, 2)


class GaugeFormatError(ValueError):
    """A gauge configuration file that cannot be read as it claims: the message says what disagrees."""


def check_su3_4d(links, what: str) -> np.ndarray:
    """``links`` as complex128 ``(4, Lt, Lx, Ly, Lz, 3, 3)``; anything else is a ValueError naming the format."""
    links = np.asarray(links)
    if links.dtype.kind != "c" or links.ndim != 7 or links.shape[0] != 4 or links.shape[-2:] != (3, 3):
        raise ValueError(
            f"{what} files hold 4D SU(3) gauge fields (the format defines no other group or dimension): links must "
            f"be complex (4, Lt, Lx, Ly, Lz, 3, 3), got dtype {links.dtype} shape {links.shape}"
        )
    return np.ascontiguousarray(links, dtype=np.complex128)


def to_file_order(links: np.ndarray) -> np.ndarray:
    """``(4, Lt, Lx, Ly, Lz, N, N)`` -> the files' ``(Lt, Lz, Ly, Lx, 4, N, N)`` (a copy, C order)."""
    reordered = links[list(_FILE_DIRECTION.index(nu) for nu in range(4))]  # file direction nu <- our mu
    return np.ascontiguousarray(reordered.transpose(1, 4, 3, 2, 0, 5, 6))


def from_file_order(data: np.ndarray) -> np.ndarray:
    """The files' ``(Lt, Lz, Ly, Lx, 4, N, N)`` -> ``(4, Lt, Lx, Ly, Lz, N, N)`` complex128 (C order)."""
    ours = data.transpose(4, 0, 3, 2, 1, 5, 6)[list(_FILE_DIRECTION)]
    return np.ascontiguousarray(ours, dtype=np.complex128)


def link_trace(links: np.ndarray) -> float:
    """NERSC ``LINK_TRACE``: ``<Re tr U / N>`` over all sites and directions."""
    N = links.shape[-1]
    return float(np.einsum("...aa->...", links).real.mean() / N)


def plaquette(links: np.ndarray) -> float:
    """NERSC ``PLAQUETTE``: ``<Re tr U_P / N>`` over all sites and planes (:func:`latticeml.observables.loops.plaquette`)."""
    from ..observables.loops import plaquette as mean_plaquette

    return float(mean_plaquette(links))


def printed_resolution(text: str) -> float:
    """Half a unit in the last printed digit of ``text`` (``"0.5876"`` -> 5e-5): the rounding a header carries."""
    exponent = decimal.Decimal(text.strip()).as_tuple().exponent
    return 0.5 * 10.0 ** int(exponent) if isinstance(exponent, int) else 0.0


def verify(name: str, header_text: str, computed: float, precision: int, path) -> None:
    """Raise :class:`GaugeFormatError` unless the header's ``name`` agrees with ``computed``.

    Allowed: the header's own rounding (half its last printed digit) plus the data's precision
    (1e-6 for float32 links, whose products carry ~1e-7 relative rounding; 1e-12 for float64).
    """
    try:
        stated = float(header_text)
    except ValueError:
        raise GaugeFormatError(f"{path}: the header's {name} = {header_text!r} is not a number") from None
    tolerance = printed_resolution(header_text) + (1e-6 if precision == 32 else 1e-12)
    if not abs(stated - computed) <= tolerance:
        raise GaugeFormatError(
            f"{path}: the header's {name} {header_text} disagrees with the {computed:.12g} of the links read "
            f"(difference {abs(stated - computed):.3g}, allowed {tolerance:.2g}): the file is corrupt or was written "
            "with another index order"
        )
