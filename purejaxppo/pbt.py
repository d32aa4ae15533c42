"""Population-based training (Jaderberg et al. 2017, arXiv:1711.09846) over the run API.

A population of `PBT.population` members (one run each, each with its own PRNG key) trains in
compiled chunks of `PBT.ready` updates (`runs.ChunkedRuns`, as `fit` does). After every chunk
one jitted program over the population axis (`pbt_step`, sharded over the device mesh like the
runs; the state never passes through the host) does, with the paper's "truncation selection"
and "perturb" / "resample":

* exploit: members are ranked by fitness; each of the bottom `fraction` copies the train state
  of a member drawn uniformly from the top `fraction` (an index gather over the population axis);
* explore: those members' explored hyperparameters are, each independently, resampled from its
  initial distribution with probability `resample_probability`, else multiplied by a factor
  drawn from `factors` (×0.8 or ×1.2), and clipped into the field's `bounds`.

    pbt = PBT(population=8, ready=10, ranges={"learning_rate": (1e-4, 1e-2),
                                              "ent_coef": [0.0, 0.01]})
    run = purejaxppo.fit(config, pbt=pbt, run_dir="runs/pbt")
    run.pbt                                  # the lineage rows of run_dir/pbt.jsonl

What exploit copies (`copy_members`): the learner (network parameters, Adam's state, the KL
penalty's β, extra parameter sets), the observation statistics and the reward scaler's running
statistics: everything the policy and its update *are*; parameters without the normalisers they
were trained under would see inputs (and value targets) at another scale. It does *not* copy the
env runner (env states, current observations, episode counters, the PRNG key, a recurrent
policy's carry) nor the reward scaler's per-env discounted returns, which belong to the runner's
episodes: a member keeps its own environments and random stream, so a copier and its source do
not replay the same trajectories with the same random numbers (the population keeps its diversity
and its compute is not spent twice on one trajectory). The cost: episodes running at the copy
were begun by the member's old policy (their returns enter the next interval's fitness), and a
recurrent carry was computed by the old network, for the rest of those episodes.

Fitness (`member_fitness`): the mean return of the episodes each member finished in the last
interval (episode-weighted, `metrics.final_return` over the chunk), or with `eval_every` the
periodic deterministic evaluation of that chunk end (then `eval_every <= ready`, so that it runs
at every ready point). A member with no finished episode (NaN) ranks last.

The population's PRNG key (`PBT` draws, separate from the members' keys), the lineage and each
member's current hyperparameters are part of every checkpoint's meta, so `resume` continues
bitwise. The run directory's `pbt.jsonl` has one row per ready point: update, fitness, each
member's source, who was explored and every member's explored hyperparameters from then on.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import os
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.config import FIELD, ConfigError, HParams, PPOConfig, check_hparam_name
from purejaxppo.logs import json_safe
from purejaxppo.metrics import final_return
from purejaxppo.parallel import gather, pad_runs, place, run_sharding

LOG_NAME = "pbt.jsonl"
PBT_STREAM = 0x50425421  # fold_in constant: the population's key, apart from the members' keys
NOT_EXPLORABLE = {"kl_coef": "it is only the initial β; the KL penalty's β lives in the train "
                             "state, which exploit copies"}


class Space(NamedTuple):
    """One explored hyperparameter: where the population starts and where explore may go.

    low / high: the initial range, sampled log-uniformly (`log=True`) or uniformly; `values`
    (a tuple) instead gives a grid: the members start on its Cartesian product with the other
    grid fields (tiled to the population). Resampling draws from the same distribution (a grid:
    one of its values). bounds: `(lo, hi)` explore clips into; default the initial range."""

    low: float
    high: float
    log: bool = True
    values: tuple = ()
    bounds: Optional[tuple] = None

    @property
    def limits(self) -> tuple[float, float]:
        """`(lo, hi)` explore stays in."""
        return tuple(self.bounds) if self.bounds is not None else (self.low, self.high)


def as_space(name: str, spec) -> Space:
    """A `Space` from a `Space`, a `(low, high)` pair (log-uniform) or a list of values (grid)."""
    if isinstance(spec, Space):
        return spec
    if isinstance(spec, list):
        values = tuple(float(v) for v in spec)
        if not values:
            raise ConfigError(f"PBT.ranges.{name}: an empty grid")
        return Space(min(values), max(values), log=min(values) > 0, values=values)
    if isinstance(spec, tuple) and len(spec) == 2:
        return Space(float(spec[0]), float(spec[1]))
    raise ConfigError(f"PBT.ranges.{name}: expected a Space, a (low, high) pair or a list of "
                      f"values, got {spec!r}")


@dataclasses.dataclass(frozen=True)
class PBT:
    """A population-based training run (hashable: a static argument of `pbt_step`).

    ranges: {hyperparameter: Space | (low, high) | [values]}, the explored `HParams` fields.
    population: members (one run each). ready: updates between exploit/explore steps (the
      chunk length). fraction: the bottom and top fractions (`int(fraction * population)` members
      each, >= 1). factors: explore's multipliers. resample_probability: per explored member and
      field, resample instead of multiplying. exploit: False keeps explore but copies nothing
      (an ablation: the bottom members perturb their own hyperparameters).
    """

    ranges: Any
    population: int = 8
    ready: int = 10
    fraction: float = 0.25
    factors: tuple = (0.8, 1.2)
    resample_probability: float = 0.25
    exploit: bool = True

    def __post_init__(self):
        pairs = self.ranges.items() if isinstance(self.ranges, dict) else self.ranges
        ranges = tuple((str(n), as_space(str(n), s)) for n, s in pairs)
        object.__setattr__(self, "ranges", ranges)
        object.__setattr__(self, "factors", tuple(float(f) for f in self.factors))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.ranges)

    @property
    def num_selected(self) -> int:
        """Members in the bottom (and in the top) fraction."""
        return int(self.fraction * self.population)

    def to_dict(self) -> dict:
        """JSON-ready (run.json and checkpoints)."""
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "ranges": {n: s._asdict() for n, s in self.ranges}}

    @classmethod
    def from_dict(cls, d: dict) -> "PBT":
        spaces = {n: Space(**{**s, "values": tuple(s["values"]),
                              "bounds": None if s["bounds"] is None else tuple(s["bounds"])})
                  for n, s in d["ranges"].items()}
        return cls(**{**d, "ranges": spaces, "factors": tuple(d["factors"])})


# ----------------------------------------------------------------------------- checks


def _fail(field: str, message: str):
    raise ConfigError(f"PBT.{field}: {message}")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_space(name: str, space: Space) -> None:
    """ConfigError naming the field unless `space` is an explorable range of `name` whose bounds
    contain the initial range and satisfy the field's `Check` rule (both ends: the rules are
    intervals)."""
    check_hparam_name(name, "PBT.ranges")
    if name in NOT_EXPLORABLE:
        _fail(f"ranges.{name}", f"cannot be explored: {NOT_EXPLORABLE[name]}")
    lo, hi = space.limits
    numbers = [space.low, space.high, lo, hi, *space.values]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
        _fail(f"ranges.{name}", f"every number must be finite, got {space}")
    if not lo <= space.low <= space.high <= hi:
        _fail(f"ranges.{name}", f"need bounds lo <= low <= high <= hi, got bounds ({lo}, {hi}), "
              f"initial ({space.low}, {space.high})")
    if space.log and lo <= 0:
        _fail(f"ranges.{name}", f"a log-scale range needs positive bounds, got ({lo}, {hi})")
    check = FIELD[name].check
    if not np.all(check.ok(np.asarray([lo, hi], np.float64))):
        _fail(f"ranges.{name}", f"bounds ({lo}, {hi}) leave the field's valid values: "
              f"{name} must be {check.describe()}")


def check_pbt(config: PPOConfig, pbt: PBT) -> None:
    """ConfigError naming the field for anything `PBT` could refuse, before compiling."""
    if not isinstance(pbt, PBT):
        raise ConfigError(f"pbt: expected purejaxppo.pbt.PBT, got {type(pbt).__name__}")
    if not _is_int(pbt.population) or pbt.population < 2:
        _fail("population", f"must be an integer >= 2, got {pbt.population!r}")
    if not _is_int(pbt.ready) or pbt.ready < 1:
        _fail("ready", f"must be an integer >= 1, got {pbt.ready!r}")
    if pbt.ready >= config.num_updates:
        _fail("ready", f"{pbt.ready} updates per interval, but the run has {config.num_updates}: "
              f"no exploit step would happen")
    if not 0 < pbt.fraction <= 0.5:
        _fail("fraction", f"must be in (0, 0.5], got {pbt.fraction!r}")
    if pbt.num_selected < 1:
        _fail("fraction", f"{pbt.fraction} of {pbt.population} members is none; need "
              f"fraction * population >= 1")
    if not pbt.factors or not all(math.isfinite(f) and f > 0 for f in pbt.factors):
        _fail("factors", f"must be positive finite numbers, got {pbt.factors!r}")
    if not 0 <= pbt.resample_probability <= 1:
        _fail("resample_probability", f"must be in [0, 1], got {pbt.resample_probability!r}")
    if not isinstance(pbt.exploit, bool):
        _fail("exploit", f"must be True or False, got {pbt.exploit!r}")
    if not pbt.ranges:
        _fail("ranges", "name at least one hyperparameter to explore")
    if len(set(pbt.names)) != len(pbt.names):
        _fail("ranges", f"a field is given twice: {pbt.names}")
    for name, space in pbt.ranges:
        check_space(name, space)
    grid = math.prod(len(s.values) for _, s in pbt.ranges if s.values)
    if pbt.population % grid:
        _fail("population", f"{pbt.population} members do not tile the grid's {grid} settings")


def run_options(config: PPOConfig, pbt: PBT, *, seed: int, grid, num_seeds: int,
                checkpoint_every, eval_every) -> tuple[HParams, int]:
    """`fit`'s options for a PBT run, checked: `(initial population (P,), chunk = ready)`.
    The population replaces `grid` and `num_seeds`; checkpoints come at every ready point."""
    check_pbt(config, pbt)
    if grid is not None:
        raise ConfigError("grid: a PBT run starts from PBT.ranges; give no grid")
    if num_seeds != 1:
        raise ConfigError(f"num_seeds: a PBT run has one key per member (PBT.population); "
                          f"got num_seeds={num_seeds}")
    check_chunk_options(pbt, checkpoint_every, eval_every)
    return initial_population(config, pbt, seed), pbt.ready


def check_chunk_options(pbt: PBT, checkpoint_every, eval_every) -> None:
    """ConfigError unless `checkpoint_every` (None or `ready`) and `eval_every` (None or
    <= `ready`: the evaluation is then the fitness at every ready point) fit a PBT run (`fit`
    and `resume`)."""
    if checkpoint_every is not None and checkpoint_every != pbt.ready:
        raise ConfigError(f"checkpoint_every: a PBT run checkpoints at every ready point "
                          f"(PBT.ready = {pbt.ready}), got {checkpoint_every}")
    if eval_every is not None and eval_every > pbt.ready:
        raise ConfigError(f"eval_every: with PBT the evaluation is the fitness and must run at "
                          f"every ready point: eval_every <= PBT.ready = {pbt.ready}, got "
                          f"{eval_every}")


# ----------------------------------------------------------------------------- sampling


def population_key(seed: int):
    """The population's PRNG key (PBT's draws), apart from the members' keys
    (`member_keys`: `split(key(seed), P)`)."""
    return jax.random.fold_in(jax.random.key(seed), PBT_STREAM)


def member_keys(seed: int, population: int):
    """One PRNG key per member (a sweep shares keys across settings; members do not)."""
    return jax.random.split(jax.random.key(seed), population)


def sample_space(key, space: Space, shape) -> jax.Array:
    """Draws from `space`'s initial distribution, float32 `shape`: one of its `values`, or
    (log-)uniform in `[low, high]` (clipped there against rounding)."""
    if space.values:
        return jnp.asarray(space.values, jnp.float32)[
            jax.random.randint(key, shape, 0, len(space.values))]
    low, high = (math.log(space.low), math.log(space.high)) if space.log else (space.low,
                                                                              space.high)
    x = jax.random.uniform(key, shape, jnp.float32, low, high)
    x = jnp.exp(x) if space.log else x
    return jnp.clip(x, jnp.float32(space.low), jnp.float32(space.high))


def initial_population(config: PPOConfig, pbt: PBT, seed: int) -> HParams:
    """The members' starting `HParams` (leaves `(P,)` float32): `config`'s values, the grid
    fields' Cartesian product (the last varying fastest) tiled to P, range fields drawn with
    `fold_in(fold_in(population_key(seed), 0), field index)`."""
    p = pbt.population
    values = {name: np.full((p,), getattr(config, name), np.float32)
              for name in dataclasses.asdict(config.hparams())}
    grid = [(n, s.values) for n, s in pbt.ranges if s.values]
    combos = list(itertools.product(*(v for _, v in grid)))
    for j, (name, _) in enumerate(grid):
        values[name] = np.asarray([combos[i % len(combos)][j] for i in range(p)], np.float32)
    key = jax.random.fold_in(population_key(seed), 0)
    for i, (name, space) in enumerate(pbt.ranges):
        if not space.values:
            values[name] = np.asarray(sample_space(jax.random.fold_in(key, i), space, (p,)))
    return HParams(**values)


# ----------------------------------------------------------------------------- the step


class Decision(NamedTuple):
    """One exploit/explore step, per member `(P,)`."""

    source: jax.Array  # int32: the member whose state it holds now (itself when not exploited)
    explored: jax.Array  # bool: its hyperparameters were perturbed or resampled


def choose_sources(fitness, key, pbt: PBT) -> Decision:
    """Truncation selection: rank `fitness (P,)` (NaN last; ties: lower index first); each of the
    bottom `num_selected` draws a source uniformly from the top `num_selected` (itself when
    `exploit` is off); the bottom ones are explored."""
    p, n = fitness.shape[0], pbt.num_selected
    score = jnp.where(jnp.isnan(fitness), -jnp.inf, fitness)
    order = jnp.argsort(-score, stable=True)  # best first
    top, bottom = order[:n], order[p - n:]
    picks = top[jax.random.randint(key, (n,), 0, n)] if pbt.exploit else bottom
    source = jnp.arange(p, dtype=jnp.int32).at[bottom].set(picks.astype(jnp.int32))
    return Decision(source, jnp.zeros((p,), bool).at[bottom].set(True))


def copy_members(state, index):
    """Exploit on a `train.TrainState`: member i takes member `index[i]`'s learner (parameters,
    Adam state, β, parameter sets), observation statistics and reward statistics; it keeps its
    env runner and its reward scaler's per-env returns (see the module docstring). Leaves have
    a leading member axis."""
    take = functools.partial(jax.tree.map, lambda x: x[index])
    scaler = state.reward_scaler
    return state._replace(
        learner=take(state.learner),
        obs_stats=None if state.obs_stats is None else take(state.obs_stats),
        reward_scaler=None if scaler is None else scaler._replace(stats=take(scaler.stats)))


def explore(values, key, space: Space, pbt: PBT, explored) -> jax.Array:
    """Explore one field `values (P,)` float32: where `explored`, resample from `space` with
    probability `resample_probability`, else multiply by a factor drawn from `pbt.factors`
    (float32 product), then clip into `space.limits`; elsewhere unchanged."""
    pick, draw, coin = jax.random.split(key, 3)
    shape = values.shape
    factors = jnp.asarray(pbt.factors, jnp.float32)
    perturbed = values * factors[jax.random.randint(pick, shape, 0, len(pbt.factors))]
    new = jnp.where(jax.random.uniform(coin, shape) < pbt.resample_probability,
                    sample_space(draw, space, shape), perturbed)
    lo, hi = space.limits
    return jnp.where(explored, jnp.clip(new, jnp.float32(lo), jnp.float32(hi)), values)


def exploit_explore(state, hparams: HParams, fitness, key, pbt: PBT):
    """One PBT step on leading-axis (member) arrays: `(state, hparams, Decision)`. `state` and
    `hparams` may carry padding beyond the `P = len(fitness)` members (left as they are)."""
    pick_key, explore_key = jax.random.split(key)
    p, padded = fitness.shape[0], jax.tree.leaves(hparams)[0].shape[0]
    decision = choose_sources(fitness, pick_key, pbt)
    index = jnp.concatenate([decision.source, jnp.arange(p, padded, dtype=jnp.int32)])
    explored = jnp.concatenate([decision.explored, jnp.zeros((padded - p,), bool)])
    state = copy_members(state, index)
    hparams = jax.tree.map(lambda x: x[index], hparams)
    changes = {name: explore(getattr(hparams, name), jax.random.fold_in(explore_key, i), space,
                             pbt, explored) for i, (name, space) in enumerate(pbt.ranges)}
    return state, hparams.replace(**changes), decision


@functools.partial(jax.jit, static_argnames=("pbt", "impl", "mesh"))
def pbt_step(state, hparams: HParams, fitness, key_data, *, pbt: PBT, impl: str, mesh):
    """`exploit_explore` as one program over the population axis, sharded over `mesh` like the
    runs (the gather crosses devices on device), with the population key as raw `key_data`:
    returns `(state, hparams, next key data, Decision)`."""
    key, step_key = jax.random.split(jax.random.wrap_key_data(key_data, impl=impl))
    state, hparams, decision = exploit_explore(state, hparams, fitness, step_key, pbt)
    state, hparams = jax.lax.with_sharding_constraint((state, hparams), run_sharding(mesh))
    return state, hparams, jax.random.key_data(key), decision


# ----------------------------------------------------------------------------- the host side


def member_fitness(metrics) -> np.ndarray:
    """`(P,)` mean return of the episodes each member finished in the chunk `metrics`
    (fields `(P, k)`; NaN: none finished)."""
    return final_return(metrics, window=np.asarray(metrics.episode_return).shape[-1])


def _replicated(x) -> np.ndarray:
    """Host copy of a replicated output (each process holds all of it)."""
    return np.asarray(x.addressable_shards[0].data)


class Population:
    """The host side of a PBT run over a `runs.ChunkedRuns` (`fit` wires it in): the
    population key, the lineage rows, and `step`, the hook `train_in_chunks` calls after each
    chunk (before the checkpoint, so a checkpoint holds the state after the step).

    evaluate: `done -> (P,) returns or None` (fit's periodic evaluation), then the fitness.
    run_dir: where `pbt.jsonl` is written (None: nowhere; only the writing process gets one).
    """

    def __init__(self, pbt: PBT, runs, *, seed: int, total: int, batch_size: int,
                 run_dir=None, evaluate=None):
        self.pbt, self.runs, self.total, self.batch_size = pbt, runs, total, batch_size
        self.run_dir, self.evaluate = run_dir, evaluate
        key = jax.random.fold_in(population_key(seed), 1)
        self.key_data = np.asarray(jax.random.key_data(key))
        self.impl = str(jax.random.key_impl(key))
        self.rows: list[dict] = []

    # -- state

    def hparams(self) -> HParams:
        """The members' current `HParams`, host `(P,)` leaves."""
        return gather_hparams(self.runs)

    def _row(self, done: int, fitness, decision: Optional[Decision]) -> dict:
        p = self.pbt.population
        hp = self.hparams()
        return {"update": done, "env_steps": done * self.batch_size,
                "fitness": None if fitness is None else json_safe(np.asarray(fitness, np.float64)),
                "source": list(range(p)) if decision is None else _replicated(
                    decision.source).tolist(),
                "explored": [False] * p if decision is None else _replicated(
                    decision.explored).tolist(),
                "hparams": {n: np.asarray(getattr(hp, n), np.float64).tolist()
                            for n in self.pbt.names}}

    def start(self) -> None:
        """A new run: the first row holds the initial population."""
        self.rows = [self._row(0, None, None)]
        self._write()

    def restore(self, meta: dict) -> None:
        """Continue from a checkpoint's meta (`meta()`): the key, the rows and each member's
        hyperparameters (placed on the mesh for the next chunk); `pbt.jsonl` is rewritten from
        them (rows after the checkpoint, from an interrupted chunk, are dropped)."""
        saved = meta["pbt"]
        self.key_data = np.asarray(saved["key"], np.uint32)
        self.rows = list(saved["rows"])
        hp = dataclasses.asdict(self.hparams())
        for name, values in self.rows[-1]["hparams"].items():
            hp[name] = np.asarray(values, np.float32)
        set_hparams(self.runs, HParams(**hp))
        self._write()

    def meta(self) -> dict:
        """What every checkpoint's meta records about the population."""
        return {"pbt": {"config": self.pbt.to_dict(), "key": self.key_data.tolist(),
                        "rows": self.rows}}

    def _write(self) -> None:
        if self.run_dir is None:
            return
        path = os.path.join(self.run_dir, LOG_NAME)
        with open(path + ".tmp", "w") as f:
            f.writelines(json.dumps(r, allow_nan=False) + "\n" for r in self.rows)
        os.replace(path + ".tmp", path)

    # -- the step

    def fitness(self, done: int, metrics) -> np.ndarray:
        """`(P,)` fitness at this chunk end: the evaluation's returns when `evaluate` is set, else
        `member_fitness(metrics)`."""
        if self.evaluate is None:
            return member_fitness(metrics)
        returns = self.evaluate(done)
        if jax.process_count() > 1:  # the evaluation runs on process 0
            from jax.experimental import multihost_utils

            mine = np.zeros(self.pbt.population) if returns is None else returns
            returns = multihost_utils.broadcast_one_to_all(np.asarray(mine, np.float64))
        return np.asarray(returns, np.float64)

    def step(self, done: int, metrics) -> None:
        """After a chunk ending at `done`: fitness, then (unless the run is over) exploit and
        explore on device; appends the row and rewrites `pbt.jsonl`."""
        fitness = self.fitness(done, metrics)
        decision = None
        if done < self.total:
            runs = self.runs
            state, hparams, key_data, decision = pbt_step(
                runs.state, runs.runs.hparams, jnp.asarray(fitness, jnp.float32),
                jnp.asarray(self.key_data), pbt=self.pbt, impl=self.impl, mesh=runs.runs.mesh)
            runs.state = state
            runs.runs = runs.runs._replace(hparams=hparams)
            self.key_data = _replicated(key_data)
        self.rows.append(self._row(done, fitness, decision))
        self._write()


def gather_hparams(runs) -> HParams:
    """A `ChunkedRuns`' current hyperparameters, host `(n,)` leaves (padding dropped)."""
    return jax.tree.map(lambda x: gather(x)[:runs.num_runs], runs.runs.hparams)


def set_hparams(runs, hparams: HParams) -> None:
    """Place host `(n,)` `hparams` as a `ChunkedRuns`' hyperparameters (padded as its runs)."""
    size = runs.runs.key_data.shape[0]
    placed = jax.tree.map(lambda x: place(pad_runs(np.asarray(x, np.float32), size),
                                          runs.runs.mesh), hparams)
    runs.runs = runs.runs._replace(hparams=placed)


def pbt_from_meta(meta: dict) -> Optional[PBT]:
    """The `PBT` a run directory's checkpoint meta records (None: not a PBT run)."""
    saved = meta.get("pbt")
    return None if saved is None else PBT.from_dict(saved["config"])


# ----------------------------------------------------------------------------- reading a run


def read_lineage(run_dir) -> list[dict]:
    """The rows of `run_dir/pbt.jsonl` (FileNotFoundError if the run is not a PBT run)."""
    with open(os.path.join(run_dir, LOG_NAME)) as f:
        return [json.loads(line) for line in f if line.strip()]


def is_pbt_run(run_dir) -> bool:
    return os.path.isfile(os.path.join(run_dir, LOG_NAME))


def schedules(rows: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each explored field's schedule: `(env_steps (R,), values (P, R))`, member i's value
    from each row's update on."""
    steps = np.asarray([r["env_steps"] for r in rows], np.float64)
    return {name: (steps, np.asarray([r["hparams"][name] for r in rows], np.float64).T)
            for name in rows[0]["hparams"]}


def copies(rows: list[dict]) -> list[tuple[int, int, int]]:
    """Every exploit as `(update, member, source)`, in order."""
    return [(r["update"], i, s) for r in rows for i, s in enumerate(r["source"]) if s != i]


def plot_pbt(run_dir, out_png=None, field: str = "episode_return"):
    """The PBT run's `field` per member beside each explored hyperparameter's schedule (one
    line per member, log scale for positive ranges), x = env steps per member; exploits marked
    on the schedules. Saved to `out_png` (default `run_dir/pbt.png`); returns its path."""
    from pathlib import Path

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from purejaxppo.logs import INDEX_COLUMNS, curve_over_runs, read_metrics, run_title

    data, rows = read_metrics(run_dir), read_lineage(run_dir)
    if field not in data or field in INDEX_COLUMNS:
        raise ValueError(f"field: {field!r} is not in the log")
    scheds = schedules(rows)
    fig = Figure(figsize=(5 * (1 + len(scheds)), 4.2), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 1 + len(scheds), squeeze=False)[0]
    values = np.asarray(data[field], np.float64)
    steps, mean, _ = curve_over_runs(data["env_steps"], values)
    colors = [f"C{i % 10}" for i in range(values.shape[0])]
    for i, row in enumerate(values):
        s, m, _ = curve_over_runs(data["env_steps"], row[None])
        axes[0].plot(s, m, linewidth=0.8, alpha=0.6, color=colors[i])
    axes[0].plot(steps, mean, color="black", linewidth=1.8, label="mean over members")
    axes[0].set(xlabel="env steps (per member)", ylabel=field.replace("_", " "),
                title=run_title(run_dir) + " (PBT)")
    axes[0].legend(loc="best")
    saved = _saved_config(run_dir)
    log_fields = set() if saved is None else {n for n, s in PBT.from_dict(saved).ranges if s.log}
    for ax, (name, (x, v)) in zip(axes[1:], scheds.items()):
        for i, member in enumerate(v):
            ax.step(x, member, where="post", color=colors[i], linewidth=1.0)
        for update, member, _ in copies(rows):
            j = [r["update"] for r in rows].index(update)
            ax.plot(x[j], v[member, j], "k.", markersize=3)
        if name in log_fields:
            ax.set_yscale("log")
        ax.set(xlabel="env steps (per member)", ylabel=name, title=f"{name} (dots: exploits)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out_png = Path(run_dir) / "pbt.png" if out_png is None else Path(out_png)
    fig.savefig(out_png)
    return out_png


def _saved_config(run_dir) -> Optional[dict]:
    """The PBT config recorded in `run_dir/run.json` (None if absent)."""
    path = os.path.join(run_dir, "run.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return (json.load(f).get("pbt") or {}).get("config")


# ----------------------------------------------------------------------------- the CLI's text


def parse_range(text: str) -> tuple[str, Space]:
    """`FIELD=LOW:HIGH` (log-uniform), `FIELD=LOW:HIGH:lin` (uniform) or `FIELD=V1,V2,...`
    (a grid): the CLI's `--pbt`. ConfigError names the text."""
    if "=" not in text:
        raise ConfigError(f"--pbt expects FIELD=LOW:HIGH[:lin] or FIELD=V1,V2,..., got {text!r}")
    name, raw = text.split("=", 1)
    name = name.strip().replace("-", "_")
    check_hparam_name(name, "--pbt")
    try:
        if ":" in raw:
            parts = raw.split(":")
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("lin", "log")):
                raise ValueError(raw)
            return name, Space(float(parts[0]), float(parts[1]),
                               log=len(parts) == 2 or parts[2] == "log")
        return name, as_space(name, [float(v) for v in raw.split(",") if v.strip()])
    except ValueError:
        raise ConfigError(f"--pbt {name}: cannot parse {raw!r} (LOW:HIGH[:lin] or "
                          f"V1,V2,...)") from None


def parse_pbt(ranges, bounds=(), **options) -> PBT:
    """A `PBT` from the CLI's `--pbt` texts, `--pbt-bounds FIELD=LO:HI` texts and options."""
    spaces = dict(parse_range(t) for t in ranges)
    for text in bounds:
        name, _, raw = text.partition("=")
        name = name.strip().replace("-", "_")
        if name not in spaces:
            raise ConfigError(f"--pbt-bounds {name}: not explored (give --pbt {name}=...)")
        try:
            lo, hi = (float(v) for v in raw.split(":"))
        except ValueError:
            raise ConfigError(f"--pbt-bounds {name}: expected LO:HI, got {raw!r}") from None
        spaces[name] = spaces[name]._replace(bounds=(lo, hi))
    return PBT(spaces, **{k: v for k, v in options.items() if v is not None})


def describe(rows: list[dict]) -> str:
    """A few lines for the CLI: exploit steps, copies, each member's final hyperparameters."""
    last = rows[-1]
    lines = [f"PBT: {len(rows) - 1} ready points, {len(copies(rows))} exploits; final "
             f"hyperparameters:"]
    for i in range(len(last["source"])):
        values = ", ".join(f"{n}={v[i]:.4g}" for n, v in last["hparams"].items())
        fit = last["fitness"][i] if last["fitness"] is not None else None
        lines.append(f"  member {i}: {values}; last fitness "
                     f"{'n/a' if fit is None else f'{fit:.2f}'}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- without fit


def run_population(trainer, pbt: PBT, *, seed: int = 0, mesh=None):
    """Train a PBT population of `trainer` (e.g. one made with a custom `env`, which `fit` does
    not take) to its `num_updates`, nothing written: `(Population, runs.ChunkOutcome)`; the
    final state is `population.runs.host_state()`, the lineage `population.rows`."""
    from purejaxppo.runs import ChunkedRuns, StopFlag, train_in_chunks

    config = trainer.config
    check_pbt(config, pbt)
    runs = ChunkedRuns(trainer, member_keys(seed, pbt.population),
                       initial_population(config, pbt, seed), mesh=mesh)
    runs.start()
    population = Population(pbt, runs, seed=seed, total=config.num_updates,
                            batch_size=config.batch_size)
    population.start()
    outcome = train_in_chunks(runs, num_updates=config.num_updates, chunk=pbt.ready,
                              stop=StopFlag(), before_save=population.step)
    return population, outcome
