import { describe, expect, it } from "vitest";
import type { Sample } from "../scenarios/scenario.ts";
import {
  brokersVariant,
  parseBrokersVariant,
  planProducers,
  scaleOutRatios,
  whenConfirmed,
} from "../scenarios/spread.ts";
import type { SystemKey } from "../systems/system.ts";

describe("planProducers", () => {
  it("deals batches round-robin to producers and topics, each producer on one broker", () => {
    const plan = planProducers(3_500, 500, 3, 2, 2);
    expect(plan.map((p) => p.broker)).toEqual([0, 1, 0]);
    expect(plan[0]?.batches).toEqual([
      { topic: 0, start: 0, end: 500 },
      { topic: 1, start: 1_500, end: 2_000 },
      { topic: 0, start: 3_000, end: 3_500 },
    ]);
    expect(plan[1]?.batches.map((b) => b.topic)).toEqual([1, 0]);
  });

  it("covers every index exactly once, the last batch short", () => {
    const plan = planProducers(1_234, 100, 6, 3, 10);
    const indexes = plan.flatMap((p) =>
      p.batches.flatMap((b) => Array.from({ length: b.end - b.start }, (_, i) => b.start + i)),
    );
    expect(indexes.sort((a, b) => a - b)).toEqual(Array.from({ length: 1_234 }, (_, i) => i));
    expect(new Set(plan.flatMap((p) => p.batches.map((b) => b.topic))).size).toBe(10);
    expect(plan.flatMap((p) => p.batches).find((b) => b.start === 1_200)?.end).toBe(1_234);
  });

  it("leaves out producers with nothing to publish", () => {
    expect(planProducers(1_000, 500, 6, 3, 1)).toHaveLength(2);
  });
});

describe("brokers variants", () => {
  it("round-trips a variant name", () => {
    expect(brokersVariant(1, 1)).toBe("1 broker, 1 topic");
    expect(brokersVariant(3, 10)).toBe("3 brokers, 10 topics");
    expect(parseBrokersVariant("3 brokers, 10 topics")).toEqual({ brokers: 3, topics: 10 });
    expect(() => parseBrokersVariant("3 streams")).toThrow("not a brokers variant");
  });
});

describe("scaleOutRatios", () => {
  it("takes N brokers / 1 broker within each round, then the median over rounds", () => {
    const rounds = (...e2e: number[]) =>
      new Map<SystemKey, Sample[]>([["pgmesh", e2e.map((v) => ({ e2e: v }))]]);
    const results = new Map([
      ["1 broker, 1 topic", rounds(100, 200, 100)],
      ["2 brokers, 1 topic", rounds(150, 200, 300)],
      ["1 broker, 10 topics", rounds(100, 100, 100)],
      ["2 brokers, 10 topics", rounds(90, undefined as unknown as number, 80)],
    ]);
    expect(scaleOutRatios(results, "e2e")).toEqual([
      { system: "pgmesh", topics: 1, brokers: 2, ratio: 1.5 },
      // A round that did not measure it is left out: median of 0.9 and 0.8.
      { system: "pgmesh", topics: 10, brokers: 2, ratio: expect.closeTo(0.85, 9) },
    ]);
  });
});

describe("whenConfirmed", () => {
  it("is the first reading that had confirmed at least that many", () => {
    const readings = [
      { at: 1, count: 500 },
      { at: 2, count: 1_000 },
      { at: 3, count: 1_500 },
    ];
    expect(whenConfirmed(readings, 750)).toBe(2);
    expect(whenConfirmed(readings, 1_000)).toBe(2);
    expect(whenConfirmed(readings, 2_000)).toBeUndefined();
  });
});
