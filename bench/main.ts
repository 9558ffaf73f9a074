// `npm run bench`: pgmesh side by side with raw pg-boss, RabbitMQ, NATS JetStream and a raw Postgres
// SKIP LOCKED queue, on this machine, in one run. Starts what it needs (throwaway databases, a broker
// per scenario), uses the RabbitMQ and NATS on the machine when they answer, prints a table per
// scenario on stdout (progress on stderr) and writes every number as JSON. Exits 1 when a system
// lost events or failed. See bench/README.md; `npm run bench -- --help` for the options.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import amqp from "amqplib";
import { connect as natsConnect } from "nats";
import { describeMachine, machineLine } from "./machine.ts";
import { type Options, parseOptions, USAGE } from "./options.ts";
import { ADMIN_URL, admin, dropAllDatabases } from "./postgres-admin.ts";
import { renderScenario, type ScenarioSummary, summarize } from "./report.ts";
import { describe, runScenario } from "./run-scenario.ts";
import { backlog } from "./scenarios/backlog.ts";
import { brokers } from "./scenarios/brokers.ts";
import { fanOut } from "./scenarios/fan-out.ts";
import { manyStreams } from "./scenarios/many-streams.ts";
import type { Scenario } from "./scenarios/scenario.ts";
import { seek } from "./scenarios/seek.ts";
import { singleEvent } from "./scenarios/single-event.ts";
import { throughput } from "./scenarios/throughput.ts";
import { NATS_URL, natsSystem } from "./systems/nats.ts";
import { pgbossSystem } from "./systems/pgboss.ts";
import { pgmeshSystem } from "./systems/pgmesh.ts";
import { AMQP_URL, rabbitmqSystem } from "./systems/rabbitmq.ts";
import { skipLockedSystem } from "./systems/skip-locked.ts";
import type { System, SystemKey } from "./systems/system.ts";

const ALL_SCENARIOS: Scenario[] = [throughput, singleEvent, fanOut, manyStreams, backlog, brokers, seek];
const log = (line: string) => process.stderr.write(`${line}\n`);
const out = (line = "") => process.stdout.write(`${line}\n`);

/** RabbitMQ and NATS are used when they answer; otherwise the run says so and goes on without them. */
async function reachable(key: SystemKey): Promise<string | undefined> {
  try {
    if (key === "rabbitmq") await (await amqp.connect(AMQP_URL)).close();
    if (key === "nats")
      await (await natsConnect({ servers: NATS_URL, reconnect: false, timeout: 3000 })).close();
    return undefined;
  } catch (error) {
    const where = key === "rabbitmq" ? AMQP_URL.replace(/\/\/[^@]*@/, "//") : NATS_URL;
    return `${key === "rabbitmq" ? "RabbitMQ" : "NATS"} is not reachable at ${where} (${describe(error)}): skipped`;
  }
}

function makeSystem(key: SystemKey, options: Options): System {
  switch (key) {
    case "pgmesh-before":
      return pgmeshSystem("sdk", options.before);
    case "pgmesh":
      return pgmeshSystem("sdk");
    case "pgmesh-grpc":
      return pgmeshSystem("grpc");
    case "pgboss":
      return pgbossSystem();
    case "rabbitmq":
      return rabbitmqSystem();
    case "nats":
      return natsSystem();
    case "skiplocked":
      return skipLockedSystem();
  }
}

async function main(options: Options): Promise<number> {
  const started = performance.now();
  const machine = await describeMachine();
  out(`pgmesh bench (${options.preset}): ${new Date().toISOString()}`);
  out(machineLine(machine));
  const skipped: string[] = [];
  const keys: SystemKey[] = [];
  for (const key of options.systems) {
    const absent = key === "rabbitmq" || key === "nats" ? await reachable(key) : undefined;
    if (absent) {
      skipped.push(absent);
      out(absent);
    } else keys.push(key);
  }
  const systems = keys.map((key) => makeSystem(key, options));
  const scenarios: Record<string, unknown> = {};
  const infos: Record<string, Record<string, string>> = {};
  let failed = false;
  for (const scenario of ALL_SCENARIOS.filter((s) => options.scenarios.includes(s.key))) {
    const description = scenario.describe(options);
    log(`[${scenario.key}] ${scenario.title}: starting`);
    const run = await runScenario(scenario, systems, options, log);
    const summary: ScenarioSummary = summarize(scenario, run);
    out();
    for (const line of renderScenario(scenario, summary, run, systems, description)) out(line);
    for (const [key, info] of run.info) infos[key] = info;
    if (run.failures.size > 0) failed = true;
    scenarios[scenario.key] = {
      title: scenario.title,
      description,
      seconds: Math.round(run.seconds),
      summary,
      samples: Object.fromEntries([...run.results].map(([v, bySystem]) => [v, Object.fromEntries(bySystem)])),
      failures: Object.fromEntries(run.failures),
      notes: scenario.summarize?.(run.results) ?? [],
    };
  }
  out();
  for (const system of systems)
    if (infos[system.key]) out(`${system.label}: ${JSON.stringify(infos[system.key])}`);
  const totalSeconds = Math.round((performance.now() - started) / 1000);
  const file = resolve(options.out);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(
    file,
    `${JSON.stringify({ startedAt: new Date(Date.now() - totalSeconds * 1000).toISOString(), totalSeconds, options, machine, skipped, systems: infos, scenarios }, null, 2)}\n`,
  );
  out(`total ${totalSeconds} s; results in ${file}${failed ? "; FAILED: see above" : ""}`);
  return failed ? 1 : 0;
}

let options: Options | "help";
try {
  options = parseOptions(process.argv.slice(2), process.env);
} catch (error) {
  log(`${describe(error)}\n\n${USAGE}`);
  process.exit(2);
}
if (options === "help") {
  out(USAGE);
  process.exit(0);
}
// Ctrl-C: leave no throwaway database behind.
process.once("SIGINT", () => {
  log("interrupted: dropping the bench databases");
  void dropAllDatabases()
    .catch(() => {})
    .finally(() => process.exit(130));
});
let code = 1;
try {
  code = await main(options);
} catch (error) {
  log(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  if (String(error).includes("ECONNREFUSED"))
    log(`is PostgreSQL listening at ${ADMIN_URL}? (BENCH_DATABASE_URL)`);
} finally {
  await dropAllDatabases().catch((error: unknown) => log(`dropping the bench databases: ${describe(error)}`));
  await admin.end({ timeout: 5 }).catch(() => {});
}
process.exit(code);
