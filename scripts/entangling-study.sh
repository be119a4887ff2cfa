#!/usr/bin/env bash
# The paper's own regularizer as its code runs it, against the baseline: the reference CNN
# (cleverhans-cnn), squared Euclidean distance, factor -10, T = 100 with the one-step temperature update,
# 6 epochs, batch 128, Adam 1e-3, on MNIST and Fashion-MNIST, seeds 1234, 42 and 73. Resumable: a finished
# run is skipped and an interrupted one resumes. Then the table of the finished runs (results/) and a report.
#   scripts/entangling-study.sh [OUT]      (default runs/entangling-cleverhans; run folders are not committed)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/entangling-cleverhans}"
snnl() { node dist/cli/main.js "$@"; }
for dataset in mnist fashion-mnist; do
  for seed in 1234 42 73; do
    for config in baseline entangled; do
      dir="$out/$dataset/$config-s$seed"
      if [ -f "$dir/summary.json" ]; then echo "$dir: finished, skipped"; continue; fi
      if [ -f "$dir/config.json" ]; then snnl train --resume "$dir"; continue; fi
      flags=(--dataset "$dataset" --model cleverhans-cnn --epochs 6 --batch-size 128 --lr 0.001 --seed "$seed" --out "$dir")
      if [ "$config" = entangled ]; then
        flags+=(--factor -10 --preset cleverhans --distance squared-euclidean --temperature 100 --optimize-temperature)
      fi
      snnl train "${flags[@]}"
    done
  done
done
snnl summarize "$out" --out results/entangling-cleverhans
snnl report "$out"
