"""``latticeml lcnn dataset`` and ``latticeml lcnn train``: Wilson-loop regression with L-CNNs.

    latticeml lcnn dataset --group su2 --shape 8,8 --n-per-beta 10 --out train.npz
    latticeml lcnn train --group su2 --target 2x2 --train-shape 8,8 --test-shapes 8,8 16,16 32,32 64,64 \
        [--arch small|medium|large] [--baseline] [--n-per-beta K] [--epochs E] [--seed S] --json
    latticeml lcnn train --target 4x4 --arch small --curriculum --stage-lr 0.01 --lr 0.003 --epochs 200 --batch 4 \
        --n-per-beta 20 --n-therm 100 --test-shapes 8,8 16,16 --json    # the 4x4 loop needs the curriculum

``train`` generates the datasets it needs (heatbath, the paper's betas; :mod:`latticeml.nets.lcnn_train`)
unless ``--data FILE.npz`` gives the training set, trains the L-CNN (and with ``--baseline`` the
baseline CNN) with Adam, and prints ``test_mse`` (and ``baseline_test_mse``): for each test shape, as
``"16,16"``, the mean squared error of the lattice-averaged prediction (Favoni et al., PRL 128 (2022) 032003).
"""

from __future__ import annotations

import json

import numpy as np

from .common import UserError, count, described, parse_shape, positive_float, readable_file, writable_file

GROUPS = ("u1", "su2", "su3", "sun")


def _group_N(args) -> int:
    if args.group == "sun":
        if args.N is None:
            raise UserError("--group sun needs --N, the number of colours (>= 2)")
        if args.N < 2:
            raise UserError(f"--N must be >= 2 for SU(N), got {args.N}")
        return args.N
    if args.N is not None:
        raise UserError(f"--N goes with --group sun only; {args.group} fixes N")
    return {"u1": 1, "su2": 2, "su3": 3}[args.group]


def _dataset(args, shape, rng, n_per_beta, *, progress=False):
    from ..nets import lcnn_train

    return lcnn_train.generate_dataset(
        rng, shape, group=args.group, N=args.N if args.group == "sun" else None, n_per_beta=n_per_beta,
        n_therm=args.n_therm, every=args.every, progress=progress,
    )


def _check_shape(shape, option):
    if len(shape) < 2:
        raise UserError(f"{option} needs at least 2 dimensions (gauge fields live on D >= 2 lattices), got {shape}")
    return shape


def _cmd_dataset(args) -> int:
    from ..nets import lcnn_train

    _group_N(args)
    shape = _check_shape(parse_shape(args.shape), "--shape")
    out = writable_file(args.out, "--out")
    data = _dataset(args, shape, np.random.default_rng(args.seed), args.n_per_beta, progress=not args.json)
    lcnn_train.save_dataset(out, data)
    payload = {"out": out, "n": int(len(data["U"])), "shape": list(shape), "group": args.group}
    print(json.dumps(payload) if args.json else f"wrote {payload['n']} configurations to {out}")
    return 0


def _cmd_train(args) -> int:
    from ..nets import lcnn, lcnn_train

    N = _group_N(args)
    train_shape = _check_shape(parse_shape(args.train_shape, "--train-shape"), "--train-shape")
    test_shapes = [_check_shape(parse_shape(s, "--test-shapes"), "--test-shapes") for s in args.test_shapes]
    for s in test_shapes:
        if len(s) != len(train_shape):
            raise UserError(f"--test-shapes {','.join(map(str, s))} has another dimension than --train-shape {args.train_shape}")
    if args.curriculum and args.target not in lcnn_train.CURRICULA:
        raise UserError(f"--curriculum: there is a curriculum for the targets {', '.join(lcnn_train.CURRICULA)}, not {args.target}")
    if args.out:
        writable_file(args.out, "--out")
    rng = np.random.default_rng(args.seed)
    if args.data:
        data = lcnn_train.load_dataset(readable_file(args.data, "an L-CNN dataset (.npz)"))
        if "U" not in data or data["U"].shape[-1] != N or data["U"].shape[2:-2] != train_shape:
            raise UserError(f"--data {args.data!r} does not hold {args.group} configurations of shape {train_shape}")
    else:
        data = _dataset(args, train_shape, rng, args.n_per_beta)
    train_set, val_set, test_set = lcnn_train.split(data, rng)
    key = f"y_{args.target}"
    D = len(train_shape)
    model = lcnn.build_lcnn(args.target, args.arch, D=D, rng=rng)
    progress = not args.json
    lr_final = args.lr / 1000 if args.lr_final is None else args.lr_final
    if args.curriculum:
        lcnn_train.train_curriculum(model, train_set["U"], args.target, rng=rng, epochs=args.epochs, batch=args.batch,
                                    lr=args.lr, lr_final=lr_final, stage_lr=args.stage_lr, val_U=val_set["U"], progress=progress)
    else:
        lcnn_train.train(model, (train_set["U"], train_set[key]), rng=rng, epochs=args.epochs, batch=args.batch,
                         lr=args.lr, lr_final=lr_final, val_set=(val_set["U"], val_set[key]), progress=progress)
    baseline = None
    if args.baseline:
        if D > 3:
            raise UserError("--baseline: the baseline CNN's periodic convolution supports D <= 3")
        baseline = lcnn.BaselineCNN(D=D, N=N, rng=rng)
        lcnn_train.train(baseline, (train_set["U"], train_set[key]), rng=rng, epochs=args.epochs,
                         batch=args.batch, lr=args.lr * 0.1, lr_final=lr_final * 0.1, progress=progress)
    n_test = max(1, args.n_test_per_beta)
    result = {"group": args.group, "target": args.target, "arch": args.arch, "train_shape": list(train_shape),
              "n_parameters": model.num_parameters(), "test_mse": {}}
    if baseline is not None:
        result["baseline_test_mse"] = {}
    for shape in test_shapes:
        name = ",".join(map(str, shape))
        test = test_set if shape == train_shape else _dataset(args, shape, rng, n_test)
        result["test_mse"][name] = lcnn_train.test_mse(model, test["U"], test[key])
        if baseline is not None:
            result["baseline_test_mse"][name] = lcnn_train.test_mse(baseline, test["U"], test[key])
    if args.out:
        model.save(args.out)
    if args.json:
        print(json.dumps(result))
    else:
        for name, v in result["test_mse"].items():
            extra = f"   baseline {result['baseline_test_mse'][name]:.3e}" if baseline is not None else ""
            print(f"test {name:>8s}  L-CNN MSE {v:.3e}{extra}")
    return 0


def _no_subcommand(args) -> int:
    raise UserError("lcnn needs a subcommand: dataset or train (latticeml lcnn --help)")


def _common(p):
    p.add_argument("--group", choices=GROUPS, default="su2", help="gauge group (default su2)")
    p.add_argument("--N", type=count(2), help="number of colours for --group sun")
    p.add_argument("--n-per-beta", type=count(1), default=10, help="configurations per beta (default 10)")
    p.add_argument("--n-therm", type=count(0), default=50, help="thermalisation steps per beta (default 50)")
    p.add_argument("--every", type=count(1), default=10, help="steps between saved configurations (default 10)")
    p.add_argument("--seed", type=count(0), default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def register(subparsers) -> None:
    """Add ``lcnn dataset`` and ``lcnn train`` to the ``latticeml`` command line."""
    top = subparsers.add_parser(
        "lcnn",
        help="lattice gauge equivariant CNNs: Wilson-loop datasets and regression (Favoni et al. 2022)",
        **described(
            "Lattice gauge equivariant CNNs (Favoni, Ipp, Muller, Schuh, PRL 128 (2022) 032003): generate gauge "
            "configurations at the paper's betas with Wilson-loop labels, and train an L-CNN (and the baseline CNN) "
            "to predict them, testing on larger lattices.",
            "latticeml lcnn dataset --shape 8,8 --n-per-beta 10 --out train.npz",
            "latticeml lcnn train --target 2x2 --train-shape 8,8 --test-shapes 8,8 16,16 32,32 64,64 --baseline --json",
        ),
    )
    sub = top.add_subparsers(dest="lcnn_command", metavar="SUBCOMMAND")
    d = sub.add_parser("dataset", help="generate configurations and Wilson-loop labels (.npz)",
                       **described("Heatbath configurations at beta = linspace(0.1, 6, 10) with per-site labels "
                                   "Re tr W_{m x n}(x)/N for 1x1, 1x2, 2x2, 4x4.",
                                   "latticeml lcnn dataset --shape 8,8 --n-per-beta 10 --out train.npz"))
    d.add_argument("--shape", required=True, help="lattice extents, e.g. 8,8")
    d.add_argument("--out", required=True, help="output file (.npz)")
    _common(d)
    d.set_defaults(func=_cmd_dataset)

    t = sub.add_parser("train", help="train an L-CNN on Wilson loops and print the test MSE per lattice size",
                       **described("Train on --train-shape, test on every --test-shapes lattice (fresh configurations).",
                                   "latticeml lcnn train --target 2x2 --train-shape 8,8 --test-shapes 8,8 16,16 --json"))
    t.add_argument("--target", choices=("1x1", "1x2", "2x2", "4x4"), default="2x2", help="Wilson loop (default 2x2)")
    t.add_argument("--train-shape", default="8,8", help="training lattice (default 8,8)")
    t.add_argument("--test-shapes", nargs="+", default=["8,8"], help="test lattices, e.g. 8,8 16,16 32,32 64,64")
    t.add_argument("--arch", choices=("small", "medium", "large"), default="medium", help="L-CNN size (default medium)")
    t.add_argument("--baseline", action="store_true", help="also train the baseline CNN")
    t.add_argument("--data", help="training dataset (.npz from lcnn dataset); default: generate one")
    t.add_argument("--n-test-per-beta", type=count(1), default=2, help="test configurations per beta on the other shapes (default 2)")
    t.add_argument("--epochs", type=count(1), default=20, help="training epochs (default 20)")
    t.add_argument("--batch", type=count(1), default=8, help="minibatch size (default 8)")
    t.add_argument("--lr", type=positive_float, default=1e-2, help="Adam learning rate at the first epoch (default 0.01)")
    t.add_argument("--lr-final", type=positive_float, default=None,
                   help="learning rate at the last epoch, reached by a cosine (default: --lr / 1000; equal to --lr for a constant rate)")
    t.add_argument("--curriculum", action="store_true",
                   help="grow the L-CNN block by block, each stage trained on a loop twice the last (2x1, 2x2, 4x2, 4x4): "
                        "how the 4x4 loop is learned; --epochs per stage")
    t.add_argument("--stage-lr", type=positive_float, default=None,
                   help="--curriculum: Adam rate of the stages before the last (default --lr)")
    t.add_argument("--out", help="write the trained L-CNN weights (.npz)")
    _common(t)
    t.set_defaults(func=_cmd_train)
    top.set_defaults(func=_no_subcommand)
