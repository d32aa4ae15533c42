"""Tiny gymnax environments whose optimal values and actions are known in closed form.

Each is a gymnax 1.x `Environment`; the base class's `step` adds the time limit (`truncated` when
`state.time >= max_steps_in_episode`), auto-reset and `info["final_observation"]`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class ProbeState(environment.EnvState):
    sign: jax.Array  # +1 or -1, drawn at reset; its meaning depends on the probe


@struct.dataclass
class ProbeParams(environment.EnvParams):
    max_steps_in_episode: int = 1


class _Probe(environment.Environment):
    num_actions_: int = 2
    terminates: bool = True  # episodes end (terminated) after one step

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams()

    def reset_env(self, key, params):
        sign = jnp.where(jax.random.bernoulli(key), 1.0, -1.0)
        state = ProbeState(sign=sign, time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jnp.array([state.sign], jnp.float32)

    def reward(self, state, action):
        raise NotImplementedError

    def step_env(self, key, state, action, params):
        reward = self.reward(state, action)
        next_state = state.replace(time=state.time + 1)
        terminated = jnp.array(self.terminates)
        return self.get_obs(next_state), next_state, reward, terminated, {}

    @property
    def num_actions(self) -> int:
        return self.num_actions_

    def action_space(self, params=None):
        return spaces.Discrete(self.num_actions_)

    def observation_space(self, params):
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)


class ConstantReward(_Probe):
    """Reward 1 every step, never terminates; only a time limit (`max_steps_in_episode`) truncates.

    Observation is constant (1.0), so V = 1 / (1 - γ) exactly when truncation bootstraps. A trainer
    that treats the time limit as termination learns the average of (1 - γ^k) / (1 - γ) over the
    episode instead (≈ 6.05 for γ = 0.9 and a 20-step limit).
    """

    terminates = False

    def reset_env(self, key, params):
        state = ProbeState(sign=jnp.float32(1.0), time=0)
        return self.get_obs(state), state

    def reward(self, state, action):
        return jnp.float32(1.0)


class ConstantRewardTimeoutAsTerminal(ConstantReward):
    """ConstantReward with the old, wrong convention: the time limit is reported as `terminated`.

    Used only to show that the constant-reward probe can fail."""

    def step_env(self, key, state, action, params):
        obs, next_state, reward, _, info = super().step_env(key, state, action, params)
        return obs, next_state, reward, next_state.time >= params.max_steps_in_episode, info


class ObservationReward(_Probe):
    """One-step episodes: observation ±1 at random, reward = observation. V(obs) = obs."""

    def reward(self, state, action):
        return state.sign


class ActionReward(_Probe):
    """One-step episodes: reward 1 if the action matches the observation (action 1 for +1,
    action 0 for -1), else 0. Optimal policy: that action; V* = 1 for both observations."""

    def reward(self, state, action):
        correct = jnp.where(state.sign > 0, 1, 0)
        return jnp.where(action == correct, 1.0, 0.0).astype(jnp.float32)


class DelayedReward(_Probe):
    """Two steps: reward 0 then 1, then termination. V(first obs) = γ, V(second obs) = 1.

    Observation is -1 at the first step and +1 at the second, so the two states are told apart."""

    terminates = False  # terminated is decided in step_env

    def reset_env(self, key, params):
        state = ProbeState(sign=jnp.float32(-1.0), time=0)
        return self.get_obs(state), state

    def step_env(self, key, state, action, params):
        first = state.time == 0
        reward = jnp.where(first, 0.0, 1.0).astype(jnp.float32)
        next_state = state.replace(time=state.time + 1, sign=jnp.float32(1.0))
        return self.get_obs(next_state), next_state, reward, jnp.logical_not(first), {}

    def reward(self, state, action):  # unused
        raise NotImplementedError


class TargetAction(_Probe):
    """Continuous, one-step episodes: observation = target ∈ {-1.9, +1.9} (near the bounds
    [-2, 2]), reward = -(a - target)² for the action `a` the env receives (clipped into the
    bounds by the trainer). Optimal mean action: the target; V* = 0 in the limit of zero std."""

    target: float = 1.9
    bound: float = 2.0

    def get_obs(self, state, params=None, key=None):
        return jnp.array([state.sign * self.target], jnp.float32)

    def reward(self, state, action):
        return -jnp.square(action[0] - state.sign * self.target)

    def action_space(self, params=None):
        return spaces.Box(-self.bound, self.bound, (1,), jnp.float32)

    def observation_space(self, params):
        return spaces.Box(-self.bound, self.bound, (1,), jnp.float32)


class UnboundedTargetAction(TargetAction):
    """TargetAction with infinite action bounds (only for config checks: squashing needs bounds)."""

    bound: float = float("inf")


class OffsetConstantReward(ConstantReward):
    """ConstantReward (reward 1 every step, time limit only) whose observation is far from 0:
    100 ± 1 (sign drawn at reset, fixed for the episode). With observation normalisation the
    network sees ≈ ±1; a bootstrap from the *unnormalised* final observation (100 ± 1) would ask
    the value network about inputs ~100 standard deviations away, so V(s) = 1 / (1 - γ) is learned
    only when `final_observation` is normalised with the same statistics as the rollout."""

    def reset_env(self, key, params):
        state = ProbeState(sign=jnp.where(jax.random.bernoulli(key), 1.0, -1.0), time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jnp.array([100.0 + state.sign], jnp.float32)

    def observation_space(self, params):
        return spaces.Box(0.0, 200.0, (1,), jnp.float32)


class RememberCue(_Probe):
    """A memory probe: a cue ±1 is shown only in the first observation of each 3-step episode
    (later observations are 0); the reward is 1 at the last step if the action then names the cue
    (1 for +1, 0 for -1), else 0, and the episode terminates. Optimal return 1. A memoryless
    policy sees 0 at the answer step whatever the cue was, so it cannot beat 0.5 on average."""

    terminates = False  # terminated is decided in step_env
    length: int = 3

    def get_obs(self, state, params=None, key=None):
        return jnp.array([jnp.where(state.time == 0, state.sign, 0.0)], jnp.float32)

    def step_env(self, key, state, action, params):
        last = state.time == self.length - 1
        correct = jnp.where(state.sign > 0, 1, 0)
        reward = jnp.where(last & (action == correct), 1.0, 0.0).astype(jnp.float32)
        next_state = state.replace(time=state.time + 1)
        return self.get_obs(next_state), next_state, reward, last, {}

    def reward(self, state, action):  # unused
        raise NotImplementedError
