// The README's default path, as a user runs it: the broker process on an embedded Postgres (no
// DATABASE_URL), `buf curl` health and reflection, the CLI quickstart, and signal handling.
import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBrokerProcess } from "../support/broker-process.ts";
import { freePort } from "../support/free-port.ts";
import { FROM_SOURCE } from "../support/from-source.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const run = promisify(execFile);
const buf = join(root, "node_modules/.bin/buf");
const pgmesh = join(root, "broker/bin/pgmesh.js");

let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "pgmesh-e2e-"));
  // mkdtemp makes it 0700; as root, the embedded Postgres runs as `postgres` and must reach it.
  await chmod(dataDir, 0o755);
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const startBroker = async (env: Record<string, string> = {}) =>
  startBrokerProcess({ dataDir, postgresPort: await freePort(), env });

const cli = (address: string, ...args: string[]) =>
  run(process.execPath, [...FROM_SOURCE, pgmesh, ...args], {
    cwd: root,
    env: { ...process.env, PGMESH_ADDRESS: address },
  });

const shell = (script: string, address: string) =>
  run("bash", ["-euo", "pipefail", "-c", script], {
    cwd: root,
    env: {
      ...process.env,
      PATH: `${join(root, "node_modules/.bin")}:${process.env.PATH}`,
      // `npx pgmesh` runs the sources under test rather than the dist/ that `npm install` built.
      NODE_OPTIONS: FROM_SOURCE.join(" "),
      PGMESH_ADDRESS: address,
    },
  });

/** The first fenced code block after a README heading. */
function readmeBlock(heading: string): string {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const after = readme.slice(readme.indexOf(heading));
  const match = /```sh\n([\s\S]*?)```/.exec(after);
  if (!match?.[1]) throw new Error(`no sh block after ${heading} in README.md`);
  return match[1];
}

const curl = (address: string, path: string, data?: string) =>
  run(buf, [
    "curl",
    "--protocol",
    "grpc",
    "--http2-prior-knowledge",
    ...(data ? ["-d", data] : []),
    `http://${address}${path}`,
  ]);

// A broker process on an embedded Postgres and a dozen CLI processes (each compiling the sources
// with tsx) per test.
describe("npm start on an embedded Postgres", { timeout: 180_000 }, () => {
  it("serves health and reflection to buf curl, runs the README quickstarts as written, and drains on SIGTERM", async () => {
    const broker = await startBroker();
    try {
      expect(broker.output()).toContain("embedded Postgres ready");
      const health = await curl(broker.address, "/grpc.health.v1.Health/Check");
      expect(JSON.parse(health.stdout)).toEqual({ status: "SERVING" });

      // The README's CLI quickstart, line by line, exactly as written (pointed at this broker).
      const cliBlock = readmeBlock("## Quickstart with the CLI");
      const outputs: string[] = [];
      for (const line of cliBlock.split("\n").filter((l) => l.trim())) {
        outputs.push((await shell(line, broker.address)).stdout);
      }
      expect(outputs[0]).toBe("created topic orders\n");
      expect(outputs[1]).toMatch(/created subscription orders.audit on topic orders/);
      expect(outputs[2]).toMatch(/^published [0-9a-f-]{36}\n$/);
      const tailed = JSON.parse(outputs[3] ?? "");
      expect(tailed).toMatchObject({
        type: "shop.OrderPlaced",
        subject: "order/42",
        data: { id: 42, total: "9.90" },
      });

      // The README's buf curl quickstart, as one script, with this broker's address.
      const curlBlock = readmeBlock("## Quickstart with `buf curl`").replaceAll(
        "127.0.0.1:50051",
        broker.address,
      );
      const curlOut = (await shell(curlBlock, broker.address)).stdout;
      expect(curlOut).toContain('"status": "SERVING"');
      for (const method of [
        "PublisherService/Publish",
        "SubscriberService/Subscribe",
        "AdminService/CreateTopic",
      ]) {
        expect(curlOut).toContain(`pgmesh.v1.${method}`);
      }
      expect(curlOut).toContain('"id": "pay-1"');
      const ledger = await cli(broker.address, "tail", "payments.ledger", "--max", "1");
      expect(JSON.parse(ledger.stdout)).toMatchObject({
        id: "pay-1",
        source: "billing",
        type: "billing.PaymentTaken",
      });
    } finally {
      broker.child.kill("SIGTERM");
    }
    expect(await broker.exited).toBe(0);
    expect(broker.output()).toContain("pgmesh broker stopped");
  }, 90_000); // a dozen processes (broker, embedded Postgres, CLI, buf): slow on a busy machine

  it("keeps its data across restarts; a second signal exits at once; a dead broker's lease is redelivered", async () => {
    const broker = await startBroker({ PGMESH_DRAIN_MS: "60000" });
    // The topic created by the previous test survived the restart of the process and of Postgres.
    expect((await cli(broker.address, "topics", "list")).stdout).toMatch(/^orders\t/m);
    await cli(broker.address, "subscriptions", "update", "orders.audit", "--ack-deadline", "2");
    await cli(broker.address, "publish", "orders", '{"type":"held"}');
    // A consumer that holds a delivery and never acks keeps the drain waiting...
    const holder = spawn(process.execPath, [...FROM_SOURCE, pgmesh, "tail", "orders.audit", "--no-ack"], {
      cwd: root,
      env: { ...process.env, PGMESH_ADDRESS: broker.address },
      stdio: ["ignore", "pipe", "pipe"],
    });
    await new Promise<void>((resolve) => holder.stdout.once("data", () => resolve()));
    broker.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 500));
    expect(broker.child.exitCode).toBeNull();
    // ...until the second signal.
    const started = Date.now();
    broker.child.kill("SIGTERM");
    expect(await broker.exited).toBe(130);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(broker.output()).toContain("again: exiting without draining");
    holder.kill();

    // The broker died holding the delivery. Once its Postgres is down, a new broker redelivers the
    // event when the 2 s lease lapses.
    const pidFile = join(dataDir, "postgres", "postmaster.pid");
    for (let i = 0; i < 100 && existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 100));
    const next = await startBroker({ PGMESH_SUPERVISE_SECONDS: "1" });
    try {
      const tailed = await cli(next.address, "tail", "orders.audit", "--max", "1");
      expect(JSON.parse(tailed.stdout)).toMatchObject({ type: "held", attempt: 2 });
    } finally {
      next.child.kill("SIGTERM");
    }
    expect(await next.exited).toBe(0);
  }, 90_000);
});

describe("embedded Postgres as root", () => {
  // Only root hands Postgres to the `postgres` user; for anyone else there is nothing to relocate.
  it.runIf(process.getuid?.() === 0)(
    "moves the data out of a folder the postgres user cannot reach, and says where",
    async () => {
      const privateDir = await mkdtemp(join(tmpdir(), "pgmesh-private-"));
      await chmod(privateDir, 0o700);
      const broker = await startBroker({ PGMESH_DATA_DIR: join(privateDir, "data") });
      const relocated = /data in (\/var\/tmp\/pgmesh-embedded-postgres\/data-[0-9a-f]+)/.exec(
        broker.output(),
      )?.[1];
      try {
        expect(relocated).toBeDefined();
        expect(JSON.parse((await curl(broker.address, "/grpc.health.v1.Health/Check")).stdout)).toEqual({
          status: "SERVING",
        });
      } finally {
        broker.child.kill("SIGTERM");
        expect(await broker.exited).toBe(0);
        await rm(privateDir, { recursive: true, force: true });
        if (relocated) await rm(relocated, { recursive: true, force: true });
      }
    },
  );
});
