"""L2HMC: Hamiltonian Monte Carlo with a trainable generalized leapfrog, exact by Metropolis-Hastings with ``|J|``.

D. Levy, M. D. Hoffman, J. Sohl-Dickstein, "Generalizing Hamiltonian Monte Carlo with neural
networks", ICLR 2018, arXiv:1711.09268 (the layers, the direction variable, the loss);
S. Foreman, X.-Y. Jin, J. C. Osborn, "Deep learning Hamiltonian Monte Carlo", arXiv:2105.03418 and
"LeapfrogLayers", PoS LATTICE2021 (2022) 508 (2D U(1): the inputs ``(cos x, sin x)``, one set of
networks per leapfrog step, the loss ``-A (delta Q_sin)^2``).

Shapes and conventions
----------------------
* A *target* (:class:`GaussianTarget`, :class:`MixtureTarget`, :class:`U1Target`) has an
  ``event_shape``: positions ``x`` and momenta ``v`` are float64 arrays ``(B, *event_shape)``
  (toys: ``(B, n)``; 2D U(1): link angles ``(B, D, L0, L1)``). ``target.action(x)`` -> ``(B,)`` and
  ``target.force(x) = dS/dx`` take :class:`latticeml.autodiff.Tensor` s, so the whole trajectory is
  differentiable in the network weights (the U(1) force through :mod:`latticeml.autodiff.u1`,
  whose backward is the Hessian-vector product).
* ``H(x, v) = S(x) + |v|^2 / 2`` with ``v ~ N(0, 1)``.
* One *leapfrog layer* ``k`` of step size ``eps_k = exp(log_eps_k)`` (trainable) and direction
  ``d = +1`` is four updates (Levy et al. eqs. 4-6), with masks ``m`` (a fixed half of the
  components) and ``mb = 1 - m``::

      v <- v * exp(eps/2 s_v) - eps/2 (F(x) * exp(eps q_v) + t_v),           (s_v,t_v,q_v) = Vnet_a(x, F(x))
      x <- mb*x + m*(x * exp(eps s_x) + eps (v * exp(eps q_x) + t_x)),       (s_x,t_x,q_x) = Xnet_1(mb*x, v)
      x <- m*x + mb*(x * exp(eps s_x') + eps (v * exp(eps q_x') + t_x')),    (.)           = Xnet_2(m*x, v)
      v <- v * exp(eps/2 s_v') - eps/2 (F(x) * exp(eps q_v') + t_v'),        (.)           = Vnet_b(x, F(x))

  Each update changes one block of variables by an invertible affine map whose coefficients
  depend only on the other block, so its Jacobian is triangular and ``log |det|`` is the sum of
  the scale exponents: ``eps/2 sum s_v`` for a v-update, ``eps sum(m * s_x)`` for an x-update.
  ``d = -1`` applies the exact inverses, layers in reverse order, and subtracts the same sums.
* For angles (U(1)) the x-networks see ``(cos x, sin x)`` of the frozen half and the scale
  ``s_x`` is switched off: ``x * exp(eps s_x)`` does not map the circle to itself, while the
  shift ``x + eps (v exp(eps q_x) + t_x)`` with coefficients from the frozen links is a bijection
  of the torus (angles are wrapped to (-pi, pi] at the end of a trajectory; S, F and the
  networks depend on angles only through ``exp(i x)``).
* Trajectory ``xi = (x, v, d)`` with ``d`` uniform in ``{+1, -1}``: the proposal
  ``(x, v, d) -> (L^d(x, v), -d)`` is an involution (``L^{-1}`` is the ``d = -1`` map), so it is
  accepted with ``A = min(1, exp(H(x, v) - H(x', v') + log|J|))`` (Levy et al. eq. 7) and the
  chain samples ``exp(-S)`` exactly for *any* weights. ``tests/test_l2hmc.py`` checks this
  (inverse to 1e-12, ``log|J|`` against the numerical Jacobian, exact Gaussian covariance and
  2D U(1) plaquette/susceptibility with random networks).
* Cost: ``n_layers`` force evaluations per trajectory (the start force is cached in the chain
  state), the same as ``n_layers`` leapfrog steps of HMC; network evaluations are not counted.

Networks (:class:`L2HMCDynamics`): per layer four nets ``Vnet_a, Xnet_1, Xnet_2, Vnet_b``; each
outputs ``(s, t, q)`` with ``s = c_s tanh(.)``, ``q = c_q tanh(.)`` (trainable ``c_s, c_q``, Levy
et al.). Toys: dense MLPs on the flattened inputs; lattices: periodic convolutions
(translation equivariant, so one model serves any lattice size and any beta).

Training (:func:`train`): batches of persistent chains, Adam on the loss of Levy et al.
(``lambda^2 / (A delta) - A delta / lambda^2`` with ``delta = |x' - x|^2``: the toys) or of
Foreman et al. (``-A (delta Q_sin)^2`` averaged: U(1), ``Q_sin = sum sin theta_P / 2 pi``),
optional linear annealing of beta, checkpoints with :class:`latticeml._runs.CheckpointedRun`
(resume bit-identically with :func:`resume_training`), a tqdm bar.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np

from .. import autodiff as ad
from .. import io
from .._runs import CheckpointedRun
from ..autodiff import nn, optim
from ..autodiff.u1 import u1_action, u1_force, u1_plaquette_angles
from ..checks import check_count, check_rng, positive_float
from .chain import Sampler

__all__ = [
    "GaussianTarget",
    "MixtureTarget",
    "U1Target",
    "L2HMCDynamics",
    "TrajectoryResult",
    "trajectory",
    "learned_integrator",
    "l2hmc_step",
    "hmc_step",
    "State",
    "Info",
    "sampler",
    "train",
    "resume_training",
    "TrainResult",
    "save_model",
    "load_model",
]


# --- targets ------------------------------------------------------------------------------


def _sum_event(t):
    """Sum a (B, ...) Tensor or array over all axes but the first."""
    axes = tuple(range(1, t.ndim))
    return ad.sum(t, axis=axes) if isinstance(t, ad.Tensor) else np.sum(t, axis=axes)


class GaussianTarget:
    """``S(x) = x^T C^{-1} x / 2`` on R^n, covariance ``C`` (n, n)."""

    angles = False

    def __init__(self, cov):
        self.cov = np.array(cov, dtype=np.float64)
        if self.cov.ndim != 2 or self.cov.shape[0] != self.cov.shape[1]:
            raise ValueError(f"covariance must be a square matrix, got shape {self.cov.shape}")
        self.precision = np.linalg.inv(self.cov)
        self.event_shape = (self.cov.shape[0],)
        self.config = {"kind": "gaussian", "cov": self.cov.tolist()}

    def force(self, x):
        return ad.matmul(x, self.precision)

    def action(self, x):
        return 0.5 * _sum_event(x * self.force(x))

    def sample(self, rng, n):
        return rng.multivariate_normal(np.zeros(self.event_shape[0]), self.cov, size=n)


def correlated_gaussian(eigenvalues=(100.0, 0.1), angle=np.pi / 4) -> GaussianTarget:
    """Levy et al.'s strongly correlated Gaussian: variances ``eigenvalues`` rotated by ``angle``."""
    c, s = np.cos(angle), np.sin(angle)
    R = np.array([[c, -s], [s, c]])
    return GaussianTarget(R @ np.diag(eigenvalues) @ R.T)


class MixtureTarget:
    """``exp(-S(x)) = (sum_k w_k N(x; mu_k, sigma^2 I))^beta``, means ``(K, n)``; ``beta = 1``: the mixture.

    ``beta < 1`` is the tempered target ``p^beta`` (temperature ``T = 1/beta``): Levy et al. train
    L2HMC on their mixture of Gaussians with the temperature annealed to 1, since the barrier
    ``beta * Delta S`` is low early in the training, chains cross it and the loss can reward maps
    that jump between modes (``benchmarks/bench_l2hmc.py mixture``).
    """

    angles = False

    def __init__(self, means, sigma, weights=None, beta=1.0):
        self.means = np.array(means, dtype=np.float64)
        self.sigma = positive_float(sigma, "sigma")
        self.beta = positive_float(beta, "beta")
        K = self.means.shape[0]
        w = np.full(K, 1.0 / K) if weights is None else np.asarray(weights, dtype=np.float64)
        self.log_w = np.log(w / w.sum())
        self.event_shape = (self.means.shape[1],)
        self.config = {"kind": "mixture", "means": self.means.tolist(), "sigma": self.sigma, "weights": np.exp(self.log_w).tolist(),
                       "beta": self.beta}

    def with_beta(self, beta) -> MixtureTarget:
        """The tempered target ``p(x)^beta`` (same means, width and weights): ``S_beta = beta * S_1``."""
        return MixtureTarget(self.means, self.sigma, np.exp(self.log_w), beta)

    def _parts(self, x):
        B, n = x.shape
        diff = ad.reshape(x, (B, 1, n)) - self.means  # (B, K, n)
        logits = self.log_w - ad.sum(diff * diff, axis=2) / (2 * self.sigma**2)
        return diff, logits

    def action(self, x):
        _, logits = self._parts(x)
        return -self.beta * ad.logsumexp(logits, axis=1)

    def force(self, x):
        diff, logits = self._parts(x)
        r = ad.exp(logits - ad.logsumexp(logits, axis=1, keepdims=True))  # responsibilities (B, K)
        B, K = r.shape
        return ad.sum(ad.reshape(r, (B, K, 1)) * diff, axis=1) * (self.beta / self.sigma**2)

    def sample(self, rng, n):
        """``n`` draws (n, dims): exact at ``beta = 1``; for ``beta != 1`` the separated-modes limit of
        ``p^beta`` (weights ``w_k^beta``, width ``sigma / sqrt(beta)``), good enough to start chains."""
        w = np.exp(self.beta * self.log_w)
        k = rng.choice(len(w), size=n, p=w / w.sum())
        return self.means[k] + self.sigma / np.sqrt(self.beta) * rng.standard_normal((n, self.event_shape[0]))


class U1Target:
    """Wilson-action compact U(1) on link angles ``(B, D, *L)``, any D (:mod:`latticeml.autodiff.u1`)."""

    angles = True

    def __init__(self, shape, beta):
        self.shape = tuple(int(L) for L in shape)
        self.beta = positive_float(beta, "beta")
        self.event_shape = (len(self.shape),) + self.shape
        self.config = {"kind": "u1", "shape": list(self.shape), "beta": self.beta}

    def with_beta(self, beta) -> "U1Target":
        return U1Target(self.shape, beta)

    def action(self, x):
        return u1_action(x, beta=self.beta)

    def force(self, x):
        return u1_force(x, beta=self.beta)

    def charge_sin(self, x):
        """``Q_sin = sum_x sin theta_P(x) / (2 pi)`` per configuration (2D), differentiable."""
        return _sum_event(ad.sin(u1_plaquette_angles(x))) / (2 * np.pi)


def target_from_config(config):
    kind = config["kind"]
    if kind == "gaussian":
        return GaussianTarget(config["cov"])
    if kind == "mixture":
        return MixtureTarget(config["means"], config["sigma"], config["weights"], config.get("beta", 1.0))
    if kind == "u1":
        return U1Target(config["shape"], config["beta"])
    raise ValueError(f"unknown L2HMC target kind {kind!r}")


# --- networks -----------------------------------------------------------------------------


class _CouplingNet(nn.Module):
    """Inputs: a list of (B, *event) arrays/Tensors. Output: ``(s, t, q)``, each (B, *event) (s None if not scaled).

    Dense (event ``(n,)``): concatenation ``(B, k n)`` -> MLP. Lattice (event ``(D, *L)``): the inputs
    stacked as ``k D`` channels -> periodic conv net. ``s, q`` pass through ``c tanh``.
    """

    def __init__(self, n_inputs, event_shape, *, hidden, lattice, scaled, rng, head_scale):
        self.event_shape = tuple(event_shape)
        self.lattice = lattice
        self.n_out = 3 if scaled else 2
        c = event_shape[0]
        if lattice:
            self.net = nn.conv_net([n_inputs * c, *hidden, self.n_out * c], kernel_size=3, ndim=len(event_shape) - 1,
                                   activation="tanh", rng=rng)
        else:
            self.net = nn.mlp([n_inputs * c, *hidden, self.n_out * c], activation="tanh", rng=rng)
        last = self.net[len(self.net) - 1]
        last.weight.value *= head_scale  # start near plain leapfrog when head_scale is small
        last.bias.value *= head_scale
        self.coeff_s = ad.Parameter(np.ones(1)) if scaled else None
        self.coeff_q = ad.Parameter(np.ones(1))

    def forward(self, inputs):
        B = inputs[0].shape[0]
        out = self.net(ad.concatenate(list(inputs), axis=1))
        out = ad.reshape(out, (B, self.n_out) + self.event_shape)
        t = out[:, 0]
        q = self.coeff_q * ad.tanh(out[:, 1])
        s = self.coeff_s * ad.tanh(out[:, 2]) if self.n_out == 3 else None
        return s, t, q


class L2HMCDynamics(nn.Module):
    """``n_layers`` generalized leapfrog layers for a target's ``event_shape`` (module docstring).

    ``hidden``: hidden widths (MLP units or conv channels); ``step_size``: initial ``eps`` of every
    layer; ``head_scale``: factor on the last layer's initial weights (small: the dynamics starts
    close to HMC; 1: a generic random map, as in the exactness tests); ``rng`` draws the weights.
    """

    def __init__(self, event_shape, *, n_layers, angles, rng, hidden=(16, 16), step_size=0.1, head_scale=0.1):
        check_rng(rng)
        self.event_shape = tuple(int(n) for n in event_shape)
        self.n_layers = check_count(n_layers, "n_layers", minimum=1)
        self.angles = bool(angles)
        self.lattice = len(self.event_shape) > 1
        self.config = {"event_shape": list(self.event_shape), "n_layers": self.n_layers, "angles": self.angles,
                       "hidden": [int(h) for h in hidden], "step_size": float(step_size), "head_scale": float(head_scale)}
        self.log_eps = ad.Parameter(np.full(self.n_layers, np.log(positive_float(step_size, "step_size"))))

        def net(n_inputs, scaled):
            return _CouplingNet(n_inputs, self.event_shape, hidden=tuple(hidden), lattice=self.lattice, scaled=scaled,
                                rng=rng, head_scale=head_scale)

        # inputs: v-nets (x features..., F); x-nets (frozen x features..., v)
        n_x = 2 if self.angles else 1
        self.vnets_a = [net(n_x + 1, True) for _ in range(self.n_layers)]
        self.xnets_1 = [net(n_x + 1, not self.angles) for _ in range(self.n_layers)]
        self.xnets_2 = [net(n_x + 1, not self.angles) for _ in range(self.n_layers)]
        self.vnets_b = [net(n_x + 1, True) for _ in range(self.n_layers)]
        self.mask = _mask(self.event_shape)

    def features(self, x, keep=None):
        """Network inputs of positions: ``x`` or ``(cos x, sin x)``, zero outside ``keep`` (a 0/1 mask)."""
        feats = [ad.cos(x), ad.sin(x)] if self.angles else [x]
        return feats if keep is None else [f * keep for f in feats]

    def step_sizes(self) -> np.ndarray:
        return np.exp(self.log_eps.value)


def _mask(event_shape):
    """m: the half updated first. Toys: alternate components; lattices: the checkerboard of sites
    (all links from even sites), so a link's conv-net coefficients never see the link itself."""
    if len(event_shape) == 1:
        return (np.arange(event_shape[0]) % 2 == 0).astype(np.float64)
    spatial = event_shape[1:]
    parity = np.indices(spatial).sum(axis=0) % 2 == 0
    return np.broadcast_to(parity, event_shape).astype(np.float64)


def save_model(path, dynamics: L2HMCDynamics, target, *, metadata=None):
    """Weights and architecture (``.npz`` with a JSON header, :func:`latticeml.io.save_npz`)."""
    meta = {"kind": "l2hmc_model", "architecture": dynamics.config, "target": target.config, **(metadata or {})}
    return io.save_npz(path, dynamics.state_dict(), meta)


def load_model(path):
    """``(dynamics, target, metadata)`` from a file of :func:`save_model`."""
    arrays, meta = io.load_npz(path)
    if meta.get("kind") != "l2hmc_model":
        raise ValueError(f"{path} is not an L2HMC model (written by latticeml.samplers.l2hmc.save_model or `latticeml l2hmc train`)")
    dyn = _dynamics_from_config(meta["architecture"])
    dyn.load_state_dict(arrays)
    return dyn, target_from_config(meta["target"]), meta


def _dynamics_from_config(cfg):
    a = dict(cfg)
    return L2HMCDynamics(tuple(a.pop("event_shape")), rng=np.random.default_rng(0), **a)


# --- the trajectory -----------------------------------------------------------------------


class TrajectoryResult(NamedTuple):
    """``x, v``: end point (Tensors, (B, *event)); ``force``: F at the end; ``log_jacobian`` (B,)."""

    x: object
    v: object
    force: object
    log_jacobian: object


def _v_update(net, x, v, F, eps, d, dyn):
    s, t, q = net(dyn.features(x) + [F])
    if d > 0:
        v = v * ad.exp(0.5 * eps * s) - 0.5 * eps * (F * ad.exp(eps * q) + t)
    else:
        v = (v + 0.5 * eps * (F * ad.exp(eps * q) + t)) * ad.exp(-0.5 * eps * s)
    return v, d * 0.5 * eps * _sum_event(s)


def _x_update(net, x, v, eps, d, update, dyn):
    frozen = 1.0 - update
    s, t, q = net(dyn.features(x, frozen) + [v])
    shift = eps * (v * ad.exp(eps * q) + t)
    if s is None:  # angles: a pure shift (volume preserving on the torus)
        new = x + shift if d > 0 else x - shift
        return frozen * x + update * new, 0.0
    if d > 0:
        new = x * ad.exp(eps * s) + shift
    else:
        new = (x - shift) * ad.exp(-eps * s)
    return frozen * x + update * new, d * eps * _sum_event(update * s)


def trajectory(dyn: L2HMCDynamics, target, x, v, *, direction: int, force=None) -> TrajectoryResult:
    """Run the ``n_layers`` layers forward (``direction=+1``) or their inverses backward (``-1``).

    ``x, v``: arrays or Tensors (B, *event); ``force``: ``target.force(x)`` if known. Records a tape
    when any input or weight requires gradients (outside :func:`latticeml.autodiff.no_grad`).
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    m = dyn.mask
    F = target.force(x) if force is None else force
    log_j = 0.0
    eps_all = ad.exp(dyn.log_eps)
    layers = range(dyn.n_layers) if direction > 0 else reversed(range(dyn.n_layers))
    for k in layers:
        eps = eps_all[k]
        if direction > 0:
            v, lj = _v_update(dyn.vnets_a[k], x, v, F, eps, 1, dyn)
            log_j = log_j + lj
            x, lj = _x_update(dyn.xnets_1[k], x, v, eps, 1, m, dyn)
            log_j = log_j + lj
            x, lj = _x_update(dyn.xnets_2[k], x, v, eps, 1, 1.0 - m, dyn)
            log_j = log_j + lj
            F = target.force(x)
            v, lj = _v_update(dyn.vnets_b[k], x, v, F, eps, 1, dyn)
            log_j = log_j + lj
        else:
            v, lj = _v_update(dyn.vnets_b[k], x, v, F, eps, -1, dyn)
            log_j = log_j + lj
            x, lj = _x_update(dyn.xnets_2[k], x, v, eps, -1, 1.0 - m, dyn)
            log_j = log_j + lj
            x, lj = _x_update(dyn.xnets_1[k], x, v, eps, -1, m, dyn)
            log_j = log_j + lj
            F = target.force(x)
            v, lj = _v_update(dyn.vnets_a[k], x, v, F, eps, -1, dyn)
            log_j = log_j + lj
    return TrajectoryResult(x, v, F, log_j)


def _value(t):
    return t.value if isinstance(t, ad.Tensor) else np.asarray(t, dtype=np.float64)


class _ForceFnTarget:
    """Adapter: a theory's unbatched ``force_fn(field)`` as a target force on (1, *event) values."""

    def __init__(self, force_fn, angles):
        self.force_fn, self.angles, self.calls = force_fn, angles, 0

    def force(self, x):
        self.calls += 1
        return np.asarray(self.force_fn(_value(x)[0]))[None]


def learned_integrator(dyn: L2HMCDynamics, *, direction: int):
    """The layers as an integrator of :mod:`latticeml.samplers.integrators`' signature (one direction bound).

    ``integrator(field, momentum, force, *, force_fn, evolve_fn, step_size, n_steps) -> IntegratorResult``
    with ``log_jacobian`` filled; ``step_size``/``n_steps`` are ignored (the layers carry their own
    trained step sizes and their number) and so is ``evolve_fn`` (the x-updates replace the drift).
    It is a factory, like ``sexton_weingarten``, not a registered name: it needs a model. Exactness
    needs the direction drawn uniformly per trajectory and flipped on acceptance, which
    :func:`l2hmc_step` does; HMC with one fixed direction bound in is *not* exact (the map followed by
    a momentum flip is no involution), so use this seam for measuring ``dH``/``log|J|`` along a
    trajectory, and :func:`sampler` / :func:`l2hmc_step` for chains.
    """
    from .integrators import IntegratorResult

    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")

    def integrator(field, momentum, force, *, force_fn, evolve_fn=None, step_size=None, n_steps=None):
        target = _ForceFnTarget(force_fn, dyn.angles)
        with ad.no_grad():
            res = trajectory(dyn, target, np.asarray(field, dtype=np.float64)[None], np.asarray(momentum, dtype=np.float64)[None],
                             direction=direction, force=None if force is None else np.asarray(force)[None])
        x = _value(res.x)[0]
        return IntegratorResult(_wrap(x) if dyn.angles else x, _value(res.v)[0], _value(res.force)[0], target.calls,
                                float(_value(res.log_jacobian)[0]))

    integrator.__name__ = f"l2hmc_{'forward' if direction > 0 else 'backward'}"
    return integrator


def _wrap(theta):
    return theta - 2 * np.pi * np.floor((theta + np.pi) / (2 * np.pi))


# --- the Markov chain (batched) -----------------------------------------------------------


class State(NamedTuple):
    """``x`` (B, *event) current positions; ``action`` (B,); ``force`` (B, *event), cached."""

    x: np.ndarray
    action: np.ndarray
    force: np.ndarray


class Info(NamedTuple):
    """acceptance: mean of ``accepted``; accepted (B,) bool; acceptance_probability (B,);
    direction (B,) of +-1; log_jacobian (B,); delta_H (B,) = H(end) - H(start); n_force_evaluations
    per chain (the trajectory's ``n_layers``, the start force being cached)."""

    acceptance: float
    accepted: np.ndarray
    acceptance_probability: np.ndarray
    direction: np.ndarray
    log_jacobian: np.ndarray
    delta_H: np.ndarray
    n_force_evaluations: int


def init_state(target, x) -> State:
    x = np.array(x, dtype=np.float64)
    with ad.no_grad():
        return State(x, _value(target.action(x)), _value(target.force(x)))


def l2hmc_step(rng: np.random.Generator, state: State, dyn: L2HMCDynamics, target) -> tuple[State, Info]:
    """One L2HMC trajectory for every chain of the batch: draws ``v`` (B, *event), then ``d`` (B,),
    then the uniforms (B,), in that order."""
    check_rng(rng)
    x0 = state.x
    B = x0.shape[0]
    v0 = rng.standard_normal(x0.shape)
    d = np.where(rng.random(B) < 0.5, 1, -1)
    x1, v1, F1, log_j = np.empty_like(x0), np.empty_like(x0), np.empty_like(x0), np.zeros(B)
    with ad.no_grad():
        for direction in (1, -1):
            idx = np.flatnonzero(d == direction)
            if idx.size == 0:
                continue
            res = trajectory(dyn, target, x0[idx], v0[idx], direction=direction, force=state.force[idx])
            x1[idx], v1[idx], F1[idx] = _value(res.x), _value(res.v), _value(res.force)
            log_j[idx] = _value(res.log_jacobian)
        S1 = _value(target.action(x1))
    if target.angles:
        x1 = _wrap(x1)
    dH = S1 + 0.5 * _sum_event(v1 * v1) - state.action - 0.5 * _sum_event(v0 * v0)
    return _metropolis(rng, state, State(x1, S1, F1), dH, log_j, d, dyn.n_layers)


def hmc_step(rng: np.random.Generator, state: State, target, *, step_size: float, n_steps: int) -> tuple[State, Info]:
    """Plain leapfrog HMC on the same batched targets (the baseline; ``n_steps`` force evaluations)."""
    check_rng(rng)
    x0 = state.x
    v = rng.standard_normal(x0.shape)
    v0 = v
    x, F = x0, state.force
    with ad.no_grad():
        v = v - 0.5 * step_size * F
        for i in range(n_steps):
            x = x + step_size * v
            F = _value(target.force(x))
            v = v - (step_size if i < n_steps - 1 else 0.5 * step_size) * F
        S1 = _value(target.action(x))
    if target.angles:
        x = _wrap(x)
    dH = S1 + 0.5 * _sum_event(v * v) - state.action - 0.5 * _sum_event(v0 * v0)
    return _metropolis(rng, state, State(x, S1, F), dH, np.zeros(x0.shape[0]), np.ones(x0.shape[0], int), n_steps)


def _metropolis(rng, state, proposal, dH, log_j, d, n_force):
    log_ratio = np.where(np.isfinite(dH), log_j - dH, -np.inf)
    prob = np.exp(np.minimum(log_ratio, 0.0))
    accepted = rng.random(dH.shape[0]) < prob
    sel = accepted.reshape((-1,) + (1,) * (state.x.ndim - 1))
    new = State(np.where(sel, proposal.x, state.x), np.where(accepted, proposal.action, state.action),
                np.where(sel, proposal.force, state.force))
    return new, Info(float(accepted.mean()), accepted, prob, d, log_j, dH, int(n_force))


def sampler(theory, *, model, **_ignored) -> Sampler:
    """A :class:`latticeml.samplers.chain.Sampler` for a 2D (or any-D) U(1) theory and a trained model.

    ``model``: a path written by :func:`save_model` (or a ``(dynamics, target)`` pair). The model's
    networks see the links, not beta, so the theory's beta and lattice size may differ from the
    training's (conv nets). One chain; its state is the L2HMC :class:`State` with a batch of 1.
    """
    if getattr(theory, "name", None) != "u1" or getattr(theory, "dim", None) is None or getattr(theory, "c1", 0.0) != 0.0:
        raise ValueError("l2hmc samples the U(1) gauge theory with the Wilson action (theory 'u1'); train a model with `latticeml l2hmc train u1`")
    if isinstance(model, (tuple, list)):
        dyn, _ = model
        label = "in-memory"
    else:
        dyn, _, _ = load_model(model)
        label = str(model)
    if not dyn.angles or dyn.event_shape[0] != theory.dim:
        raise ValueError(f"model {label} was trained for fields of shape {tuple(dyn.event_shape)}, not U(1) links in {theory.dim}D")
    target = U1Target(theory.shape, theory.couplings()["beta"] if callable(getattr(theory, "couplings", None)) else theory.beta)

    class _ChainState(NamedTuple):
        field: np.ndarray
        inner: State

    def init(field):
        field = np.array(theory.check_field(field), dtype=np.float64)
        return _ChainState(field, init_state(target, field[None]))

    def step(rng, st):
        inner, info = l2hmc_step(rng, st.inner, dyn, target)
        return _ChainState(inner.x[0], inner), info

    settings = {"model": label, "n_layers": dyn.n_layers, "step_sizes": [float(e) for e in dyn.step_sizes()],
                "n_force_evaluations_per_step": dyn.n_layers}
    return Sampler("l2hmc", theory, settings, init, step)


# --- training -----------------------------------------------------------------------------


class TrainResult(NamedTuple):
    """dynamics, target (at the final beta), optimizer, history (dict of arrays per step), state, rng, steps."""

    dynamics: object
    target: object
    optimizer: object
    history: dict
    state: object
    rng: np.random.Generator
    steps: int


HISTORY_KEYS = ("loss", "acceptance", "beta", "mean_jump")


def loss_fn(dyn, target, x0, v0, d, *, scale=1.0):
    """The training loss on one batch, and telemetry. U(1): ``-mean(A dQ_sin^2)`` (Foreman et al.);
    toys: ``mean(scale/(A delta + 1e-4) - (A delta)/scale)``, ``delta = |x'-x|^2`` (Levy et al. eq. 8)."""
    parts = []
    for direction in (1, -1):
        idx = np.flatnonzero(d == direction)
        if idx.size:
            res = trajectory(dyn, target, x0[idx], v0[idx], direction=direction)
            parts.append((idx, res))
    loss = 0.0
    acc_all, jump_all, ends = np.zeros(x0.shape[0]), np.zeros(x0.shape[0]), []
    with ad.no_grad():
        S0 = _value(target.action(x0))
    for idx, res in parts:
        dH = target.action(res.x) + 0.5 * _sum_event(res.v * res.v) - (S0[idx] + 0.5 * _sum_event(v0[idx] ** 2))
        log_r = res.log_jacobian - dH
        A = ad.exp(ad.where(log_r.value < 0, log_r, 0.0))
        if target.angles:
            dq = target.charge_sin(res.x) - _value(target.charge_sin(x0[idx]))
            jump = dq * dq
            per = -A * jump
        else:
            diff = res.x - x0[idx]
            jump = _sum_event(diff * diff)
            esjd = A * jump + 1e-4
            per = scale / esjd - esjd / scale
        loss = loss + ad.sum(per) / x0.shape[0]
        acc_all[idx], jump_all[idx] = A.value, _value(jump)
        ends.append((idx, res))
    return loss, acc_all, jump_all, ends


def train(dyn, target, *, steps, rng, batch_size=64, lr=1e-3, lr_final=None, beta_start=None, beta_end=None, scale=1.0,
          x_start=None, checkpoint=None, checkpoint_every=50, progress=True, callback=None) -> TrainResult:
    """Train ``dyn`` on ``target`` with Adam for ``steps`` batches of persistent chains.

    Targets with ``with_beta`` (U(1), the tempered mixture): beta goes linearly from ``beta_start``
    to ``beta_end`` (default: the target's beta throughout). Each step: one differentiable trajectory per chain (``d`` uniform), the loss,
    Adam, then the chains move by the Metropolis decision. ``lr_final``: Adam's rate follows a
    cosine from ``lr`` to ``lr_final`` over the ``steps`` (:func:`latticeml.autodiff.optim.cosine_rate`;
    stored in the checkpoint's schedule, so a resumed run follows it); default: constant ``lr``.
    """
    check_rng(rng)
    steps = check_count(steps, "steps", minimum=0)
    batch_size = check_count(batch_size, "batch_size", minimum=2)
    optimizer = optim.Adam(dyn.parameters(), lr=lr)
    if x_start is None:
        if target.angles:
            x_start = rng.uniform(-np.pi, np.pi, size=(batch_size,) + target.event_shape)
        else:
            x_start = target.sample(rng, batch_size)
    b0 = getattr(target, "beta", None)
    schedule = {"beta_start": b0 if beta_start is None else float(beta_start), "beta_end": b0 if beta_end is None else float(beta_end),
                "steps": steps, "batch_size": batch_size, "lr": lr, "lr_final": lr_final, "scale": scale}
    history = {k: [] for k in HISTORY_KEYS}
    return _loop(dyn, target, optimizer, rng, 0, np.array(x_start, dtype=np.float64), history, schedule, checkpoint,
                 checkpoint_every, progress, callback)


def resume_training(checkpoint, *, steps=None, progress=True, callback=None, checkpoint_every=50) -> TrainResult:
    """Continue a training from its checkpoint; the result is bit-identical to an uninterrupted run."""
    ck = io.load_checkpoint(checkpoint)
    meta = ck.metadata
    if meta.get("kind") != "l2hmc_training":
        raise ValueError(f"{checkpoint} is not an L2HMC training checkpoint")
    dyn = _dynamics_from_config(meta["architecture"])
    dyn.load_state_dict({k[6:]: v for k, v in ck.state_arrays.items() if k.startswith("param/")})
    target = target_from_config(meta["target"])
    schedule = meta["schedule"]
    if steps is not None:
        schedule["steps"] = int(steps)
    optimizer = optim.Adam(dyn.parameters(), lr=schedule["lr"])
    optimizer.load_state_dict({k[5:]: v for k, v in ck.state_arrays.items() if k.startswith("adam/")})
    history = {k: list(ck.records[k]) for k in HISTORY_KEYS}
    return _loop(dyn, target, optimizer, ck.rng, ck.step, ck.state_arrays["chains"], history, schedule, checkpoint,
                 checkpoint_every, progress, callback)


def _beta_at(schedule, step):
    b0, b1, n = schedule["beta_start"], schedule["beta_end"], schedule["steps"]
    if b0 is None:
        return None
    return b0 + (b1 - b0) * (step / max(n - 1, 1))


def _loop(dyn, target, optimizer, rng, start, x, history, schedule, checkpoint, checkpoint_every, progress, callback):
    meta = {"kind": "l2hmc_training", "architecture": dyn.config, "target": target.config, "schedule": schedule}

    def snapshot():
        arrays = {f"param/{k}": v for k, v in dyn.state_dict().items()}
        arrays.update({f"adam/{k}": v for k, v in optimizer.state_dict().items()})
        arrays["chains"] = state["x"]
        return arrays, {k: np.asarray(v, dtype=np.float64) for k, v in history.items()}

    state = {"x": x}
    with CheckpointedRun(rng, start=start, total=schedule["steps"], checkpoint=checkpoint, snapshot=snapshot, metadata=meta,
                         checkpoint_every=checkpoint_every, progress=progress, desc="l2hmc training") as run:
        while run.step < schedule["steps"]:
            run.begin_step()
            if schedule.get("lr_final") is not None:
                optimizer.lr = optim.cosine_rate(schedule["lr"], schedule["lr_final"], run.step, schedule["steps"])
            beta = _beta_at(schedule, run.step)
            if beta is not None:
                target = target.with_beta(beta)
            x0 = state["x"]
            v0 = rng.standard_normal(x0.shape)
            d = np.where(rng.random(x0.shape[0]) < 0.5, 1, -1)
            optimizer.zero_grad()
            loss, A, jump, ends = loss_fn(dyn, target, x0, v0, d, scale=schedule["scale"])
            loss.backward()
            accepted = rng.random(x0.shape[0]) < A
            x_new = x0.copy()
            for idx, res in ends:
                take = idx[accepted[idx]]
                x_new[take] = res.x.value[accepted[idx]]
            if target.angles:
                x_new = _wrap(x_new)
            record = {"loss": float(loss.value), "acceptance": float(A.mean()), "beta": float(beta or 0.0),
                      "mean_jump": float(jump.mean())}
            with run.commit():
                optimizer.step()
                state["x"] = x_new
                for k in HISTORY_KEYS:
                    history[k].append(record[k])
            if run.bar is not None and run.step % 10 == 0:
                run.bar.set_postfix(loss=f"{record['loss']:.3g}", acc=f"{record['acceptance']:.2f}")
            if callback is not None:
                callback(run.step, record)
    return TrainResult(dyn, target, optimizer, {k: np.asarray(v, dtype=np.float64) for k, v in history.items()},
                       state["x"], rng, run.step)


def _jsonable(meta):
    return json.loads(json.dumps(meta))
