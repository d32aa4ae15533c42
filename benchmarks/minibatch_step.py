"""The update's inner step alone, in variants: is there a faster way to do PPO's minibatch step?

    python benchmarks/minibatch_step.py                   # 8 seeds, every variant
    python benchmarks/minibatch_step.py --seeds 1,8 --variants plain,fused_first_and_heads

One minibatch step is what `update.sgd_step` does (the PPO loss on 128 samples per seed, its
gradient, global-norm clipping, Adam), here on CartPole-v1's default network (two 2x64 tanh
towers), vmapped over `--seeds` and scanned over 64 minibatches of random data. Each variant
computes the same values (checked: largest parameter difference to the first variant, printed)
in another way:

* `plain`: the library's network and fast paths, as training runs them;
* `fused_first_and_heads`: actor and critic's first layers as one matmul (kernels concatenated,
  `(4, 128)`), and the two heads as one (block-diagonal `(128, 3)`); second layers apart;
* `block_diagonal`: the same, and the second layers as one block-diagonal `(128, 128)` matmul;
* `kernel_grad_*`: the library's network with another form of the dense layer's kernel gradient
  `x^T g` (`fast_paths.matmul`'s backward; swapped in for the compile): `natural` (XLA's own
  dot, no transposed copy), `split2`/`split4` (the 128-sample contraction in 2 or 4 parts),
  `gT` (`(g^T x)^T`).

Every variant is compiled once (with `compiler_options()`), then timed interleaved `--rounds`
times; reported: median and best microseconds per minibatch step, and `x`: the median over
rounds of the variant's time over the first variant's in the same round (above 1: slower).
Then each distinct dot shape of the step is timed alone in a loop (unless `--no-dots`), with one
GEMM of the same FLOPs over all seeds' rows, against which the per-seed batched dot is compared.
Writes JSON (default benchmarks/results/minibatch_step_<platform>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from peers import machine_info  # noqa: E402  (benchmarks/peers.py)
from purejaxppo import PPOConfig, compiler_options  # noqa: E402
from purejaxppo import fast_paths  # noqa: E402
from purejaxppo.distributions import Categorical  # noqa: E402
from purejaxppo.train import make_trainer  # noqa: E402
from purejaxppo.update import Batch, make_optimizer, sgd_step  # noqa: E402

MINIBATCH = 128  # samples per seed: CartPole defaults, 4 envs x 128 steps / 4 minibatches
STEPS = 64  # minibatch steps per timed call


def _barrier_t(x):
    return jax.lax.optimization_barrier(x.T)


def _split_contraction(x, g, parts):
    """`x^T g` as the sum of `parts` products over consecutive blocks of samples."""
    xt, size = _barrier_t(x), x.shape[0] // parts
    return sum(xt[:, i * size:(i + 1) * size] @ g[i * size:(i + 1) * size] for i in range(parts))


KERNEL_GRADS = {  # the dense layer's backward: (residuals (x, kernel), g) -> (dx, dkernel)
    "natural": lambda x, k, g: (g @ k.T, x.T @ g),
    "split2": lambda x, k, g: (g @ k.T, _split_contraction(x, g, 2)),
    "split4": lambda x, k, g: (g @ k.T, _split_contraction(x, g, 4)),
    "gT": lambda x, k, g: (g @ k.T, (jax.lax.optimization_barrier(g.T) @ x).T),
}


def _block_diagonal(a, b):
    return jnp.block([[a, jnp.zeros((a.shape[0], b.shape[1]), a.dtype)],
                      [jnp.zeros((b.shape[0], a.shape[1]), a.dtype), b]])


def fused_policy(second_layers_fused: bool):
    """`policy_fn(params, samples)` for the default discrete two-tower MLP, computed with fused
    matmuls from the library's own parameters (so gradients land on the same leaves)."""

    def policy(params, samples):
        p = params["params"]
        actor, critic = p["actor_torso"], p["critic_torso"]
        width = actor["Dense_0"]["kernel"].shape[1]
        x = samples.obs.astype(jnp.float32)
        k1 = jnp.concatenate([actor["Dense_0"]["kernel"], critic["Dense_0"]["kernel"]], 1)
        b1 = jnp.concatenate([actor["Dense_0"]["bias"], critic["Dense_0"]["bias"]])
        h = jnp.tanh(fast_paths.matmul(x, k1, True) + b1)
        if second_layers_fused:
            k2 = _block_diagonal(actor["Dense_1"]["kernel"], critic["Dense_1"]["kernel"])
            b2 = jnp.concatenate([actor["Dense_1"]["bias"], critic["Dense_1"]["bias"]])
            h = jnp.tanh(fast_paths.matmul(h, k2, True) + b2)
        else:
            h = jnp.concatenate([
                jnp.tanh(fast_paths.matmul(h[:, :width], actor["Dense_1"]["kernel"], True)
                         + actor["Dense_1"]["bias"]),
                jnp.tanh(fast_paths.matmul(h[:, width:], critic["Dense_1"]["kernel"], True)
                         + critic["Dense_1"]["bias"])], 1)
        heads = _block_diagonal(p["policy_head"]["kernel"], p["value_head"]["kernel"])
        out = fast_paths.matmul(h, heads, True) + jnp.concatenate(
            [p["policy_head"]["bias"], p["value_head"]["bias"]])
        return Categorical(out[:, :-1]), out[:, -1]

    return policy


def make_steps(trainer, policy_fn, config):
    """`run(key) -> (params, losses)`: init, then `STEPS` sgd_steps on random minibatches."""
    optimizer = make_optimizer(config)
    hp = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), config.hparams())

    def run(key):
        learner = trainer.init(key).learner
        k = jax.random.split(key, 6)
        shape = (STEPS, MINIBATCH)
        data = Batch(jax.random.normal(k[0], (*shape, 4)),
                     jax.random.bernoulli(k[1], 0.5, shape).astype(jnp.int32),
                     jnp.full(shape, -0.69), jax.random.normal(k[2], shape),
                     jax.random.normal(k[3], shape), jax.random.normal(k[4], shape),
                     Categorical(jax.random.normal(k[5], (*shape, 2))))

        def step(learner, minibatch):
            return sgd_step(learner, minibatch, policy_fn=policy_fn, optimizer=optimizer, hp=hp,
                            learning_rate=2.5e-4, config=config)

        learner, (info, _) = jax.lax.scan(step, learner, data)
        return learner.params, info.total_loss

    return run


def compile_variant(name, trainer, config, keys):
    network = trainer.network
    plain = lambda params, samples: network.apply(params, samples.obs)  # noqa: E731
    policy = {"fused_first_and_heads": fused_policy(False),
              "block_diagonal": fused_policy(True)}.get(name, plain)
    original = (fast_paths._matmul_fwd, fast_paths._matmul_bwd)
    if name.startswith("kernel_grad_"):
        form = KERNEL_GRADS[name[len("kernel_grad_"):]]
        fast_paths._gemm_friendly_matmul.defvjp(
            fast_paths._matmul_fwd, lambda residuals, g: form(*residuals, g))
    try:
        return jax.jit(jax.vmap(make_steps(trainer, policy, config)),
                       compiler_options=compiler_options()).lower(keys).compile()
    finally:
        fast_paths._gemm_friendly_matmul.defvjp(*original)


def time_dot(lhs_shape, rhs_shape, repeats: int, trips: int = 300) -> float:
    """Microseconds per call of `lhs @ rhs` in a jitted loop whose step feeds the output back."""
    lhs = jax.random.normal(jax.random.key(0), lhs_shape)
    rhs = jax.random.normal(jax.random.key(1), rhs_shape)

    def loop(lhs, rhs):
        def body(x, _):
            out = x @ rhs
            return x + 1e-6 * out[..., :1], None
        return jax.lax.scan(body, lhs, None, length=trips)[0]

    compiled = jax.jit(loop, compiler_options=compiler_options()).lower(lhs, rhs).compile()
    jax.block_until_ready(compiled(lhs, rhs))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(lhs, rhs))
        best = min(best, time.perf_counter() - start)
    return best / trips * 1e6


VARIANTS = ("plain", "fused_first_and_heads", "block_diagonal", "kernel_grad_natural",
            "kernel_grad_split2", "kernel_grad_split4", "kernel_grad_gT")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="8", help="comma-separated seed counts (8)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timings (7)")
    parser.add_argument("--no-dots", dest="dots", action="store_false",
                        help="skip timing the dot shapes alone")
    parser.add_argument("--out", default=os.path.join(
        HERE, "results", f"minibatch_step_{jax.default_backend()}.json"))
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    config = PPOConfig(env_name="CartPole-v1")
    trainer = make_trainer(config)
    report = {"benchmark": "minibatch_step", "machine": machine_info(),
              "jax": jax.__version__, "minibatch_per_seed": MINIBATCH,
              "steps_per_call": STEPS, "rounds": args.rounds, "results": []}
    for n in (int(s) for s in args.seeds.split(",")):
        keys = jax.random.split(jax.random.key(0), n)
        compiled = {v: compile_variant(v, trainer, config, keys) for v in variants}
        params = {v: jax.block_until_ready(compiled[v](keys))[0] for v in variants}  # warm-up
        times = {v: {"max_param_diff_to_first": max(
            float(jnp.abs(a - b).max()) for a, b in
            zip(jax.tree.leaves(params[variants[0]]), jax.tree.leaves(params[v]))),
            "us_per_step": []} for v in variants}
        for _ in range(args.rounds):
            for v in variants:
                start = time.perf_counter()
                jax.block_until_ready(compiled[v](keys))
                times[v]["us_per_step"].append((time.perf_counter() - start) / STEPS * 1e6)
        print(f"{n} seeds, {MINIBATCH} samples each, one minibatch step (loss, grad, clip, Adam):")
        for v in variants:
            t = times[v]["us_per_step"]
            t_med = float(np.median(t))
            paired = np.array(t) / np.array(times[variants[0]]["us_per_step"])
            times[v].update(median=t_med, best=min(t), ratio_to_first=float(np.median(paired)))
            print(f"  {v:24s} median {t_med:8.1f} us  best {min(t):8.1f} us  "
                  f"x{times[v]['ratio_to_first']:.2f}  (max param diff "
                  f"{times[v]['max_param_diff_to_first']:.1e})")
        row = {"num_seeds": n, "variants": times}
        if args.dots:
            batch = () if n == 1 else (n,)
            shapes = {"forward, second layer (128x64 @ 64x64)": ((*batch, 128, 64),
                                                                 (*batch, 64, 64)),
                      "kernel gradient, second layer (64x128 @ 128x64)": ((*batch, 64, 128),
                                                                          (*batch, 128, 64)),
                      "policy head (128x64 @ 64x2)": ((*batch, 128, 64), (*batch, 64, 2)),
                      f"one GEMM over all seeds' rows ({n * 128}x64 @ 64x64)": ((n * 128, 64),
                                                                                 (64, 64))}
            row["dots"] = {}
            for name, (lhs, rhs) in shapes.items():
                us = time_dot(lhs, rhs, repeats=5)
                flops = 2 * np.prod(lhs) * rhs[-1]
                row["dots"][name] = {"us": us, "gflops": flops / us / 1e3}
                print(f"  dot {name:52s} {us:8.1f} us  {flops / us / 1e3:6.1f} GFLOP/s")
        report["results"].append(row)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
