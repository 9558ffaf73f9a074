import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Ledger } from "../accounting.ts";
import { awaitDeliveries } from "../scenarios/load.ts";
import { writeLatencyLog } from "../scenarios/round.ts";
import type { System } from "../systems/system.ts";

const stamp = (round: number, index: number) => ({ round, index, sentAt: performance.now() - 5 });

describe("Ledger", () => {
  it("counts first deliveries, duplicates and events of other rounds apart", () => {
    const ledger = new Ledger(7, 4);
    ledger.receive(stamp(7, 0));
    ledger.receive(stamp(7, 1));
    ledger.receive(stamp(7, 1));
    ledger.receive(stamp(8, 2));
    ledger.receive(stamp(7, 4));
    ledger.receive({ round: -1, index: -1, sentAt: 0 });
    expect(ledger.delivered).toBe(2);
    expect(ledger.duplicates).toBe(1);
    expect(ledger.foreign).toBe(3);
    expect(ledger.missing(4)).toBe("2 of 4 deliveries missing (e.g. 2, 3)");
  });

  it("keeps each subscription's copy apart in a fan-out", () => {
    const ledger = new Ledger(1, 3, 2);
    ledger.receive(stamp(1, 0), 0);
    ledger.receive(stamp(1, 0), 1);
    ledger.receive(stamp(1, 0), 1);
    ledger.receive(stamp(1, 0), 2);
    expect(ledger.delivered).toBe(2);
    expect(ledger.duplicates).toBe(1);
    expect(ledger.foreign).toBe(1);
    expect(ledger.missing(3)).toBe("4 of 6 deliveries missing (e.g. 0:1, 0:2, 1:1, 1:2)");
  });

  it("knows when the k-th delivery arrived and how many arrived by a time", async () => {
    const ledger = new Ledger(1, 3);
    ledger.receive(stamp(1, 2));
    const between = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 5));
    ledger.receive(stamp(1, 0));
    expect(ledger.deliveredBy(between)).toBe(1);
    expect(ledger.arrivalOf(1)).toBeLessThanOrEqual(between);
    expect(ledger.arrivalOf(2)).toBeGreaterThan(between);
    const latency = ledger.latency();
    expect(latency.p50).toBeGreaterThanOrEqual(5);
    expect(latency.max).toBeGreaterThanOrEqual(latency.p99);
  });
});

describe("latency log", () => {
  it("gives each first delivery's publish time (from the first) and latency, in arrival order", () => {
    const ledger = new Ledger(1, 3);
    const now = performance.now();
    ledger.receive({ round: 1, index: 0, sentAt: now - 40 });
    ledger.receive({ round: 1, index: 1, sentAt: now - 100 });
    ledger.receive({ round: 1, index: 1, sentAt: now - 100 });
    const lines = ledger.latencyLog().trimEnd().split("\n");
    expect(lines[0]).toBe("published_ms\tlatency_ms");
    expect(lines).toHaveLength(3);
    const rows = lines.slice(1).map((line) => line.split("\t").map(Number));
    // The second event was published 60 ms before the first: it is the origin.
    expect(rows[0]?.[0]).toBeGreaterThanOrEqual(60);
    expect(rows[0]?.[0]).toBeLessThan(61);
    expect(rows[0]?.[1]).toBeGreaterThanOrEqual(40);
    expect(rows[1]?.[0]).toBe(0);
    expect(rows[1]?.[1]).toBeGreaterThanOrEqual(100);
  });

  it("is written per round under --latency-log, and not without it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "pgmesh-latency-"));
    try {
      const ledger = new Ledger(1, 1);
      ledger.receive(stamp(1, 0));
      const said: string[] = [];
      const system = { key: "pgmesh" } as System;
      await writeLatencyLog(undefined, system, "single.r1.v0", ledger, (line) => said.push(line));
      expect(said).toEqual([]);
      await writeLatencyLog(join(dir, "logs"), system, "single.r1.v0", ledger, (line) => said.push(line));
      const file = join(dir, "logs", "pgmesh-single.r1.v0.tsv");
      expect(said).toEqual([`latency log: ${file}`]);
      expect(await readFile(file, "utf8")).toBe(ledger.latencyLog());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("awaitDeliveries", () => {
  it("resolves once every delivery arrived", async () => {
    const ledger = new Ledger(1, 2);
    setTimeout(() => ledger.receive(stamp(1, 0)), 10);
    setTimeout(() => ledger.receive(stamp(1, 1)), 20);
    await awaitDeliveries(ledger, 2, 5, () => ledger.missing(2));
    expect(ledger.delivered).toBe(2);
  });

  it("fails as lost events when deliveries stop arriving", async () => {
    const ledger = new Ledger(1, 3);
    ledger.receive(stamp(1, 1));
    await expect(awaitDeliveries(ledger, 3, 0.3, () => ledger.missing(3))).rejects.toThrow(
      "lost events: nothing delivered for 0.3 s; 2 of 3 deliveries missing (e.g. 0, 2)",
    );
  });

  it("counts a duplicate as no progress", async () => {
    const ledger = new Ledger(1, 2);
    ledger.receive(stamp(1, 0));
    const repeat = setInterval(() => ledger.receive(stamp(1, 0)), 20);
    try {
      await expect(awaitDeliveries(ledger, 2, 0.3, () => ledger.missing(2))).rejects.toThrow("lost events");
    } finally {
      clearInterval(repeat);
    }
    expect(ledger.duplicates).toBeGreaterThan(0);
  });
});
