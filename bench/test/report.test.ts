import { describe, expect, it } from "vitest";
import { renderScenario, summarize } from "../report.ts";
import type { ScenarioRun } from "../run-scenario.ts";
import type { Scenario } from "../scenarios/scenario.ts";
import type { System } from "../systems/system.ts";

const scenario: Scenario = {
  key: "throughput",
  title: "(a) throughput",
  describe: () => "test",
  variants: () => ["1 stream"],
  metrics: [
    { key: "e2e", label: "end to end ev/s", digits: 0, higherIsBetter: true, ratio: true },
    { key: "keptUp", label: "kept up", digits: 0, higherIsBetter: true, kind: "count" },
  ],
  run: async () => ({}),
};

const run: ScenarioRun = {
  results: new Map([
    [
      "1 stream",
      new Map([
        [
          "pgmesh",
          [
            { e2e: 100, keptUp: 1 },
            { e2e: 200, keptUp: 0 },
            { e2e: 300, keptUp: 1 },
          ],
        ],
        [
          "nats",
          [
            { e2e: 400, keptUp: 1 },
            { e2e: 200, keptUp: 1 },
            { e2e: 1000, keptUp: 1 },
          ],
        ],
      ]),
    ],
  ]),
  failures: new Map([["rabbitmq", "round 2, 1 stream: lost events"]]),
  info: new Map(),
  seconds: 12,
};

describe("summarize", () => {
  it("gives medians, ranges and pgmesh / system ratios taken round by round", () => {
    const summary = summarize(scenario, run);
    expect(summary["1 stream"]?.nats?.e2e).toEqual({
      median: 400,
      min: 200,
      max: 1000,
      rounds: 3,
      nonZero: 3,
      // Per round: 100/400, 200/200, 300/1000; the median of those, not a ratio of medians.
      pgmeshRatio: 0.3,
    });
    expect(summary["1 stream"]?.pgmesh?.keptUp?.nonZero).toBe(2);
  });

  it("prints the table, the ratio legend and the failures", () => {
    const systems = [
      { key: "pgmesh", label: "pgmesh (SDK)" },
      { key: "nats", label: "NATS JetStream" },
      { key: "rabbitmq", label: "RabbitMQ" },
    ] as System[];
    const text = renderScenario(scenario, summarize(scenario, run), run, systems, "what it measures").join(
      "\n",
    );
    expect(text).toContain("1 stream: median [min-max] of 3");
    expect(text).toMatch(/pgmesh \(SDK\)\s+200 \[100-300\]\s+1\.00\s+2\/3/);
    expect(text).toMatch(/NATS JetStream\s+400 \[200-1\.0k\]\s+0\.30\s+3\/3/);
    expect(text).toContain("FAILED RabbitMQ: round 2, 1 stream: lost events");
  });
});
