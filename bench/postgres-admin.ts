// The bench's one connection to BENCH_DATABASE_URL: throwaway databases (created per scenario and
// system, dropped WITH (FORCE) at the end, also after a failure), commit counts from
// pg_stat_database and table sizes. Nothing else runs in the database the URL names.
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import postgres from "postgres";

export const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const RUN = randomBytes(3).toString("hex");

export const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
const created = new Set<string>();
let sequence = 0;

/** A fresh database for one system in one scenario; returns its name and URL. */
export async function createDatabase(what: string): Promise<{ name: string; url: string }> {
  const name = `pgmesh_bench_${RUN}_${++sequence}_${what.replace(/[^a-z0-9]/g, "")}`;
  await admin.unsafe(`CREATE DATABASE ${name}`);
  created.add(name);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return { name, url: url.toString() };
}

export async function dropDatabase(name: string): Promise<void> {
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  created.delete(name);
}

export async function dropAllDatabases(): Promise<void> {
  for (const name of [...created]) await dropDatabase(name);
}

/** Transactions committed in a database so far (each backend reports at most once a second). */
export async function commitsSoFar(database: string): Promise<number> {
  const [row] = await admin<{ n: string }[]>`
    SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = ${database}`;
  return Number(row?.n ?? 0);
}

/**
 * Commits per event over the middle of a run. pg_stat_database takes each backend's commits when
 * the backend reports, at most once a second (later once it goes idle), so a delta from a run's
 * start to its end misses the last second. Instead: sample commits and the events through the
 * system every 100 ms, and fit commits against events (least squares) over the middle 80 % of the
 * run, where the reporting steps average out. Runs shorter than 2 s give no figure.
 */
export class CommitMeter {
  private readonly samples: { at: number; commits: number; progress: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> = Promise.resolve();

  /** `progress()`: events through the system so far (e.g. the mean of published and delivered). */
  constructor(
    private readonly database: string,
    private readonly progress: () => number,
    private readonly everyMs = 100,
  ) {}

  start(): void {
    const take = () => {
      this.sampling = this.sampling
        .then(async () => {
          const commits = await commitsSoFar(this.database);
          this.samples.push({ at: performance.now(), commits, progress: this.progress() });
        })
        .catch(() => {});
    };
    take();
    this.timer = setInterval(take, this.everyMs);
  }

  async stop(): Promise<number | undefined> {
    clearInterval(this.timer);
    await this.sampling;
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.at - first.at < MIN_METERED_MS) return undefined;
    const span = last.at - first.at;
    const window = this.samples.filter((s) => s.at >= first.at + span * 0.1 && s.at <= first.at + span * 0.9);
    return slope(
      window.map((s) => s.progress),
      window.map((s) => s.commits),
    );
  }
}

const MIN_METERED_MS = 2_000;

/** Least-squares slope of y over x; undefined when x does not vary. */
function slope(x: number[], y: number[]): number | undefined {
  const n = x.length;
  if (n < 2) return undefined;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += ((x[i] as number) - mx) * ((y[i] as number) - my);
    sxx += ((x[i] as number) - mx) ** 2;
  }
  return sxx > 0 ? sxy / sxx : undefined;
}

/** Bytes of every table (with indexes and TOAST) in these schemas of a database. */
export async function tableBytes(url: string, schemas: string[]): Promise<number> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ bytes: string }[]>`
      SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::text AS bytes
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(${schemas})`;
    return Number(row?.bytes ?? 0);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Bytes of each table and index (heap, TOAST and free-space maps count with their table) in these schemas. */
export async function relationBytes(url: string, schemas: string[]): Promise<Map<string, number>> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ relation: string; bytes: string }[]>`
      SELECT n.nspname || '.' || c.relname AS relation,
             (CASE WHEN c.relkind = 'i' THEN pg_relation_size(c.oid)
                   ELSE pg_table_size(c.oid) END)::text AS bytes
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'i') AND n.nspname = ANY(${schemas})`;
    return new Map(rows.map((r) => [r.relation, Number(r.bytes)]));
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Growth per event of each relation between two readings of relationBytes, largest first, leaving
 * out those that grew by less than `minimum` bytes per event: "events 302, job_common 160, ...".
 */
export function growthPerEvent(
  before: Map<string, number>,
  after: Map<string, number>,
  events: number,
  minimum = 1,
): { relation: string; bytesPerEvent: number }[] {
  return [...after]
    .map(([relation, bytes]) => ({ relation, bytesPerEvent: (bytes - (before.get(relation) ?? 0)) / events }))
    .filter((r) => r.bytesPerEvent >= minimum)
    .sort((a, b) => b.bytesPerEvent - a.bytesPerEvent);
}
