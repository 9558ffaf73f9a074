// Should pg-boss keep its own node-postgres (pg) pool, or run on the broker's postgres.js driver
// through its `db` option? Measures insert and fetch+complete throughput of both, interleaved, on a
// fresh database, reports medians, and checks which pg-boss calls survive the adapter. Run from the
// repository root:
//
//   node --import tsx bench/pgboss-driver.ts
//
// BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) is only used to create
// and drop a throwaway database. BENCH_PREPARE=0 skips the informational prepare variant.
// See bench/README.md for what it measures and the results.
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { type Db, PgBoss } from "pg-boss";
import postgres from "postgres";

const BASE_URL = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const WITH_PREPARE = process.env.BENCH_PREPARE !== "0";
const ROUNDS = 5;
const JOBS = 5_000;
const BATCH = 100;
const POOL_MAX = 6;
const QUEUE = "bench";
const PGBOSS_VERSION = (createRequire(import.meta.url)("pg-boss/package.json") as { version: string })
  .version;

type Measure = "insert" | "drain";
type Query = postgres.Sql | postgres.TransactionSql | postgres.ReservedSql;

interface Variant {
  key: "A" | "B" | "P";
  schema: string;
  boss: PgBoss;
  samples: Record<Measure, number[]>;
}

// --- adapters -------------------------------------------------------------------------------------

/** The one-liner from the design question; what the broker already uses inside a transaction. */
function naiveAdapter(q: Query): Db {
  return { executeSql: async (text, values) => ({ rows: await q.unsafe(text, (values ?? []) as never[]) }) };
}

// pg-boss sends its schema install, migrations, createQueue/deleteQueue and much of its maintenance
// (lease expiry, deletion, queue stats) as one parameterless `BEGIN; ...; COMMIT;` script.
const STARTS_TRANSACTION = /^\s*BEGIN\b/i;
/** Statements that needed a reserved connection. Reset before each timed section, to show it stays 0. */
let reservedCalls = 0;

/**
 * The adapter a pooled postgres.js client actually needs. Identical to naiveAdapter for every
 * single-statement call (insert, fetch, complete); differs only for BEGIN scripts:
 * - postgres.js rejects a BEGIN on a pool with max > 1 (UNSAFE_TRANSACTION), but only after the
 *   server has run the whole script, so the script commits and the caller still gets an error.
 *   A reserved connection is allowed to run it.
 * - a failed script leaves that connection in an aborted transaction: roll it back before release.
 * - a multi-statement script resolves to one array per statement; pg-boss reads its rows flat.
 */
function poolAdapter(sql: postgres.Sql, options: { prepare?: boolean } = {}): Db {
  const unsafeOptions = options.prepare ? { prepare: true } : {};
  return {
    executeSql: async (text, values) => {
      const params = (values ?? []) as never[];
      let result: unknown[];
      if (STARTS_TRANSACTION.test(text)) {
        reservedCalls++;
        const reserved = await sql.reserve();
        try {
          result = await reserved.unsafe(text, params);
        } catch (e) {
          await reserved.unsafe("ROLLBACK").catch(() => {});
          throw e;
        } finally {
          reserved.release();
        }
      } else {
        result = await sql.unsafe(text, params, unsafeOptions);
      }
      return { rows: result.some(Array.isArray) ? result.flat() : result };
    },
  };
}

/** complete()'s result at runtime; its declared type (CommandResponse) is empty in pg-boss 12. */
interface Settled {
  affected: number;
  settled?: string[];
}

// --- workload -------------------------------------------------------------------------------------

const bossOptions = (connectionString: string, schema: string) => ({
  connectionString,
  schema,
  max: POOL_MAX,
  schedule: false,
  supervise: false,
  registerInstance: false,
});

const jobsFor = (round: number, batch: number, n = BATCH) =>
  Array.from({ length: n }, (_, i) => ({ data: { e: String(round * 1_000_000 + batch * BATCH + i) } }));

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** One step of work for one variant; resolves false once that variant has nothing left to do. */
type Step = () => Promise<boolean>;

/**
 * Runs the lanes step by step, round robin, starting each pass one lane further on, and returns
 * each lane's summed time in seconds. Interleaving at step granularity (one batch of 100) means a
 * noisy second on the machine lands on every variant alike rather than on whichever ran then.
 */
async function interleave(lanes: Step[]): Promise<number[]> {
  const seconds = lanes.map(() => 0);
  const active = lanes.map(() => true);
  for (let pass = 0; active.some(Boolean); pass++) {
    for (let i = 0; i < lanes.length; i++) {
      const lane = (pass + i) % lanes.length;
      if (!active[lane]) continue;
      const t0 = performance.now();
      active[lane] = await lanes[lane]();
      seconds[lane] += (performance.now() - t0) / 1000;
    }
  }
  return seconds;
}

/** Inserts JOBS jobs in batches of BATCH, one batch per step. */
function inserter(insert: (jobs: ReturnType<typeof jobsFor>) => Promise<unknown>, round: number): Step {
  let batch = 0;
  return async () => {
    await insert(jobsFor(round, batch++));
    return batch < JOBS / BATCH;
  };
}

/** One fetch of up to BATCH jobs and their complete() per step, until a fetch comes back empty. */
function drainer(boss: PgBoss, counted: { n: number }): Step {
  return async () => {
    const jobs = await boss.fetch<{ e: string }>(QUEUE, { batchSize: BATCH });
    if (jobs.length === 0) return false;
    const res = (await boss.complete(
      QUEUE,
      jobs.map((j) => ({ id: j.id, retryCount: j.retryCount })),
    )) as Settled;
    if (res.affected !== jobs.length) throw new Error(`complete affected ${res.affected} of ${jobs.length}`);
    counted.n += jobs.length;
    return true;
  };
}

// --- checks ---------------------------------------------------------------------------------------

/** A value's types, to compare what each driver hands back through pg-boss. */
function shape(value: unknown): unknown {
  if (value === null) return "null";
  if (value instanceof Date) return "Date";
  if (Array.isArray(value)) return value.length ? [shape(value[0])] : "[]";
  if (typeof value === "object")
    return Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, shape(v)]));
  return typeof value;
}

const outcome = async (fn: () => Promise<unknown>) => {
  try {
    await fn();
    return "ok";
  } catch (e) {
    return `error: ${(e as Error).message.split("\n")[0]}`;
  }
};

/** Which pg-boss calls work through the one-liner adapter on a postgres.js pool (max 6). */
async function probeNaiveAdapter(dbUrl: string, a: PgBoss, db: postgres.Sql) {
  const sql = postgres(dbUrl, { max: POOL_MAX, onnotice: () => {} });
  const probe: Record<string, string> = {};
  const started: PgBoss[] = [];
  const boss = (schema: string, extra: object = {}) => {
    const b = new PgBoss({ ...bossOptions(dbUrl, schema), ...extra, db: naiveAdapter(sql) });
    b.on("error", () => {});
    started.push(b);
    return b;
  };
  try {
    probe.startFreshSchema = await outcome(() => boss("probe_fresh").start());
    // postgres.js rejects at the BEGIN, but the server goes on to run (and commit) the rest of the
    // script: wait a little to see whether the schema shows up anyway.
    const t0 = performance.now();
    let installed = false;
    while (!installed && performance.now() - t0 < 5_000) {
      [{ installed }] = await db.unsafe(`SELECT to_regclass('probe_fresh.version') IS NOT NULL AS installed`);
      if (!installed) await new Promise((r) => setTimeout(r, 50));
    }
    probe.freshSchemaInstalledAnyway = installed
      ? `true, after ${Math.round(performance.now() - t0)} ms`
      : "false";
    probe.startInstalledSchema = await outcome(() => boss("bench_a").start());
    const naive = boss("bench_a", { migrate: false });
    probe.startInstalledSchemaMigrateFalse = await outcome(() => naive.start());
    probe.createQueue = await outcome(() => naive.createQueue("probe_q"));
    probe.createQueueCreatedAnyway = String((await a.getQueue("probe_q")) !== null);
    probe.insertFetchComplete = await outcome(async () => {
      await naive.insert("probe_q", jobsFor(0, 0, 3));
      const jobs = await naive.fetch("probe_q", { batchSize: 3 });
      const res = (await naive.complete(
        "probe_q",
        jobs.map((j) => ({ id: j.id, retryCount: j.retryCount })),
      )) as Settled;
      if (jobs.length !== 3 || res.affected !== 3)
        throw new Error(`fetched ${jobs.length}, completed ${res.affected}`);
    });
    probe.supervise = await outcome(() => naive.supervise("probe_q"));
    probe.deleteQueue = await outcome(() => naive.deleteQueue("probe_q"));
  } finally {
    for (const b of started) await b.stop({ graceful: false, close: true }).catch(() => {});
    await sql.end({ timeout: 5 });
  }
  return probe;
}

// --- main -----------------------------------------------------------------------------------------

async function main() {
  const dbName = `pgmesh_bench_${randomBytes(4).toString("hex")}`;
  const url = new URL(BASE_URL);
  url.pathname = `/${dbName}`;
  const dbUrl = url.toString();
  const admin = postgres(BASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${dbName}`);
  const db = postgres(dbUrl, { max: 1, onnotice: () => {} });

  const variants: Variant[] = [];
  const bosses: PgBoss[] = [];
  const pools: postgres.Sql[] = [db];
  const checks: Record<string, unknown> = {};
  const txSamples: number[] = [];
  const started = performance.now();
  try {
    const newPool = () => {
      const sql = postgres(dbUrl, { max: POOL_MAX, onnotice: () => {} });
      pools.push(sql);
      return sql;
    };
    const startBoss = async (key: string, schema: string, dbOption?: Db) => {
      const boss = new PgBoss({ ...bossOptions(dbUrl, schema), ...(dbOption ? { db: dbOption } : {}) });
      boss.on("error", (e) => console.error(`[${key}] pg-boss error`, e));
      bosses.push(boss);
      await boss.start();
      await boss.createQueue(QUEUE, { retryLimit: 1000 });
      return boss;
    };
    const variant = (key: Variant["key"], schema: string, boss: PgBoss) =>
      variants.push({ key, schema, boss, samples: { insert: [], drain: [] } });

    // A: pg-boss's own node-postgres pool for everything.
    variant("A", "bench_a", await startBoss("A", "bench_a"));
    // B: postgres.js through `db`. Each variant has its own schema, so job tables grow alike and
    // start() installs pg-boss through the adapter (migrate defaults to true).
    const sqlB = newPool();
    variant("B", "bench_b", await startBoss("B", "bench_b", poolAdapter(sqlB)));
    // P (B'): the same with postgres.js `prepare: true`. Informational. sql.unsafe() defaults to an
    // unnamed statement, which postgres.js sends as Parse+Describe, waits for the parameter types,
    // then Bind+Execute: two round trips per parameterised query, where node-postgres needs one.
    if (WITH_PREPARE)
      variant("P", "bench_p", await startBoss("P", "bench_p", poolAdapter(newPool(), { prepare: true })));
    // The publish path, on B's pool, in its own schema so its inserts do not grow B's job table.
    const txBoss = await startBoss("B-tx", "bench_btx", poolAdapter(sqlB));

    checks.naiveAdapter = await probeNaiveAdapter(dbUrl, variants[0].boss, db);
    checks.poolAdapter = {
      supervise: await outcome(() => variants[1].boss.supervise(QUEUE)),
      deleteAndCreateQueue: await outcome(async () => {
        await variants[1].boss.createQueue("probe_q2");
        await variants[1].boss.deleteQueue("probe_q2");
      }),
    };

    // Same results through both drivers? Insert two jobs, fetch them back with metadata, complete.
    const shapes: Record<string, string> = {};
    for (const v of variants) {
      const ids = await v.boss.insert(QUEUE, jobsFor(99, 0, 2), { returnId: true });
      const jobs = await v.boss.fetch<{ e: string }>(QUEUE, { batchSize: 2, includeMetadata: true });
      const res = (await v.boss.complete(
        QUEUE,
        jobs.map((j) => ({ id: j.id, retryCount: j.retryCount })),
      )) as Settled;
      if (ids?.length !== 2 || jobs.length !== 2 || res.affected !== 2 || res.settled?.length !== 2)
        throw new Error(`variant ${v.key}: insert/fetch/complete sanity check failed`);
      shapes[v.key] = JSON.stringify({ ids: shape(ids), job: shape(jobs[0]), complete: shape(res) });
    }
    checks.resultTypes = Object.fromEntries(
      Object.entries(shapes).map(([k, s]) => [k, k === "A" || s === shapes.A ? "same as A" : JSON.parse(s)]),
    );
    checks.resultTypesA = JSON.parse(shapes.A);

    // What send(data), complete(data) and fail(data) store. The two drivers bind parameters
    // differently: node-postgres JSON.stringifies any object, postgres.js serializes by the type
    // the server describes (json/jsonb: JSON.stringify, so a string would be encoded twice; text:
    // String(x)). pg-boss passes objects for these, so both should store a jsonb object. Asked of
    // the server directly too, since pg-boss parses a string it reads back. Own queue, left behind.
    const outputs: Record<string, unknown> = {};
    for (const v of variants) {
      const q = "probe_out";
      await v.boss.createQueue(q);
      const sentId = await v.boss.send(q, { via: "send" });
      const [doneId, failedId] = (await v.boss.insert(q, jobsFor(98, 0, 2), { returnId: true })) ?? [];
      const fetched = await v.boss.fetch(q, { batchSize: 3 });
      const [sent, done, failed] = [sentId, doneId, failedId].map((id) => fetched.find((j) => j.id === id));
      if (!sent || !done || !failed) throw new Error(`variant ${v.key}: probe_out fetch failed`);
      await v.boss.complete(q, { id: done.id, retryCount: done.retryCount }, { ok: 1 });
      await v.boss.fail(q, { id: failed.id, retryCount: failed.retryCount }, { reason: "x" });
      const stored = await db.unsafe(
        `SELECT id::text, jsonb_typeof(data) AS data, jsonb_typeof(output) AS output
           FROM ${v.schema}.job WHERE id = ANY($1::uuid[])`,
        [[sent.id, done.id, failed.id]] as never[],
      );
      const row = (id: string) => stored.find((r) => r.id === id);
      outputs[v.key] = {
        sendData: `${JSON.stringify(sent.data)} stored as ${row(sent.id)?.data}`,
        completeOutput: `${JSON.stringify((await v.boss.getJobById(q, done.id))?.output)} stored as ${row(done.id)?.output}`,
        failOutput: `${JSON.stringify((await v.boss.getJobById(q, failed.id))?.output)} stored as ${row(failed.id)?.output}`,
      };
    }
    checks.storedOutput = outputs;

    reservedCalls = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // (1) insert: A, B, B' and the in-transaction insert, interleaved batch by batch.
      const insertLanes = [
        ...variants.map((v) => inserter((jobs) => v.boss.insert(QUEUE, jobs), round)),
        // The broker's publish path: each batch inserted inside its own postgres.js transaction.
        inserter((jobs) => sqlB.begin((tx) => txBoss.insert(QUEUE, jobs, { db: naiveAdapter(tx) })), round),
      ];
      const insertSeconds = await interleave(insertLanes);
      for (const [i, v] of variants.entries()) v.samples.insert.push(JOBS / insertSeconds[i]);
      txSamples.push(JOBS / insertSeconds[variants.length]);

      if (round === 0) {
        // pg-boss's fetch plans badly on a job table that was never analyzed.
        for (const schema of [...variants.map((v) => v.schema), "bench_btx"]) {
          await db.unsafe(`ANALYZE ${schema}.job`);
        }
      }

      // (2) fetch+complete until empty, interleaved fetch by fetch.
      const counts = variants.map(() => ({ n: 0 }));
      const drainSeconds = await interleave(variants.map((v, i) => drainer(v.boss, counts[i])));
      variants.forEach((v, i) => {
        if (counts[i].n !== JOBS)
          throw new Error(`variant ${v.key}: drained ${counts[i].n} jobs, expected ${JOBS}`);
        v.samples.drain.push(JOBS / drainSeconds[i]);
      });
    }
    checks.reservedCallsDuringTimedWork = reservedCalls;

    report(variants, txSamples, checks, (performance.now() - started) / 1000);
  } finally {
    for (const b of bosses) await b.stop({ graceful: false, close: true }).catch(() => {});
    for (const p of pools) await p.end({ timeout: 5 }).catch(() => {});
    await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end({ timeout: 5 });
  }
}

// --- report ---------------------------------------------------------------------------------------

function report(variants: Variant[], txSamples: number[], checks: Record<string, unknown>, elapsed: number) {
  const get = (key: Variant["key"]) => variants.find((v) => v.key === key);
  const med = (v: Variant | undefined, m: Measure) => (v ? median(v.samples[m]) : null);
  const ratio = (x: number | null, y: number | null) =>
    x === null || y === null ? null : Math.round((x / y) * 1000) / 1000;
  const fmt = (n: number | null) => (n === null ? "n/a" : Math.round(n).toLocaleString("en-US"));
  const fmtRatio = (r: number | null) => (r === null ? "n/a" : r.toFixed(2));
  const [A, B, P] = [get("A"), get("B"), get("P")];
  const tx = median(txSamples);

  const head = ["median jobs/s", "A: pg pool", "B: postgres.js", "B/A"];
  if (P) head.push("B': +prepare", "B'/A");
  const lines: string[][] = [];
  for (const [name, m] of [
    ["insert (50 x 100)", "insert"],
    ["fetch+complete (100 per fetch)", "drain"],
  ] as [string, Measure][]) {
    const cells = [name, fmt(med(A, m)), fmt(med(B, m)), fmtRatio(ratio(med(B, m), med(A, m)))];
    if (P) cells.push(fmt(med(P, m)), fmtRatio(ratio(med(P, m), med(A, m))));
    lines.push(cells);
  }
  lines.push(["insert in sql.begin (50 x 100)", "n/a", fmt(tx), "-", ...(P ? ["-", "-"] : [])]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const row = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");

  console.log(
    `pg-boss ${PGBOSS_VERSION}, node ${process.version}: median of ${ROUNDS} interleaved rounds, ${JOBS} jobs each, pool max ${POOL_MAX}`,
  );
  console.log(row(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const l of lines) console.log(row(l));
  console.log("A in sql.begin: n/a, pg-boss's own pg pool cannot join a postgres.js transaction.");
  console.log(`naive adapter on a postgres.js pool: ${JSON.stringify(checks.naiveAdapter)}`);
  console.log(`pool adapter (reserve() for BEGIN scripts): ${JSON.stringify(checks.poolAdapter)}`);
  console.log(`fetched job / complete() result types vs A: ${JSON.stringify(checks.resultTypes)}`);
  const stored = checks.storedOutput as Record<string, unknown>;
  const storedVsA = Object.fromEntries(
    Object.entries(stored).map(([k, o]) => [
      k,
      k !== "A" && JSON.stringify(o) === JSON.stringify(stored.A) ? "same as A" : o,
    ]),
  );
  console.log(`send(data) / complete(data) / fail(data) stored: ${JSON.stringify(storedVsA)}`);
  console.log(`total ${elapsed.toFixed(1)}s`);

  const r = Math.round;
  const json = {
    bench: "pgboss-driver",
    pgBoss: PGBOSS_VERSION,
    node: process.version,
    rounds: ROUNDS,
    jobsPerRound: JOBS,
    batch: BATCH,
    poolMax: POOL_MAX,
    unit: "jobs/s",
    median: {
      ...Object.fromEntries(
        variants.map((v) => [
          v.key,
          { insert: r(median(v.samples.insert)), drain: r(median(v.samples.drain)) },
        ]),
      ),
      BtxInsert: r(tx),
    },
    ratio: {
      insertBA: ratio(med(B, "insert"), med(A, "insert")),
      drainBA: ratio(med(B, "drain"), med(A, "drain")),
      ...(P
        ? {
            insertPA: ratio(med(P, "insert"), med(A, "insert")),
            drainPA: ratio(med(P, "drain"), med(A, "drain")),
          }
        : {}),
    },
    samples: {
      ...Object.fromEntries(
        variants.map((v) => [v.key, { insert: v.samples.insert.map(r), drain: v.samples.drain.map(r) }]),
      ),
      BtxInsert: txSamples.map(r),
    },
    checks,
    elapsedSeconds: Number(elapsed.toFixed(1)),
  };
  console.log(JSON.stringify(json));
}

// A closed stdout (e.g. piped into head) must not skip the DROP DATABASE in main's finally.
process.stdout.on("error", () => {});

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
