// What a run measures and how big it is: a preset (--quick, or the full run the issue describes),
// then BENCH_* environment variables, then command-line flags, each overriding the one before.
import { parseArgs } from "node:util";
import type { SystemKey } from "./systems/system.ts";

export const SCENARIOS = ["throughput", "single", "fanout", "streams", "backlog", "brokers", "seek"] as const;
export type ScenarioKey = (typeof SCENARIOS)[number];
/** "pgmesh-before" (the broker of another checkout, `--before DIR`) runs only when asked for. */
export const SYSTEMS: SystemKey[] = [
  "pgmesh",
  "pgmesh-grpc",
  "pgmesh-before",
  "pgboss",
  "rabbitmq",
  "nats",
  "skiplocked",
];

export interface Options {
  preset: "quick" | "full";
  scenarios: ScenarioKey[];
  systems: SystemKey[];
  rounds: number;
  /** (a) events per throughput round. */
  events: number;
  /** Publish batch size and consumer window of (a), (c) and (e). */
  batch: number;
  window: number;
  /** (b) offered rates (events/s) and how long each is offered (s). */
  rates: number[];
  durationSeconds: number;
  /** (c) events per fan-out round and the fan-outs compared. */
  fanoutEvents: number;
  fanouts: number[];
  /** (d) subscriptions, streams per subscription, total rate (events/s), duration (s). */
  streamSubscriptions: number;
  streamsPerSubscription: number;
  streamRate: number;
  streamDurationSeconds: number;
  /** (e) events in the backlog. */
  backlogEvents: number;
  /** (f) events per round, broker counts and topic counts compared, producers spread over the brokers. */
  brokerEvents: number;
  brokerCounts: number[];
  brokerTopics: number[];
  brokerProducers: number;
  /** (g) events retained before the seeks. */
  seekEvents: number;
  /** A pgmesh checkout whose broker runs as the system "pgmesh-before", or none. */
  before: string | undefined;
  /** A round fails (events lost) when no delivery arrives for this long while some are missing. */
  stallSeconds: number;
  out: string;
  /** A directory for one latency log per round (publish time and latency of every event), or none. */
  latencyLog: string | undefined;
}

const PRESETS: Record<
  Options["preset"],
  Omit<Options, "preset" | "scenarios" | "systems" | "out" | "latencyLog" | "before">
> = {
  full: {
    rounds: 3,
    events: 100_000,
    batch: 500,
    window: 1_000,
    rates: [1_000, 5_000],
    durationSeconds: 20,
    fanoutEvents: 20_000,
    fanouts: [1, 10],
    streamSubscriptions: 100,
    streamsPerSubscription: 10,
    streamRate: 1_000,
    streamDurationSeconds: 20,
    backlogEvents: 1_000_000,
    brokerEvents: 60_000,
    brokerCounts: [1, 2, 3],
    brokerTopics: [1, 10],
    brokerProducers: 6,
    seekEvents: 1_000_000,
    stallSeconds: 60,
  },
  quick: {
    rounds: 1,
    events: 3_000,
    batch: 500,
    window: 1_000,
    rates: [1_000, 5_000],
    durationSeconds: 1,
    fanoutEvents: 500,
    fanouts: [1, 10],
    streamSubscriptions: 20,
    streamsPerSubscription: 5,
    streamRate: 500,
    streamDurationSeconds: 1.5,
    backlogEvents: 3_000,
    // The smoke run keeps one topic count: each variant starts brokers and creates topics.
    brokerEvents: 1_500,
    brokerCounts: [1, 2],
    brokerTopics: [1],
    brokerProducers: 6,
    seekEvents: 5_000,
    stallSeconds: 30,
  },
};

export const USAGE = `npm run bench [-- options]
  --quick                    every scenario, small: a smoke run of well under 2 minutes
  --scenarios a,b,...        ${SCENARIOS.join(", ")} (default: all)
  --systems a,b,...          ${SYSTEMS.join(", ")} (default: all but pgmesh-before)
  --before DIR               also run the broker of the pgmesh checkout in DIR as "pgmesh-before"
  --rounds N                 interleaved rounds per scenario (full 3, quick 1)
  --events N                 (throughput) events per round (full 100000)
  --batch N, --window N      publish batch size and consumer window (500, 1000)
  --rates R1,R2              (single) offered events/s (1000,5000)
  --duration S               (single) seconds each rate is offered (full 20)
  --fanout-events N          (fanout) events per round (full 20000)
  --streams-duration S       (streams) seconds of load (full 20)
  --backlog-events N         (backlog) events published before the drain (full 1000000)
  --broker-events N          (brokers) events per round (full 60000)
  --seek-events N            (seek) events retained before the seeks (full 1000000)
  --out FILE                 JSON results (default bench/results/latest.json)
  --latency-log DIR          one file per round in DIR: each event's publish time and latency (ms)
Each flag has a BENCH_<NAME> environment variable (BENCH_EVENTS, BENCH_RATES, ...); flags win.`;

const FLAGS = {
  quick: { type: "boolean" },
  help: { type: "boolean" },
  scenarios: { type: "string" },
  systems: { type: "string" },
  rounds: { type: "string" },
  events: { type: "string" },
  batch: { type: "string" },
  window: { type: "string" },
  rates: { type: "string" },
  duration: { type: "string" },
  "fanout-events": { type: "string" },
  "streams-duration": { type: "string" },
  "backlog-events": { type: "string" },
  "broker-events": { type: "string" },
  "seek-events": { type: "string" },
  before: { type: "string" },
  out: { type: "string" },
  "latency-log": { type: "string" },
} as const;

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options | "help" {
  const { values } = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false });
  if (values.help) return "help";
  const preset = values.quick || env.BENCH_QUICK === "1" ? "quick" : "full";
  const base = PRESETS[preset];
  const pick = (flag: keyof typeof FLAGS, envName: string) => {
    const value = values[flag] ?? env[envName];
    return typeof value === "string" && value !== "" ? value : undefined;
  };
  const num = (flag: keyof typeof FLAGS, envName: string, fallback: number, min: number) => {
    const raw = pick(flag, envName);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min)
      throw new Error(`--${flag} must be a number >= ${min}, got ${raw}`);
    return value;
  };
  const int = (flag: keyof typeof FLAGS, envName: string, fallback: number, min: number) => {
    const value = num(flag, envName, fallback, min);
    if (!Number.isInteger(value)) throw new Error(`--${flag} must be a whole number, got ${value}`);
    return value;
  };
  const list = <T extends string>(
    flag: keyof typeof FLAGS,
    envName: string,
    all: readonly T[],
    byDefault: readonly T[] = all,
  ): T[] => {
    const raw = pick(flag, envName);
    if (raw === undefined) return [...byDefault];
    const items = raw.split(",").map((s) => s.trim());
    const unknown = items.filter((s) => !all.includes(s as T));
    if (unknown.length > 0)
      throw new Error(`--${flag}: unknown ${unknown.join(", ")}; choose from ${all.join(", ")}`);
    return all.filter((s) => items.includes(s));
  };
  const rates = (pick("rates", "BENCH_RATES") ?? base.rates.join(",")).split(",").map(Number);
  if (rates.some((r) => !Number.isFinite(r) || r <= 0))
    throw new Error("--rates must be positive numbers, e.g. 1000,5000");
  const before = pick("before", "BENCH_BEFORE");
  const systems = list(
    "systems",
    "BENCH_SYSTEMS",
    SYSTEMS,
    SYSTEMS.filter((s) => s !== "pgmesh-before" || before !== undefined),
  );
  if (systems.includes("pgmesh-before") && before === undefined)
    throw new Error("--systems pgmesh-before needs --before DIR, a checkout of pgmesh to run the broker of");
  return {
    preset,
    scenarios: list("scenarios", "BENCH_SCENARIOS", SCENARIOS),
    systems,
    rounds: int("rounds", "BENCH_ROUNDS", base.rounds, 1),
    events: int("events", "BENCH_EVENTS", base.events, 1),
    batch: int("batch", "BENCH_BATCH", base.batch, 1),
    window: int("window", "BENCH_WINDOW", base.window, 1),
    rates,
    durationSeconds: num("duration", "BENCH_DURATION", base.durationSeconds, 0.1),
    fanoutEvents: int("fanout-events", "BENCH_FANOUT_EVENTS", base.fanoutEvents, 1),
    fanouts: base.fanouts,
    streamSubscriptions: base.streamSubscriptions,
    streamsPerSubscription: base.streamsPerSubscription,
    streamRate: base.streamRate,
    streamDurationSeconds: num("streams-duration", "BENCH_STREAMS_DURATION", base.streamDurationSeconds, 0.1),
    backlogEvents: int("backlog-events", "BENCH_BACKLOG_EVENTS", base.backlogEvents, 10),
    brokerEvents: int("broker-events", "BENCH_BROKER_EVENTS", base.brokerEvents, 1),
    brokerCounts: base.brokerCounts,
    brokerTopics: base.brokerTopics,
    brokerProducers: base.brokerProducers,
    seekEvents: int("seek-events", "BENCH_SEEK_EVENTS", base.seekEvents, 10),
    before,
    stallSeconds: base.stallSeconds,
    out: pick("out", "BENCH_OUT") ?? "bench/results/latest.json",
    latencyLog: pick("latency-log", "BENCH_LATENCY_LOG"),
  };
}
