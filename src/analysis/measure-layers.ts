/**
 * measureLayers: how entangled each layer of a user's tf.LayersModel is on given inputs (SNNL at a fixed
 * and at the optimal temperature), with the retrieval metrics of that field beside it.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import type { DistanceName } from '../loss/distance.js';
import { DEFAULTS } from '../loss/options.js';
import { getPreset, type PresetName } from '../loss/presets.js';
import { layerEntanglement, type LayerEntanglement } from '../training/evaluate.js';
import { classIds, layerOutput, type LabelInput } from '../training/with-snnl.js';
import { retrievalMetrics, type RetrievalMetrics } from './retrieval.js';

export interface MeasureLayersOptions {
  /** Layers to measure, by name. Default: every layer but the input layers. */
  layers?: string[];
  /** The fixed temperature measured beside the optimal one (default 1). */
  temperature?: number;
  distance?: DistanceName;
  preset?: PresetName;
  /** Examples per forward pass (default 500). */
  batchSize?: number;
  /** precision@1 and MAP@R of each layer beside SNNL (default true). */
  retrieval?: boolean;
}

/** A layer's entanglement, with the retrieval metrics pytorch-metric-learning users report. */
export type LayerMeasurement = LayerEntanglement & Partial<RetrievalMetrics>;

/**
 * The entanglement of each named layer of `model` on inputs `x` with labels `y`: SNNL at a fixed
 * temperature and at the optimal one, and (unless `retrieval: false`) precision@1 and MAP@R with the
 * same distance (analysis/retrieval.ts).
 *
 * @example
 * const layers = measureLayers(model, testImages, testLabels); // { dense1: { loss, optimalLoss, ... }, ... }
 */
export function measureLayers(
  model: tf.LayersModel,
  x: tf.Tensor,
  y: LabelInput,
  options: MeasureLayersOptions = {},
): Record<string, LayerMeasurement> {
  if (!(model instanceof tf.LayersModel)) throw new InputError('model', 'expected a tf.LayersModel');
  const labels = classIds(y, x.shape[0]!, 'y');
  const inputs = new Set<unknown>(model.inputLayers);
  const names = options.layers ?? model.layers.filter((l) => !inputs.has(l)).map((l) => l.name);
  // A view of the same layers (shared weights) that outputs each named layer.
  const view = tf.model({ inputs: model.inputs, outputs: names.map((name) => layerOutput(model, name)) });
  const predicted = view.predict(x, { batchSize: options.batchSize ?? 500 });
  const outputs = Array.isArray(predicted) ? predicted : [predicted];
  try {
    const measured: Record<string, LayerMeasurement> = layerEntanglement(
      outputs,
      names,
      labels,
      { distance: options.distance, preset: options.preset },
      options.temperature ?? 1,
    );
    if (options.retrieval !== false) {
      const distance = options.distance ?? getPreset(options.preset ?? DEFAULTS.preset).distances[0]!;
      outputs.forEach((h, k) => {
        const rows = h.shape[0]!;
        const values = h.dataSync() as Float32Array;
        Object.assign(
          measured[names[k]!]!,
          retrievalMetrics({ rows, dim: values.length / rows, values }, labels, distance),
        );
      });
    }
    return measured;
  } finally {
    tf.dispose(outputs);
  }
}
