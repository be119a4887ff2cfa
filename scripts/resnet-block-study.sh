#!/usr/bin/env bash
# Every layer of a ResNet's final residual block over training (the poster's curves): ResNet-20 on
# Fashion-MNIST padded to 32x32x3 (CIFAR-10 is user-supplied; with it, pass --dataset cifar10 and drop
# --input-shape), 15,000 training images, 12 epochs, SNNL at the optimal temperature of the block's seven
# layers on 1,000 fixed test images 6 times an epoch. Resumable: rerunning it resumes an interrupted run.
# The run's records and report are copied to results/resnet-final-block.
#   scripts/resnet-block-study.sh [RUN]    (default runs/resnet-final-block-fashion-s1234)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-runs/resnet-final-block-fashion-s1234}"
out=results/resnet-final-block
snnl() { node dist/cli/main.js "$@"; }
if [ -f "$dir/summary.json" ]; then
  echo "$dir: finished"
elif [ -f "$dir/config.json" ]; then
  snnl train --resume "$dir" --quiet
else
  snnl train --dataset fashion-mnist --model resnet --input-shape 32x32x3 --train-subset 15000 --epochs 12 \
    --probe-layers final-block --probes-per-epoch 6 --probe-size 1000 --seed 1234 --out "$dir" --quiet
fi
snnl report "$dir" --points 500
mkdir -p "$out"
cp "$dir"/{config.json,metrics.jsonl,probes.jsonl,summary.json,report.html} "$dir"/*.png "$out/"
