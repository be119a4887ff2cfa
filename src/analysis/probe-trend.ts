/**
 * Whether a probed layer's SNNL falls and then rises over training, measured against the probe-to-probe
 * noise of its own curve.
 *
 * - noise: the standard deviation of one probe around the curve, from second differences (which remove a
 *   locally linear trend): for independent noise of deviation s, y[k+1] - 2 y[k] + y[k-1] has deviation
 *   s sqrt(6); s = 1.4826 median |second difference| / sqrt(6) (the median: robust to the curve's bends).
 * - the minimum: of the curve smoothed by a centred moving average of `window` probes (ends shortened),
 *   with the progress (epochs) where it falls;
 * - the start: the first probe; the end: the mean of the last `tail` probes;
 * - fall = start - minimum, rise = end - minimum, each compared with 3 standard errors of the difference
 *   (s sqrt(1 + 1/window) for the fall, s sqrt(1/tail + 1/window) for the rise).
 */
export interface ProbeTrend {
  start: number;
  minimum: number;
  /** Progress (epochs) at the smoothed minimum. */
  minimumAt: number;
  end: number;
  noise: number;
  fall: number;
  rise: number;
  falls: boolean;
  rises: boolean;
}

export const TREND_DEFAULTS = { window: 5, tail: 4, sigmas: 3 };

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The trend of one curve: values at increasing progress (at least 2 x window probes). */
export function probeTrend(
  progress: number[],
  values: number[],
  options: Partial<typeof TREND_DEFAULTS> = {},
): ProbeTrend {
  const { window, tail, sigmas } = { ...TREND_DEFAULTS, ...options };
  const n = values.length;
  if (progress.length !== n) throw new RangeError('probeTrend: progress and values differ in length');
  if (n < 2 * window || n < tail + 2) throw new RangeError(`probeTrend: ${n} probes are too few`);
  const second = values.slice(1, -1).map((v, k) => values[k + 2]! - 2 * v + values[k]!);
  const noise = (1.4826 * median(second.map(Math.abs))) / Math.sqrt(6);
  const half = Math.floor(window / 2);
  const smoothed = values.map((_, k) => {
    const from = Math.max(0, k - half);
    const to = Math.min(n, k + half + 1);
    let sum = 0;
    for (let j = from; j < to; j++) sum += values[j]!;
    return sum / (to - from);
  });
  let at = 0;
  for (let k = 1; k < n; k++) if (smoothed[k]! < smoothed[at]!) at = k;
  const minimum = smoothed[at]!;
  const start = values[0]!;
  const end = values.slice(n - tail).reduce((a, v) => a + v, 0) / tail;
  const fall = start - minimum;
  const rise = end - minimum;
  return {
    start,
    minimum,
    minimumAt: progress[at]!,
    end,
    noise,
    fall,
    rise,
    falls: fall > sigmas * noise * Math.sqrt(1 + 1 / window),
    rises: rise > sigmas * noise * Math.sqrt(1 / tail + 1 / window),
  };
}
