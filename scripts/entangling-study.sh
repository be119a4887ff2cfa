#!/usr/bin/env bash
# The paper's own regularizer as its reference code runs it (cleverhans SNNL_regularized_train.py:
# SNNLCrossEntropy(model, factor=-10, optimize_temperature=False)), against the baseline on the same inputs:
# the reference CNN (cleverhans-cnn), pixels in [0, 1] with no mean/std normalization, squared Euclidean
# distance, the reference code's epsilon form, factor -10, T = 100 fixed; 6 epochs, batch 128, Adam 1e-3;
# MNIST and Fashion-MNIST; seeds 1234, 42, 73, 1024, 86400. A third row keeps SNNLCrossEntropy's default
# optimize_temperature=True (the one-step temperature update per batch, from T = 100).
# Resumable: a finished run is skipped and an interrupted one resumes. Seeds run in order, each seed's six
# runs together, so a partial study still pairs each entangled run with its baseline. Then the table.
#   scripts/entangling-study.sh [OUT]      (default results/entangling-reference; checkpoints are not committed)
# Train alone on the machine: two training processes slow each other several times over.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/entangling-reference}"
seeds="${SEEDS:-1234 42 73 1024 86400}"
snnl() { node dist/cli/main.js "$@"; }
for seed in $seeds; do
  for dataset in mnist fashion-mnist; do
    for config in baseline fixed onestep; do
      dir="$out/$dataset/$config-s$seed"
      if [ -f "$dir/summary.json" ]; then echo "$dir: finished, skipped"; continue; fi
      if [ -f "$dir/config.json" ]; then snnl train --resume "$dir"; continue; fi
      flags=(--dataset "$dataset" --pixels unit --model cleverhans-cnn --epochs 6 --batch-size 128 --lr 0.001
        --seed "$seed" --out "$dir")
      case "$config" in
        fixed) flags+=(--factor -10 --preset cleverhans --distance squared-euclidean --temperature 100) ;;
        onestep) flags+=(--factor -10 --preset cleverhans --distance squared-euclidean --temperature 100
          --optimize-temperature) ;;
      esac
      snnl train "${flags[@]}"
    done
  done
done
snnl summarize "$out" --out "$out"
