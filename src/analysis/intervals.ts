/**
 * Intervals for verdicts over a few seeds: Student's t quantile (by bisection on its distribution
 * function, integrated numerically), the t interval of a mean, and the verdict it gives on a difference.
 */

/** The density of Student's t with `df` degrees of freedom, up to its constant. */
function tKernel(x: number, df: number): number {
  return Math.pow(1 + (x * x) / df, -(df + 1) / 2);
}

/** Integral of tKernel from 0 to `x` by Simpson's rule on `steps` (even) panels. */
function tKernelIntegral(x: number, df: number, steps = 2000): number {
  const h = x / steps;
  let sum = tKernel(0, df) + tKernel(x, df);
  for (let i = 1; i < steps; i++) sum += (i % 2 === 1 ? 4 : 2) * tKernel(i * h, df);
  return (sum * h) / 3;
}

/** The integral of tKernel over [0, inf), through the substitution x = sqrt(df) tan(u) (a bounded range). */
function tKernelHalf(df: number, steps = 4000): number {
  // dx = sqrt(df) sec^2(u) du and (1 + tan^2 u)^(-(df + 1) / 2) = cos^(df + 1) u: the integrand is
  // sqrt(df) cos^(df - 1) u, smooth on [0, pi/2].
  const f = (u: number) => Math.pow(Math.cos(u), df - 1);
  const h = Math.PI / 2 / steps;
  let sum = f(0) + f(Math.PI / 2);
  for (let i = 1; i < steps; i++) sum += (i % 2 === 1 ? 4 : 2) * f(i * h);
  return (Math.sqrt(df) * sum * h) / 3;
}

/** The `p` quantile (0.5 < p < 1) of Student's t with `df` degrees of freedom (df >= 1), to about 1e-6. */
export function tQuantile(p: number, df: number): number {
  if (!(p > 0.5 && p < 1) || !(df >= 1)) throw new RangeError(`tQuantile needs 0.5 < p < 1 and df >= 1`);
  const half = tKernelHalf(df);
  const target = (p - 0.5) * 2 * half;
  let lo = 0;
  let hi = 1;
  while (tKernelIntegral(hi, df) < target) hi *= 2;
  for (let i = 0; i < 60 && hi - lo > 1e-9 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (tKernelIntegral(mid, df) < target) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface MeanInterval {
  n: number;
  mean: number;
  /** Sample standard deviation (n - 1). */
  std: number;
  /** The two-sided interval's ends at the given level; null for fewer than two values. */
  low: number | null;
  high: number | null;
  level: number;
}

/** The t interval of the mean of `values` (two-sided, default 95%). */
export function meanInterval(values: readonly number[], level = 0.95): MeanInterval {
  const n = values.length;
  const mean = n === 0 ? NaN : values.reduce((a, x) => a + x, 0) / n;
  const std = n < 2 ? 0 : Math.sqrt(values.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
  if (n < 2) return { n, mean, std, low: null, high: null, level };
  const half = (tQuantile(0.5 + level / 2, n - 1) * std) / Math.sqrt(n);
  return { n, mean, std, low: mean - half, high: mean + half, level };
}

export type Verdict = 'better' | 'worse' | 'not distinguishable';

/** Better where the whole interval lies above 0, worse where below, else not distinguishable. */
export function verdictOf(interval: { low: number | null; high: number | null }): Verdict {
  if (interval.low !== null && interval.low > 0) return 'better';
  if (interval.high !== null && interval.high < 0) return 'worse';
  return 'not distinguishable';
}
