"""Wilson-loop regression with L-CNNs: the dataset, training with checkpoints, the paper's test metric.

The task of Favoni, Ipp, Muller and Schuh, PRL 128 (2022) 032003: from a gauge configuration,
predict at every site

    y(x) = Re tr W_{m x n}(x) / N,

the m x n Wilson loop with its corner at x, averaged over the planes mu < nu and over both
orientations of the rectangle (m along mu and n along nu, and n along mu and m along nu; one term
for m = n). Targets ``"1x1"``, ``"1x2"``, ``"2x2"``, ``"4x4"``. Training is on 8 x 8, testing on
8 x 8 up to 64 x 64: a translation- and gauge-equivariant net that learned the local rule applies
to any lattice size. The metric (the paper's) is the mean squared error of the *lattice-averaged*
prediction, ``MSE = mean_configs (mean_x f(x) - mean_x y(x))^2``.

Dataset (the paper's protocol): SU(2) in 2D at ``beta = linspace(0.1, 6, 10)``, ``n_per_beta``
configurations per beta, thermalised and well separated in Monte Carlo time. Sampler: the library's
heatbath with one overrelaxation sweep per step (:mod:`latticeml.samplers.heatbath`; Creutz 1980,
Kennedy-Pendleton 1985), ``n_therm`` steps from a hot start, then one configuration every ``every``
steps. Any group the layers support: ``u1``, ``su2``, ``su3``, ``sun`` with ``N``; U(1) links are
stored as 1 x 1 phases (:func:`latticeml.nets.lcnn.links_from_angles`).

Training: Adam (:class:`latticeml.autodiff.optim.Adam`) on the per-site MSE (the L-CNN) or on the
lattice average (the baseline CNN, which pools), shuffled minibatches, a tqdm bar, and a checkpoint
(``.npz``: weights, Adam moments, epoch, generator state, history) written atomically after every
epoch; :func:`train` with ``resume=True`` continues from it and gives the same numbers as an
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from ..autodiff import no_grad, ops, optim
from ..checks import check_rng
from ..samplers import build_sampler, run_chain
from ..smearing.paths import path_product
from ..theories import make_theory
from . import lcnn

__all__ = [
    "TARGETS",
    "wilson_loops",
    "labels",
    "generate_dataset",
    "save_dataset",
    "load_dataset",
    "split",
    "predict",
    "test_mse",
    "train",
    "CURRICULA",
    "train_curriculum",
]

#: Rectangle sizes (m, n) of the regression targets.
TARGETS = {"1x1": (1, 1), "1x2": (1, 2), "2x2": (2, 2), "4x4": (4, 4)}

#: Curricula (:func:`train_curriculum`): the loop each block of an L-CNN learns, one orientation, each
#: the previous one doubled along one axis, so that one L-Bilin can join two copies (an L-Conv of
#: reach K transports the second one K links). The last stage is the target itself.
CURRICULA = {"1x2": ((1, 2),), "2x2": ((2, 1), (2, 2)), "4x4": ((2, 1), (2, 2), (4, 2), (4, 4))}

#: Paper's betas (2D SU(2)).
PAPER_BETAS = np.linspace(0.1, 6.0, 10)


def _rectangle(mu, nu, m, n):
    return [mu + 1] * m + [nu + 1] * n + [-(mu + 1)] * m + [-(nu + 1)] * n


def wilson_loops(U, m: int, n: int, *, oriented: bool = False) -> np.ndarray:
    """``Re tr W_{m x n}(x) / N`` averaged over planes and orientations, ``(B, *L)``; U ``(B, D, *L, N, N)``.

    ``oriented=True``: only the rectangle with ``m`` links along ``mu`` and ``n`` along ``nu > mu``
    (the curriculum's stages, :data:`CURRICULA`).
    """
    D, N = U.shape[1], U.shape[-1]
    links = lcnn._links_arg(U)
    shapes = {(m, n)} if oriented else {(m, n), (n, m)}
    total = 0.0
    count = 0
    for mu in range(D):
        for nu in range(mu + 1, D):
            for a, b in shapes:
                P = path_product(links, _rectangle(mu, nu, a, b), batched=True)
                tr = P.real if N == 1 else np.trace(P, axis1=-2, axis2=-1).real
                total = total + tr / N
                count += 1
    return total / count


def labels(U, target: str) -> np.ndarray:
    """Per-site labels of ``target`` (a key of :data:`TARGETS`)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    return wilson_loops(U, *TARGETS[target])


def _theory(group: str, shape, beta: float, N: int | None):
    if group == "sun":
        return make_theory("sun", shape, beta=float(beta), N=int(N))
    return make_theory(group, shape, beta=float(beta))


def generate_dataset(
    rng: np.random.Generator,
    shape,
    *,
    group: str = "su2",
    N: int | None = None,
    betas=PAPER_BETAS,
    n_per_beta: int = 10,
    n_therm: int = 50,
    every: int = 10,
    progress: bool = False,
) -> dict:
    """Configurations and labels: ``{"U": (n, D, *L, N, N), "beta": (n,), "y_1x1": (n, *L), ...}``.

    One heatbath chain (+ one overrelaxation sweep per step) per beta, ``n_therm`` thermalisation
    steps, then ``n_per_beta`` configurations ``every`` steps apart.
    """
    check_rng(rng)
    shape = tuple(int(s) for s in shape)
    fields, beta_of = [], []
    for beta in np.asarray(betas, dtype=np.float64):
        theory = _theory(group, shape, beta, N)
        sampler = build_sampler(theory, "heatbath", overrelax=1)
        result = run_chain(
            sampler, theory.hot_start(rng), rng, n_measure=int(n_per_beta), n_therm=int(n_therm),
            every=int(every), keep_fields=True, progress=progress,
        )
        fields.append(result.fields)
        beta_of.append(np.full(int(n_per_beta), beta))
    U = np.concatenate(fields)
    if group == "u1":
        U = lcnn.links_from_angles(U)
    data = {"U": np.ascontiguousarray(U, dtype=np.complex128), "beta": np.concatenate(beta_of)}
    for t in TARGETS:
        data[f"y_{t}"] = labels(data["U"], t)
    return data


def save_dataset(path, data: dict) -> pathlib.Path:
    """Write a dataset as ``.npz`` (plain arrays, atomically: temporary file + rename)."""
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **data)
    os.replace(tmp, path)
    return path


def load_dataset(path) -> dict:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def split(data: dict, rng: np.random.Generator, fractions=(0.7, 0.15, 0.15)) -> tuple[dict, dict, dict]:
    """Shuffle the configurations and split into train / validation / test sets."""
    check_rng(rng)
    n = len(data["U"])
    order = rng.permutation(n)
    a = int(round(fractions[0] * n))
    b = a + int(round(fractions[1] * n))
    parts = (order[:a], order[a:b], order[b:])
    return tuple({k: v[idx] for k, v in data.items()} for idx in parts)


def predict(model, U, *, batch: int = 8) -> np.ndarray:
    """The model's per-site prediction (L-CNN) or lattice average (baseline), without a tape."""
    outs = []
    with no_grad():
        for i in range(0, len(U), batch):
            outs.append(model(U[i : i + batch]).value)
    return np.concatenate(outs)


def test_mse(model, U, y, *, batch: int = 8) -> float:
    """The paper's metric: MSE of the lattice-averaged prediction against the lattice-averaged label."""
    p = predict(model, U, batch=batch)
    p_avg = p if p.ndim == 1 else p.reshape(len(p), -1).mean(axis=1)
    return float(np.mean((p_avg - y.reshape(len(y), -1).mean(axis=1)) ** 2))


test_mse.__test__ = False  # not a pytest test


def _loss(model, U, y):
    out = model(U)
    target = y if out.ndim > 1 else y.reshape(len(y), -1).mean(axis=1)
    return ops.mean(ops.square(out - target))


def _save_checkpoint(path, model, opt, epoch, rng, history):
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state.update({f"opt.{k}": v for k, v in opt.state_dict().items()})
    state["epoch"] = np.array(epoch)
    state["rng"] = np.array(json.dumps(rng.bit_generator.state))
    state["history"] = np.array(json.dumps(history))
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **state)
    os.replace(tmp, path)


def _load_checkpoint(path, model, opt, rng):
    with np.load(path, allow_pickle=False) as f:
        model.load_state_dict({k[6:]: f[k] for k in f.files if k.startswith("model.")})
        opt.load_state_dict({k[4:]: f[k] for k in f.files if k.startswith("opt.")})
        rng.bit_generator.state = json.loads(str(f["rng"]))
        return int(f["epoch"]), json.loads(str(f["history"]))


def train(
    model,
    train_set: tuple,
    *,
    rng: np.random.Generator,
    epochs: int = 10,
    batch: int = 8,
    lr: float = 1e-2,
    lr_final: float | None = None,
    val_set: tuple | None = None,
    checkpoint=None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """Adam on minibatches of ``train_set = (U, y)``; returns ``{"loss": [...], "val_mse": [...]}`` per epoch.

    ``lr_final``: if given, the learning rate follows a cosine from ``lr`` at the first epoch to
    ``lr_final`` at the last (:func:`latticeml.autodiff.optim.cosine_rate`); else it
    stays ``lr``. A constant rate leaves Adam hopping: a W2x2 L-CNN's test MSE jumped between 1e-13
    and 1e-5 from one 25-epoch block to the next at ``lr = 1e-2``, so the annealed rate is what
    makes the final epoch's model the good one.

    ``checkpoint``: path of the ``.npz`` checkpoint written after every epoch; ``resume``: start
    from it. ``stop_after``: stop after that many epochs of this call (to test resuming).
    """
    check_rng(rng)
    U, y = train_set
    opt = optim.Adam(model.parameters(), lr=lr)
    start, history = 0, {"loss": [], "val_mse": []}
    if resume and checkpoint is not None and pathlib.Path(checkpoint).exists():
        start, history = _load_checkpoint(checkpoint, model, opt, rng)
    from tqdm.auto import tqdm

    n = len(U)
    done = 0
    bar = tqdm(range(start, epochs), disable=not progress, desc="train", leave=False)
    for epoch in bar:
        if lr_final is not None:
            opt.lr = optim.cosine_rate(lr, lr_final, epoch, epochs)
        order = rng.permutation(n)
        total = 0.0
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            opt.zero_grad()
            loss = _loss(model, U[idx], y[idx])
            loss.backward()
            opt.step()
            total += float(loss.value) * len(idx)
        history["loss"].append(total / n)
        if val_set is not None:
            history["val_mse"].append(test_mse(model, *val_set))
        bar.set_postfix(loss=f"{history['loss'][-1]:.3e}")
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model, opt, epoch + 1, rng, history)
        done += 1
        if stop_after is not None and done >= stop_after:
            break
    return history


def train_curriculum(
    model,
    U,
    target: str,
    *,
    rng: np.random.Generator,
    epochs: int = 10,
    batch: int = 8,
    lr: float = 1e-2,
    lr_final: float | None = None,
    stage_lr: float | None = None,
    val_U=None,
    progress: bool = True,
) -> list[dict]:
    """Train an L-CNN block by block: stage ``k`` trains its first ``k`` blocks (with a throwaway head)
    on the ``k``-th loop of ``CURRICULA[target]`` (:data:`CURRICULA`), the last stage the whole model on ``target``.

    Why: in 2D the plaquettes of a configuration are independent (axial gauge), so ``tr W_{4x4}`` is
    nearly uncorrelated with any product of fewer plaquettes that a randomly initialised net computes,
    and gradient descent on the 4x4 labels alone finds no direction (the lecture's full run: test MSE
    at the baseline's level, 7.5e-3). Each stage here only has to double the previous loop, a product
    whose trace *is* the new label. The orientation matters: trained on the orientation-averaged 2x4
    labels the stage succeeds but the channels hold sums of both rectangles, and the 4x4 stage fails.
    (Curriculum learning: Bengio, Louradour, Collobert, Weston, ICML 2009.)

    ``U``: training configurations; ``model``: an :class:`~latticeml.nets.lcnn.LCNN` with as many blocks
    as the curriculum has stages. Every stage runs ``epochs`` epochs of :func:`train`; the stages before
    the last at ``stage_lr`` (default ``lr``), all annealed to 1/1000 of their rate when ``lr_final`` is
    given (the last stage to ``lr_final``). ``val_U`` adds each stage's validation MSE to its history.
    Returns the histories of the stages.
    """
    check_rng(rng)
    if target not in CURRICULA:
        raise ValueError(f"no curriculum for target {target!r}; there are: {', '.join(CURRICULA)}")
    stages = CURRICULA[target]
    if len(model.blocks_spec) != len(stages):
        raise ValueError(f"the {target} curriculum has {len(stages)} stages; the model has {len(model.blocks_spec)} blocks")
    histories = []
    for k, (m, n) in enumerate(stages, start=1):
        last = k == len(stages)
        stage = model if last else model.leading_blocks(k, rng=rng)
        rate = lr if last else (stage_lr or lr)
        final = lr_final if last else (None if lr_final is None else rate / 1000)
        def stage_labels(configs):
            return labels(configs, target) if last else wilson_loops(configs, m, n, oriented=True)

        val = None if val_U is None else (val_U, stage_labels(val_U))
        histories.append(train(stage, (U, stage_labels(U)), rng=rng, epochs=epochs, batch=batch, lr=rate, lr_final=final,
                               val_set=val, progress=progress))
    return histories
