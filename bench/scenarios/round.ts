// What every round does around its load: consumers that are always stopped, the commit meter of
// Postgres-based systems, and the checks that make a round fail rather than report a wrong number.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Ledger } from "../accounting.ts";
import { CommitMeter } from "../postgres-admin.ts";
import type { Channel, Consumer, System } from "../systems/system.ts";

/** A commit meter on the system's database, or undefined for systems not on Postgres. */
export function commitMeter(system: System, progress: () => number): CommitMeter | undefined {
  const db = system.database?.();
  return db ? new CommitMeter(db.name, progress) : undefined;
}

/**
 * Stops the consumers and deletes the channel, reporting (not throwing) what fails, so that a
 * round's own error is the one that surfaces. A consumer that failed also left events undelivered,
 * which fails the round.
 */
export async function cleanUp(
  consumers: Consumer[],
  channel: Channel,
  log: (line: string) => void,
): Promise<void> {
  const results = await Promise.allSettled(consumers.map((c) => c.stop()));
  for (const r of results) if (r.status === "rejected") log(`stopping a consumer: ${String(r.reason)}`);
  await channel.delete().catch((error: unknown) => log(`deleting the channel: ${String(error)}`));
}

/** Events of another round, or undecodable ones, mean the accounting cannot be trusted. */
export function checkForeign(ledger: Ledger): void {
  if (ledger.foreign > 0) throw new Error(`${ledger.foreign} events of another round or undecodable arrived`);
}

export const perSecond = (count: number, fromMs: number, toMs: number) =>
  toMs > fromMs ? count / ((toMs - fromMs) / 1000) : undefined;

/**
 * With `--latency-log DIR`, writes the round's latency log (Ledger.latencyLog) to
 * DIR/<system>-<round's name>.tsv, and says where.
 */
export async function writeLatencyLog(
  dir: string | undefined,
  system: System,
  name: string,
  ledger: Ledger,
  log: (line: string) => void,
): Promise<void> {
  if (!dir) return;
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${system.key}-${name}.tsv`);
  await writeFile(file, ledger.latencyLog());
  log(`latency log: ${file}`);
}
