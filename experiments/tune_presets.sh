#!/usr/bin/env bash
# The sweeps that chose the per-environment presets (purejaxppo/presets.py), in the order they were
# run, each at the environment's published budget over 4 seeds (base key 0). The result of each is
# in the comment under it: final return, mean ± std over the 4 seeds (measured 2026-12-02 on the
# project's 2-core Intel Xeon machine, family 6 model 167, jax 0.10.2). Static fields (sizes,
# epochs, normalisation) cannot be a --grid axis, so each value of one is its own sweep.
#
#   bash experiments/tune_presets.sh acrobot     # one environment's sweeps (or: all; run from the
#                                                # repository root, PUREJAXPPO=... to change the CLI)
set -euo pipefail
SWEEP=("${PUREJAXPPO:-.venv/bin/purejaxppo}" sweep --no-progress --num-seeds 4)
# The robustness re-tunes (mountaincar-robust, pendulum-robust, 2026-12-03) use 8 seeds of the same
# base key 0 and keep each sweep's per-seed returns under experiments/results/tuning/.
SWEEP8=("${PUREJAXPPO:-.venv/bin/purejaxppo}" sweep --no-progress --num-seeds 8 --seed 0)
TUNING=experiments/results/tuning
which="${1:-all}"
case $which in
  acrobot | mountaincar | mountaincar-continuous | pong | mountaincar-robust | pendulum-robust \
      | all) ;;
  *) echo "usage: $0 [acrobot | mountaincar | mountaincar-continuous | pong | mountaincar-robust" \
          "| pendulum-robust | all]" >&2; exit 2 ;;
esac

if [[ $which == acrobot || $which == all ]]; then
  # Acrobot-v1, 5e5 steps, from the classic-control preset (gymnax-blines: 16x32, lr 5e-4).
  "${SWEEP[@]}" --preset classic-control --env Acrobot-v1 --total-timesteps 500000 \
      --grid learning_rate=2.5e-4,5e-4,1e-3,2.5e-3 --grid ent_coef=0,0.01
  # lr 2.5e-4 / 5e-4 / 1e-3 / 2.5e-3 with ent 0:    -84.4 ± 1.8 / -84.3 ± 1.5 / -82.2 ± 4.3 / -82.1 ± 3.1
  #                                  with ent 0.01: -86.7 ± 3.1 / -84.2 ± 1.9 / -82.0 ± 4.9 / -79.3 ± 4.1
  "${SWEEP[@]}" --preset classic-control --env Acrobot-v1 --total-timesteps 500000 \
      --set ent_coef=0.01 --grid learning_rate=2.5e-3,5e-3 --grid gae_lambda=0.9,0.95,0.99
  # lr 2.5e-3 x λ 0.9 / 0.95 / 0.99: -82.5 ± 3.0 / -81.4 ± 4.7 / -84.9 ± 2.2
  # lr 5e-3   x λ 0.9 / 0.95 / 0.99: -76.7 ± 3.4 / -78.3 ± 4.1 / -80.3 ± 3.7
  "${SWEEP[@]}" --preset classic-control --env Acrobot-v1 --total-timesteps 500000 \
      --set ent_coef=0.01 --set update_epochs=10 --grid learning_rate=1e-3,2.5e-3 \
      --grid gamma=0.99,0.995
  # 10 epochs, lr 1e-3 x γ 0.99 / 0.995: -80.6 ± 2.9 / -77.3 ± 2.7; lr 2.5e-3: -78.5 ± 1.7 / -78.6 ± 1.5
  "${SWEEP[@]}" --preset classic-control --env Acrobot-v1 --total-timesteps 500000 \
      --set ent_coef=0.01 --set gae_lambda=0.9 --grid learning_rate=5e-3,1e-2 --grid gamma=0.99,0.995
  # lr 5e-3 x γ 0.99 / 0.995: -76.7 ± 3.4 / -79.2 ± 2.1; lr 1e-2: -76.6 ± 3.4 / -80.3 ± 4.3
  # Chosen (preset "acrobot"): 16x32, 4 epochs, lr 5e-3, λ 0.9, γ 0.99, ent 0.01 (lr 1e-2 ties).
fi

if [[ $which == mountaincar || $which == all ]]; then
  # MountainCar-v0, 2.5e5 steps, gymnax-blines' shape: 16x32, 64 epochs, entropy 0.003.
  "${SWEEP[@]}" --preset classic-control --env MountainCar-v0 --total-timesteps 250000 \
      --set ent_coef=0.003 --set update_epochs=64 --grid learning_rate=5e-4,2e-3,5e-3
  # lr 5e-4 / 2e-3 / 5e-3: -200.0 ± 0.0 / -178.2 ± 37.8 / -194.6 ± 9.4 (one seed of 4 solves it)
  "${SWEEP[@]}" --preset classic-control --env MountainCar-v0 --total-timesteps 250000 \
      --set ent_coef=0.003 --set update_epochs=64 --set normalize_obs=true \
      --grid learning_rate=5e-4,2e-3,5e-3
  # with observation normalisation: -137.7 ± 23.7 / -141.7 ± 19.0 / -160.4 ± 20.9
  "${SWEEP[@]}" --preset classic-control --env MountainCar-v0 --total-timesteps 250000 \
      --set update_epochs=64 --set normalize_obs=true --grid learning_rate=2.5e-4,5e-4,1e-3 \
      --grid ent_coef=0.003,0.01
  # lr 2.5e-4 x ent 0.003 / 0.01: -181.5 ± 32.0 / -176.2 ± 26.9
  # lr 5e-4:                      -137.7 ± 23.7 / -145.6 ± 8.0
  # lr 1e-3:                      -159.4 ± 20.6 / -153.4 ± 27.4
  "${SWEEP[@]}" --preset classic-control --env MountainCar-v0 --total-timesteps 250000 \
      --set update_epochs=64 --set normalize_obs=true --set ent_coef=0.003 \
      --set learning_rate=5e-4 --grid gamma=0.98,0.995 --grid gae_lambda=0.95,0.99
  # γ 0.98 x λ 0.95 / 0.99: -110.1 ± 8.9 / -138.5 ± 35.6;  γ 0.995: -200.0 ± 0.0 / -200.0 ± 0.0
  # Chosen (preset "mountaincar"): the above with γ 0.98, λ 0.95.
fi

if [[ $which == mountaincar-continuous || $which == all ]]; then
  # MountainCarContinuous-v0 at gymnax-blines' 2.5e5 budget (tuned at 1e6: experiments/README.md).
  "${SWEEP[@]}" --preset mountaincar-continuous --total-timesteps 250000 --grid gamma=0.99,0.999
  # γ 0.99 / 0.999: 47.1 ± 47.2 / 93.9 ± 0.3. Chosen: γ 0.999 (the preset), budget 2.5e5.
fi

if [[ $which == pong || $which == all ]]; then
  # Pong-misc at the misc preset's 5e5 (no published PPO figure). The misc preset's CNN flattens
  # 16 x 30 x 40 features into its first dense layer: 378 steps/s at 1 seed against 6,669 for the
  # MLP, measured side by side (2026-12-02), so the sweep starts from the MLP.
  "${SWEEP[@]}" --preset misc --env Pong-misc --total-timesteps 500000 --set network=mlp \
      --grid learning_rate=2.5e-4,1e-3
  # lr 2.5e-4 / 1e-3: 729.7 ± 187.2 / 1000.0 ± 0.0 (1000 = kept the ball in play to the time limit)
  # Chosen (preset "pong"): the misc preset with network=mlp, lr 1e-3.
fi

# Robustness re-tunes (issue 23), 2026-12-03, this project's 2-core AMD EPYC machine (`lscpu`:
# AMD EPYC, family 26 model 2, KVM; the cores shared with other jobs), jax 0.10.2. Tuning seeds:
# base key 0 (returns.py's TUNE_SEEDS), 8 seeds = jax.random.split(key(0), 8); the returns table
# reports on base key 1. Selection rule: the setting whose 25th-percentile seed has the highest
# final return (numpy's linear percentile over the 8 seeds; ties: higher minimum, then mean), so a
# setting that leaves seeds unsolved loses to one that solves every seed a little more slowly.
# experiments/robust_select.py ranks the JSON files; per setting below: mean / p25 / min / solved.

if [[ $which == mountaincar-robust || $which == all ]]; then
  # MountainCar-v0, 2.5e5 steps, from the mountaincar preset above (solved: >= -110, gym's
  # reward_threshold). 64 epochs make it the costliest classic-control preset: ~23 s per seed-run
  # on the shared cores, so one axis at a time.
  mkdir -p "$TUNING"
  "${SWEEP8[@]}" --preset mountaincar --env MountainCar-v0 --grid ent_coef=0.003,0.01,0.03 \
      --json "$TUNING/mountaincar_ent.json"
  # ent 0.003 (the preset): -132.4 / -142.1 / -200.0 / 4 of 8 (two seeds at -200)
  # ent 0.01:               -127.2 / -129.6 / -200.0 / 4 of 8
  # ent 0.03:               -112.7 / -112.3 / -136.6 / 6 of 8
  "${SWEEP8[@]}" --preset mountaincar --env MountainCar-v0 --grid ent_coef=0.05,0.1 \
      --json "$TUNING/mountaincar_ent_high.json"
  # ent 0.05: -145.4 / -174.5 / -200.0 / 2 of 8;  ent 0.1: -134.6 / -130.9 / -200.0 / 0 of 8
  # Chosen (preset "mountaincar", re-tuned): ent 0.03 (best p25, no seed at -200). The ranking is
  # not monotone in ent: 8 seeds resolve a p25 coarsely (0.05 left two seeds at -200, 0.03 none).
  # Static fields (epochs, num_envs x num_steps) were not re-swept: these 40 runs took 9 + 7 min.
  # On fresh seeds (returns.py, base key 1, 16 seeds) old -> new: mean -127.6 -> -117.9, p25 -124.3
  # -> -123.9, worst -200 (3 seeds) -> -134.3, but IQM -110.4 -> -116.5 and 7 -> 2 of 16 >= -110:
  # no seed left unsolved, each a little slower (results/returns_before/ and results/returns/).
fi

if [[ $which == pendulum-robust || $which == all ]]; then
  # Pendulum-v1, 1e6 steps, from the pendulum preset above (lr 1e-3, γ 0.99; solved: >= -200, the
  # project's threshold, purejaxppo.stats). Another base key had left 2 of 8 seeds at -1234 / -804.
  mkdir -p "$TUNING"
  "${SWEEP8[@]}" --preset pendulum --env Pendulum-v1 --grid learning_rate=3e-4,1e-3 \
      --grid gamma=0.95,0.99 --json "$TUNING/pendulum_lr_gamma.json"
  # lr 3e-4 x γ 0.95 / 0.99: -153.6 / -156.9 / -167.8 / 8 of 8;  -149.2 / -151.2 / -164.6 / 8 of 8
  # lr 1e-3 x γ 0.95 / 0.99: -229.6 / -185.3 / -687.0 / 6 of 8;  -152.9 / -153.3 / -173.3 / 8 of 8
  # Chosen (preset "pendulum", re-tuned): lr 3e-4, γ 0.99 (best p25; a small margin over the old lr
  # 1e-3, whose γ-0.95 neighbour lost two seeds). 8.5 min for the 32 runs; static fields (epochs,
  # normalisation, num_envs x num_steps) were not re-swept within the 25-minute budget.
  # On fresh seeds (returns.py, base key 1, 16 seeds) old -> new: mean -153.7 -> -151.0, p25 -160.0
  # -> -156.7, worst -164.6 -> -164.4, IQM -154.7 -> -150.9 (difference +3.7 [-3.4, 10.3]): within
  # noise; the old preset left no seed unsolved on these seeds either.
fi
