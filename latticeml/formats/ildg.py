"""ILDG gauge configurations: SU(3) links in a LIME file, with the SciDAC checksum.

Specification: ILDG Metadata Working Group, "ILDG file format" (2007), and the QIO/SciDAC
record conventions (C. DeTar et al., USQCD, QIO user's guide; the checksum of ``dml.c``).

Records written (three messages, as QIO/Chroma write them; a reader needs only the ``ildg-*`` ones)::

    scidac-private-file-xml   <scidacFile>: spacetime 4, dims "Lx Ly Lz Lt", volfmt 0 (one file)
    scidac-file-xml           free user XML: here <latticeml>JSON</latticeml> with theory and couplings
    scidac-private-record-xml <scidacRecord>: datatype, precision F/D, colors 3, typesize, datacount 4
    scidac-record-xml         free record XML (copy of the user XML)
    ildg-format               <ildgFormat>: field su3gauge, precision 32|64, lx, ly, lz, lt
    ildg-binary-data          the links, big-endian IEEE float32/float64 (layout below)
    scidac-checksum           <scidacChecksum>: suma, sumb (hex)
    ildg-data-lfn             the logical file name (only if one is given)

Binary layout (see ``latticeml/formats/_layout.py`` for the mapping to our ``(4, Lt, Lx, Ly, Lz, 3, 3)``):
sites with x fastest and t slowest, at each site the links in direction order x, y, z, t, each a
row-major 3 x 3 matrix of (real, imaginary) pairs. The ILDG format defines ``su3gauge`` in four
dimensions only, so SU(2) and other dimensions are refused with a message saying so.

SciDAC checksum (``DML_checksum_accum``): for the site of lexicographic rank ``r`` (x fastest),
``w = crc32(the site's bytes as stored)``, ``suma ^= rotl32(w, r mod 29)``, ``sumb ^= rotl32(w, r mod 31)``.

On reading, the binary record's length must match the ``ildg-format`` dimensions and precision,
and the checksum (when the file has one) must match the data; otherwise :class:`~latticeml.formats.GaugeFormatError`
says what disagrees, and nothing is returned. float32 files are rounded to ~1e-7, so their links
are brought back onto SU(3) (:func:`latticeml.groups.reunitarize`) after the checks.
"""

from __future__ import annotations

import json
import re
import zlib
from xml.sax.saxutils import escape, unescape

import numpy as np

from . import lime
from ._layout import GaugeFormatError, check_su3_4d, from_file_order, to_file_order

__all__ = ["write_ildg", "read_ildg", "scidac_checksum"]

_DTYPES = {32: ">f4", 64: ">f8"}


def scidac_checksum(site_bytes: np.ndarray) -> tuple[int, int]:
    """SciDAC ``(suma, sumb)`` of ``site_bytes``, a uint8 array ``(V, bytes per site)`` in file order."""
    crc = np.fromiter((zlib.crc32(row) for row in site_bytes), dtype=np.uint64, count=len(site_bytes))
    rank = np.arange(len(site_bytes), dtype=np.uint64)

    def folded(shift):
        rotated = ((crc << shift) | (crc >> (np.uint64(32) - shift))) & np.uint64(0xFFFFFFFF)
        return int(np.bitwise_xor.reduce(rotated)) if len(rotated) else 0

    return folded(rank % np.uint64(29)), folded(rank % np.uint64(31))


def _xml_value(text: str, tag: str, path, record: str) -> str:
    match = re.search(rf"<{tag}>\s*([^<]*?)\s*</{tag}>", text)
    if match is None:
        raise GaugeFormatError(f"{path}: the {record} record has no <{tag}>")
    return match[1]


def write_ildg(path, links, *, precision: int = 64, metadata: dict | None = None, lfn: str | None = None):
    """Write 4D SU(3) ``links`` ``(4, Lt, Lx, Ly, Lz, 3, 3)`` as an ILDG file (big-endian float64 or float32).

    ``metadata`` (JSON-able, e.g. theory and couplings) goes into the SciDAC file and record XML,
    ``lfn`` into an ``ildg-data-lfn`` record.
    """
    links = check_su3_4d(links, "ILDG")
    if precision not in _DTYPES:
        raise ValueError(f"ILDG precision is 32 or 64 (bits), got {precision!r}")
    Lt, Lx, Ly, Lz = links.shape[1:5]
    data = to_file_order(links).view(np.float64).astype(_DTYPES[precision])  # (Lt, Lz, Ly, Lx, 4, 3, 3, 2)
    site_bytes = data.reshape(Lt * Lz * Ly * Lx, -1).view(np.uint8)
    suma, sumb = scidac_checksum(site_bytes)
    user = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><latticeml>" + escape(json.dumps(metadata or {})) + "</latticeml>"
    header = '<?xml version="1.0" encoding="UTF-8"?>'
    messages = [
        [("scidac-private-file-xml",
          f"{header}<scidacFile><version>1.1</version><spacetime>4</spacetime><dims>{Lx} {Ly} {Lz} {Lt} </dims>"
          "<volfmt>0</volfmt></scidacFile>".encode()),
         ("scidac-file-xml", user.encode())],
        [("scidac-private-record-xml",
          f"{header}<scidacRecord><version>1.1</version><date></date><recordtype>0</recordtype>"
          f"<datatype>QDP_{'F' if precision == 32 else 'D'}3_ColorMatrix</datatype><precision>{'F' if precision == 32 else 'D'}"
          f"</precision><colors>3</colors><spins>0</spins><typesize>{18 * precision // 8}</typesize>"
          "<datacount>4</datacount></scidacRecord>".encode()),
         ("scidac-record-xml", user.encode()),
         ("ildg-format",
          f'{header}<ildgFormat xmlns="http://www.lqcd.org/ildg" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
          'xsi:schemaLocation="http://www.lqcd.org/ildg filefmt.xsd"><version>1.0</version><field>su3gauge</field>'
          f"<precision>{precision}</precision><lx>{Lx}</lx><ly>{Ly}</ly><lz>{Lz}</lz><lt>{Lt}</lt></ildgFormat>".encode()),
         ("ildg-binary-data", data.tobytes()),
         ("scidac-checksum",
          f"{header}<scidacChecksum><version>1.0</version><suma>{suma:x}</suma><sumb>{sumb:x}</sumb></scidacChecksum>".encode())],
    ]
    if lfn is not None:
        messages.append([("ildg-data-lfn", lfn.encode())])
    return lime.write_records(path, messages)


def read_ildg(path, *, verify: bool = True) -> tuple[np.ndarray, dict]:
    """Read an ILDG file: ``(links (4, Lt, Lx, Ly, Lz, 3, 3) complex128, info)``.

    ``info``: ``format`` ("ildg"), ``precision``, ``shape`` (our ``(Lt, Lx, Ly, Lz)``), ``checksum``
    ("verified", or "absent" for a file without a ``scidac-checksum`` record), ``metadata`` (the JSON
    latticeml stored, or {}), ``lfn`` (or None). With ``verify`` the checksum is compared (and a
    mismatch raises :class:`~latticeml.formats.GaugeFormatError`).
    """
    records = {}
    for record in lime.read_records(path):
        records.setdefault(record.type, record.data)  # the first of each type (QIO puts one per file)
    for needed in ("ildg-format", "ildg-binary-data"):
        if needed not in records:
            raise GaugeFormatError(f"{path}: LIME file without an {needed!r} record, so not an ILDG gauge configuration"
                                   f" (records: {', '.join(records)})")
    fmt = records["ildg-format"].decode("utf-8", "replace")
    field = _xml_value(fmt, "field", path, "ildg-format")
    if field != "su3gauge":
        raise GaugeFormatError(f"{path}: unknown ILDG field {field!r}; ILDG defines su3gauge only")
    try:
        precision = int(_xml_value(fmt, "precision", path, "ildg-format"))
        Lx, Ly, Lz, Lt = (int(_xml_value(fmt, tag, path, "ildg-format")) for tag in ("lx", "ly", "lz", "lt"))
    except ValueError as exc:
        raise GaugeFormatError(f"{path}: the ildg-format record holds a value that is not an integer ({exc})") from None
    if precision not in _DTYPES:
        raise GaugeFormatError(f"{path}: unknown ILDG precision {precision}; ILDG defines 32 and 64")
    if min(Lx, Ly, Lz, Lt) < 1:
        raise GaugeFormatError(f"{path}: the ildg-format record gives extents lx={Lx} ly={Ly} lz={Lz} lt={Lt}")
    binary = records["ildg-binary-data"]
    expected = Lt * Lz * Ly * Lx * 4 * 18 * precision // 8
    if len(binary) != expected:
        raise GaugeFormatError(f"{path}: the ildg-binary-data record has {len(binary)} bytes, but lx={Lx} ly={Ly} lz={Lz} "
                               f"lt={Lt} at {precision}-bit precision need {expected}")
    data = np.frombuffer(binary, dtype=_DTYPES[precision]).reshape(Lt, Lz, Ly, Lx, 4, 3, 3, 2)
    checksum = "absent"
    if "scidac-checksum" in records:
        text = records["scidac-checksum"].decode("utf-8", "replace")
        try:
            stated = (int(_xml_value(text, "suma", path, "scidac-checksum"), 16),
                      int(_xml_value(text, "sumb", path, "scidac-checksum"), 16))
        except ValueError as exc:
            raise GaugeFormatError(f"{path}: the scidac-checksum record is not hexadecimal ({exc})") from None
        checksum = "unverified"
        if verify:
            found = scidac_checksum(np.frombuffer(binary, dtype=np.uint8).reshape(Lt * Lz * Ly * Lx, -1))
            if found != stated:
                raise GaugeFormatError(f"{path}: SciDAC checksum mismatch: the file states suma {stated[0]:x} sumb "
                                       f"{stated[1]:x}, the data give suma {found[0]:x} sumb {found[1]:x} (corrupt file)")
            checksum = "verified"
    links = from_file_order(data.astype(np.float64).view(np.complex128)[..., 0])
    if precision == 32:
        from ..groups import reunitarize

        links = reunitarize(links)
    metadata = {}
    user = records.get("scidac-file-xml", b"").decode("utf-8", "replace")
    match = re.search(r"<latticeml>(.*)</latticeml>", user, re.S)
    if match:
        try:
            metadata = json.loads(unescape(match[1]))
        except json.JSONDecodeError:
            metadata = {}
    lfn = records["ildg-data-lfn"].decode("utf-8", "replace") if "ildg-data-lfn" in records else None
    info = {"format": "ildg", "precision": precision, "shape": (Lt, Lx, Ly, Lz), "checksum": checksum,
            "metadata": metadata, "lfn": lfn}
    return links, info
