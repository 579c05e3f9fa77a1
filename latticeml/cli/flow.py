"""``latticeml flow``: train a normalizing flow (phi^4, 2D U(1)) and sample with flow-based MCMC.

(The flows themselves are :mod:`latticeml.flows`; this module only reads the command line, and
the flows package does not import it.)

    latticeml flow train phi4 --shape 8,8 --m2 -4 --lam 8 --steps 2500 --batch 64 --seed 1 --out model.npz
    latticeml flow train u1 --shape 8,8 --beta 2 --steps 1000 --out u1.npz      # gauge-equivariant
    latticeml flow train --resume model.ckpt.npz --steps 5000 --out model.npz
    latticeml flow sample model.npz --n 8192 --seed 2 --json

``train`` writes the model (``.npz``: parameters, architecture and the theory it was trained for)
and, next to it, a checkpoint ``NAME.ckpt.npz`` that ``--resume`` continues bit for bit (also after
Ctrl-C or ``kill PID``: both write the checkpoint at the last complete step). ``sample`` runs the
independence Metropolis chain with the model as proposal and prints the acceptance, the ESS of the
proposals (with the sample size it was computed on), the importance-sampling estimate of ``ln Z``
with its error (``log_z``; U(1) densities are with respect to the normalised Haar measure, so it
compares with ``-beta V + ln sum_n I_n(beta)^V``), the reverse-KL lower bound, and the theory's
observables with Gamma-method errors, under the same keys as ``latticeml sample``.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading

import numpy as np

from ..stats import summarise
from .common import (
    UserError, check_memory, count, described, finite_float, parse_shape, positive_float, readable_file, report,
    writable_file,
)

__all__ = ["register"]


def _model_metadata(theory, args, history) -> dict:
    tail = slice(-min(100, len(history["loss"])), None) if len(history["loss"]) else slice(0, 0)
    return {
        "theory": theory.name,
        "theory_params": theory.params,
        "training": {
            "steps": int(len(history["loss"])),
            "batch_size": args.batch,
            "lr": args.lr,
            "lr_final": args.lr_final,
            "seed": args.seed,
            "final": {k: float(np.mean(v[tail])) if len(v) else None for k, v in history.items()},
        },
    }


@contextlib.contextmanager
def _sigterm_as_ctrl_c():
    """``kill PID`` stops a training like Ctrl-C: the checkpoint is written at the last complete step.

    (A job started in the background by a non-interactive shell, e.g. with ``nohup ... &``, ignores
    SIGINT, so SIGTERM is the way to stop it.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_activation_memory(shape, batch: int, n_layers: int, hidden, extra_channels: int = 3) -> None:
    """Refuse a flow whose activations alone exceed the memory: a lower bound on what it needs.

    Each coupling layer's conv net keeps ``batch x V x (in + sum(hidden) + out)`` float64 values for
    the reverse pass (phi^4: 1 + hidden + 2 (s, t); U(1): 2 + hidden + the circle parameters).
    """
    V = math.prod(shape)
    n_bytes = 8 * batch * V * n_layers * (extra_channels + sum(hidden))
    check_memory(n_bytes, f"a flow of {n_layers} layers on a {'x'.join(map(str, shape))} lattice with batches of {batch}",
                 "choose a smaller --shape, --batch, --layers or --hidden")


def _parse_hidden(text: str) -> list[int]:
    """``"8,8"`` -> ``[8, 8]``: the hidden channels of each coupling layer's conv net, each >= 1."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isascii() and p.isdigit() and int(p) >= 1 for p in parts):
        raise UserError(f"--hidden must be channel counts >= 1 separated by commas, such as 8,8; got {text!r}")
    return [int(p) for p in parts]


def _load_checkpoint_metadata(path: str) -> dict:
    from .. import io

    readable_file(path, "a training checkpoint for --resume")
    try:
        return io.load_checkpoint(path).metadata
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"--resume {path!r} is not a training checkpoint: {exc}") from None


def _cmd_train(args) -> int:
    from ..theories import make_theory
    from ..flows.model import phi4_flow, save_flow
    from ..flows.training import resume_training, train

    if not args.out:
        raise UserError("give --out MODEL.npz: where to write the trained flow")
    writable_file(args.out, "--out")
    progress = not args.quiet
    if args.resume:
        meta = _load_checkpoint_metadata(args.resume)
        if args.checkpoint and args.checkpoint != args.resume:
            raise UserError("a resumed training keeps writing to the checkpoint it came from: drop --checkpoint")
        writable_file(args.resume, "--resume")
        checkpoint = args.resume
        settings = meta.get("settings", {}) if isinstance(meta, dict) else {}
        args.batch, args.lr, args.lr_final = settings.get("batch_size"), settings.get("lr"), settings.get("lr_final")
        args.seed = None  # the generator state comes from the checkpoint
        try:
            with _sigterm_as_ctrl_c():
                result = resume_training(args.resume, steps=args.steps, checkpoint_every=args.checkpoint_every, progress=progress)
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"--resume {args.resume!r}: {exc}") from None
    else:
        if args.theory not in ("phi4", "u1"):
            raise UserError(f"flows are implemented for phi4 and u1; got theory {args.theory!r}")
        if args.theory == "phi4" and (args.shape is None or args.m2 is None or args.lam is None):
            raise UserError("flow train phi4 needs --shape, --m2 and --lam (or --resume CHECKPOINT)")
        if args.theory == "u1" and (args.shape is None or args.beta is None):
            raise UserError("flow train u1 needs --shape and --beta (or --resume CHECKPOINT)")
        for flag, theory_of_flag in (("m2", "phi4"), ("lam", "phi4"), ("beta", "u1"), ("transform", "u1"), ("components", "u1")):
            if getattr(args, flag) is not None and args.theory != theory_of_flag:
                raise UserError(f"--{flag} belongs to flow train {theory_of_flag}, not {args.theory}")
        if args.steps is None:
            raise UserError("give --steps N: the number of training steps")
        checkpoint = args.checkpoint or f"{args.out.removesuffix('.npz')}.ckpt.npz"
        writable_file(checkpoint, "--checkpoint" if args.checkpoint else "the checkpoint file")
        shape = parse_shape(args.shape)
        hidden = _parse_hidden(args.hidden)
        weights_rng = np.random.default_rng([args.seed, 0])
        try:
            if args.theory == "u1":
                from ..flows.circle import n_parameters
                from ..flows.model import u1_flow

                transform = args.transform or "ncp"
                components = args.components or (2 if transform == "ncp" else 8)
                _check_activation_memory(shape, args.batch, args.layers, hidden, 2 + n_parameters(transform, components))
                theory = make_theory("u1", shape, beta=args.beta)
                flow = u1_flow(shape, n_layers=args.layers, hidden=hidden, kernel_size=args.kernel, transform=transform,
                               components=components, rng=weights_rng)
            else:
                _check_activation_memory(shape, args.batch, args.layers, hidden)
                theory = make_theory("phi4", shape, m2=args.m2, lam=args.lam)
                flow = phi4_flow(shape, n_layers=args.layers, hidden=hidden, kernel_size=args.kernel, rng=weights_rng)
        except (ValueError, TypeError) as exc:
            raise UserError(str(exc)) from None
        with _sigterm_as_ctrl_c():
            result = train(
                flow, theory, steps=args.steps, batch_size=args.batch, lr=args.lr, lr_final=args.lr_final,
                rng=np.random.default_rng([args.seed, 1]),
                checkpoint=checkpoint, checkpoint_every=args.checkpoint_every, progress=progress,
            )
    meta = _model_metadata(result.theory, args, result.history)
    save_flow(args.out, result.flow, metadata=meta)
    final = meta["training"]["final"]
    if args.json:
        import json

        print(json.dumps({"model": args.out, "checkpoint": checkpoint, **meta}))
    else:
        n_tail = min(100, result.steps)
        print(f"trained {result.steps} steps (batch {args.batch}); means over the last {n_tail} steps: "
              f"loss {final['loss']:.4f}, ESS per configuration of a batch of {args.batch}: {final['ess']:.3f}, "
              f"expected flow-MCMC acceptance {final['acceptance']:.3f}")
        print(f"model written to {args.out}; checkpoint {checkpoint}")
    return 0


def _cmd_sample(args) -> int:
    from .. import io
    from ..theories import make_theory
    from ..flows.free_energy import log_partition_function, reverse_kl_bound
    from ..flows.mcmc import flow_mcmc
    from ..flows.model import load_flow

    path = readable_file(args.model, "a flow model .npz")
    if args.out:
        writable_file(args.out, "--out")
    try:
        flow = load_flow(path)
        name = flow.metadata.get("theory", "phi4")
        stored = flow.metadata.get("theory_params", {})
        if name == "u1":
            if args.m2 is not None or args.lam is not None:
                raise UserError(f"{path!r} is a U(1) model: --m2 and --lam belong to phi4 models (use --beta)")
            beta = args.beta if args.beta is not None else stored.get("beta")
            if beta is None:
                raise UserError(f"{path!r} does not record its coupling: give --beta")
            theory = make_theory("u1", flow.shape, beta=beta)
        else:
            if args.beta is not None:
                raise UserError(f"{path!r} is a phi4 model: --beta belongs to u1 models (use --m2, --lam)")
            m2 = args.m2 if args.m2 is not None else stored.get("m2")
            lam = args.lam if args.lam is not None else stored.get("lam")
            if m2 is None or lam is None:
                raise UserError(f"{path!r} does not record its couplings: give --m2 and --lam")
            theory = make_theory("phi4", flow.shape, m2=m2, lam=lam)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{path!r} is not a usable flow model written by `latticeml flow train`: {exc}") from None
    field_size = math.prod(theory.field_shape)
    check_memory(8 * args.batch * field_size * 4, f"batches of {args.batch} proposals on a {theory.volume}-site lattice",
                 "choose a smaller --batch")
    if args.out:
        check_memory(8 * args.n * field_size, f"a chain of {args.n} configurations to write to --out", "choose a smaller --n")
    result = flow_mcmc(flow, theory, np.random.default_rng(args.seed), n_steps=args.n, batch_size=args.batch, keep_fields=bool(args.out))
    params = dict(theory.params)
    params.update(algorithm="flow_mcmc", model=args.model, n=args.n, seed=args.seed)
    log_z, log_z_error = log_partition_function(result.proposal_log_weights)
    bound, bound_error = reverse_kl_bound(result.proposal_log_weights)
    payload = {
        "theory": theory.name,
        "params": params,
        "acceptance": result.acceptance,
        "ess": result.ess,
        "ess_sample_size": args.n,
        "log_z": {"mean": log_z, "error": log_z_error},
        "log_z_lower_bound": {"mean": bound, "error": bound_error},
        "observables": summarise(result.records),
    }
    if args.out:
        io.save_ensemble(args.out, result.fields, theory=theory.name, params=params, observables=result.records)
        if not args.json:
            print(f"ensemble of {len(result.fields)} configurations written to {args.out}")
    report(payload, args.json)
    if not args.json:
        print(f"ESS per configuration of the {args.n} proposals: {result.ess:.4f}")
        print(f"ln Z (importance sampling) = {log_z:.4f} +- {log_z_error:.4f}; reverse-KL lower bound {bound:.4f} +- {bound_error:.4f}")
    return 0


def register(subparsers) -> None:
    """Add ``flow train`` and ``flow sample`` to the ``latticeml`` command line."""
    flow = subparsers.add_parser(
        "flow",
        help="normalizing flows for phi^4 and 2D U(1): train (reverse KL) and sample (flow-based MCMC, ln Z)",
        **described(
            "Normalizing flows for phi^4 (Albergo, Kanwar & Shanahan, PRD 100 (2019) 034515) and gauge-equivariant "
            "flows for 2D U(1) (Kanwar et al., PRL 125 (2020) 121601): `latticeml flow train` and `latticeml flow sample`.",
            "latticeml flow train phi4 --shape 8,8 --m2 -4 --lam 8 --steps 2500 --batch 64 --seed 1 --out model.npz",
            "latticeml flow train u1 --shape 8,8 --beta 2 --steps 1000 --out u1.npz",
            "latticeml flow train --resume model.ckpt.npz --steps 5000 --out model.npz",
            "latticeml flow sample model.npz --n 8192 --seed 2 --json",
        ),
    )
    sub = flow.add_subparsers(dest="flow_command", metavar="SUBCOMMAND")

    t = sub.add_parser(
        "train",
        help="train a flow by reverse KL (no data needed): affine couplings (phi4) or gauge-equivariant couplings (u1)",
        **described(
            "Train a flow towards exp(-S) by minimising the reverse KL divergence with Adam: for phi4 affine "
            "coupling layers (checkerboard masks, periodic conv nets); for u1 gauge-equivariant couplings "
            "(plaquette stripes, a mixture of non-compact projections or a circular spline on the active "
            "plaquettes, uniform Haar prior). Telemetry per step: loss, ESS of the batch, "
            "expected flow-MCMC acceptance. Writes the model to --out and a checkpoint next to it; Ctrl-C or "
            "`kill PID` writes the checkpoint at the last complete step.",
            "latticeml flow train phi4 --shape 8,8 --m2 -4 --lam 8 --steps 2500 --out model.npz",
            "latticeml flow train u1 --shape 8,8 --beta 2 --steps 1000 --out u1.npz",
            "latticeml flow train --resume model.ckpt.npz --steps 5000 --out model.npz",
        ),
    )
    t.add_argument("theory", nargs="?", default="phi4", help="phi4 (default) or u1 (2D, extents multiples of 4)")
    t.add_argument("--shape", help="lattice extents, e.g. 8,8")
    t.add_argument("--m2", type=finite_float, help="phi^4 mass term m^2 (Albergo et al. 2019 form)")
    t.add_argument("--lam", type=finite_float, help="phi^4 quartic coupling lambda >= 0")
    t.add_argument("--beta", type=finite_float, help="U(1) gauge coupling beta")
    t.add_argument("--transform", choices=["ncp", "spline"],
                   help="U(1) circle map: ncp (mixture of non-compact projections, default) or spline (circular rational-quadratic)")
    t.add_argument("--components", type=count(1), help="U(1): NCP mixture components (default 2) or spline bins (default 8)")
    t.add_argument("--steps", type=count(1), help="number of training steps (with --resume: the new total)")
    t.add_argument("--batch", type=count(2), default=64, help="samples per step, >= 2 (default 64)")
    t.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate (default 1e-3)")
    t.add_argument("--lr-final", type=positive_float, default=None,
                   help="anneal the rate along a cosine from --lr to this at the last step (default: constant --lr)")
    t.add_argument("--layers", type=count(1), default=16, help="coupling layers (default 16)")
    t.add_argument("--hidden", default="8,8", help="hidden channels of each conv net (default 8,8)")
    t.add_argument("--kernel", type=count(1), default=3, help="conv kernel size, odd (default 3)")
    t.add_argument("--seed", type=count(0), default=0,
                   help="random seed (default 0): the initial weights use default_rng([seed, 0]), the training default_rng([seed, 1])")
    t.add_argument("--out", help="write the trained model to this .npz (its folder must exist)")
    t.add_argument("--checkpoint", help="checkpoint file (default: next to --out as NAME.ckpt.npz)")
    t.add_argument("--checkpoint-every", type=count(1), default=100, help="steps between checkpoints (default 100)")
    t.add_argument("--resume", metavar="CHECKPOINT", help="continue the training stored in CHECKPOINT")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser(
        "sample",
        help="flow-based MCMC with a trained model; observables with Gamma-method errors",
        **described(
            "Independence Metropolis with the flow as proposal: exact for exp(-S) whatever the flow's quality. "
            "Prints acceptance, ESS (on --n proposals), the importance-sampling ln Z with its error and the "
            "reverse-KL lower bound, and the observables with errors and tau_int.",
            "latticeml flow sample model.npz --n 8192 --seed 2 --json",
            "latticeml flow sample model.npz --m2 -3.5 --out chain.npz   # reweight to a nearby coupling",
        ),
    )
    s.add_argument("model", help="a model .npz written by `latticeml flow train`")
    s.add_argument("--n", type=count(8), default=8192, help="chain length = number of proposals, >= 8 for the error analysis (default 8192)")
    s.add_argument("--seed", type=count(0), default=0, help="random seed (default 0)")
    s.add_argument("--batch", type=count(1), default=1024, help="proposals drawn per flow evaluation (default 1024)")
    s.add_argument("--m2", type=finite_float, help="target m^2 (default: the one the model was trained for)")
    s.add_argument("--lam", type=finite_float, help="target lambda (default: the one the model was trained for)")
    s.add_argument("--beta", type=finite_float, help="target beta of a U(1) model (default: the one it was trained for)")
    s.add_argument("--out", help="write the chain to this .npz ensemble (its folder must exist)")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    s.set_defaults(func=_cmd_sample)

    def _no_subcommand(args, parser=flow):
        parser.print_help()
        return 0

    flow.set_defaults(func=_no_subcommand)
