#!/usr/bin/env bash
# Real vs generated data (the poster's GAN panel): a DCGAN (batch normalization in the generator) on MNIST
# and Fashion-MNIST, 2,000 steps, seeds 1234, 42 and 73, with the probe measured every 100 steps in the
# pixels, the discriminator's hidden layers and the hidden layers of the reference CNN trained by
# scripts/entangling-study.sh (the baseline, seed 1234; its checkpoint must be in results/entangling-reference),
# which also gives the generator's quality at every measurement (Fréchet distance in its last hidden layer,
# its confidence on generated images). Run all six from one commit. Studies go to RUNS/<data set>/s<seed>
# (networks and snapshots, not committed); their records, reports and figures are copied to OUT/<data
# set>/s<seed>, and each data set gets a table over the seeds. A finished study is skipped; an interrupted
# one resumes.
#   scripts/gan-study.sh [RUNS] [DATASETS] [OUT]   (defaults runs/gan-dcgan, "mnist fashion-mnist" and
#   results/gan-dcgan; the earlier MNIST-only study without batch normalization is results/gan-real-vs-generated)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-runs/gan-dcgan}"
datasets="${2:-mnist fashion-mnist}"
out="${3:-results/gan-dcgan}"
snnl() { node dist/cli/main.js "$@"; }
for dataset in $datasets; do
  classifier="results/entangling-reference/$dataset/baseline-s1234"
  if [ ! -f "$classifier/checkpoint.bin" ]; then
    echo "$classifier has no checkpoint: run scripts/entangling-study.sh first" >&2
    exit 2
  fi
  dirs=()
  for seed in 1234 42 73; do
    dir="$runs/$dataset/s$seed"
    dirs+=("$dir")
    if [ -f "$dir/report.html" ]; then
      echo "$dir: finished, skipped"
    elif [ -f "$dir/config.json" ]; then
      snnl gan --resume "$dir" --quiet
    else
      snnl gan --dataset "$dataset" --seed "$seed" --generator dcgan --classifier "$classifier" --out "$dir" --quiet
    fi
    mkdir -p "$out/$dataset/s$seed"
    cp "$dir"/{config.json,metrics.jsonl,summary.json,report.html} "$dir"/*.png "$out/$dataset/s$seed/"
  done
  snnl gan-summary "${dirs[@]}" --out "$out/$dataset"
done
