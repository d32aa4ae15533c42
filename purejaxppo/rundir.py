"""Run directories you can trust: one writer, nothing of a user's replaced, output paths and sizes
checked before anything is compiled, leftovers of a killed write cleaned.

What a training run does with its directory, in this order (all before compiling):

    lock = RunLock.acquire(run_dir, create=new)  # one writer: run_dir/.lock (pid, host, start)
    if new:
        prepare_new_run_dir(run_dir, overwrite)  # refuses a directory it would spoil
    else:
        clean_stale_temp(run_dir)                # leftovers of a killed checkpoint write
    check_fits(trainer, num_runs, num_devices)   # train state + rollout fit the device memory
    ...                                          # train, log, checkpoint
    lock.release()                               # or `with RunLock.acquire(...) as lock:`

A lock left by a process that was killed (`kill -9`, a crash of the machine) stays until broken:
`purejaxppo.rundir.break_lock(run_dir)`, or delete `run_dir/.lock`, once no process writes there.
"""

from __future__ import annotations

import datetime
import errno
import fnmatch
import json
import math
import os
import pathlib
import secrets
import shutil
import socket
from typing import Optional

import jax
import numpy as np

from purejaxppo.config import ConfigError
from purejaxppo.checkpoint import CHECKPOINTS, META, list_checkpoints

LOCK = ".lock"
# What purejaxppo writes in a run directory (names, or prefixes ending in "*"); anything else there
# is someone else's and is never removed.
OWN_FILES = ("checkpoints", "config.json", "run.json", "metrics.jsonl", "metrics.csv",
             "eval.jsonl", "events.*", "learning_curve*.png", "metrics.jsonl.tmp",
             "metrics.csv.tmp", "pbt.jsonl", "pbt.jsonl.tmp", "pbt.png", LOCK)
# Orbax writes a checkpoint's arrays into `<name>.orbax-checkpoint-tmp-<n>`, renamed when done.
ORBAX_TMP = ".orbax-checkpoint-tmp"


class RunDirError(ConfigError):
    """A run directory cannot be used as asked: locked by another writer, holding someone else's
    files or another run, or not writable. The message says what to do."""


# ------------------------------------------------------------------------------------- the lock


def _lock_owner(run_dir) -> Optional[dict]:
    """What `run_dir/.lock` holds (`{}` if it cannot be read: being written or damaged), None if
    there is no lock."""
    path = pathlib.Path(run_dir) / LOCK
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        owner = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return owner if isinstance(owner, dict) else {}


def pid_alive(pid) -> bool:
    """Whether a process `pid` exists on this machine (one of another user counts as alive)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_message(run_dir, owner: dict) -> str:
    """Why `run_dir` is locked, by whom, and how to break a stale lock."""
    pid, host = owner.get("pid"), owner.get("host")
    who = (f"process {pid} on {host}, started {owner.get('started', '?')}" if pid is not None
           else "an unknown process (the lock file is empty or unreadable)")
    stale = ""
    if host == socket.gethostname() and pid is not None and not pid_alive(pid):
        stale = f" Process {pid} is not running on this host: the lock is stale (a killed run)."
    return (f"{run_dir}: the run directory is locked by {who}; one writer per run directory.{stale}"
            f" If no process writes there any more, break the lock with "
            f"purejaxppo.rundir.break_lock({str(run_dir)!r}) or delete "
            f"{pathlib.Path(run_dir) / LOCK}")


class RunLock:
    """The one writer of a run directory: `run_dir/.lock`, created atomically (O_CREAT|O_EXCL),
    holding `{"pid", "host", "started", "token"}`. Use as a context manager, or `release()`."""

    def __init__(self, run_dir, owner: dict):
        self.run_dir = pathlib.Path(run_dir)
        self.path = self.run_dir / LOCK
        self.owner = owner
        self.held = True

    @classmethod
    def acquire(cls, run_dir, create: bool = False) -> "RunLock":
        """Lock `run_dir` (with `create`, made with its parents if missing: a new run). RunDirError
        naming the owner's pid and host when it is locked already, when it does not exist (without
        `create`), or when it cannot be written."""
        run_dir = pathlib.Path(run_dir)
        if create:
            _make_dir(run_dir)
        elif not run_dir.is_dir():
            what = "is not a directory" if run_dir.exists() else "no such run directory"
            raise RunDirError(f"{run_dir}: {what}")
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                     timespec="seconds"),
                 "token": secrets.token_hex(8)}
        try:
            fd = os.open(run_dir / LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise RunDirError(_lock_message(run_dir, _lock_owner(run_dir) or {})) from None
        except OSError as err:
            raise RunDirError(f"{run_dir}: cannot write the run directory "
                              f"({err.strerror or err})") from None
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(owner))
            f.flush()
            os.fsync(f.fileno())
        return cls(run_dir, owner)

    def release(self) -> None:
        """Remove the lock if it is still this one (not broken and taken by another writer)."""
        if not self.held:
            return
        self.held = False
        current = _lock_owner(self.run_dir)
        if current is not None and current.get("token") == self.owner["token"]:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def break_lock(run_dir) -> Optional[dict]:
    """Remove `run_dir/.lock` (a stale lock of a killed run); returns what it held (`{}` if
    unreadable), None when there was no lock. Only when no process writes to `run_dir`."""
    owner = _lock_owner(run_dir)
    if owner is None:
        return None
    (pathlib.Path(run_dir) / LOCK).unlink(missing_ok=True)
    return owner


def holds_lock(run_dir) -> bool:
    """Whether this process holds `run_dir`'s lock."""
    owner = _lock_owner(run_dir)
    return bool(owner) and owner.get("pid") == os.getpid() \
        and owner.get("host") == socket.gethostname()


# ------------------------------------------------------------------------------ paths and dirs


def _make_dir(run_dir: pathlib.Path) -> None:
    """Create `run_dir` (and parents); RunDirError if it is a file or cannot be created."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: exists and is not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"{run_dir}: cannot create the run directory "
                          f"({err.strerror or err})") from None


def _probe_writable(directory: pathlib.Path) -> None:
    """RunDirError unless a file can be created in `directory` (created and removed again)."""
    probe = directory / f".purejaxppo-write-test-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"{directory}: the run directory is not writable "
                          f"({err.strerror or err})") from None


def is_own_file(name: str) -> bool:
    """Whether `name` (an entry of a run directory) is something purejaxppo writes there."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in OWN_FILES)


def _listing(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(sorted(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def prepare_new_run_dir(run_dir, overwrite: bool = False) -> pathlib.Path:
    """Make `run_dir` ready for a new run, before compiling; returns it as a Path.

    Creates it (with parents) when missing. RunDirError when it is a file, is locked by another
    writer, holds checkpoints of another run (continue that with resume), holds anything at all
    without `overwrite`, or cannot be written. With `overwrite=True` the files of an earlier
    purejaxppo run (`OWN_FILES`: checkpoints, config.json, run.json, logs, TensorBoard events,
    plots) are removed; a directory holding anything else is still refused: nothing a user put
    there is ever replaced or removed.
    """
    run_dir = pathlib.Path(run_dir)
    _make_dir(run_dir)
    owner = _lock_owner(run_dir)
    if owner is not None and not holds_lock(run_dir):
        raise RunDirError(_lock_message(run_dir, owner))
    entries = [p.name for p in run_dir.iterdir() if p.name != LOCK]
    if entries:
        foreign = [n for n in entries if not is_own_file(n)]
        if foreign:
            raise RunDirError(
                f"{run_dir}: not empty and not a purejaxppo run directory (it holds "
                f"{_listing(foreign)}); a new run writes only into an empty directory or one "
                f"of its own earlier runs. Choose a new directory")
        if not overwrite:
            what = ("checkpoints of another run; continue it with resume (purejaxppo train "
                    f"--resume {run_dir}), or" if list_checkpoints(run_dir) else
                    f"the files of an earlier run ({_listing(entries)}):")
            raise RunDirError(f"{run_dir}: already holds {what} choose a new directory, or "
                              f"pass overwrite=True (--overwrite) to replace that run")
        for name in entries:
            path = run_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    _probe_writable(run_dir)
    return run_dir


def check_output_path(option: str, path) -> None:
    """ConfigError naming `option` unless the file `path` can be written: its directory exists,
    `path` is not a directory, and a file can be created there (or opened for appending, when it
    exists; its content is left alone). None is accepted (no output asked for)."""
    if path is None:
        return
    if str(path) == "":
        raise ConfigError(f"{option}: expected a file path, got an empty string")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise ConfigError(f"{option} {path}: the directory {parent} {what}")
    if os.path.isdir(path):
        raise ConfigError(f"{option} {path}: is a directory, expected a file path")
    try:
        if os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        else:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            os.unlink(path)
    except OSError as err:
        raise ConfigError(f"{option} {path}: cannot be written "
                          f"({err.strerror or errno.errorcode.get(err.errno, err)})") from None


def clean_stale_temp(run_dir) -> list[str]:
    """Remove what a killed write left in `run_dir` (the caller must hold its lock: RunDirError
    otherwise): orbax's temporary `*.orbax-checkpoint-tmp*` directories, checkpoint directories
    without `meta.json` (written last, so never complete), `meta.json.tmp` and the logs'
    `metrics.*.tmp`. Returns the removed paths."""
    run_dir = pathlib.Path(run_dir)
    if not holds_lock(run_dir):
        raise RunDirError(f"{run_dir}: clean_stale_temp needs the run directory's lock "
                          f"(RunLock.acquire) so that no other writer's files are removed")
    removed = []

    def remove(path: pathlib.Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(str(path))

    for name in ("metrics.jsonl.tmp", "metrics.csv.tmp"):
        if (run_dir / name).exists():
            remove(run_dir / name)
    root = run_dir / CHECKPOINTS
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            if ORBAX_TMP in entry.name or (entry.is_dir() and not (entry / META).exists()):
                remove(entry)
                continue
            if entry.is_dir():
                for inner in sorted(entry.iterdir()):
                    if ORBAX_TMP in inner.name or inner.name == META + ".tmp":
                        remove(inner)
    return removed


# ------------------------------------------------------------------------------- the size check


def tree_bytes(tree) -> int:
    """Bytes of the arrays (or `ShapeDtypeStruct`s) of `tree`; a typed PRNG key counts as its
    key data."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.eval_shape(jax.random.key_data, leaf)
        total += math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize
    return total


def _leaf_outputs(intermediates) -> int:
    """Numbers output by the innermost modules of flax `intermediates` (one sample)."""
    if not isinstance(intermediates, dict):
        return 0
    children = {k: v for k, v in intermediates.items() if k != "__call__"}
    if not children:
        return sum(math.prod(x.shape) for x in jax.tree.leaves(intermediates.get("__call__")))
    return sum(_leaf_outputs(v) for v in children.values())


def activations_per_sample(trainer, params) -> int:
    """Numbers the network computes for one observation (outputs of its innermost layers: conv
    maps, dense layers, GRU steps, heads), from an abstract forward pass (nothing computed)."""
    network, spec = trainer.network, trainer.spec
    dtype = np.int32 if spec.obs_categories else np.float32
    if network.gru_size:
        from purejaxppo.networks import initial_carry

        def forward(p):
            return network.apply(p, np.zeros((1, 1, *spec.obs_shape), dtype),
                                 initial_carry(network, 1), np.zeros((1, 1), bool),
                                 capture_intermediates=True, mutable=["intermediates"])[1]
    else:
        def forward(p):
            return network.apply(p, np.zeros((1, *spec.obs_shape), dtype),
                                 capture_intermediates=True, mutable=["intermediates"])[1]
    return _leaf_outputs(jax.eval_shape(forward, params)["intermediates"])


def estimate_run_bytes(trainer, num_runs: int, num_devices: int) -> dict:
    """A rough estimate of the memory a training run needs, from shapes only (`jax.eval_shape`:
    nothing is allocated or compiled). Per run, in bytes:

    train_state: `Trainer.init`'s state (parameters, Adam moments, env states, statistics);
    rollout: one update's trajectory, `num_steps x num_envs` x (observation twice, the next
      state's observation and, with `normalize_obs`, the normalised one; action; distribution
      parameters; GRU state; ~10 float32/bool scalars), plus the shuffle's indices;
    update: the larger of the bootstrap forward pass over the whole batch and a minibatch's
      forward + backward (2 x activations: kept, and their gradients), plus gradients and
      optimizer temporaries (3 x params).

    Returns those, `per_run` (their sum), `runs_per_device` (`ceil(num_runs / num_devices)`) and
    `per_device` (`per_run x runs_per_device`)."""
    config, spec = trainer.config, trainer.spec
    state = jax.eval_shape(trainer.init, jax.random.key(0))
    params = trainer.params(state)
    obs = math.prod(spec.obs_shape) * 4
    space = spec.action_space
    action = 4 * (1 if space.discrete else space.dim)
    dist = 4 * (space.num_actions if space.discrete else 2 * space.dim)
    carry = 4 * 2 * config.gru_size
    per_step = obs * (3 if config.normalize_obs else 2) + action + dist + carry + 10 * 4
    rollout = config.batch_size * per_step + config.update_epochs * config.batch_size * 4
    per_sample = activations_per_sample(trainer, params) * 4
    activations = max(config.batch_size * per_sample, 2 * config.minibatch_size * per_sample)
    update = activations + 3 * tree_bytes(params)
    train_state = tree_bytes(state)
    per_run = train_state + rollout + update
    runs_per_device = -(-int(num_runs) // max(1, int(num_devices)))
    return {"train_state": train_state, "rollout": rollout, "update": update,
            "per_run": per_run, "runs_per_device": runs_per_device,
            "per_device": per_run * runs_per_device}


def available_bytes(device=None) -> tuple[Optional[int], str]:
    """`(bytes, where)`: memory one device of the run may use, None when unknown. An accelerator:
    its `memory_stats()["bytes_limit"]` less what is in use; the CPU: the host's `MemAvailable`
    (/proc/meminfo) shared by the local CPU devices."""
    device = device or jax.local_devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" not in stats:
            return None, f"{device.device_kind}: memory unknown"
        free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        return free, f"{device.device_kind}'s free memory (memory_stats bytes_limit - in use)"
    try:
        lines = pathlib.Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None, "host memory unknown"
    for line in lines:
        if line.startswith("MemAvailable:"):
            total = int(line.split()[1]) * 1024
            count = jax.local_device_count("cpu")
            share = f" / {count} CPU devices" if count > 1 else ""
            return total // count, f"host MemAvailable (/proc/meminfo){share}"
    return None, "host memory unknown"


def _gb(n: int) -> str:
    return f"{n / 1e9:,.2f} GB" if n < 1e12 else f"{n / 1e12:,.1f} TB"


def check_fits(trainer, num_runs: int, num_devices: int, available: Optional[int] = None) -> dict:
    """ConfigError, before compiling, when `estimate_run_bytes` per device exceeds `available`
    (bytes per device; default `available_bytes()`, skipped when unknown). The message gives the
    numbers and the fields that drive them. Returns the estimate."""
    estimate = estimate_run_bytes(trainer, num_runs, num_devices)
    where = "given"
    if available is None:
        available, where = available_bytes()
        if available is None:
            return estimate
    if estimate["per_device"] <= available:
        return estimate
    config = trainer.config
    parts = {"train state": estimate["train_state"], "rollout": estimate["rollout"],
             "update": estimate["update"]}
    hint = {"train state": f"hidden_sizes={config.hidden_sizes}, num_envs={config.num_envs}",
            "rollout": f"num_envs={config.num_envs} x num_steps={config.num_steps}",
            "update": (f"hidden_sizes={config.hidden_sizes}, minibatch of "
                       f"{config.minibatch_size:,} samples (num_envs x num_steps / "
                       f"num_minibatches={config.num_minibatches})")}
    largest = max(parts, key=parts.get)
    raise ConfigError(
        f"PPOConfig: the run needs about {_gb(estimate['per_device'])} per device "
        f"({estimate['runs_per_device']} run(s) x {_gb(estimate['per_run'])}: "
        + ", ".join(f"{k} {_gb(v)}" for k, v in parts.items())
        + f"), more than the {_gb(available)} available ({where}). The {largest} is the "
        f"largest part ({hint[largest]}): make it smaller, or spread the runs over more devices")
