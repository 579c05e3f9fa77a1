"""Ensembles and checkpoints on disk: ``.npz`` files with JSON metadata, never pickle.

File format (``format = "latticeml"``, ``format_version`` = :data:`FORMAT_VERSION`)
---------------------------------------------------------------------------------
A latticeml file is a NumPy ``.npz`` archive (see ``numpy.savez``) holding

* named numeric/bool/string arrays (any shape and dtype except ``object``), stored bit for bit;
* under the key ``"__metadata__"`` a 0-d unicode array with a JSON object containing at least
  ``"format": "latticeml"`` and ``"format_version": <int>``. JSON turns tuples into lists.

Files are read with ``numpy.load(..., allow_pickle=False)``: loading a file never executes code.
Writes are atomic: the archive is written to a temporary file in the target's directory, flushed
to disk and moved over the target with ``os.replace``, so an interrupted write leaves any previous
file intact.

On top of :func:`save_npz` / :func:`load_npz`:

* ensembles: :func:`save_ensemble` / :func:`load_ensemble` -- ``configs`` (first axis = the
  configuration index, e.g. ``(n_cfg, D, L0, L1)`` U(1) links), the theory name, its parameters
  and optional measured observables;
* checkpoints: :func:`save_checkpoint` / :func:`load_checkpoint` -- arbitrary state arrays, the
  random generator, the step counter and the measurement records, so that a chain resumes
  bit-identically;
* random generators: :func:`rng_state` / :func:`rng_from_state` (JSON-able bit-generator state).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .checks import check_rng

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "save_npz",
    "load_npz",
    "atomic_write",
    "rng_state",
    "rng_from_state",
    "Ensemble",
    "save_ensemble",
    "load_ensemble",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
]

FORMAT = "latticeml"
FORMAT_VERSION = 1
_METADATA_KEY = "__metadata__"
_RESERVED_METADATA = ("format", "format_version")


# ----------------------------------------------------------------------------- low level


def _json_default(obj):
    """Let NumPy scalars through json (they are what reductions return); refuse arrays."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        raise TypeError("metadata must not contain arrays: store them in `arrays` instead")
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON-serialisable")


def _check_arrays(arrays: dict) -> dict[str, np.ndarray]:
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays must be a dict of name -> array, got {type(arrays).__name__}")
    out = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"array names must be non-empty strings, got {name!r}")
        if name.startswith("__"):
            raise ValueError(f"array names starting with '__' are reserved, got {name!r}")
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(
                f"array {name!r} has dtype object, which can only be stored by pickling;"
                " convert it to a numeric or string array"
            )
        out[name] = array
    return out


def save_npz(path, arrays: dict, metadata: dict | None = None, *, compress: bool = False) -> Path:
    """Write ``arrays`` and JSON ``metadata`` to the latticeml ``.npz`` file ``path``, atomically.

    ``path`` is used as given (no ``.npz`` is appended). ``metadata`` must be JSON-serialisable
    (NumPy scalars are converted); the keys ``"format"`` and ``"format_version"`` are set here.
    Returns the path.
    """
    path = Path(path)
    arrays = _check_arrays(arrays)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    for key, expected in zip(_RESERVED_METADATA, (FORMAT, FORMAT_VERSION)):
        if key in metadata and metadata[key] != expected:
            raise ValueError(f"metadata key {key!r} is reserved (it is set to {expected!r} here)")
    header = {"format": FORMAT, "format_version": FORMAT_VERSION}
    header.update({k: v for k, v in metadata.items() if k not in _RESERVED_METADATA})
    try:
        text = json.dumps(header, default=_json_default)
    except TypeError as err:
        raise TypeError(f"metadata is not JSON-serialisable: {err}") from None
    payload = dict(arrays)
    payload[_METADATA_KEY] = np.array(text)

    with atomic_write(path) as handle:
        (np.savez_compressed if compress else np.savez)(handle, **payload)
    return path


@contextlib.contextmanager
def atomic_write(path):
    """``with atomic_write(path) as handle:`` write a binary file that appears whole or not at all.

    The bytes go to a temporary file next to ``path`` (same file system), which is flushed to disk
    and moved over ``path`` with ``os.replace`` when the block ends; an exception (or Ctrl-C) inside
    the block removes the temporary and leaves any previous ``path`` untouched. Used by
    :func:`save_npz` and the ILDG/NERSC writers (:mod:`latticeml.formats`).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"directory {directory} does not exist; create it first")
    # a fresh name next to the target (same file system, so os.replace is atomic); created with
    # mode 0o666 & ~umask like any new file (tempfile.mkstemp would force 0o600)
    tmp_name = str(directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        # never leave a half-written temporary behind; the old `path` is untouched
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def load_npz(path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a latticeml ``.npz`` file: ``(arrays, metadata)``; metadata includes the format keys.

    Raises ValueError for files that are not latticeml archives (a plain ``.npz``, a ``.npy``, a
    pickle, a newer format version) and for archives holding object (pickled) arrays.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a latticeml .npz file ({err})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single .npy array, not a latticeml .npz archive")
    with archive:
        if _METADATA_KEY not in archive.files:
            raise ValueError(
                f"{path} is an .npz archive without latticeml metadata; it was not written by"
                " latticeml.io.save_npz (read it with numpy.load instead)"
            )
        try:
            arrays = {name: archive[name] for name in archive.files}
        except ValueError as err:
            raise ValueError(
                f"{path} contains pickled object arrays, which latticeml never loads ({err})"
            ) from None
    raw = arrays.pop(_METADATA_KEY)
    try:
        metadata = json.loads(str(raw[()]))
    except (json.JSONDecodeError, TypeError, IndexError) as err:
        raise ValueError(f"{path}: the metadata is not valid JSON ({err})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: metadata does not declare format {FORMAT!r}; not a latticeml file")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ValueError(
            f"{path} has format_version {version!r}; this latticeml reads versions 1 to"
            f" {FORMAT_VERSION}: upgrade latticeml"
        )
    return arrays, metadata


# ----------------------------------------------------------------------------- random generators


def _to_json(value):
    """Bit-generator state -> JSON-able: arrays become tagged lists of Python ints."""
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    return value  # str and Python int (JSON integers are unbounded: 128-bit PCG64 state is exact)


def _from_json(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        return {key: _from_json(item) for key, item in value.items()}
    return value


def rng_state(rng: np.random.Generator) -> dict:
    """JSON-able snapshot of ``rng``'s bit generator (PCG64, PCG64DXSM, MT19937, Philox, SFC64).

    ``rng_from_state(rng_state(rng))`` continues with exactly the numbers ``rng`` would draw.
    (The SeedSequence used to create ``rng`` is not part of the state, so ``spawn`` differs.)
    """
    check_rng(rng)
    return _to_json(rng.bit_generator.state)


def rng_from_state(state: dict) -> np.random.Generator:
    """A new ``numpy.random.Generator`` in the state recorded by :func:`rng_state`."""
    if not isinstance(state, dict) or "bit_generator" not in state:
        raise ValueError("state must be a dict from latticeml.io.rng_state (with 'bit_generator')")
    name = state["bit_generator"]
    cls = getattr(np.random, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, np.random.BitGenerator)):
        raise ValueError(f"unknown bit generator {name!r}; NumPy ships PCG64, MT19937, Philox, ...")
    bit_generator = cls()
    try:
        bit_generator.state = _from_json(state)
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"invalid {name} state: {err}") from None
    return np.random.Generator(bit_generator)


# ----------------------------------------------------------------------------- ensembles


class Ensemble(NamedTuple):
    """A stored ensemble.

    configs:     array, first axis = configuration index (e.g. ``(n_cfg, D, L0, L1)``).
    theory:      theory name, e.g. ``"u1"``, ``"su2"``, ``"phi4"``.
    params:      dict of the action parameters (JSON values), e.g. ``{"beta": 2.0}``.
    observables: dict name -> array of measurements (empty dict if none were stored).
    metadata:    the user metadata passed to :func:`save_ensemble` (dict).
    """

    configs: np.ndarray
    theory: str
    params: dict
    observables: dict
    metadata: dict


def _prefixed(prefix: str, arrays: dict | None, what: str) -> dict:
    arrays = {} if arrays is None else arrays
    if not isinstance(arrays, dict):
        raise TypeError(f"{what} must be a dict of name -> array, got {type(arrays).__name__}")
    return {f"{prefix}/{name}": value for name, value in arrays.items()}


def _unprefixed(prefix: str, arrays: dict) -> dict:
    start = len(prefix) + 1
    return {name[start:]: value for name, value in arrays.items() if name.startswith(prefix + "/")}


def _load_kind(path, kind: str) -> tuple[dict, dict]:
    arrays, metadata = load_npz(path)
    if metadata.get("kind") != kind:
        raise ValueError(f"{path} is a latticeml file of kind {metadata.get('kind')!r}, not {kind!r}")
    return arrays, metadata


def save_ensemble(
    path,
    configs,
    *,
    theory: str,
    params: dict,
    observables: dict | None = None,
    metadata: dict | None = None,
    compress: bool = False,
) -> Path:
    """Store an ensemble of configurations with its theory, parameters and measurements."""
    if not isinstance(theory, str) or not theory:
        raise ValueError("theory must be a non-empty string such as 'u1', 'su3' or 'phi4'")
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict, e.g. {{'beta': 2.0}}, got {type(params).__name__}")
    arrays = {"configs": configs}
    arrays.update(_prefixed("observables", observables, "observables"))
    header = {"kind": "ensemble", "theory": theory, "params": params, "user": metadata or {}}
    return save_npz(path, arrays, header, compress=compress)


def load_ensemble(path) -> Ensemble:
    """Read a file written by :func:`save_ensemble`, or an ILDG (LIME) / NERSC gauge configuration file.

    A gauge file (recognised by its first bytes, see :mod:`latticeml.formats`) gives one SU(3)
    configuration ``configs`` ``(1, 4, Lt, Lx, Ly, Lz, 3, 3)``, theory ``"su3"``, the parameters latticeml
    stored in it (or just the shape, for another code's file) and ``metadata`` = what the reader
    found (format, precision, header, ...). Its checksum, plaquette and link trace are verified.
    """
    from . import formats

    if Path(path).is_file() and formats.detect_format(path):
        links, info = formats.read_gauge(path)
        params = dict(info.get("metadata", {}).get("params", {}))
        params["shape"] = list(info["shape"])
        return Ensemble(configs=links[None], theory="su3", params=params, observables={}, metadata=info)
    arrays, metadata = _load_kind(path, "ensemble")
    return Ensemble(
        configs=arrays["configs"],
        theory=metadata["theory"],
        params=metadata["params"],
        observables=_unprefixed("observables", arrays),
        metadata=metadata["user"],
    )


# ----------------------------------------------------------------------------- checkpoints


class Checkpoint(NamedTuple):
    """A stored chain state.

    state_arrays: dict name -> array (fields, momenta, sampler parameters, ...).
    rng:          a ``numpy.random.Generator`` continuing exactly where the saved one stopped.
    step:         the step counter at save time.
    records:      dict name -> array of measurements recorded so far.
    metadata:     the user metadata passed to :func:`save_checkpoint` (dict).
    """

    state_arrays: dict
    rng: np.random.Generator
    step: int
    records: dict
    metadata: dict


def save_checkpoint(
    path,
    *,
    state_arrays: dict,
    rng: np.random.Generator,
    step: int,
    records: dict | None = None,
    metadata: dict | None = None,
    compress: bool = False,
) -> Path:
    """Store everything a chain needs to resume bit-identically (atomically, see :func:`save_npz`)."""
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    arrays = _prefixed("state", state_arrays, "state_arrays")
    arrays.update(_prefixed("records", records, "records"))
    header = {"kind": "checkpoint", "step": int(step), "rng": rng_state(rng), "user": metadata or {}}
    return save_npz(path, arrays, header, compress=compress)


def load_checkpoint(path) -> Checkpoint:
    """Read a file written by :func:`save_checkpoint`."""
    arrays, metadata = _load_kind(path, "checkpoint")
    return Checkpoint(
        state_arrays=_unprefixed("state", arrays),
        rng=rng_from_state(metadata["rng"]),
        step=metadata["step"],
        records=_unprefixed("records", arrays),
        metadata=metadata["user"],
    )
