"""CPU fast paths, all in one place: each is a measured XLA:CPU speed-up with a plain twin.

`PPOConfig.fast_paths` chooses: "auto" (default) turns them on when JAX's default backend is the
CPU, where they were measured (README, "Throughput"), and off on GPU/TPU, where nothing says they
help; "on"/"off" force it. Each gives the same values as its plain twin (tested on CPU):

* `matmul`: `x @ kernel` with a backward pass laid out for XLA:CPU's fast GEMM (2-D `x` only;
  anything else takes the plain path). Cost: no forward-mode autodiff through the network.
* `random_permutations` (packed): one uint32 sort instead of a two-array sort per shuffle.

Besides the program, how XLA compiles it: `compiler_options()` gives the options purejaxppo's own
entry points (CLI, `sweep`/`train_seeds`/`train_runs`, chunked runs) compile with; pass them to
your own `jax.jit(..., compiler_options=purejaxppo.compiler_options())` to get the same.

A third, flat parameters (Adam, clipping and the global norm on one raveled vector), was removed
on 2026-12-02: measured against the pytree it cost ~4 % at 8 seeds on CPU (README, "Throughput").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

FAST_PATH_CHOICES = ("auto", "on", "off")


CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}
"""LLVM's -O1 for XLA:CPU's generated code, instead of its default. Dense layers and
convolutions run in library kernels either way, so only the fused elementwise code is affected:
XLA compiles PPO's program 20-25 % faster, with the same training speed (README, "Throughput")."""


def compiler_options() -> dict:
    """XLA compile options for purejaxppo's programs on the current default backend:
    `CPU_COMPILER_OPTIONS` on the CPU, none (XLA's defaults) on GPU/TPU."""
    return dict(CPU_COMPILER_OPTIONS) if jax.default_backend() == "cpu" else {}


def fast_paths_enabled(setting: str) -> bool:
    """Resolve `PPOConfig.fast_paths` ("auto" | "on" | "off") for the current default backend."""
    if setting == "auto":
        return jax.default_backend() == "cpu"
    return setting == "on"


# --------------------------------------------------------------------------------- dense layer


@jax.custom_vjp
def _gemm_friendly_matmul(x, kernel):
    return x @ kernel


def _matmul_fwd(x, kernel):
    return x @ kernel, (x, kernel)


def _matmul_bwd(residuals, grad):
    # The kernel gradient x^T @ grad contracts the batch axis, the *first* axis of x. XLA:CPU
    # hands a dot with a transposed left operand to a slower generic kernel (1.1-2x slower at
    # these sizes, and its result then needs a transposing copy). Materialising x^T first (the
    # barrier keeps XLA from folding the transpose back into the dot) puts it on the fast GEMM.
    # Same value. (A custom_jvp cannot do this: JAX transposes every dot into the slow form.)
    x, kernel = residuals
    return grad @ kernel.T, jax.lax.optimization_barrier(x.T) @ grad


_gemm_friendly_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def matmul(x, kernel, fast: bool):
    """`x (..., in) @ kernel (in, out)`; the CPU-friendly backward pass when `fast` and x is 2-D."""
    if fast and x.ndim == 2:
        return _gemm_friendly_matmul(x, kernel)
    return x @ kernel


# ------------------------------------------------------------------------------------- shuffle

_PACKED_SHUFFLE_MAX_INDEX_BITS = 16  # up to 65,536 samples per update; beyond: the plain path


def random_permutations(key, n: int, count: int, fast: bool = True):
    """`count` independent, uniformly random permutations of `range(n)`, shape `(count, n)`.

    Plain path: `jax.random.permutation` per row. Fast path: the same algorithm (sort by random
    keys, several rounds when the keys are short), made cheap on CPU. There, a two-array sort
    (keys with an index payload) calls a comparator per comparison and costs ~200 us for 4 x 512
    elements, while a one-array uint32 sort takes a fast path (~30 us). So the index is packed into
    the low `b = bit_length(n - 1)` bits of the 32-bit random key and recovered after a plain sort:
    a stable sort by `32 - b` random bits. Ties keep the order from the round before, so the result
    is uniform up to ties in every round; rounds are added, as `jax.random.permutation` does, until
    the random bits reach 3 log2(n) (two rounds for n = 512: ~1e-9 chance of any bias).
    """
    bits = max(1, (n - 1).bit_length())
    if not fast or bits > _PACKED_SHUFFLE_MAX_INDEX_BITS:
        keys = jax.random.split(key, count)
        return jax.vmap(lambda k: jax.random.permutation(k, n))(keys).astype(jnp.int32)
    rounds = max(1, -(-3 * bits // (32 - bits)))  # ceil(3 * bits / (32 - bits))
    low = jnp.uint32((1 << bits) - 1)
    position = jnp.arange(n, dtype=jnp.uint32)
    random = jax.random.bits(key, (rounds, count, n), jnp.uint32) & ~low
    perm = None
    for r in range(rounds):
        order = jnp.sort(random[r] | position, axis=-1) & low  # stable shuffle of positions
        perm = order if perm is None else jnp.take_along_axis(perm, order, axis=-1)
    return perm.astype(jnp.int32)
