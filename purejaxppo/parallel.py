"""Parallel plumbing: the flat run axis over a 1-D device mesh.

Every multi-run entry point (sweeps, the run API in `fit`, the chunked runs) lays its runs
(settings x seeds) along one flat axis and shards it over `run_mesh()`:

    runs = place_runs(keys, hparams, mesh=mesh)      # pad to a multiple of the devices, shard
    out = jax.jit(shard_runs(fn, runs.mesh))(runs.key_data, runs.hparams)
    host = gather_runs(out, runs.num_runs)            # gather to host numpy, drop the padding

Padding repeats run 0 (a valid run: no NaN, no error) and always comes from the mesh's device
count. Within a device, runs are vmapped in groups (`runs_per_group`) as a `lax.map`, which keeps
the CPU's working set in cache. Each run is computed on exactly one device with no communication.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from purejaxppo.config import HParams, validate_hparams

RUN_AXIS = "runs"
"""Name of the mesh axis that the flat settings x seeds axis is sharded over."""


def run_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
    """A 1-D mesh (axis `RUN_AXIS`) over `devices`, by default every device of every process
    (`jax.devices()`; in a single process these are the local devices)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (RUN_AXIS,))


def padded_size(num_runs: int, num_devices: int) -> int:
    """`num_runs` rounded up to a multiple of `num_devices`."""
    return -(-num_runs // num_devices) * num_devices


def local_runs(num_runs: int, mesh: Optional[Mesh] = None) -> int:
    """Runs (padding included) that this process's devices execute, i.e. how many run-reports
    this process's progress callback receives per report step (all of them in one process)."""
    mesh = run_mesh() if mesh is None else mesh
    per_device = padded_size(num_runs, mesh.devices.size) // mesh.devices.size
    mine = sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
    return per_device * mine


def pad_runs(x: np.ndarray, size: int) -> np.ndarray:
    """Pad the leading axis to `size` by repeating entry 0 (a valid run, so no NaN or error)."""
    extra = size - x.shape[0]
    return x if extra == 0 else np.concatenate([x, np.repeat(x[:1], extra, axis=0)])


def run_sharding(mesh: Mesh) -> NamedSharding:
    """Arrays whose leading axis (the runs) is split over the mesh's run axis."""
    return NamedSharding(mesh, PartitionSpec(RUN_AXIS))


def place(x: np.ndarray, mesh: Mesh) -> jax.Array:
    """A global array sharded over the mesh's run axis (works with several processes: each
    process supplies the shards of its own devices from its copy of `x`)."""
    return jax.make_array_from_callback(x.shape, run_sharding(mesh), lambda index: x[index])


def gather(x: jax.Array) -> np.ndarray:
    """Host copy of a (possibly multi-process) global array, on every process."""
    if x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def split_keys(keys) -> tuple[np.ndarray, Any]:
    """Keys as raw uint32 data plus their PRNG implementation (None for legacy uint32 keys)."""
    if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        if keys.ndim != 1:
            raise ValueError(f"keys: expected a 1-D array of keys, got shape {keys.shape}")
        return np.asarray(jax.random.key_data(keys)), jax.random.key_impl(keys)
    data = np.asarray(keys)
    if data.ndim != 2 or data.dtype != np.uint32:
        raise ValueError(f"keys: expected jax.random.split(jax.random.key(seed), n) (or legacy "
                         f"uint32 keys of shape (n, 2)), got {data.dtype} {data.shape}")
    return data, None


CPU_GROUP_SIZES = range(16, 7, -1)
"""Group sizes `runs_per_group` tries on the CPU, largest first (see there)."""


def runs_per_group(num_runs: int, backend: Optional[str] = None) -> int:
    """How many of a device's `num_runs` runs are vmapped together (`vmap_in_groups`).

    CPU: the largest divisor of `num_runs` from 16 down to 8 (all of them if there is none or
    `num_runs` <= 16). Vmapping more runs than that together makes every op wider but the working
    set (parameters, Adam moments, activations of all runs) outgrows the CPU's caches: on this
    project's 2-core machine PPO steps/s fell from 16 to 256 seeds when all were vmapped at once,
    and stayed flat when the 256 ran as 16 groups of 16 (README, "Throughput"). GPU/TPU: all runs
    together (wide batches are what they are for).
    """
    backend = jax.default_backend() if backend is None else backend
    if backend != "cpu" or num_runs <= max(CPU_GROUP_SIZES):
        return num_runs
    return next((g for g in CPU_GROUP_SIZES if num_runs % g == 0), num_runs)


def vmap_in_groups(fn, group: Optional[int] = None):
    """`vmap(fn)` over the leading axis of every argument, computed as `lax.map` over groups of
    `group` runs, each group vmapped (default `runs_per_group(n)`; n = the leading size, known at
    trace time). Each run's result is the one plain vmap gives, up to float rounding (XLA's
    kernels may round differently at another batch width; tested)."""

    def grouped(*args):
        n = jax.tree.leaves(args)[0].shape[0]
        size = runs_per_group(n) if group is None else group
        if size >= n:
            return jax.vmap(fn)(*args)
        if n % size:
            raise ValueError(f"vmap_in_groups: {n} runs do not split into groups of {size}")
        split = jax.tree.map(lambda x: x.reshape((n // size, size, *x.shape[1:])), args)
        out = jax.lax.map(lambda group_args: jax.vmap(fn)(*group_args), split)
        return jax.tree.map(lambda x: x.reshape((n, *x.shape[2:])), out)

    return grouped


def grouped_when_vmapped(fn):
    """`fn`, except that `jax.vmap` of it runs as `vmap_in_groups(fn)` (groups of
    `runs_per_group(n)`: 16 on the CPU, all on GPU/TPU). Called unbatched, it is `fn`.

    `make_train` returns its `train` wrapped in this (unless `group_vmap=False`, or by default
    with a callback), so the plain `jax.jit(jax.vmap(train))` gets the CPU's grouping without
    asking for it: 64 CartPole seeds ran 1.18x faster in groups of 16 than in one vmap
    (docs/throughput.md). Arguments (leaves) that the vmap does not batch, e.g. `hparams` with
    `in_axes=(0, None)`, are shared by every group unbatched, as one vmap would keep them. Each
    run's result is the one plain vmap gives, up to float rounding. Under a nested vmap only the
    axis whose rule runs first is grouped; the other is vmapped as usual. Called unbatched it
    still traces `fn` (inside `custom_vmap`): check concrete arguments before calling it.
    """

    @jax.custom_batching.custom_vmap
    def call(*args):
        return fn(*args)

    @call.def_vmap
    def in_groups(axis_size, in_batched, *args):
        leaves, treedef = jax.tree.flatten(list(args))
        batched = jax.tree.leaves(list(in_batched))

        def on_batched(*batched_leaves):  # the unbatched leaves stay as they are
            given = iter(batched_leaves)
            return fn(*jax.tree.unflatten(
                treedef, [next(given) if b else leaf for leaf, b in zip(leaves, batched)]))

        out = vmap_in_groups(on_batched)(*[leaf for leaf, b in zip(leaves, batched) if b])
        return out, jax.tree.map(lambda _: True, out)

    return call


def shard_runs(fn, mesh: Mesh):
    """`vmap(fn)` over the leading (run) axis of every argument, as a `shard_map` over `mesh`:
    each device runs its own block of runs, with no communication, in groups
    (`vmap_in_groups`)."""
    spec = PartitionSpec(RUN_AXIS)
    # check_vma=False: train's scans start from constant carries (zeros) that become
    # device-varying; there are no collectives, so the check has nothing to protect here.
    return jax.shard_map(vmap_in_groups(fn), mesh=mesh, in_specs=spec, out_specs=spec,
                         check_vma=False)


class PlacedRuns(NamedTuple):
    """A flat batch of runs, padded to a multiple of the device count and sharded over the mesh."""

    key_data: jax.Array  # (padded, *key_shape) raw uint32 key data
    hparams: HParams  # (padded,) float32 leaves
    impl: Any  # PRNG implementation of the keys (None: legacy uint32 keys)
    num_runs: int  # runs before padding
    mesh: Mesh


def place_runs(keys, hparams: HParams, *, mesh: Optional[Mesh] = None) -> PlacedRuns:
    """Validate, pad (repeating run 0) and shard `n` keys and `(n,)`-leaved `hparams` over `mesh`
    (default `run_mesh()`). Every process must pass the same values."""
    mesh = run_mesh() if mesh is None else mesh
    key_data, impl = split_keys(keys)
    n = key_data.shape[0]
    hparams = jax.tree.map(lambda x: np.asarray(x, np.float32), hparams)
    if any(np.shape(x) != (n,) for x in jax.tree.leaves(hparams)):
        raise ValueError(f"every hparams leaf must have shape ({n},) like the keys, got "
                         f"{jax.tree.map(np.shape, hparams)}")
    validate_hparams(hparams, where="HParams")
    size = padded_size(n, mesh.devices.size)
    key_data, hparams = jax.tree.map(lambda x: place(pad_runs(x, size), mesh), (key_data, hparams))
    return PlacedRuns(key_data, hparams, impl, n, mesh)


def gather_runs(out, num_runs: int):
    """Gather to host and drop the padding."""
    return jax.tree.map(lambda x: gather(x)[:num_runs], out)
