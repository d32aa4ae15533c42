"""The table of environments `purejaxppo envs` prints: every gymnax environment with its action
space, observation, the network `network="auto"` picks and its presets (`env_rows`,
`format_env_table`)."""

from __future__ import annotations

import importlib

from purejaxppo.config import PPOConfig
from purejaxppo.envs import NEEDS_NETWORK, available_envs, make_env
from purejaxppo.networks import network_kind

# The module whose `PRESETS` fill the `preset` column of `purejaxppo envs` (see `env_presets`).
PRESETS_MODULE = "purejaxppo.presets"


def _preset_env(name: str, preset) -> str:
    """The environment of one `PRESETS` entry: its `env_name` (attribute or dict key), its `env`
    (an RLlib-style dict), else the entry's name itself."""
    env = getattr(preset, "env_name", None)
    if env is None and isinstance(preset, dict):
        env = preset.get("env_name", preset.get("env"))
    return env if isinstance(env, str) else name


def env_presets(env_name: str) -> str:
    """The `preset` column of `purejaxppo envs` for `env_name`: the comma-separated names of the
    presets for it in `PRESETS_MODULE` (its `presets_for(env_name)` in that order, the env's own
    preset first, if it has one; else the sorted keys of its `PRESETS` dict whose entry is for
    `env_name`, see `_preset_env`), or "-" when there are none or the module does not exist."""
    try:
        module = importlib.import_module(PRESETS_MODULE)
    except ModuleNotFoundError as err:
        if err.name == PRESETS_MODULE:
            return "-"
        raise
    if hasattr(module, "presets_for"):
        names = list(module.presets_for(env_name))
    else:
        names = sorted(name for name, preset in getattr(module, "PRESETS", {}).items()
                       if _preset_env(name, preset) == env_name)
    return ", ".join(names) or "-"


def describe_action(space) -> str:
    """Discrete(n), or Box(shape, low, high) (per-dimension bounds as lists when they differ)."""
    if space.discrete:
        return f"Discrete({space.num_actions})"
    same = len(set(space.low)) == 1 and len(set(space.high)) == 1
    low, high = ((f"{space.low[0]:g}", f"{space.high[0]:g}") if same
                 else (str(list(space.low)), str(list(space.high))))
    return f"Box({space.shape}, {low}, {high})"


def env_rows() -> list[dict]:
    """One dict per gymnax environment (`gymnax.registered_envs`): action space, observation
    shape (or Discrete(n) observations), the network `network="auto"` picks, the presets, and
    `error` (None, or why the environment could not be made: MNISTBandit-bsuite is not made at
    all, since making it downloads a data set)."""
    rows = []
    for name in available_envs():
        row = {"env": name, "action_space": None, "num_actions": None, "action_shape": None,
               "action_low": None, "action_high": None, "obs_shape": None,
               "obs_categories": None, "observation": None, "network": None,
               "preset": env_presets(name), "error": None}
        if name in NEEDS_NETWORK:
            row["error"] = "not made: making it downloads a data set (needs the network)"
            rows.append(row)
            continue
        try:
            spec = make_env(name)
            network = network_kind(PPOConfig(env_name=name), spec)
        except Exception as err:  # an environment purejaxppo cannot take: say why, go on
            row["error"] = f"{type(err).__name__}: {err}"
            rows.append(row)
            continue
        space = spec.action_space
        row.update(action_space=describe_action(space), num_actions=space.num_actions or None,
                   action_shape=list(space.shape), action_low=list(space.low) or None,
                   action_high=list(space.high) or None, obs_shape=list(spec.obs_shape),
                   obs_categories=spec.obs_categories or None, network=network,
                   observation=(f"Discrete({spec.obs_categories})" if spec.obs_categories
                                else str(spec.obs_shape)))
        rows.append(row)
    return rows


def format_env_table(rows: list[dict]) -> str:
    """`env_rows` as an aligned text table; an environment that could not be made shows why."""
    header = ("environment", "action space", "observation", "network (auto)", "preset")
    lines = [(r["env"], r["action_space"] or "-", r["observation"] or "-", r["network"] or "-",
              r["preset"]) for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    for row, line in zip(rows, lines):
        text = "  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
        out.append(text + (f"  ({row['error']})" if row["error"] else ""))
    return "\n".join(out)
