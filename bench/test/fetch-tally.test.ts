// Reading pgmesh's fetch histogram for the backlog scenario's fetch figures (pure logic).
import { describe, expect, it } from "vitest";
import { FetchTimer, fetchesBetween, fetchTallyFromMetrics } from "../fetch-tally.ts";

const metrics = `# HELP pgmesh_fetch_duration_seconds Time of one fetch.
# TYPE pgmesh_fetch_duration_seconds histogram
pgmesh_fetch_duration_seconds_bucket{le="0.01",subscription="a"} 5
pgmesh_fetch_duration_seconds_bucket{le="0.02",subscription="a"} 7
pgmesh_fetch_duration_seconds_bucket{le="+Inf",subscription="a"} 10
pgmesh_fetch_duration_seconds_sum{subscription="a"} 0.35
pgmesh_fetch_duration_seconds_count{subscription="a"} 10
pgmesh_fetch_duration_seconds_bucket{le="0.02",subscription="other"} 1
pgmesh_fetch_duration_seconds_bucket{le="+Inf",subscription="other"} 4
pgmesh_fetch_duration_seconds_sum{subscription="other"} 2
pgmesh_fetch_duration_seconds_count{subscription="other"} 4
pgmesh_deliveries_total{subscription="a"} 99`;

describe("fetch tallies", () => {
  it("reads count, time and the fetches above 20 ms of the named subscriptions only", () => {
    expect(fetchTallyFromMetrics(metrics, ["a"])).toEqual({ count: 10, seconds: 0.35, slow: 3 });
    expect(fetchTallyFromMetrics(metrics, ["a", "other"])).toEqual({ count: 14, seconds: 2.35, slow: 6 });
    expect(fetchTallyFromMetrics(metrics, ["none"])).toEqual({ count: 0, seconds: 0, slow: 0 });
  });

  it("times a peer's fetches, slow ones apart, and subtracts tallies", async () => {
    const timer = new FetchTimer();
    await timer.time(async () => 1);
    const before = timer.snapshot();
    await timer.time(() => new Promise((resolve) => setTimeout(resolve, 40)));
    const between = fetchesBetween(before, timer.snapshot());
    expect(between.count).toBe(1);
    expect(between.slow).toBe(1);
    expect(between.seconds).toBeGreaterThanOrEqual(0.02);
  });
});
