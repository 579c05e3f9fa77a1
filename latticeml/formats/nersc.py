"""NERSC gauge configurations (the "Gauge Connection" archive format): a text header, then the links.

Specification: the NERSC / Gauge Connection archive format note (J. Kim et al., "QCD archive
format", NERSC), as written and read by MILC (``io_lat.c``, ``nersc_cksum.c``), Grid
(``NerscIO.h``) and Chroma. The file is::

    BEGIN_HEADER
    HDR_VERSION = 1.0
    DATATYPE = 4D_SU3_GAUGE_3x3          (or 4D_SU3_GAUGE: the first two rows of each matrix)
    DIMENSION_1 = Lx                     (... DIMENSION_4 = Lt)
    CHECKSUM = 8f3a21c0                  (hexadecimal)
    LINK_TRACE = 0.0123456789            (<Re tr U / 3> over all links)
    PLAQUETTE = 0.5876543210             (<Re tr U_P / 3> over all plaquettes)
    FLOATING_POINT = IEEE64BIG           (IEEE32, IEEE32BIG, IEEE32LITTLE, IEEE64BIG, IEEE64LITTLE)
    ... (BOUNDARY_i, ENSEMBLE_ID, SEQUENCE_NUMBER, CREATOR, ... : kept, not checked)
    END_HEADER
    <binary links>

Binary layout: as ILDG (``latticeml/formats/_layout.py``: x fastest, t slowest, directions x, y,
z, t, row-major matrices of (real, imaginary) pairs), in the endianness of ``FLOATING_POINT``. For
``4D_SU3_GAUGE`` the third row is ``conj(row0 x row1)`` (unitarity with det 1).

CHECKSUM: the low 32 bits of the unsigned sum of the stored numbers, each float read as one
(float32) or two (float64, low word first) 32-bit words of its little-endian representation --
i.e. of the data after conversion to a little-endian host's byte order, over the matrices as
stored (two rows for ``4D_SU3_GAUGE``). The format defines SU(3) in four dimensions only.

On reading, the data length must match the header, and (with ``verify``) the checksum, the link
trace and the plaquette must agree with the data; otherwise :class:`~latticeml.formats.GaugeFormatError` names the
quantity and both values, and nothing is returned. float32 files are brought back onto SU(3)
(:func:`latticeml.groups.reunitarize`) after the checks.
"""

from __future__ import annotations

import datetime
import json
import re

import numpy as np

from ._layout import GaugeFormatError, check_su3_4d, from_file_order, link_trace, plaquette, to_file_order, verify

__all__ = ["DATATYPES", "write_nersc", "read_nersc", "nersc_checksum", "read_header"]

#: DATATYPE -> rows stored per matrix
DATATYPES = {"4D_SU3_GAUGE_3x3": 3, "4D_SU3_GAUGE": 2}
_FLOATING_POINT = {"IEEE32": (32, ">"), "IEEE32BIG": (32, ">"), "IEEE32LITTLE": (32, "<"),
                   "IEEE64BIG": (64, ">"), "IEEE64LITTLE": (64, "<")}
#: a header longer than this is not a NERSC header (it keeps a binary file from being read as text)
MAX_HEADER = 1 << 16


def nersc_checksum(values: np.ndarray) -> int:
    """NERSC CHECKSUM of ``values`` (float32 or float64, any byte order): sum of little-endian uint32 words mod 2^32."""
    words = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).view("<u4")
    return int(words.sum(dtype=np.uint64) & np.uint64(0xFFFFFFFF))


def reconstruct_third_row(two_rows: np.ndarray) -> np.ndarray:
    """``(..., 2, 3)`` first two rows of SU(3) matrices -> ``(..., 3, 3)`` with row 2 = conj(row0 x row1)."""
    third = np.conj(np.cross(two_rows[..., 0, :], two_rows[..., 1, :]))
    return np.concatenate([two_rows, third[..., None, :]], axis=-2)


def read_header(path) -> tuple[dict, int]:
    """``(header dict, offset of the binary data)`` of the NERSC file ``path``."""
    with open(path, "rb") as handle:
        head = handle.read(MAX_HEADER)
    if not head.startswith(b"BEGIN_HEADER"):
        raise GaugeFormatError(f"{path}: not a NERSC file (it does not start with BEGIN_HEADER)")
    end = re.search(rb"\nEND_HEADER[ \t\r]*\n", head)
    if end is None:
        raise GaugeFormatError(f"{path}: the NERSC header has no END_HEADER line in its first {MAX_HEADER} bytes "
                               "(truncated or not a NERSC file)")
    header = {}
    for line in head[:end.start()].decode("ascii", "replace").splitlines()[1:]:
        if "=" in line:
            key, value = line.split("=", 1)
            header[key.strip()] = value.strip()
    return header, end.end()


def write_nersc(path, links, *, datatype: str = "4D_SU3_GAUGE_3x3", precision: int = 64, endian: str = "big",
                ensemble_id: str = "latticeml", sequence_number: int = 0, metadata: dict | None = None,
                extra: dict | None = None):
    """Write 4D SU(3) ``links`` ``(4, Lt, Lx, Ly, Lz, 3, 3)`` as a NERSC file.

    ``datatype`` 4D_SU3_GAUGE_3x3 (full matrices) or 4D_SU3_GAUGE (two rows); ``precision`` 32 or 64;
    ``endian`` "big" or "little". ``metadata`` (JSON-able: theory, couplings) goes into one header line
    ``LATTICEML_METADATA = {json}``; ``extra``: further header lines (``KEY = value``, no newlines).
    """
    links = check_su3_4d(links, "NERSC")
    if datatype not in DATATYPES:
        raise ValueError(f"NERSC DATATYPE must be one of {', '.join(DATATYPES)}, got {datatype!r}")
    if precision not in (32, 64) or endian not in ("big", "little"):
        raise ValueError(f"NERSC data are IEEE32/IEEE64, big or little endian; got precision {precision!r}, endian {endian!r}")
    Lt, Lx, Ly, Lz = links.shape[1:5]
    dtype = np.dtype(f"{'>' if endian == 'big' else '<'}f{precision // 8}")
    data = to_file_order(links)[..., :DATATYPES[datatype], :]  # (Lt, Lz, Ly, Lx, 4, rows, 3)
    numbers = data.view(np.float64).astype(dtype)
    stored = numbers.astype(np.float64).view(np.complex128)  # what a reader gets back, for the header values
    full = reconstruct_third_row(stored) if DATATYPES[datatype] == 2 else stored
    ours = from_file_order(full)
    header = {
        "HDR_VERSION": "1.0", "DATATYPE": datatype, "STORAGE_FORMAT": "1.0",
        "DIMENSION_1": Lx, "DIMENSION_2": Ly, "DIMENSION_3": Lz, "DIMENSION_4": Lt,
        "LINK_TRACE": f"{link_trace(ours):.15g}", "PLAQUETTE": f"{plaquette(ours):.15g}",
        **{f"BOUNDARY_{i}": "PERIODIC" for i in range(1, 5)},
        "CHECKSUM": f"{nersc_checksum(numbers):08x}",
        "ENSEMBLE_ID": ensemble_id, "ENSEMBLE_LABEL": ensemble_id, "SEQUENCE_NUMBER": int(sequence_number),
        "CREATOR": "latticeml", "CREATION_DATE": datetime.datetime.now(datetime.timezone.utc).strftime("%a %b %d %H:%M:%S %Y UTC"),
        "FLOATING_POINT": f"IEEE{precision}{endian.upper()}",
    }
    extra = dict(extra or {})
    if metadata:
        extra["LATTICEML_METADATA"] = json.dumps(metadata, separators=(",", ":"))
    for key, value in extra.items():
        if "\n" in f"{key}{value}" or "=" in str(key):
            raise ValueError(f"a NERSC header line is KEY = value on one line; got {key!r} = {value!r}")
        header[str(key)] = value
    text = "BEGIN_HEADER\n" + "".join(f"{key} = {value}\n" for key, value in header.items()) + "END_HEADER\n"
    from ..io import atomic_write

    with atomic_write(path) as handle:
        handle.write(text.encode("ascii"))
        handle.write(numbers.tobytes())
    return path


def read_nersc(path, *, verify_header: bool = True) -> tuple[np.ndarray, dict]:
    """Read a NERSC file: ``(links (4, Lt, Lx, Ly, Lz, 3, 3) complex128, info)``.

    ``info``: ``format`` ("nersc"), ``metadata`` (what latticeml stored, or {}), ``datatype``, ``precision``, ``endian``, ``shape`` (our
    ``(Lt, Lx, Ly, Lz)``) and ``header`` (every header line as text). With ``verify_header`` the
    CHECKSUM, LINK_TRACE and PLAQUETTE lines must agree with the data (those present; CHECKSUM is required).
    """
    header, offset = read_header(path)
    for key in ("DATATYPE", "DIMENSION_1", "DIMENSION_2", "DIMENSION_3", "DIMENSION_4", "FLOATING_POINT"):
        if key not in header:
            raise GaugeFormatError(f"{path}: the NERSC header has no {key} line")
    datatype = header["DATATYPE"]
    if datatype not in DATATYPES:
        raise GaugeFormatError(f"{path}: unknown NERSC DATATYPE {datatype!r}; this reader knows {', '.join(DATATYPES)}")
    fp = header["FLOATING_POINT"].upper()
    if fp not in _FLOATING_POINT:
        raise GaugeFormatError(f"{path}: unknown FLOATING_POINT {header['FLOATING_POINT']!r}; "
                               f"this reader knows {', '.join(_FLOATING_POINT)}")
    precision, order = _FLOATING_POINT[fp]
    try:
        Lx, Ly, Lz, Lt = (int(header[f"DIMENSION_{i}"]) for i in range(1, 5))
    except ValueError as exc:
        raise GaugeFormatError(f"{path}: a DIMENSION_i line is not an integer ({exc})") from None
    if min(Lx, Ly, Lz, Lt) < 1:
        raise GaugeFormatError(f"{path}: the header gives extents {Lx} {Ly} {Lz} {Lt}")
    rows = DATATYPES[datatype]
    expected = Lt * Lz * Ly * Lx * 4 * rows * 3 * 2 * precision // 8
    with open(path, "rb") as handle:
        handle.seek(offset)
        binary = handle.read(expected + 1)
    if len(binary) != expected:
        what = "truncated" if len(binary) < expected else "longer than its header says"
        raise GaugeFormatError(f"{path}: {what}: {datatype} {Lx}x{Ly}x{Lz}x{Lt} at {precision} bits needs {expected} "
                               f"bytes of data after the header, the file has {len(binary) if len(binary) < expected else 'more'}")
    numbers = np.frombuffer(binary, dtype=f"{order}f{precision // 8}")
    stored = numbers.astype(np.float64).view(np.complex128).reshape(Lt, Lz, Ly, Lx, 4, rows, 3)
    links = from_file_order(reconstruct_third_row(stored) if rows == 2 else stored)
    if verify_header:
        if "CHECKSUM" not in header:
            raise GaugeFormatError(f"{path}: the NERSC header has no CHECKSUM line")
        try:
            stated = int(header["CHECKSUM"], 16)
        except ValueError:
            raise GaugeFormatError(f"{path}: CHECKSUM {header['CHECKSUM']!r} is not hexadecimal") from None
        found = nersc_checksum(numbers)
        if found != stated:
            raise GaugeFormatError(f"{path}: NERSC checksum mismatch: the header states {stated:x}, the data give "
                                   f"{found:x} (corrupt file, or data in another byte order than {fp})")
        if "LINK_TRACE" in header:
            verify("LINK_TRACE", header["LINK_TRACE"], link_trace(links), precision, path)
        if "PLAQUETTE" in header:
            verify("PLAQUETTE", header["PLAQUETTE"], plaquette(links), precision, path)
    if precision == 32:
        from ..groups import reunitarize

        links = reunitarize(links)
    try:
        metadata = json.loads(header.get("LATTICEML_METADATA", "{}"))
    except json.JSONDecodeError:
        metadata = {}
    info = {"format": "nersc", "metadata": metadata, "datatype": datatype, "precision": precision,
            "endian": "big" if order == ">" else "little", "shape": (Lt, Lx, Ly, Lz), "header": header}
    return links, info
