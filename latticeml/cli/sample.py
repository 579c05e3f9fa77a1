"""``latticeml sample`` and ``latticeml measure``: Markov chains from the command line, and re-measuring.

    latticeml sample u1 --shape 16,16 --beta 2 --algorithm heatbath --overrelax 1 --n 2000
    latticeml sample su3 --shape 4,4,4,4 --beta 5.7 --step 0.05 --nsteps 20 --integrator omelyan --json
    latticeml sample su3 --shape 4,4,4,4 --beta 4.2 --action iwasaki --out su3.npz   (or --c1 -0.331)
    latticeml measure su3.npz --json

The couplings are not written here: each theory in the registry
(:func:`latticeml.theories.base.theory_registry`) declares them as ``Parameter(name, kind, help,
default, choices)``, and :func:`add_coupling_flags` makes one ``--name`` flag of each (a name
several theories declare, such as ``--beta``, is one flag; its help lists the theories). A flag
the chosen theory does not declare is an error, as is a missing required one; values are
converted by the declared kind (``float`` values must be finite).

Everything that can be checked before the chain starts is checked first, each with one line on
stderr and exit status 2: the shape, the couplings (then the theory's own checks, e.g. lam >= 0),
the algorithm and its settings (a sampler that refuses the theory says which algorithms support
it), the files (``--out``'s folder must exist; ``--resume`` must be a readable checkpoint), and the
memory the arrays need (:func:`estimated_bytes`).
"""

from __future__ import annotations

import argparse
import math

from ..samplers.chain import chain_summary
from ..stats import summarise
from .common import (
    UserError, check_memory, count, described, finite_float, parse_shape, positive_float, readable_file, report,
    writable_file,
)

__all__ = ["register", "add_coupling_flags", "add_algorithm_flags", "add_chain_flags", "couplings_from_args", "estimated_bytes"]

#: HMC's trajectory when neither --step nor --nsteps is given: 10 steps of 0.1 (length 1).
HMC_DEFAULT_STEP, HMC_DEFAULT_NSTEPS = 0.1, 10
#: More leapfrog steps per trajectory than this, implied by a tiny --step alone, is surely a typo.
MAX_IMPLIED_NSTEPS = 100_000
#: Flags that choose the same thing two ways: at most one of each group may be given.
EXCLUSIVE = (("action", "c1"),)
#: Dimensions the command line runs a theory in, where the library allows more than it has been
#: tested in: the SU(N) kernels take any D >= 2, but the observables and tests cover D = 2, 3, 4.
DIMENSIONS = {"su2": (2, 3, 4), "su3": (2, 3, 4), "sun": (2, 3, 4)}


# ----------------------------------------------------------------------------- couplings from the registry


def _registry() -> dict:
    from ..theories.base import theory_registry

    return theory_registry()


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _theory_summary(registry: dict) -> str:
    """``phi4 (--m2, --lam), u1 (--beta, [--action | --c1]), ...``: each theory with its couplings."""

    def flags(cls):
        names = [p.name for p in cls.parameters]
        out = []
        for p in cls.parameters:
            group = next((g for g in EXCLUSIVE if p.name in g and all(n in names for n in g)), None)
            if group and p.name != group[0]:
                continue
            out.append(f"[{' | '.join(map(_flag, group))}]" if group else _flag(p.name) if p.required else f"[{_flag(p.name)}]")
        return ", ".join(out)

    return "; ".join(f"{name} ({flags(cls)})" for name, cls in registry.items())


def add_coupling_flags(parser, registry: dict) -> None:
    """One ``--name`` flag per declared parameter (values kept as text: converted per theory later)."""
    by_name: dict = {}
    for theory, cls in registry.items():
        for p in cls.parameters:
            by_name.setdefault(p.name, []).append((theory, p))
    group = parser.add_argument_group("couplings (each theory declares its own; optional ones show their default)")
    exclusive = {}
    for names in EXCLUSIVE:
        if all(n in by_name for n in names):
            mutex = group.add_mutually_exclusive_group()
            exclusive.update({n: mutex for n in names})
    for name, declared in by_name.items():
        theories, p = [t for t, _ in declared], declared[0][1]
        metavar = "{" + ",".join(map(str, p.choices)) + "}" if p.kind == "choice" else {"int": "N", "float": "X"}.get(p.kind, "VALUE")
        default = "" if p.required else f"; default {p.default}"
        target = exclusive.get(name, group)
        target.add_argument(_flag(name), dest=f"coupling_{name}", metavar=metavar,
                            help=f"{p.help} ({', '.join(theories)}{default})")


def _convert(theory: str, p, text: str):
    flag = _flag(p.name)
    if p.kind == "float":
        try:
            return finite_float(text)
        except argparse.ArgumentTypeError as exc:  # its message names the problem: "must be a finite number, ..."
            raise UserError(f"{flag} {exc}") from None
    if p.kind == "int":
        try:
            return int(text)
        except ValueError:
            raise UserError(f"{flag} must be an integer, got {text!r}") from None
    if p.kind == "choice":
        if text not in p.choices:
            raise UserError(f"{flag} must be one of {', '.join(map(str, p.choices))}; got {text!r}")
        return text
    raise UserError(f"{theory} declares {flag} of kind {p.kind!r}, which the command line cannot read")  # pragma: no cover


def couplings_from_args(args, registry: dict) -> dict:
    """The couplings the user gave for ``args.theory``, converted by their declared kinds.

    Only the given flags are returned (``make_theory`` fills in the defaults), so what is stored
    with an ensemble is what the theory reports in ``params``.
    """
    cls = registry[args.theory]
    declared = {p.name: p for p in cls.parameters}
    given = {k.removeprefix("coupling_"): v for k, v in vars(args).items() if k.startswith("coupling_") and v is not None}
    takes = ", ".join(_flag(n) for n in declared) or "no couplings"
    foreign = [n for n in given if n not in declared]
    if foreign:
        raise UserError(f"theory {args.theory} takes no {_flag(foreign[0])}; it takes {takes}")
    missing = [p.name for p in cls.parameters if p.required and p.name not in given]
    if missing:
        raise UserError(f"theory {args.theory} needs {' and '.join(map(_flag, missing))} (it takes {takes})")
    for names in EXCLUSIVE:
        both = [n for n in names if n in given]
        if len(both) > 1:
            raise UserError(f"give one of {' or '.join(map(_flag, both))}, not both: they choose the same thing")
    return {name: _convert(args.theory, declared[name], text) for name, text in given.items()}


# ----------------------------------------------------------------------------- memory


def estimated_bytes(theory, n_kept: int) -> int:
    """Bytes of the field, momenta and force (three fields: what every algorithm holds at least), plus
    ``n_kept`` configurations kept in memory for ``--out``, from the theory's declared ``field_shape`` and
    ``field_dtype`` (nothing is allocated)."""
    one = theory.field_dtype.itemsize * math.prod(theory.field_shape)
    return one * (3 + n_kept)


# ----------------------------------------------------------------------------- sample


def _sampler_settings(args) -> dict:
    """The algorithm settings given on the command line (only those the user set)."""
    if args.instanton_every is not None and (args.algorithm != "hmc" or args.theory != "u1"):
        raise UserError(
            "--instanton-every mixes instanton moves into HMC for 2D U(1) only: use it with "
            f"`latticeml sample u1 --algorithm hmc`; got theory {args.theory} with --algorithm {args.algorithm}"
        )
    settings = {}
    if args.algorithm in ("hmc", "slhmc"):  # slhmc: with --fermions staggered (see _with_fermions)
        # trajectories of length 1 unless told otherwise: 10 steps of 0.1
        step, nsteps = args.step, args.nsteps
        if step is None and nsteps is None:
            step, nsteps = HMC_DEFAULT_STEP, HMC_DEFAULT_NSTEPS
        elif nsteps is None:
            nsteps = max(1, round(1.0 / step))
            if nsteps > MAX_IMPLIED_NSTEPS:
                raise UserError(f"--step {step:g} alone makes a trajectory of length 1 take {nsteps:.3g} steps; "
                                "give --nsteps as well (the trajectory is step x nsteps long)")
        elif step is None:
            step = 1.0 / nsteps
        settings.update(step_size=step, n_steps=nsteps, integrator=args.integrator)
        if args.instanton_every:
            settings["instanton_every"] = args.instanton_every
    elif args.algorithm == "metropolis":
        settings.update(step_size=args.step)
    elif args.algorithm == "heatbath":
        settings.update(overrelax=args.overrelax)
    elif args.algorithm == "l2hmc":
        if not getattr(args, "model", None):
            raise UserError("--algorithm l2hmc needs --model MODEL.npz (train one with `latticeml l2hmc train u1 ...`)")
        readable_file(args.model, "--model")
        settings.update(model=args.model)
    return {k: v for k, v in settings.items() if v is not None}


def _check_files(args) -> str | None:
    """Check every path before the run; return the checkpoint file the chain writes (or None)."""
    if args.out:
        writable_file(args.out, "--out")
    checkpoint = args.checkpoint or (f"{args.out.removesuffix('.npz')}.ckpt.npz" if args.out else None)
    if args.resume:
        readable_file(args.resume, "a checkpoint for --resume")
        if args.checkpoint and args.checkpoint != args.resume:
            raise UserError("a resumed chain keeps writing to the checkpoint it came from: drop --checkpoint")
        checkpoint = args.resume
    if checkpoint:
        writable_file(checkpoint, "--checkpoint" if args.checkpoint else "the checkpoint file")
    if args.out and checkpoint and args.out == checkpoint:
        raise UserError(f"--out and the checkpoint are the same file {args.out!r}; give another --checkpoint")
    return checkpoint


def _gauge_file_format(args, theory) -> str | None:
    """``"ildg"``/``"nersc"`` when --out names such a file (.lime, .ildg, .nersc); they hold 4D SU(3) only."""
    from ..formats import format_for_path

    kind = format_for_path(args.out) if args.out else None
    if kind and not (len(theory.field_shape) == 7 and theory.field_shape[0] == 4 and theory.field_shape[-1] == 3
                     and theory.field_dtype.kind == "c"):
        raise UserError(f"--out {args.out!r}: {kind.upper()} files hold 4D SU(3) gauge fields only (the format "
                        f"defines nothing else); this is {theory.name} on {args.shape}: write an .npz ensemble instead")
    return kind


def _cmd_sample(args) -> int:
    import numpy as np

    from .. import io
    from ..samplers import ALGORITHMS, build_sampler, resume_chain, run_chain
    from ..theories.base import make_theory

    registry = _registry()
    if args.theory not in registry:
        raise UserError(f"unknown theory {args.theory!r}; choose one of {_theory_summary(registry)}")
    shape = parse_shape(args.shape)
    dims = DIMENSIONS.get(args.theory)
    if dims and len(shape) not in dims:
        raise UserError(f"{args.theory} runs in D = {', '.join(map(str, dims[:-1]))} or {dims[-1]} dimensions here; "
                        f"--shape {args.shape} has D = {len(shape)}")
    couplings = couplings_from_args(args, registry)
    if args.algorithm not in ALGORITHMS and not (args.algorithm == "slhmc" and getattr(args, "fermions", None)):
        raise UserError(f"unknown algorithm {args.algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
                        + (" (slhmc: with --fermions staggered)" if args.algorithm == "slhmc" else ""))
    settings = _sampler_settings(args)
    checkpoint = _check_files(args)
    try:
        theory = make_theory(args.theory, shape, backend=getattr(args, "backend", "cpu"), **couplings)  # allocates nothing of the lattice's size
    except (ValueError, TypeError) as exc:  # the library's one-line messages, e.g. lam >= 0, no GPU for --backend cuda
        raise UserError(str(exc)) from None
    if getattr(args, "backend", "cpu") != "cpu" and getattr(args, "fermions", None):
        raise UserError(f"--fermions runs on --backend cpu only (the fermion kernels have no {args.backend} version)")
    # before the sampler: its tables (checkerboards) already scale with the volume
    gauge_file = _gauge_file_format(args, theory)  # ILDG/NERSC: the last configuration only
    lattice = "x".join(map(str, shape))
    check_memory(estimated_bytes(theory, n_kept=args.n if args.out and not gauge_file else 0),
                 f"a {lattice} {args.theory} lattice (field, momenta, force"
                 + (f" and the {args.n} configurations --out keeps)" if args.out else ")"),
                 "choose a smaller --shape" + (" or --N" if "N" in couplings else "") + (" or --n" if args.out else ""))
    theory = _with_fermions(args, theory)
    if settings.get("integrator") == TWO_SCALE:
        if not getattr(args, "fermions", None):
            raise UserError(f"--integrator {TWO_SCALE} puts the gauge force on a finer scale than the fermion force: use it with --fermions staggered")
        from ..fermions import two_time_scale

        settings["integrator"] = two_time_scale(theory, TWO_SCALE_INNER)
    try:
        if args.algorithm == "slhmc":
            sampler = _fermion_slhmc_sampler(args, theory, settings)
        else:
            sampler = build_sampler(theory, args.algorithm, **settings)
    except (ValueError, TypeError) as exc:  # the library's one-line messages, e.g. odd extents
        raise UserError(str(exc)) from None

    if args.resume:
        try:
            io.load_checkpoint(args.resume)
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"--resume {args.resume!r} is not a chain checkpoint: {exc}") from None
        try:
            result = resume_chain(args.resume, sampler, progress=not args.quiet, checkpoint_every=args.checkpoint_every)
        except ValueError as exc:  # written by a different chain (theory, couplings or settings differ)
            raise UserError(str(exc)) from None
    else:
        rng = np.random.default_rng(args.seed)
        field = theory.cold_start() if args.start == "cold" else theory.hot_start(rng)
        result = run_chain(
            sampler, field, rng, n_measure=args.n, n_therm=args.therm, every=args.every, keep_fields=bool(args.out) and not gauge_file,
            checkpoint=checkpoint, checkpoint_every=args.checkpoint_every, progress=not args.quiet,
        )
    payload = chain_summary(theory, sampler, result, n=args.n, therm=args.therm, every=args.every, seed=args.seed)
    if getattr(args, "fermions", None):  # the CG cost of the run: solves in the molecular dynamics and measurements
        payload["cg_iterations_mean"] = theory.mean_cg_iterations
        payload["conventions"] = FERMION_CONVENTIONS
    if args.algorithm == "l2hmc":  # its cost and its reason to exist, on the axes HMC is compared on
        charges = np.rint(result.records.get("topological_charge", np.zeros(0)))
        payload["force_evaluations_per_step"] = sampler.settings["n_force_evaluations_per_step"]
        payload["charge_changes"] = int(np.count_nonzero(np.diff(charges)))
    params = payload["params"]
    if gauge_file:
        from ..formats import write_gauge

        write_gauge(args.out, result.state.field, metadata={"theory": theory.name, "params": params})
        if not args.json:
            print(f"last configuration written to {args.out} ({gauge_file.upper()} format)")
    elif args.out:
        io.save_ensemble(args.out, result.fields, theory=theory.name, params=params, observables=result.records)
        if not args.json:
            print(f"ensemble of {len(result.fields)} configurations written to {args.out}")
    report(payload, args.json)
    return 0


# ----------------------------------------------------------------------------- dynamical fermions

#: What the fermion observables mean (printed with --json, see latticeml.fermions.pseudofermion).
FERMION_CONVENTIONS = (
    "plaquette <Re tr U_P / N>; polyakov_loop |(1/V_s) sum_x tr P(x) / N| along axis 0 (time); polyakov_loop_trace "
    "Re (1/V_s) sum_x tr P(x) (not divided by N); chiral_condensate (1/V) Re tr M^-1, trace over sites and colour, "
    "M = m + D staggered, antiperiodic in time, Z2 noise"
)


#: --integrator two-scale (with --fermions): Sexton-Weingarten, the gauge force on a scale TWO_SCALE_INNER times finer.
TWO_SCALE, TWO_SCALE_INNER = "two-scale", 4


def _with_fermions(args, theory):
    """``theory`` times det(M)^k of --n-staggered staggered fields (latticeml.fermions), or itself without --fermions."""
    fermions = getattr(args, "fermions", None)
    given = [f for f, v in (("--mass", args.mass), ("--n-staggered", args.n_staggered), ("--md-mass", args.md_mass)) if v is not None]
    if not fermions:
        if given:
            raise UserError(f"{given[0]} sets the dynamical fermions: add --fermions staggered")
        return theory
    if args.theory not in ("u1", "su2", "su3", "sun"):
        raise UserError(f"--fermions staggered needs a gauge theory (u1, su2, su3, sun), got {args.theory}")
    if args.mass is None:
        raise UserError("--fermions staggered needs --mass (the staggered mass, > 0)")
    if args.algorithm not in ("hmc", "slhmc"):
        raise UserError(f"dynamical fermions are sampled by --algorithm hmc or slhmc (the determinant is non-local); got --algorithm {args.algorithm}")
    if (args.md_mass is not None) != (args.algorithm == "slhmc"):
        raise UserError("--algorithm slhmc needs --md-mass (the mass in the molecular dynamics)" if args.md_mass is None
                        else "--md-mass is the molecular-dynamics mass of --algorithm slhmc")
    from ..fermions import StaggeredFermions

    try:
        return StaggeredFermions(theory, mass=args.mass, n_staggered=1 if args.n_staggered is None else args.n_staggered)
    except (ValueError, TypeError) as exc:  # odd extents
        raise UserError(str(exc)) from None


def _fermion_slhmc_sampler(args, theory, settings):
    """Self-learning HMC of the fermion theory with the net of --model (latticeml.fermions.selflearning)."""
    from ..fermions import selflearning

    if not args.model:
        raise UserError("--algorithm slhmc needs --model NET.npz (train one with `latticeml slhmc train ...`)")
    path = readable_file(args.model, "--model")
    try:
        net, _ = selflearning.load_net(path)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise UserError(f"--model {path!r} is not a net written by `latticeml slhmc train`: {exc}") from None
    return selflearning.slhmc_sampler(theory, net, md_mass=args.md_mass, step_size=settings["step_size"],
                                      n_steps=settings["n_steps"], integrator=settings.get("integrator") or "omelyan")


def add_fermion_flags(parser):
    """--fermions, --mass, --n-staggered (latticeml.fermions)."""
    g = parser.add_argument_group("dynamical fermions (gauge theories, --algorithm hmc or slhmc)")
    g.add_argument("--fermions", choices=["staggered"], help="add dynamical staggered fermions (pseudofermion HMC, det(M)^k; "
                   "--integrator two-scale puts the gauge force on a 4x finer scale)")
    g.add_argument("--mass", type=positive_float, metavar="M", help="staggered mass m > 0")
    g.add_argument("--n-staggered", type=count(1), metavar="K", help="k in det(M)^k: 1 = one staggered field (4 tastes in 4D, 2 in 2D), default 1")
    g.add_argument("--md-mass", type=positive_float, metavar="M",
                   help="--algorithm slhmc: the staggered mass of the molecular dynamics, whose links the net of --model smears")
    return g


# ----------------------------------------------------------------------------- measure


def _cmd_measure(args) -> int:
    from .. import io
    from ..theories.base import make_theory

    path = readable_file(args.ensemble, "an ensemble .npz")
    try:
        ens = io.load_ensemble(path)
        p = dict(ens.params)
        registry = _registry()
        if ens.theory not in registry:
            raise ValueError(f"it holds theory {ens.theory!r}, which this latticeml does not know")
        declared = {q.name for q in registry[ens.theory].parameters}
        couplings = {k: v for k, v in p.items() if k in declared}
        if ens.metadata.get("format") in ("ildg", "nersc") and "beta" not in couplings:
            couplings["beta"] = 1.0  # a file from another code: the observables measured here do not depend on beta
        theory = make_theory(ens.theory, p["shape"], **couplings)
        configs = [theory.check_field(cfg) for cfg in ens.configs]
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise UserError(f"{path!r} is not a usable ensemble written by `latticeml sample --out` (nor an ILDG/NERSC "
                        f"gauge file): {exc}") from None
    records: dict = {}
    for cfg in configs:
        for k, v in theory.observables(cfg).items():
            records.setdefault(k, []).append(v)
    report({"theory": theory.name, "params": p, "acceptance": None, "observables": summarise(records)}, args.json)
    return 0


# ----------------------------------------------------------------------------- parsers


def _listed(kind):
    """Argument type ``kind`` -> one that reads a comma list of such values (``1,2,3`` -> ``[1, 2, 3]``)."""

    def parse(text: str) -> list:
        return [kind(item) for item in text.split(",")]

    parse.__name__ = f"comma list of {getattr(kind, '__name__', 'values')}"
    return parse


def add_algorithm_flags(parser, *, listed: bool = False):
    """The algorithm group (--algorithm, --step, --nsteps, ...); ``listed``: each takes a comma list (scan)."""
    from ..samplers import ALGORITHMS
    from ..samplers.integrators import INTEGRATORS

    of = _listed if listed else (lambda kind: kind)
    lists = " (a comma list scans several)" if listed else ""
    a = parser.add_argument_group("algorithm" + lists)
    a.add_argument("--algorithm", type=of(str), default=["hmc"] if listed else "hmc", metavar="NAME",
                   help=f"{', '.join(ALGORITHMS)} (default hmc)")
    a.add_argument("--step", type=of(positive_float), metavar="X", help="HMC step size (default 0.1, or 1/nsteps), or the Metropolis proposal width")
    a.add_argument("--nsteps", type=of(count(1)), metavar="N", help="HMC molecular-dynamics steps per trajectory (default 10, or round(1/step))")
    a.add_argument("--integrator", type=of(str), metavar="NAME",
                   help=f"HMC integrator: {', '.join(INTEGRATORS)} (latticeml.samplers.integrators; default leapfrog)")
    a.add_argument("--overrelax", type=of(count(0)), metavar="K", help="overrelaxation sweeps per heatbath sweep")
    a.add_argument("--model", type=of(str), metavar="MODEL.npz",
                   help="--algorithm l2hmc: the trained model (`latticeml l2hmc train u1 ... --out MODEL.npz`)")
    a.add_argument(
        "--instanton-every", type=of(count(0)), metavar="K",
        help="2D u1 with --algorithm hmc only: after every K HMC trajectories propose adding or removing a smooth "
        "instanton (charge +-1), accepted with min(1, exp(-dS)); one step is then K trajectories + one instanton "
        "move (latticeml.samplers.instanton; 0 = plain HMC)",
    )
    return a


def add_chain_flags(parser, *, listed: bool = False):
    """The chain group (--n, --therm, --every); ``listed``: each takes a comma list (scan). Returns the group."""
    of = _listed if listed else (lambda kind: kind)
    c = parser.add_argument_group("chain" + (" (a comma list scans several)" if listed else ""))
    c.add_argument("--n", type=of(count(1)), metavar="N", default=[1000] if listed else 1000, help="number of measurements (default 1000)")
    c.add_argument("--therm", type=of(count(0)), metavar="N", default=[100] if listed else 100, help="thermalisation steps (default 100)")
    c.add_argument("--every", type=of(count(1)), metavar="K", default=[1] if listed else 1, help="steps between measurements (default 1)")
    return c


def register(subparsers) -> None:
    """Add ``latticeml sample`` (flags from the theory registry) and ``latticeml measure``."""
    registry = _registry()
    s = subparsers.add_parser(
        "sample",
        help="run a Markov chain and print observables with Gamma-method errors",
        **described(
            "Run a Markov chain for a lattice theory and print each observable's mean, Gamma-method error "
            "(Wolff 2004, S = 1.5) and tau_int.\n\n"
            f"Theories and their couplings: {_theory_summary(registry)}. The gauge theories take an improved "
            "action with --action luscher-weisz or iwasaki, or any rectangle coefficient with --c1 (sampled by "
            "hmc: the local updates refuse it).\n\n"
            "Mistakes (a malformed value, a folder that does not exist, a lattice too large for memory) stop the "
            "command before the chain starts, with one line and exit status 2.",
            "latticeml sample phi4 --shape 16,16 --m2 -4 --lam 8 --algorithm metropolis --n 2000",
            "latticeml sample u1 --shape 16,16 --beta 2 --algorithm heatbath --overrelax 1 --n 2000",
            "latticeml sample u1 --shape 20,20 --beta 6.25 --instanton-every 1   # cures topological freezing",
            "latticeml sample su3 --shape 4,4,4,4 --beta 5.7 --step 0.05 --nsteps 20 --integrator omelyan --json",
            "latticeml sample su3 --shape 4,4,4,4 --beta 4.2 --action iwasaki --n 200 --out su3.npz",
            "latticeml sample su3 --shape 4,4,4,4 --beta 4.2 --action iwasaki --resume su3.ckpt.npz",
            "latticeml sample su3 --shape 16,16,16,16 --beta 6.0 --step 0.05 --nsteps 20 --backend cuda   # on a GPU",
        ),
    )
    s.add_argument("theory", metavar="THEORY", help=", ".join(registry))
    s.add_argument("--shape", required=True, metavar="L0,L1,...", help="lattice extents >= 2, e.g. 16,16 or 8,8,8,8")
    add_coupling_flags(s, registry)

    add_algorithm_flags(s)
    add_fermion_flags(s)
    c = add_chain_flags(s)
    c.add_argument("--seed", type=count(0), metavar="S", default=0, help="random seed, an integer >= 0 (default 0)")
    c.add_argument("--start", choices=["hot", "cold"], default="hot", help="starting configuration (default hot)")
    c.add_argument("--backend", default="cpu", metavar="NAME",
                   help="where the kernels run: cpu (default) or cuda (a GPU, pip install 'latticeml[cuda]'; u1, su2, su3 "
                        "with the Wilson action and hmc; the same seed gives the cpu chain up to rounding)")

    f = s.add_argument_group("files and output")
    f.add_argument("--out", metavar="FILE.npz", help="write the measured configurations to this .npz ensemble (its folder must exist); "
                   "FILE.lime / FILE.ildg / FILE.nersc (4D su3) write the last configuration as an ILDG or NERSC file")
    f.add_argument("--checkpoint", metavar="FILE.npz", help="checkpoint file (default: next to --out as NAME.ckpt.npz)")
    f.add_argument("--checkpoint-every", type=count(1), metavar="N", default=500, help="steps between checkpoints (default 500)")
    f.add_argument("--resume", metavar="CHECKPOINT", help="continue the chain stored in CHECKPOINT (same theory and settings)")
    f.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_sample)

    m = subparsers.add_parser(
        "measure",
        help="re-measure a saved ensemble",
        **described(
            "Measure the default observables of every configuration in an ensemble written by "
            "`latticeml sample --out` (or `latticeml flow sample --out`) and print them with Gamma-method errors. "
            "ILDG (LIME) and NERSC gauge configuration files are read too (one 4D SU(3) configuration; checksum, "
            "plaquette and link trace verified).",
            "latticeml measure su3.npz",
            "latticeml measure cfg.lime",
            "latticeml measure su3.npz --json",
        ),
    )
    m.add_argument("ensemble", help="an ensemble .npz written by latticeml sample --out, or an ILDG/NERSC gauge file")
    m.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    m.set_defaults(func=_cmd_measure)
