"""Chunked, resumable training of many runs (sweep settings x seeds) over the device mesh.

The engine under `purejaxppo.fit`: `init` and then `run` k updates at a time, each call one compiled program
sharded over every device like `sweeps.sweep` (a `shard_map` of `vmap`). Between chunks the host
has the metrics (and, when it asks, the whole train state) of every run, so it can log,
checkpoint, check for NaN and stop on Ctrl-C. Chunks give bitwise the same state as one long run
on the same devices (`tests/test_checkpoint.py`).

States cross the host boundary with their PRNG keys as raw key data (`jax.random.key_data`):
that is what checkpoints store, and `key_impl` turns them back into typed keys.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
import time
from typing import Any, Callable, NamedTuple, Optional

import jax
import numpy as np
from jax.sharding import Mesh

from purejaxppo.checkpoint import save_checkpoint
from purejaxppo.config import HParams
from purejaxppo.fast_paths import compiler_options
from purejaxppo.parallel import (gather_runs, pad_runs, place, place_runs, run_sharding,
                                 shard_runs)
from purejaxppo.train import Trainer, TrainState, first_divergence


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def keys_to_data(tree):
    """Every typed PRNG key leaf of `tree` as its raw uint32 key data."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def keys_from_data(tree, key_mask, impl):
    """Inverse of `keys_to_data`: leaves where `key_mask` is True become typed keys of `impl`
    (None: legacy uint32 keys, left as they are)."""
    if impl is None:
        return tree
    return jax.tree.map(lambda x, k: jax.random.wrap_key_data(x, impl=impl) if k else x,
                        tree, key_mask)


@functools.partial(jax.jit, static_argnames=("fn", "mesh"))
def _per_run(*args, fn, mesh: Mesh):
    """`parallel.shard_runs(fn, mesh)` applied to `args`, jitted (`fn` and `mesh` static). Outputs
    carry no weak type (as arrays placed from the host do not)."""
    return jax.tree.map(lambda x: x.astype(x.dtype), shard_runs(fn, mesh)(*args))


class ChunkedRuns:
    """`n` runs of one `Trainer` (keys and `(n,)`-leaved `HParams`) advanced chunk by chunk.

    `state` is the sharded device state (padded to a multiple of the device count, keys as key
    data). `start()` initialises it, `restore(host_state)` places a saved one, `advance(k)` runs
    k updates and returns their `Metrics` as host arrays `(n, k)`, `host_state()` gathers it.
    """

    def __init__(self, trainer: Trainer, keys, hparams: HParams, *,
                 mesh: Optional[Mesh] = None):
        self.trainer = trainer
        self.runs = place_runs(keys, hparams, mesh=mesh)
        self.impl = self.runs.impl
        key = (jax.random.key(0, impl=self.impl) if self.impl is not None
               else jax.random.PRNGKey(0))
        abstract = jax.eval_shape(trainer.init, key)
        self.key_mask = jax.tree.map(_is_key, abstract)
        # One run's state with keys as data: what a checkpoint of one run holds.
        self.abstract_state = jax.eval_shape(lambda k: keys_to_data(trainer.init(k)), key)
        self.state: Any = None
        self._executables: dict[int, Any] = {}  # chunk length -> compiled program
        self._init_fn = self._make_init()

    @property
    def num_runs(self) -> int:
        return self.runs.num_runs

    @property
    def updates_done(self) -> int:
        """Updates done (the same for every run); read from a shard this process holds."""
        return int(np.asarray(self.state.update.addressable_shards[0].data).reshape(-1)[0])

    def _make_init(self):
        trainer, impl = self.trainer, self.impl

        def init(key_data, hp):
            key = key_data if impl is None else jax.random.wrap_key_data(key_data, impl=impl)
            return keys_to_data(trainer.init(key, hp))

        return init

    def _executable(self, num_updates: int):
        """The compiled chunk program of `num_updates` updates (compiled on first use)."""
        if num_updates not in self._executables:
            trainer, key_mask, impl = self.trainer, self.key_mask, self.impl

            def run(state, hp):
                state, metrics = trainer.run(keys_from_data(state, key_mask, impl), hp,
                                             num_updates)
                return keys_to_data(state), metrics

            # Lowered for the state as `restore` places it (sharded over the run axis, no weak
            # types), whatever `start` returned: a resumed run then asks for the very program
            # the first run compiled, and finds it in JAX's persistent cache where one is set.
            sharding = run_sharding(self.runs.mesh)
            state = jax.tree.map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), self.state)
            self._executables[num_updates] = _per_run.lower(
                state, self.runs.hparams, fn=run, mesh=self.runs.mesh).compile(
                    compiler_options())
        return self._executables[num_updates]

    def start(self) -> None:
        """A fresh state from the keys (`Trainer.init` on every run)."""
        self.state = _per_run(self.runs.key_data, self.runs.hparams, fn=self._init_fn,
                              mesh=self.runs.mesh)

    def compile(self, num_updates: int) -> None:
        """Compile the chunk program of `num_updates` now (after `start`/`restore`), e.g. to time
        the run without compilation."""
        self._executable(num_updates)

    def advance(self, num_updates: int):
        """Run `num_updates` updates on every run; returns their `Metrics`, host `(n, k)`.
        The program runs in a worker thread (`call_interruptibly`) so that signal handlers run
        while it computes (a second Ctrl-C stops at once)."""
        self.state, metrics = call_interruptibly(self._executable(num_updates), self.state,
                                                 self.runs.hparams)
        return gather_runs(metrics, self.num_runs)

    def host_state(self) -> TrainState:
        """The state of the `n` real runs as host numpy arrays (padding dropped, keys as data)."""
        return gather_runs(self.state, self.num_runs)

    def restore(self, host_state: TrainState) -> None:
        """Place a `host_state()` (e.g. from a checkpoint) on the mesh, padded as at the start."""
        size = self.runs.key_data.shape[0]
        self.state = jax.tree.map(lambda x: place(pad_runs(np.asarray(x), size), self.runs.mesh),
                                  host_state)


def call_interruptibly(fn, *args, longest: float = 0.02):
    """`fn(*args)`, computed to the end (`jax.block_until_ready`) in a daemon thread while this
    thread waits in short sleeps (from 0.5 ms, doubling, at most `longest` s). Python runs signal
    handlers only in the main thread and only between bytecodes, never while it blocks inside
    XLA (a program with host callbacks runs synchronously on the CPU): waiting here, a handler
    runs at once. If it raises (`KeyboardInterrupt`), the call is left to finish unseen."""
    box: dict = {}

    def work():
        try:
            box["out"] = jax.block_until_ready(fn(*args))
        except BaseException as err:  # noqa: BLE001  (re-raised in the caller's thread)
            box["err"] = err

    thread = threading.Thread(target=work, name="purejaxppo-chunk", daemon=True)
    thread.start()
    pause = 0.0005
    while thread.is_alive():
        time.sleep(pause)
        pause = min(2 * pause, longest)
    if "err" in box:
        raise box["err"]
    return box["out"]


# --------------------------------------------------------------------------- the host-side loop


class StopFlag:
    """Set by a signal handler, or by an `event` (e.g. a `threading.Event` another thread sets);
    the loop stops after the current chunk."""

    def __init__(self, event=None):
        self.signal: Optional[int] = None
        self.event = event

    def __bool__(self) -> bool:
        return self.signal is not None or (self.event is not None and self.event.is_set())


class stop_on_signals:
    """Context manager: the first SIGINT/SIGTERM sets `flag` (training finishes its chunk, saves
    and stops); a second one raises `KeyboardInterrupt` at once (`ChunkedRuns.advance` waits in
    Python, where handlers run). Handlers are installed only in the main thread (Python allows no
    other) and restored on exit; elsewhere (a worker thread) only `flag.event` stops the run."""

    def __init__(self, flag: StopFlag, signals=(signal.SIGINT, signal.SIGTERM)):
        self.flag = flag
        self.signals = signals
        self.previous = {}

    def _handle(self, signum, frame):
        self.flag.signal = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this chunk (checkpoint first, "
              f"if saving); send it again to stop at once", file=sys.stderr, flush=True)
        for sig in self.signals:  # a second signal: stop now
            signal.signal(sig, signal.default_int_handler)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signals: main thread only
            for sig in self.signals:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self.flag

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


class ChunkOutcome(NamedTuple):
    """How `train_in_chunks` ended."""

    metrics: Any  # Metrics of this call's updates, host (n, updates run here)
    stopped: bool  # a stop was requested (signal) before the end
    diverged: Optional[tuple[int, list[int]]]  # (first bad update, runs), None if all finite
    checkpoint: Optional[str]  # the last checkpoint written, if any


def nonfinite_runs(metrics, params) -> Optional[tuple[int, list[int]]]:
    """`(first bad update in the chunk, bad runs)`, or None when everything is finite.

    A run is bad from its first update with a non-finite loss or gradient norm; a run whose
    parameters are non-finite with finite metrics counts from the chunk's last update.
    `metrics` leaves `(n, k)`, `params` leaves `(n, ...)`.
    """
    bad_at = np.asarray(first_divergence(jax.tree.map(np.asarray, metrics)))
    n, k = np.asarray(metrics.policy_loss).shape
    flat = np.concatenate([np.asarray(x).reshape(n, -1) for x in jax.tree.leaves(params)], 1)
    bad_at = np.where((bad_at < 0) & ~np.all(np.isfinite(flat), axis=1), k - 1, bad_at)
    runs = [int(i) for i in np.flatnonzero(bad_at >= 0)]
    return (int(bad_at[runs].min()), runs) if runs else None


def train_in_chunks(runs: ChunkedRuns, *, num_updates: int, chunk: int, stop: StopFlag,
                    run_dir=None, meta: Optional[Callable[[int], dict]] = None, keep: int = 3,
                    logs=(), after_chunk: Optional[Callable[[int], None]] = None,
                    before_save: Optional[Callable[[int, Any], None]] = None) -> ChunkOutcome:
    """Advance `runs` to `num_updates` updates in chunks of `chunk` (the last one shorter when
    `chunk` does not divide what is left).

    After each chunk: the metrics go to every `logs` entry (`.append(metrics, first_update)`;
    the caller passes logs only to the process that writes); non-finite losses, gradient norms or
    parameters stop the loop *without* saving (the last checkpoint stays the last good one); with
    `run_dir`, the whole state is gathered and process 0 checkpoints it with `meta(updates_done)`
    (keeping `keep`), after `before_save(updates_done, metrics)` (e.g. a PBT step, which
    changes the state); `after_chunk(updates_done)` runs (a periodic evaluation, the progress bar);
    a set `stop` flag ends the loop after the checkpoint.
    """
    chunks, checkpoint, done = [], None, runs.updates_done
    while done < num_updates:
        k = min(chunk, num_updates - done)
        metrics = runs.advance(k)
        chunks.append(metrics)
        for log in logs:
            log.append(metrics, first_update=done)
        bad = nonfinite_runs(metrics, gather_runs(runs.state.learner.params, runs.num_runs))
        if bad is not None:
            return ChunkOutcome(_concat(chunks), False, (done + bad[0], bad[1]), checkpoint)
        done += k
        if before_save is not None:
            before_save(done, metrics)
        state = runs.host_state() if run_dir is not None else None  # collective across processes
        if state is not None and jax.process_index() == 0:
            info = {"update": done} if meta is None else {**meta(done), "update": done}
            checkpoint = str(save_checkpoint(run_dir, state, info, keep=keep))
        if after_chunk is not None:
            after_chunk(done)
        if stop and done < num_updates:
            return ChunkOutcome(_concat(chunks), True, None, checkpoint)
    return ChunkOutcome(_concat(chunks), False, None, checkpoint)


def _concat(chunks):
    if not chunks:
        return None
    return jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *chunks)
