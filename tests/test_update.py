"""The update step: minibatch shuffling, one SGD step against plain optax, LR schedule."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from purejaxppo import PPOConfig
from purejaxppo.distributions import Categorical
from purejaxppo.envs import ActionSpace
from purejaxppo.fast_paths import matmul, random_permutations
from purejaxppo.networks import ActorCritic, init_params
from purejaxppo.update import (Batch, Learner, learning_rate_at, make_optimizer, minibatch_indices,
                               sgd_step)


@pytest.mark.parametrize("n", [1, 2, 7, 512, 1000, 70_000])  # 70k: the jax.random fallback path
def test_random_permutations_are_permutations(n):
    perms = np.asarray(random_permutations(jax.random.key(0), n, 3))
    assert perms.shape == (3, n)
    for row in perms:
        np.testing.assert_array_equal(np.sort(row), np.arange(n))
    if n > 2:
        assert not np.array_equal(perms[0], perms[1])


def test_random_permutations_are_uniform():
    """All 24 permutations of 4 elements, 24,000 draws: each ~1000 times (binomial sd ≈ 31)."""
    perms = np.asarray(random_permutations(jax.random.key(1), 4, 24_000))
    counts = {p: 0 for p in itertools.permutations(range(4))}
    for row in map(tuple, perms):
        counts[row] += 1
    assert len(counts) == 24
    assert min(counts.values()) > 850 and max(counts.values()) < 1150
    # Chi-square with 23 degrees of freedom: p < 1e-4 beyond ~55.
    chi2 = sum((c - 1000) ** 2 / 1000 for c in counts.values())
    assert chi2 < 55


def test_random_permutations_positions_are_uniform_for_a_batch():
    """n = 512 (the default batch): where sample 0 lands is uniform over positions."""
    perms = np.asarray(random_permutations(jax.random.key(2), 512, 5_120))
    position_of_zero = np.argmax(perms == 0, axis=1)
    hist = np.bincount(position_of_zero // 64, minlength=8)  # 8 bins of 64 positions, 640 each
    assert hist.min() > 540 and hist.max() < 740


def test_minibatch_indices_cover_every_sample_once_per_epoch():
    idx = np.asarray(minibatch_indices(jax.random.key(0), 512, 4, 4))
    assert idx.shape == (4, 4, 128)
    for epoch in idx.reshape(4, 512):
        np.testing.assert_array_equal(np.sort(epoch), np.arange(512))
    assert not np.array_equal(idx[0], idx[1])  # a fresh permutation every epoch


def _network_and_batch(num=32, seed=0, fast=True):
    rng = np.random.default_rng(seed)
    network = ActorCritic(ActionSpace(3), hidden_sizes=(16, 16), fast=fast)
    params = init_params(network, jax.random.key(seed), (5,))
    batch = Batch(obs=jnp.asarray(rng.normal(size=(num, 5)), jnp.float32),
                  actions=jnp.asarray(rng.integers(0, 3, num)),
                  log_probs=jnp.asarray(np.log(rng.uniform(0.2, 0.5, num)), jnp.float32),
                  values=jnp.asarray(rng.normal(size=num), jnp.float32),
                  advantages=jnp.asarray(rng.normal(size=num), jnp.float32),
                  returns=jnp.asarray(rng.normal(size=num), jnp.float32),
                  old_dist=Categorical(jnp.asarray(rng.normal(size=(num, 3)), jnp.float32)))
    return network, params, batch


def on_batch(network):
    """`policy_fn` for a feed-forward network on a flat batch (as `update.batch_policy`)."""
    return lambda params, minibatch: network.apply(params, minibatch.obs)


def clip_loss(params, policy_fn, batch, hp):
    from purejaxppo.loss import ppo_loss

    return ppo_loss(params, policy_fn, batch, hp, 1.0, objective="clip", clip_value=True,
                    normalize_advantages=True)[0]


@pytest.mark.parametrize("max_grad_norm", [0.01, 100.0])  # clipping active / inactive
def test_sgd_step_matches_optax_clip_and_adam(max_grad_norm):
    config = PPOConfig()
    network, params, batch = _network_and_batch()
    hp = config.hparams().replace(max_grad_norm=max_grad_norm)
    optimizer = make_optimizer(config)
    learner, (_, grad_norm) = sgd_step(Learner(params, optimizer.init(params), 1.0), batch,
                                       policy_fn=on_batch(network), optimizer=optimizer, hp=hp,
                                       learning_rate=1e-3, config=config)

    reference = optax.chain(optax.clip_by_global_norm(max_grad_norm),
                            optax.adam(1e-3, eps=config.adam_eps))
    grads = jax.grad(lambda p: clip_loss(p, on_batch(network), batch, hp))(params)
    updates, _ = reference.update(grads, reference.init(params), params)
    expected = optax.apply_updates(params, updates)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                 learner.params, expected)
    flat = np.concatenate([np.ravel(g) for g in jax.tree.leaves(grads)])
    assert float(grad_norm) == pytest.approx(np.linalg.norm(flat), rel=1e-5)


def test_network_gradients_match_plain_jnp_autodiff():
    """The network's custom-VJP dense layer gives the same gradients as plain jnp autodiff."""
    network, params, batch = _network_and_batch(seed=3)
    assert network.fast

    def reference_apply(p, obs):
        def mlp(tower, x):
            for i in range(2):
                x = jnp.tanh(x @ tower[f"Dense_{i}"]["kernel"] + tower[f"Dense_{i}"]["bias"])
            return x

        p = p["params"]
        head, value_head = p["policy_head"], p["value_head"]
        logits = mlp(p["actor_torso"], obs) @ head["kernel"] + head["bias"]
        value = mlp(p["critic_torso"], obs) @ value_head["kernel"] + value_head["bias"]
        return logits, value[:, 0]

    def loss(apply_fn, p):
        logits, value = apply_fn(p, batch.obs)
        logits = getattr(logits, "logits", logits)  # ours returns a Categorical
        return (jax.nn.log_softmax(logits)[:, 0] * batch.advantages).mean() + (value ** 2).mean()

    ours = jax.grad(lambda p: loss(network.apply, p))(params)
    ref = jax.grad(lambda p: loss(reference_apply, p))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), ours, ref)


def test_vmapped_init_equals_per_seed_init():
    """init_params under vmap (sequential, for the jax 0.10 CPU QR deadlock) is bitwise the same
    as initialising each seed alone."""
    network = ActorCritic(ActionSpace(2))
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.jit(jax.vmap(lambda k: init_params(network, k, (4,))))(keys)
    for i in range(3):
        single = init_params(network, keys[i], (4,))
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[i], b), batched, single)


def test_learning_rate_schedule():
    assert float(learning_rate_at(1.0, 0, 4, True)) == 1.0
    assert float(learning_rate_at(1.0, 3, 4, True)) == 0.25
    assert float(learning_rate_at(2.0, 3, 4, False)) == 2.0


def test_plain_path_equals_fast_path():
    """fast_paths off (the GPU/TPU default) gives the same loss gradients and SGD step as on."""
    config = PPOConfig()
    hp = config.hparams()
    fast_net, params, batch = _network_and_batch(seed=4, fast=True)
    plain_net, _, _ = _network_and_batch(seed=4, fast=False)

    def grad(net):
        return jax.grad(lambda p: clip_loss(p, on_batch(net), batch, hp))(params)

    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                 grad(fast_net), grad(plain_net))
    optimizer = make_optimizer(config)
    steps = []
    for net in (fast_net, plain_net):
        learner, _ = sgd_step(Learner(params, optimizer.init(params), 1.0), batch,
                              policy_fn=on_batch(net), optimizer=optimizer, hp=hp,
                              learning_rate=1e-3, config=config)
        steps.append(learner.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), *steps)


def test_fast_matmul_falls_back_for_inputs_it_does_not_handle():
    """Rank-3 input takes the plain path (value and gradient of x @ kernel)."""
    x = jax.random.normal(jax.random.key(0), (2, 3, 4))
    kernel = jax.random.normal(jax.random.key(1), (4, 5))
    np.testing.assert_allclose(matmul(x, kernel, True), x @ kernel, rtol=1e-6)
    g = jax.grad(lambda k: matmul(x, k, True).sum())(kernel)
    np.testing.assert_allclose(g, jax.grad(lambda k: (x @ k).sum())(kernel), rtol=1e-5)


@pytest.mark.parametrize("n", [7, 512])
def test_plain_permutations_are_permutations(n):
    perms = np.asarray(random_permutations(jax.random.key(0), n, 3, fast=False))
    assert perms.shape == (3, n) and perms.dtype == np.int32
    for row in perms:
        np.testing.assert_array_equal(np.sort(row), np.arange(n))


def test_compiler_options_are_chosen_per_backend():
    """The CPU gets LLVM -O1 (measured: faster compiles, same speed), other backends XLA's
    defaults; XLA accepts them."""
    from purejaxppo import compiler_options
    from purejaxppo.fast_paths import CPU_COMPILER_OPTIONS

    expected = CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else {}
    assert compiler_options() == expected
    compiled = jax.jit(lambda x: x * 2.0, compiler_options=compiler_options()).lower(1.0).compile()
    assert float(compiled(1.0)) == 2.0
