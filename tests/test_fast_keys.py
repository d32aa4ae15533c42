"""Unrolled threefry keys (`fast_paths.fast_key`): the same random numbers as jax.random's
threefry keys, bit for bit, without the CPU's rolled hash loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxppo.train
from purejaxppo import PPOConfig, make_train
from purejaxppo.fast_paths import UNROLLED_THREEFRY, fast_key, restore_key

DRAWS = {
    "split": lambda k: jax.random.key_data(jax.random.split(k, 5)),
    "split_2d": lambda k: jax.random.key_data(jax.random.split(k, (3, 4))),
    "fold_in": lambda k: jax.random.key_data(jax.random.fold_in(k, 123_456_789)),
    "uniform": lambda k: jax.random.uniform(k, (7, 3)),
    "normal": lambda k: jax.random.normal(k, (5,)),
    "categorical": lambda k: jax.random.categorical(k, jnp.linspace(-1.0, 1.0, 24).reshape(6, 4)),
    "permutation": lambda k: jax.random.permutation(k, 100),
    "bits8": lambda k: jax.random.bits(k, (5,), jnp.uint8),
    "bits16": lambda k: jax.random.bits(k, (5,), jnp.uint16),
    "bits64": lambda k: jax.random.bits(k, (3,), jnp.uint64) if jax.config.jax_enable_x64
    else jax.random.randint(k, (9,), 0, 1_000_000),
}


@pytest.mark.parametrize("draw", sorted(DRAWS))
def test_unrolled_keys_draw_what_threefry_draws(draw):
    """Eager, jitted and vmapped over a batch of keys: identical bits."""
    fn = DRAWS[draw]
    for seed in (0, 2**31 - 1):
        key = jax.random.key(seed)
        expected = np.asarray(fn(key))
        np.testing.assert_array_equal(np.asarray(fn(fast_key(key, True))), expected)
        np.testing.assert_array_equal(np.asarray(jax.jit(fn)(fast_key(key, True))), expected)
    keys = jax.random.split(jax.random.key(3), 4)
    np.testing.assert_array_equal(np.asarray(jax.vmap(fn)(fast_key(keys, True))),
                                  np.asarray(jax.vmap(fn)(keys)))


def test_fast_key_round_trips_and_leaves_other_keys_alone():
    typed = jax.random.split(jax.random.key(7), 3)
    fast = fast_key(typed, True)
    assert fast.dtype != typed.dtype and jax.random.key_impl(fast) == UNROLLED_THREEFRY
    assert restore_key(fast, typed).dtype == typed.dtype
    np.testing.assert_array_equal(jax.random.key_data(restore_key(fast, typed)),
                                  jax.random.key_data(typed))
    raw = jax.random.PRNGKey(7)  # legacy uint32 key: comes back as uint32 data
    np.testing.assert_array_equal(restore_key(fast_key(raw, True), raw), raw)
    assert fast_key(typed, False) is typed  # fast paths off
    rbg = jax.random.key(7, impl="rbg")  # not threefry: left alone
    assert fast_key(rbg, True) is rbg and restore_key(rbg, rbg) is rbg


def test_unrolled_hash_has_no_loop_where_jax_has_one():
    """Why the fast path exists: on CPU jax.random's hash is a while loop; ours is not."""
    split = lambda k: jax.random.split(k, 3)  # noqa: E731
    key = jax.random.key(0)
    ours = jax.jit(split).lower(fast_key(key, True)).as_text()
    assert "while" not in ours
    if jax.default_backend() == "cpu":
        assert "while" in jax.jit(split).lower(key).as_text()


def test_training_with_unrolled_keys_is_bitwise_training_with_threefry(monkeypatch):
    """Only the key implementation differs (fast paths on in both): the same parameters and
    metrics, bit for bit."""
    config = PPOConfig(total_timesteps=2 * 512, fast_paths="on")
    key = jax.random.key(5)
    fast = jax.jit(make_train(config))(key)
    monkeypatch.setattr(purejaxppo.train, "fast_key", lambda key, fast: key)
    plain = jax.jit(make_train(config))(key)
    for a, b in zip(jax.tree.leaves((fast.params, fast.metrics)),
                    jax.tree.leaves((plain.params, plain.metrics))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
