"""The ``latticeml`` command line.

    latticeml --version
    latticeml info                     versions, threads, Numba cache, CUDA            (cli/info.py)
    latticeml figures [NAME ...]       regenerate the figures (--list, --fast, --out)  (cli/figures.py)
    latticeml sample THEORY [...]      a Markov chain; observables with Gamma-method   (cli/sample.py)
                                       errors; THEORY's couplings are flags made from
                                       the parameters it declares (theories.base)
    latticeml measure ENSEMBLE.npz     re-measure a saved ensemble (or an ILDG/NERSC   (cli/sample.py)
                                       gauge file)
    latticeml scan THEORY [...]        a grid of chains as Dask tasks, resumable       (cli/scan.py)
    latticeml flow train|sample        normalizing flows for phi^4                     (cli/flow.py)
    latticeml l2hmc train u1 [...]     train L2HMC's generalized leapfrog for 2D U(1)  (cli/l2hmc.py)
    latticeml slhmc train THEORY [...] train the stout net of SLHMC with staggered     (cli/slhmc.py)
                                       fermions
    latticeml lcnn dataset|train       L-CNN Wilson-loop regression (Favoni et al.)    (cli/lcnn.py)

One module per subcommand, each with a ``register(subparsers)`` that adds its parser; what they
share (the error type, argument types, path and memory checks, the observables table) lives in
:mod:`latticeml.cli.common`, which imports no other ``cli`` module. Nothing outside this package
imports it, so there is no import cycle (``tests/test_cli_fuzz.py`` checks the graph).

Errors: a user's mistake (a malformed or inconsistent argument, a file that is missing, corrupt
or cannot be written, a lattice too large for memory) is reported as ONE line
``latticeml: error: ...`` on stderr with exit status 2, before any work starts where it can be
detected then. Ctrl-C (or ``kill PID``) writes the checkpoint as usual and exits with status 130
and one line. A traceback means a bug in latticeml.
"""

from __future__ import annotations

import sys

from .. import __version__
from . import figures, flow, info, l2hmc, lcnn, sample, scan, slhmc
from .common import ArgumentParser, UserError, described

__all__ = ["main", "build_parser", "UserError"]

#: the subcommand modules, in the order ``latticeml --help`` lists them.
SUBCOMMANDS = (info, figures, sample, scan, flow, l2hmc, slhmc, lcnn)


def build_parser() -> ArgumentParser:
    """The ``latticeml`` parser; its errors raise :class:`UserError` (see :class:`.common.ArgumentParser`)."""
    p = ArgumentParser(
        prog="latticeml",
        **described(
            "Machine learning for lattice field theory: Markov chains with honest error bars, normalizing "
            "flows, and the figures of the lectures. `latticeml COMMAND --help` explains each command.",
            "latticeml info",
            "latticeml sample u1 --shape 16,16 --beta 2 --algorithm heatbath --overrelax 1 --n 2000",
            "latticeml sample su3 --shape 4,4,4,4 --beta 5.7 --action iwasaki --n 100 --out su3.npz",
            "latticeml measure su3.npz --json",
            "latticeml flow train phi4 --shape 8,8 --m2 -4 --lam 8 --steps 2500 --out model.npz",
            "latticeml figures --list",
        ),
    )
    p.add_argument("--version", action="version", version=f"latticeml {__version__}")
    subparsers = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return p


def _fail(message: str, status: int) -> int:
    print(f"latticeml: error: {' '.join(str(message).splitlines())}", file=sys.stderr)
    return status


def main(argv=None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    0 on success, 2 for a user's mistake (one line on stderr), 130 after Ctrl-C. ``--help`` and
    ``--version`` print and raise ``SystemExit(0)`` as argparse does.
    """
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        return int(args.func(args) or 0)
    except UserError as exc:
        return _fail(str(exc), 2)
    except MemoryError:
        return _fail("out of memory: the lattice (or --n with --out, which keeps every configuration) "
                     "is too large for this machine; choose a smaller --shape or --n", 2)
    except OSError as exc:  # the disk filled up, a file vanished or lost its permissions mid-run
        return _fail(f"{exc.strerror or exc}: {exc.filename!r}" if exc.filename else str(exc), 2)
    except KeyboardInterrupt:
        print("latticeml: interrupted (a run with a checkpoint wrote it: continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
