import type { Sql } from "postgres";
import { TableUpkeep, type UpkeepReport } from "../../src/store/upkeep.ts";
import { until } from "./until.ts";

/** A table upkeep as the tests run it by hand: its errors fail the test. */
export const testUpkeep = (
  sql: Sql,
  options: { dedupWindowSeconds?: number; auditRetentionDays?: number } = {},
) =>
  new TableUpkeep(sql, {
    dedupWindowSeconds: options.dedupWindowSeconds ?? 86_400,
    auditRetentionDays: options.auditRetentionDays ?? 90,
    onError: (error) => {
      throw error;
    },
  });

/**
 * Runs upkeep passes until one holds the mesh's upkeep lock, and returns that pass's report. A pass
 * that finds the lock taken (the test broker's own upkeep, every few seconds, or an earlier test's
 * last pass) does nothing, so a report of it proves nothing either way.
 */
export async function heldUpkeepPass(
  sql: Sql,
  options: { dedupWindowSeconds?: number; auditRetentionDays?: number } = {},
): Promise<UpkeepReport> {
  let held: UpkeepReport | undefined;
  await until(async () => {
    const report = await testUpkeep(sql, options).runOnce();
    if (report.ran) held = report;
    return report.ran;
  }, "an upkeep pass that holds the lock");
  if (!held) throw new Error("no upkeep pass held the lock");
  return held;
}
