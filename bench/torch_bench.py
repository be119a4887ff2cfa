"""The PyTorch side of `npm run bench`: the same networks and SNNL terms as snnl's side, timed in-process.

Usage: python3 bench/torch_bench.py '<json case>'  ->  prints one JSON line {"images_per_second": ..., ...}
Run with LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp (the optimized BLAS; the default
reference BLAS is about 30x slower) and OMP_NUM_THREADS set to the thread count.
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def snnl_pt(x, y, temperature):
    """pt-snnl's formula: cosine distance, exp(-D/T) - I, epsilon 1e-5, by autodiff."""
    x = x.reshape(x.shape[0], -1)
    unit = F.normalize(x, dim=1)
    d = 1.0 - unit @ unit.T
    f = torch.exp(-d / temperature) - torch.eye(x.shape[0])
    pick = f / (1e-5 + f.sum(1, keepdim=True))
    same = (y[:, None] == y[None, :]).float()
    return torch.mean(-torch.log(1e-5 + (pick * same).sum(1)))


def snnl_stable(x, y, temperature):
    """The stable formula (squared Euclidean, log-sum-exp, exact self mask), by autodiff."""
    x = x.reshape(x.shape[0], -1)
    sq = (x * x).sum(1)
    d = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0)
    eye = torch.eye(x.shape[0], dtype=torch.bool)
    logits = (-d / temperature).masked_fill(eye, float('-inf'))
    same = (y[:, None] == y[None, :]) & ~eye
    partners = logits.masked_fill(~same, float('-inf'))
    return torch.mean(torch.logsumexp(logits, 1) - torch.logsumexp(partners, 1))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(784, 500), nn.Linear(500, 500), nn.Linear(500, 10)

    def forward(self, x):
        h1 = F.relu(self.fc1(x.flatten(1)))
        h2 = F.relu(self.fc2(h1))
        return [h1, h2], self.out(h2)


class CNN(nn.Module):
    """../shared/REFERENCE.md section 3."""

    def __init__(self, channels, flat):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 8, stride=2, padding=1)
        self.conv2 = nn.Conv2d(64, 128, 6, stride=2, padding=1)
        self.fc1, self.fc2, self.fc3 = nn.Linear(flat, 1024), nn.Linear(1024, 1024), nn.Linear(1024, 512)
        self.out = nn.Linear(512, 10)

    def forward(self, x):
        c1 = F.relu(self.conv1(x))
        c2 = F.relu(self.conv2(c1))
        f1 = F.relu(self.fc1(c2.flatten(1)))
        f2 = F.relu(self.fc2(f1))
        f3 = F.relu(self.fc3(f2))
        return [c1, c2, f1, f2, f3], self.out(f3)


def main():
    case = json.loads(sys.argv[1])
    torch.set_num_threads(case['threads'])
    torch.manual_seed(0)
    batch, steps = case['batch'], case['steps']
    if case['kind'] == 'snnl':
        x = torch.randn(batch, case['features'], requires_grad=True)
        y = torch.randint(0, 10, (batch,))

        def step():
            loss = snnl_stable(x, y, case['temperature'])
            loss.backward()
            x.grad = None
    else:
        h, w, c = case['shape']
        model = MLP() if case['kind'] == 'mlp' else CNN(c, 3200 if h == 28 else 4608)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.randn(batch, c, h, w)
        y = torch.randint(0, 10, (batch,))

        def step():
            optimizer.zero_grad()
            hidden, logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss = loss + case['factor'] * sum(snnl_pt(t, y, case['temperature']) for t in hidden)
            loss.backward()
            optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({'images_per_second': batch * steps / seconds, 'ms_per_step': 1000 * seconds / steps,
                      'torch': torch.__version__, 'threads': torch.get_num_threads()}))


if __name__ == '__main__':
    main()
