/**
 * Probes: chosen layers of a network measured several times per epoch while it trains (the poster's
 * "SNNL of each layer in the final residual block of a ResNet" curves). Each probe passes a fixed set of
 * test images through the network in inference mode and records, per layer, SNNL at the optimal
 * temperature. Any layer of the model can be probed, not only the hidden layers the loss is taken on.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { gatherBatch } from '../data/batches.js';
import type { Dataset } from '../data/datasets.js';
import { InputError } from '../errors.js';
import { writeAtomic } from '../io/atomic.js';
import type { SnnlOptions } from '../loss/options.js';
import { optimalTemperature } from '../loss/temperature.js';
import type { Network } from '../models/models.js';
import { normalizationFor } from './evaluate.js';

export interface ProbeRecord {
  /** Finished epochs before this probe (a whole number), and batches done in the epoch after them. */
  epoch: number;
  batch: number;
  /** Training progress in epochs: epoch + batch / batches per epoch. */
  progress: number;
  layers: Record<string, { optimalTemperature: number; optimalLoss: number }>;
}

/** The layers of the last residual block of a snnl ResNet (convolutions, normalizations, addition, activations). */
export function finalBlockLayers(net: Network): string[] {
  const outs = net.model.layers.map((l) => l.name).filter((n) => /^s\d+b\d+_out$/.test(n));
  const last = outs.at(-1);
  if (last === undefined) {
    throw new InputError('--probe-layers', `'final-block' names a ResNet's last residual block; ${net.name} has none`);
  }
  const prefix = last.slice(0, -'out'.length);
  return net.model.layers.map((l) => l.name).filter((n) => n.startsWith(prefix));
}

/** The probed layers' names, checked against the model. */
export function resolveProbeLayers(net: Network, layers: string[] | 'final-block'): string[] {
  if (layers === 'final-block') return finalBlockLayers(net);
  const names = new Set(net.model.layers.map((l) => l.name));
  const unknown = layers.filter((l) => !names.has(l));
  if (unknown.length > 0) {
    const listed = net.model.layers
      .map((l) => l.name)
      .filter((n) => n !== 'image')
      .join(', ');
    throw new InputError('--probe-layers', `unknown layer ${unknown.join(', ')}; ${net.name} has ${listed}`);
  }
  if (layers.length === 0) throw new InputError('--probe-layers', 'names no layer');
  return layers;
}

/** The batches (1-based counts within an epoch of `total`) after which an epoch's `perEpoch` probes run. */
export function probeBatches(total: number, perEpoch: number): Set<number> {
  const at = new Set<number>();
  for (let j = 1; j <= perEpoch; j++) at.add(Math.max(1, Math.round((total * j) / perEpoch)));
  return at;
}

/** A network's chosen layers on fixed test images, measured on demand. */
export class LayerProbe {
  readonly layers: string[];
  private readonly model: tf.LayersModel;
  private readonly x: tf.Tensor;
  private readonly labels: Int32Array;

  constructor(
    net: Network,
    dataset: Dataset,
    layers: string[],
    sample: Int32Array,
    private readonly options: Pick<SnnlOptions, 'distance' | 'preset'>,
  ) {
    this.layers = layers;
    // A second model over the same layers (shared weights): its outputs are the probed layers.
    this.model = tf.model({
      inputs: net.model.inputs,
      outputs: layers.map((n) => net.model.getLayer(n).output as tf.SymbolicTensor),
    });
    const batch = gatherBatch(dataset.test, dataset.imageShape, normalizationFor(net, dataset), sample);
    this.x = batch.x;
    this.labels = batch.labels;
    batch.y.dispose();
  }

  /** SNNL at the optimal temperature of each probed layer now. */
  measure(): ProbeRecord['layers'] {
    const raw = this.model.predict(this.x, { batchSize: 250 });
    const outputs = Array.isArray(raw) ? raw : [raw];
    const result: ProbeRecord['layers'] = {};
    try {
      this.layers.forEach((name, k) => {
        const h = tf.reshape(outputs[k]!, [this.labels.length, -1]);
        const best = optimalTemperature(h, this.labels, { ...this.options, checkFinite: false });
        h.dispose();
        result[name] = { optimalTemperature: best.temperature, optimalLoss: best.loss };
      });
    } finally {
      tf.dispose(outputs);
    }
    return result;
  }

  dispose(): void {
    this.x.dispose();
  }
}

/** The probes recorded in a run folder's probes.jsonl (none when it has no such file). */
export function readProbes(path: string): ProbeRecord[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as ProbeRecord);
}

export function writeProbes(path: string, records: ProbeRecord[]): void {
  writeAtomic(path, records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : ''));
}
