#!/usr/bin/env bash
# Real vs generated data (the poster's GAN panel): a DCGAN on MNIST and Fashion-MNIST, 2,000 steps, seeds
# 1234, 42 and 73, with the probe measured every 100 steps in the pixels, the discriminator's hidden layers
# and the hidden layers of the reference CNN trained by scripts/entangling-study.sh (the baseline, seed
# 1234; run that first). Studies go to RUNS/<data set>/s<seed> (networks and snapshots, not committed);
# their records, reports and figures are copied to results/gan-real-vs-generated/<data set>/s<seed>, and
# each data set gets a table over the seeds. A finished study is skipped; an interrupted one resumes.
#   scripts/gan-study.sh [RUNS] [DATASETS]   (defaults runs/gan and "mnist fashion-mnist"; the committed results
#   are MNIST only: scripts/gan-study.sh runs/gan mnist)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-runs/gan}"
datasets="${2:-mnist fashion-mnist}"
out=results/gan-real-vs-generated
snnl() { node dist/cli/main.js "$@"; }
for dataset in $datasets; do
  classifier="runs/entangling-cleverhans/$dataset/baseline-s1234"
  if [ ! -f "$classifier/summary.json" ]; then
    echo "$classifier is not trained: run scripts/entangling-study.sh first" >&2
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
      snnl gan --dataset "$dataset" --seed "$seed" --classifier "$classifier" --out "$dir" --quiet
    fi
    mkdir -p "$out/$dataset/s$seed"
    cp "$dir"/{config.json,metrics.jsonl,summary.json,report.html} "$dir"/*.png "$out/$dataset/s$seed/"
  done
  snnl gan-summary "${dirs[@]}" --out "$out/$dataset"
done
