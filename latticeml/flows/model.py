"""A normalizing flow: a prior and a stack of invertible layers, with exact densities, for any field.

Change of variables (Albergo, Kanwar & Shanahan, PRD 100 (2019) 034515, eq. 5; Albergo et al.,
arXiv:2101.08176, Sec. 2). Draw ``z ~ r`` from the prior and push it through the layers
``f = g_n o ... o g_1``; the field ``phi = f(z)`` has the density

    log q(phi) = log r(z) - log |det df/dz| = log r(z) - sum_i log |det dg_i|.

Shapes: fields ``(B, *field_shape)`` (phi^4: ``field_shape = shape``; U(1) links: ``(D, *shape)``);
log-densities and log-determinants ``(B,)``. Two builders, each recording its architecture so that
:func:`load_flow` and the training checkpoints can rebuild it:

* :func:`phi4_flow` -- affine couplings, checkerboard masks, normal prior (real scalar fields);
* :func:`u1_flow` -- gauge-equivariant couplings (:mod:`latticeml.flows.u1`), uniform Haar prior
  (2D U(1) links).

    flow = phi4_flow((8, 8), rng=np.random.default_rng(0))     # the tutorial's architecture
    phi, log_q = flow.sample(rng, 1024)                          # plain arrays, no tape
    flow.log_prob(phi)                                           # = log_q (via the inverse)
    x, log_det = flow(z)                                         # Tensors, for training
    save_flow("model.npz", flow); flow = load_flow("model.npz")  # .npz + JSON, no pickle
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import io
from ..autodiff import nn
from ..autodiff.tensor import Tensor, no_grad
from ..checks import check_count, check_rng
from ..lattice import check_shape
from .coupling import AffineCoupling
from .masks import checkerboard_mask
from .prior import NormalPrior
from .u1 import U1_ARCHITECTURE_DEFAULTS, HaarPrior, U1EquivariantCoupling
from .circle import KINDS as CIRCLE_TRANSFORMS, n_parameters

__all__ = ["Flow", "phi4_flow", "u1_flow", "flow_from_config", "save_flow", "load_flow", "ARCHITECTURE_DEFAULTS",
           "U1_ARCHITECTURE_DEFAULTS"]

#: The architecture of the tutorial (Albergo et al., arXiv:2101.08176, Sec. 3): 16 affine
#: couplings, conv nets with 2 hidden layers of 8 channels, kernel 3, LeakyReLU, final tanh.
ARCHITECTURE_DEFAULTS = {
    "n_layers": 16,
    "hidden": [8, 8],
    "kernel_size": 3,
    "activation": "leaky_relu",
    "final_tanh": True,
}


class Flow(nn.Module):
    """Prior + invertible layers (each with ``forward -> (y, log_det)`` and ``inverse``).

    ``config`` is the JSON-able recipe :func:`load_flow` rebuilds the architecture from
    (set by :func:`phi4_flow`); ``metadata`` holds whatever :func:`load_flow` found in the file.
    """

    def __init__(self, prior, layers, *, config: dict | None = None):
        self.prior = prior
        self.layers = list(layers)
        self.config = config
        self.metadata: dict = {}

    @property
    def shape(self) -> tuple[int, ...]:
        """The lattice shape."""
        return self.prior.shape

    @property
    def field_shape(self) -> tuple[int, ...]:
        """The shape of one configuration (phi^4: the lattice shape; U(1): ``(D, *shape)``)."""
        return self.prior.field_shape

    def __repr__(self):
        return f"Flow(shape={self.shape}, {len(self.layers)} layers, {self.num_parameters()} parameters)"

    def forward(self, z):
        """``(phi, log_det)``: the layers applied to ``z`` ``(B, *shape)``, as Tensors (for training)."""
        x, log_det = z, 0.0
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, phi) -> tuple[np.ndarray, np.ndarray]:
        """``(z, log_det)`` with ``z = f^-1(phi)`` and ``log_det = log |det dz/dphi|``; arrays, no tape."""
        x = np.asarray(phi.value if isinstance(phi, Tensor) else phi, dtype=np.float64)
        self._check(x)
        log_det = np.zeros(len(x))
        for layer in reversed(self.layers):
            x, ld = layer.inverse(x)
            log_det += ld
        return x, log_det

    def log_prob(self, phi) -> np.ndarray:
        """``log q(phi) = log r(f^-1(phi)) + log |det d f^-1 / d phi|`` for a batch, shape ``(B,)``."""
        z, log_det = self.inverse(phi)
        return self.prior.log_prob(z) + log_det

    def sample(self, rng: np.random.Generator, n: int, *, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """``(phi, log_q)``: ``n`` independent fields ``(n, *shape)`` and their log-densities ``(n,)``.

        The prior draws ``z`` for all ``n`` at once (so the numbers do not depend on
        ``batch_size``); the layers run in batches of ``batch_size`` without a tape.
        """
        z = self.prior.sample(rng, n)
        log_r = self.prior.log_prob(z)
        phi = np.empty_like(z)
        log_q = np.empty(len(z))
        with no_grad():
            for start in range(0, len(z), int(batch_size)):
                sl = slice(start, start + int(batch_size))
                x, log_det = self.forward(z[sl])
                phi[sl] = x.value
                log_q[sl] = log_r[sl] - np.asarray(log_det.value if isinstance(log_det, Tensor) else log_det)
        return phi, log_q

    def _check(self, x):
        if x.ndim != len(self.field_shape) + 1 or x.shape[1:] != self.field_shape:
            raise ValueError(f"expected a batch of fields of shape (B, *{self.field_shape}), got {x.shape}; add a batch axis with phi[None]")


def phi4_flow(
    shape,
    *,
    n_layers: int = ARCHITECTURE_DEFAULTS["n_layers"],
    hidden=tuple(ARCHITECTURE_DEFAULTS["hidden"]),
    kernel_size: int = ARCHITECTURE_DEFAULTS["kernel_size"],
    activation: str = ARCHITECTURE_DEFAULTS["activation"],
    final_tanh: bool = ARCHITECTURE_DEFAULTS["final_tanh"],
    rng: np.random.Generator,
) -> Flow:
    """Affine coupling flow for a real scalar field: ``n_layers`` layers, checkerboard parities
    alternating 0, 1, 0, ...; each layer's net is ``conv_net([1, *hidden, 2])`` (periodic, kernel
    ``kernel_size``, ``activation`` between layers, tanh on the output if ``final_tanh``).

    Defaults: the tutorial's architecture (:data:`ARCHITECTURE_DEFAULTS`). Weights are drawn from
    ``rng`` layer by layer (PyTorch's default initialisation, see ``autodiff.nn``).
    """
    shape = check_shape(shape)
    check_rng(rng)  # the initial weights are random
    n_layers = check_count(n_layers, "n_layers", minimum=1)
    hidden = [int(h) for h in hidden]
    if any(h < 1 for h in hidden):
        raise ValueError(f"hidden channel counts must be positive, got {hidden}")
    if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
    if len(shape) not in (1, 2, 3):
        raise ValueError(f"the periodic convolutions support 1, 2 or 3 lattice dimensions, got shape {shape}")
    layers = []
    for i in range(int(n_layers)):
        net = nn.conv_net(
            [1, *hidden, 2],
            kernel_size=int(kernel_size),
            ndim=len(shape),
            activation=activation,
            final_activation="tanh" if final_tanh else None,
            rng=rng,
        )
        layers.append(AffineCoupling(net, checkerboard_mask(shape, i % 2)))
    config = {
        "type": "affine_coupling_flow",
        "shape": list(shape),
        "n_layers": int(n_layers),
        "hidden": hidden,
        "kernel_size": int(kernel_size),
        "activation": str(activation),
        "final_tanh": bool(final_tanh),
    }
    return Flow(NormalPrior(shape), layers, config=config)


def u1_flow(
    shape,
    *,
    n_layers: int = U1_ARCHITECTURE_DEFAULTS["n_layers"],
    hidden=tuple(U1_ARCHITECTURE_DEFAULTS["hidden"]),
    kernel_size: int = U1_ARCHITECTURE_DEFAULTS["kernel_size"],
    transform: str = U1_ARCHITECTURE_DEFAULTS["transform"],
    components: int = U1_ARCHITECTURE_DEFAULTS["components"],
    activation: str = "leaky_relu",
    rng: np.random.Generator,
) -> Flow:
    """Gauge-equivariant flow for 2D U(1) links (Kanwar et al., PRL 125 (2020) 121601).

    ``n_layers`` couplings of :class:`~latticeml.flows.u1.U1EquivariantCoupling`, layer i with
    ``mu = i mod 2`` and ``off = (i // 2) mod 4``; each net ``conv_net([2, *hidden, C])`` (periodic,
    ``activation`` between layers, no final activation), C the parameters of ``transform``:
    ``"ncp"`` (a mixture of ``components`` non-compact projections) or ``"spline"`` (a circular
    rational-quadratic spline of ``components`` bins). Uniform Haar prior. Defaults: the tutorial's
    architecture (:data:`~latticeml.flows.u1.U1_ARCHITECTURE_DEFAULTS`).
    """
    shape = check_shape(shape)
    check_rng(rng)
    n_layers = check_count(n_layers, "n_layers", minimum=1)
    components = check_count(components, "components", minimum=1)
    hidden = [int(h) for h in hidden]
    if any(h < 1 for h in hidden):
        raise ValueError(f"hidden channel counts must be positive, got {hidden}")
    if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
    if transform not in CIRCLE_TRANSFORMS:
        raise ValueError(f"transform must be one of {sorted(CIRCLE_TRANSFORMS)}, got {transform!r}")
    out_channels = n_parameters(transform, components)
    layers = []
    for i in range(int(n_layers)):
        net = nn.conv_net([2, *hidden, out_channels], kernel_size=int(kernel_size), ndim=2, activation=activation,
                          final_activation=None, rng=rng)
        layers.append(U1EquivariantCoupling(net, shape, mu=i % 2, off=(i // 2) % 4, transform=transform))
    config = {
        "type": "u1_equivariant_flow",
        "shape": list(shape),
        "n_layers": int(n_layers),
        "hidden": hidden,
        "kernel_size": int(kernel_size),
        "transform": transform,
        "components": int(components),
        "activation": str(activation),
    }
    return Flow(HaarPrior(shape), layers, config=config)


#: Architecture recipes :func:`flow_from_config` rebuilds: config "type" -> (builder, its keyword arguments).
_BUILDERS = {
    "affine_coupling_flow": (phi4_flow, ("n_layers", "hidden", "kernel_size", "activation", "final_tanh")),
    "u1_equivariant_flow": (u1_flow, ("n_layers", "hidden", "kernel_size", "transform", "components", "activation")),
}


def flow_from_config(config: dict) -> Flow:
    """A flow of the architecture ``config`` (the ``flow.config`` of a builder), with placeholder weights."""
    kind = config.get("type") if isinstance(config, dict) else None
    if kind not in _BUILDERS:
        raise ValueError(f"unknown flow architecture {config!r}; this version reads {sorted(_BUILDERS)}")
    builder, keys = _BUILDERS[kind]
    kwargs = {k: config[k] for k in keys}
    # the weights are overwritten by the stored ones: the generator only fixes the shapes
    return builder(tuple(config["shape"]), rng=np.random.default_rng(0), **kwargs)


_flow_from_config = flow_from_config  # the name the training module and older code use


def save_flow(path, flow: Flow, *, metadata: dict | None = None) -> Path:
    """Write the flow's parameters and architecture to ``path`` (a latticeml ``.npz``, no pickle).

    ``metadata`` (JSON-able: theory, couplings, training settings, ...) is stored alongside and
    returned by :func:`load_flow` as ``flow.metadata``.
    """
    if flow.config is None:
        raise ValueError("this flow has no architecture recipe (config); build it with phi4_flow or u1_flow to save it")
    json.dumps(metadata or {})  # fail early, with json's message, on non-JSON metadata
    return io.save_npz(path, flow.state_dict(), {"kind": "flow", "architecture": flow.config, "user": metadata or {}})


def load_flow(path) -> Flow:
    """Rebuild a flow written by :func:`save_flow` (``flow.metadata`` holds the stored metadata)."""
    arrays, meta = io.load_npz(path)
    if meta.get("kind") != "flow":
        raise ValueError(f"{path} is a latticeml file of kind {meta.get('kind')!r}, not a flow model")
    flow = _flow_from_config(meta["architecture"])
    flow.load_state_dict(arrays)
    flow.metadata = meta.get("user", {})
    return flow
