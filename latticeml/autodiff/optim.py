"""Gradient-descent optimizers: SGD (with momentum) and Adam.

An optimizer holds a list of Parameters, reads ``p.grad`` (filled by ``loss.backward()``) and
updates ``p.value`` in place. Complex parameters are treated as pairs of real numbers (their
gradient is dL/dRe + i dL/dIm, see ``tensor.py``), so Adam's second moment is taken per real
component, as in PyTorch.

    opt = Adam(net.parameters(), lr=1e-3)
    for step in range(n):
        opt.zero_grad()
        loss = loss_fn(net)
        loss.backward()
        opt.step()

``state_dict()``/``load_state_dict()`` hold the moment buffers and the step count, so a run
resumed from a checkpoint continues bit for bit.

Learning-rate schedule: :func:`cosine_rate` (set ``opt.lr`` before each step or epoch). It is a
function of the step alone, so a resumed run follows it without extra state.
"""

from __future__ import annotations

import numpy as np

from .tensor import Parameter

__all__ = ["Optimizer", "SGD", "Adam", "cosine_rate"]


def cosine_rate(lr: float, lr_final: float, step: int, steps: int) -> float:
    """Cosine annealing (Loshchilov, Hutter, "SGDR", ICLR 2017, without restarts).

    ``lr_final + (lr - lr_final) (1 + cos(pi step / (steps - 1))) / 2``: ``lr`` at step 0 and
    ``lr_final`` at step ``steps - 1`` (``lr`` throughout if ``steps <= 1``).
    """
    if steps <= 1:
        return float(lr)
    return float(lr_final + 0.5 * (lr - lr_final) * (1.0 + np.cos(np.pi * step / (steps - 1))))


def _real_view(a: np.ndarray) -> np.ndarray:
    """float64 view of a complex128 array as (Re, Im) pairs; the array itself if real."""
    return a.view(np.float64) if a.dtype.kind == "c" else a


class Optimizer:
    """Base class: parameter list, ``zero_grad``, and state save/restore."""

    def __init__(self, params, *, lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimizer got no parameters; pass module.parameters()")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"optimizers update Parameters, got {type(p).__name__}")
            if not p.value.flags.c_contiguous:
                raise ValueError("parameter values must be C-contiguous arrays")
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.lr = float(lr)
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _buffers(self) -> dict[str, list]:
        return {}

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {"t": np.array(self.t)}
        for key, bufs in self._buffers().items():
            for j, b in enumerate(bufs):
                state[f"{key}.{j}"] = b.copy()
        return state

    def load_state_dict(self, state) -> None:
        self.t = int(state["t"])
        for key, bufs in self._buffers().items():
            for j, b in enumerate(bufs):
                b[...] = state[f"{key}.{j}"]


class SGD(Optimizer):
    """Stochastic gradient descent with heavy-ball momentum (Polyak 1964; Sutskever et al. 2013).

    ``v <- momentum v + g;  p <- p - lr v``   (``momentum = 0``: plain ``p <- p - lr g``).
    """

    def __init__(self, params, *, lr: float, momentum: float = 0.0):
        super().__init__(params, lr=lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.velocity = [np.zeros_like(_real_view(p.value)) for p in self.params]

    def _buffers(self):
        return {"velocity": self.velocity}

    def step(self) -> None:
        self.t += 1
        for p, v in zip(self.params, self.velocity):
            if p.grad is None:
                continue
            g = _real_view(np.ascontiguousarray(p.grad).reshape(p.value.shape))  # (ascontiguousarray makes 0-d arrays 1-d)
            if self.momentum:
                v *= self.momentum
                v += g
                g = v
            _real_view(p.value)[...] -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, ICLR 2015, Algorithm 1).

    ``m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    p <- p - lr * [m / (1-b1^t)] / (sqrt(v / (1-b2^t)) + eps)``
    """

    def __init__(self, params, *, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr=lr)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)
        self.m = [np.zeros_like(_real_view(p.value)) for p in self.params]
        self.v = [np.zeros_like(_real_view(p.value)) for p in self.params]

    def _buffers(self):
        return {"m": self.m, "v": self.v}

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.b1, self.b2
        c1 = 1.0 - b1**self.t
        c2 = 1.0 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = _real_view(np.ascontiguousarray(p.grad).reshape(p.value.shape))  # (ascontiguousarray makes 0-d arrays 1-d)
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            _real_view(p.value)[...] -= (self.lr / c1) * m / (np.sqrt(v / c2) + self.eps)
