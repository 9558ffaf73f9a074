// How (f) and (g) spread their publishing: batches of the round's events dealt round-robin to
// concurrent producers, each producer talking to one broker, each batch going to one topic. Pure
// logic, so that the shape of the load can be tested without a broker.
import { median } from "../stats.ts";
import type { SystemKey } from "../systems/system.ts";
import type { Sample, ScenarioResults } from "./scenario.ts";

export interface PlannedBatch {
  topic: number;
  /** Event indexes [start, end). */
  start: number;
  end: number;
}

export interface Producer {
  broker: number;
  batches: PlannedBatch[];
}

/**
 * Events 0..n-1 in batches of `batch`: batch k goes to producer k mod `producers` and to topic
 * k mod `topics`; producer p talks to broker p mod `brokers`. Every index is in exactly one batch.
 * Producers with no batch (n small) are left out.
 */
export function planProducers(
  n: number,
  batch: number,
  producers: number,
  brokers: number,
  topics: number,
): Producer[] {
  const plan: Producer[] = Array.from({ length: producers }, (_, p) => ({
    broker: p % brokers,
    batches: [],
  }));
  for (let k = 0, start = 0; start < n; k++, start += batch)
    plan[k % producers]?.batches.push({ topic: k % topics, start, end: Math.min(n, start + batch) });
  return plan.filter((p) => p.batches.length > 0);
}

/** (f)'s variant names and back. */
export const brokersVariant = (brokers: number, topics: number) =>
  `${brokers} broker${brokers === 1 ? "" : "s"}, ${topics} topic${topics === 1 ? "" : "s"}`;

export function parseBrokersVariant(variant: string): { brokers: number; topics: number } {
  const match = /^(\d+) brokers?, (\d+) topics?$/.exec(variant);
  if (!match) throw new Error(`not a brokers variant: ${variant}`);
  return { brokers: Number(match[1]), topics: Number(match[2]) };
}

/**
 * Per system and topic count: the median over rounds of (metric with N brokers) / (metric with one
 * broker), each ratio taken within one round, for every N > 1 measured.
 */
export function scaleOutRatios(
  results: ScenarioResults,
  metric: string,
): { system: SystemKey; topics: number; brokers: number; ratio: number }[] {
  const out: { system: SystemKey; topics: number; brokers: number; ratio: number }[] = [];
  for (const [variant, bySystem] of results) {
    const { brokers, topics } = parseBrokersVariant(variant);
    if (brokers === 1) continue;
    const one = results.get(brokersVariant(1, topics));
    if (!one) continue;
    for (const [system, samples] of bySystem) {
      const base: Sample[] = one.get(system) ?? [];
      const ratios = samples.flatMap((s, i) => {
        const mine = s[metric];
        const theirs = base[i]?.[metric];
        return mine !== undefined && theirs ? [mine / theirs] : [];
      });
      if (ratios.length > 0) out.push({ system, topics, brokers, ratio: median(ratios) });
    }
  }
  return out;
}

/**
 * When the first `count` events had been confirmed, from (time, confirmed so far) readings taken
 * after each batch, in time order; undefined when no reading reached it.
 */
export function whenConfirmed<T>(readings: { at: T; count: number }[], count: number): T | undefined {
  return readings.find((r) => r.count >= count)?.at;
}
