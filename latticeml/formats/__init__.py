"""Gauge configuration files other lattice codes read and write: ILDG (LIME) and NERSC.

    from latticeml import formats
    formats.write_gauge("cfg.lime", U)                 # ILDG, big-endian float64, SciDAC checksum
    formats.write_gauge("cfg.nersc", U, datatype="4D_SU3_GAUGE", precision=32, endian="little")
    U, info = formats.read_gauge("cfg.lime")           # format found from the file's first bytes

``U`` is our 4D SU(3) layout, complex128 ``(4, Lt, Lx, Ly, Lz, 3, 3)`` with axis 0 = time and
direction 0 = time; the files store x fastest, t slowest and directions in the order x, y, z, t
(``latticeml/formats/_layout.py`` spells out the index mapping). Both formats define SU(3) in four
dimensions only: other groups and dimensions are refused with a ValueError that says so.

Modules: :mod:`.lime` (the record container), :mod:`.ildg` (ILDG records in LIME, SciDAC
checksum), :mod:`.nersc` (header + binary; CHECKSUM, LINK_TRACE and PLAQUETTE verified). A file
that is truncated, corrupt, of an unknown datatype or whose header disagrees with its data raises
:class:`GaugeFormatError` (a ValueError) naming what disagrees; nothing is returned half-read.
"""

from __future__ import annotations

from pathlib import Path

from ._layout import GaugeFormatError
from .ildg import read_ildg, write_ildg
from .lime import is_lime
from .nersc import read_nersc, write_nersc

__all__ = ["GaugeFormatError", "SUFFIXES", "detect_format", "format_for_path", "read_gauge", "write_gauge",
           "read_ildg", "write_ildg", "read_nersc", "write_nersc"]

#: file suffix -> format, for writing (reading looks at the file's first bytes)
SUFFIXES = {".lime": "ildg", ".ildg": "ildg", ".nersc": "nersc"}


def format_for_path(path) -> str | None:
    """``"ildg"`` / ``"nersc"`` for a path ending in one of :data:`SUFFIXES`, else None."""
    return SUFFIXES.get(Path(path).suffix.lower())


def detect_format(path) -> str | None:
    """``"ildg"`` (LIME magic number), ``"nersc"`` (``BEGIN_HEADER``) or None, from the file's first bytes."""
    if is_lime(path):
        return "ildg"
    with open(path, "rb") as handle:
        return "nersc" if handle.read(12) == b"BEGIN_HEADER" else None


def read_gauge(path, *, verify: bool = True):
    """``(links, info)`` from an ILDG or NERSC file (see :func:`.ildg.read_ildg`, :func:`.nersc.read_nersc`)."""
    kind = detect_format(path)
    if kind == "ildg":
        return read_ildg(path, verify=verify)
    if kind == "nersc":
        return read_nersc(path, verify_header=verify)
    raise GaugeFormatError(f"{path}: neither an ILDG/LIME file (magic 0x456789ab) nor a NERSC file (BEGIN_HEADER)")


def write_gauge(path, links, *, format: str | None = None, **options):
    """Write ``links`` as ``format`` ("ildg" or "nersc"; default from the suffix .lime/.ildg/.nersc).

    ``options`` go to :func:`.ildg.write_ildg` (precision, metadata, lfn) or
    :func:`.nersc.write_nersc` (datatype, precision, endian, ensemble_id, ...).
    """
    kind = format or format_for_path(path)
    if kind == "ildg":
        return write_ildg(path, links, **options)
    if kind == "nersc":
        return write_nersc(path, links, **options)
    raise ValueError(f"unknown gauge file format {kind!r} for {path}: use format='ildg' or 'nersc', or a "
                     f"{', '.join(SUFFIXES)} suffix")
