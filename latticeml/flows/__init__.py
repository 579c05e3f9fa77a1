"""latticeml.flows: normalizing flows for lattice field theories (phi^4, 2D U(1)), trained by
self-sampling, used as MCMC proposals and to estimate free energies.

Reproduces M. S. Albergo, G. Kanwar, P. E. Shanahan, "Flow-based generative models for Markov
chain Monte Carlo in lattice field theory", PRD 100 (2019) 034515 [arXiv:1904.12072]; the
gauge-equivariant flows of G. Kanwar et al., "Equivariant flow-based sampling for lattice gauge
theory", PRL 125 (2020) 121601 [arXiv:2003.06413]; and both parts of Albergo et al., "Introduction
to normalizing flows for lattice field theory", arXiv:2101.08176.

    import numpy as np
    from latticeml.theories.phi4 import Phi4
    from latticeml import flows

    theory = Phi4((8, 8), m2=-4.0, lam=8.0)
    flow = flows.phi4_flow(theory.shape, rng=np.random.default_rng(0))   # 16 affine couplings
    result = flows.train(flow, theory, steps=2500, rng=np.random.default_rng(1))
    chain = flows.flow_mcmc(flow, theory, np.random.default_rng(2), n_steps=8192)
    chain.acceptance, flows.summarize(chain.records)["abs_magnetization"]

    from latticeml.theories import make_theory
    gauge = make_theory("u1", (8, 8), beta=2.0)
    flow = flows.u1_flow(gauge.shape, rng=np.random.default_rng(0))     # 16 gauge-equivariant couplings
    flows.train(flow, gauge, steps=1000, rng=np.random.default_rng(1))
    flows.estimate_free_energy(flow, gauge, np.random.default_rng(2), n=8192).log_z

Modules (shapes: fields ``(B, *field_shape)``: phi^4 ``(B, *shape)``, U(1) links ``(B, 2, L0, L1)``;
per-configuration quantities ``(B,)``):

==============  ===========================================================================
``masks``       checkerboard masks (1 = frozen site)
``prior``       ``NormalPrior``: independent N(0, 1) per site, exact log-density
``coupling``    ``AffineCoupling``: y = m x + (1 - m)(x e^s + t), exact log-Jacobian, inverse;
                a fused custom op (fast path) and the textbook engine version (reference)
``circle``      invertible circle maps with exact derivatives: NCP mixtures, circular RQ splines
``u1``          gauge-equivariant U(1) couplings (plaquette masks, one fused op per layer), Haar prior
``model``       ``Flow`` (sample, log_prob, forward, inverse), ``phi4_flow``, ``u1_flow``,
                ``save_flow``/``load_flow`` (any architecture the builders record)
``target``      the action of each theory a flow models, on batches (array and differentiable);
                vectorised observables
``metrics``     effective sample size, reweighting, reverse KL, expected acceptance
``free_energy`` ln Z: reverse-KL lower bound, importance-sampling estimate with its error; exact values
``training``    reverse-KL self-training with Adam, telemetry, checkpoints, resume
``mcmc``        flow-based MCMC (independence Metropolis), batched and as a ``Sampler``
==============  ===========================================================================

The command line ``latticeml flow train`` / ``latticeml flow sample`` lives in
:mod:`latticeml.cli.flow`; nothing here imports the command line.
"""

from .coupling import AffineCoupling, coupling_op  # noqa: F401
from .free_energy import (  # noqa: F401
    FreeEnergy, estimate_free_energy, exact_log_partition_function, gaussian_log_partition_function,
    log_partition_function, reverse_kl_bound, u1_exact_log_partition_function,
)
from .masks import checkerboard_mask  # noqa: F401
from .mcmc import FlowMCMCResult, flow_mcmc, independence_metropolis, summarize  # noqa: F401
from .mcmc import sampler as flow_sampler  # noqa: F401
from .metrics import acceptance_estimate, effective_sample_size, log_weights, reverse_kl, reweight  # noqa: F401
from .model import ARCHITECTURE_DEFAULTS, U1_ARCHITECTURE_DEFAULTS, Flow, flow_from_config, load_flow, phi4_flow, save_flow, u1_flow  # noqa: F401
from .prior import NormalPrior  # noqa: F401
from .target import action, action_tensor, observables  # noqa: F401
from .u1 import HaarPrior, U1EquivariantCoupling, active_link_mask, plaquette_masks  # noqa: F401
from .training import TrainResult, load_checkpointed_flow, resume_training, reverse_kl_loss, train  # noqa: F401
