"""Named configurations: one per environment family, and one per environment where tuning paid.

    config = purejaxppo.presets.get("pendulum")                         # a PPOConfig
    config = purejaxppo.presets.get("minatar", env_name="Asterix-MinAtar", total_timesteps=10**6)
    config = purejaxppo.presets.for_env("Pendulum-v1")  # the env's own preset, else its family's
    purejaxppo train --env Pendulum-v1 --num-seeds 8                    # the same from the CLI

The CLI (`train`, `sweep`) starts from the environment's preset unless told otherwise
(`build_config`'s `preset=None`, i.e. "auto"); `--preset none` gives `PPOConfig`'s plain defaults,
and `PPOConfig(...)` itself always has them.

Every preset says where it starts from (`source`: the published configuration) and how it was
tuned (`tuning`: the project's own sweep, with the command, or "not tuned yet"). `measured` is a
result this project measured with exactly that config (or "not measured yet"); numbers are never
copied from elsewhere. A family preset applies to every environment in `envs`; pass `env_name`.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from purejaxppo.config import ConfigError, PPOConfig, check_field_name, validate_config

CLASSIC_DISCRETE = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")
CLASSIC_CONTINUOUS = ("Pendulum-v1", "MountainCarContinuous-v0")
MINATAR = ("Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "SpaceInvaders-MinAtar",
           "Seaquest-MinAtar")
BSUITE = ("Catch-bsuite", "DeepSea-bsuite", "MemoryChain-bsuite", "UmbrellaChain-bsuite",
          "DiscountingChain-bsuite", "MNISTBandit-bsuite", "SimpleBandit-bsuite")
MISC = ("FourRooms-misc", "MetaMaze-misc", "PointRobot-misc", "BernoulliBandit-misc",
        "GaussianBandit-misc", "Reacher-misc", "Swimmer-misc", "Pong-misc", "FrozenLake-misc")


class Preset(NamedTuple):
    """A named `PPOConfig` and its provenance."""

    config: PPOConfig
    envs: tuple[str, ...]  # the environments it is meant for (its own env_name among them)
    source: str  # the published configuration it starts from
    tuning: str  # how this project tuned it (sweep command), or "not tuned yet"
    measured: str  # what this project measured with it, or "not measured yet"


# Continuous control: Gaussian head, observation and reward normalisation, long rollouts.
_CONTINUOUS = PPOConfig(env_name="Pendulum-v1", total_timesteps=1_000_000, num_envs=16,
                        num_steps=256, update_epochs=10, num_minibatches=16, learning_rate=1e-3,
                        ent_coef=0.0, normalize_obs=True, normalize_reward=True)
# MinAtar: the MinAtar paper's CNN, gymnax-blines' sizes and budget.
_MINATAR = PPOConfig(env_name="Breakout-MinAtar", total_timesteps=10_000_000, num_envs=64,
                     num_steps=128, update_epochs=4, num_minibatches=8, learning_rate=1e-3,
                     network="cnn", activation="relu")

PRESETS: dict[str, Preset] = {
    "cartpole": Preset(
        PPOConfig(env_name="CartPole-v1"), ("CartPole-v1",),
        source="PureJaxRL ppo.py / CleanRL ppo.py defaults (4x128, 4 epochs x 4 minibatches, "
               "lr 2.5e-4 annealed), which are PPOConfig's defaults",
        tuning="not tuned: the defaults reach the maximum return",
        measured="500.0 ± 0.0 over 16 seeds at 5e5 steps "
                 "(experiments/results/CartPole-v1_curves.json)"),
    "acrobot": Preset(
        PPOConfig(env_name="Acrobot-v1", num_envs=16, num_steps=32, learning_rate=5e-3,
                  gae_lambda=0.9),
        ("Acrobot-v1",),
        source="gymnax-blines' Acrobot-v1 setting (16x32, 4 epochs x 4 minibatches, lr 5e-4)",
        tuning="four sweeps over lr, entropy, λ, γ and epochs, 4 seeds at 5e5 steps "
               "(experiments/tune_presets.sh); lr 5e-3 and λ 0.9 gave -76.7 ± 3.4 against "
               "-84.3 ± 1.5 at the source's lr 5e-4",
        measured="-77.6 ± 4.1 over 8 seeds at 5e5 steps (deterministic eval -80.2 ± 3.9; "
                 "experiments/results/returns/Acrobot-v1.json)"),
    "mountaincar": Preset(
        PPOConfig(env_name="MountainCar-v0", total_timesteps=250_000, num_envs=16, num_steps=32,
                  update_epochs=64, learning_rate=5e-4, gamma=0.98, ent_coef=0.03,
                  normalize_obs=True),
        ("MountainCar-v0",),
        source="gymnax-blines' MountainCar-v0 setting (16x32, 64 epochs x 4 minibatches, "
               "entropy 0.003, 2.5e5 steps)",
        tuning="four sweeps over lr, entropy, observation normalisation, γ and λ, 4 seeds at "
               "2.5e5 steps (experiments/tune_presets.sh): normalisation took lr 5e-4 from "
               "-200 to -137.7 ± 23.7, γ 0.98 to -110.1 ± 8.9; then re-tuned for robustness "
               "(tune_presets.sh mountaincar-robust: 8 seeds of base key 0, rule: the best "
               "25th-percentile seed's final return): entropy 0.003 -> 0.03, p25 -142.1 -> "
               "-112.3, seeds at -200 2 of 8 -> 0",
        measured="fresh seeds (base key 1, 16) at 2.5e5 steps: -117.9 ± 8.2, IQM -116.5 "
                 "[-122.4, -112.2], every seed reaches the goal (worst -134.3), 2 of 16 >= -110 "
                 "(deterministic eval -109.3 ± 9.2; experiments/results/returns/"
                 "MountainCar-v0.json); the old entropy 0.003 on the same seeds: -127.6 ± 36.4, "
                 "IQM -110.4, 3 of 16 at -200 (experiments/results/returns_before/)"),
    "classic-control": Preset(
        PPOConfig(env_name="Acrobot-v1", num_envs=16, num_steps=32, learning_rate=5e-4),
        CLASSIC_DISCRETE,
        source="gymnax-blines' Acrobot-v1 setting (16x32, 4 epochs x 4 minibatches, lr 5e-4)",
        tuning="not tuned yet", measured="not measured yet"),
    "pendulum": Preset(
        _CONTINUOUS.replace(learning_rate=3e-4), ("Pendulum-v1",),
        source="SB3 rl-zoo / CleanRL continuous PPO shape (long rollouts, 10 epochs, "
               "normalisation), at gymnax-blines' 1e6 budget",
        tuning="purejaxppo sweep --env Pendulum-v1 --num-seeds 4 --total-timesteps 1000000 "
               "--set num_envs=16 --set num_steps=256 --set update_epochs=10 "
               "--set num_minibatches=16 --set ent_coef=0 --set normalize_obs=true "
               "--set normalize_reward=true --grid gamma=0.9,0.95,0.99 "
               "--grid learning_rate=1e-3,3e-3 (experiments/README.md); then re-tuned for "
               "robustness (tune_presets.sh pendulum-robust: 8 seeds of base key 0, rule: the "
               "best 25th-percentile seed's final return): lr 1e-3 -> 3e-4 at γ 0.99, p25 "
               "-153.3 -> -151.2 (lr 1e-3 at γ 0.95 left 2 of 8 seeds below -200)",
        measured="fresh seeds (base key 1, 16) at 1e6 steps: -151.0 ± 7.4, IQM -150.9 "
                 "[-155.5, -145.9], worst seed -164.4 (experiments/results/returns/"
                 "Pendulum-v1.json); the old lr 1e-3 on the same seeds: -153.7 ± 7.3 "
                 "(experiments/results/returns_before/)"),
    "mountaincar-continuous": Preset(
        _CONTINUOUS.replace(env_name="MountainCarContinuous-v0", total_timesteps=250_000,
                            gamma=0.999, ent_coef=0.01),
        ("MountainCarContinuous-v0",),
        source="the pendulum preset's shape",
        tuning="purejaxppo sweep --env MountainCarContinuous-v0 --num-seeds 4 "
               "--total-timesteps 1000000 (pendulum's --set options, learning_rate=1e-3) "
               "--grid gamma=0.99,0.999 --grid ent_coef=0,0.01 (experiments/README.md); at "
               "gymnax-blines' 2.5e5 budget γ 0.999 gave 93.9 ± 0.3, γ 0.99 47.1 ± 47.2 "
               "(experiments/tune_presets.sh)",
        measured="95.66 ± 0.06 over 8 seeds at 1e6 steps "
                 "(experiments/results/MountainCarContinuous-v0_curves.json); 93.9 ± 0.2 at "
                 "2.5e5 (experiments/results/returns/MountainCarContinuous-v0.json)"),
    "classic-control-continuous": Preset(
        _CONTINUOUS, CLASSIC_CONTINUOUS, source="the pendulum preset",
        tuning="tuned on Pendulum-v1 only (see the pendulum preset)",
        measured="see the pendulum and mountaincar-continuous presets"),
    "minatar": Preset(
        _MINATAR, MINATAR,
        source="gymnax-blines MinAtar PPO (64x128, 4 epochs x 8 minibatches, lr 1e-3, 1e7 steps) "
               "with the MinAtar paper's CNN (one 16-channel 3x3 conv)",
        tuning="not tuned yet (one setting, CNN vs MLP compared)",
        measured="4 seeds at 1e7 steps: Breakout-MinAtar 43.8 ± 18.6 "
                 "(experiments/results/Breakout-MinAtar_cnn_curves.json), SpaceInvaders-MinAtar "
                 "183.1 ± 1.0, Asterix-MinAtar 57.6 ± 1.4, Freeway-MinAtar 66.4 ± 0.3, "
                 "Seaquest-MinAtar 39.5 ± 34.3 (experiments/results/returns/)"),
    "bsuite": Preset(
        PPOConfig(env_name="Catch-bsuite", total_timesteps=100_000, num_envs=16, num_steps=32),
        BSUITE, source="gymnax-blines' Catch-bsuite setting (16x32, 4 epochs x 4 minibatches)",
        tuning="not tuned: Catch and DeepSea reach their optimum untuned",
        measured="8 seeds each: Catch 0.96 ± 0.05 at 1e5 (deterministic eval 1.00), DeepSea "
                 "0.99 ± 0.00 at 1.5e5, the other envs in experiments/results/returns.md"),
    "memorychain": Preset(
        PPOConfig(env_name="MemoryChain-bsuite", total_timesteps=200_000, num_envs=16,
                  num_steps=32, hidden_sizes=(64,), gru_size=64),
        ("MemoryChain-bsuite",),
        source="the bsuite preset's sizes with a GRU core (a memory task)",
        tuning="not tuned: GRU vs MLP compared (experiments/README.md)",
        measured="1.0 ± 0.0 over 8 seeds at 2e5 steps (the optimum; the MLP gets 0.0) "
                 "(experiments/results/MemoryChain-bsuite_gru_curves.json)"),
    "misc": Preset(
        PPOConfig(env_name="FourRooms-misc"), MISC, source="PPOConfig's defaults",
        tuning="not tuned (no published PPO figure to aim at)",
        measured="8 seeds at 5e5 per env, experiments/results/returns.md (FourRooms 1.00 ± "
                 "0.00); Pong-misc: see the pong preset"),
    "pong": Preset(
        PPOConfig(env_name="Pong-misc", network="mlp", learning_rate=1e-3), ("Pong-misc",),
        source="the misc preset (PPOConfig's defaults) with an MLP on the flattened 30x40x3 "
               "frame: the CNN, whose first dense layer takes its 19,200 conv features, ran "
               "~18x slower on CPU (378 against 6,669 steps/s, 1 seed, measured side by side)",
        tuning="purejaxppo sweep --preset misc --env Pong-misc --set network=mlp --grid "
               "learning_rate=2.5e-4,1e-3, 4 seeds at 5e5: 729.7 ± 187.2 / 1000.0 ± 0.0 "
               "(experiments/tune_presets.sh)",
        measured="1000.0 ± 0.0 over 8 seeds at 5e5 steps, deterministic eval 1000.0 (the "
                 "1000-step time limit: the ball never passes) "
                 "(experiments/results/returns/Pong-misc.json)"),
    "appo": Preset(
        PPOConfig(env_name="CartPole-v1", policy_objective="appo", advantage_estimator="vtrace",
                  policy_lag=1, buffer_num_batches=4, buffer_iterations_per_batch=2,
                  target_update_every=8, tau=1.0, behaviour_ratio_clip=2.0),
        ("CartPole-v1",),
        source="the cartpole preset's sizes and PPO settings (PPOConfig's defaults) with RLlib "
               "APPOConfig's learner defaults mapped to ours: circular buffer N=4, K=2 "
               "(circular_buffer_num_batches, circular_buffer_iterations_per_batch), the target "
               "refreshed every 2 x 4 = 8 updates (target_network_update_freq=2 x N) with "
               "tau=1 (a copy), target_worker_clipping=2; V-trace with RLlib's thresholds "
               "(ρ̄ = ρ̄_pg = c̄ = 1); the actors one update behind (policy_lag=1, as the "
               "host-thread IMPALAs with size-1 queues)",
        tuning="not tuned yet",
        measured="500.0 ± 0.0 over 4 seeds at 5e5 steps (base key 0; `purejaxppo train --env "
                 "CartPole-v1 --preset appo --num-seeds 4`, 46 s run + 38 s compile on the shared "
                 "2-core CPU, 2026-12-03)"),
}


def names() -> list[str]:
    """Every preset name, sorted."""
    return sorted(PRESETS)


def presets_for(env_name: str) -> list[str]:
    """The names of the presets meant for `env_name` (its own first, then families)."""
    own = [n for n, p in PRESETS.items() if p.envs == (env_name,)]
    family = [n for n, p in PRESETS.items() if env_name in p.envs and n not in own]
    return own + family


def check_fields(changes: dict, where: str) -> None:
    """ConfigError naming the first key of `changes` that is not a `PPOConfig` field
    (`config.check_field_name`), said to come from `where`."""
    for field in changes:
        check_field_name(field, where)


def get(name: str, **changes) -> PPOConfig:
    """The preset `name`'s `PPOConfig`, with `changes` (any fields, e.g. `env_name` for a family
    preset, `total_timesteps`) applied. ConfigError naming the preset if it does not exist or if
    `env_name` is not one it is meant for, or naming the field when a change is not a
    `PPOConfig` field."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"preset {name!r}: no such preset. Presets: {', '.join(names())}")
    check_fields(changes, f"presets.get({name!r}, ...)")
    preset = PRESETS[name]
    env = changes.get("env_name", preset.config.env_name)
    if env not in preset.envs:
        raise ConfigError(f"preset {name!r} is for {', '.join(preset.envs)}, not env_name="
                          f"{env!r}; presets for {env!r}: {', '.join(presets_for(env)) or 'none'}")
    return preset.config.replace(**changes)


AUTO = "auto"  # the environment's own preset, else its family's (build_config's default)
NONE = "none"  # no preset: PPOConfig's defaults


def resolve(preset: Optional[str], env_name: Optional[str] = None) -> Optional[str]:
    """The name of the preset a run on `env_name` (None: PPOConfig's default environment) starts
    from: `preset` itself when it names one; for None or "auto" the environment's own preset,
    else its family's (the first of `presets_for`), else None (it has none); for "none", None."""
    if preset is None or preset == AUTO:
        found = presets_for(env_name if env_name is not None else PPOConfig().env_name)
        return found[0] if found else None
    return None if preset == NONE else preset


def build_config(preset: Optional[str] = None, **changes) -> PPOConfig:
    """The validated `PPOConfig` a run starts from: the config of preset `resolve(preset,
    env_name)` (None or "auto": the environment's own or family preset; "none", or an
    environment without a preset: PPOConfig's defaults) with `changes` (PPOConfig fields, e.g.
    `env_name`, `total_timesteps`) applied. What `purejaxppo train --preset NAME --env ... --set
    ...` builds."""
    name = resolve(preset, changes.get("env_name"))
    check_fields(changes, "build_config")
    config = get(name, **changes) if name is not None else PPOConfig(**changes)
    validate_config(config)
    return config


def for_env(env_name: str, **changes) -> PPOConfig:
    """The validated config `purejaxppo train --env ENV_NAME` starts from: `env_name`'s own
    preset, else its family's, else PPOConfig's defaults, with `changes` applied."""
    return build_config(AUTO, env_name=env_name, **changes)


def describe_choice(preset: Optional[str], env_name: Optional[str] = None) -> str:
    """One line saying which preset `build_config(preset, env_name=env_name)` starts from, e.g.
    "using preset 'pendulum' (made for Pendulum-v1); --preset none for PPOConfig's defaults"."""
    env = env_name if env_name is not None else PPOConfig().env_name
    name = resolve(preset, env)
    if name is None:
        if preset == NONE:
            return "using PPOConfig's defaults (--preset none)"
        return f"using PPOConfig's defaults (no preset for {env}; `purejaxppo envs` lists them)"
    kind = f"made for {env}" if PRESETS[name].envs == (env,) else f"the family preset for {env}"
    if preset is not None and preset != AUTO:
        kind = "given by --preset"
    return f"using preset {name!r} ({kind}); --preset none for PPOConfig's defaults"
