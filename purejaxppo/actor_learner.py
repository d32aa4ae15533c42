"""Asynchronous actors and learner (IMPALA's architecture) on two devices, with host threads.

    actor thread (device A)                      learner thread (device B)
    ----------------------------------           -----------------------------------------
    params, stats, v = latest published          rollout, v = queue.get()
    rollout = collect(runner, params, stats)     learner = learn(learner, rollout)  # update u
    queue.put((rollout, v))   # blocks when      publish(learner.params, stats, u + 1)
                              # the queue is full     lag[u] = u - v

The actor acts with whatever parameters the learner published last, so rollout and update
overlap and the lag is real: `lag[u]` counts the learner updates between the parameters that
acted and the update that trains on them (0: on-policy). V-trace and APPO's objective
(`advantage_estimator="vtrace"`, `policy_objective="appo"`) correct for it exactly as they do
for the in-jit `policy_lag`; the update is the config's own (`appo.make_update_rule`: the
circular buffer and target network work here too, `policy_lag` must be 0 since the lag comes
from the threads).

Both halves are the synchronous trainer's own pure functions (`train.collect`, the rule's
`learn`), jitted and vmapped over runs (seeds x hyperparameter settings), so a run in this mode
differs from `purejaxppo.fit` only in which parameters acted. The lag depends on thread timing,
so results are not bitwise reproducible (everything else is: keys, shuffles, environments).

Stopping (`stop` event, or SIGINT/SIGTERM in the main thread): the actor stops collecting, the
learner trains on every rollout already collected (nothing is dropped), both threads are joined,
and with `run_dir` the learner's state is checkpointed; `resume=True` continues from it.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
import time
from typing import Any, Callable, NamedTuple, Optional

import jax
import numpy as np

from purejaxppo.appo import make_update_rule
from purejaxppo.checkpoint import (config_to_dict, latest_intact_checkpoint, load_checkpoint,
                                   save_checkpoint)
from purejaxppo.config import ConfigError, HParams, PPOConfig
from purejaxppo.fast_paths import restore_key
from purejaxppo.metrics import Metrics, final_return
from purejaxppo.networks import batch_policy
from purejaxppo.normalize import update_stats
from purejaxppo.runs import StopFlag, keys_from_data, keys_to_data, stop_on_signals
from purejaxppo.sweeps import flatten_sweep
from purejaxppo.train import TrainState, collect, make_metrics, make_trainer
from purejaxppo.update import Learner, learning_rate_at, make_optimizer, make_sampler

MODE = "actor_learner"  # recorded in each checkpoint's meta


class Collected(NamedTuple):
    """What the actor hands the learner for one update (leaves with a leading runs axis)."""

    rollout: Any  # train.Rollout without its runner
    update_key: jax.Array  # the key the update shuffles with (as the synchronous run derives it)


class ActorLearnerResult(NamedTuple):
    """The outcome of `run_actor_learner` (host numpy arrays, leading axis: runs)."""

    state: TrainState  # the learner's state after the last update (keys as data)
    metrics: Optional[Metrics]  # leaves (runs, updates trained in this call); None if none
    lag: np.ndarray  # (updates trained in this call,) learner updates between acting and training
    updates_done: int  # updates in the state (including those before a resume)
    rollouts_collected: int  # rollouts the actor collected in this call (all were trained on)
    stopped: bool  # a stop was requested before num_updates
    steps_per_second: float  # env steps of all runs / wall time, compilation excluded
    compile_s: float
    checkpoint: Optional[str]  # the checkpoint written at the end, if run_dir was given

    def summary(self, config: PPOConfig, window: int = 10) -> dict:
        """JSON-ready: final return per run (episodes of the last `window` updates; NaN when
        none trained), lag histogram (index: updates of lag), speed, how it ended."""
        runs = int(np.shape(self.state.update)[0])
        finals = (final_return(self.metrics, window) if self.metrics is not None
                  else np.full(runs, np.nan))
        return {"env": config.env_name, "mode": MODE, "final_return_mean": float(np.mean(finals)),
                "final_return_std": float(np.std(finals)),
                "final_return_per_run": finals.tolist(), "updates_done": self.updates_done,
                "stopped_early": self.stopped,
                "lag_histogram": np.bincount(self.lag).tolist() if self.lag.size else [],
                "steps_per_second": self.steps_per_second, "compile_s": self.compile_s,
                "checkpoint": self.checkpoint}


def check_devices(devices) -> tuple[Any, Any]:
    """`(actor_device, learner_device)`: two distinct devices from `devices` (default
    `jax.local_devices()`); ConfigError saying how to get a second CPU device when there is one."""
    devices = list(jax.local_devices() if devices is None else devices)
    if len(devices) < 2 or devices[0] == devices[1]:
        raise ConfigError(
            f"actor_learner: needs two devices (actors on one, the learner on the other), found "
            f"{len(devices)}; on a CPU set XLA_FLAGS=--xla_force_host_platform_device_count=2 "
            f"before jax is imported")
    return devices[0], devices[1]


def check_config(config: PPOConfig) -> None:
    """ConfigError for settings this mode cannot honour, naming the field."""
    if config.policy_lag:
        raise ConfigError(f"PPOConfig.policy_lag: the actor/learner mode's lag comes from its "
                          f"threads; set policy_lag=0 (got {config.policy_lag})")


def actor_step(runner, reward_scaler, params, obs_stats, update_idx, hp, *, config, spec,
               network, rule):
    """One run's rollout with `params` (`train.collect`); returns `(runner, reward_scaler,
    Collected)`, the runner's key advanced as the synchronous update advances it."""
    learner = Learner(params, None, None)
    state = TrainState(learner, runner, obs_stats, reward_scaler, update_idx)
    rollout = collect(state, hp, config=config, spec=spec, network=network, rule=rule)
    key, update_key = jax.random.split(rollout.runner.key)
    runner = rollout.runner._replace(key=restore_key(key, runner.key))
    return (runner, rollout.reward_scaler,
            Collected(rollout._replace(runner=None, reward_scaler=None), update_key))


def learner_step(learner, obs_stats, collected: Collected, update_idx, hp, *, config, network,
                 rule, optimizer, sampler):
    """One run's update on a collected rollout (the rule's `learn`), then the observation
    statistics; returns `(learner, obs_stats, Metrics row)`."""
    rollout = collected.rollout
    learning_rate = learning_rate_at(hp.learning_rate, update_idx, config.num_updates,
                                     config.anneal_lr)
    learner, info = rule.learn(learner, rollout.batch, rollout.sequences, collected.update_key,
                               update_idx, policy_fn=batch_policy(network, config.num_steps),
                               optimizer=optimizer, hp=hp, learning_rate=learning_rate,
                               config=config, sampler=sampler)
    obs_stats = None if obs_stats is None else update_stats(obs_stats, rollout.traj.obs)
    return learner, obs_stats, make_metrics(rollout.traj, rollout.done, info, rollout.returns,
                                            learning_rate)


class Programs(NamedTuple):
    """The compiled halves, vmapped over runs: `init(keys, hparams) -> state`,
    `act(runner, reward_scaler, params, obs_stats, update_idx, hparams)`,
    `learn(learner, obs_stats, collected, update_idx, hparams)`."""

    init: Any
    act: Any
    learn: Any


def make_programs(config: PPOConfig) -> tuple[Programs, Any]:
    """The jitted, run-vmapped actor and learner functions of `config`, and its `Trainer`."""
    trainer = make_trainer(config)
    rule = make_update_rule(config)
    act = functools.partial(actor_step, config=config, spec=trainer.spec,
                            network=trainer.network, rule=rule)
    learn = functools.partial(learner_step, config=config, network=trainer.network, rule=rule,
                              optimizer=make_optimizer(config), sampler=make_sampler(config))
    runs = (0, 0, 0, 0, None, 0)
    return Programs(jax.jit(jax.vmap(lambda k, hp: keys_to_data(trainer.init(k, hp)))),
                    jax.jit(jax.vmap(act, in_axes=runs)),
                    jax.jit(jax.vmap(learn, in_axes=(0, 0, 0, None, 0)))), trainer


class _Published:
    """The learner's latest parameters and observation statistics on the actor's device, and
    how many updates made them (replaced whole: one reference assignment, atomic)."""

    def __init__(self, params, obs_stats, version: int):
        self.value = (params, obs_stats, version)


def run_actor_learner(config: PPOConfig, *, num_seeds: int = 1, seed: int = 0,
                      grid: Optional[HParams] = None, num_updates: Optional[int] = None,
                      queue_size: int = 1, devices=None, stop: Optional[threading.Event] = None,
                      run_dir: Optional[str] = None, resume: bool = False, keep: int = 3,
                      on_update: Optional[Callable[[int, int], None]] = None
                      ) -> ActorLearnerResult:
    """Train `config` with actors and learner running at the same time (module docstring).

    Runs: `num_seeds` seeds (`jax.random.split(jax.random.key(seed), num_seeds)`) x the settings
    of `grid` (an `HParams` with `(n,)` leaves; default the config's own), one vmapped program
    per half. `num_updates` (default `config.num_updates`) counts updates in the state, so a
    resumed run continues to it. `queue_size` rollouts may wait for the learner (the actor blocks
    when the queue is full: at most `queue_size + 1` updates of lag). `stop`: an Event that ends
    the run cleanly (so do SIGINT/SIGTERM when called from the main thread). `run_dir`: where the
    learner's state is checkpointed at the end (and resumed from with `resume=True`).
    """
    check_config(config)
    actor_device, learner_device = check_devices(devices)
    if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
        raise ConfigError(f"queue_size: must be a positive integer, got {queue_size!r}")
    total = config.num_updates if num_updates is None else num_updates
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ConfigError(f"num_updates: must be a positive integer, got {num_updates!r}")
    if resume and run_dir is None:
        raise ConfigError("resume: needs run_dir (the directory the checkpoints are in)")
    programs, trainer = make_programs(config)
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    flat_keys, hparams, grid, _ = flatten_sweep(keys, config.hparams() if grid is None else grid)
    num_runs = int(np.shape(jax.tree.leaves(hparams)[0])[0])
    impl = jax.random.key_impl(flat_keys)
    key_mask = jax.tree.map(lambda x: jax.numpy.issubdtype(x.dtype, jax.dtypes.prng_key),
                            jax.eval_shape(trainer.init, flat_keys[0]))

    start = time.perf_counter()
    hp_l = jax.device_put(hparams, learner_device)
    if resume:
        path, _ = latest_intact_checkpoint(run_dir)
        abstract = jax.eval_shape(lambda k: keys_to_data(trainer.init(k)), flat_keys[0])
        host = load_checkpoint(path, abstract, num_runs)
    else:
        host = programs.init(jax.device_put(flat_keys, learner_device), hp_l)
    state = keys_from_data(jax.device_put(host, learner_device), key_mask, impl)
    done = int(np.asarray(state.update)[0])
    if done >= total:
        raise ConfigError(f"num_updates: the state already has {done} updates (>= {total})")
    hp_a = jax.device_put(hparams, actor_device)
    runner, scaler = jax.device_put((state.runner, state.reward_scaler), actor_device)
    learner, obs_stats = state.learner, state.obs_stats
    published = _Published(*jax.device_put((learner.params, obs_stats), actor_device), done)
    # Compile both halves before the clock starts (one rollout's worth of abstract arguments).
    act = programs.act.lower(runner, scaler, published.value[0], published.value[1], done,
                             hp_a).compile()
    on_learner = jax.sharding.SingleDeviceSharding(learner_device)
    collected_shape = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=on_learner),
        jax.eval_shape(programs.act, runner, scaler, published.value[0], published.value[1],
                       done, hp_a)[2])
    learn = programs.learn.lower(learner, obs_stats, collected_shape, done, hp_l).compile()
    compile_s = time.perf_counter() - start

    rollouts: queue.Queue = queue.Queue(maxsize=queue_size)
    actor_stop = threading.Event()
    failure: dict = {}
    actor_out: dict = {}

    def actor() -> None:
        nonlocal runner, scaler
        try:
            for u in range(done, total):
                params, stats, version = published.value
                runner, scaler, collected = act(runner, scaler, params, stats, u, hp_a)
                collected = jax.block_until_ready(collected)
                while True:  # put, but give up when told to stop and nobody takes it
                    try:
                        rollouts.put((collected, version), timeout=0.05)
                        actor_out["collected"] = actor_out.get("collected", 0) + 1
                        break
                    except queue.Full:
                        if "learner" in failure:
                            return
                if actor_stop.is_set():
                    return
        except BaseException as err:  # noqa: BLE001  (re-raised by the learner loop)
            failure["actor"] = err
        finally:
            actor_out["runner"], actor_out["scaler"] = runner, scaler

    lags, rows = [], []

    def learn_loop() -> None:
        nonlocal learner, obs_stats
        try:
            for u in range(done, total):
                while True:
                    try:
                        collected, version = rollouts.get(timeout=0.05)
                        break
                    except queue.Empty:
                        if "actor" in failure:
                            return
                        if not actor_thread.is_alive() and rollouts.empty():
                            return  # stopped: everything collected has been trained on
                collected = jax.device_put(collected, learner_device)
                learner, obs_stats, row = learn(learner, obs_stats, collected, u, hp_l)
                published.value = (*jax.device_put((learner.params, obs_stats), actor_device),
                                   u + 1)
                rows.append(row)
                lags.append(u - version)
                if on_update is not None:
                    on_update(u, u - version)
            jax.block_until_ready(learner)
        except BaseException as err:  # noqa: BLE001
            failure["learner"] = err

    actor_thread = threading.Thread(target=actor, name="purejaxppo-actor", daemon=True)
    learner_thread = threading.Thread(target=learn_loop, name="purejaxppo-learner", daemon=True)
    flag = StopFlag(stop)
    start = time.perf_counter()
    with stop_on_signals(flag):
        actor_thread.start()
        learner_thread.start()
        while learner_thread.is_alive():
            learner_thread.join(timeout=0.02)
            if flag:
                actor_stop.set()
    actor_stop.set()
    actor_thread.join()
    wall = time.perf_counter() - start
    for side in ("actor", "learner"):
        if side in failure:
            raise failure[side]

    trained = len(rows)
    if actor_out.get("collected", 0) != trained:  # cannot happen: the learner drains the queue
        raise RuntimeError(f"actor_learner: {actor_out.get('collected', 0)} rollouts collected "
                           f"but {trained} trained on")
    metrics = (jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs], axis=1), *rows)
               if rows else None)
    final = TrainState(learner, actor_out["runner"], obs_stats, actor_out["scaler"],
                       state.update + trained)
    host_state = jax.tree.map(np.asarray, keys_to_data(jax.device_put(final, learner_device)))
    checkpoint = None
    if run_dir is not None:
        os.makedirs(run_dir, exist_ok=True)
        meta = {"update": done + trained, "num_runs": num_runs, "num_seeds": num_seeds,
                "seed": seed, "config": config_to_dict(config), "mode": MODE,
                "key_impl": str(impl)}
        checkpoint = str(save_checkpoint(run_dir, host_state, meta, keep=keep))
    steps = trained * config.batch_size * num_runs
    return ActorLearnerResult(host_state, metrics, np.asarray(lags, np.int32), done + trained,
                              actor_out.get("collected", 0), done + trained < total, steps / max(wall, 1e-9), compile_s,
                              checkpoint)
