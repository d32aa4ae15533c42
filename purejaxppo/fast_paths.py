"""CPU fast paths, all in one place: each is a measured XLA:CPU speed-up with a plain twin.

`PPOConfig.fast_paths` chooses: "auto" (default) turns them on when JAX's default backend is the
CPU, where they were measured (README, "Throughput"), and off on GPU/TPU, where nothing says they
help; "on"/"off" force it. Each gives the same values as its plain twin (tested on CPU):

* `matmul`: `x @ kernel` with a backward pass laid out for XLA:CPU's fast GEMM (2-D `x` only;
  anything else takes the plain path). Cost: no forward-mode autodiff through the network.
* `random_permutations` (packed): one uint32 sort instead of a two-array sort per shuffle.
* `fast_key` (unrolled threefry): PRNG keys whose hash runs as one fused kernel instead of JAX's
  rolled CPU loop; the same random numbers, bit for bit.

Besides the program, how XLA compiles it: `compiler_options()` gives the options purejaxppo's own
entry points (CLI, `sweep`/`train_seeds`/`train_runs`, chunked runs) compile with; pass them to
your own `jax.jit(..., compiler_options=purejaxppo.compiler_options())` to get the same.

Flat parameters (Adam, clipping and the global norm on one raveled vector) were removed
on 2026-12-02: measured against the pytree it cost ~4 % at 8 seeds on CPU (README, "Throughput").
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import define_prng_impl, threefry_prng_impl

FAST_PATH_CHOICES = ("auto", "on", "off")


CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}
"""LLVM's -O1 for XLA:CPU's generated code, instead of its default. Dense layers and
convolutions run in library kernels either way, so only the fused elementwise code is affected:
XLA compiles PPO's program ~18-25 % faster, at the same training speed within the noise
(README, "Throughput"). It may round differently from XLA's default level (README, "Determinism").
"""


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


# ---------------------------------------------------------------------------------- PRNG keys
#
# JAX lowers its threefry hash for the CPU as a rolled loop (`fori_loop` over 5 rounds, to keep
# compile time down); everywhere else it is unrolled into one fused elementwise kernel. The loop
# is free on big arrays, but PPO's rollout hashes a handful of numbers several times per env step
# (splitting the step key, sampling actions, the env's own splits and resets), and there XLA:CPU
# runs each call as a while loop of ~15 tiny thunks (most of them copies of the loop carry) x 5
# iterations. So on the CPU the training loop uses a key implementation whose hash is the same
# function written out: the same bits for every split, fold_in and sample (tested against
# jax.random), with no loop.

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k1, k2, x1, x2):
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011), as `jax.random` computes it, unrolled.

    `k1, k2`: the key's two uint32 words (scalars); `x1, x2`: uint32 counts of one shape.
    Returns the two uint32 output words, of the counts' shape."""
    def rotate_left(x, d):
        return jax.lax.shift_left(x, np.uint32(d)) | jax.lax.shift_right_logical(
            x, np.uint32(32 - d))

    ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for block in range(5):
        for rotation in _ROTATIONS[block % 2]:
            x1 = x1 + x2
            x2 = x1 ^ rotate_left(x2, rotation)
        x1 = x1 + ks[(block + 1) % 3]
        x2 = x2 + ks[(block + 2) % 3] + np.uint32(block + 1)
    return x1, x2


def _counts(shape):
    """`jax.random`'s counter for `shape`: a uint64 iota as (high, low) uint32 words."""
    size = math.prod(shape)
    if size >= 2 ** 32:
        raise NotImplementedError(f"unrolled threefry: {size} numbers at once (max 2**32 - 1)")
    return jnp.zeros(shape, jnp.uint32), jax.lax.iota(jnp.uint32, size).reshape(shape)


def _split(key, shape):
    bits1, bits2 = threefry2x32(key[0], key[1], *_counts(shape))
    return jnp.stack([bits1, bits2], axis=bits1.ndim)


def _random_bits(key, bit_width, shape):
    bits1, bits2 = threefry2x32(key[0], key[1], *_counts(shape))
    dtype = {8: jnp.uint8, 16: jnp.uint16, 32: jnp.uint32, 64: jnp.uint64}[bit_width]
    if bit_width == 64:
        return jax.lax.shift_left(bits1.astype(dtype), dtype(32)) | bits2.astype(dtype)
    return (bits1 ^ bits2).astype(dtype)


def _fold_in(key, data):
    # jax.random: the hash of the 2-word count (0, data) split into halves, i.e. x1=[0], x2=[data]
    bits1, bits2 = threefry2x32(key[0], key[1], jnp.zeros((1,), jnp.uint32),
                                jnp.asarray(data, jnp.uint32)[None])
    return jnp.concatenate([bits1, bits2])


UNROLLED_THREEFRY = define_prng_impl(
    key_shape=(2,), seed=threefry_prng_impl.seed, split=_split, random_bits=_random_bits,
    fold_in=_fold_in, name="threefry2x32_unrolled", tag="fru")
"""A `jax.random` key implementation: threefry2x32 with the hash unrolled (same numbers)."""


def _is_threefry(key) -> bool:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(key)
    elif key.dtype == jnp.uint32 and key.shape[-1:] == (2,):  # raw key: the default impl's
        impl = jax.config.jax_default_prng_impl
    else:
        return False
    return impl == "threefry2x32"


def fast_key(key, fast: bool):
    """`key` (typed or raw, any batch shape) as an `UNROLLED_THREEFRY` key when `fast` and it is
    a threefry key; else `key` unchanged. Draws from it equal the threefry key's (under JAX's
    default `jax_threefry_partitionable=True`; with it off, the key is left alone)."""
    if not fast or not jax.config.jax_threefry_partitionable or not _is_threefry(key):
        return key
    return jax.random.wrap_key_data(jax.random.key_data(key), impl=UNROLLED_THREEFRY)


def restore_key(key, like):
    """`key` in the representation of `like` (inverse of `fast_key`: typed keys get `like`'s
    implementation back, raw keys their uint32 data)."""
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if not jax.dtypes.issubdtype(like.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    if key.dtype == like.dtype:
        return key
    return jax.random.wrap_key_data(jax.random.key_data(key), impl=jax.random.key_impl(like))
