// Turns samples into what a reader needs: per system and metric the median over rounds, the range,
// and the ratio pgmesh / system computed round by round (same round, same conditions).
import type { ScenarioRun } from "./run-scenario.ts";
import type { Metric, Scenario } from "./scenarios/scenario.ts";
import { compact, fmt, fmtRatio, median } from "./stats.ts";
import type { System, SystemKey } from "./systems/system.ts";

export interface MetricSummary {
  median: number;
  min: number;
  max: number;
  rounds: number;
  /** Rounds whose value was not 0 (for yes/no metrics such as "kept up"). */
  nonZero: number;
  /** Median over rounds of pgmesh's value / this system's value. */
  pgmeshRatio?: number;
}

/** variant -> system -> metric -> summary. */
export type ScenarioSummary = Record<string, Record<string, Record<string, MetricSummary>>>;

const REFERENCE: SystemKey = "pgmesh";

export function summarize(scenario: Scenario, run: ScenarioRun): ScenarioSummary {
  const out: ScenarioSummary = {};
  for (const [variant, bySystem] of run.results) {
    out[variant] = {};
    const reference = bySystem.get(REFERENCE) ?? [];
    for (const [system, samples] of bySystem) {
      const metrics: Record<string, MetricSummary> = {};
      for (const metric of scenario.metrics) {
        const values = samples.map((s) => s[metric.key]).filter((v): v is number => v !== undefined);
        if (values.length === 0) continue;
        const summary: MetricSummary = {
          median: median(values),
          min: Math.min(...values),
          max: Math.max(...values),
          rounds: values.length,
          nonZero: values.filter((v) => v !== 0).length,
        };
        if (metric.ratio) {
          const ratios = samples.flatMap((s, i) => {
            const mine = s[metric.key];
            const theirs = reference[i]?.[metric.key];
            return mine && theirs !== undefined ? [theirs / mine] : [];
          });
          if (ratios.length > 0) summary.pgmeshRatio = median(ratios);
        }
        metrics[metric.key] = summary;
      }
      (out[variant] as Record<string, Record<string, MetricSummary>>)[system] = metrics;
    }
  }
  return out;
}

function cell(metric: Metric, s: MetricSummary | undefined): string {
  if (!s) return "-";
  if (metric.kind === "count") return `${s.nonZero}/${s.rounds}`;
  const value = fmt(s.median, metric.digits);
  return s.rounds > 1 && s.min !== s.max
    ? `${value} [${compact(s.min, metric.digits)}-${compact(s.max, metric.digits)}]`
    : value;
}

/** The text tables of one scenario. */
export function renderScenario(
  scenario: Scenario,
  summary: ScenarioSummary,
  run: ScenarioRun,
  systems: System[],
  description: string,
): string[] {
  const lines = [`== ${scenario.title} (${run.seconds.toFixed(0)} s)`, ...wrap(description, 110)];
  const label = new Map(systems.map((s) => [s.key, s.label]));
  for (const [variant, bySystem] of Object.entries(summary)) {
    const rows = Object.entries(bySystem);
    if (rows.length === 0) continue;
    // Only the metrics this variant measured (publishing alone has no end-to-end figure).
    const measured = scenario.metrics.filter((m) => rows.some(([, metrics]) => metrics[m.key]));
    const header = ["", ...measured.flatMap((m) => (m.ratio ? [m.label, "pgmesh/x"] : [m.label]))];
    const body = rows.map(([system, metrics]) => [
      label.get(system as SystemKey) ?? system,
      ...measured.flatMap((m) => {
        const s = metrics[m.key];
        const main = cell(m, s);
        if (!m.ratio) return [main];
        return [main, s?.pgmeshRatio === undefined ? "-" : fmtRatio(s.pgmeshRatio)];
      }),
    ]);
    const rounds = Math.max(...rows.flatMap(([, m]) => Object.values(m).map((s) => s.rounds)));
    header[0] = `${variant}: ${rounds > 1 ? `median [min-max] of ${rounds}` : "1 round"}`;
    lines.push("", ...table(header, body));
  }
  if (Object.values(summary).some((bySystem) => Object.keys(bySystem).length > 1)) {
    lines.push(
      "pgmesh/x: median over rounds of pgmesh (SDK) / that system in the same round (ev/s: < 1 = pgmesh slower; ms: > 1 = pgmesh slower)",
    );
  }
  lines.push(...(scenario.summarize?.(run.results) ?? []));
  for (const [system, failure] of run.failures)
    lines.push(`FAILED ${label.get(system) ?? system}: ${failure}`);
  return lines;
}

function table(header: string[], body: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  const row = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join("  ");
  return [row(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(row)];
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + word.length + 1 > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out;
}
