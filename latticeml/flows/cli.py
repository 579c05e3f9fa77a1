"""``latticeml flow``: train a normalizing flow for phi^4 and sample with flow-based MCMC.

    latticeml flow train phi4 --shape 8,8 --m2 -4 --lam 8 --steps 2500 --batch 64 --seed 1 --out model.npz
    latticeml flow train --resume model.ckpt.npz --steps 5000 --out model.npz
    latticeml flow sample model.npz --n 8192 --seed 2 --json

``train`` writes the model (``.npz``: parameters, architecture and the theory it was trained for)
and, next to it, a checkpoint ``NAME.ckpt.npz`` that ``--resume`` continues bit for bit (also after
Ctrl-C or ``kill PID``: both write the checkpoint at the last complete step). ``sample`` runs the independence Metropolis chain with the model as proposal and prints
the acceptance, the ESS of the proposals (with the sample size it was computed on) and the phi^4
observables with Gamma-method errors, under the same keys as ``latticeml sample``.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import numpy as np

__all__ = ["register"]


def _user_error():
    from ..cli import UserError

    return UserError


def _positive(args, *names):
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise _user_error()(f"--{name.replace('_', '-')} must be a positive integer, got {value}")


def _model_metadata(theory, args, history) -> dict:
    tail = slice(-min(100, len(history["loss"])), None) if len(history["loss"]) else slice(0, 0)
    return {
        "theory": theory.name,
        "theory_params": theory.params,
        "training": {
            "steps": int(len(history["loss"])),
            "batch_size": args.batch,
            "lr": args.lr,
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


def _cmd_train(args) -> int:
    from .. import io
    from ..cli import _parse_shape
    from ..theories.models import Phi4
    from .model import phi4_flow, save_flow
    from .training import resume_training, train

    UserError = _user_error()
    _positive(args, "steps", "batch", "layers", "kernel", "checkpoint_every")
    if not args.out:
        raise UserError("give --out MODEL.npz: where to write the trained flow")
    checkpoint = args.checkpoint or f"{args.out.removesuffix('.npz')}.ckpt.npz"
    progress = not args.quiet
    if args.resume:
        try:
            meta = io.load_checkpoint(args.resume).metadata
        except FileNotFoundError:
            raise UserError(f"no checkpoint at {args.resume}") from None
        except ValueError as exc:
            raise UserError(f"{args.resume}: {exc}") from None
        settings = meta.get("settings", {})
        args.batch, args.lr = settings.get("batch_size"), settings.get("lr")
        args.seed = None  # the generator state comes from the checkpoint
        try:
            with _sigterm_as_ctrl_c():
                result = resume_training(args.resume, steps=args.steps, checkpoint_every=args.checkpoint_every, progress=progress)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        checkpoint = args.resume  # the resumed run keeps writing to the file it came from
    else:
        if args.theory != "phi4":
            raise UserError(f"flows are implemented for phi4; got theory {args.theory!r}")
        if args.shape is None or args.m2 is None or args.lam is None:
            raise UserError("flow train phi4 needs --shape, --m2 and --lam (or --resume CHECKPOINT)")
        if args.steps is None:
            raise UserError("give --steps N: the number of training steps")
        shape = _parse_shape(args.shape)
        try:
            theory = Phi4(shape, m2=args.m2, lam=args.lam)
            hidden = [int(h) for h in args.hidden.replace("x", ",").split(",") if h.strip()]
            flow = phi4_flow(shape, n_layers=args.layers, hidden=hidden, kernel_size=args.kernel, rng=np.random.default_rng([args.seed, 0]))
        except ValueError as exc:
            raise UserError(str(exc)) from None
        with _sigterm_as_ctrl_c():
            result = train(
                flow, theory, steps=args.steps, batch_size=args.batch, lr=args.lr, rng=np.random.default_rng([args.seed, 1]),
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
    from ..cli import _report, _summarise
    from ..theories.models import Phi4
    from .mcmc import flow_mcmc
    from .model import load_flow

    UserError = _user_error()
    _positive(args, "n", "batch")
    try:
        flow = load_flow(args.model)
    except FileNotFoundError:
        raise UserError(f"no such file: {args.model}") from None
    except (ValueError, KeyError) as exc:
        raise UserError(f"{args.model} is not a flow model written by `latticeml flow train`: {exc}") from None
    stored = flow.metadata.get("theory_params", {})
    m2 = args.m2 if args.m2 is not None else stored.get("m2")
    lam = args.lam if args.lam is not None else stored.get("lam")
    if m2 is None or lam is None:
        raise UserError(f"{args.model} does not record its couplings: give --m2 and --lam")
    try:
        theory = Phi4(flow.shape, m2=m2, lam=lam)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.n < 8:
        raise UserError(f"--n must be at least 8 for the error analysis, got {args.n}")
    result = flow_mcmc(flow, theory, np.random.default_rng(args.seed), n_steps=args.n, batch_size=args.batch, keep_fields=bool(args.out))
    params = dict(theory.params)
    params.update(algorithm="flow_mcmc", model=args.model, n=args.n, seed=args.seed)
    payload = {
        "theory": theory.name,
        "params": params,
        "acceptance": result.acceptance,
        "ess": result.ess,
        "ess_sample_size": args.n,
        "observables": _summarise(result.records, result.accepted),
    }
    if args.out:
        io.save_ensemble(args.out, result.fields, theory=theory.name, params=params, observables=result.records)
        if not args.json:
            print(f"ensemble of {len(result.fields)} configurations written to {args.out}")
    _report(payload, args.json)
    if not args.json:
        print(f"ESS per configuration of the {args.n} proposals: {result.ess:.4f}")
    return 0


def register(subparsers) -> None:
    """Add ``flow train`` and ``flow sample`` to the ``latticeml`` command line."""
    flow = subparsers.add_parser(
        "flow",
        help="normalizing flows for phi^4: train (reverse KL) and sample (flow-based MCMC)",
        description="Normalizing flows for phi^4 (Albergo, Kanwar & Shanahan, PRD 100 (2019) 034515).",
    )
    sub = flow.add_subparsers(dest="flow_command", metavar="SUBCOMMAND")

    t = sub.add_parser(
        "train",
        help="train an affine coupling flow by reverse KL (no data needed)",
        description="Train a flow of affine coupling layers (checkerboard masks, periodic conv nets) towards exp(-S) "
        "by minimising the reverse KL divergence with Adam. Telemetry per step: loss, ESS of the batch, "
        "expected flow-MCMC acceptance. Writes the model to --out and a checkpoint next to it.",
    )
    t.add_argument("theory", nargs="?", default="phi4", help="phi4 (the only theory with flows here)")
    t.add_argument("--shape", help="lattice extents, e.g. 8,8")
    t.add_argument("--m2", type=float, help="phi^4 mass term m^2 (Albergo et al. 2019 form)")
    t.add_argument("--lam", type=float, help="phi^4 quartic coupling lambda")
    t.add_argument("--steps", type=int, help="number of training steps (with --resume: the new total)")
    t.add_argument("--batch", type=int, default=64, help="samples per step (default 64)")
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    t.add_argument("--layers", type=int, default=16, help="coupling layers (default 16)")
    t.add_argument("--hidden", default="8,8", help="hidden channels of each conv net (default 8,8)")
    t.add_argument("--kernel", type=int, default=3, help="conv kernel size (default 3)")
    t.add_argument("--seed", type=int, default=0,
                   help="random seed (default 0): the initial weights use default_rng([seed, 0]), the training default_rng([seed, 1])")
    t.add_argument("--out", help="write the trained model to this .npz")
    t.add_argument("--checkpoint", help="checkpoint file (default: next to --out as NAME.ckpt.npz)")
    t.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (default 100)")
    t.add_argument("--resume", metavar="CHECKPOINT", help="continue the training stored in CHECKPOINT")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser(
        "sample",
        help="flow-based MCMC with a trained model; observables with Gamma-method errors",
        description="Independence Metropolis with the flow as proposal: exact for exp(-S) whatever the flow's quality. "
        "Prints acceptance, ESS (on --n proposals) and the phi^4 observables with errors and tau_int.",
    )
    s.add_argument("model", help="a model .npz written by `latticeml flow train`")
    s.add_argument("--n", type=int, default=8192, help="chain length = number of proposals (default 8192)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--batch", type=int, default=1024, help="proposals drawn per flow evaluation (default 1024)")
    s.add_argument("--m2", type=float, help="target m^2 (default: the one the model was trained for)")
    s.add_argument("--lam", type=float, help="target lambda (default: the one the model was trained for)")
    s.add_argument("--out", help="write the chain to this .npz ensemble")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    s.set_defaults(func=_cmd_sample)

    def _no_subcommand(args, parser=flow):
        parser.print_help()
        return 0

    flow.set_defaults(func=_no_subcommand)
