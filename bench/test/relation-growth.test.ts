// (e) prints where a pending event's bytes go, relation by relation: growth between two readings.
import { describe, expect, it } from "vitest";
import { growthPerEvent } from "../postgres-admin.ts";

describe("growthPerEvent", () => {
  it("gives each relation's growth per event, largest first, new relations counted from zero", () => {
    const before = new Map([
      ["pgmesh.events", 8_192],
      ["pgmesh.events_pkey", 16_384],
      ["pgboss.job_common", 0],
      ["pgmesh.topics", 8_192],
    ]);
    const after = new Map([
      ["pgmesh.events", 8_192 + 300_000],
      ["pgmesh.events_pkey", 16_384 + 20_000],
      ["pgboss.job_common", 160_000],
      ["pgmesh.topics", 8_192],
      ["pgmesh.event_keys", 95_000],
    ]);
    expect(growthPerEvent(before, after, 1_000)).toEqual([
      { relation: "pgmesh.events", bytesPerEvent: 300 },
      { relation: "pgboss.job_common", bytesPerEvent: 160 },
      { relation: "pgmesh.event_keys", bytesPerEvent: 95 },
      { relation: "pgmesh.events_pkey", bytesPerEvent: 20 },
    ]);
  });
});
