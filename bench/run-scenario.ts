// Runs one scenario on every system, round by round: within a round every variant runs on every
// system, in an order that rotates each round, so that the machine's noise lands on all of them.
import type { Options } from "./options.ts";
import type { RoundContext, Sample, Scenario, ScenarioResults } from "./scenarios/scenario.ts";
import { compact } from "./stats.ts";
import type { System, SystemKey } from "./systems/system.ts";

export interface ScenarioRun {
  results: ScenarioResults;
  /** Systems that failed (lost events, errors): the run exits non-zero. */
  failures: Map<SystemKey, string>;
  info: Map<SystemKey, Record<string, string>>;
  seconds: number;
}

let nextRoundId = 1;

export async function runScenario(
  scenario: Scenario,
  systems: System[],
  options: Options,
  log: (line: string) => void,
): Promise<ScenarioRun> {
  const started = performance.now();
  const failures = new Map<SystemKey, string>();
  const info = new Map<SystemKey, Record<string, string>>();
  const active: System[] = [];
  for (const system of systems.filter((s) => !scenario.systems || scenario.systems.includes(s.key))) {
    try {
      await system.open();
      info.set(system.key, system.info());
      active.push(system);
    } catch (error) {
      failures.set(system.key, `could not start: ${describe(error)}`);
      log(`[${scenario.key}] ${system.label}: could not start: ${describe(error)}`);
      await system.close().catch(() => {});
    }
  }
  const variants = scenario.variants(options);
  const results: ScenarioResults = new Map(variants.map((v) => [v, new Map(active.map((s) => [s.key, []]))]));
  const runOne = async (system: System, variant: string, round: number, warmup: boolean) => {
    if (failures.has(system.key)) return;
    const context: RoundContext = {
      system,
      variant,
      round,
      roundId: nextRoundId++,
      name: `${scenario.key}.r${warmup ? "w" : round}.v${variants.indexOf(variant)}`,
      options,
      warmup,
      log: (line) => log(`[${scenario.key}] ${system.label}: ${line}`),
    };
    try {
      const sample = await scenario.run(context);
      if (warmup) return;
      results.get(variant)?.get(system.key)?.push(sample);
      log(
        `[${scenario.key}] round ${round} ${variant.padEnd(16)} ${system.label.padEnd(18)} ${describeSample(scenario, sample)}`,
      );
    } catch (error) {
      const where = `${warmup ? "warm-up" : `round ${round}`}, ${variant}`;
      failures.set(system.key, `${where}: ${describe(error)}`);
      log(`[${scenario.key}] ${system.label} FAILED (${where}): ${describe(error)}`);
    }
  };
  // One uncounted small round per system first, except in the quick smoke run.
  if (options.preset === "full")
    for (const system of active) await runOne(system, variants[0] as string, 0, true);
  for (let round = 1; round <= options.rounds; round++) {
    const order = active.map((_, i) => active[(i + round - 1) % active.length] as System);
    for (const variant of variants) for (const system of order) await runOne(system, variant, round, false);
  }
  for (const system of active) {
    await system
      .close()
      .catch((error: unknown) => log(`[${scenario.key}] ${system.label}: closing: ${describe(error)}`));
  }
  return { results, failures, info, seconds: (performance.now() - started) / 1000 };
}

function describeSample(scenario: Scenario, sample: Sample): string {
  return scenario.metrics
    .filter((m) => sample[m.key] !== undefined)
    .map(
      (m) =>
        `${m.label} ${m.kind === "count" ? (sample[m.key] ? "yes" : "no") : compact(sample[m.key] as number, m.digits)}`,
    )
    .join(", ");
}

export function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
