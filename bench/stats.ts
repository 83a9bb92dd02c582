/**
 * @fileoverview Statistics for benchmark reports: medians over runs, ratios
 * of medians with a bootstrap 95% confidence interval, geometric means.
 * Resampling uses a seeded generator so a report can be recomputed exactly.
 */
import { geometricMean, median, quantile, sampleWithReplacement } from 'simple-statistics';

import { seededRandom } from '../src/random.js';

export { seededRandom };

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new Error('spread of no values');
  return { median: median([...values]), min: Math.min(...values), max: Math.max(...values), n: values.length };
}

export interface RatioEstimate {
  /** median(numerator) / median(denominator) */
  ratio: number;
  /** 95% bootstrap percentile interval of the ratio of medians. */
  ci95: [number, number];
}

/**
 * Ratio of medians of two sets of runs measured side by side, with a
 * percentile-bootstrap interval: both sets are resampled with replacement
 * `resamples` times and the 2.5% and 97.5% quantiles of the resampled ratios
 * are reported.
 */
export function ratioOfMedians(
  numerator: readonly number[],
  denominator: readonly number[],
  resamples = 2000,
  seed = 0x6b6a6974,
): RatioEstimate {
  return bootstrapRatio(numerator, denominator, (xs) => median([...xs]), resamples, seed);
}

/**
 * stat(numerator runs) / stat(denominator runs), with the same percentile
 * bootstrap over runs: for statistics that pool runs (a tail quantile of
 * all requests of all runs) rather than take one number per run.
 */
export function bootstrapRatio<T>(
  numerator: readonly T[],
  denominator: readonly T[],
  stat: (runs: readonly T[]) => number,
  resamples = 2000,
  seed = 0x6b6a6974,
): RatioEstimate {
  if (numerator.length === 0 || denominator.length === 0) throw new Error('ratio of empty run sets');
  const ratio = stat(numerator) / stat(denominator);
  const random = seededRandom(seed);
  const ratios: number[] = [];
  for (let i = 0; i < resamples; i++) {
    const a = sampleWithReplacement([...numerator], numerator.length, random);
    const b = sampleWithReplacement([...denominator], denominator.length, random);
    ratios.push(stat(a) / stat(b));
  }
  return { ratio, ci95: [quantile(ratios, 0.025), quantile(ratios, 0.975)] };
}

export function geomean(values: readonly number[]): number {
  return geometricMean([...values]);
}

/** Percentile (0..1) of a latency histogram given as bucket bounds and counts. */
export function histogramPercentile(
  buckets: readonly { lowNs: number; highNs: number; count: number }[],
  p: number,
): number {
  const total = buckets.reduce((s, b) => s + b.count, 0);
  if (total === 0) return 0;
  const target = p * total;
  let seen = 0;
  for (const b of buckets) {
    if (b.count === 0) continue;
    if (seen + b.count >= target) {
      // Interpolate inside the bucket.
      const within = (target - seen) / b.count;
      return b.lowNs + within * (b.highNs - b.lowNs);
    }
    seen += b.count;
  }
  return buckets[buckets.length - 1]!.highNs;
}
