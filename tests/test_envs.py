"""Every registered gymnax environment trains through the public `make_train`, and the network /
policy head / config checks that depend on the environment."""

import gymnax
import jax
import numpy as np
import pytest

from probes import TargetAction, UnboundedTargetAction
from purejaxppo import ConfigError, PPOConfig, make_env, make_train
from purejaxppo.distributions import Categorical, DiagGaussian, TanhGaussian
from purejaxppo.envs import NEEDS_NETWORK
from purejaxppo.networks import network_kind
from purejaxppo.train import make_network, make_trainer

# Read from gymnax itself, so a newly registered environment is covered without editing this file.
ALL_ENVS = [name for name in gymnax.registered_envs if name not in NEEDS_NETWORK]
TWO_UPDATES = dict(num_envs=2, num_steps=8, total_timesteps=2 * 8 * 2, num_minibatches=2)


@pytest.mark.parametrize("env_name", ALL_ENVS)
def test_every_registered_env_runs_two_updates_over_two_seeds(env_name, smoke_jit):
    config = PPOConfig(env_name=env_name, **TWO_UPDATES)
    result = smoke_jit(jax.vmap(make_train(config)))(jax.random.split(jax.random.key(0), 2))
    for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm"):
        values = np.asarray(getattr(result.metrics, name))
        assert values.shape == (2, 2), name
        assert np.all(np.isfinite(values)), (name, values)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(result.params))


def test_the_registry_covers_every_kind_of_space():
    """The parametrised test above really meets continuous actions, images and Discrete obs."""
    specs = {name: make_env(name) for name in ["Pendulum-v1", "Breakout-MinAtar",
                                               "FrozenLake-misc", "Reacher-misc"]}
    assert not specs["Pendulum-v1"].action_space.discrete
    assert specs["Reacher-misc"].action_space.shape == (2,)
    assert len(specs["Breakout-MinAtar"].obs_shape) == 3
    assert specs["FrozenLake-misc"].obs_categories == 16
    assert set(NEEDS_NETWORK) <= set(gymnax.registered_envs)


@pytest.mark.parametrize("env_name, kind, head", [
    ("CartPole-v1", "mlp", Categorical), ("Breakout-MinAtar", "cnn", Categorical),
    ("Pong-misc", "cnn", Categorical), ("Catch-bsuite", "mlp", Categorical),
    ("FrozenLake-misc", "mlp", Categorical), ("Pendulum-v1", "mlp", DiagGaussian),
])
def test_auto_network_and_head(env_name, kind, head):
    config = PPOConfig(env_name=env_name)
    spec = make_env(env_name)
    assert network_kind(config, spec) == kind
    network = make_network(config, spec)
    from purejaxppo.networks import init_params

    params = init_params(network, jax.random.key(0), spec.obs_shape)
    obs = jax.numpy.zeros((3, *spec.obs_shape),
                          jax.numpy.int32 if spec.obs_categories else jax.numpy.float32)
    dist, value = network.apply(params, obs)
    assert isinstance(dist, head) and value.shape == (3,)
    assert {"policy_head", "value_head", "actor_torso", "critic_torso"} <= set(params["params"])
    if kind == "cnn":
        assert "Conv3x3_0" in params["params"]["actor_torso"]


def test_cnn_can_be_chosen_for_rank_2_grids_and_mlp_for_images(smoke_jit):
    spec = make_env("Catch-bsuite")
    assert network_kind(PPOConfig(env_name="Catch-bsuite", network="cnn"), spec) == "cnn"
    config = PPOConfig(env_name="Breakout-MinAtar", network="mlp", **TWO_UPDATES)
    params = smoke_jit(make_train(config))(jax.random.key(0)).params["params"]
    assert params["actor_torso"]["Dense_0"]["kernel"].shape[0] == 10 * 10 * 4  # flattened


def test_squash_gives_a_tanh_gaussian_inside_the_bounds():
    config = PPOConfig(env_name="probe", action_bounds="squash")
    spec = make_env("probe", TargetAction())
    network = make_network(config, spec)
    from purejaxppo.networks import init_params

    params = init_params(network, jax.random.key(0), spec.obs_shape)
    dist, _ = network.apply(params, jax.numpy.zeros((4, 1)))
    assert isinstance(dist, TanhGaussian)
    env_actions = np.asarray(dist.to_env(dist.sample(jax.random.key(1)) * 100))
    assert np.all(np.abs(env_actions) <= 2.0)


def test_shared_torso_parameter_names(smoke_jit):
    config = PPOConfig(env_name="Pendulum-v1", shared_trunk=True, **TWO_UPDATES)
    params = smoke_jit(make_train(config))(jax.random.key(0)).params["params"]
    assert set(params) == {"torso", "policy_head", "value_head", "log_std"}


@pytest.mark.parametrize("changes, env, field, words", [
    (dict(env_name="Pendulum-v1", network="cnn"), None, "network", "'cnn' needs image-like"),
    (dict(env_name="FrozenLake-misc", network="cnn"), None, "network", "Discrete observation"),
    (dict(env_name="CartPole-v1", action_bounds="squash"), None, "action_bounds",
     "Discrete(2) action space"),
    (dict(env_name="probe", action_bounds="squash"), UnboundedTargetAction(), "action_bounds",
     "needs finite bounds"),
    (dict(env_name="FrozenLake-misc", normalize_obs=True), None, "normalize_obs",
     "Discrete observations"),
    (dict(env_name="Breakout-MinAtar", conv_channels=(16,) * 6), None, "conv_channels",
     "shape (10, 10, 4): layer 5 gets a 2x2 map"),
    (dict(env_name="Pong-misc", network="cnn", conv_channels=(8,) * 15), None, "conv_channels",
     "Use at most 14 layers"),
])
def test_config_that_does_not_fit_the_env_names_the_field(changes, env, field, words):
    with pytest.raises(ConfigError, match=f"PPOConfig.{field}:") as err:
        make_train(PPOConfig(**{**TWO_UPDATES, **changes}), env=env)
    assert words in str(err.value)


def test_conv3x3_equals_flax_conv_values_and_gradients():
    """The banded-matmul convolution is nn.Conv(features, (3, 3), padding="VALID") exactly."""
    import flax.linen as nn
    import jax.numpy as jnp

    from purejaxppo.networks import Conv3x3

    x = jax.random.normal(jax.random.key(0), (5, 10, 12, 4))
    ours = Conv3x3(16)
    params = ours.init(jax.random.key(1), x)
    reference = nn.Conv(16, (3, 3), padding="VALID")
    np.testing.assert_allclose(ours.apply(params, x), reference.apply(params, x),
                               rtol=1e-5, atol=1e-5)
    loss = lambda module: lambda p: jnp.sum(jnp.tanh(module.apply(p, x)))  # noqa: E731
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 jax.grad(loss(ours))(params), jax.grad(loss(reference))(params))


def test_the_deepest_conv_stack_that_fits_is_accepted():
    trainer = make_trainer(PPOConfig(env_name="Breakout-MinAtar", conv_channels=(4,) * 4,
                                     **TWO_UPDATES))
    params = trainer.params(jax.eval_shape(trainer.init, jax.random.key(0)))
    assert params["params"]["actor_torso"]["MLP_0"]["Dense_0"]["kernel"].shape == (2 * 2 * 4, 64)
