"""Checkpoints of the whole multi-run train state (orbax), and saved policies for evaluation.

A run directory holds `config.json` (the `PPOConfig`), the logs, and `checkpoints/update_N/`:
the `TrainState` of every run (settings x seeds, leading axis; PRNG keys as key data) saved by
orbax, plus `meta.json` (what was saved: config, hyperparameters, seeds, leaf shapes, versions).
Every read checks what it finds against what it expects and raises `CheckpointError` naming the
file, the field or the leaf that differs; nothing is written by a failed load.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
from typing import Any, NamedTuple, Optional

import jax
import numpy as np

from purejaxppo.config import ConfigError, PPOConfig

CHECKPOINTS = "checkpoints"
META = "meta.json"
_PREFIX = "update_"


class CheckpointError(ConfigError):
    """A checkpoint is missing, corrupt, or does not fit the training it is loaded into."""


def config_to_dict(config: PPOConfig) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(values: dict) -> PPOConfig:
    """A `PPOConfig` from `config_to_dict` output read back from JSON (lists -> tuples)."""
    names = {f.name for f in dataclasses.fields(PPOConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise CheckpointError(f"saved config has fields this purejaxppo does not know: {unknown}")
    return PPOConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _leaves(tree) -> tuple[list[str], list[Any]]:
    """Leaf names (tree paths, e.g. `.learner.params`) and leaves, in flattening order."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [jax.tree_util.keystr(path) for path, _ in flat], [leaf for _, leaf in flat]


def versions() -> dict:
    import flax

    from purejaxppo import __version__

    return {"purejaxppo": __version__, "jax": jax.__version__, "flax": flax.__version__}


def checkpoint_path(run_dir, update: int) -> pathlib.Path:
    return pathlib.Path(run_dir) / CHECKPOINTS / f"{_PREFIX}{update:09d}"


def list_checkpoints(run_dir) -> list[pathlib.Path]:
    """Complete checkpoints (with `meta.json`, written last), oldest first."""
    root = pathlib.Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(_PREFIX) and p.name[len(_PREFIX):]
             .isdigit() and (p / META).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX):]))


def latest_checkpoint(run_dir) -> pathlib.Path:
    if not pathlib.Path(run_dir).is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"{run_dir}: no complete checkpoint in {run_dir}/{CHECKPOINTS}")
    return found[-1]


def _checkpointer():
    """An orbax checkpointer that works alone: with several JAX processes, only process 0 saves
    (host arrays it has gathered) and each process loads by itself, so no cross-process barrier
    may be issued (it would never be met)."""
    import orbax.checkpoint as ocp

    me = jax.process_index()
    return ocp.StandardCheckpointer(multiprocessing_options=ocp.options.MultiprocessingOptions(
        primary_host=me, active_processes={me}))


def save_checkpoint(run_dir, state, meta: dict, *, keep: int = 3) -> pathlib.Path:
    """Save a host `state` (leaves `(num_runs, ...)`, keys as data) at `meta["update"]`, then
    delete all but the newest `keep` checkpoints. `meta.json` is written after the arrays, so a
    checkpoint without it (interrupted write) is never loaded."""
    path = checkpoint_path(run_dir, int(meta["update"]))
    if path.exists():
        shutil.rmtree(path)
    names, leaves = _leaves(state)
    arrays = {f"{i:04d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    checkpointer = _checkpointer()
    checkpointer.save(path.resolve() / "state", arrays)
    checkpointer.wait_until_finished()
    meta = {**meta, "leaves": [{"name": n, "shape": list(a.shape), "dtype": str(a.dtype)}
                               for n, a in zip(names, arrays.values())],
            "versions": versions()}
    tmp = path / (META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, path / META)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old)
    return path


# Keys every checkpoint's meta.json holds, with the smallest value each may take.
REQUIRED_META = {"update": 0, "num_runs": 1, "num_seeds": 1, "seed": None}


def read_meta(path) -> dict:
    """The `meta.json` of the checkpoint directory `path`. CheckpointError naming the file when it
    is missing, unreadable, not a JSON object, or when a key of `REQUIRED_META` is missing or not
    an integer in range (`update` >= 0, `num_runs` >= 1, `num_seeds` >= 1, `seed`), or when
    `grid` (settings) x `num_seeds` is not `num_runs`."""
    file = pathlib.Path(path) / META
    try:
        meta = json.loads(file.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{file}: missing (not a complete checkpoint)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{file}: corrupt or truncated ({err})") from None
    except OSError as err:
        raise CheckpointError(f"{file}: cannot be read ({err.strerror or err})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{file}: expected a JSON object, found {type(meta).__name__}")
    for key, least in REQUIRED_META.items():
        value = meta.get(key)
        if key not in meta or isinstance(value, bool) or not isinstance(value, int):
            found = "missing" if key not in meta else f"{value!r}"
            raise CheckpointError(f"{file}: {key!r} must be an integer, found {found}")
        if least is not None and value < least:
            raise CheckpointError(f"{file}: {key!r} must be >= {least}, found {value}")
    grid = meta.get("grid")
    if isinstance(grid, list) and len(grid) * meta["num_seeds"] != meta["num_runs"]:
        raise CheckpointError(f"{file}: 'num_runs' {meta['num_runs']} is not the {len(grid)} "
                              f"settings of 'grid' x {meta['num_seeds']} seeds")
    return meta


def check_arrays_present(path, meta: dict) -> None:
    """CheckpointError unless the checkpoint at `path` holds orbax's record of one array per leaf
    of `meta["leaves"]` (`state/_METADATA`; a write cut short leaves none). The array bytes
    themselves are read (and checked) by `load_checkpoint`."""
    file = pathlib.Path(path) / "state" / "_METADATA"
    try:
        saved = json.loads(file.read_text()).get("tree_metadata", {})
    except FileNotFoundError:
        raise CheckpointError(f"{file}: missing (the arrays were not written)") from None
    except (OSError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{file}: corrupt or truncated ({type(err).__name__})") from None
    leaves = meta.get("leaves")
    if not isinstance(leaves, list) or len(saved) != len(leaves):
        count = len(leaves) if isinstance(leaves, list) else "no"
        raise CheckpointError(f"{file}: holds {len(saved)} arrays, {META} lists {count} leaves")


def latest_intact_checkpoint(run_dir) -> tuple[pathlib.Path, list[tuple[pathlib.Path, str]]]:
    """`(path, skipped)`: the newest checkpoint in `run_dir` whose `meta.json` reads
    (`read_meta`) and whose arrays are present (`check_arrays_present`), and the newer ones passed
    over as `(path, reason)`, newest first. CheckpointError when no checkpoint is intact (naming
    why each was skipped)."""
    newest = latest_checkpoint(run_dir)  # CheckpointError: no run directory, no checkpoint
    skipped = []
    for path in reversed(list_checkpoints(newest.parent.parent)):
        try:
            check_arrays_present(path, read_meta(path))
        except CheckpointError as err:
            skipped.append((path, str(err)))
            continue
        return path, skipped
    reasons = "; ".join(reason for _, reason in skipped)
    raise CheckpointError(f"{run_dir}: no intact checkpoint ({reasons})")


def load_checkpoint(path, abstract_state, num_runs: int):
    """Read the state saved at `path` into the structure of `abstract_state` (one run's state,
    keys as data, e.g. `ChunkedRuns.abstract_state`) with a leading axis of `num_runs`.

    Every leaf's name, shape and dtype is checked against `meta.json` first; a difference raises
    `CheckpointError` naming the leaf, unreadable array data one naming the directory. Parameters
    and Adam moments saved raveled (purejaxppo on CPU before 2026-12-02) are split back into the
    network's pytree.
    """
    path = pathlib.Path(path)
    meta = read_meta(path)
    names, leaves = _leaves(abstract_state)
    expected = [{"name": n, "shape": [num_runs, *leaf.shape], "dtype": str(np.dtype(leaf.dtype))}
                for n, leaf in zip(names, leaves)]
    saved = meta.get("leaves", [])
    groups = _raveled_groups(expected, saved)  # checkpoints from before 2026-12-02
    if groups is None:
        groups = [[e] for e in expected]
        if [e["name"] for e in expected] != [s["name"] for s in saved]:
            _raise_if_raveled_elsewhere(path, expected, saved)
            missing = sorted({e["name"] for e in expected} - {s["name"] for s in saved})
            extra = sorted({s["name"] for s in saved} - {e["name"] for e in expected})
            raise CheckpointError(
                f"{path}: the saved train state has a different structure "
                f"(missing {missing or 'nothing'}, unexpected {extra or 'nothing'})")
        for e, s in zip(expected, saved):
            if e != s:
                raise CheckpointError(
                    f"{path}: leaf {e['name']} is saved as {s['dtype']}{tuple(s['shape'])}, "
                    f"expected {e['dtype']}{tuple(e['shape'])}")
    target = {f"{i:04d}": jax.ShapeDtypeStruct(tuple(s["shape"]), np.dtype(s["dtype"]))
              for i, s in enumerate(saved)}
    try:
        arrays = _checkpointer().restore(path.resolve() / "state", target)
    except Exception as err:  # orbax/tensorstore raise many kinds for damaged files
        raise CheckpointError(f"{path / 'state'}: cannot read the saved arrays "
                              f"({type(err).__name__}: {str(err)[:300]})") from None
    restored = [leaf for k, group in zip(sorted(arrays), groups)
                for leaf in _unravel(np.asarray(arrays[k]), group)]
    return jax.tree.unflatten(jax.tree.structure(abstract_state), restored)


def _run_size(leaf: dict) -> int:
    """Numbers per run in a leaf described as in `meta.json` (shape `[runs, ...]`)."""
    return int(np.prod(leaf["shape"][1:], dtype=np.int64))


def _raveled_groups(expected: list[dict], saved: list[dict]) -> Optional[list[list[dict]]]:
    """For a checkpoint whose parameters and Adam moments were saved raveled (purejaxppo's CPU
    "flat parameters" before 2026-12-02: `.learner.params` as one `(runs, P)` vector): per saved
    leaf, the expected leaves it holds, in order. None unless `saved` is exactly such a raveling
    of `expected` (then the plain checks name the difference)."""
    groups, i, raveled = [], 0, False
    for s in saved:
        if i < len(expected) and expected[i]["name"] == s["name"]:
            if expected[i] != s:
                return None
            groups.append([expected[i]])
            i += 1
            continue
        group = []
        while i < len(expected) and expected[i]["name"].startswith(s["name"] + "["):
            group.append(expected[i])
            i += 1
        size = sum(_run_size(e) for e in group)
        if (not group or any(e["dtype"] != s["dtype"] or e["shape"][0] != s["shape"][0]
                             for e in group) or s["shape"] != [s["shape"][0], size]):
            return None
        groups.append(group)
        raveled = True
    return groups if raveled and i == len(expected) else None


def _raise_if_raveled_elsewhere(path, expected: list[dict], saved: list[dict]) -> None:
    """A raveled checkpoint (see `_raveled_groups`) of a network of other sizes: say so briefly."""
    for s in saved:
        inside = [e for e in expected if e["name"].startswith(s["name"] + "[")]
        if inside:
            size = sum(_run_size(e) for e in inside)
            raise CheckpointError(
                f"{path}: the saved train state holds {s['name']} as one raveled vector of "
                f"{s['shape'][-1]} numbers per run (purejaxppo before 2026-12-02); this config's "
                f"{s['name']} has {size} (over {len(inside)} arrays): a different network")


def _unravel(array: np.ndarray, group: list[dict]) -> list[np.ndarray]:
    """Split a saved `(runs, P)` vector into the `group`'s leaves (`[array]` if it is one leaf)."""
    if len(group) == 1 and group[0]["shape"] == list(array.shape):
        return [array]
    sizes = [_run_size(e) for e in group]
    parts = np.split(array, np.cumsum(sizes)[:-1], axis=1)
    return [part.reshape(e["shape"]) for part, e in zip(parts, group)]


# --------------------------------------------------------------------------------- policies


class SavedPolicy(NamedTuple):
    """What evaluation needs: the config (env, network), parameters and observation
    statistics (None without `normalize_obs`), leaves with a leading run axis or not."""

    config: PPOConfig
    params: Any
    obs_stats: Any = None


def save_policy(path, config: PPOConfig, params, obs_stats=None) -> None:
    """Write a policy (config as JSON, arrays as msgpack) to the file `path`."""
    from flax import serialization

    payload = {"config": json.dumps(config_to_dict(config)),
               "params": jax.tree.map(np.asarray, params),
               "obs_stats": None if obs_stats is None else jax.tree.map(np.asarray,
                                                                         obs_stats._asdict())}
    tmp = pathlib.Path(str(path) + ".tmp")
    tmp.write_bytes(serialization.msgpack_serialize(payload))
    os.replace(tmp, path)


def load_policy(path) -> SavedPolicy:
    """Read a `save_policy` file (CheckpointError naming the file if it is not one)."""
    from flax import serialization

    from purejaxppo.normalize import RunningStats

    try:
        payload = serialization.msgpack_restore(pathlib.Path(path).read_bytes())
        config = config_from_dict(json.loads(payload["config"]))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such policy file") from None
    except Exception as err:
        raise CheckpointError(f"{path}: not a purejaxppo policy file or corrupt "
                              f"({type(err).__name__}: {str(err)[:200]})") from None
    stats = payload.get("obs_stats")
    return SavedPolicy(config, payload["params"],
                       None if stats is None else RunningStats(**stats))


def policy_from_checkpoint(path, trainer, abstract_state, num_runs: int) -> SavedPolicy:
    """The policies of every run saved in the checkpoint at `path`."""
    state = load_checkpoint(path, abstract_state, num_runs)
    params = jax.vmap(trainer.params)(state)
    return SavedPolicy(trainer.config, params, state.obs_stats)


def save_json(path, data: Any) -> None:
    pathlib.Path(path).write_text(json.dumps(data, indent=1))
