"""latticeml.autodiff.u1: plaquette angles, Wilson action and force as differentiable ops.

Forward values against latticeml.theories.u1 (the Numba kernels); backward passes against central
finite differences in float64 (the action's backward is the force, the force's backward the
Hessian-vector product), in 2D and 3D, with a scalar beta and one beta per configuration.
"""

import numpy as np
import pytest

from latticeml.autodiff import check_grads
from latticeml.autodiff.u1 import u1_action, u1_force, u1_plaquette_angles
from latticeml.theories import u1 as u1_theory

SEED = 1515


@pytest.mark.parametrize("shape", [(4, 4), (3, 4), (2, 3, 2)])
def test_forward_matches_theory(rng, shape):
    theta = rng.uniform(-np.pi, np.pi, size=(3, len(shape)) + shape)
    beta = 1.7
    np.testing.assert_allclose(
        u1_plaquette_angles(theta).value, u1_theory.plaquette_angles(theta, batched=True), atol=1e-13
    )
    np.testing.assert_allclose(u1_action(theta, beta=beta).value, u1_theory.action(theta, beta=beta, batched=True),
                               rtol=1e-13)
    np.testing.assert_allclose(u1_force(theta, beta=beta).value, u1_theory.force(theta, beta=beta, batched=True),
                               atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 4), (2, 2, 3)])
@pytest.mark.parametrize("per_config_beta", [False, True])
def test_gradients_match_finite_differences(rng, shape, per_config_beta):
    B = 2
    theta = rng.uniform(-np.pi, np.pi, size=(B, len(shape)) + shape)
    beta = rng.uniform(0.5, 3.0, size=B) if per_config_beta else 2.3
    check_grads(u1_plaquette_angles, theta, rng=rng)
    check_grads(lambda t: u1_action(t, beta=beta), theta, rng=rng)
    check_grads(lambda t: u1_force(t, beta=beta), theta, rng=rng)


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match="shape"):
        u1_action(np.zeros((2, 3, 4, 4)), beta=1.0)
