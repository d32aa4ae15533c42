"""The seams for algorithm variants, used from outside the package (no edit to it):

a toy advantage estimator (TD(0)) and a toy objective (the plain policy gradient ρ·Â) are
registered here and trained with; an estimator that needs the current policy runs inside the
loss on whole sequences; unknown names are ConfigErrors naming the field; `Learner.param_sets`
holds extra parameter sets that checkpoints round-trip.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import ConfigError, PPOConfig, make_trainer, validate_config
from purejaxppo.checkpoint import load_checkpoint, save_checkpoint
from purejaxppo.distributions import Categorical
from purejaxppo.estimators import ESTIMATORS, EstimatorInputs, register_estimator
from purejaxppo.loss import OBJECTIVES, ppo_loss, register_objective
from purejaxppo.runs import keys_to_data
from purejaxppo.update import Batch, Learner, make_sampler, take_sequences

TINY = PPOConfig(num_envs=4, num_steps=16, total_timesteps=512, update_epochs=2,
                 num_minibatches=2)
CAPTURED = []  # (inputs, advantages, returns) of every call of the recording estimator


def td0(inputs: EstimatorInputs, hp):
    """Toy estimator: the one-step TD error as the advantage, Â_t = r_t + γ(1 − term_t)V(s'_t)
    − V(s_t); returns Â + V."""
    continuing = 1.0 - inputs.terminated.astype(jnp.float32)
    advantages = inputs.rewards + hp.gamma * continuing * inputs.next_values - inputs.values
    return advantages, advantages + inputs.values


def recorded_td0(inputs: EstimatorInputs, hp):
    """`td0`, sending its inputs and outputs to the host (`CAPTURED`), in update order."""
    advantages, returns = td0(inputs, hp)
    jax.debug.callback(lambda *args: CAPTURED.append([np.asarray(a) for a in args]),
                       inputs.rewards, inputs.values, inputs.next_values, inputs.terminated,
                       inputs.truncated, advantages, returns, ordered=True)
    return advantages, returns


def weighted_td0(inputs: EstimatorInputs, hp):
    """Toy off-policy estimator: Â_t = min(1, π/μ)·δ_t with the current policy's π (inputs'
    policy_log_probs; None = on-policy) and the behaviour μ; returns Â + V."""
    advantages, _ = td0(inputs, hp)
    if inputs.policy_log_probs is not None:
        advantages = jnp.minimum(1.0, jnp.exp(inputs.policy_log_probs - inputs.log_probs)) * advantages
    return advantages, advantages + inputs.values


TRACED = {"pg": 0}


def plain_pg(terms, hp):
    """Toy objective: the plain policy gradient −mean(ρ·Â), no clipping, no penalty."""
    TRACED["pg"] += 1
    return -(jnp.exp(terms.log_prob - terms.old_log_prob) * terms.advantages).mean()


@pytest.fixture(scope="module", autouse=True)
def registered():
    """Register the toy entries for this module's tests, and remove them afterwards."""
    register_estimator("td0_test", recorded_td0)
    register_estimator("weighted_td0_test", weighted_td0, uses_policy=True)
    register_objective("pg_test", plain_pg)
    yield
    for table, name in ((ESTIMATORS, "td0_test"), (ESTIMATORS, "weighted_td0_test"),
                        (OBJECTIVES, "pg_test")):
        del table[name]


def td0_reference(rewards, values, next_values, terminated, gamma):
    """Plain-numpy TD(0) advantages, one step at a time."""
    advantages = np.zeros_like(rewards, dtype=np.float64)
    for t in range(rewards.shape[0]):
        for n in range(rewards.shape[1]):
            bootstrap = 0.0 if terminated[t, n] else gamma * next_values[t, n]
            advantages[t, n] = rewards[t, n] + bootstrap - values[t, n]
    return advantages


def train(config, key=0):
    trainer = make_trainer(config)
    return jax.jit(trainer.run)(trainer.init(jax.random.key(key)))


def test_a_registered_estimator_and_objective_train_and_are_the_ones_used():
    CAPTURED.clear()
    traced = TRACED["pg"]
    config = TINY.replace(advantage_estimator="td0_test", policy_objective="pg_test")
    state, metrics = train(config)
    assert TRACED["pg"] > traced  # the objective is in the compiled program
    assert len(CAPTURED) == config.num_updates
    # Each rollout's advantages are TD(0)'s (numpy), and they are the ones training used: the
    # reported explained variance of every update is computed from these returns.
    for update, (r, v, nv, term, trunc, adv, ret) in enumerate(CAPTURED):
        assert r.shape == (config.num_steps, config.num_envs) and np.all(r == 1.0)  # CartPole
        np.testing.assert_allclose(adv, td0_reference(r, v, nv, term, 0.99), rtol=1e-5,
                                   atol=1e-5)
        np.testing.assert_allclose(ret, adv + v, rtol=1e-6, atol=1e-6)
        explained = 1.0 - np.var(ret - v) / np.var(ret)
        assert float(metrics.explained_variance[update]) == pytest.approx(explained, rel=1e-4,
                                                                          abs=1e-5)
    assert any(t.any() for t in (c[3] for c in CAPTURED))  # some episodes terminated
    assert np.all(np.isfinite(metrics.policy_loss))

    default_state, default_metrics = train(TINY)
    assert not np.allclose(metrics.explained_variance, default_metrics.explained_variance)
    assert not np.allclose(jax.tree.leaves(state.learner.params)[0],
                           jax.tree.leaves(default_state.learner.params)[0])


def test_the_objective_entry_is_the_loss_numpy_reference():
    """ppo_loss with "pg_test" on a 'network' whose parameters are logits: −mean(ρ·Â)."""
    rng = np.random.default_rng(0)
    z, z_old = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    actions, advantages = rng.integers(0, 3, 5), rng.normal(size=5)
    old = Categorical(jnp.asarray(z_old, jnp.float32))
    batch = Batch(jnp.zeros((5, 1)), jnp.asarray(actions), old.log_prob(jnp.asarray(actions)),
                  jnp.zeros(5), jnp.asarray(advantages, jnp.float32), jnp.zeros(5), old)
    hp = PPOConfig(vf_coef=0.0, ent_coef=0.0).hparams()
    loss, _ = ppo_loss(jnp.asarray(z, jnp.float32), lambda p, mb: (Categorical(p), jnp.zeros(5)),
                       batch, hp, 1.0, objective="pg_test", clip_value=False,
                       normalize_advantages=False)
    pi = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    pi_old = np.exp(z_old) / np.exp(z_old).sum(-1, keepdims=True)
    rho = pi[np.arange(5), actions] / pi_old[np.arange(5), actions]
    assert float(loss) == pytest.approx(-(rho * advantages).mean(), rel=1e-5)


def test_an_estimator_that_uses_the_policy_runs_inside_the_loss_on_sequences():
    """The loss re-estimates with the current policy's log-probs: for a 'network' whose
    parameters are the logits, Â = min(1, ρ)·δ (numpy) enters both the policy term (plain
    policy gradient) and, through the returns Â + V, the value term."""
    rng = np.random.default_rng(1)
    T, n, A = 4, 2, 3
    z, z_old = rng.normal(size=(T * n, A)), rng.normal(size=(T * n, A))
    actions = rng.integers(0, A, T * n)
    rewards, values, next_values = (rng.normal(size=(T, n)) for _ in range(3))
    terminated = np.array([[0, 0], [1, 0], [0, 0], [0, 1]], bool)
    old = Categorical(jnp.asarray(z_old, jnp.float32))
    old_log_probs = old.log_prob(jnp.asarray(actions))
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    sequences = EstimatorInputs(f32(rewards), f32(values), f32(next_values),
                                jnp.asarray(terminated), jnp.zeros((T, n), bool),
                                old_log_probs.reshape(T, n))
    stale = jnp.full(T * n, 1e3)  # what the rollout estimated: must not be used
    batch = Batch(jnp.zeros((T * n, 1)), jnp.asarray(actions), old_log_probs,
                  f32(values).reshape(-1), stale, stale, old, sequences=sequences)
    hp = PPOConfig(vf_coef=1.0, ent_coef=0.0).hparams()
    loss, info = ppo_loss(f32(z), lambda p, mb: (Categorical(p), jnp.zeros(T * n)), batch, hp,
                          1.0, objective="pg_test", clip_value=False,
                          normalize_advantages=False, estimator="weighted_td0_test")

    pi = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    pi_old = np.exp(z_old) / np.exp(z_old).sum(-1, keepdims=True)
    rho = (pi[np.arange(T * n), actions] / pi_old[np.arange(T * n), actions]).reshape(T, n)
    adv = np.minimum(1.0, rho) * td0_reference(rewards, values, next_values, terminated, 0.99)
    returns = adv + values
    expected_pg = -(rho * adv).mean()
    expected_value = 0.5 * np.mean(returns ** 2)  # the 'network' predicts 0
    assert float(info.policy_loss) == pytest.approx(expected_pg, rel=1e-4)
    assert float(info.value_loss) == pytest.approx(expected_value, rel=1e-4)
    assert float(loss) == pytest.approx(expected_pg + expected_value, rel=1e-4)


def test_an_estimator_that_uses_the_policy_trains_on_whole_sequences():
    config = TINY.replace(advantage_estimator="weighted_td0_test")
    assert make_sampler(config).num_units == config.num_envs  # environments, not transitions
    assert make_sampler(TINY).num_units == TINY.batch_size
    batch = Batch(*(jnp.arange(16 * 4.0).reshape(16, 4) for _ in range(7)),
                  sequences=EstimatorInputs(*(jnp.arange(16 * 4.0).reshape(16, 4)
                                              for _ in range(6))))
    minibatch = take_sequences(batch, jnp.array([3, 1]))
    assert minibatch.obs.shape == (32,) and minibatch.sequences.rewards.shape == (16, 2)
    np.testing.assert_array_equal(minibatch.sequences.rewards,
                                  np.arange(64.0).reshape(16, 4)[:, [3, 1]])
    _, metrics = train(config)
    _, on_policy = train(TINY.replace(advantage_estimator="td0_test"))
    assert np.all(np.isfinite(metrics.value_loss)) and np.all(np.isfinite(metrics.policy_loss))
    # Identical first rollouts (same key, same parameters), different updates.
    assert float(metrics.explained_variance[0]) == float(on_policy.explained_variance[0])
    assert not np.allclose(metrics.value_loss, on_policy.value_loss)


@pytest.mark.parametrize("field, value", [("advantage_estimator", "no_such_estimator"),
                                          ("policy_objective", "no_such_objective"),
                                          ("advantage_estimator", 3)])
def test_unknown_entries_are_config_errors_naming_the_field_and_the_table(field, value):
    with pytest.raises(ConfigError, match=f"PPOConfig.{field}") as err:
        validate_config(TINY.replace(**{field: value}))
    table = ESTIMATORS if field == "advantage_estimator" else OBJECTIVES
    assert all(repr(name) in str(err.value) for name in table)  # registered ones included
    with pytest.raises(ConfigError, match=field):
        make_trainer(TINY.replace(**{field: value}))


def test_sequences_need_num_envs_to_divide_into_minibatches():
    config = TINY.replace(num_envs=3, num_steps=16, num_minibatches=2,
                          advantage_estimator="weighted_td0_test")
    validate_config(config)  # 48 transitions divide into 2 minibatches
    with pytest.raises(ConfigError, match="num_minibatches"):
        make_trainer(config)


def test_learner_param_sets_checkpoint_round_trip_and_ppo_adds_no_leaf(tmp_path):
    trainer = make_trainer(TINY)
    state = keys_to_data(trainer.init(jax.random.key(0)))
    assert state.learner.param_sets is None
    names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
    assert not any("param_sets" in name for name in names)  # PPO's checkpoints keep their layout

    params = state.learner.params
    extra = {"target": jax.tree.map(lambda x: x + 1.0, params), "behaviour": params}
    state = state._replace(learner=state.learner._replace(param_sets=extra))
    runs = jax.tree.map(lambda x: np.asarray(x)[None], state)  # one run
    path = save_checkpoint(tmp_path, runs, {"update": 0, "num_runs": 1, "num_seeds": 1, "seed": 0})
    loaded = load_checkpoint(path, jax.eval_shape(lambda: state), 1)
    assert jax.tree.structure(loaded) == jax.tree.structure(runs)
    jax.tree.map(np.testing.assert_array_equal, loaded, runs)
    assert set(loaded.learner.param_sets) == {"target", "behaviour"}


def test_the_update_carries_param_sets_through():
    config = TINY
    trainer = make_trainer(config)
    state = trainer.init(jax.random.key(1))
    marker = {"target": jnp.arange(3.0)}
    state = state._replace(learner=Learner(*state.learner[:3], param_sets=marker))
    after, _ = jax.jit(lambda s: trainer.run(s, num_updates=1))(state)
    np.testing.assert_array_equal(after.learner.param_sets["target"], marker["target"])
    assert not np.array_equal(jax.tree.leaves(after.learner.params)[0],
                              jax.tree.leaves(state.learner.params)[0])
