"""LIME files: the record container of ILDG and SciDAC (QIO) gauge configurations.

Specification: the c-lime library and its documentation (B. Joo, C. DeTar et al., USQCD SciDAC,
https://github.com/usqcd-software/c-lime, ``doc/lime_1.3.2.pdf``); ILDG file format note
(ILDG Metadata Working Group, "ILDG file format", 2007).

A LIME file is a sequence of records; each is a 144-byte header, the data, and zero bytes padding
the data to a multiple of 8::

    offset  size  field (all big-endian)
    0       4     magic number 0x456789AB
    4       2     LIME version (1)
    6       2     flags: bit 15 = MB (first record of a message), bit 14 = ME (last record)
    8       8     data length in bytes (without the padding)
    16      128   record type, ASCII, NUL-padded (e.g. "ildg-binary-data")

Records are grouped into messages (MB on the first, ME on the last record of each). Types are
free strings; readers pick the records they know and skip the others.

:func:`read_records` checks every header (magic, version, a length that fits in the file) before
returning anything, so a truncated or foreign file is refused whole; :func:`write_records` writes
atomically (:func:`latticeml.io.atomic_write`).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import NamedTuple

from ._layout import GaugeFormatError

__all__ = ["MAGIC", "LimeRecord", "is_lime", "read_records", "write_records"]

MAGIC = 0x456789AB
VERSION = 1
HEADER = struct.Struct(">IHHQ128s")  # magic, version, flags, data length, type
_MB, _ME = 0x8000, 0x4000


class LimeRecord(NamedTuple):
    """One LIME record: its type, its data, and whether it begins / ends a message."""

    type: str
    data: bytes
    message_begin: bool = False
    message_end: bool = False


def is_lime(path) -> bool:
    """Whether ``path`` starts with the LIME magic number."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    return len(head) == 4 and struct.unpack(">I", head)[0] == MAGIC


def _padded(n: int) -> int:
    return (n + 7) // 8 * 8


def read_records(path) -> list[LimeRecord]:
    """Every record of the LIME file ``path``, in file order (the whole file is read)."""
    blob = Path(path).read_bytes()
    records, offset = [], 0
    while offset < len(blob):
        if len(blob) - offset < HEADER.size:
            raise GaugeFormatError(f"{path}: truncated LIME file: {len(blob) - offset} bytes after record "
                                   f"{len(records)}, less than a {HEADER.size}-byte record header")
        magic, version, flags, length, kind = HEADER.unpack_from(blob, offset)
        if magic != MAGIC:
            raise GaugeFormatError(f"{path}: not a LIME file: magic number {magic:#010x} at byte {offset}, "
                                   f"expected {MAGIC:#010x}")
        if version != VERSION:
            raise GaugeFormatError(f"{path}: LIME version {version} at byte {offset}; this reader knows version {VERSION}")
        start = offset + HEADER.size
        if start + length > len(blob):
            name = kind.rstrip(b"\0").decode("ascii", "replace")
            raise GaugeFormatError(f"{path}: truncated LIME file: record {len(records)} ({name!r}) declares "
                                   f"{length} bytes of data, the file has {len(blob) - start} after its header")
        try:
            name = kind.rstrip(b"\0").decode("ascii")
        except UnicodeDecodeError:
            raise GaugeFormatError(f"{path}: record {len(records)} has a type that is not ASCII: {kind!r}") from None
        records.append(LimeRecord(name, blob[start:start + length], bool(flags & _MB), bool(flags & _ME)))
        offset = start + _padded(length)
    if not records:
        raise GaugeFormatError(f"{path}: empty file, no LIME records")
    return records


def encode_records(messages) -> bytes:
    """The bytes of a LIME file holding ``messages``, each a list of ``(type, data)`` records."""
    out = bytearray()
    for message in messages:
        for i, (kind, data) in enumerate(message):
            name = kind.encode("ascii")
            if len(name) > 128:
                raise ValueError(f"a LIME record type has at most 128 characters, got {kind!r}")
            flags = (_MB if i == 0 else 0) | (_ME if i == len(message) - 1 else 0)
            out += HEADER.pack(MAGIC, VERSION, flags, len(data), name)
            out += data
            out += bytes(_padded(len(data)) - len(data))
    return bytes(out)


def write_records(path, messages) -> Path:
    """Write ``messages`` (lists of ``(type, data)`` records) as the LIME file ``path``, atomically."""
    from ..io import atomic_write

    payload = encode_records(messages)
    with atomic_write(path) as handle:
        handle.write(payload)
    return Path(path)
