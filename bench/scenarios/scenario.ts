// A scenario: variants (e.g. 1 and 4 consumer streams), the metrics each round yields, and how one
// round runs on one system. The runner (run-scenario.ts) interleaves rounds across systems.
import type { Options, ScenarioKey } from "../options.ts";
import type { System, SystemKey } from "../systems/system.ts";

/** One round of one system: metric key -> value (undefined: not measured for this system). */
export type Sample = Record<string, number | undefined>;

export interface Metric {
  key: string;
  label: string;
  digits: number;
  higherIsBetter: boolean;
  /** Show the median over rounds of pgmesh / this system, computed round by round. */
  ratio?: boolean;
  /** How to print a value: "yes/no" prints how many rounds had a non-zero value. */
  kind?: "number" | "count";
}

export interface RoundContext {
  system: System;
  variant: string;
  /** 1-based round number, and an id unique within the run that the events carry. */
  round: number;
  roundId: number;
  /** A name for this round's topic, queue or stream. */
  name: string;
  options: Options;
  /** An uncounted first round: smaller, to warm up connections and code. */
  warmup: boolean;
  log: (line: string) => void;
}

export interface Scenario {
  key: ScenarioKey;
  title: string;
  /** One paragraph: what is measured, with the sizes of this run. */
  describe(options: Options): string;
  variants(options: Options): string[];
  metrics: Metric[];
  /** Only these systems (default: all). */
  systems?: SystemKey[];
  run(context: RoundContext): Promise<Sample>;
  /** Extra lines under the tables, from all samples (e.g. fan-out cost ratios). */
  summarize?(results: ScenarioResults): string[];
}

/** variant -> system -> one sample per round. */
export type ScenarioResults = Map<string, Map<SystemKey, Sample[]>>;
