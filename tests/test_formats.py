"""ILDG (LIME) and NERSC gauge files: round trips, files from independent reference writers, broken files.

The reference writers below are written from the formats' specifications (LIME 1.x record
header; ILDG binary layout and SciDAC checksum; NERSC header, CHECKSUM, LINK_TRACE, PLAQUETTE)
with ``struct`` and explicit loops over t, z, y, x and the directions x, y, z, t -- independently
of latticeml.formats, whose index mapping they therefore check. No maintained Python package that
reads LIME or NERSC files (lyncs_io, lyncs_clime, PyQUDA) is installable here, so there is no
cross-check against one.
"""

import json
import struct
import zlib

import numpy as np
import pytest

from latticeml import formats, io
from latticeml.formats import GaugeFormatError
from latticeml.groups import haar_su, unitarity_violation
from latticeml.observables.loops import plaquette

SEED = 18
SHAPE = (4, 2, 3, 2)  # (Lt, Lx, Ly, Lz): every extent different from its neighbours' where it can be


@pytest.fixture(scope="module")
def links():
    return haar_su(np.random.default_rng(SEED), 3, size=(4,) + SHAPE)


# ----------------------------------------------------------------------------- reference writers (from the specs)


def _file_numbers(U, rows=3):
    """The links in file order as Python floats: for t, z, y, x; for nu = x, y, z, t; row-major (re, im)."""
    Lt, Lx, Ly, Lz = U.shape[1:5]
    ours = {0: 1, 1: 2, 2: 3, 3: 0}  # file direction nu (x, y, z, t) -> our mu (t, x, y, z)
    sites = []
    for t in range(Lt):
        for z in range(Lz):
            for y in range(Ly):
                for x in range(Lx):
                    site = []
                    for nu in range(4):
                        M = U[ours[nu], t, x, y, z]
                        for a in range(rows):
                            for b in range(3):
                                site += [M[a, b].real, M[a, b].imag]
                    sites.append(site)
    return sites


def _lime_record(kind, data, mb, me):
    header = struct.pack(">IHH", 0x456789AB, 1, (0x8000 if mb else 0) | (0x4000 if me else 0))
    header += struct.pack(">Q", len(data)) + kind.encode().ljust(128, b"\0")
    return header + data + b"\0" * (-len(data) % 8)


def _rotl(w, r):
    return ((w << r) | (w >> (32 - r))) & 0xFFFFFFFF if r else w


def reference_ildg(path, U, precision=64):
    code = ">d" if precision == 64 else ">f"
    blobs = [b"".join(struct.pack(code, v) for v in site) for site in _file_numbers(U)]
    suma = sumb = 0
    for rank, blob in enumerate(blobs):
        crc = zlib.crc32(blob)
        suma ^= _rotl(crc, rank % 29)
        sumb ^= _rotl(crc, rank % 31)
    Lt, Lx, Ly, Lz = U.shape[1:5]
    fmt = (f"<?xml version='1.0'?><ildgFormat><version>1.0</version><field>su3gauge</field><precision>{precision}"
           f"</precision><lx>{Lx}</lx><ly>{Ly}</ly><lz>{Lz}</lz><lt>{Lt}</lt></ildgFormat>")
    checksum = f"<scidacChecksum><version>1.0</version><suma>{suma:x}</suma><sumb>{sumb:x}</sumb></scidacChecksum>"
    with open(path, "wb") as f:
        f.write(_lime_record("ildg-format", fmt.encode(), True, False))
        f.write(_lime_record("ildg-binary-data", b"".join(blobs), False, False))
        f.write(_lime_record("scidac-checksum", checksum.encode(), False, True))
    return suma, sumb


def reference_nersc(path, U, *, rows=3, precision=64, endian=">"):
    code = endian + ("d" if precision == 64 else "f")
    numbers = [v for site in _file_numbers(U, rows) for v in site]
    checksum = 0
    for v in numbers:  # the little-endian 32-bit words of each stored number
        raw = struct.pack("<d" if precision == 64 else "<f", struct.unpack(code, struct.pack(code, v))[0])
        checksum += sum(struct.unpack(f"<{len(raw) // 4}I", raw))
    Lt, Lx, Ly, Lz = U.shape[1:5]
    trace = sum(np.trace(U[mu, t, x, y, z]).real for mu in range(4) for t in range(Lt) for x in range(Lx)
                for y in range(Ly) for z in range(Lz)) / (3 * 4 * Lt * Lx * Ly * Lz)
    plaq = 0.0
    ours = {0: 1, 1: 2, 2: 3, 3: 0}
    for t in range(Lt):
        for x in range(Lx):
            for y in range(Ly):
                for z in range(Lz):
                    site = np.array([t, x, y, z])
                    for mu in range(4):
                        for nu in range(mu + 1, 4):
                            def at(d, s):
                                return U[d][tuple(s % np.array(U.shape[1:5]))]
                            e_mu, e_nu = np.eye(4, dtype=int)[mu], np.eye(4, dtype=int)[nu]
                            P = at(mu, site) @ at(nu, site + e_mu) @ at(mu, site + e_nu).conj().T @ at(nu, site).conj().T
                            plaq += np.trace(P).real / 3
    plaq /= 6 * Lt * Lx * Ly * Lz
    fp = f"IEEE{precision}{'BIG' if endian == '>' else 'LITTLE'}"
    header = (f"BEGIN_HEADER\nHDR_VERSION = 1.0\nDATATYPE = {'4D_SU3_GAUGE_3x3' if rows == 3 else '4D_SU3_GAUGE'}\n"
              f"DIMENSION_1 = {Lx}\nDIMENSION_2 = {Ly}\nDIMENSION_3 = {Lz}\nDIMENSION_4 = {Lt}\n"
              f"CHECKSUM = {checksum % 2**32:x}\nLINK_TRACE = {trace:.10f}\nPLAQUETTE = {plaq:.10f}\n"
              f"FLOATING_POINT = {fp}\nEND_HEADER\n")
    with open(path, "wb") as f:
        f.write(header.encode())
        f.write(b"".join(struct.pack(code, v) for v in numbers))
    return header


# ----------------------------------------------------------------------------- reading what the references wrote


@pytest.mark.parametrize("precision", [64, 32])
def test_reads_reference_ildg(tmp_path, links, precision):
    path = tmp_path / "ref.lime"
    reference_ildg(path, links, precision)
    U, info = formats.read_gauge(path)
    assert info["format"] == "ildg" and info["checksum"] == "verified" and info["shape"] == SHAPE
    if precision == 64:
        np.testing.assert_array_equal(U, links)
    else:
        np.testing.assert_allclose(U, links, atol=3e-7)
        assert max(unitarity_violation(U)) < 1e-12  # brought back onto SU(3)


@pytest.mark.parametrize("rows,precision,endian", [(3, 64, ">"), (2, 64, "<"), (3, 32, "<"), (2, 32, ">")])
def test_reads_reference_nersc(tmp_path, links, rows, precision, endian):
    path = tmp_path / "ref.nersc"
    reference_nersc(path, links, rows=rows, precision=precision, endian=endian)
    U, info = formats.read_gauge(path)  # checksum, link trace and plaquette verified
    assert info["format"] == "nersc" and info["precision"] == precision and info["shape"] == SHAPE
    np.testing.assert_allclose(U, links, atol=1e-14 if precision == 64 else 3e-7)


def test_our_files_match_the_reference_bytes(tmp_path, links):
    """The binary record and checksum of our ILDG file, and the data of our NERSC file, equal the references'."""
    suma, sumb = reference_ildg(tmp_path / "ref.lime", links)
    formats.write_gauge(tmp_path / "ours.lime", links)
    ref = {r.type: r.data for r in formats.lime.read_records(tmp_path / "ref.lime")}
    ours = {r.type: r.data for r in formats.lime.read_records(tmp_path / "ours.lime")}
    assert ours["ildg-binary-data"] == ref["ildg-binary-data"]
    assert f"<suma>{suma:x}</suma><sumb>{sumb:x}</sumb>" in ours["scidac-checksum"].decode()
    for rows, datatype in ((3, "4D_SU3_GAUGE_3x3"), (2, "4D_SU3_GAUGE")):
        header = reference_nersc(tmp_path / "ref.nersc", links, rows=rows)
        formats.write_gauge(tmp_path / "ours.nersc", links, datatype=datatype)
        ref_bytes, ours_bytes = (tmp_path / "ref.nersc").read_bytes(), (tmp_path / "ours.nersc").read_bytes()
        ours_header, offset = formats.nersc.read_header(tmp_path / "ours.nersc")
        assert ours_bytes[offset:] == ref_bytes[len(header):]
        stated = dict(line.split(" = ") for line in header.splitlines()[1:-1])
        assert int(ours_header["CHECKSUM"], 16) == int(stated["CHECKSUM"], 16)
        for key in ("LINK_TRACE", "PLAQUETTE"):
            assert float(ours_header[key]) == pytest.approx(float(stated[key]), abs=1e-10)


def test_time_is_axis_zero_and_the_file_slowest(tmp_path):
    """A field that differs only along our axis 0 (time) differs only in the file's slowest index."""
    U = np.broadcast_to(np.eye(3, dtype=complex), (4, 3, 2, 2, 2, 3, 3)).copy()
    U[0, :, ..., 0, 0] = np.exp(1j * np.arange(3))[:, None, None, None]  # our mu = 0 (time) links vary with t
    U[0, :, ..., 1, 1] = np.exp(-1j * np.arange(3))[:, None, None, None]
    formats.write_gauge(tmp_path / "t.nersc", U)
    header, offset = formats.nersc.read_header(tmp_path / "t.nersc")
    assert (header["DIMENSION_4"], header["DIMENSION_1"]) == ("3", "2")
    data = np.frombuffer((tmp_path / "t.nersc").read_bytes()[offset:], ">f8").reshape(3, 2, 2, 2, 4, 3, 3, 2)
    np.testing.assert_allclose(data[:, ..., 3, 0, 0, 0], np.broadcast_to(np.cos(np.arange(3))[:, None, None, None], (3, 2, 2, 2)))  # nu = 3 is t
    np.testing.assert_array_equal(data[:, ..., :3, 0, 0, 0], 1.0)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt,options", [
    ("ildg", {}), ("ildg", {"precision": 32}),
    ("nersc", {}), ("nersc", {"datatype": "4D_SU3_GAUGE"}),
    ("nersc", {"precision": 32, "endian": "little"}), ("nersc", {"datatype": "4D_SU3_GAUGE", "endian": "little"}),
])
def test_round_trip(tmp_path, links, fmt, options):
    path = tmp_path / f"cfg.{'lime' if fmt == 'ildg' else 'nersc'}"
    formats.write_gauge(path, links, metadata={"theory": "su3", "params": {"beta": 5.7}}, **options)
    U, info = formats.read_gauge(path)
    assert info["metadata"] == {"theory": "su3", "params": {"beta": 5.7}}
    exact = options.get("precision", 64) == 64 and options.get("datatype", "4D_SU3_GAUGE_3x3") == "4D_SU3_GAUGE_3x3"
    if exact:
        np.testing.assert_array_equal(U, links)
    else:
        np.testing.assert_allclose(U, links, atol=3e-7 if options.get("precision") == 32 else 1e-14)
    assert max(unitarity_violation(U)) < 1e-12
    assert plaquette(U) == pytest.approx(plaquette(links), abs=1e-6)


def test_io_load_ensemble_reads_gauge_files(tmp_path, links):
    formats.write_gauge(tmp_path / "cfg.lime", links, metadata={"theory": "su3", "params": {"beta": 6.0}})
    ens = io.load_ensemble(tmp_path / "cfg.lime")
    assert ens.theory == "su3" and ens.configs.shape == (1, 4) + SHAPE + (3, 3)
    assert ens.params == {"beta": 6.0, "shape": list(SHAPE)} and ens.metadata["format"] == "ildg"


# ----------------------------------------------------------------------------- broken files: one clear error, nothing loaded


def _rewrite(path, old: bytes, new: bytes):
    blob = path.read_bytes()
    assert blob.count(old) == 1
    path.write_bytes(blob.replace(old, new))


def test_corrupt_data_fails_the_checksums(tmp_path, links):
    for name in ("cfg.lime", "cfg.nersc"):
        path = tmp_path / name
        formats.write_gauge(path, links)
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0x01  # one bit of one number in the data (they fill most of the file)
        path.write_bytes(bytes(blob))
        with pytest.raises(GaugeFormatError, match="checksum mismatch"):
            formats.read_gauge(path)


def test_truncated_files(tmp_path, links):
    for name, message in (("cfg.lime", "truncated LIME file"), ("cfg.nersc", "truncated")):
        path = tmp_path / name
        formats.write_gauge(path, links)
        path.write_bytes(path.read_bytes()[:-1000])
        with pytest.raises(GaugeFormatError, match=message):
            formats.read_gauge(path)
    path = tmp_path / "header.nersc"
    path.write_bytes(b"BEGIN_HEADER\nDATATYPE = 4D_SU3_GAUGE\n")
    with pytest.raises(GaugeFormatError, match="no END_HEADER"):
        formats.read_gauge(path)


def test_header_values_that_disagree(tmp_path, links):
    path = tmp_path / "cfg.nersc"
    formats.write_gauge(path, links)
    header, _ = formats.nersc.read_header(path)
    for key in ("PLAQUETTE", "LINK_TRACE"):
        formats.write_gauge(path, links)
        _rewrite(path, f"{key} = {header[key]}".encode(), f"{key} = {float(header[key]) + 1e-4:.15g}".encode())
        with pytest.raises(GaugeFormatError, match=f"header's {key} .* disagrees"):
            formats.read_gauge(path)
    formats.write_gauge(path, links)
    _rewrite(path, b"DATATYPE = 4D_SU3_GAUGE_3x3", b"DATATYPE = 4D_SU2_GAUGE_2x2")
    with pytest.raises(GaugeFormatError, match="unknown NERSC DATATYPE '4D_SU2_GAUGE_2x2'"):
        formats.read_gauge(path)
    formats.write_gauge(path, links)
    _rewrite(path, b"IEEE64BIG", b"IEEE64BAD")
    with pytest.raises(GaugeFormatError, match="unknown FLOATING_POINT"):
        formats.read_gauge(path)
    formats.write_gauge(path, links)
    _rewrite(path, b"IEEE64BIG", b"IEEE64LITTLE")  # the data read in the wrong byte order
    with pytest.raises(GaugeFormatError, match="checksum mismatch"):
        formats.read_gauge(path)


def test_wrong_index_order_is_caught_by_the_plaquette(tmp_path, links):
    """Data written with t and x swapped (but the true header values) disagree with the header's plaquette."""
    path = tmp_path / "cfg.nersc"
    formats.write_gauge(path, links)
    header, offset = formats.nersc.read_header(path)
    swapped = np.ascontiguousarray(links[[1, 0, 2, 3]].transpose(0, 2, 1, 3, 4, 5, 6))  # a 2x4x3x2 lattice
    formats.write_gauge(tmp_path / "swapped.nersc", swapped)
    _, offset2 = formats.nersc.read_header(tmp_path / "swapped.nersc")
    lines = path.read_bytes()[:offset].decode().replace(f"CHECKSUM = {header['CHECKSUM']}", "CHECKSUM = {}")
    h2, _ = formats.nersc.read_header(tmp_path / "swapped.nersc")
    path.write_bytes(lines.replace("{}", h2["CHECKSUM"]).encode() + (tmp_path / "swapped.nersc").read_bytes()[offset2:])
    with pytest.raises(GaugeFormatError, match="PLAQUETTE|LINK_TRACE"):
        formats.read_gauge(path)


def test_ildg_unknown_field_and_missing_records(tmp_path, links):
    path = tmp_path / "cfg.lime"
    formats.write_gauge(path, links)
    _rewrite(path, b"<field>su3gauge</field>", b"<field>su2gauge</field>")
    with pytest.raises(GaugeFormatError, match="unknown ILDG field 'su2gauge'"):
        formats.read_gauge(path)
    path.write_bytes(formats.lime.encode_records([[("scidac-file-xml", b"<x/>")]]))
    with pytest.raises(GaugeFormatError, match="without an 'ildg-format' record"):
        formats.read_gauge(path)
    path.write_bytes(b"not a gauge file at all")
    with pytest.raises(GaugeFormatError, match="neither an ILDG"):
        formats.read_gauge(path)


def test_other_groups_and_dimensions_are_refused(tmp_path):
    rng = np.random.default_rng(SEED)
    with pytest.raises(ValueError, match="4D SU\\(3\\)"):
        formats.write_gauge(tmp_path / "su2.lime", haar_su(rng, 2, size=(4, 2, 2, 2, 2)))
    with pytest.raises(ValueError, match="4D SU\\(3\\)"):
        formats.write_gauge(tmp_path / "3d.nersc", haar_su(rng, 3, size=(3, 2, 2, 2)))
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- the command line


def test_sample_out_and_measure(tmp_path, capsys):
    from latticeml.cli import main

    args = ["sample", "su3", "--shape", "2,2,2,2", "--beta", "5.7", "--algorithm", "heatbath", "--n", "2", "--therm", "0",
            "--quiet", "--json"]
    assert main(args + ["--out", str(tmp_path / "cfg.nersc")]) == 0
    assert main(args + ["--out", str(tmp_path / "cfg.lime")]) == 0
    capsys.readouterr()
    plaquettes = []
    for name in ("cfg.nersc", "cfg.lime"):
        assert main(["measure", str(tmp_path / name), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["params"]["beta"] == 5.7 and out["params"]["shape"] == [2, 2, 2, 2]
        plaquettes.append(out["observables"]["plaquette"]["mean"])
    assert plaquettes[0] == plaquettes[1]  # the same seed: the same last configuration in both files
    U, _ = formats.read_gauge(tmp_path / "cfg.lime")
    assert plaquettes[1] == pytest.approx(plaquette(U), abs=1e-15)
    blob = bytearray((tmp_path / "cfg.lime").read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # in the binary record
    (tmp_path / "bad.lime").write_bytes(bytes(blob))
    assert main(["measure", str(tmp_path / "bad.lime")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("latticeml: error:") and ("checksum" in err[0] or "LIME" in err[0])
    assert main(["sample", "u1", "--shape", "4,4", "--beta", "1", "--out", str(tmp_path / "u1.nersc")]) == 2
    assert "4D SU(3)" in capsys.readouterr().err
