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


def stable_logits(x, y, temperature):
    """Row logits -D/T of the centred rows (diagonal -inf), and the same with other classes masked out."""
    c = x.reshape(x.shape[0], -1)
    c = c - c.mean(0, keepdim=True)
    sq = (c * c).sum(1)
    d = (sq[:, None] + sq[None, :] - 2.0 * c @ c.T).clamp_min(0)
    eye = torch.eye(x.shape[0], dtype=torch.bool)
    logits = (-d / temperature).masked_fill(eye, float('-inf'))
    same = (y[:, None] == y[None, :]) & ~eye
    return c, logits, logits.masked_fill(~same, float('-inf'))


def snnl_stable(x, y, temperature):
    """The stable formula (squared Euclidean, log-sum-exp, exact self mask), by autodiff."""
    _, logits, partners = stable_logits(x, y, temperature)
    return torch.mean(torch.logsumexp(logits, 1) - torch.logsumexp(partners, 1))


class StableClosedForm(torch.autograd.Function):
    """The stable formula with the closed-form gradient snnl uses (one product forward, one backward)."""

    @staticmethod
    def forward(ctx, x, y, temperature):
        with torch.no_grad():
            c, logits, partners = stable_logits(x, y, temperature)
        lse_all, lse_pos = torch.logsumexp(logits, 1), torch.logsumexp(partners, 1)
        p = torch.exp(logits - lse_all[:, None])
        q = torch.exp(partners - lse_pos[:, None])
        ctx.save_for_backward(c, p - q)
        ctx.temperature = temperature
        return torch.mean(lse_all - lse_pos)

    @staticmethod
    def backward(ctx, grad):
        c, g = ctx.saved_tensors
        h = g * (-grad / (g.shape[0] * ctx.temperature))
        a = h + h.T
        return 2.0 * (a.sum(1, keepdim=True) * c - a @ c), None, None


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(784, 500), nn.Linear(500, 500), nn.Linear(500, 10)

    def forward(self, x):
        h1 = F.relu(self.fc1(x.flatten(1)))
        h2 = F.relu(self.fc2(h1))
        return [h1, h2], self.out(h2)


class CNN(nn.Module):
    """docs/reference.md section 4."""

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


class Generator(nn.Module):
    """The GAN study's generator (src/models/gan.ts): code -> dense -> two stride-2 transposed convolutions."""

    def __init__(self, code):
        super().__init__()
        self.dense = nn.Linear(code, 7 * 7 * 128)
        self.up1 = nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1)
        self.image = nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1)

    def forward(self, z):
        h = F.relu(self.dense(z)).view(-1, 128, 7, 7)
        return torch.sigmoid(self.image(F.relu(self.up1(h))))


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(64, 128, 4, stride=2, padding=1)
        self.logit = nn.Linear(7 * 7 * 128, 1)

    def forward(self, x):
        h = F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x), 0.2)), 0.2)
        return self.logit(h.flatten(1))


def gaussian_classes(b, d, classes=10):
    """b points in d dimensions, 10 classes around means drawn N(0, 0.5^2), unit noise (as snnl's side)."""
    means = torch.randn(classes, d) * 0.5
    y = torch.arange(b) % classes
    return means[y] + torch.randn(b, d), y


def stable_losses_blocked(x, y, temperatures, rows):
    """The stable formula (squared Euclidean) at each temperature, without gradient, in blocks of rows:
    each block's distances computed once for every temperature, as snnl's sweep does."""
    b = x.shape[0]
    c = x - x.mean(0, keepdim=True)
    sq = (c * c).sum(1)
    totals = torch.zeros(len(temperatures), dtype=torch.float64)
    counted = 0
    with torch.no_grad():
        for start in range(0, b, rows):
            end = min(b, start + rows)
            d = torch.addmm(sq[None, :], c[start:end], c.T, alpha=-2.0).add_(sq[start:end, None]).clamp_min_(0)
            own = torch.arange(end - start)
            d[own, own + start] = float('inf')  # never its own neighbour
            same = y[start:end, None] == y[None, :]
            same[own, own + start] = False
            valid = same.any(1)
            counted += int(valid.sum())
            nearest = d.amin(1, keepdim=True)
            same_f = same.float()
            e = torch.empty_like(d)  # one buffer for every temperature: no fresh 256 MB tensor per op
            for k, t in enumerate(temperatures):
                # One exponential per entry, shifted by the nearest neighbour; rows whose partners all
                # underflow against it take their partners' own log-sum-exp.
                torch.sub(d, nearest, out=e).mul_(-1.0 / t).exp_()
                lse_all = torch.log(e.sum(1))
                picked = e.mul_(same_f).sum(1)
                lse_partners = torch.log(picked)
                low = valid & (picked < 1e-30)
                if low.any():
                    rows_low = (d[low] - nearest[low]) * (-1.0 / t)
                    lse_partners[low] = torch.logsumexp(rows_low.masked_fill(~same[low], float('-inf')), 1)
                totals[k] += (lse_all - lse_partners)[valid].double().sum()
    return (totals / max(1, counted)).tolist()


def main():
    case = json.loads(sys.argv[1])
    torch.set_num_threads(case['threads'])
    torch.manual_seed(0)
    if case['kind'] == 'snnl-scale':
        # The loss of a whole data set at one or more temperatures (snnl measure's work), blocked.
        import resource
        x, y = gaussian_classes(case['batch'], case['features'])
        start = time.perf_counter()
        losses = stable_losses_blocked(x, y, case['temperatures'], case['rows'])
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({'seconds': seconds, 'peak_mb': peak, 'losses': losses[:3], 'torch': torch.__version__}))
        return
    if case['kind'] == 'gemm':
        # The host's matrix-product rate: an n x n x n float32 product, median of 5 after a warm-up.
        n = case['n']
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - start)
        print(json.dumps({'gflops': 2 * n ** 3 / sorted(times)[2] / 1e9, 'torch': torch.__version__}))
        return
    batch, steps = case['batch'], case['steps']
    if case['kind'] == 'knn':
        # Exact k-NN as a PyTorch user writes it: cdist (by matrix products at these sizes) and topk,
        # over the training rows in the same chunks as snnl, merged with the best so far.
        queries = torch.rand(batch, case['features'])
        train = torch.rand(case['train'], case['features'])
        k, chunk = case['k'], case['chunk']

        def step():
            best_d = best_i = None
            for start in range(0, train.shape[0], chunk):
                d = torch.cdist(queries, train[start:start + chunk]).square_()
                values, indices = d.topk(min(k, d.shape[1]), dim=1, largest=False)
                if best_d is not None:
                    values = torch.cat([best_d, values], 1)
                    indices = torch.cat([best_i, indices + start], 1)
                    values, order = values.topk(k, dim=1, largest=False)
                    indices = indices.gather(1, order)
                best_d, best_i = values, indices
    elif case['kind'] == 'gan':
        # One step of the GAN study: the discriminator on real and generated images, then the generator
        # (non-saturating loss, Adam 2e-4, beta1 0.5).
        code = case['features']
        g, d = Generator(code), Discriminator()
        g_opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
        d_opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        real = torch.rand(batch, 1, 28, 28)

        def step():
            fake = g(torch.randn(batch, code)).detach()
            d_opt.zero_grad()
            d_loss = F.softplus(-d(real)).mean() + F.softplus(d(fake)).mean()
            d_loss.backward()
            d_opt.step()
            g_opt.zero_grad()
            g_loss = F.softplus(-d(g(torch.randn(batch, code)))).mean()
            g_loss.backward()
            g_opt.step()
    elif case['kind'] in ('snnl', 'snnl-closed'):
        x = torch.randn(batch, case['features'], requires_grad=True)
        y = torch.arange(batch) * 7 % 10
        formula = snnl_stable if case['kind'] == 'snnl' else StableClosedForm.apply

        def step():
            loss = formula(x, y, case['temperature'])
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
            if case['factor'] != 0:  # factor 0: the plain step, no SNNL term at all
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
