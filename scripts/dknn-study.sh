#!/usr/bin/env bash
# Deep k-NN credibility of outliers and adversarial inputs, entangled networks against the baseline: the
# reference CNN (cleverhans-cnn) on MNIST and Fashion-MNIST, baseline and factor -10 (the paper's code),
# seeds 1234, 42 and 73, as trained by scripts/entangling-study.sh (run that first; about 40 minutes).
# Each run's study goes to results/dknn-cleverhans/<data set>/<run>/ (dknn.json and figures); a finished
# one is skipped, so an interrupted study resumes. Then the table over seeds and the AUROC figure.
#   scripts/dknn-study.sh [RUNS]      (default runs/entangling-cleverhans)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-runs/entangling-cleverhans}"
out=results/dknn-cleverhans
snnl() { node dist/cli/main.js "$@"; }
for dataset in mnist fashion-mnist; do
  for seed in 1234 42 73; do
    for config in baseline entangled; do
      dir="$out/$dataset/$config-s$seed"
      if [ -f "$dir/dknn.json" ]; then echo "$dir: finished, skipped"; continue; fi
      if [ ! -f "$runs/$dataset/$config-s$seed/summary.json" ]; then
        echo "$runs/$dataset/$config-s$seed is not trained: run scripts/entangling-study.sh first" >&2
        exit 2
      fi
      # 1,000 images per outlier set and FGSM strength (default 2,000): about 5 minutes a run on 2 cores.
      snnl dknn "$runs/$dataset/$config-s$seed" --outliers 1000 --out "$dir" > /dev/null
    done
  done
done
snnl dknn-summary "$out" --out "$out"
