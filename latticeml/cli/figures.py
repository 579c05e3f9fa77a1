"""``latticeml figures``: regenerate the PNGs the lectures show (registry in :mod:`latticeml.figures`).

    latticeml figures --list
    latticeml figures                                  # all of them, into figures/
    latticeml figures stats_ar1_tau_int --fast --out /tmp/figs
"""

from __future__ import annotations

from .common import UserError, described

__all__ = ["register"]


def _cmd_figures(args) -> int:
    from ..figures import make_figures, registry

    figs = registry()
    if args.list:
        for name, fig in figs.items():
            print(f"{name:28s} {fig.description}")
        return 0
    unknown = [n for n in args.names if n not in figs]
    if unknown:
        raise UserError(f"unknown figure(s) {', '.join(map(repr, unknown))}; `latticeml figures --list` shows the known ones")
    make_figures(args.out, args.names or None, fast=args.fast)
    return 0


def register(subparsers) -> None:
    """Add ``latticeml figures``."""
    s = subparsers.add_parser(
        "figures",
        help="regenerate the figures (all by default)",
        **described(
            "Regenerate the figures of the lectures as PNG files (all of them unless names are given). "
            "--fast makes quick low-statistics versions, as CI does.",
            "latticeml figures --list",
            "latticeml figures",
            "latticeml figures stats_ar1_tau_int --fast --out /tmp/figs",
        ),
    )
    s.add_argument("names", nargs="*", help="figure names (default: all; see --list)")
    s.add_argument("--out", default="figures", help="output folder, created if missing (default: figures)")
    s.add_argument("--fast", action="store_true", help="quick low-statistics versions (for CI)")
    s.add_argument("--list", action="store_true", help="list the registered figures and exit")
    s.set_defaults(func=_cmd_figures)
