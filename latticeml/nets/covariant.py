"""Gauge-covariant neural nets: stout smearing with trainable weights (Nagai & Tomiya, arXiv:2103.11965).

Smearing is a neural network with fixed parameters: each stout layer (Morningstar & Peardon,
PRD 69 (2004) 054501)

    U^(l+1)_mu(x) = exp( TA( sum_k rho^(l)_k C^(k)_mu(x)[U^(l)] U^(l)_mu(x)^+ ) ) U^(l)_mu(x)

is an affine map (a weighted sum of loops, the "convolution") followed by a local non-linearity
(the exponential). Making the rho's trainable turns it into a net that maps gauge fields to gauge
fields and is gauge covariant by construction, ``U^NN[Omega U] = Omega U^NN[U]`` for every weight.
Loop terms ``C^(k)`` are those of :mod:`latticeml.smearing` (``plaquette``, ``rectangle``,
``polyakov_time``, ``polyakov_space``): one trainable rho per term and layer, as in the paper's
2-layer plaquette + Polyakov-loop net with 6 weights.

An action of the smeared links is gauge invariant; :class:`CovariantNet` uses

    S_theta[U] = beta_theta * S_g[U^NN[U]] + s_theta,     S_g the plaquette (+ rectangle, ``c1``) action at beta = 1,

and is trained to mimic a target action by minimising the mean of ``L = 1/2 (S_theta[U] - S[U])^2``
over configurations U from a sampler (the paper's loss), with Adam. The constant ``s_theta`` does
not change the molecular dynamics (only differences of S enter); it lets the loss spend the
weights on the fluctuations of ``S - S_theta``, which is what the acceptance depends on.
:func:`train_to_mimic` trains the rho's with Adam on this loss minimised over the two linear
parameters ``(beta_theta, s_theta)``, which has a closed form on every mini-batch ("variable
projection", G. Golub and V. Pereyra, SIAM J. Numer. Anal. 10 (1973) 413):

    min_{beta, s} mean 1/2 (beta S_g + s - S)^2 = 1/2 [var(S) - cov(S, S_g)^2 / var(S_g)],

and sets ``(beta_theta, s_theta)`` by least squares on the whole set at the end. Adam's steps have
a fixed size in every parameter, which suits rho ~ 0.1 but not a constant of order 100 that moves
with every change of rho. The gradients come from the autodiff engine through
:data:`latticeml.smearing.stout_op`, whose backward is the stout force (the paper's "extended delta
rule").

Shapes: the net works on batches, links ``(B, D, L0, ..., L{D-1}, N, N)`` (complex128, SU(N));
``action`` returns ``(B,)``. :meth:`CovariantNet.smear`, :meth:`CovariantNet.md_action` and
:meth:`CovariantNet.md_force` take one configuration ``(D, *shape, N, N)`` and record no tape (they are
what a molecular-dynamics integrator calls).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import smearing
from ..theories import improved
from ..autodiff import ops, optim
from ..autodiff.nn import Module
from ..autodiff.tensor import Parameter, as_value, no_grad

__all__ = ["StoutLayer", "CovariantNet", "mimic_loss", "TrainingLog", "train_to_mimic"]


class StoutLayer(Module):
    """One trainable stout layer: ``U -> exp(TA(sum_k rho_k C^(k) U^+)) U`` with ``rho`` a Parameter ``(n_terms,)``."""

    def __init__(self, terms=("plaquette",), *, rho=0.0):
        self.terms = smearing.check_terms(terms)
        values = np.broadcast_to(np.asarray(rho, dtype=np.float64), (len(self.terms),))
        self.rho = Parameter(np.array(values), name="rho")

    def forward(self, U):
        """Smear a batch of links ``(B, D, ..., N, N)`` (array or Tensor)."""
        return smearing.stout_op(U, self.rho, terms=self.terms, batched=True)

    def __repr__(self):
        return f"StoutLayer(terms={self.terms}, rho={np.round(self.rho.value, 5).tolist()})"


class CovariantNet(Module):
    """``n_layers`` trainable stout layers and the effective action ``S_theta = beta_theta S_g[U^NN]``.

    ``terms``: loop terms of every layer; ``rho``: initial weight(s) (0 makes the net the identity);
    ``beta``: initial ``beta_theta``; ``train_beta``: train ``beta_theta`` and the constant
    ``s_theta`` (initially 0); ``c1``: rectangle coefficient of ``S_g`` (0: Wilson plaquette action).
    """

    def __init__(self, n_layers: int, *, terms=("plaquette",), rho=0.0, beta: float, c1: float = 0.0, train_beta: bool = True):
        if isinstance(n_layers, bool) or int(n_layers) != n_layers or n_layers < 0:
            raise ValueError(f"n_layers must be an integer >= 0, got {n_layers!r}")
        self.terms = smearing.check_terms(terms)
        self.layers = [StoutLayer(self.terms, rho=rho) for _ in range(int(n_layers))]
        beta = float(beta)
        if not np.isfinite(beta):
            raise ValueError(f"beta must be finite, got {beta}")
        # shape (1,), not a 0-d array: parameters are arrays the optimizers update in place
        self.beta = Parameter(np.array([beta]), name="beta") if train_beta else np.array([beta])
        self.offset = Parameter(np.zeros(1), name="offset") if train_beta else np.zeros(1)
        self.c1 = float(c1)

    # --- the net ------------------------------------------------------------------------
    def forward(self, U):
        """Smeared links ``U^NN`` of a batch ``(B, D, ..., N, N)`` (a Tensor when recording)."""
        for layer in self.layers:
            U = layer(U)
        return U

    def smeared_gauge_action(self, U):
        """``S_g[U^NN]`` per configuration (beta = 1), a Tensor ``(B,)``."""
        return improved.gauge_action_op(self.forward(U), beta=1.0, c1=self.c1, batched=True)

    def action(self, U):
        """``S_theta[U] = beta_theta S_g[U^NN] + s_theta`` per configuration, a Tensor ``(B,)``."""
        return self.smeared_gauge_action(U) * self.beta + self.offset

    def fit_linear(self, configs, target_action) -> None:
        """Set ``(beta_theta, s_theta)`` to the least-squares fit of the target at the current smearing.

        ``S[U] ~ beta_theta S_g[U^NN] + s_theta`` is linear in both, so their best values are a
        two-parameter regression (no gradient steps needed); the smearing weights are unchanged.
        """
        with no_grad():
            S_g = np.asarray(as_value(self.smeared_gauge_action(np.asarray(configs))))
        A = np.column_stack([S_g, np.ones_like(S_g)])
        (b, c), *_ = np.linalg.lstsq(A, np.asarray(target_action, dtype=np.float64), rcond=None)
        self.beta.value[...] = b
        self.offset.value[...] = c

    # --- frozen views for molecular dynamics -----------------------------------------------
    @property
    def rho(self) -> np.ndarray:
        """Current weights, ``(n_layers, n_terms)``."""
        return np.array([layer.rho.value for layer in self.layers]).reshape(len(self.layers), len(self.terms))

    @property
    def beta_value(self) -> float:
        return float(as_value(self.beta)[0])

    @property
    def offset_value(self) -> float:
        return float(as_value(self.offset)[0])

    def smear(self, U) -> np.ndarray:
        """``U^NN`` of one configuration ``(D, *shape, N, N)``, no tape."""
        with no_grad():
            return np.asarray(as_value(self.forward(np.asarray(U)[None])))[0]

    def md_action(self, U) -> float:
        """``S_theta`` of one configuration (no tape): :func:`latticeml.smearing.smeared_action`."""
        if not self.layers:
            return self.beta_value * improved.gauge_action(U, beta=1.0, c1=self.c1) + self.offset_value
        return smearing.smeared_action(U, rho=self.rho, terms=self.terms, beta=self.beta_value, c1=self.c1) + self.offset_value

    def md_force(self, U) -> np.ndarray:
        """Force of ``S_theta`` w.r.t. the thin links (no tape): :func:`latticeml.smearing.smeared_force`."""
        if not self.layers:
            return improved.gauge_force(U, beta=self.beta_value, c1=self.c1)
        return smearing.smeared_force(U, rho=self.rho, terms=self.terms, beta=self.beta_value, c1=self.c1)

    def __repr__(self):
        return (
            f"CovariantNet(n_layers={len(self.layers)}, terms={self.terms}, beta={self.beta_value:.5g}, "
            f"offset={self.offset_value:.5g}, c1={self.c1}, rho={np.round(self.rho, 5).tolist()})"
        )


def mimic_loss(net: CovariantNet, U, target_action, *, fit_linear: bool = False):
    """``mean_b 1/2 (S_theta[U_b] - S[U_b])^2`` for a batch ``U`` (B, D, ..., N, N) and target values ``(B,)``.

    With ``fit_linear`` the loss is minimised over ``(beta_theta, s_theta)`` on this batch in closed
    form, ``1/2 [var(S) - cov(S, S_g)^2 / var(S_g)]`` (module docstring): a function of the rho's only.
    """
    target_action = np.asarray(target_action, dtype=np.float64).reshape(-1)
    if fit_linear:
        if len(target_action) < 3:
            raise ValueError("the loss minimised over beta_theta and s_theta needs batches of at least 3 configurations")
        dS = target_action - target_action.mean()
        S_g = net.smeared_gauge_action(U)
        dg = S_g - ops.mean(S_g)
        cov = ops.mean(dg * dS)
        return (float(np.mean(dS * dS)) - cov * cov / ops.mean(dg * dg)) * 0.5
    diff = net.action(U) - target_action
    return ops.mean(diff * diff) * 0.5


class TrainingLog(NamedTuple):
    """What :func:`train_to_mimic` returns.

    loss:   the mini-batch loss before each Adam step, ``(n_steps,)`` (minimised over
            ``beta_theta`` and ``s_theta`` when those are fitted, see :func:`train_to_mimic`).
    epoch_loss: the same loss on the whole training set before the first epoch and after each
            epoch, ``(epochs + 1,)`` (less noisy than the mini-batch values).
    rho:    the weights after each step, ``(n_steps, n_layers, n_terms)``.
    beta:   ``beta_theta`` after each step, ``(n_steps,)``.
    offset: ``s_theta`` after each step, ``(n_steps,)``.
    """

    loss: np.ndarray
    epoch_loss: np.ndarray
    rho: np.ndarray
    beta: np.ndarray
    offset: np.ndarray


def train_to_mimic(
    net: CovariantNet,
    configs,
    target_action,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    rng: np.random.Generator,
    fit_linear: bool = True,
) -> TrainingLog:
    """Adam (Kingma & Ba 2015) on :func:`mimic_loss` over shuffled mini-batches of ``configs``.

    ``configs`` ``(n, D, *shape, N, N)`` with their target actions ``(n,)`` (from a sampler of the
    target theory); one epoch visits every configuration once, in an order drawn from ``rng``.
    With ``fit_linear`` (and a trainable ``beta_theta``) Adam updates the rho's on the loss
    minimised over ``(beta_theta, s_theta)`` per mini-batch (``batch_size >= 3``), and
    :meth:`CovariantNet.fit_linear` sets those two on the whole set at the end (module
    docstring); otherwise Adam updates every parameter on the plain loss.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError("pass rng=np.random.default_rng(seed): the mini-batch order is random")
    configs = np.asarray(configs)
    target_action = np.asarray(target_action, dtype=np.float64)
    if configs.ndim < 6 or len(configs) != len(target_action):
        raise ValueError(
            f"configs must be a batch (n, D, *shape, N, N) with one target action each; got {configs.shape} "
            f"and {target_action.shape}"
        )
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    refit = fit_linear and isinstance(net.beta, Parameter)
    params = [layer.rho for layer in net.layers] if refit else net.parameters()
    losses, rhos, betas, offsets = [], [], [], []
    if not params:  # nothing for Adam: a plain linear fit
        if refit:
            net.fit_linear(configs, target_action)
        return TrainingLog(np.zeros(0), np.zeros(0), np.zeros((0,) + net.rho.shape), np.zeros(0), np.zeros(0))
    if refit and batch_size < 3:
        raise ValueError(f"batch_size must be >= 3 when beta_theta and s_theta are fitted per batch, got {batch_size}")
    opt = optim.Adam(params, lr=lr)
    n = len(configs)

    def full_loss():
        with no_grad():
            return float(as_value(mimic_loss(net, configs, target_action, fit_linear=refit)))

    epoch_losses = [full_loss()]
    for _ in range(int(epochs)):
        order = rng.permutation(n)
        for start in range(0, n, int(batch_size)):
            idx = order[start : start + int(batch_size)]
            if refit and len(idx) < 3:  # a ragged last batch too small for the fit
                continue
            opt.zero_grad()
            loss = mimic_loss(net, configs[idx], target_action[idx], fit_linear=refit)
            loss.backward()
            opt.step()
            losses.append(float(loss.value))
            rhos.append(net.rho)
            betas.append(net.beta_value)
            offsets.append(net.offset_value)
        epoch_losses.append(full_loss())
    if refit:
        net.fit_linear(configs, target_action)
    return TrainingLog(np.array(losses), np.array(epoch_losses), np.array(rhos), np.array(betas), np.array(offsets))
