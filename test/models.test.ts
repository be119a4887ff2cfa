import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildNetwork, MODEL_NAMES, type ModelName } from '../src/models/models.js';
import { trainStep } from '../src/training/step.js';
import { InputError } from '../src/errors.js';
import { onBackend } from './helpers.js';

beforeAll(() => onBackend('wasm'));

/** Shapes of every output of a model for a batch of 2. */
function outputShapes(name: ModelName, shape: [number, number, number]) {
  const net = buildNetwork(name, shape, 10, 1);
  const outs = tf.tidy(() => (net.model.predict(tf.zeros([2, ...shape])) as tf.Tensor[]).map((t) => t.shape));
  net.model.dispose();
  return { layers: net.hiddenLayers, shapes: outs };
}

describe('models', () => {
  it('the REFERENCE CNN has its exact shapes on 28x28x1 and 32x32x3', () => {
    const mnist = outputShapes('cnn', [28, 28, 1]);
    expect(mnist.layers).toEqual(['conv1', 'conv2', 'fc1', 'fc2', 'fc3']);
    expect(mnist.shapes).toEqual([
      [2, 12, 12, 64],
      [2, 5, 5, 128],
      [2, 1024],
      [2, 1024],
      [2, 512],
      [2, 10],
    ]);
    const cifar = buildNetwork('cnn', [32, 32, 3], 10, 1);
    // Flatten 4608 for 32x32x3, as docs/reference.md says.
    expect(cifar.model.getLayer('fc1').getWeights()[0]!.shape).toEqual([4608, 1024]);
    cifar.model.dispose();
  });

  it('initializes hidden layers Kaiming-normal (fan in) and the output Xavier-uniform, biases zero', () => {
    const net = buildNetwork('cnn', [28, 28, 1], 10, 3);
    const [kernel, bias] = net.model.getLayer('fc1').getWeights();
    const values = Array.from(kernel!.dataSync());
    const std = Math.sqrt(values.reduce((a, v) => a + v * v, 0) / values.length);
    expect(std).toBeCloseTo(Math.sqrt(2 / 3200), 3);
    expect(Math.max(...Array.from(bias!.dataSync()))).toBe(0);
    const out = Array.from(net.model.getLayer('logits').getWeights()[0]!.dataSync());
    const limit = Math.sqrt(6 / (512 + 10));
    expect(Math.max(...out)).toBeLessThanOrEqual(limit);
    expect(Math.max(...out)).toBeGreaterThan(0.9 * limit);
    net.model.dispose();
  });

  it('the cleverhans CNN, the MLP, the ResNet and the autoencoder name their hidden layers', () => {
    expect(outputShapes('cleverhans-cnn', [28, 28, 1]).shapes).toEqual([
      [2, 14, 14, 64],
      [2, 5, 5, 128],
      [2, 1, 1, 128],
      [2, 10],
    ]);
    expect(outputShapes('mlp', [28, 28, 1]).shapes).toEqual([
      [2, 500],
      [2, 500],
      [2, 10],
    ]);
    const resnet = outputShapes('resnet', [32, 32, 3]);
    expect(resnet.layers).toEqual(['s1b3_out', 's2b3_out', 's3b3_out', 'pool']);
    expect(resnet.shapes.at(-2)).toEqual([2, 64]);
    const ae = outputShapes('autoencoder', [28, 28, 1]);
    expect(ae.layers).toEqual(['enc1', 'enc2', 'enc3', 'code', 'dec1', 'dec2', 'dec3']);
    expect(ae.shapes.at(-1)).toEqual([2, 784]);
  });

  it.each(MODEL_NAMES.map((n) => [n]))('%s trains a step with SNNL on its hidden layers', (name) => {
    const shape: [number, number, number] = name === 'resnet' ? [32, 32, 3] : [28, 28, 1];
    const net = buildNetwork(name, shape, 10, 1, name === 'resnet' ? { blocks: 1 } : {});
    const labels = Int32Array.from({ length: 8 }, (_, i) => i % 4);
    const batch = {
      x: tf.randomUniform([8, ...shape], 0, 1, 'float32', 5) as tf.Tensor4D,
      y: tf.tensor1d(labels, 'int32'),
      labels,
    };
    const optimizer = tf.train.adam(1e-3);
    const before = tf.memory().numTensors;
    const spec = {
      classes: 10,
      factor: -1,
      temperature: 'optimal' as const,
      layers: net.hiddenLayers.map((_, index) => ({ index, weight: 1 })),
      combine: 'min' as const,
      snnl: { distance: 'cosine' as const, checkFinite: false },
      multipliers: net.hiddenLayers.map(() => 1),
    };
    const first = trainStep(net, optimizer, batch, spec);
    const afterFirst = tf.memory().numTensors;
    const second = trainStep(net, optimizer, batch, spec);
    expect(Number.isFinite(first.loss) && Number.isFinite(second.loss)).toBe(true);
    expect(spec.multipliers.some((m) => m !== 1)).toBe(true);
    // The first step creates Adam's slots; after that a step leaves nothing behind.
    expect(tf.memory().numTensors).toBe(afterFirst);
    expect(afterFirst).toBeGreaterThanOrEqual(before);
    tf.dispose([batch.x, batch.y]);
    net.model.dispose();
    optimizer.dispose();
  });

  it('refuses a model that cannot take the data', () => {
    expect(() => buildNetwork('resnet', [28, 28, 1], 10, 1)).toThrow(InputError);
    expect(() => buildNetwork('vgg' as ModelName, [28, 28, 1], 10, 1)).toThrow(/unknown model 'vgg'/);
  });
});
