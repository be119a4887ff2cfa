#!/usr/bin/env bash
# Deep k-NN credibility against the detectors the field uses, on the networks of the reference
# configuration (scripts/entangling-study.sh: the cleverhans CNN, pixels in [0, 1]; baseline and fixed
# T = 100, factor -10; five seeds; MNIST and Fashion-MNIST; their checkpoints must be in
# results/entangling-reference, which that script trains in about 105 minutes on 2 cores).
# Per network: snnl dknn with conformal (finite-sample) p-values, 1,000 images per outlier set and per
# attack (FGSM and 10-step PGD at eps 0.1 and 0.25), 200 bootstrap replicates of each AUROC. A finished
# network is skipped, so an interrupted study resumes. Then the table over seeds with the paired
# differences (snnl dknn-summary) and the AUROC figure.
#   scripts/dknn-reference-study.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=results/entangling-reference
out=results/dknn-reference
snnl() { node dist/cli/main.js "$@"; }
# Seeds outermost: an interrupted study has whole seeds of both data sets, ready for the paired table.
for seed in 1234 42 73 1024 86400; do
  for dataset in mnist fashion-mnist; do
    for config in baseline fixed; do
      dir="$out/$dataset/$config-s$seed"
      if [ -f "$dir/dknn.json" ]; then echo "$dir: finished, skipped"; continue; fi
      if [ ! -f "$runs/$dataset/$config-s$seed/checkpoint.bin" ]; then
        echo "$runs/$dataset/$config-s$seed has no checkpoint: run scripts/entangling-study.sh first" >&2
        exit 2
      fi
      echo "$dir"
      snnl dknn "$runs/$dataset/$config-s$seed" --p-values finite --outliers 1000 --out "$dir" > /dev/null
    done
  done
done
snnl dknn-summary "$out" --out "$out"
