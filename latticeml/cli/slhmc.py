"""``latticeml slhmc train``: train the stout net of self-learning HMC with staggered fermions.

    latticeml slhmc train su2 --shape 4,4,4,4 --beta 2.7 --mass 0.3 --md-mass 0.4 --n 200 --therm 20 --out net.npz
    latticeml sample su2 --shape 4,4,4,4 --beta 2.7 --fermions staggered --mass 0.3 --algorithm slhmc --md-mass 0.4 --model net.npz

The net (:mod:`latticeml.fermions.selflearning`: ``--layers`` stout layers of plaquette and
temporal/spatial Polyakov-loop terms, 3 weights each) smears the links of the fermion action at the
mass ``--md-mass``; it is trained online during a prior HMC run of the target (gauge action +
``--n-staggered`` staggered fields of mass ``--mass``) with Adam on ``1/2 (S_theta - S - c)^2``.
The weights and what they were trained for are written to ``--out``.
"""

from __future__ import annotations

from .common import UserError, count, described, finite_float, parse_shape, positive_float, writable_file

__all__ = ["register"]

GAUGE = ("u1", "su2", "su3", "sun")


def _cmd_train(args) -> int:
    import json

    import numpy as np

    from ..fermions import StaggeredFermions, selflearning
    from ..theories import make_theory

    if args.theory not in GAUGE:
        raise UserError(f"slhmc train needs a gauge theory ({', '.join(GAUGE)}), got {args.theory!r}")
    shape = parse_shape(args.shape)
    if args.theory == "sun" and args.N is None:
        raise UserError("theory sun needs --N (the number of colours)")
    if args.theory != "sun" and args.N is not None:
        raise UserError(f"--N is for theory sun; {args.theory} fixes N")
    writable_file(args.out, "--out")
    couplings = {"beta": args.beta} if args.N is None else {"beta": args.beta, "N": args.N}
    try:
        gauge = make_theory(args.theory, shape, **couplings)
        target = StaggeredFermions(gauge, mass=args.mass, n_staggered=args.n_staggered)
    except (ValueError, TypeError) as exc:
        raise UserError(str(exc)) from None
    rng = np.random.default_rng(args.seed)
    net = selflearning.make_net(args.layers)
    log = selflearning.train_online(target, net, rng, gauge.cold_start(), md_mass=args.md_mass, n_trajectories=args.n,
                                    n_therm=args.therm, step_size=args.step, n_steps=args.nsteps, lr=args.lr)
    meta = {"target": target.params, "md_mass": args.md_mass, "trajectories": args.n, "seed": args.seed}
    selflearning.save_net(args.out, net, metadata=meta)
    k = max(1, len(log.loss) // 5)
    summary = {"out": args.out, "rho": net.rho.tolist(), "loss_first": float(np.mean(log.loss[:k])),
               "loss_last": float(np.mean(log.loss[-k:])), "hmc_acceptance": float(np.mean(log.acceptance)), **meta}
    print(json.dumps(summary) if args.json else
          f"net written to {args.out}: loss {summary['loss_first']:.4g} -> {summary['loss_last']:.4g} (mean of the first and "
          f"last fifth), weights {np.round(net.rho, 5).tolist()}, prior HMC acceptance {summary['hmc_acceptance']:.3f}")
    return 0


def register(subparsers) -> None:
    """Add ``latticeml slhmc train``."""
    p = subparsers.add_parser("slhmc", help="self-learning HMC with staggered fermions: train the net", **described(
        "Self-learning HMC (Nagai and Tomiya, arXiv:2103.11965) with dynamical staggered fermions.",
        "latticeml slhmc train su2 --shape 4,4,4,4 --beta 2.7 --mass 0.3 --md-mass 0.4 --n 200 --out net.npz"))
    sub = p.add_subparsers(dest="slhmc_command", metavar="COMMAND")
    t = sub.add_parser("train", help="train the stout net during a prior HMC run", **described(
        "Train the stout net that smears the links of the molecular-dynamics fermion action (mass --md-mass) online "
        "during an HMC run of the target (--mass), and write it to --out for `latticeml sample ... --algorithm slhmc`.",
        "latticeml slhmc train su2 --shape 4,4,4,4 --beta 2.7 --mass 0.3 --md-mass 0.4 --n 200 --out net.npz"))
    t.add_argument("theory", metavar="THEORY", help=", ".join(GAUGE))
    t.add_argument("--shape", required=True, metavar="L0,L1,...", help="lattice extents, all even")
    t.add_argument("--beta", required=True, type=finite_float, metavar="X", help="gauge coupling")
    t.add_argument("--N", type=count(2), metavar="N", help="colours (theory sun)")
    t.add_argument("--mass", required=True, type=positive_float, metavar="M", help="target staggered mass")
    t.add_argument("--md-mass", required=True, type=positive_float, metavar="M", help="molecular-dynamics mass")
    t.add_argument("--n-staggered", type=count(1), default=1, metavar="K", help="k in det(M)^k (default 1)")
    t.add_argument("--layers", type=count(1), default=2, metavar="L", help="stout layers (default 2: six weights)")
    t.add_argument("--n", type=count(1), default=200, metavar="N", help="training trajectories (default 200)")
    t.add_argument("--therm", type=count(0), default=20, metavar="N", help="HMC trajectories before training (default 20)")
    t.add_argument("--step", type=positive_float, default=0.2, metavar="X", help="HMC step size (default 0.2)")
    t.add_argument("--nsteps", type=count(1), default=5, metavar="N", help="Omelyan steps per trajectory (default 5)")
    t.add_argument("--lr", type=positive_float, default=0.002, metavar="X", help="Adam learning rate (default 0.002)")
    t.add_argument("--seed", type=count(0), default=0, metavar="S", help="random seed (default 0)")
    t.add_argument("--out", required=True, metavar="NET.npz", help="where to write the net")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=_cmd_train)
    p.set_defaults(func=lambda args: (_ for _ in ()).throw(UserError("give a command: latticeml slhmc train ...")))
