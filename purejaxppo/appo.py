"""APPO's learner (RLlib's APPO, synchronous and exact, inside the one jitted program).

The update rule is chosen once per config (`make_update_rule`), like the sampler: plain PPO
(`PPO_RULE`: act with the trained parameters, `update.update_policy` on the fresh batch), or
APPO's, which keeps three more things in the `update.Learner` (docs/appo.md):

* a lag ring, `param_sets["lagged"]`: the parameters at the start of the last L = `policy_lag`
  updates, stacked `(L, ...)`. Update u acts with params_{u−L} = slot u % L (every slot holds
  the initial parameters at first), then writes params_u there for update u + L.
* a target network, `param_sets["target"]` (objectives that `uses_target`): the initial
  parameters, then at the start of update u, when u % `target_update_every` == 0,
  target ← τ·params + (1 − τ)·target.
* a circular buffer, `Learner.buffer`: the last N = `buffer_num_batches` batches and how often
  each was trained on. Update u writes its batch into slot u % N (count 0), then makes
  K = `buffer_iterations_per_batch` draws, each a slot chosen uniformly among those trained on
  fewer than K times; per draw (`prepare_draw`) the target's log-probs and distribution and the
  current critic's values are computed over the whole batch, the config's estimator gives the
  advantages and value targets (V-trace: π = the target, μ = the behaviour policy), and PPO's
  `update_policy` trains on it (`update_epochs` × `num_minibatches` steps).

With L = 0, N = K = 1 and an objective without a target the rule is PPO's, and the program is
plain PPO's (no extra leaf in the train state).
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.config import PPOConfig
from purejaxppo.distributions import per_sample
from purejaxppo.estimators import ESTIMATORS, EstimatorInputs
from purejaxppo.loss import OBJECTIVES
from purejaxppo.update import Batch, Learner, UpdateInfo, update_policy


class Buffer(NamedTuple):
    """APPO's circular buffer: N stored batches and their use counts."""

    batches: Batch  # leaves (N, num_steps, num_envs, ...); see `stored_batch` for what is kept
    uses: jax.Array  # (N,) int32: times each slot was drawn; K (exhausted) for a slot never written


class UpdateRule(NamedTuple):
    """How a config acts and learns (chosen once by `make_update_rule`).

    init_learner(learner, rollout_shapes) -> learner with the rule's extra state;
      `rollout_shapes(learner) -> (Batch, EstimatorInputs)` gives one update's shapes (abstract).
    acting_params(learner, update_idx) -> the parameters the actors use in update `update_idx`.
    learn(learner, batch, sequences, key, update_idx, *, policy_fn, optimizer, hp,
          learning_rate, config, sampler) -> (learner, update.UpdateInfo).
    """

    init_learner: Callable
    acting_params: Callable
    learn: Callable


def uses_appo(config: PPOConfig) -> bool:
    """Whether `config` needs APPO's learner: a policy lag, a buffer of more than one batch or
    more than one draw per update, or an objective with a target network."""
    return bool(config.policy_lag or config.buffer_num_batches > 1
                or config.buffer_iterations_per_batch > 1
                or OBJECTIVES[config.policy_objective].uses_target)


def acting_params(learner: Learner, update_idx):
    """The behaviour parameters of update `update_idx`: slot `update_idx % L` of the lag ring
    (params_{u−L}), or the trained parameters when there is no ring (L = 0)."""
    ring = None if learner.param_sets is None else learner.param_sets.get("lagged")
    if ring is None:
        return learner.params
    lag = jax.tree.leaves(ring)[0].shape[0]
    return jax.tree.map(lambda slots: slots[update_idx % lag], ring)


def keep_learner(learner: Learner, rollout_shapes) -> Learner:
    """PPO's `init_learner`: nothing to add."""
    return learner


def ppo_learn(learner: Learner, batch: Batch, sequences, key, update_idx, **kwargs):
    """PPO's learn step: `update.update_policy` on the fresh batch (`sequences` and
    `update_idx` unused)."""
    return update_policy(learner, batch, key, **kwargs)


PPO_RULE = UpdateRule(keep_learner, acting_params, ppo_learn)


def make_update_rule(config: PPOConfig) -> UpdateRule:
    """The config's one choice: `PPO_RULE`, or APPO's when `uses_appo(config)`."""
    if not uses_appo(config):
        return PPO_RULE
    return UpdateRule(functools.partial(init_appo_learner, config=config), acting_params,
                      appo_learn)


def stored_batch(batch: Batch, sequences: EstimatorInputs, config: PPOConfig) -> Batch:
    """What the buffer keeps of an update's batch: observations, actions, behaviour log-probs,
    the recurrent start state and resets, and the sequences the estimator needs (rewards as
    trained on, the acting critic's V of each true next state, terminated, truncated). Values,
    advantages and returns are recomputed per draw; the behaviour distribution is kept only for
    objectives without a target (their KL is taken against it)."""
    uses_target = OBJECTIVES[config.policy_objective].uses_target
    return batch._replace(values=None, advantages=None, returns=None,
                          old_dist=None if uses_target else batch.old_dist,
                          sequences=sequences._replace(values=None, log_probs=None,
                                                       policy_log_probs=None),
                          target_log_probs=None)


def init_appo_learner(learner: Learner, rollout_shapes, *, config: PPOConfig) -> Learner:
    """`learner` with the lag ring (L copies of the initial parameters), the target (the initial
    parameters) where the objective uses one, and an empty buffer of N batches."""
    sets = {}
    if config.policy_lag:
        sets["lagged"] = jax.tree.map(
            lambda p: jnp.broadcast_to(p, (config.policy_lag, *p.shape)), learner.params)
    if OBJECTIVES[config.policy_objective].uses_target:
        sets["target"] = learner.params
    learner = learner._replace(param_sets=sets or None)
    batch, sequences = rollout_shapes(learner)
    slots = config.buffer_num_batches
    batches = jax.tree.map(lambda s: jnp.zeros((slots, *s.shape), s.dtype),
                           stored_batch(batch, sequences, config))
    uses = jnp.full((slots,), config.buffer_iterations_per_batch, jnp.int32)
    return learner._replace(buffer=Buffer(batches, uses))


def refresh_target(target, params, update_idx, hp, every: int):
    """The target at the start of update `update_idx`: τ·params + (1 − τ)·target when
    `update_idx % every == 0`, else unchanged."""
    refresh = update_idx % every == 0

    def step(p, t):
        return jnp.where(refresh, hp.tau * p + (1.0 - hp.tau) * t, t)

    return jax.tree.map(step, params, target)


def push_lagged(ring, params, update_idx):
    """The lag ring after update `update_idx` read its slot: `params` written to slot
    `update_idx % L`."""
    lag = jax.tree.leaves(ring)[0].shape[0]
    return jax.tree.map(lambda slots, p: slots.at[update_idx % lag].set(p), ring, params)


def push_batch(buffer: Buffer, batch: Batch, update_idx) -> Buffer:
    """`batch` (a `stored_batch`) written into slot `update_idx % N` with a use count of 0."""
    slots = buffer.uses.shape[0]
    slot = update_idx % slots
    batches = jax.tree.map(lambda stack, x: stack.at[slot].set(x), buffer.batches, batch)
    return Buffer(batches, buffer.uses.at[slot].set(0))


def choose_slot(uses, key, max_uses: int):
    """A slot drawn uniformly among those with `uses < max_uses` (int32 scalar)."""
    if uses.shape[0] == 1:
        return jnp.zeros((), jnp.int32)
    logits = jnp.where(uses < max_uses, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits).astype(jnp.int32)


def next_state_values(values, stored_next_values, done):
    """V of each step's true next state, `(T, E)`: the current critic's `values[t + 1]` inside an
    episode, the stored (acting critic's) value where an episode ended and at the last step."""
    following = jnp.concatenate([values[1:], stored_next_values[-1:]])
    return jnp.where(done, stored_next_values, following)


def prepare_draw(stored: Batch, params, target_params, hp, *, policy_fn, sampler,
                 config: PPOConfig) -> Batch:
    """A stored batch made ready for `update_policy` (leaves `(num_steps, num_envs, ...)`): the
    current critic's values and bootstrap values, the config's estimator with the target's
    log-probs as the trained policy's (`target_params`: the target network, or the current
    parameters for objectives without one), and for target objectives the target's
    log-probs and distribution (π_old of the KL terms)."""
    sequences = stored.sequences
    shape = sequences.rewards.shape
    whole = sampler.whole(sampler.prepare(stored))  # every sample, time-major
    dist, values = policy_fn(params, whole)
    target_dist = dist if target_params is None else policy_fn(target_params, whole)[0]
    target_log_probs = target_dist.log_prob(whole.actions).reshape(shape)
    values = values.reshape(shape)
    done = jnp.logical_or(sequences.terminated, sequences.truncated)
    inputs = EstimatorInputs(sequences.rewards, values,
                             next_state_values(values, sequences.next_values, done),
                             sequences.terminated, sequences.truncated, stored.log_probs,
                             target_log_probs)
    estimator = ESTIMATORS[config.advantage_estimator]
    advantages, returns = estimator.estimate(inputs, hp)
    prepared = stored._replace(values=values, advantages=advantages, returns=returns,
                               sequences=inputs if estimator.uses_policy else None)
    if target_params is None:
        return prepared
    target_dist = jax.tree.map(lambda x: x.reshape((*shape, *x.shape[1:])),
                               per_sample(target_dist))
    return prepared._replace(old_dist=target_dist, target_log_probs=target_log_probs)


def draw_keys(key, draws: int):
    """One key per draw; a single draw uses `key` itself (so N = K = 1 shuffles as PPO does)."""
    return key[None] if draws == 1 else jax.random.split(key, draws)


def combine_infos(infos: UpdateInfo) -> UpdateInfo:
    """One update's diagnostics from K draws' (leading axis K): losses and gradient norm
    averaged, β as the update started, epochs and gradient steps summed."""
    return UpdateInfo(jax.tree.map(lambda x: x.mean(0), infos.loss), infos.grad_norm.mean(0),
                      infos.kl_coef[0], infos.epochs.sum(0), infos.minibatch_steps.sum(0))


def appo_learn(learner: Learner, batch: Batch, sequences: EstimatorInputs, key, update_idx, *,
               policy_fn, optimizer, hp, learning_rate, config: PPOConfig, sampler):
    """APPO's update `update_idx` (see the module docstring): refresh the target, push the
    start parameters into the lag ring and `batch` into the buffer, then K draws, each
    `prepare_draw` + `update.update_policy`. Returns `(learner, UpdateInfo)`."""
    sets = dict(learner.param_sets or {})
    if "target" in sets:
        sets["target"] = refresh_target(sets["target"], learner.params, update_idx, hp,
                                        config.target_update_every)
    if "lagged" in sets:
        sets["lagged"] = push_lagged(sets["lagged"], learner.params, update_idx)
    buffer = push_batch(learner.buffer, stored_batch(batch, sequences, config), update_idx)
    max_uses = config.buffer_iterations_per_batch
    target = sets.get("target")

    def draw(carry, draw_key):
        core, uses = carry
        slot = choose_slot(uses, jax.random.fold_in(draw_key, 1), max_uses)
        stored = jax.tree.map(lambda stack: stack[slot], buffer.batches)
        prepared = prepare_draw(stored, core.params, target, hp, policy_fn=policy_fn,
                                sampler=sampler, config=config)
        core, info = update_policy(core, prepared, draw_key, policy_fn=policy_fn,
                                   optimizer=optimizer, hp=hp, learning_rate=learning_rate,
                                   config=config, sampler=sampler)
        return (core, uses.at[slot].add(1)), info

    core = learner._replace(param_sets=None, buffer=None)  # SGD carries only what it changes
    (core, uses), infos = jax.lax.scan(draw, (core, buffer.uses), draw_keys(key, max_uses))
    learner = core._replace(param_sets=sets or None, buffer=buffer._replace(uses=uses))
    return learner, combine_infos(infos)

