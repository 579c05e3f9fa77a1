"""The ``latticeml`` command line.

    latticeml --version
    latticeml info                     versions, threads, Numba cache, CUDA
    latticeml figures [NAME ...]       regenerate the figures in figures/ (--list, --fast, --out DIR)

User mistakes (bad arguments, unreadable files) print one clear line and exit with status 2;
tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

from . import __version__


class UserError(Exception):
    """A mistake on the command line: reported in one line, without a traceback."""


def _cmd_info(args) -> int:
    import numba
    import numpy
    import scipy

    lines = [
        f"latticeml   {__version__}",
        f"python      {platform.python_version()} ({sys.executable})",
        f"numpy       {numpy.__version__}",
        f"scipy       {scipy.__version__}",
        f"numba       {numba.__version__}",
        f"threads     {numba.get_num_threads()} Numba threads ({numba.config.THREADING_LAYER} layer), {os.cpu_count()} CPUs",
        f"numba cache {os.environ.get('NUMBA_CACHE_DIR') or '(next to the sources: __pycache__)'}",
        f"cuda        {_cuda_status()}",
    ]
    print("\n".join(lines))
    return 0


def _cuda_status() -> str:
    try:
        from numba import cuda
    except Exception as exc:  # numba built without the CUDA target
        return f"unavailable ({type(exc).__name__})"
    try:
        if cuda.is_available():
            name = cuda.get_current_device().name
            return f"available: {name.decode() if isinstance(name, bytes) else name}"
        return "not available (no GPU or driver)"
    except Exception as exc:
        return f"not available ({exc})"


def _cmd_figures(args) -> int:
    from .figures import make_figures, registry

    figs = registry()
    if args.list:
        for name, fig in figs.items():
            print(f"{name:28s} {fig.description}")
        return 0
    unknown = [n for n in args.names if n not in figs]
    if unknown:
        raise UserError(f"unknown figure(s) {', '.join(unknown)}; `latticeml figures --list` shows the known ones")
    make_figures(args.out, args.names or None, fast=args.fast)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="latticeml", description="Machine learning for lattice field theory: tools and lectures.")
    p.add_argument("--version", action="version", version=f"latticeml {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("info", help="versions, threads, Numba cache directory, CUDA availability")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("figures", help="regenerate the figures (all by default)")
    s.add_argument("names", nargs="*", help="figure names (default: all; see --list)")
    s.add_argument("--out", default="figures", help="output folder (default: figures)")
    s.add_argument("--fast", action="store_true", help="quick low-statistics versions (for CI)")
    s.add_argument("--list", action="store_true", help="list the registered figures and exit")
    s.set_defaults(func=_cmd_figures)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return p


# Later modules add subcommands here: each entry is a function ``register(subparsers)``.
_EXTRA_COMMANDS: list = []


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"latticeml: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("latticeml: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
