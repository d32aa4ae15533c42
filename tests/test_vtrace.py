"""V-trace (`compute_vtrace`, the "vtrace" estimator entry) against an independent plain-numpy
reference written from the paper's sum form, hand-computed cases, the on-policy identity with
GAE(λ), the clipping, traced clip values under vmap, and a training run through the table."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import PPOConfig, compute_gae, compute_vtrace, make_trainer
from purejaxppo.estimators import ESTIMATORS, Estimator, EstimatorInputs

GAMMA, LAM = 0.97, 0.9


def random_sequences(seed, T=13, n=3):
    """Rollout-like sequences (float32, `(T, n)`) with terminations, truncations and both at
    once mid-sequence. next_values[t] = values[t + 1] inside an episode (as a rollout gives),
    V(final observation) at a truncation, a large value at a termination (must be ignored)."""
    rng = np.random.default_rng(seed)
    rewards, values = rng.normal(size=(T, n)), rng.normal(size=(T, n))
    terminated, truncated = np.zeros((T, n), bool), np.zeros((T, n), bool)
    terminated[[4, 9], [0, 1]] = True
    truncated[[8, 2, 5], [0, 1, 2]] = True
    terminated[10, 2] = truncated[10, 2] = True  # both: termination wins
    next_values = np.empty((T, n))
    next_values[:-1] = values[1:]
    next_values[-1] = rng.normal(size=n)
    next_values[truncated] = rng.normal(size=truncated.sum())
    next_values[terminated] = 50.0
    behaviour = np.log(rng.uniform(0.05, 1.0, size=(T, n)))
    target = behaviour + rng.normal(0.0, 0.8, size=(T, n))
    f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
    return (f32(rewards), f32(values), f32(next_values), terminated, truncated, f32(behaviour),
            f32(target))


def vtrace_reference(rewards, values, next_values, terminated, truncated, behaviour, target,
                     gamma, lam, rho_bar, pg_rho_bar, c_bar):
    """Plain numpy, one environment at a time, from Espeholt et al. (2018) §4's sum form

        v_s = V(x_s) + Σ_{t=s}^{e} γ^{t−s} (Π_{i=s}^{t−1} c_i) δ_t,
        δ_t = min(ρ̄, ρ_t)(r_t + γ V(x_{t+1}) − V(x_t)),   c_i = λ min(c̄, ρ_i),

    e the last step of s's episode within the rollout; V(x_{t+1}) is 0 after a termination,
    V(final observation) after a truncation or at the rollout's end, V(x_{t+1}) otherwise.
    pg_s = min(ρ̄_pg, ρ_s)(r_s + γ v_{s+1} − V(x_s)), with v_{s+1} the V-trace target of the true
    next state (V(final observation) after a truncation: its episode ends there)."""
    T, N = rewards.shape
    rho = np.exp(target.astype(np.float64) - behaviour)
    vs, pg = np.zeros((T, N)), np.zeros((T, N))
    ends = terminated | truncated
    for n in range(N):
        def value_after(t):
            if terminated[t, n]:
                return 0.0
            if truncated[t, n] or t == T - 1:
                return float(next_values[t, n])
            return float(values[t + 1, n])

        delta = [min(rho_bar, rho[t, n]) * (rewards[t, n] + gamma * value_after(t) - values[t, n])
                 for t in range(T)]
        for s in range(T):
            end = s
            while not ends[end, n] and end < T - 1:
                end += 1
            total = 0.0
            for t in range(s, end + 1):
                trace = np.prod([lam * min(c_bar, rho[i, n]) for i in range(s, t)])
                total += gamma ** (t - s) * trace * delta[t]
            vs[s, n] = values[s, n] + total
        for s in range(T):
            if terminated[s, n]:
                v_next = 0.0
            elif truncated[s, n] or s == T - 1:
                v_next = next_values[s, n]
            else:
                v_next = vs[s + 1, n]
            pg[s, n] = min(pg_rho_bar, rho[s, n]) * (rewards[s, n] + gamma * v_next
                                                     - values[s, n])
    return pg, vs


def vtrace(data, *clips, gamma=GAMMA, lam=LAM):
    """compute_vtrace on `random_sequences` data (numpy in, numpy out)."""
    return tuple(np.asarray(x) for x in compute_vtrace(*map(jnp.asarray, data), gamma, lam,
                                                       *clips))


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_the_papers_sum_form_with_terminations_truncations_and_clipping(seed):
    data = random_sequences(seed)
    rho = np.exp(data[6] - data[5])
    clips = (1.3, 0.9, 0.7)  # ρ̄, ρ̄_pg, c̄: all three different, c̄ ≠ 1
    assert (rho > 1.3).any() and (rho < 0.7).any() and ((rho > 0.7) & (rho < 1.3)).any()
    pg, vs = vtrace(data, *clips)
    ref_pg, ref_vs = vtrace_reference(*data, GAMMA, LAM, *clips)
    np.testing.assert_allclose(vs, ref_vs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pg, ref_pg, rtol=1e-5, atol=1e-5)


def test_on_policy_targets_are_gae_returns_and_with_lambda_one_the_advantages_too():
    rewards, values, next_values, terminated, truncated, behaviour, _ = data = \
        random_sequences(2)
    on_policy = data[:6] + (behaviour,)
    gae_args = [jnp.asarray(x) for x in (rewards, values, next_values, terminated, truncated)]
    for clips in [(1.0, 1.0, 1.0), (2.0, 0.5, 3.0)]:
        _, vs = vtrace(on_policy, *clips)
        np.testing.assert_allclose(vs, compute_gae(*gae_args, GAMMA, LAM)[1], rtol=1e-6,
                                   atol=1e-6)
    # λ = 1: ρ_pg (r + γ v_{s+1} − V) telescopes to GAE(1)'s advantage.
    pg, _ = vtrace(on_policy, 1.0, 1.0, 1.0, lam=1.0)
    np.testing.assert_allclose(pg, compute_gae(*gae_args, GAMMA, 1.0)[0], rtol=1e-5, atol=1e-5)


def test_hand_computed_three_steps():
    """γ = 0.5, λ = 1, ρ̄ = 1.5, ρ̄_pg = 1, c̄ = 1, rewards 1, values 0.

    env 0: ρ = (2, 0.5, 1); step 2 truncated with V(final obs) = 4.
      δ = (1.5·1, 0.5·1, 1·(1 + 0.5·4)) = (1.5, 0.5, 3);  c = (1, 0.5, 1)
      A_2 = 3;  A_1 = 0.5 + 0.5·0.5·3 = 1.25;  A_0 = 1.5 + 0.5·1·1.25 = 2.125  -> vs
      next_vs = (0 + 1.25, 0 + 3, 4);  pg = (1·(1 + 0.5·1.25), 0.5·(1 + 0.5·3), 1·(1 + 0.5·4))
    env 1: ρ = (0.5, 2, 1); step 1 terminated (next value 7 ignored), then a new episode that
    bootstraps from 2 at the rollout's end.
      δ = (0.5·1, 1.5·1, 1·(1 + 0.5·2)) = (0.5, 1.5, 2);  c = (0.5, 1, 1)
      A_2 = 2;  A_1 = 1.5 (cut);  A_0 = 0.5 + 0.5·0.5·1.5 = 0.875
      pg = (0.5·(1 + 0.5·1.5), 1·1, 1·(1 + 0.5·2))
    """
    rewards, values = jnp.ones((3, 2)), jnp.zeros((3, 2))
    next_values = jnp.array([[0.0, 0.0], [0.0, 7.0], [4.0, 2.0]])
    terminated = jnp.array([[False, False], [False, True], [False, False]])
    truncated = jnp.array([[False, False], [False, False], [True, False]])
    behaviour = jnp.zeros((3, 2))
    target = jnp.log(jnp.array([[2.0, 0.5], [0.5, 2.0], [1.0, 1.0]]))
    pg, vs = compute_vtrace(rewards, values, next_values, terminated, truncated, behaviour,
                            target, 0.5, 1.0, 1.5, 1.0, 1.0)
    np.testing.assert_allclose(vs, [[2.125, 0.875], [1.25, 1.5], [3.0, 2.0]], rtol=1e-6)
    np.testing.assert_allclose(pg, [[1.625, 0.875], [1.25, 1.0], [3.0, 2.0]], rtol=1e-6)


def test_clipping_bites_and_c_bar_is_separate_from_rho_bar():
    # One step, ρ = 3: the TD error is weighted by min(ρ̄, 3) and min(ρ̄_pg, 3).
    one = lambda x: jnp.full((1, 1), x)  # noqa: E731
    td = 1.0 + 0.9 * 2.0 - 0.5
    step = (one(1.0), one(0.5), one(2.0), one(False), one(False), jnp.log(one(0.2)),
            jnp.log(one(0.6)))
    for rho_bar, pg_rho_bar in [(1.5, 1.2), (10.0, 10.0)]:
        pg, vs = compute_vtrace(*step, 0.9, 1.0, rho_bar, pg_rho_bar, 1.0)
        assert float(vs[0, 0]) == pytest.approx(0.5 + min(rho_bar, 3.0) * td, rel=1e-6)
        assert float(pg[0, 0]) == pytest.approx(min(pg_rho_bar, 3.0) * td, rel=1e-6)
    # c̄ < ρ̄ cuts the traces where ρ > c̄, which ρ̄ alone does not: the targets differ.
    data = random_sequences(3)
    _, vs_low = vtrace(data, 1.5, 1.0, 0.5)
    _, vs_same = vtrace(data, 1.5, 1.0, 1.5)
    assert not np.allclose(vs_low, vs_same, atol=1e-3)
    np.testing.assert_allclose(vs_low, vtrace_reference(*data, GAMMA, LAM, 1.5, 1.0, 0.5)[1],
                               rtol=1e-5, atol=1e-5)


def test_no_gradient_through_the_importance_weights():
    data = [jnp.asarray(x) for x in random_sequences(4)]
    grads = jax.grad(lambda target: sum(x.sum() for x in compute_vtrace(
        *data[:6], target, GAMMA, LAM, 1.3, 0.9, 0.7)))(data[6])
    assert np.all(np.asarray(grads) == 0.0)


def test_traced_clip_values_under_vmap_and_any_trailing_shape():
    data = random_sequences(5)
    rho_bars, c_bars = jnp.array([0.5, 1.0, 1.3, 4.0]), jnp.array([2.0, 0.7, 1.0, 0.3])
    batched = jax.jit(jax.vmap(lambda rho_bar, c_bar: compute_vtrace(
        *map(jnp.asarray, data), GAMMA, LAM, rho_bar, 0.8 * rho_bar, c_bar)))(rho_bars, c_bars)
    for i, (rho_bar, c_bar) in enumerate(zip(rho_bars.tolist(), c_bars.tolist())):
        for got, want in zip(batched, vtrace(data, rho_bar, 0.8 * rho_bar, c_bar)):
            np.testing.assert_allclose(got[i], want, rtol=1e-6, atol=1e-6)
    # (T,) and (T, 3, 1) give the columns of (T, 3).
    whole = vtrace(data, 1.3, 0.9, 0.7)
    column = vtrace([x[:, 1] for x in data], 1.3, 0.9, 0.7)
    deeper = vtrace([x[:, :, None] for x in data], 1.3, 0.9, 0.7)
    for w, c, d in zip(whole, column, deeper):
        np.testing.assert_allclose(c, w[:, 1], rtol=1e-6)
        np.testing.assert_allclose(d[:, :, 0], w, rtol=1e-6)


def test_the_entry_reads_its_hyperparameters_and_the_target_log_probs():
    rewards, values, next_values, terminated, truncated, behaviour, target = data = \
        random_sequences(6)
    hp = PPOConfig(gamma=0.95, gae_lambda=0.8, vtrace_clip_rho=1.2, vtrace_clip_pg_rho=0.6,
                   vtrace_clip_c=0.9).hparams()
    inputs = EstimatorInputs(*map(jnp.asarray, data[:6]))
    assert ESTIMATORS["vtrace"].uses_policy is False
    advantages, returns = ESTIMATORS["vtrace"].estimate(
        inputs._replace(policy_log_probs=jnp.asarray(target)), hp)
    ref_pg, ref_vs = vtrace_reference(*data, 0.95, 0.8, 1.2, 0.6, 0.9)
    np.testing.assert_allclose(returns, ref_vs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(advantages, ref_pg, rtol=1e-5, atol=1e-5)
    # No policy log-probs: on-policy (ρ = 1).
    _, returns = ESTIMATORS["vtrace"].estimate(inputs, hp)
    np.testing.assert_allclose(returns, vtrace_reference(*data[:6], behaviour, 0.95, 0.8, 1.2,
                                                         0.6, 0.9)[1], rtol=1e-5, atol=1e-5)


def test_training_with_vtrace_is_finite_and_on_policy_its_targets_are_gae_returns(
        tiny_config, monkeypatch):
    """The "vtrace" entry, selected by the config, records every update's inputs and outputs;
    on-policy (the rollout's own log-probs) its targets are GAE(λ)'s returns, and they are the
    ones training used (the explained variance reported is computed from them)."""
    captured = []
    entry = ESTIMATORS["vtrace"]

    def recorded(inputs, hp):
        assert inputs.policy_log_probs is None
        advantages, returns = entry.estimate(inputs, hp)
        jax.debug.callback(lambda *a: captured.append([np.asarray(x) for x in a]),
                           inputs.rewards, inputs.values, inputs.next_values, inputs.terminated,
                           inputs.truncated, advantages, returns, ordered=True)
        return advantages, returns

    monkeypatch.setitem(ESTIMATORS, "vtrace", Estimator(recorded, entry.uses_policy))
    config = tiny_config.replace(advantage_estimator="vtrace")
    trainer = make_trainer(config)
    _, metrics = jax.jit(trainer.run)(trainer.init(jax.random.key(0)))
    assert len(captured) == config.num_updates
    for leaf in (metrics.policy_loss, metrics.value_loss, metrics.grad_norm):
        assert np.all(np.isfinite(leaf))
    for update, (r, v, nv, term, trunc, adv, ret) in enumerate(captured):
        assert np.all(np.isfinite(adv))
        gae_returns = compute_gae(r, v, nv, term, trunc, config.gamma, config.gae_lambda)[1]
        np.testing.assert_allclose(ret, gae_returns, rtol=1e-5, atol=1e-5)
        explained = 1.0 - np.var(ret - v) / np.var(ret)
        assert float(metrics.explained_variance[update]) == pytest.approx(explained, rel=1e-4,
                                                                          abs=1e-5)
    assert any(c[3].any() for c in captured)  # some episodes terminated inside the run
