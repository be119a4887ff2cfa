#!/usr/bin/env bash
# The ResNet's final block trained until it fits its training set (the regime of the poster's curves):
# ResNet-20 on 2,048 training images of Fashion-MNIST padded to 32x32x3, 32 epochs, three seeds; test
# accuracy and loss on 2,000 fixed test images each epoch; SNNL at the optimal temperature of every layer
# of the final block on 1,000 fixed test images twice an epoch (probes.jsonl). Resumable: rerun it and
# finished seeds are skipped, an interrupted one resumes. Each seed's records go to results/resnet-overfit.
#   scripts/resnet-overfit-study.sh                       (Fashion-MNIST)
#   DATASET=cifar10 DATA_DIR=~/data scripts/resnet-overfit-study.sh   (a CIFAR-10 file supplied)
set -euo pipefail
cd "$(dirname "$0")/.."
dataset="${DATASET:-fashion-mnist}"
seeds="${SEEDS:-1234 42 73}"
out="results/resnet-overfit/$dataset"
snnl() { node dist/cli/main.js "$@"; }
shape=()
[ "$dataset" = fashion-mnist ] || [ "$dataset" = mnist ] && shape=(--input-shape 32x32x3)
data=()
[ -n "${DATA_DIR:-}" ] && data=(--data-dir "$DATA_DIR")
for seed in $seeds; do
  dir="runs/resnet-overfit-$dataset-s$seed"
  if [ -f "$dir/summary.json" ]; then
    echo "$dir: finished"
  elif [ -f "$dir/config.json" ]; then
    snnl train --resume "$dir" --quiet
  else
    snnl train --dataset "$dataset" "${data[@]}" --model resnet "${shape[@]}" --train-subset 2048 --test-subset 2000 \
      --epochs 32 --probe-layers final-block --probes-per-epoch 2 --probe-size 1000 --seed "$seed" --out "$dir" --quiet
  fi
  mkdir -p "$out/s$seed"
  cp "$dir"/{config.json,metrics.jsonl,probes.jsonl,summary.json} "$out/s$seed/"
done
