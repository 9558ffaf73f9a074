import { describe, expect, it } from "vitest";
import { parseOptions } from "../options.ts";

describe("parseOptions", () => {
  it("is the full run of the issue by default", () => {
    const options = parseOptions([], {});
    expect(options).toMatchObject({
      preset: "full",
      rounds: 3,
      events: 100_000,
      batch: 500,
      window: 1_000,
      rates: [1_000, 5_000],
      durationSeconds: 20,
      backlogEvents: 1_000_000,
      out: "bench/results/latest.json",
    });
    expect(options !== "help" && options.scenarios).toEqual([
      "throughput",
      "single",
      "fanout",
      "streams",
      "backlog",
      "brokers",
      "seek",
    ]);
    expect(options).toMatchObject({ brokerEvents: 60_000, brokerCounts: [1, 2, 3], seekEvents: 1_000_000 });
    // The broker of another checkout runs only when one is named.
    expect(options !== "help" && options.systems).not.toContain("pgmesh-before");
  });

  it("runs the broker of another checkout as pgmesh-before with --before", () => {
    const options = parseOptions(["--before", "../old"], {});
    expect(options).toMatchObject({ before: "../old" });
    expect(options !== "help" && options.systems).toContain("pgmesh-before");
    expect(parseOptions(["--systems", "pgmesh,pgmesh-before"], { BENCH_BEFORE: "/x" })).toMatchObject({
      systems: ["pgmesh", "pgmesh-before"],
    });
    expect(() => parseOptions(["--systems", "pgmesh-before"], {})).toThrow(
      "--systems pgmesh-before needs --before DIR",
    );
  });

  it("takes the quick preset, then the environment, then flags", () => {
    const options = parseOptions(["--quick", "--events", "300", "--systems", "nats,pgmesh"], {
      BENCH_EVENTS: "200",
      BENCH_ROUNDS: "2",
      BENCH_SCENARIOS: "single",
    });
    expect(options).toMatchObject({
      preset: "quick",
      events: 300,
      rounds: 2,
      scenarios: ["single"],
      systems: ["pgmesh", "nats"],
    });
  });

  it("writes latency logs only when asked, to the directory given", () => {
    const none = parseOptions([], {});
    expect(none !== "help" && none.latencyLog).toBeUndefined();
    expect(parseOptions([], { BENCH_LATENCY_LOG: "from-env" })).toMatchObject({ latencyLog: "from-env" });
    expect(parseOptions(["--latency-log", "logs"], { BENCH_LATENCY_LOG: "from-env" })).toMatchObject({
      latencyLog: "logs",
    });
  });

  it("names the flag that is wrong", () => {
    expect(() => parseOptions(["--rounds", "0"], {})).toThrow("--rounds must be a number >= 1, got 0");
    expect(() => parseOptions(["--events", "1.5"], {})).toThrow("--events must be a whole number");
    expect(() => parseOptions(["--scenarios", "throughput,fast"], {})).toThrow("--scenarios: unknown fast");
    expect(() => parseOptions(["--rates", "1000,x"], {})).toThrow("--rates must be positive numbers");
    expect(() => parseOptions(["--nope"], {})).toThrow();
  });
});
