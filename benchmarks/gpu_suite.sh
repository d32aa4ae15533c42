#!/usr/bin/env bash
# The accelerator benchmark suite, one command, under 8 minutes on one GPU (benchmarks/gpu_suite.py):
# CartPole-v1 at 1 to 4096 seeds and Breakout-MinAtar (CNN) at 1 and 64 seeds, fast_paths auto
# and off, steps/s against the rollout-only ceiling and compile times, into one JSON.
#
#   bash benchmarks/gpu_suite.sh [OUT_DIR]          # default benchmarks/results/gpu_suite
#   SIZE=tiny bash benchmarks/gpu_suite.sh DIR      # the CPU smoke run of the test suite
#
# On a GPU machine: install jax with its CUDA plugin into the venv first, e.g.
#   .venv/bin/pip install -c requirements-lock.txt -e . && .venv/bin/pip install "jax[cuda12]==<jax's version>"
# PYTHON overrides the interpreter (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
OUT="${1:-benchmarks/results/gpu_suite}"
"$PYTHON" -c "import jax; print('devices:', jax.devices())"
exec "$PYTHON" benchmarks/gpu_suite.py --out "$OUT" --size "${SIZE:-full}"
