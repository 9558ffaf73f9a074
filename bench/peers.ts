// pgmesh next to its peers: raw pg-boss, RabbitMQ and NATS JetStream, in one run, on one machine.
// Per system and round: publish N events of 200 bytes in batches of 100 (each batch confirmed before
// the next) while one consumer (window 100) receives and acks every event. Reports publish and
// end-to-end throughput and publish-to-ack latency, medians of interleaved rounds, as ratios to
// pgmesh. Run from the repository root:
//
//   node --import tsx bench/peers.ts        (or: npm run bench:peers)
//
// BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) is only used to create
// and drop two throwaway databases; BENCH_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672) and
// BENCH_NATS_URL (default 127.0.0.1:4222) name the brokers; BENCH_EVENTS (5000) and BENCH_ROUNDS (5)
// size the run. See bench/README.md for what it measures and the results.
import { randomBytes } from "node:crypto";
import type { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import type { PgmeshClient } from "@pgmesh/sdk";
import { AckStatus, type SubscribeResponse } from "@pgmesh/sdk/gen/pgmesh/v1/subscriber";
import amqp from "amqplib";
import {
  AckPolicy,
  type ConsumerMessages,
  type NatsConnection,
  connect as natsConnect,
  StorageType,
} from "nats";
import { PgBoss } from "pg-boss";
import postgres from "postgres";
import { type RunningBroker, startBroker } from "../broker/src/broker.ts";
import { loadConfig } from "../broker/src/config.ts";
import { createLogger } from "../broker/src/log.ts";

const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const AMQP_URL = process.env.BENCH_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const NATS_URL = process.env.BENCH_NATS_URL ?? "127.0.0.1:4222";
const EVENTS = Number(process.env.BENCH_EVENTS ?? 5_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WARMUP_EVENTS = 500;
const BATCH = 100;
const WINDOW = 100;
const PAYLOAD_BYTES = 200;
/** A round that has not seen every ack by then fails the run (lost events). */
const ROUND_TIMEOUT_MS = 60_000;
/** How long the raw pg-boss consumer sleeps after an empty fetch. */
const PGBOSS_IDLE_MS = 5;
const PGBOSS_QUEUE = "bench";
const SUFFIX = randomBytes(4).toString("hex");
/** An installed package's version (read from the root node_modules: not every package exports it). */
const version = (pkg: string) =>
  (
    JSON.parse(readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), "utf8")) as {
      version: string;
    }
  ).version;

// --- measuring ------------------------------------------------------------------------------------

/** What one system did in one round; times are ms from the first publish. */
interface Sample {
  publishMs: number;
  ackMs: number;
  settledMs: number;
  p50Ms: number;
  p99Ms: number;
  duplicates: number;
}

/**
 * Counts the acks of one round: each event's index is in its payload, so a Set-like bitmap finds
 * duplicates and, with the count, losses. The latency of an event runs from the moment its batch
 * was handed to the publisher to the moment the consumer acks it (first delivery only).
 */
class Tracker {
  count = 0;
  duplicates = 0;
  foreign = 0;
  lastAckAt = 0;
  private readonly seen: Uint8Array;
  private readonly latencies: Float64Array;
  private resolveDone!: () => void;
  readonly done = new Promise<void>((resolve) => {
    this.resolveDone = resolve;
  });

  constructor(
    readonly n: number,
    readonly roundId: number,
  ) {
    this.seen = new Uint8Array(n);
    this.latencies = new Float64Array(n);
  }

  /** Records that the consumer is acking this event now; true when it was the last one missing. */
  ack(roundId: number, index: number, sentAt: number): boolean {
    const now = performance.now();
    if (roundId !== this.roundId || !(index >= 0 && index < this.n)) {
      this.foreign++;
      return false;
    }
    if (this.seen[index]) {
      this.duplicates++;
      return false;
    }
    this.seen[index] = 1;
    this.latencies[this.count++] = now - sentAt;
    this.lastAckAt = now;
    if (this.count === this.n) {
      this.resolveDone();
      return true;
    }
    return false;
  }

  sample(t0: number, publishedAt: number, settledAt: number): Sample {
    if (this.foreign > 0) throw new Error(`${this.foreign} events from another round arrived`);
    const sorted = this.latencies.slice(0, this.count).sort();
    return {
      publishMs: publishedAt - t0,
      ackMs: this.lastAckAt - t0,
      settledMs: settledAt - t0,
      p50Ms: sorted[Math.floor(sorted.length * 0.5)] ?? 0,
      p99Ms: sorted[Math.floor(sorted.length * 0.99)] ?? 0,
      duplicates: this.duplicates,
    };
  }

  describeMissing(): string {
    return `${this.n - this.count} of ${this.n} events never acked`;
  }
}

/** The same 200-byte payload for pgmesh, RabbitMQ and NATS: round id, index, send time, padding. */
function payload(roundId: number, index: number, sentAt: number): Buffer {
  const buf = Buffer.alloc(PAYLOAD_BYTES, 0x78);
  buf.writeUInt32LE(roundId, 0);
  buf.writeUInt32LE(index, 4);
  buf.writeDoubleLE(sentAt, 8);
  return buf;
}

function readPayload(bytes: Uint8Array): [roundId: number, index: number, sentAt: number] {
  if (bytes.byteLength !== PAYLOAD_BYTES) return [-1, -1, 0];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return [view.getUint32(0, true), view.getUint32(4, true), view.getFloat64(8, true)];
}

/** pg-boss job data is JSON: the same fields, padded to about 200 bytes of JSON. */
interface JobData {
  r: number;
  i: number;
  t: number;
  p: string;
}
const JSON_PAD = "x".repeat(PAYLOAD_BYTES - JSON.stringify({ r: 1, i: 1000, t: 12345.678901, p: "" }).length);

async function within<T>(promise: Promise<T>, what: string, onTimeout?: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`${what}: timed out after ${ROUND_TIMEOUT_MS} ms${onTimeout ? `, ${onTimeout()}` : ""}`),
        ),
      ROUND_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// --- the systems ----------------------------------------------------------------------------------

interface System {
  key: "pgmesh" | "pgboss" | "rabbitmq" | "nats";
  label: string;
  /** Versions and settings worth reporting. */
  info: Record<string, string>;
  setup(): Promise<void>;
  round(tag: string, roundId: number, n: number): Promise<Sample>;
  teardown(): Promise<void>;
}

/** CREATE DATABASE pgmesh_bench_<random>_<what>; dropped WITH (FORCE) by dropDatabases. */
const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
const databases: string[] = [];
async function createDatabase(what: string): Promise<string> {
  const name = `pgmesh_bench_${SUFFIX}_${what}`;
  await admin.unsafe(`CREATE DATABASE ${name}`);
  databases.push(name);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}
/** Whether (auto)analyze has run on pg-boss's job table: its plans for fetch() depend on it. */
async function analyzeState(sql: postgres.Sql): Promise<string> {
  const [row] = await sql<{ rows: string; analyze: string; autoanalyze: string }[]>`
    SELECT n_live_tup::text AS rows, analyze_count::text AS analyze, autoanalyze_count::text AS autoanalyze
    FROM pg_stat_user_tables WHERE schemaname = 'pgboss' AND relname = 'job_common'`;
  return row
    ? `pgboss.job_common: ${row.rows} live rows, analyzed ${row.analyze}x by hand, ${row.autoanalyze}x by autovacuum`
    : "pgboss.job_common not found";
}

async function dropDatabases(): Promise<void> {
  while (databases.length > 0) {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${databases[0]} WITH (FORCE)`);
    databases.shift();
  }
}

function pgmeshSystem(): System {
  let broker: RunningBroker | undefined;
  let client: PgmeshClient | undefined;
  const sys: System = {
    key: "pgmesh",
    label: "pgmesh",
    info: {},
    async setup() {
      const url = await createDatabase("pgmesh");
      const config = loadConfig([], {
        DATABASE_URL: url,
        PGMESH_GRPC_ADDRESS: "127.0.0.1:0",
        PGMESH_METRICS_ADDRESS: "127.0.0.1:0",
      });
      broker = await startBroker(config, createLogger("warn"));
      const sdk = await import("@pgmesh/sdk");
      client = new sdk.PgmeshClient(broker.grpcAddress, { source: "bench" });
      sys.info = { broker: "in-process, gRPC over 127.0.0.1", pgBoss: version("pg-boss") };
    },
    async round(tag, roundId, n) {
      const c = client as NonNullable<typeof client>;
      const name = `bench.${tag}`;
      await c.createTopic(name);
      await c.createSubscription(name, name, {
        retryPolicy: { initialBackoffSeconds: 0, maxBackoffSeconds: 0, jitter: 0 },
      });
      const tracker = new Tracker(n, roundId);
      const errors: unknown[] = [];
      const sub = c.subscribeRaw(
        name,
        (event) => {
          tracker.ack(...readPayload(event.data));
        },
        { concurrency: WINDOW, onError: (error) => errors.push(error) },
      );
      // The SDK acks one event per stream message and does not surface the broker's ack results;
      // listen to the stream itself to see when the broker has committed the last ack.
      let acked = 0;
      let notAcked = 0;
      let settledAt = 0;
      let resolveSettled!: () => void;
      const settled = new Promise<void>((resolve) => {
        resolveSettled = resolve;
      });
      const stream = (sub as unknown as { call?: EventEmitter }).call;
      if (!stream) throw new Error("the subscriber has no stream (SDK internals changed?)");
      stream.on("data", (message: SubscribeResponse) => {
        if (message.response?.$case !== "ackResults") return;
        for (const result of message.response.value.results) {
          if (result.status !== AckStatus.ACK_STATUS_ACKED) notAcked++;
          else if (++acked === n) {
            settledAt = performance.now();
            resolveSettled();
          }
        }
      });
      try {
        await within(sub.ready, "pgmesh: opening the stream");
        const t0 = performance.now();
        for (let start = 0; start < n; start += BATCH) {
          const sentAt = performance.now();
          const events = [];
          for (let i = start; i < Math.min(n, start + BATCH); i++) {
            events.push({
              id: `${tag}-${i}`,
              source: "bench",
              type: "bench.Payload",
              data: { typeUrl: "type.googleapis.com/bench.Payload", value: payload(roundId, i, sentAt) },
            });
          }
          const results = await c.publish(name, events);
          if (results.some((r) => r.duplicate)) throw new Error("pgmesh: publish reported a duplicate");
        }
        const publishedAt = performance.now();
        await within(tracker.done, "pgmesh: consuming", () => tracker.describeMissing());
        await within(settled, "pgmesh: broker ack results", () => `${acked} of ${n} acks confirmed`);
        if (notAcked > 0) throw new Error(`pgmesh: ${notAcked} acks came back other than ACKED`);
        if (errors.length > 0) throw new Error(`pgmesh: subscriber errors: ${String(errors[0])}`);
        return tracker.sample(t0, publishedAt, settledAt);
      } finally {
        await sub.close();
        await c.deleteSubscription(name);
        await c.deleteTopic(name);
      }
    },
    async teardown() {
      client?.close();
      await broker?.stop();
      if (broker) {
        const sql = postgres(broker.databaseUrl, { max: 1, onnotice: () => {} });
        try {
          sys.info.jobTableAtEnd = await analyzeState(sql);
        } finally {
          await sql.end({ timeout: 5 });
        }
      }
    },
  };
  return sys;
}

function pgbossSystem(): System {
  let boss: PgBoss | undefined;
  let sql: postgres.Sql | undefined;
  const sys: System = {
    key: "pgboss",
    label: "pg-boss",
    info: { pgBoss: version("pg-boss") },
    async setup() {
      const url = await createDatabase("pgboss");
      boss = new PgBoss({
        connectionString: url,
        schema: "pgboss",
        max: 6,
        schedule: false,
        supervise: false,
        registerInstance: false,
      });
      boss.on("error", (error: unknown) => console.error("pg-boss:", error));
      await boss.start();
      // One queue for every round. Analyze the job table once, with a first batch of this queue's
      // jobs in it, then drain that batch (untimed). fetch() plans depend on the statistics knowing
      // the queue's name: see bench/README.md.
      sql = postgres(url, { max: 1, onnotice: () => {} });
      await boss.createQueue(PGBOSS_QUEUE, { retryLimit: 1 });
      await boss.insert(
        PGBOSS_QUEUE,
        Array.from({ length: BATCH }, (_, i) => ({ data: { r: 0, i, t: 0, p: JSON_PAD } })),
      );
      await sql.unsafe("ANALYZE pgboss.job");
      for (let left = BATCH; left > 0; ) {
        const jobs = await boss.fetch<JobData>(PGBOSS_QUEUE, { batchSize: BATCH });
        if (jobs.length === 0) throw new Error("pg-boss: the seed batch did not come back");
        await boss.complete(
          PGBOSS_QUEUE,
          jobs.map((j) => ({ id: j.id, retryCount: j.retryCount })),
        );
        left -= jobs.length;
      }
      sys.info.jobTable = await analyzeState(sql);
    },
    async round(_tag, roundId, n) {
      const b = boss as PgBoss;
      const queue = PGBOSS_QUEUE;
      const tracker = new Tracker(n, roundId);
      let stop = false;
      let settledAt = 0;
      // One consumer: fetch up to 100, ack them with one complete(), repeat; running before the
      // first publish, and polling every PGBOSS_IDLE_MS while the queue is empty.
      const consume = async () => {
        let completed = 0;
        while (completed < n && !stop) {
          const jobs = await b.fetch<JobData>(queue, { batchSize: WINDOW });
          if (jobs.length === 0) {
            await sleep(PGBOSS_IDLE_MS);
            continue;
          }
          for (const job of jobs) tracker.ack(job.data.r, job.data.i, job.data.t);
          const res = (await b.complete(
            queue,
            jobs.map((j) => ({ id: j.id, retryCount: j.retryCount })),
          )) as unknown as { affected: number };
          if (res.affected !== jobs.length) {
            throw new Error(`pg-boss: complete affected ${res.affected} of ${jobs.length}`);
          }
          completed += jobs.length;
        }
        settledAt = performance.now();
      };
      const consumer = consume();
      consumer.catch(() => {});
      try {
        const t0 = performance.now();
        for (let start = 0; start < n; start += BATCH) {
          const sentAt = performance.now();
          const jobs = [];
          for (let i = start; i < Math.min(n, start + BATCH); i++) {
            jobs.push({ data: { r: roundId, i, t: sentAt, p: JSON_PAD } satisfies JobData });
          }
          await b.insert(queue, jobs);
        }
        const publishedAt = performance.now();
        await within(consumer, "pg-boss: consuming", () => tracker.describeMissing());
        if (tracker.count !== n) throw new Error(`pg-boss: ${tracker.describeMissing()}`);
        return tracker.sample(t0, publishedAt, settledAt);
      } finally {
        stop = true;
        await consumer.catch(() => {});
      }
    },
    async teardown() {
      if (sql) sys.info.jobTableAtEnd = await analyzeState(sql);
      await boss?.stop({ graceful: false, close: true });
      await sql?.end({ timeout: 5 });
    },
  };
  return sys;
}

function rabbitSystem(): System {
  // Publisher and consumer on connections of their own, as RabbitMQ recommends.
  let pubConn: amqp.ChannelModel | undefined;
  let subConn: amqp.ChannelModel | undefined;
  let pub: amqp.ConfirmChannel | undefined;
  let sub: amqp.Channel | undefined;
  const sys: System = {
    key: "rabbitmq",
    label: "RabbitMQ",
    info: {},
    async setup() {
      // TCP_NODELAY, as the pgmesh (grpc-js), pg and nats clients set by default; amqplib leaves Nagle
      // on, which only delayed the settle probe below (checkQueue) by 40 ms.
      pubConn = await amqp.connect(AMQP_URL, { noDelay: true });
      subConn = await amqp.connect(AMQP_URL, { noDelay: true });
      pub = await pubConn.createConfirmChannel();
      sub = await subConn.createChannel();
      await sub.prefetch(WINDOW);
      const props = pubConn.connection.serverProperties;
      sys.info = {
        server: `RabbitMQ ${props.version}`,
        amqplib: version("amqplib"),
        queue: "classic, durable; persistent messages; confirm channel; one basic.ack per message",
      };
    },
    async round(tag, roundId, n) {
      const p = pub as amqp.ConfirmChannel;
      const s = sub as amqp.Channel;
      const queue = `pgmesh_bench.${SUFFIX}.${tag}`;
      await p.assertQueue(queue, { durable: true });
      const tracker = new Tracker(n, roundId);
      let consumerTag: string | undefined;
      try {
        ({ consumerTag } = await s.consume(
          queue,
          (msg) => {
            if (!msg) return;
            tracker.ack(...readPayload(msg.content));
            s.ack(msg);
          },
          { noAck: false },
        ));
        const t0 = performance.now();
        for (let start = 0; start < n; start += BATCH) {
          const sentAt = performance.now();
          for (let i = start; i < Math.min(n, start + BATCH); i++) {
            p.sendToQueue(queue, payload(roundId, i, sentAt), { persistent: true });
          }
          await p.waitForConfirms();
        }
        const publishedAt = performance.now();
        await within(tracker.done, "RabbitMQ: consuming", () => tracker.describeMissing());
        // A synchronous method on the consumer's channel: the server has taken every ack before it.
        const check = await s.checkQueue(queue);
        const settledAt = performance.now();
        if (check.messageCount !== 0) throw new Error(`RabbitMQ: ${check.messageCount} messages left`);
        return tracker.sample(t0, publishedAt, settledAt);
      } finally {
        if (consumerTag) await s.cancel(consumerTag);
        await p.deleteQueue(queue);
      }
    },
    async teardown() {
      await pubConn?.close();
      await subConn?.close();
    },
  };
  return sys;
}

function natsSystem(): System {
  let pubNc: NatsConnection | undefined;
  let subNc: NatsConnection | undefined;
  const sys: System = {
    key: "nats",
    label: "NATS JetStream",
    info: {},
    async setup() {
      pubNc = await natsConnect({ servers: NATS_URL, name: "pgmesh-bench-pub" });
      subNc = await natsConnect({ servers: NATS_URL, name: "pgmesh-bench-sub" });
      sys.info = {
        server: `nats-server ${pubNc.info?.version ?? "?"}`,
        nats: version("nats"),
        stream: "file storage, 1 replica; durable pull consumer, AckExplicit, max_ack_pending 100",
      };
    },
    async round(tag, roundId, n) {
      const pnc = pubNc as NatsConnection;
      const jsm = await pnc.jetstreamManager();
      const js = pnc.jetstream();
      const stream = `PGMESH_BENCH_${SUFFIX}_${tag}`;
      const subject = `pgmesh_bench.${SUFFIX}.${tag}`;
      await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.File });
      let messages: ConsumerMessages | undefined;
      try {
        await jsm.consumers.add(stream, {
          durable_name: "bench",
          ack_policy: AckPolicy.Explicit,
          max_ack_pending: WINDOW,
        });
        const consumer = await (subNc as NatsConnection).jetstream().consumers.get(stream, "bench");
        const tracker = new Tracker(n, roundId);
        messages = await consumer.consume({ max_messages: WINDOW });
        const ms = messages;
        let settledAt = 0;
        const consume = async () => {
          for await (const m of ms) {
            if (tracker.ack(...readPayload(m.data))) {
              // The last ack waits for the server's reply; acks on one connection are taken in order.
              if (!(await m.ackAck())) throw new Error("NATS: the last ack was not confirmed");
              settledAt = performance.now();
              return;
            }
            m.ack();
          }
        };
        const consuming = consume();
        consuming.catch(() => {});
        const t0 = performance.now();
        for (let start = 0; start < n; start += BATCH) {
          const sentAt = performance.now();
          const acks = [];
          for (let i = start; i < Math.min(n, start + BATCH); i++) {
            acks.push(js.publish(subject, payload(roundId, i, sentAt)));
          }
          const done = await Promise.all(acks);
          if (done.some((a) => a.duplicate)) throw new Error("NATS: publish reported a duplicate");
        }
        const publishedAt = performance.now();
        await within(consuming, "NATS: consuming", () => tracker.describeMissing());
        if (tracker.count !== n) throw new Error(`NATS: ${tracker.describeMissing()}`);
        const info = await jsm.consumers.info(stream, "bench");
        if (info.num_ack_pending !== 0 || info.num_pending !== 0) {
          throw new Error(`NATS: ${info.num_pending} pending, ${info.num_ack_pending} unacked after the run`);
        }
        return tracker.sample(t0, publishedAt, settledAt);
      } finally {
        messages?.stop();
        await jsm.streams.delete(stream);
      }
    },
    async teardown() {
      await pubNc?.drain();
      await subNc?.drain();
    },
  };
  return sys;
}

// --- the run --------------------------------------------------------------------------------------

type Metric = "publish" | "ack" | "settled" | "p50" | "p99";
const METRICS: { key: Metric; label: string; value: (s: Sample, n: number) => number; digits: number }[] = [
  {
    key: "publish",
    label: "publish confirmed (events/s)",
    value: (s, n) => n / (s.publishMs / 1000),
    digits: 0,
  },
  { key: "ack", label: "end to end, last ack (events/s)", value: (s, n) => n / (s.ackMs / 1000), digits: 0 },
  {
    key: "settled",
    label: "end to end, ack settled (events/s)",
    value: (s, n) => n / (s.settledMs / 1000),
    digits: 0,
  },
  { key: "p50", label: "publish-to-ack p50 (ms)", value: (s) => s.p50Ms, digits: 1 },
  { key: "p99", label: "publish-to-ack p99 (ms)", value: (s) => s.p99Ms, digits: 1 },
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
/** A ratio with two significant digits at least (latency ratios can be far below 0.01). */
const fmtRatio = (x: number) => (x >= 10 ? x.toFixed(1) : x >= 0.1 ? x.toFixed(2) : x.toPrecision(2));
const fmt = (x: number, digits: number) =>
  x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

async function main(): Promise<void> {
  const started = performance.now();
  const systems = [pgmeshSystem(), pgbossSystem(), rabbitSystem(), natsSystem()];
  const samples = new Map<System["key"], Sample[]>(systems.map((s) => [s.key, []]));
  const [pgSettings] = await admin<{ version: string; fsync: string; synchronous_commit: string }[]>`
    SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync,
           current_setting('synchronous_commit') AS synchronous_commit`;
  let failure: unknown;
  try {
    for (const system of systems) await system.setup();
    // Warm-up: every system once with a small round, not counted.
    for (const system of systems) await system.round("w", 1, WARMUP_EVENTS);
    for (let r = 0; r < ROUNDS; r++) {
      const order = systems.map((_, i) => systems[(i + r) % systems.length] as System);
      for (const system of order) {
        const sample = await system.round(`r${r + 1}`, r + 2, EVENTS);
        samples.get(system.key)?.push(sample);
        process.stderr.write(
          `round ${r + 1} ${system.label.padEnd(14)} publish ${fmt(sample.publishMs, 0)} ms, last ack ${fmt(sample.ackMs, 0)} ms, settled ${fmt(sample.settledMs, 0)} ms, p50 ${fmt(sample.p50Ms, 1)} ms, p99 ${fmt(sample.p99Ms, 1)} ms${sample.duplicates ? `, ${sample.duplicates} duplicates` : ""}\n`,
        );
      }
    }
  } catch (error) {
    failure = error;
  }
  for (const system of systems) {
    await system.teardown().catch((error: unknown) => {
      failure ??= error;
    });
  }
  await dropDatabases();
  await admin.end();
  if (failure) throw failure;

  // Medians, and each peer's median of its per-round ratio to pgmesh (same round, same conditions).
  const base = samples.get("pgmesh") as Sample[];
  const medians: Record<string, Record<Metric, number>> = {};
  const ratios: Record<string, Record<Metric, number>> = {};
  for (const system of systems) {
    const mine = samples.get(system.key) as Sample[];
    medians[system.key] = Object.fromEntries(
      METRICS.map((m) => [m.key, median(mine.map((s) => m.value(s, EVENTS)))]),
    ) as Record<Metric, number>;
    ratios[system.key] = Object.fromEntries(
      METRICS.map((m) => [
        m.key,
        median(mine.map((s, i) => m.value(s, EVENTS) / m.value(base[i] as Sample, EVENTS))),
      ]),
    ) as Record<Metric, number>;
  }
  const duplicates = Object.fromEntries(
    systems.map((s) => [s.key, (samples.get(s.key) as Sample[]).reduce((a, x) => a + x.duplicates, 0)]),
  );

  const head = [
    `median of ${ROUNDS} interleaved rounds`.padEnd(36),
    ...systems.flatMap((s, i) =>
      i === 0 ? [s.label.padStart(9)] : [s.label.padStart(14), "/pgm".padStart(7)],
    ),
  ];
  console.log(
    `pgmesh vs peers: ${EVENTS} events of ${PAYLOAD_BYTES} B per round, published in batches of ${BATCH} (each confirmed), one consumer, window ${WINDOW}`,
  );
  console.log(head.join("  "));
  console.log(head.map((h) => "-".repeat(h.length)).join("  "));
  for (const m of METRICS) {
    const cells = [m.label.padEnd(36)];
    systems.forEach((s, i) => {
      const value = fmt((medians[s.key] as Record<Metric, number>)[m.key], m.digits);
      if (i === 0) cells.push(value.padStart(9));
      else
        cells.push(
          value.padStart(14),
          fmtRatio((ratios[s.key] as Record<Metric, number>)[m.key]).padStart(7),
        );
    });
    console.log(cells.join("  "));
  }
  console.log(
    `/pgm: the median over rounds of peer / pgmesh in the same round (throughput: > 1 = peer faster; latency: < 1 = peer quicker)`,
  );
  console.log(
    `duplicates: ${JSON.stringify(duplicates)}; PostgreSQL ${pgSettings?.version}: fsync=${pgSettings?.fsync}, synchronous_commit=${pgSettings?.synchronous_commit}`,
  );
  for (const s of systems) console.log(`${s.label}: ${JSON.stringify(s.info)}`);
  const totalSeconds = (performance.now() - started) / 1000;
  console.log(`total ${totalSeconds.toFixed(1)}s`);
  console.log(
    JSON.stringify({
      bench: "peers",
      node: process.version,
      events: EVENTS,
      rounds: ROUNDS,
      batch: BATCH,
      window: WINDOW,
      payloadBytes: PAYLOAD_BYTES,
      postgres: pgSettings,
      systems: Object.fromEntries(systems.map((s) => [s.key, s.info])),
      medians,
      ratiosToPgmesh: ratios,
      duplicates,
      samples: Object.fromEntries(samples),
      totalSeconds: Number(totalSeconds.toFixed(1)),
    }),
  );
}

try {
  await main();
  process.exit(0);
} catch (error) {
  console.error("bench failed:", error);
  await dropDatabases().catch((e: unknown) => console.error("dropping the bench databases:", e));
  await admin.end({ timeout: 5 }).catch(() => {});
  process.exit(1);
}
