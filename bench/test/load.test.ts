import { describe, expect, it } from "vitest";
import type { Stamp } from "../payload.ts";
import { MAX_IN_FLIGHT, offerLoad, publishBatches } from "../scenarios/load.ts";

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

  it("sends each event when due even while earlier calls have not returned (an open loop)", async () => {
    let published = 0;
    const load = await offerLoad(
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 100));
      },
      1,
      200,
      0.5,
      2,
      () => published++,
    );
    // Two publishers with 100 ms calls would manage 10 in 0.5 s one call at a time; all 100 were sent.
    expect(load.sent).toBe(100);
    expect(load.published).toBe(100);
    expect(published).toBe(100);
    // The calls sent in the last 100 ms were confirmed after the period.
    expect(load.publishedInPeriod).toBeLessThan(100);
    expect(load.confirmP50).toBeGreaterThanOrEqual(95);
  });

  it("holds a publisher back at MAX_IN_FLIGHT calls and does not send what is still held back after the period", async () => {
    const load = await offerLoad(
      async () => {
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      },
      1,
      1_000,
      0.3,
      1,
    );
    expect(load.sent).toBe(MAX_IN_FLIGHT);
    expect(load.published).toBe(MAX_IN_FLIGHT);
    expect(load.publishedInPeriod).toBe(0);
  });

  it("fails when a publish fails", async () => {
    await expect(
      offerLoad(
        async (stamp) => {
          if (stamp.index === 3) throw new Error("refused");
        },
        1,
        100,
        0.1,
        2,
      ),
    ).rejects.toThrow("refused");
  });
});
