"""What the subcommands share: the one-line error, argument types, path and memory checks, the report.

Every mistake a user can make on the command line ends as one line ``latticeml: error: ...`` on
stderr and exit status 2 (:func:`latticeml.cli.main` prints it). The pieces here turn each kind of
mistake into a :class:`UserError` *before* any work starts, so that a typo in ``--out`` does not
cost the hour the chain ran:

* :class:`ArgumentParser` -- argparse with its errors as ``UserError`` (argparse itself would print
  the usage and ``latticeml sample: error: ...``);
* argument types :func:`finite_float`, :func:`positive_float`, :func:`count`, and
  :func:`parse_shape` -- values are checked where they are parsed, so the message names the option;
* :func:`writable_file`, :func:`readable_file` -- paths, checked before the run;
* :func:`check_memory` -- refuses a lattice whose arrays would not fit in the available memory,
  with the number of GiB it needs, before anything is allocated;
* :func:`report` -- the observables table (or JSON) that ``sample``, ``measure`` and ``flow sample``
  print (the numbers: :func:`latticeml.stats.summarise`).

Nothing here imports another ``latticeml.cli`` module, so the subcommand modules import it
without a cycle.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import tempfile
from pathlib import Path

__all__ = [
    "UserError", "ArgumentParser", "described", "finite_float", "positive_float", "count", "parse_shape",
    "writable_file", "readable_file", "available_memory", "check_memory", "report",
]


class UserError(Exception):
    """A mistake on the command line: reported in one line, without a traceback, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are :class:`UserError` (one line, status 2, via ``main``).

    Sub-parsers are made with the parent's class, so every subcommand reports the same way. The
    description and epilog keep their line breaks (:func:`described` wraps the prose and lays
    out the examples).
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # called by argparse for every malformed command line
        flag = re.match(r"argument (--[\w-]+): expected one argument", message)
        if flag:  # argparse reads "-1e5" or "-inf" as an option, not as a value
            message += f" (write a value that starts with '-' as {flag[1]}=-1e5)"
        raise UserError(f"{message} (see `{self.prog} --help`)")


def described(text: str, *examples: str) -> dict:
    """``description`` and ``epilog`` keywords for ``add_parser``: ``text`` wrapped, then the examples."""
    import textwrap

    out = {"description": "\n\n".join(textwrap.fill(" ".join(par.split()), 92) for par in text.split("\n\n"))}
    if examples:
        out["epilog"] = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    return out


# ----------------------------------------------------------------------------- argument types
#
# argparse turns an ArgumentTypeError into "argument --beta: <message>"; any other exception from a
# type function would become the uninformative "invalid finite_float value: 'nan'".


def finite_float(text: str) -> float:
    """A finite real number (couplings): ``nan``, ``inf`` and ``1e400`` are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A positive finite real number (step sizes)."""
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def count(minimum: int):
    """Argument type: an integer ``>= minimum`` (``count(1)`` for measurements, ``count(0)`` for sweeps)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


_EXTENT = re.compile(r"[0-9]+")


def parse_shape(text: str, option: str = "--shape") -> tuple[int, ...]:
    """``"16,16"`` (or ``"16x16"``) -> ``(16, 16)``: every entry an integer >= 2, nothing else.

    Strict on purpose: ``"8,8,x"`` is an error, not an 8x8 lattice.
    """
    parts = [p.strip() for p in text.split("," if "," in text else "x")]
    bad = [p for p in parts if not _EXTENT.fullmatch(p)]
    if bad:
        raise UserError(
            f"{option} must be integers separated by commas, such as 16,16 or 8,8,8,8; got {text!r} "
            f"({bad[0]!r} is not an integer)"
        )
    shape = tuple(int(p) for p in parts)
    if any(L < 2 for L in shape):
        raise UserError(f"{option} needs every extent >= 2 (a periodic lattice of extent 1 has no links); got {text!r}")
    return shape


# ----------------------------------------------------------------------------- paths


def writable_file(path: str, option: str) -> str:
    """``path`` if a file can be written there: its folder exists and is writable, it is no folder.

    The folder is not created: a mistyped folder name should be an error, not a new folder.
    """
    try:
        p = Path(path)
        folder = p.parent
        if not path or path.endswith(os.sep) or p.is_dir():
            raise UserError(f"{option} {path!r} is a folder; give a file name such as {os.path.join(path or '.', 'ensemble.npz')}")
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise UserError(f"{option} {path!r}: the folder {str(folder)!r} {what}; create it first (mkdir -p {folder})")
        if p.exists() and not os.access(p, os.W_OK):
            raise UserError(f"{option} {path!r}: the file exists and is not writable")
    except (ValueError, OSError) as exc:  # a NUL byte, a name too long for the file system, ...
        raise UserError(f"{option} {path!r} is not a usable file name ({exc})") from None
    try:
        # the one reliable test (permissions, read-only mounts, /proc, root's os.access): write a file there,
        # as io.save_npz will (a temporary next to the target, then a rename)
        with tempfile.TemporaryFile(dir=folder, prefix=f".{p.name[:40]}."):
            pass
    except OSError as exc:
        raise UserError(f"{option} {path!r}: cannot write in the folder {str(folder)!r} ({exc.strerror or exc})") from None
    return path


def readable_file(path: str, what: str) -> str:
    """``path`` if it names a readable file; otherwise a :class:`UserError` that says why."""
    try:
        p = Path(path)
        if not p.exists():
            raise UserError(f"no such file: {path!r} ({what})")
        if p.is_dir():
            raise UserError(f"{path!r} is a folder, not {what}")
        if not os.access(p, os.R_OK):
            raise UserError(f"{path!r} is not readable (permission denied)")
    except (ValueError, OSError) as exc:
        raise UserError(f"{path!r} is not a usable file name ({exc})") from None
    return path


# ----------------------------------------------------------------------------- memory

GiB = 2**30


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None if unknown.

    ``MemAvailable`` counts the page cache the kernel can drop; where /proc/meminfo is missing the
    free pages (``os.sysconf("SC_AVPHYS_PAGES")``) are a lower bound.
    """
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(n_bytes: int, what: str, advice: str) -> None:
    """Refuse (UserError) a run whose arrays need more than the available memory.

    ``what`` says what the bytes are for, ``advice`` what to change; the message gives both sizes in GiB.
    """
    available = available_memory()
    if available is not None and n_bytes > available:
        raise UserError(
            f"{what} needs about {n_bytes / GiB:.3g} GiB of memory, but only {available / GiB:.3g} GiB is available; {advice}"
        )


# ----------------------------------------------------------------------------- output


def report(payload: dict, as_json: bool) -> None:
    """Print ``payload`` (theory, params, acceptance, observables) as a table, or as one JSON line."""
    import json

    if as_json:
        print(json.dumps(payload, indent=None, sort_keys=False))
        return
    p = payload["params"]
    print(f"{payload['theory']}  {', '.join(f'{k}={v}' for k, v in p.items())}")
    if payload.get("acceptance") is not None:
        print(f"acceptance  {payload['acceptance']:.4f}")
    print(f"{'observable':28s} {'mean':>14s} {'error':>11s} {'tau_int':>9s} {'+-':>7s}")
    for name, o in payload["observables"].items():
        print(f"{name:28s} {o['mean']:14.8g} {o['error']:11.3g} {o['tau_int']:9.3g} {o['tau_int_error']:7.2g}")
