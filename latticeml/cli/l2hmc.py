"""``latticeml l2hmc train u1``: train L2HMC's generalized leapfrog for 2D U(1) (:mod:`latticeml.samplers.l2hmc`).

    latticeml l2hmc train u1 --shape 16,16 --beta 4 --steps 200 --seed 1 --out model.npz
    latticeml l2hmc train u1 --shape 16,16 --beta 4 --beta-start 2 --steps 500 --out model.npz   # annealing
    latticeml l2hmc train --resume model.ckpt.npz --steps 1000 --out model.npz
    latticeml sample u1 --shape 16,16 --beta 4 --algorithm l2hmc --model model.npz --n 1000 --json

``train`` writes the model (weights, architecture, the target it was trained for) and a checkpoint
``NAME.ckpt.npz`` next to it that ``--resume`` continues bit for bit. The loss is Foreman et al.'s
``-A (delta Q_sin)^2``; beta goes linearly from ``--beta-start`` (default ``--beta``) to ``--beta``.
"""

from __future__ import annotations

import numpy as np

from .common import UserError, count, described, parse_shape, positive_float, readable_file, writable_file

__all__ = ["register"]


def _parse_hidden(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isascii() and p.isdigit() and int(p) >= 1 for p in parts):
        raise UserError(f"--hidden must be channel counts >= 1 separated by commas, such as 8,8; got {text!r}")
    return [int(p) for p in parts]


def _cmd_train(args) -> int:
    from ..samplers import l2hmc

    if not args.out:
        raise UserError("give --out MODEL.npz: where to write the trained model")
    writable_file(args.out, "--out")
    progress = not args.quiet
    try:
        if args.resume:
            readable_file(args.resume, "a training checkpoint for --resume")
            result = l2hmc.resume_training(args.resume, steps=args.steps, progress=progress)
        else:
            if args.theory != "u1":
                raise UserError(f"l2hmc train is implemented for u1; got theory {args.theory!r}")
            if args.shape is None or args.beta is None or args.steps is None:
                raise UserError("l2hmc train u1 needs --shape, --beta and --steps (or --resume CHECKPOINT)")
            shape = parse_shape(args.shape)
            if len(shape) != 2:
                raise UserError(f"l2hmc train u1 runs in 2D (the loss uses the 2D charge); --shape {args.shape} has D = {len(shape)}")
            checkpoint = args.checkpoint or f"{args.out.removesuffix('.npz')}.ckpt.npz"
            writable_file(checkpoint, "--checkpoint" if args.checkpoint else "the checkpoint file")
            rng = np.random.default_rng(args.seed)
            target = l2hmc.U1Target(shape, args.beta)
            dyn = l2hmc.L2HMCDynamics(target.event_shape, n_layers=args.layers, angles=True, rng=np.random.default_rng([args.seed or 0, 1]),
                                      hidden=_parse_hidden(args.hidden), step_size=args.step)
            result = l2hmc.train(dyn, target, steps=args.steps, rng=rng, batch_size=args.batch, lr=args.lr,
                                 lr_final=args.lr_final, beta_start=args.beta_start, beta_end=args.beta, checkpoint=checkpoint, progress=progress)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(str(exc)) from None
    h = result.history
    tail = slice(-min(20, len(h["loss"])), None)
    l2hmc.save_model(args.out, result.dynamics, result.target,
                     metadata={"training": {"steps": int(result.steps),
                                            "final": {k: float(np.mean(v[tail])) if len(v) else None for k, v in h.items()}}})
    if not args.quiet:
        print(f"model written to {args.out}: {result.steps} steps, acceptance {np.mean(h['acceptance'][tail]):.3f}, "
              f"<dQ_sin^2> {np.mean(h['mean_jump'][tail]):.4f} (last {len(h['loss'][tail])} steps)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("l2hmc", **described("L2HMC: a trainable generalized leapfrog (Levy et al. 2018; Foreman et al. 2021).",
                                                   "latticeml l2hmc train u1 --shape 16,16 --beta 4 --steps 200 --out model.npz"))
    sub = p.add_subparsers(dest="l2hmc_command", metavar="train")
    t = sub.add_parser("train", **described(
        "Train the layers on 2D U(1) with the loss -A (delta Q_sin)^2; writes MODEL.npz and a checkpoint next to it.",
        "latticeml l2hmc train u1 --shape 16,16 --beta 4 --steps 200 --seed 1 --out model.npz",
        "latticeml l2hmc train --resume model.ckpt.npz --steps 400 --out model.npz"))
    t.add_argument("theory", nargs="?", default="u1", help="u1 (the only one for now)")
    t.add_argument("--shape", metavar="L0,L1", help="lattice extents, e.g. 16,16")
    t.add_argument("--beta", type=positive_float, metavar="X", help="coupling (the end of the annealing)")
    t.add_argument("--beta-start", type=positive_float, metavar="X", help="anneal linearly from this beta (default: --beta)")
    t.add_argument("--steps", type=count(0), metavar="N", help="training steps (Adam updates)")
    t.add_argument("--batch", type=count(2), default=16, metavar="N", help="chains per batch (default 16)")
    t.add_argument("--layers", type=count(1), default=4, metavar="N", help="leapfrog layers = force evaluations per trajectory (default 4)")
    t.add_argument("--hidden", default="8", metavar="C,...", help="hidden conv channels (default 8)")
    t.add_argument("--step", type=positive_float, default=0.2, metavar="X", help="initial step size of every layer (default 0.2)")
    t.add_argument("--lr", type=positive_float, default=1e-3, metavar="X", help="Adam learning rate (default 1e-3)")
    t.add_argument("--lr-final", type=positive_float, default=None, metavar="X",
                   help="anneal Adam's rate along a cosine from --lr to this at the last step (default: constant --lr)")
    t.add_argument("--seed", type=count(0), default=None, metavar="S", help="random seed")
    t.add_argument("--out", metavar="MODEL.npz", help="where to write the model")
    t.add_argument("--checkpoint", metavar="PATH", help="checkpoint file (default MODEL.ckpt.npz)")
    t.add_argument("--resume", metavar="CHECKPOINT", help="continue a training from its checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)
    p.set_defaults(func=lambda args: (_ for _ in ()).throw(UserError("give a command: latticeml l2hmc train ...")))
