"""Episode rendering: frames drawn from gymnax env states, written to a GIF and read back."""

import gymnax
import jax
import numpy as np
import pytest
from PIL import Image

from purejaxppo.envs import NEEDS_NETWORK
from purejaxppo.render import (CAPTION_HEIGHT, render_episode, render_frame, save_gif,
                               supported)

NUM_STEPS = 20
EPISODE_ENVS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0",
                "Pendulum-v1", "Breakout-MinAtar", "SpaceInvaders-MinAtar", "Catch-bsuite",
                "Pong-misc", "FrozenLake-misc", "Reacher-misc"]
MOVING_ENVS = ["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0"]
ALL_ENVS = [name for name in gymnax.registered_envs if name not in NEEDS_NETWORK]


def random_episode(env_name, num_steps=NUM_STEPS, seed=0):
    """Reset, then `num_steps` random-action steps; the states stacked along axis 0 (the reset
    state first)."""
    env, params = gymnax.make(env_name)

    @jax.jit
    def rollout(key):
        key, reset_key = jax.random.split(key)
        _, state = env.reset(reset_key, params)

        def step(carry, _):
            state, key = carry
            key, act_key, step_key = jax.random.split(key, 3)
            action = env.action_space(params).sample(act_key)
            _, next_state, _, _, _, _ = env.step(step_key, state, action, params)
            return (next_state, key), state

        return jax.lax.scan(step, (state, key), None, length=num_steps)[1]

    return env, params, rollout(jax.random.key(seed))


def read_gif(path):
    with Image.open(path) as gif:
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB")))
        return gif.n_frames, gif.size, gif.info.get("loop"), frames


@pytest.mark.parametrize("env_name", EPISODE_ENVS)
def test_episode_renders_to_a_gif_with_one_frame_per_step(env_name, tmp_path):
    env, params, states = random_episode(env_name)
    frames = render_episode(env_name, env, params, states, num_steps=NUM_STEPS - 2)
    assert len(frames) == NUM_STEPS - 2
    assert all(f.dtype == np.uint8 and f.ndim == 3 and f.shape == frames[0].shape for f in frames)
    path = tmp_path / f"{env_name}.gif"
    save_gif(frames, path, fps=20)
    n_frames, (width, height), loop, decoded = read_gif(path)
    assert n_frames == NUM_STEPS - 2
    assert 64 <= width <= 1024 and 64 <= height <= 1024
    assert (height, width, 3) == frames[0].shape == decoded[0].shape
    assert loop == 0


@pytest.mark.parametrize("env_name", MOVING_ENVS)
def test_the_drawing_follows_the_state(env_name):
    """Without the caption (whose step counter alone would make frames differ), frames of a
    moving system still change from step to step."""
    env, params, states = random_episode(env_name)
    frames = render_episode(env_name, env, params, states, NUM_STEPS, caption=False)
    changes = sum(not np.array_equal(a, b) for a, b in zip(frames, frames[1:]))
    assert changes >= NUM_STEPS // 2


@pytest.mark.parametrize("env_name", ["Breakout-MinAtar", "Catch-bsuite", "Reacher-misc"])
def test_episode_observations_computed_in_one_call_match_frame_by_frame(env_name):
    env, params, states = random_episode(env_name, num_steps=4)
    frames = render_episode(env_name, env, params, states, num_steps=4)
    for t, frame in enumerate(frames):
        state = jax.tree.map(lambda leaf: leaf[t], states)
        np.testing.assert_array_equal(frame, render_frame(env_name, env, params, state))


def test_cartpole_pole_leans_the_way_theta_says():
    env, params = gymnax.make("CartPole-v1")
    _, state = env.reset(jax.random.key(0), params)
    upright = render_frame("CartPole-v1", env, params, state.replace(theta=0.0), caption=False)
    right = render_frame("CartPole-v1", env, params, state.replace(theta=0.5), caption=False)
    changed = np.nonzero(np.any(upright != right, axis=-1))[1]     # columns that differ
    assert changed.mean() > upright.shape[1] / 2                   # the tip moved right


def test_caption_adds_a_strip_on_top():
    env, params = gymnax.make("Pendulum-v1")
    _, state = env.reset(jax.random.key(0), params)
    plain = render_frame("Pendulum-v1", env, params, state, caption=False)
    captioned = render_frame("Pendulum-v1", env, params, state)
    assert captioned.shape == (plain.shape[0] + CAPTION_HEIGHT, plain.shape[1], 3)
    np.testing.assert_array_equal(captioned[CAPTION_HEIGHT:], plain)


def test_save_gif_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        save_gif([], tmp_path / "empty.gif")
    frame = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="different shapes"):
        save_gif([frame, np.zeros((64, 80, 3), np.uint8)], tmp_path / "mixed.gif")
    with pytest.raises(ValueError, match="fps"):
        save_gif([frame], tmp_path / "fps.gif", fps=0)


def test_render_episode_rejects_more_steps_than_stored():
    env, params, states = random_episode("CartPole-v1", num_steps=3)
    with pytest.raises(ValueError, match="num_steps=4"):
        render_episode("CartPole-v1", env, params, states, num_steps=4)
    assert render_episode("CartPole-v1", env, params, states, num_steps=0) == []


def test_every_registered_env_renders_a_frame():
    """One reset state per env (`reset_env`, not compiled): an (H, W, 3) uint8 frame of sensible
    size, and the renderer `supported` names."""
    kinds = {}
    for env_name in ALL_ENVS:
        env, params = gymnax.make(env_name)
        _, state = env.reset_env(jax.random.key(0), params)
        frame = render_frame(env_name, env, params, state)
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3, env_name
        assert 64 <= min(frame.shape[:2]) and max(frame.shape[:2]) <= 1024, (env_name, frame.shape)
        assert frame.std() > 0, env_name                       # not a blank canvas
        kinds[env_name] = supported(env_name, env, params)
    assert kinds["CartPole-v1"] == "classic-control drawing"
    assert kinds["Seaquest-MinAtar"] == "MinAtar palette"
    assert kinds["FrozenLake-misc"] == kinds["Catch-bsuite"] == kinds["Pong-misc"] == "grid"
    assert kinds["Reacher-misc"] == "observation bars"
    assert set(kinds.values()) == {"classic-control drawing", "MinAtar palette", "grid",
                                   "observation bars"}


def test_supported_makes_the_env_by_name_and_rejects_unknown_names():
    assert supported("DeepSea-bsuite") == "grid"
    assert supported("MemoryChain-bsuite") == "observation bars"
    with pytest.raises(ValueError, match="unknown environment"):
        supported("NoSuchEnv-v0")
