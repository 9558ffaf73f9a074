import { describe, expect, it } from "vitest";
import type { Stamp } from "../payload.ts";
import { offerLoad, publishBatches } from "../scenarios/load.ts";

describe("publishBatches", () => {
  it("publishes every index once, in batches, each after the previous one is confirmed", async () => {
    const batches: number[][] = [];
    const progress: number[] = [];
    await publishBatches(
      async (stamps) => {
        batches.push(stamps.map((s) => s.index));
      },
      3,
      7,
      3,
      (count) => progress.push(count),
    );
    expect(batches).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    expect(progress).toEqual([3, 6, 7]);
  });
});

describe("offerLoad", () => {
  it("offers rate x duration events, each index once, spread over the period", async () => {
    const seen: Stamp[] = [];
    const load = await offerLoad(
      async (stamp) => {
        seen.push(stamp);
      },
      9,
      200,
      0.5,
      10,
    );
    expect(load.published).toBe(100);
    expect(new Set(seen.map((s) => s.index)).size).toBe(100);
    expect(seen.every((s) => s.round === 9 && s.index < 100)).toBe(true);
    // The last event was due at 495 ms: it was not sent early.
    const last = Math.max(...seen.map((s) => s.sentAt));
    expect(last - load.startedAt).toBeGreaterThanOrEqual(490);
  });

  it("publishes fewer when the system cannot take the rate, and stops when the period ends", async () => {
    let published = 0;
    const started = performance.now();
    const load = await offerLoad(
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 50));
      },
      1,
      1000,
      0.4,
      2,
      () => published++,
    );
    // Two publishers, one call in flight each, 50 ms per call: about 16 in 0.4 s, not 400.
    expect(load.published).toBe(published);
    expect(load.published).toBeLessThan(30);
    expect(performance.now() - started).toBeLessThan(600);
  });
});
