/**
 * An independent float64 implementation of SNNL by plain loops over pairs, straight from the paper's
 * formula and the reference implementations (docs/reference.md, sections 1 and 2). Tests compare the tensor
 * code with it, and differentiate it by central finite differences.
 */
export type Matrix = number[][];
export type OracleDistance = 'squared-euclidean' | 'euclidean' | 'cosine';
export type OraclePreset = 'stable' | 'cleverhans' | 'pt-snnl';

export function pairDistance(a: number[], b: number[], distance: OracleDistance): number {
  if (distance === 'cosine') {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let k = 0; k < a.length; k++) {
      dot += a[k]! * b[k]!;
      na += a[k]! * a[k]!;
      nb += b[k]! * b[k]!;
    }
    return 1 - dot / (Math.max(Math.sqrt(na), 1e-12) * Math.max(Math.sqrt(nb), 1e-12));
  }
  let s = 0;
  for (let k = 0; k < a.length; k++) s += (a[k]! - b[k]!) ** 2;
  return distance === 'euclidean' ? Math.sqrt(s) : s;
}

export interface OracleResult {
  loss: number;
  perRow: number[];
  rowsWithoutPartner: number;
}

export function oracleSnnl(
  x: Matrix,
  y: number[],
  temperature: number,
  distance: OracleDistance,
  preset: OraclePreset,
): OracleResult {
  const b = x.length;
  const perRow: number[] = [];
  let counted = 0;
  let total = 0;
  let without = 0;
  for (let i = 0; i < b; i++) {
    const logits: number[] = [];
    const partner: boolean[] = [];
    for (let j = 0; j < b; j++) {
      if (j === i) continue;
      logits.push(-pairDistance(x[i]!, x[j]!, distance) / temperature);
      partner.push(y[j] === y[i]);
    }
    const hasPartner = partner.some(Boolean);
    if (!hasPartner) without++;
    if (preset === 'stable') {
      if (!hasPartner) {
        perRow.push(0);
        continue;
      }
      const lse = (keep: (k: number) => boolean) => {
        let m = -Infinity;
        logits.forEach((l, k) => keep(k) && (m = Math.max(m, l)));
        let s = 0;
        logits.forEach((l, k) => keep(k) && (s += Math.exp(l - m)));
        return m + Math.log(s);
      };
      const li = lse(() => true) - lse((k) => partner[k]!);
      perRow.push(li);
      total += li;
      counted++;
    } else {
      const eps = 1e-5;
      let s = 0;
      let n = 0;
      logits.forEach((l, k) => {
        const f = Math.exp(l);
        s += f;
        if (partner[k]) n += f;
      });
      const li = -Math.log(eps + n / (eps + s));
      perRow.push(li);
      total += li;
      counted++;
    }
  }
  return { loss: counted === 0 ? 0 : total / counted, perRow, rowsWithoutPartner: without };
}

/** dLoss/dX by central differences of the float64 oracle. */
export function finiteDifferenceGradient(f: (x: Matrix) => number, x: Matrix, step = 1e-5): Matrix {
  return x.map((row, i) =>
    row.map((v, k) => {
      const plus = x.map((r) => [...r]);
      const minus = x.map((r) => [...r]);
      const h = step * Math.max(1, Math.abs(v));
      plus[i]![k] = v + h;
      minus[i]![k] = v - h;
      return (f(plus) - f(minus)) / (2 * h);
    }),
  );
}

/** The project's seeded generator (mulberry32), so test data is the same on every run. */
export { seededRandom as seeded } from '../src/random.js';

export function normalMatrix(rows: number, cols: number, random: () => number, scale = 1): Matrix {
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => gauss() * scale));
}

export function relativeError(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
}

/** ||a - b|| / ||b|| over all entries. */
export function matrixRelativeError(a: Matrix, b: Matrix): number {
  let num = 0;
  let den = 0;
  a.forEach((row, i) =>
    row.forEach((v, k) => {
      num += (v - b[i]![k]!) ** 2;
      den += b[i]![k]! ** 2;
    }),
  );
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}
