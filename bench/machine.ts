// The machine a run measured: its numbers mean little without the cores and the Postgres settings
// that decide what a commit costs.
import os from "node:os";
import { admin } from "./postgres-admin.ts";

export interface Machine {
  cores: number;
  cpu: string;
  memoryGiB: number;
  os: string;
  node: string;
  postgres: Record<string, string>;
}

const SETTINGS = [
  "fsync",
  "synchronous_commit",
  "autovacuum",
  "shared_buffers",
  "wal_sync_method",
  "max_connections",
];

export async function describeMachine(): Promise<Machine> {
  const rows = await admin<{ name: string; setting: string }[]>`
    SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name = ANY(${SETTINGS})`;
  const [version] = await admin<{ v: string }[]>`SELECT current_setting('server_version') AS v`;
  return {
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? "?",
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    postgres: { version: version?.v ?? "?", ...Object.fromEntries(rows.map((r) => [r.name, r.setting])) },
  };
}

export function machineLine(m: Machine): string {
  const pg = m.postgres;
  return `machine: ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}; PostgreSQL ${pg.version}: fsync=${pg.fsync}, synchronous_commit=${pg.synchronous_commit}, autovacuum=${pg.autovacuum}, shared_buffers=${pg.shared_buffers}, wal_sync_method=${pg.wal_sync_method}`;
}
