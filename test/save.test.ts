/**
 * `file://` save and load in Node (the Node entry registers them): a tf.loadLayersModel round trip of
 * snnl's own networks on wasm and native, the errors, and `snnl export` of a run folder.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import '../src/index.js';
import { fileSystem } from '../src/io/file-system.js';
import { loadAddon } from '../src/engine/native/addon.js';
import { buildNetwork } from '../src/models/models.js';
import { loadTrainedNetwork } from '../src/training/run-store.js';
import { needs, onBackend } from './helpers.js';
import { seeded } from './oracle.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'snnl-save-'));
});

const built = 'addon' in loadAddon();
const nativeTest = needs(
  built,
  'the native addon is not built (sudo apt-get install libtorch-dev; npm run build:native)',
);

/** Saves snnl's reference CNN to file://, loads it back and compares every output on random images. */
async function roundTrip(backend: string): Promise<void> {
  await onBackend(backend);
  const net = buildNetwork('cleverhans-cnn', [28, 28, 1], 10, 5);
  const dir = join(root, `cnn-${backend}`);
  const saved = await net.model.save(`file://${dir}`);
  expect(saved.modelArtifactsInfo.weightDataBytes).toBeGreaterThan(0);
  const random = seeded(3);
  const x = tf.tensor4d(
    Float32Array.from({ length: 4 * 784 }, () => random()),
    [4, 28, 28, 1],
  );
  for (const path of [join(dir, 'model.json'), dir]) {
    const loaded = await tf.loadLayersModel(`file://${path}`);
    const want = net.model.predict(x) as tf.Tensor[];
    const got = loaded.predict(x) as tf.Tensor[];
    expect(got).toHaveLength(want.length);
    want.forEach((w, k) => expect(Array.from(got[k]!.dataSync())).toEqual(Array.from(w.dataSync())));
    expect(loaded.outputNames).toEqual(net.model.outputNames);
    tf.dispose([...want, ...got]);
    loaded.dispose();
  }
  net.model.dispose();
  x.dispose();
}

describe('file:// save and load in Node', () => {
  it('round-trips a network on wasm with identical outputs (model.json or its folder)', () => roundTrip('wasm'));
  nativeTest('round-trips a network on native with identical outputs', () => roundTrip('native'));

  it('keeps the compiled training config, and names the file in every error', async () => {
    await onBackend('cpu');
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
    model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    const dir = join(root, 'compiled');
    await model.save(`file://${dir}`, { includeOptimizer: true });
    const loaded = await tf.loadLayersModel(`file://${dir}/model.json`);
    expect(loaded.loss).toBe('meanSquaredError');
    expect(loaded.optimizer).toBeDefined();
    const missing = join(root, 'nowhere', 'model.json');
    await expect(tf.loadLayersModel(`file://${missing}`)).rejects.toThrow(`${missing}: cannot read it`);
    const garbage = join(root, 'garbage.json');
    writeFileSync(garbage, '{ not json');
    await expect(tf.loadLayersModel(`file://${garbage}`)).rejects.toThrow(`${garbage}: is not JSON`);
    const notModel = join(root, 'other.json');
    writeFileSync(notModel, '{"a": 1}');
    await expect(fileSystem(notModel).load!()).rejects.toThrow(`${notModel}: has no modelTopology`);
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    await expect(model.save(`file://${file}`)).rejects.toThrow(`${file}: is a file; file:// saves into a folder`);
  });

  it("snnl export writes a run as model.json that loads with the run's own predictions", async () => {
    const run = join(root, 'run');
    const trained = spawnSync(
      process.execPath,
      [CLI, 'train', '--dataset', 'mnist', '--model', 'mlp', '--widths', '16', '--epochs', '1'].concat([
        '--train-subset',
        '256',
        '--eval-sample',
        '50',
        '--out',
        run,
        '--backend',
        'cpu',
        '--quiet',
      ]),
      { encoding: 'utf8' },
    );
    expect(trained.status, trained.stderr).toBe(0);
    const exported = spawnSync(process.execPath, [CLI, 'export', run, '--backend', 'cpu', '--json'], {
      encoding: 'utf8',
    });
    expect(exported.status, exported.stderr).toBe(0);
    const result = JSON.parse(exported.stdout);
    expect(result).toMatchObject({ out: join(run, 'model'), epoch: 1, outputs: ['fc1', 'logits'] });
    await onBackend('cpu');
    const loaded = await tf.loadLayersModel(`file://${join(run, 'model', 'model.json')}`);
    const { net } = loadTrainedNetwork(run);
    const x = tf.randomUniform([3, 28, 28, 1], 0, 1, 'float32', 9);
    const want = net.model.predict(x) as tf.Tensor[];
    const got = loaded.predict(x) as tf.Tensor[];
    want.forEach((w, k) => expect(Array.from(got[k]!.dataSync())).toEqual(Array.from(w.dataSync())));
    tf.dispose([x, ...want, ...got]);
    const bad = spawnSync(process.execPath, [CLI, 'export', join(root, 'no-run')], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')[0]).toMatch(/no-run/);
  }, 120_000);
});
