"""purejaxppo: PPO as one pure, jit-compiled, vmappable function of a PRNG key."""

from purejaxppo.config import HPARAM_FIELDS, ConfigError, HParams, PPOConfig, validate_config
from purejaxppo.envs import available_envs, make_env
from purejaxppo.gae import compute_gae
from purejaxppo.metrics import Metrics, final_return
from purejaxppo.train import TrainResult, make_train

__all__ = [
    "ConfigError", "HPARAM_FIELDS", "HParams", "Metrics", "PPOConfig", "TrainResult",
    "available_envs", "compute_gae", "final_return", "make_env", "make_train", "validate_config",
]
__version__ = "0.1.0"
