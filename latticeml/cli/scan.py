"""``latticeml scan``: a grid of Markov chains on a Dask cluster (:mod:`latticeml.scan`).

    latticeml scan u1 --shape 8,8 16,16 --beta 1,2,3 --seeds 4 --algorithm heatbath --n 2000 --dir RUN --json
    latticeml scan su3 --shape 4,4,4,4 --beta 5.5,5.7 --algorithm hmc --step 0.05,0.1 --nsteps 10 --dir RUN --workers 4
    latticeml scan u1 --shape 16,16 --beta 2,4 --dir RUN --scheduler tcp://login1:8786

The flags are those of ``latticeml sample`` (the same parser pieces: :func:`.sample.add_coupling_flags`,
:func:`.sample.add_algorithm_flags`, :func:`.sample.add_chain_flags`), each numeric one taking a comma
list; ``--shape`` takes several shapes. The grid is the product of all lists times ``--seeds``.
Every combination is checked as ``latticeml sample`` checks one (:func:`.sample.couplings_from_args`,
the sampler settings, ``make_theory``, ``build_sampler``) before any task runs, so a mistake is one
line and exit status 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from .common import UserError, count, described, parse_shape
from .sample import (
    DIMENSIONS, _registry, _sampler_settings, _theory_summary, add_algorithm_flags, add_chain_flags, add_coupling_flags,
    couplings_from_args,
)

__all__ = ["register"]

def _coupling_grid(args, registry) -> list[dict]:
    """Every combination of the comma lists given for the couplings, each checked by couplings_from_args."""
    given = {k: v.split(",") for k, v in vars(args).items() if k.startswith("coupling_") and v is not None}
    combos = []
    for values in itertools.product(*given.values()):
        one = argparse.Namespace(**{**vars(args), **dict(zip(given, values))})
        combos.append(couplings_from_args(one, registry))
    return combos


def _algorithm_grid(args) -> dict:
    """algorithm -> list of distinct settings dicts (flags that an algorithm does not use drop out)."""
    from ..samplers import ALGORITHMS

    out = {}
    for algorithm in args.algorithm:
        if algorithm not in ALGORITHMS:
            raise UserError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
        flags = args.setting_flags  # every flag of sample's algorithm group but --algorithm
        lists = [getattr(args, f) or [None] for f in flags]
        seen = {}
        for values in itertools.product(*lists):
            one = argparse.Namespace(**{**vars(args), **dict(zip(flags, values)), "algorithm": algorithm})
            settings = _sampler_settings(one)
            seen.setdefault(json.dumps(settings, sort_keys=True), settings)
        out[algorithm] = list(seen.values())
    return out


def _check_dir(path: str) -> str:
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"--dir {path!r} is a file; give a folder for the scan's results (created if missing)")
    parent = p.resolve().parent
    if not parent.is_dir():
        raise UserError(f"--dir {path!r}: its parent folder {str(parent)!r} does not exist; create it first")
    return path


def _cmd_scan(args) -> int:
    from .. import scan
    from ..samplers import build_sampler
    from ..theories.base import make_theory

    registry = _registry()
    if args.theory not in registry:
        raise UserError(f"unknown theory {args.theory!r}; choose one of {_theory_summary(registry)}")
    shapes = [parse_shape(text) for text in args.shape]
    dims = DIMENSIONS.get(args.theory)
    for text, shape in zip(args.shape, shapes):
        if dims and len(shape) not in dims:
            raise UserError(f"{args.theory} runs in D = {', '.join(map(str, dims[:-1]))} or {dims[-1]} dimensions here; "
                            f"--shape {text} has D = {len(shape)}")
    if args.scheduler and args.workers is not None:
        raise UserError("give --workers (a local cluster of that size) or --scheduler (an existing cluster), not both")
    couplings = _coupling_grid(args, registry)
    algorithms = _algorithm_grid(args)
    _check_dir(args.dir)
    for shape, coupling in itertools.product(shapes, couplings):  # the library's own checks, before any task runs
        try:
            theory = make_theory(args.theory, shape, **coupling)  # allocates nothing of the lattice's size
        except (ValueError, TypeError) as exc:
            raise UserError(str(exc)) from None
    for algorithm, settings_list in algorithms.items():
        for settings in settings_list:
            try:
                build_sampler(theory, algorithm, **settings)  # the smallest check: the last shape and couplings
            except (ValueError, TypeError) as exc:
                raise UserError(str(exc)) from None
    names = sorted(couplings[0]) if couplings else []
    tasks = scan.grid(args.theory, shapes=shapes, algorithms=algorithms, seeds=args.seeds, n=args.n, therm=args.therm,
                      every=args.every, seed=args.seed, start=args.start,
                      couplings={k: list(dict.fromkeys(c[k] for c in couplings)) for k in names})
    workers = args.workers
    if workers != 0:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise UserError("latticeml scan runs its tasks on Dask: pip install 'latticeml[scale]' (or --workers 0 to "
                            "run them one after another in this process)") from None
    try:
        result = scan.run_scan(tasks, args.dir, workers=workers, scheduler=args.scheduler,
                               checkpoint_every=args.checkpoint_every, progress=not args.quiet,
                               observable=args.observable)
    except (OSError, TimeoutError) as exc:
        if args.scheduler:
            raise UserError(f"cannot reach the Dask scheduler at {args.scheduler!r} ({exc})") from None
        raise
    if args.json:
        print(json.dumps(dict(result)))
        return 0
    print(f"{len(result.runs)} of {len(tasks)} tasks finished; results in {args.dir}/results.json and results.csv"
          + (f", plot {result['scan']['plot']}" if "plot" in result["scan"] else ""))
    for run in result.runs:
        p = run["params"]
        head = " ".join(f"{k}={'x'.join(map(str, v)) if k == 'shape' else v}" for k, v in p.items()
                        if k not in ("n", "therm", "every", "scan_seed"))
        obs = "  ".join(f"{k} {o['mean']:.6g}({o['error']:.2g})" for k, o in run["observables"].items())
        print(f"{head}  |  {obs}")
    return 0


def register(subparsers) -> None:
    """Add ``latticeml scan`` (the flags of ``latticeml sample`` taking comma lists)."""
    registry = _registry()
    s = subparsers.add_parser(
        "scan",
        help="run a grid of Markov chains (couplings x shapes x algorithms x seeds) on a Dask cluster",
        **described(
            "Run one Markov chain per point of a grid -- every comma list of the couplings and algorithm settings, "
            "every --shape, --seeds seeds each -- as Dask tasks: on a local cluster (one worker per core, or "
            "--workers N; --workers 0 runs in this process) or on an existing one (--scheduler ADDRESS). "
            "Each task writes its checkpoint and result into --dir; running the same command again skips "
            "finished tasks and resumes interrupted ones bit-identically. A task's random numbers depend "
            "only on --seed and its own parameters. The results go to DIR/results.json and results.csv "
            "(Gamma-method errors) and DIR/OBSERVABLE.png. Needs pip install 'latticeml[scale]'.\n\n"
            f"Theories and their couplings: {_theory_summary(registry)}.",
            "latticeml scan u1 --shape 8,8 16,16 --beta 1,2,3 --seeds 4 --algorithm heatbath --n 2000 --dir RUN --json",
            "latticeml scan phi4 --shape 8,8 --m2 -4 --lam 4,6,8 --algorithm metropolis --step 0.5,1 --dir RUN",
            "latticeml scan u1 --shape 16,16 --beta 2,4 --dir RUN --scheduler tcp://login1:8786",
        ),
    )
    s.add_argument("theory", metavar="THEORY", help=", ".join(registry))
    s.add_argument("--shape", required=True, nargs="+", metavar="L0,L1,...",
                   help="one or more lattice shapes, e.g. --shape 8,8 16,16")
    add_coupling_flags(s, registry)
    algorithm = add_algorithm_flags(s, listed=True)
    s.set_defaults(setting_flags=[a.dest for a in algorithm._group_actions if a.dest != "algorithm"])
    c = add_chain_flags(s, listed=True)
    c.add_argument("--seeds", type=count(1), metavar="K", default=1, help="chains per grid point (default 1)")
    c.add_argument("--seed", type=count(0), metavar="S", default=0,
                   help="the scan seed; each task's stream comes from it and the task's parameters (default 0)")
    c.add_argument("--start", choices=["hot", "cold"], default="hot", help="starting configuration (default hot)")
    f = s.add_argument_group("where and how")
    f.add_argument("--dir", required=True, metavar="RUN", help="run folder (created; its parent must exist)")
    f.add_argument("--workers", type=count(0), metavar="N",
                   help="local cluster of N worker processes (default: one per core; 0 = no Dask, in this process)")
    f.add_argument("--scheduler", metavar="ADDRESS", help="submit to a running Dask scheduler, e.g. tcp://host:8786")
    f.add_argument("--checkpoint-every", type=count(1), metavar="N", default=500, help="steps between checkpoints (default 500)")
    f.add_argument("--observable", metavar="NAME", help="the observable to plot (default: the theory's first)")
    f.add_argument("--json", action="store_true", help="print one JSON object: {'scan': ..., 'runs': [...]} ")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_scan)
