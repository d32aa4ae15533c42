"""The asynchronous actor/learner mode (purejaxppo/actor_learner.py) on two fake CPU devices.

The mode needs two devices, and the device count is fixed when jax starts, so the run happens in
one subprocess with `--xla_force_host_platform_device_count=2`; it reports what it saw as JSON.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import pytest

from purejaxppo import ConfigError, PPOConfig
from purejaxppo.actor_learner import check_config, check_devices

SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, threading
    import numpy as np
    from purejaxppo import PPOConfig
    from purejaxppo.actor_learner import run_actor_learner

    run_dir = sys.argv[1]
    config = PPOConfig(total_timesteps=12 * 64, num_envs=4, num_steps=16, num_minibatches=2,
                       update_epochs=2, hidden_sizes=(16, 16), policy_objective="appo",
                       advantage_estimator="vtrace", buffer_num_batches=2,
                       buffer_iterations_per_batch=2)

    def interrupt(update, lag):  # SIGINT to ourselves, from the learner thread, at update 2
        if update == 2:
            os.kill(os.getpid(), signal.SIGINT)

    first = run_actor_learner(config, num_seeds=2, run_dir=run_dir, on_update=interrupt)
    alive = [t.name for t in threading.enumerate() if t.name.startswith("purejaxppo-")]
    second = run_actor_learner(config, num_seeds=2, run_dir=run_dir, resume=True)
    from purejaxppo.cli import main  # the same config from the command line (programs cached)
    rc = main(["train", "--actor-learner", "--preset", "none", "--num-seeds", "2",
               "--total-timesteps", "768", "--no-progress", "--json", run_dir + "/cli.json"]
              + [f"--set={s}" for s in ("num_envs=4", "num_steps=16", "num_minibatches=2",
                 "update_epochs=2", "hidden_sizes=16,16", "policy_objective=appo",
                 "advantage_estimator=vtrace", "buffer_num_batches=2",
                 "buffer_iterations_per_batch=2")])
    print(json.dumps({
        "first": {"stopped": first.stopped, "updates": first.updates_done,
                  "collected": first.rollouts_collected, "lag": first.lag.tolist(),
                  "rows": int(first.metrics.policy_loss.shape[1]),
                  "checkpoint": first.checkpoint, "threads_alive": alive},
        "second": {"stopped": second.stopped, "updates": second.updates_done,
                   "collected": second.rollouts_collected, "lag": second.lag.tolist(),
                   "rows": int(second.metrics.policy_loss.shape[1]),
                   "finite": bool(np.isfinite(second.metrics.policy_loss).all()),
                   "state_update": np.asarray(second.state.update).tolist()},
        "cli": {"rc": rc, **json.load(open(run_dir + "/cli.json"))},
    }))
""")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("actor_learner")
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    env = {**os.environ, "XLA_FLAGS": flags.strip()}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(run_dir)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_sigint_stops_cleanly_with_a_checkpoint_and_nothing_dropped(report):
    first = report["first"]
    assert first["stopped"] and 3 <= first["updates"] < 12
    assert first["collected"] == first["updates"] == first["rows"] == len(first["lag"])
    assert first["threads_alive"] == []
    assert first["checkpoint"].endswith(f"update_{first['updates']:09d}")


def test_resume_continues_to_the_end(report):
    first, second = report["first"], report["second"]
    assert not second["stopped"] and second["updates"] == 12
    assert second["collected"] == second["rows"] == 12 - first["updates"]
    assert second["state_update"] == [12, 12] and second["finite"]


def test_the_lag_is_recorded_and_bounded_by_the_queue(report):
    lags = report["first"]["lag"] + report["second"]["lag"]
    assert all(0 <= lag <= 2 for lag in lags)  # queue_size 1: one waiting, one being collected


def test_the_cli_trains_and_reports(report):
    cli = report["cli"]
    assert cli["rc"] == 0 and cli["mode"] == "actor_learner" and cli["updates_done"] == 12
    assert len(cli["final_return_per_run"]) == 2 and sum(cli["lag_histogram"]) == 12
    assert cli["steps_per_second"] > 0 and not cli["stopped_early"]


def test_needs_two_devices_and_no_in_jit_lag():
    with pytest.raises(ConfigError, match="two devices"):
        check_devices(jax.local_devices()[:1])
    with pytest.raises(ConfigError, match="policy_lag"):
        check_config(PPOConfig(policy_lag=2))
