"""The PPO family: PPO-Penalty (exact KL, adaptive β), target-KL early stopping, recurrent PPO."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probes import ConstantReward, DelayedReward, ProbeParams, RememberCue
from purejaxppo import ConfigError, PPOConfig, make_env, make_train
from purejaxppo.distributions import Categorical, DiagGaussian
from purejaxppo.envs import ActionSpace
from purejaxppo.loss import ppo_loss
from purejaxppo.metrics import final_return
from purejaxppo.networks import ActorCritic, init_params, initial_carry, policy_step
from purejaxppo.rollout import collect_rollout, reset_envs
from purejaxppo.update import (KL_COEF_BOUNDS, Batch, Learner, adapt_kl_coef, make_optimizer,
                               minibatch_indices, sgd_step, take_transitions, update_policy)

# ------------------------------------------------------------------------------ PPO-Penalty


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _logits_case(objective, kl_coef, logits, old_logits, actions, advantages):
    """ppo_loss on a 'network' whose parameters are the logits themselves (value 0, no value
    or entropy terms, raw advantages): returns (loss, gradient w.r.t. the logits, LossInfo)."""
    old = Categorical(jnp.asarray(old_logits, jnp.float32))
    actions = jnp.asarray(actions)
    batch = Batch(obs=jnp.zeros((len(actions), 1)), actions=actions,
                  log_probs=old.log_prob(actions), values=jnp.zeros(len(actions)),
                  advantages=jnp.asarray(advantages, jnp.float32),
                  returns=jnp.zeros(len(actions)), old_dist=old)
    hp = PPOConfig(vf_coef=0.0, ent_coef=0.0).hparams()
    policy_fn = lambda p, mb: (Categorical(p), jnp.zeros(p.shape[0]))  # noqa: E731

    def loss(z):
        return ppo_loss(z, policy_fn, batch, hp, kl_coef, objective=objective, clip_value=False,
                        normalize_advantages=False)

    (value, info), grad = jax.value_and_grad(loss, has_aux=True)(jnp.asarray(logits, jnp.float32))
    return float(value), np.asarray(grad), info


def test_kl_penalty_loss_and_gradient_at_the_old_policy_hand_computed():
    """θ = θ_old: ρ = 1 and KL = 0, so L = −mean(Â) = −(1 − 0.5)/2 = −0.25; the KL term's gradient
    (π − π_old) vanishes, leaving ∂L/∂z_i = −Â_i (e_{a_i} − π_i) / 2. With uniform logits over
    3 actions, π = 1/3: sample 0 (a=0, Â=1): −(2/3, −1/3, −1/3)/2; sample 1 (a=2, Â=−0.5):
    +0.5·(−1/3, −1/3, 2/3)/2."""
    z = np.zeros((2, 3))
    loss, grad, info = _logits_case("kl_penalty", 0.7, z, z, [0, 2], [1.0, -0.5])
    assert loss == pytest.approx(-0.25, abs=1e-6)
    expected = np.array([[-1 / 3, 1 / 6, 1 / 6], [-1 / 12, -1 / 12, 1 / 6]])
    np.testing.assert_allclose(grad, expected, atol=1e-6)
    assert float(info.kl) == pytest.approx(0.0, abs=1e-7)


def test_kl_penalty_loss_and_gradient_away_from_the_old_policy():
    """L = −mean(ρ Â) + β mean(Σ π_old log(π_old / π)); ∂L/∂z_i = [−Â_i ρ_i (e_a − π_i)
    + β (π_i − π_old,i)] / n, against numpy."""
    rng = np.random.default_rng(0)
    z, z_old = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    actions, advantages, beta = np.array([0, 2, 1, 1]), np.array([1.0, -0.5, 2.0, 0.3]), 0.7
    pi, pi_old = _softmax(z), _softmax(z_old)
    rows = np.arange(4)
    rho = pi[rows, actions] / pi_old[rows, actions]
    kl = (pi_old * np.log(pi_old / pi)).sum(-1)
    onehot = np.eye(3)[actions]
    expected_grad = (-(advantages * rho)[:, None] * (onehot - pi) + beta * (pi - pi_old)) / 4

    loss, grad, info = _logits_case("kl_penalty", beta, z, z_old, actions, advantages)
    assert loss == pytest.approx(-(rho * advantages).mean() + beta * kl.mean(), rel=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-6)
    assert float(info.kl) == pytest.approx(kl.mean(), rel=1e-5)  # exact, not the estimator
    assert float(info.approx_kl) == pytest.approx(((rho - 1) - np.log(rho)).mean(), rel=1e-5)

    # clip + penalty = the clipped surrogate (objective "clip") + β·KL.
    clip_loss, _, _ = _logits_case("clip", beta, z, z_old, actions, advantages)
    both, _, _ = _logits_case("clip+kl_penalty", beta, z, z_old, actions, advantages)
    assert both == pytest.approx(clip_loss + beta * kl.mean(), rel=1e-5)


def test_exact_kl_of_gaussians_enters_the_loss():
    """KL(N(μ0, σ0) || N(μ1, σ1)) = log σ1/σ0 + (σ0² + (μ0 − μ1)²) / (2σ1²) − 1/2 per dimension."""
    low, high = jnp.full((1,), -2.0), jnp.full((1,), 2.0)
    old = DiagGaussian(jnp.array([[0.0], [1.0]]), jnp.full((2, 1), np.log(0.5)),
                       jnp.broadcast_to(low, (2, 1)), jnp.broadcast_to(high, (2, 1)))
    new = DiagGaussian(jnp.array([[0.3], [0.0]]), jnp.full((1,), np.log(0.8)), low, high)
    expected = np.log(0.8 / 0.5) + (0.25 + np.array([0.09, 1.0])) / (2 * 0.64) - 0.5
    np.testing.assert_allclose(old.kl(new), expected, rtol=1e-5)


def test_adaptive_kl_coef_follows_the_paper_rule_on_a_scripted_kl_sequence():
    """kl_target 0.01: ×2 above 0.015, ÷2 below 0.00667, unchanged between."""
    kls = jnp.array([0.02, 0.01, 0.005, 0.0067, 0.1, 0.0])

    def step(beta, kl):
        beta = adapt_kl_coef(beta, kl, 0.01, "paper")
        return beta, beta

    _, betas = jax.jit(lambda b: jax.lax.scan(step, b, kls))(jnp.float32(1.0))
    np.testing.assert_allclose(betas, [2.0, 2.0, 1.0, 1.0, 2.0, 1.0])


def test_adaptive_kl_coef_rllib_variant_fixed_and_bounds():
    """RLlib: ×1.5 above 2·target, ×0.5 below 0.5·target; "fixed" never moves; β stays within
    KL_COEF_BOUNDS however long the KL stays off target."""
    betas, beta = [], jnp.float32(1.0)
    for kl in (0.03, 0.015, 0.004, 0.02):
        beta = adapt_kl_coef(beta, kl, 0.01, "rllib")
        betas.append(float(beta))
    np.testing.assert_allclose(betas, [1.5, 1.5, 0.75, 0.75])
    assert float(adapt_kl_coef(jnp.float32(3.0), 1.0, 0.01, "fixed")) == 3.0
    high = low = jnp.float32(1.0)
    for _ in range(40):
        high = adapt_kl_coef(high, 1.0, 0.01, "paper")
        low = adapt_kl_coef(low, 0.0, 0.01, "paper")
    assert float(high) == pytest.approx(KL_COEF_BOUNDS[1]) and float(low) == pytest.approx(
        KL_COEF_BOUNDS[0])


def test_kl_coef_is_carried_and_adapted_in_training(smoke_jit):
    """β starts at hparams.kl_coef; with the penalty it moves between updates, by factors the
    rule allows; with PPO-Clip it stays put."""
    config = PPOConfig(total_timesteps=512 * 8, policy_objective="kl_penalty", kl_coef=0.3,
                       kl_target=1e-3, learning_rate=3e-3)
    betas = np.asarray(smoke_jit(make_train(config))(jax.random.key(0)).metrics.kl_coef)
    assert betas[0] == pytest.approx(0.3)
    ratios = betas[1:] / betas[:-1]
    assert np.all(np.isclose(ratios[:, None], [0.5, 1.0, 2.0]).any(-1))
    assert not np.all(ratios == 1.0)
    clip = np.asarray(smoke_jit(make_train(config.replace(policy_objective="clip")))(
        jax.random.key(0)).metrics.kl_coef)
    np.testing.assert_array_equal(clip, np.float32(0.3))


# ---------------------------------------------------------------------------- target-KL


def _update_setup(target_kl, epochs=4):
    config = PPOConfig(num_envs=4, num_steps=8, update_epochs=epochs, num_minibatches=2,
                       target_kl=target_kl)
    rng = np.random.default_rng(1)
    network = ActorCritic(ActionSpace(3), hidden_sizes=(16,))
    params = init_params(network, jax.random.key(0), (5,))
    shape = (config.num_steps, config.num_envs)
    old = Categorical(jnp.asarray(rng.normal(size=(*shape, 3)), jnp.float32))
    actions = jnp.asarray(rng.integers(0, 3, shape))
    batch = Batch(obs=jnp.asarray(rng.normal(size=(*shape, 5)), jnp.float32), actions=actions,
                  log_probs=old.log_prob(actions),
                  values=jnp.asarray(rng.normal(size=shape), jnp.float32),
                  advantages=jnp.asarray(rng.normal(size=shape), jnp.float32),
                  returns=jnp.asarray(rng.normal(size=shape), jnp.float32), old_dist=old)
    optimizer = make_optimizer(config)
    learner = Learner(params, optimizer.init(params), jnp.float32(1.0))
    policy_fn = lambda p, mb: network.apply(p, mb.obs)  # noqa: E731
    kwargs = dict(policy_fn=policy_fn, optimizer=optimizer, hp=config.hparams(),
                  learning_rate=1e-2, config=config)
    return config, learner, batch, kwargs


def test_tiny_target_kl_stops_after_the_first_epoch():
    key = jax.random.key(3)
    config, learner, batch, kwargs = _update_setup(target_kl=1e-9)
    stopped, info = jax.jit(lambda l, b: update_policy(l, b, key, **kwargs))(learner, batch)
    assert float(info.epochs) == 1 and float(info.minibatch_steps) == 2

    # The same first epoch by hand: the update's first permutation, one sgd_step per minibatch.
    flat = jax.tree.map(lambda x: x.reshape((config.batch_size, *x.shape[2:])), batch)
    expected = learner
    for idx in minibatch_indices(key, config.batch_size, 4, 2)[0]:
        expected, _ = sgd_step(expected, take_transitions(flat, idx), **kwargs)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                 stopped.params, expected.params)

    no_stop = _update_setup(target_kl=0.0)[3]
    full, full_info = jax.jit(lambda l, b: update_policy(l, b, key, **no_stop))(learner, batch)
    assert float(full_info.epochs) == 4 and float(full_info.minibatch_steps) == 8
    assert not np.allclose(jax.tree.leaves(full.params)[0], jax.tree.leaves(stopped.params)[0])


def test_vmapped_seeds_with_different_stop_points_equal_their_separate_runs():
    config = PPOConfig(total_timesteps=512 * 6, learning_rate=3e-3, target_kl=0.004,
                       anneal_lr=False)
    train = make_train(config)
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.jit(jax.vmap(train))(keys)
    epochs = np.asarray(batched.metrics.epochs)
    assert epochs.min() < 4  # some updates stopped early ...
    assert len({tuple(row) for row in epochs}) > 1  # ... at different points in different seeds
    for i in range(3):
        single = jax.jit(train)(keys[i])
        np.testing.assert_array_equal(np.asarray(single.metrics.epochs), epochs[i])
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i], b, rtol=2e-4, atol=1e-6),
                     batched.params, single.params)


# ------------------------------------------------------------------------------ recurrent


def _gru(**kw):
    return ActorCritic(ActionSpace(2), hidden_sizes=(8,), gru_size=6, **kw)


@pytest.mark.parametrize("shared", [False, True])
def test_gru_reset_makes_one_sequence_equal_two_separate_ones(shared):
    """A done in the middle of a sequence (reset before step 3 of env 0) gives exactly what
    running steps 0-2 from the stored carry and steps 3-5 from the initial carry gives."""
    network = _gru(shared_trunk=shared)
    params = init_params(network, jax.random.key(0), (3,))
    obs = jax.random.normal(jax.random.key(1), (6, 2, 3))
    carry = jax.random.normal(jax.random.key(2), (2, initial_carry(network, 2).shape[1]))
    resets = jnp.zeros((6, 2), bool).at[3, 0].set(True)
    dist, values, final = network.apply(params, obs, carry, resets)

    no_reset = jnp.zeros((3, 1), bool)
    d1, v1, _ = network.apply(params, obs[:3, :1], carry[:1], no_reset)
    d2, v2, c2 = network.apply(params, obs[3:, :1], initial_carry(network, 1), no_reset)
    logits = np.asarray(dist.logits).reshape(6, 2, 2)
    np.testing.assert_allclose(logits[:3, 0], d1.logits, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(logits[3:, 0], d2.logits, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(values).reshape(6, 2)[:, 0],
                               np.concatenate([v1, v2]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(final[0], c2[0], rtol=1e-6, atol=1e-7)
    # env 1 never reset: one uninterrupted sequence.
    d, v, c = network.apply(params, obs[:, 1:], carry[1:], jnp.zeros((6, 1), bool))
    np.testing.assert_allclose(logits[:, 1], d.logits, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(final[1], c[0], rtol=1e-6, atol=1e-7)
    # The reset carry really differs from carrying on (the test can fail).
    d_cont, _, _ = network.apply(params, obs[:, :1], carry[:1], jnp.zeros((6, 1), bool))
    assert not np.allclose(logits[3:, 0], np.asarray(d_cont.logits)[3:])


@pytest.mark.parametrize("env", [ConstantReward(), DelayedReward()])  # truncation / termination
def test_rollout_resets_the_carry_and_a_replay_from_the_start_carry_reproduces_it(env):
    """The rollout resets the hidden state after every done (time limit at 3 steps, or termination
    every 2); replaying the stored start carry with resets after each done (what the update
    does) reproduces every value and log-prob, and `next_carry` is the pre-reset state."""
    spec = make_env("probe", env, ProbeParams(max_steps_in_episode=3))
    network = ActorCritic(spec.action_space, hidden_sizes=(8,), gru_size=6)
    params = init_params(network, jax.random.key(0), spec.obs_shape)
    start = reset_envs(spec.env, spec.env_params, jax.random.key(1), 2, initial_carry(network, 2))
    start = start._replace(carry=jax.random.normal(jax.random.key(2), start.carry.shape))
    runner, traj = collect_rollout(start, params, functools.partial(policy_step, network),
                                   spec.env, spec.env_params, 7)
    done = np.asarray(traj.terminated | traj.truncated)
    assert done.any()
    resets = jnp.concatenate([jnp.zeros((1, 2), bool), done[:-1]])
    dist, values, carry = network.apply(params, traj.obs, start.carry, resets)
    np.testing.assert_allclose(np.asarray(values).reshape(7, 2), traj.values, rtol=1e-5,
                               atol=1e-6)
    replay_log_probs = dist.log_prob(traj.actions.reshape(-1)).reshape(7, 2)
    np.testing.assert_allclose(replay_log_probs, traj.log_probs, rtol=1e-5, atol=1e-6)
    expected_carry = np.where(done[-1][:, None], 0.0, carry)
    np.testing.assert_allclose(runner.carry, expected_carry, rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(np.asarray(traj.next_carry)[done]) > 0)  # pre-reset, not zeros


def _train_recurrent(env, gru_size, max_steps=10, updates=100, seeds=2, **changes):
    config = PPOConfig(env_name="probe", num_envs=8, num_steps=32, num_minibatches=4,
                       total_timesteps=256 * updates, learning_rate=3e-3, anneal_lr=False,
                       gamma=0.9, hidden_sizes=(16,), gru_size=gru_size, **changes)
    train = make_train(config, env=env, env_params=ProbeParams(max_steps_in_episode=max_steps))
    return config, jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), seeds))


def test_memory_probe_gru_reaches_the_optimum_and_mlp_cannot():
    """RememberCue: the cue is shown only at t=0 and must be named at t=2 (optimum 1.0; a
    memoryless policy gets 0.5 on average)."""
    _, gru = _train_recurrent(RememberCue(), gru_size=16)
    _, mlp = _train_recurrent(RememberCue(), gru_size=0)
    assert np.all(final_return(gru.metrics) >= 0.95)
    assert np.all(final_return(mlp.metrics) <= 0.65)


def test_gru_truncation_bootstrap_value_is_one_over_one_minus_gamma():
    """ConstantReward with a 20-step time limit and a recurrent policy: V = 1/(1−γ) = 10 at every
    step of the episode, which holds only if truncation bootstraps from V(final observation,
    hidden state of that step)."""
    config, result = _train_recurrent(ConstantReward(), gru_size=8, max_steps=20, seeds=1,
                                      clip_value=False)
    spec = make_env("probe", ConstantReward(), ProbeParams(max_steps_in_episode=20))
    network = ActorCritic(spec.action_space, hidden_sizes=(16,), gru_size=8)
    params = jax.tree.map(lambda x: x[0], result.params)
    obs = jnp.ones((20, 1, 1))
    _, values, _ = network.apply(params, obs, initial_carry(network, 1),
                                 jnp.zeros((20, 1), bool))
    np.testing.assert_allclose(values, 10.0, atol=0.5)


def test_recurrent_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="num_minibatches.*num_envs = 4"):
        make_train(PPOConfig(gru_size=8, num_envs=4, num_minibatches=8, num_steps=128))
    with pytest.raises(ConfigError, match="gru_size"):
        make_train(PPOConfig(gru_size=-1))
    with pytest.raises(ConfigError, match="policy_objective"):
        make_train(PPOConfig(policy_objective="kl"))
    with pytest.raises(ConfigError, match="kl_adaptation"):
        make_train(PPOConfig(kl_adaptation="adaptive"))
    with pytest.raises(ConfigError, match="target_kl"):
        make_train(PPOConfig(target_kl=-0.1))
    with pytest.raises(ConfigError, match="kl_coef"):
        make_train(PPOConfig(kl_coef=0.0))


# ------------------------------------------------------------- sweeps, device mesh, CLI

FAMILY = PPOConfig(total_timesteps=16 * 32 * 6, num_envs=16, num_steps=32, hidden_sizes=(8,),
                   gru_size=8, policy_objective="clip+kl_penalty", learning_rate=3e-3,
                   anneal_lr=False)


def test_sweep_over_kl_hparams_of_a_recurrent_penalty_run_equals_separate_runs():
    """kl_coef, kl_target and target_kl are traced: one vmapped sweep, each setting equal to its
    own run (β and the epochs taken follow each setting)."""
    from test_sweep import assert_metrics_close

    from purejaxppo import hparam_grid, sweep
    from purejaxppo.sweeps import hparams_at

    train = make_train(FAMILY)
    grid = hparam_grid(FAMILY, kl_coef=[0.1, 2.0], target_kl=[0.0, 0.002])
    keys = jax.random.split(jax.random.key(5), 2)
    out = sweep(train, keys, grid)
    single = jax.jit(train)
    for i in range(4):
        for j in range(2):
            assert_metrics_close(jax.tree.map(lambda x: x[i, j], out.metrics),
                                 single(keys[j], hparams_at(grid, i)).metrics)
    assert out.metrics.kl_coef[0, 0, 0] == pytest.approx(0.1)
    assert out.metrics.kl_coef[2, 0, 0] == pytest.approx(2.0)
    assert out.metrics.epochs[1].mean() < 4 and out.metrics.epochs[0].min() == 4


# APPO's learner (lag ring, Polyak target, circular buffer, V-trace) on the same mesh: the
# 4-device subprocess is the costly part, so it runs both sweeps.
APPO_ON_MESH = PPOConfig(total_timesteps=4 * 16 * 4, num_envs=4, num_steps=16, hidden_sizes=(8,),
                         policy_objective="appo", advantage_estimator="vtrace", policy_lag=2,
                         tau=0.5, target_update_every=2, buffer_num_batches=2,
                         buffer_iterations_per_batch=2, learning_rate=3e-3)


def _mesh_sweeps():
    """The two sweeps both sides run: (name, config, grid) for the family and for APPO."""
    from purejaxppo import hparam_grid

    return [("family", FAMILY, hparam_grid(FAMILY, kl_target=[0.001, 0.01],
                                           target_kl=[0.0, 0.003])),
            ("appo", APPO_ON_MESH, hparam_grid(APPO_ON_MESH, tau=[0.5, 1.0],
                                               vtrace_clip_rho=[0.5, 1.0]))]


def test_four_device_mesh_equals_one_device_for_the_family_and_appo(tmp_path):
    """The same sweeps sharded over 4 (fake CPU) devices in a subprocess equal one device: the
    recurrent KL-penalty family, and APPO's learner with τ and ρ̄ swept (4 settings x 2 seeds =
    8 runs, 2 per device)."""
    import os
    import subprocess
    import sys
    import textwrap

    from purejaxppo import sweep
    from purejaxppo.sweeps import run_mesh

    script = textwrap.dedent("""
        import sys
        import jax, numpy as np
        sys.path.insert(0, sys.argv[2])
        from test_ppo_family import _mesh_sweeps
        from purejaxppo import make_train, sweep
        from purejaxppo.sweeps import run_mesh
        assert run_mesh().devices.size == 4
        for name, config, grid in _mesh_sweeps():
            out = sweep(make_train(config), jax.random.split(jax.random.key(0), 2), grid)
            np.savez(f"{sys.argv[1]}_{name}.npz", **out.metrics._asdict())
    """)
    prefix = tmp_path / "four"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", script, str(prefix), os.path.dirname(__file__)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    one_device = run_mesh(jax.devices()[:1])
    checked = {"family": ("episode_return", "num_episodes", "kl_coef", "epochs", "kl",
                          "policy_loss"),
               "appo": ("episode_return", "num_episodes", "policy_loss", "value_loss", "kl",
                        "epochs")}
    for name, config, grid in _mesh_sweeps():
        four = np.load(f"{prefix}_{name}.npz")
        one = sweep(make_train(config), jax.random.split(jax.random.key(0), 2), grid,
                    mesh=one_device)
        for field in checked[name]:
            np.testing.assert_allclose(four[field], getattr(one.metrics, field), rtol=1e-3,
                                       atol=1e-4, err_msg=f"{name}: {field}")
    # The APPO sweep really differs across its settings (τ, ρ̄ reach the learner).
    losses = np.load(f"{prefix}_appo.npz")["value_loss"]
    assert not np.allclose(losses[0], losses[3])


def test_cli_trains_checkpoints_and_evaluates_a_recurrent_penalty_policy(tmp_path, capsys):
    import json

    from purejaxppo.cli import main

    run_dir, summary = tmp_path / "run", tmp_path / "summary.json"
    code = main(["train", "--num-seeds", "2", "--total-timesteps", "4096", "--no-progress",
                 "--set", "num_steps=32", "--set", "gru_size=8",
                 "--set", "policy_objective=clip+kl_penalty", "--set", "kl_adaptation=rllib",
                 "--set", "target_kl=0.01", "--checkpoint-dir", str(run_dir),
                 "--json", str(summary)])
    assert code == 0
    saved = json.loads(summary.read_text())["config"]
    assert saved["gru_size"] == 8 and saved["policy_objective"] == "clip+kl_penalty"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"kl", "kl_coef", "epochs", "minibatch_steps"} <= set(rows[0])
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--episodes", "4", "--deterministic"]) == 0
    assert "run 1:" in capsys.readouterr().out


@pytest.mark.slow
def test_ppo_penalty_learns_cartpole():
    """PPO-Penalty alone (no clipping), default β rule, CartPole defaults at 5e5: >= 450 over
    4 seeds (measured 500.0 ± 0.0, README)."""
    config = PPOConfig(policy_objective="kl_penalty")
    result = jax.jit(jax.vmap(make_train(config)))(jax.random.split(jax.random.key(0), 4))
    assert final_return(result.metrics).mean() >= 450


def test_gru_core_equals_flax_gru_cell_scanned():
    """GRUCore (stacked gate kernels, input projection hoisted out of the scan) computes exactly
    flax's nn.GRUCell run step by step with the same weights, resets included."""
    import flax.linen as nn

    from purejaxppo.networks import GRUCore

    core = GRUCore(5)
    x = jax.random.normal(jax.random.key(0), (7, 3, 4))
    carry = jax.random.normal(jax.random.key(1), (3, 5))
    resets = jnp.zeros((7, 3), bool).at[2, 1].set(True).at[5, 0].set(True)
    params = core.init(jax.random.key(2), carry, x, resets)
    final, outputs = core.apply(params, carry, x, resets)

    p = params["params"]
    w_i, w_h = np.split(p["input_kernel"], 3, axis=1), np.split(p["recurrent_kernel"], 3, axis=1)
    b_i = np.split(p["input_bias"], 3)
    cell_params = {"params": {
        "ir": {"kernel": w_i[0], "bias": b_i[0]}, "iz": {"kernel": w_i[1], "bias": b_i[1]},
        "in": {"kernel": w_i[2], "bias": b_i[2]}, "hr": {"kernel": w_h[0]},
        "hz": {"kernel": w_h[1]}, "hn": {"kernel": w_h[2], "bias": p["recurrent_bias"]}}}
    cell = nn.GRUCell(5)
    h, expected = carry, []
    for t in range(7):
        h = jnp.where(resets[t][:, None], 0.0, h)
        h, out = cell.apply(cell_params, h, x[t])
        expected.append(out)
    np.testing.assert_allclose(outputs, np.stack(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final, h, rtol=1e-5, atol=1e-6)
    # flax's own initialisation has the same shapes: each recurrent block is orthogonal.
    for block in w_h:
        np.testing.assert_allclose(block @ block.T, np.eye(5), atol=1e-5)
