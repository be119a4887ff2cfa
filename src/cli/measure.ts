/**
 * `snnl measure EMBEDDINGS LABELS`: the entanglement (SNNL) of any model's embeddings.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, useBackend } from '../engine/backend.js';
import { InputError } from '../errors.js';
import { readArrayFile } from '../io/arrays.js';
import type { NumericArray } from '../io/npy.js';
import type { DistanceName } from '../loss/distance.js';
import { checkFeatureRange, checkTemperature, DEFAULTS } from '../loss/options.js';
import { getPreset, type PresetName } from '../loss/presets.js';
import { snnlAtTemperatures } from '../loss/sweep.js';
import { optimalTemperature, type OptimalTemperature } from '../loss/temperature.js';
import { retrievalMetrics, type RetrievalMetrics } from '../analysis/retrieval.js';
import { EXACT_TOLERANCE, exactDistances, exactLoss, exactOptimalTemperature, gramError } from '../loss/exact.js';

export interface MeasureFlags {
  distance?: string;
  preset?: string;
  temperature?: string;
  blockSize?: string;
  retrieval?: boolean;
  backend?: string;
  json?: boolean;
}

export interface Measurement {
  embeddings: string;
  labels: string;
  examples: number;
  features: number;
  classes: number;
  preset: string;
  distance: string;
  backend: string;
  /** The temperature the loss was taken at (the optimal one with --temperature optimal). */
  temperature: number;
  loss: number;
  optimal?: OptimalTemperature;
  rowsWithoutPartner: number;
  rowsCounted: number;
  /**
   * Where the float32 form's estimated error at this temperature was too large (an outlying row or value):
   * the loss recomputed in float64 from direct differences, and that estimate.
   */
  exact?: { float32Error: number };
  /** precision@1 and MAP@R by the same distance (null with --no-retrieval; why, where too large). */
  retrieval: RetrievalMetrics | { leftOut: string } | null;
}

/** Parses --temperature: a number above 0, or 'optimal'. */
export function parseTemperatureFlag(value: string | undefined): number | 'optimal' {
  if (value === undefined) return DEFAULTS.temperature;
  if (value === 'optimal') return 'optimal';
  const number = value.trim() === '' ? NaN : Number(value);
  if (!Number.isFinite(number) || number <= 0) {
    throw new InputError('--temperature', `expected a number above 0 or 'optimal', got '${value}'`);
  }
  return checkTemperature(number, '--temperature');
}

function parseBlockSize(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InputError('--block-size', `expected a whole number above 0, got '${value}'`);
  return n;
}

function checkEmbeddings(array: NumericArray, name: string): void {
  if (array.shape.length < 2) {
    throw new InputError(
      name,
      `expected embeddings of shape (examples, features...), got shape (${array.shape.join(', ')})`,
    );
  }
  const rows = array.shape[0]!;
  const width = array.values.length / Math.max(1, rows);
  let largest = 0;
  for (let k = 0; k < array.values.length; k++) {
    const v = array.values[k]!;
    if (!Number.isFinite(v)) {
      throw new InputError(name, `row ${Math.floor(k / width)} holds ${v}; embeddings must be finite numbers`);
    }
    // As float32, the precision the loss is computed in (a float64 file's 1e39 is +inf there).
    const a = Math.abs(Math.fround(v));
    if (a > largest) largest = a;
  }
  checkFeatureRange(largest, width, name);
}

function checkLabels(array: NumericArray, name: string, rows: number): Int32Array {
  const shape = array.shape;
  const oneColumn = shape.length === 1 || (shape.length === 2 && shape[1] === 1);
  if (!oneColumn) throw new InputError(name, `expected one label per example, got shape (${shape.join(', ')})`);
  if (shape[0] !== rows) {
    throw new InputError(name, `has ${shape[0]} labels but the embeddings have ${rows} rows; they must match`);
  }
  const out = new Int32Array(rows);
  array.values.forEach((v, k) => {
    if (!Number.isInteger(v))
      throw new InputError(name, `label ${k} is ${v}; labels must be whole numbers (class ids)`);
    out[k] = v;
  });
  return out;
}

export async function measure(embeddingsPath: string, labelsPath: string, flags: MeasureFlags): Promise<Measurement> {
  const temperature = parseTemperatureFlag(flags.temperature);
  const blockSize = parseBlockSize(flags.blockSize);
  const embeddings = readArrayFile(embeddingsPath);
  checkEmbeddings(embeddings, embeddingsPath);
  const rows = embeddings.shape[0]!;
  if (rows < 2) throw new InputError(embeddingsPath, `has ${rows} example; SNNL needs at least 2`);
  const labels = checkLabels(readArrayFile(labelsPath), labelsPath, rows);
  const backend = await useBackend(flags.backend);
  const options = {
    distance: flags.distance as DistanceName | undefined,
    preset: flags.preset as PresetName | undefined,
    blockSize,
    checkFinite: false,
  };
  const x = tf.tensor(Float32Array.from(embeddings.values), embeddings.shape, 'float32');
  try {
    let optimal: OptimalTemperature | undefined;
    if (temperature === 'optimal') optimal = optimalTemperature(x, labels, options);
    const used = optimal?.temperature ?? (temperature as number);
    // The search already took the loss at its temperature: no second pass over the data for it.
    const details = snnlAtTemperatures(x, labels, optimal ? [] : [used], options);
    let loss = optimal?.loss ?? details.losses[0]!;
    const preset = options.preset ?? DEFAULTS.preset;
    const distance = options.distance ?? getPreset(preset).distances[0]!;
    const features = embeddings.values.length / rows;
    // Where the float32 Gram form cannot resolve these scales at this temperature: float64, exactly (the
    // optimum may move there: `optimal` is replaced).
    let exact: Measurement['exact'];
    const float32Error = gramError(embeddings.values, rows, features, used, distance);
    if (float32Error > EXACT_TOLERANCE * Math.max(1, Math.abs(loss))) {
      const distances = exactDistances(embeddings.values, rows, features, distance);
      if (optimal) {
        const best = exactOptimalTemperature(distances, labels, preset);
        optimal = { ...optimal, temperature: best.temperature, loss: best.loss, atBoundary: best.atBoundary };
        loss = best.loss;
      } else loss = exactLoss(distances, labels, used, preset).loss;
      exact = { float32Error };
    }
    // Never a NaN printed with exit 0: the checks above should make this unreachable.
    if (!Number.isFinite(loss)) {
      throw new Error(`the loss of ${embeddingsPath} came out ${loss} at temperature ${used}; please report it`);
    }
    let retrieval: Measurement['retrieval'] = null;
    if (flags.retrieval !== false) {
      const values = x.dataSync() as Float32Array;
      try {
        retrieval = retrievalMetrics({ rows, dim: features, values }, labels, distance);
      } catch (error) {
        if (!(error instanceof InputError)) throw error;
        retrieval = { leftOut: error.detail };
      }
    }
    return {
      embeddings: embeddingsPath,
      labels: labelsPath,
      examples: rows,
      features,
      classes: new Set(labels).size,
      preset,
      distance,
      backend,
      temperature: optimal?.temperature ?? used,
      loss,
      ...(exact ? { exact } : {}),
      ...(optimal ? { optimal } : {}),
      rowsWithoutPartner: details.rowsWithoutPartner,
      rowsCounted: details.rowsCounted,
      retrieval,
    };
  } finally {
    x.dispose();
  }
}

const fmt = (v: number) =>
  Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(4) : v.toPrecision(6);

export function formatMeasurement(m: Measurement): string {
  const lines = [
    `SNNL of ${m.embeddings} (${m.examples} examples x ${m.features} features, ${m.classes} classes)`,
    `  preset ${m.preset}, distance ${m.distance}, backend ${describeBackend()}`,
    `  loss                 ${fmt(m.loss)}`,
    `  temperature          ${fmt(m.temperature)}${m.optimal ? ' (optimal: minimizes the loss)' : ''}`,
  ];
  if (m.optimal?.atBoundary) {
    lines.push('  note                 the minimum lies at the edge of the range searched; the loss may fall further');
  }
  if (m.exact)
    lines.push(
      `  computed in float64   the features span scales the float32 distances cannot resolve here (their estimated error ${fmt(m.exact.float32Error)}): every distance from direct differences`,
    );
  const without = m.rowsWithoutPartner;
  const how = m.preset === 'stable' ? 'left out of the mean' : 'each counted as -log(1e-5)';
  lines.push(`  rows without a same-class partner: ${without}${without > 0 ? ` (${how})` : ''}`);
  const r = m.retrieval;
  if (r && 'leftOut' in r) lines.push(`  retrieval metrics left out: ${r.leftOut}`);
  else if (r && r.queries > 0)
    lines.push(
      `  precision@1          ${fmt(r.precisionAt1)}  (nearest other row has the label; ${r.queries} queries)`,
      `  MAP@R                ${fmt(r.mapAtR)}  (R = other rows of the query's class)`,
    );
  return lines.join('\n');
}
