"""latticeml.flows: normalizing flows for phi^4 theory, trained by self-sampling, used as MCMC proposals.

Reproduces M. S. Albergo, G. Kanwar, P. E. Shanahan, "Flow-based generative models for Markov
chain Monte Carlo in lattice field theory", PRD 100 (2019) 034515 [arXiv:1904.12072], and the
phi^4 part of Albergo et al., "Introduction to normalizing flows for lattice field theory",
arXiv:2101.08176.

    import numpy as np
    from latticeml.theories.phi4 import Phi4
    from latticeml import flows

    theory = Phi4((8, 8), m2=-4.0, lam=8.0)
    flow = flows.phi4_flow(theory.shape, rng=np.random.default_rng(0))   # 16 affine couplings
    result = flows.train(flow, theory, steps=2500, rng=np.random.default_rng(1))
    chain = flows.flow_mcmc(flow, theory, np.random.default_rng(2), n_steps=8192)
    chain.acceptance, flows.summarize(chain.records)["abs_magnetization"]

Modules (shapes: fields ``(B, *shape)``, per-configuration quantities ``(B,)``):

==============  ===========================================================================
``masks``       checkerboard masks (1 = frozen site)
``prior``       ``NormalPrior``: independent N(0, 1) per site, exact log-density
``coupling``    ``AffineCoupling``: y = m x + (1 - m)(x e^s + t), exact log-Jacobian, inverse;
                a fused custom op (fast path) and the textbook engine version (reference)
``model``       ``Flow`` (sample, log_prob, forward, inverse), ``phi4_flow``, ``save_flow``/``load_flow``
``target``      the phi^4 action on batches (array and differentiable), vectorised observables
``metrics``     effective sample size, reweighting, reverse KL, expected acceptance
``training``    reverse-KL self-training with Adam, telemetry, checkpoints, resume
``mcmc``        flow-based MCMC (independence Metropolis), batched and as a ``Sampler``
==============  ===========================================================================

The command line ``latticeml flow train`` / ``latticeml flow sample`` lives in
:mod:`latticeml.cli.flow`; nothing here imports the command line.
"""

from .coupling import AffineCoupling, coupling_op  # noqa: F401
from .masks import checkerboard_mask  # noqa: F401
from .mcmc import FlowMCMCResult, flow_mcmc, independence_metropolis, summarize  # noqa: F401
from .mcmc import sampler as flow_sampler  # noqa: F401
from .metrics import acceptance_estimate, effective_sample_size, log_weights, reverse_kl, reweight  # noqa: F401
from .model import ARCHITECTURE_DEFAULTS, Flow, load_flow, phi4_flow, save_flow  # noqa: F401
from .prior import NormalPrior  # noqa: F401
from .target import action, action_tensor, observables  # noqa: F401
from .training import TrainResult, load_checkpointed_flow, resume_training, reverse_kl_loss, train  # noqa: F401
