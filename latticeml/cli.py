"""The ``latticeml`` command line.

    latticeml --version
    latticeml info                     versions, threads, Numba cache, CUDA
    latticeml figures [NAME ...]       regenerate the figures in figures/ (--list, --fast, --out DIR)
    latticeml sample THEORY [...]      run a Markov chain and print observables with Gamma-method errors
    latticeml measure ENSEMBLE.npz     re-measure a saved ensemble

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


# ----------------------------------------------------------------------------- sample / measure

_THEORY_HELP = "phi4 (--m2, --lam), u1 (--beta), su2 / su3 (--beta), sun (--beta, --N)"


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(t) for t in text.replace("x", ",").split(",") if t.strip())
    except ValueError:
        raise UserError(f"--shape must be comma-separated integers such as 16,16 or 8,8,8,8; got {text!r}") from None
    if not shape or any(L < 2 for L in shape):
        raise UserError(f"--shape needs one extent >= 2 per dimension, e.g. 16,16; got {text!r}")
    return shape


def _theory_from_args(args):
    from .theories.models import make_theory

    shape = _parse_shape(args.shape)
    needs = {"phi4": ("m2", "lam"), "u1": ("beta",), "su2": ("beta",), "su3": ("beta",), "sun": ("beta", "N")}
    if args.theory not in needs:
        raise UserError(f"unknown theory {args.theory!r}; choose one of {_THEORY_HELP}")
    missing = [f"--{k}" for k in needs[args.theory] if getattr(args, k) is None]
    if missing:
        raise UserError(f"theory {args.theory} needs {' and '.join(missing)}")
    couplings = {k: getattr(args, k) for k in needs[args.theory]}
    if args.theory in ("su3", "su2", "sun") and len(shape) not in (2, 3, 4):
        raise UserError(f"SU(N) runs in D = 2, 3 or 4 dimensions; --shape {args.shape} has D = {len(shape)}")
    if args.theory == "u1" and len(shape) < 2:
        raise UserError("a U(1) gauge theory needs D >= 2; give e.g. --shape 16,16")
    try:
        return make_theory(args.theory, shape, **couplings)
    except ValueError as exc:
        raise UserError(str(exc)) from None


HMC_DEFAULT_STEP, HMC_DEFAULT_NSTEPS = 0.1, 10


def _sampler_settings(args) -> dict:
    """The algorithm settings given on the command line (only those the user set)."""
    if getattr(args, "instanton_every", None) is not None and (args.algorithm != "hmc" or args.theory != "u1"):
        raise UserError(
            "--instanton-every mixes instanton moves into HMC for 2D U(1) only: use it with "
            f"`latticeml sample u1 --algorithm hmc`; got theory {args.theory} with --algorithm {args.algorithm}"
        )
    for name in ("nsteps", "overrelax", "instanton_every"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name != "nsteps" else 1):
            raise UserError(f"--{name.replace('_', '-')} must be a {'positive' if name == 'nsteps' else 'non-negative'} integer, got {value}")
    if args.step is not None and not args.step > 0:
        raise UserError(f"--step must be positive, got {args.step}")
    settings = {}
    if args.algorithm == "hmc":
        # trajectories of length 1 unless told otherwise: 10 steps of 0.1
        step, nsteps = args.step, args.nsteps
        if step is None and nsteps is None:
            step, nsteps = HMC_DEFAULT_STEP, HMC_DEFAULT_NSTEPS
        elif nsteps is None:
            nsteps = max(1, round(1.0 / step))
        elif step is None:
            step = 1.0 / nsteps
        settings.update(step_size=step, n_steps=nsteps, integrator=args.integrator)
        if getattr(args, "instanton_every", None):
            settings["instanton_every"] = args.instanton_every
    elif args.algorithm == "metropolis":
        settings.update(step_size=args.step)
    elif args.algorithm == "heatbath":
        settings.update(overrelax=args.overrelax)
    return {k: v for k, v in settings.items() if v is not None}


def _summarise(records: dict, acceptance, *, S: float = 1.5) -> dict:
    import numpy as np

    from .stats import gamma_method

    out = {}
    for name, values in records.items():
        values = np.asarray(values, dtype=float)
        if len(values) < 8:
            out[name] = {"mean": float(values.mean()), "error": float("nan"), "tau_int": float("nan"), "tau_int_error": float("nan")}
            continue
        r = gamma_method(values, S=S)
        out[name] = {"mean": float(r.value), "error": float(r.error), "tau_int": float(r.tau_int), "tau_int_error": float(r.tau_int_error)}
    return out


def _report(payload: dict, as_json: bool) -> None:
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


def _cmd_sample(args) -> int:
    import numpy as np

    from . import io
    from .samplers import build_sampler, resume_chain, run_chain

    theory = _theory_from_args(args)
    for name in ("n", "every"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.therm < 0:
        raise UserError(f"--therm must be >= 0, got {args.therm}")
    try:
        sampler = build_sampler(theory, args.algorithm, **_sampler_settings(args))
    except (ValueError, TypeError) as exc:
        raise UserError(str(exc)) from None
    checkpoint = args.checkpoint or (f"{args.out.removesuffix('.npz')}.ckpt.npz" if args.out else None)
    keep = bool(args.out)
    if args.resume:
        try:
            result = resume_chain(args.resume, sampler, progress=not args.quiet, checkpoint_every=args.checkpoint_every)
        except FileNotFoundError:
            raise UserError(f"no checkpoint at {args.resume}") from None
        except ValueError as exc:
            raise UserError(str(exc)) from None
    else:
        rng = np.random.default_rng(args.seed)
        field = theory.cold_start() if args.start == "cold" else theory.hot_start(rng)
        result = run_chain(
            sampler, field, rng, n_measure=args.n, n_therm=args.therm, every=args.every, keep_fields=keep,
            checkpoint=checkpoint, checkpoint_every=args.checkpoint_every, progress=not args.quiet,
        )
    params = dict(theory.params)
    params.update(algorithm=sampler.name, **sampler.settings, n=args.n, therm=args.therm, every=args.every, seed=args.seed)
    payload = {
        "theory": theory.name,
        "params": params,
        "acceptance": float(np.mean(result.acceptance)) if len(result.acceptance) else None,
        "observables": _summarise(result.records, result.acceptance),
    }
    if args.out:
        io.save_ensemble(args.out, result.fields, theory=theory.name, params=params, observables=result.records)
        if not args.json:
            print(f"ensemble of {len(result.fields)} configurations written to {args.out}")
    _report(payload, args.json)
    return 0


def _cmd_measure(args) -> int:
    from . import io
    from .theories.models import make_theory

    try:
        ens = io.load_ensemble(args.ensemble)
    except FileNotFoundError:
        raise UserError(f"no such file: {args.ensemble}") from None
    except ValueError as exc:
        raise UserError(f"{args.ensemble}: {exc}") from None
    p = dict(ens.params)
    couplings = {k: p[k] for k in ("m2", "lam", "beta", "N") if k in p}
    if ens.theory in ("su2", "su3"):
        couplings.pop("N", None)
    theory = make_theory(ens.theory, p["shape"], **couplings)
    records: dict = {}
    for cfg in ens.configs:
        for k, v in theory.observables(theory.check_field(cfg)).items():
            records.setdefault(k, []).append(v)
    _report({"theory": theory.name, "params": p, "acceptance": None, "observables": _summarise(records, None)}, args.json)
    return 0


def _add_sample_parser(sub) -> None:
    s = sub.add_parser(
        "sample",
        help="run a Markov chain and print observables with Gamma-method errors",
        description="Run a Markov chain for a lattice theory and print each observable's mean, Gamma-method error "
        "(Wolff 2004, S = 1.5) and tau_int. Theories: " + _THEORY_HELP + ".",
    )
    s.add_argument("theory", help="phi4, u1, su2, su3 or sun")
    s.add_argument("--shape", required=True, help="lattice extents, e.g. 16,16 or 8,8,8,8")
    s.add_argument("--beta", type=float, help="gauge coupling (u1, su2, su3, sun)")
    s.add_argument("--m2", type=float, help="phi^4 mass term m^2 (Albergo et al. 2019 form)")
    s.add_argument("--lam", type=float, help="phi^4 quartic coupling lambda")
    s.add_argument("--N", type=int, help="number of colours for sun")
    s.add_argument("--algorithm", default="hmc", help="metropolis, heatbath or hmc (default hmc)")
    s.add_argument("--step", type=float, help="HMC step size (default 0.1, or 1/nsteps), or the Metropolis proposal width")
    s.add_argument("--nsteps", type=int, help="HMC molecular-dynamics steps per trajectory (default 10, or round(1/step))")
    s.add_argument("--integrator", choices=["leapfrog", "omelyan"], help="HMC integrator (default leapfrog)")
    s.add_argument("--overrelax", type=int, help="overrelaxation sweeps per heatbath sweep")
    s.add_argument(
        "--instanton-every", type=int, metavar="K",
        help="2D u1 with --algorithm hmc only: after every K HMC trajectories propose adding or removing a smooth "
        "instanton (charge +-1), accepted with min(1, exp(-dS)); one step is then K trajectories + one instanton "
        "move (latticeml.samplers.instanton; 0 = plain HMC)",
    )
    s.add_argument("--n", type=int, default=1000, help="number of measurements (default 1000)")
    s.add_argument("--therm", type=int, default=100, help="thermalisation steps (default 100)")
    s.add_argument("--every", type=int, default=1, help="steps between measurements (default 1)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--start", choices=["hot", "cold"], default="hot", help="starting configuration (default hot)")
    s.add_argument("--out", help="write the measured configurations to this .npz ensemble")
    s.add_argument("--checkpoint", help="checkpoint file (default: next to --out as NAME.ckpt.npz)")
    s.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (default 500)")
    s.add_argument("--resume", metavar="CHECKPOINT", help="continue the chain stored in CHECKPOINT (same theory and settings)")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_sample)

    m = sub.add_parser("measure", help="re-measure a saved ensemble")
    m.add_argument("ensemble", help="an ensemble .npz written by latticeml sample --out")
    m.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    m.set_defaults(func=_cmd_measure)


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

    _add_sample_parser(sub)
    for register in _EXTRA_COMMANDS:
        register(sub)
    return p


# Later modules add subcommands here: each entry is a function ``register(subparsers)``.
_EXTRA_COMMANDS: list = []
_EXTRA_COMMANDS.append(lambda sub: __import__("latticeml.flows.cli", fromlist=["register"]).register(sub))  # latticeml flow


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
