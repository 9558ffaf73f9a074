// Medians, ranges and number formats for the report.

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export const fmt = (x: number, digits: number) =>
  x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** Short form for ranges: 7.1k, 850, 0.42. */
export function compact(x: number, digits: number): string {
  const abs = Math.abs(x);
  if (abs >= 10_000_000) return `${(x / 1e6).toFixed(0)}M`;
  if (abs >= 1_000_000) return `${(x / 1e6).toFixed(1)}M`;
  if (abs >= 10_000) return `${(x / 1e3).toFixed(0)}k`;
  if (abs >= 1_000) return `${(x / 1e3).toFixed(1)}k`;
  return x.toFixed(abs >= 100 ? 0 : digits);
}

/** A ratio with two significant digits at least (latency ratios can be far from 1). */
export const fmtRatio = (x: number) =>
  x >= 100 ? fmt(x, 0) : x >= 10 ? x.toFixed(1) : x >= 0.1 ? x.toFixed(2) : x.toPrecision(2);
