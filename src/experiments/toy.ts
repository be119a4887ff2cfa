/**
 * The paper's Figure 1: points drawn from a few 2-D Gaussians, moved by gradient descent on SNNL with
 * respect to their own coordinates. Minimizing it pulls the classes apart; maximizing it (the opposite
 * sign) mixes them.
 */
import * as tf from '@tensorflow/tfjs';
import { seededRandom } from '../random.js';
import { snnl } from '../loss/snnl.js';
import { optimalTemperature } from '../loss/temperature.js';

export interface ToyOptions {
  classes: number;
  pointsPerClass: number;
  steps: number;
  /** Steps at which a frame is kept (step 0 is the start). */
  frames: number[];
  /** Step size of plain gradient descent on the summed per-point loss (each point follows its own gradient). */
  learningRate: number;
  seed: number;
}

export const TOY_DEFAULTS: ToyOptions = {
  classes: 3,
  pointsPerClass: 40,
  steps: 200,
  frames: [0, 10, 50, 200],
  learningRate: 0.01,
  seed: 1,
};

export interface ToyFrame {
  direction: 'disentangle' | 'entangle';
  step: number;
  loss: number;
  points: number[][];
  labels: number[];
}

/** Gaussian clouds whose centres overlap, so the classes start entangled. */
export function toyPoints(options: ToyOptions): { points: number[][]; labels: number[] } {
  const random = seededRandom(options.seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const points: number[][] = [];
  const labels: number[] = [];
  for (let c = 0; c < options.classes; c++) {
    const angle = (2 * Math.PI * c) / options.classes;
    for (let p = 0; p < options.pointsPerClass; p++) {
      points.push([0.8 * Math.cos(angle) + 0.6 * gauss(), 0.8 * Math.sin(angle) + 0.6 * gauss()]);
      labels.push(c);
    }
  }
  return { points, labels };
}

/** Zero mean, unit mean square. */
function standardize(x: tf.Tensor): tf.Tensor2D {
  const centred = tf.sub(x, tf.mean(x, 0));
  return tf.div(centred, tf.sqrt(tf.mean(tf.square(centred)))) as tf.Tensor2D;
}

export function runToy(options: ToyOptions = TOY_DEFAULTS): ToyFrame[] {
  const { points, labels } = toyPoints(options);
  const frames: ToyFrame[] = [];
  for (const direction of ['disentangle', 'entangle'] as const) {
    const sign = direction === 'disentangle' ? 1 : -1;
    const x = tf.variable(tf.tidy(() => standardize(tf.tensor2d(points))));
    const optimizer = tf.train.sgd(options.learningRate);
    let temperature = 1;
    for (let step = 0; step <= options.steps; step++) {
      // Entanglement is measured at the temperature that minimizes SNNL, which makes it blind to scale:
      // follow that temperature (searched again every few steps) so the points cannot just fly apart.
      if (step % 10 === 0) temperature = optimalTemperature(x, labels, { tolerance: 1e-3 }).temperature;
      if (options.frames.includes(step)) {
        const loss = tf.tidy(() => snnl(x, labels, { temperature }).dataSync()[0]!);
        frames.push({ direction, step, loss, points: x.arraySync() as number[][], labels });
      }
      if (step < options.steps) {
        optimizer.minimize(() => tf.mul(snnl(x, labels, { temperature, reduction: 'sum' }), sign) as tf.Scalar);
        tf.tidy(() => x.assign(standardize(x)));
      }
    }
    x.dispose();
    optimizer.dispose();
  }
  return frames;
}
