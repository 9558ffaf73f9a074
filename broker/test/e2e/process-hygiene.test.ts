// What a supervisor or a person at a terminal does to the broker: Ctrl-C (SIGINT to the whole
// process group), kill -9 and a restart, SIGTERM or SIGKILL to the `npm` process that started it.
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AckStatus } from "@pgmesh/proto/pgmesh/v1/subscriber";
import { PgmeshClient } from "@pgmesh/sdk";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BrokerProcess, startBrokerProcess } from "../support/broker-process.ts";
import { freePort } from "../support/free-port.ts";
import { FROM_SOURCE } from "../support/from-source.ts";
import { StreamProbe, sleep } from "../support/stream-probe.ts";
import { until } from "../support/until.ts";

let dataDir: string;
let postgresPort: number;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "pgmesh-hygiene-"));
  // mkdtemp makes it 0700; as root, the embedded Postgres runs as `postgres` and must reach it.
  await chmod(dataDir, 0o755);
  postgresPort = await freePort();
});

afterAll(async () => {
  // Whatever a failed test left running on this data directory.
  const pidFile = join(dataDir, "postgres", "postmaster.pid");
  if (existsSync(pidFile)) {
    try {
      process.kill(Number(readFileSync(pidFile, "utf8").split("\n")[0]), "SIGINT");
    } catch {}
    for (let i = 0; i < 100 && existsSync(pidFile); i++) await sleep(100);
  }
  await rm(dataDir, { recursive: true, force: true });
});

type Started = BrokerProcess;

/** Starts `command` as the leader of a new process group, like a shell's foreground job. */
const start = (command: string[], env: Record<string, string> = {}): Promise<Started> =>
  startBrokerProcess({ dataDir, postgresPort, command, env, detached: true });

const broker = (env?: Record<string, string>) =>
  start([process.execPath, ...FROM_SOURCE, "broker/src/main.ts"], env);

describe("process hygiene", () => {
  it("Ctrl-C (SIGINT to the process group) drains while Postgres still serves", async () => {
    const running = await broker({ PGMESH_DRAIN_MS: "5000" });
    const client = new PgmeshClient(running.address);
    try {
      await client.createTopic("hygiene");
      await client.createSubscription("hygiene.sub", "hygiene");
      await client.publish("hygiene", [{ id: "held", source: "test", type: "t" }]);
      const probe = await StreamProbe.open(client, "hygiene.sub");
      const [delivery] = await probe.waitForDeliveries(1);
      process.kill(-groupOf(running.child), "SIGINT");
      await sleep(1_000);
      // The handler finishes during the drain: its ack must reach a live database.
      const [result] = await probe.ackAndWait([delivery?.ackId ?? ""]);
      expect(result?.status).toBe(AckStatus.ACK_STATUS_ACKED);
      expect(await running.exited).toBe(0);
      expect(running.output()).toContain("pgmesh broker stopped");
    } finally {
      client.close();
    }
  }, 120_000);

  it("starts again after kill -9, taking over the Postgres the dead broker left running", async () => {
    const first = await broker();
    first.child.kill("SIGKILL");
    await first.exited;
    const second = await broker();
    try {
      const client = new PgmeshClient(second.address);
      expect((await client.getTopic("hygiene")).name).toBe("hygiene");
      client.close();
    } finally {
      second.child.kill("SIGTERM");
    }
    expect(await second.exited).toBe(0);
  }, 120_000);

  // npm runs the script through `sh -c`: unless the script execs node, that shell is node's parent
  // and outlives a SIGKILLed npm, so the broker's watch on its parent never sees npm go.
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    it(`does not keep running when the npm process that started it is sent ${signal}`, async () => {
      const viaNpm = await start(["npm", "start", "--silent"]);
      const client = new PgmeshClient(viaNpm.address);
      try {
        await client.listTopics();
        process.kill(viaNpm.child.pid ?? 0, signal);
        // The broker's port stops answering within seconds: it drained and exited, it was not
        // orphaned.
        await until(
          () =>
            client.listTopics().then(
              () => false,
              // Refused by the operating system: no broker listens any more (an orphaned broker
              // would answer, even if only UNAVAILABLE).
              (error: { details?: string }) =>
                /ECONNREFUSED|No connection established/.test(error.details ?? ""),
            ),
          "the broker to stop",
          signal === "SIGKILL" ? 8_000 : 30_000,
        );
      } finally {
        client.close();
        try {
          process.kill(-groupOf(viaNpm.child), "SIGKILL");
        } catch {}
      }
    }, 120_000);
  }
});

describe("embedded Postgres credentials", () => {
  it("are a random password kept in the data directory (0600); the log gives the connection string without it", async () => {
    const running = await broker();
    try {
      const file = join(dataDir, "postgres-password");
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      const password = readFileSync(file, "utf8").trim();
      expect(password).toMatch(/^[0-9a-f]{48}$/);
      const url = `postgres://postgres:${password}@127.0.0.1:${postgresPort}/pgmesh`;
      // The log is kept by supervisors and shipped to others: the password is named by its file.
      expect(running.output()).not.toContain(password);
      expect(running.output()).toContain(
        `embedded Postgres connection string: postgres://postgres:***@127.0.0.1:${postgresPort}/pgmesh (the password is in ${file})`,
      );
      const sql = postgres(url, { max: 1, onnotice: () => {} });
      expect((await sql`SELECT 1 AS ok`)[0]).toEqual({ ok: 1 });
      await sql.end();
      const legacy = postgres(url.replace(password, "pgmesh"), { max: 1, onnotice: () => {} });
      await expect(legacy`SELECT 1`).rejects.toThrow(/password authentication failed/);
      await legacy.end();
    } finally {
      running.child.kill("SIGTERM");
    }
    expect(await running.exited).toBe(0);
  }, 120_000);
});

/**
 * The process group a detached child leads. Never 0: kill(-0) would signal the test runner's own
 * group.
 */
function groupOf(child: { pid?: number | undefined }): number {
  if (!child.pid) throw new Error("the child process has no pid (it did not start)");
  return child.pid;
}
