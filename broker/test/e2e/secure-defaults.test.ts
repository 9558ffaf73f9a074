// The broker process as an operator runs it off loopback: it refuses to serve without
// authentication unless told it is insecure, turns authentication on by itself, writes a first
// admin token to a 0600 file (never to stdout or the log), and with every kind of token thrown at it at debug
// level, neither its log nor its metrics contain one. Each test runs several processes, hence the
// longer timeouts.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { copyFileSync, readFileSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { status } from "@grpc/grpc-js";
import { PgmeshClient } from "@pgmesh/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestCertificates } from "../support/certificates.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { freePort } from "../support/free-port.ts";
import { FROM_SOURCE } from "../support/from-source.ts";
import { rejection } from "../support/rejection.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const pgmesh = fileURLToPath(new URL("../../bin/pgmesh.js", import.meta.url));
const run = promisify(execFile);

interface BrokerProcess {
  child: ChildProcess;
  port: number;
  metricsPort: number;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

let db: TestDatabase;
/** The brokers' data directory (where a first admin token goes off loopback). */
let dataDir: string;
const running: BrokerProcess[] = [];
const clients: PgmeshClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), "pgmesh-secure-"));
});

afterAll(async () => {
  for (const c of clients) c.close();
  for (const b of running) {
    if (b.child.exitCode === null) {
      b.child.kill("SIGTERM");
      await b.exited;
    }
  }
  await db?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

async function spawnBroker(env: Record<string, string>, waitFor = "serving gRPC on"): Promise<BrokerProcess> {
  const port = await freePort();
  const metricsPort = await freePort();
  const child = spawn(process.execPath, [...FROM_SOURCE, "broker/src/main.ts"], {
    cwd: root,
    env: {
      ...process.env,
      DATABASE_URL: db.url,
      PGMESH_GRPC_ADDRESS: `0.0.0.0:${port}`,
      PGMESH_METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
      PGMESH_CONSOLE_ADDRESS: "127.0.0.1:0",
      PGMESH_LOG_LEVEL: "debug",
      PGMESH_DATA_DIR: dataDir,
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d) => (stdout += d));
  child.stderr?.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const broker = { child, port, metricsPort, stdout: () => stdout, stderr: () => stderr, exited };
  running.push(broker);
  const deadline = Date.now() + 30_000;
  while (!stderr.includes(waitFor)) {
    if (child.exitCode !== null || Date.now() > deadline) return broker;
    await new Promise((r) => setTimeout(r, 50));
  }
  return broker;
}

function client(broker: BrokerProcess, token?: string): PgmeshClient {
  const c = new PgmeshClient(`127.0.0.1:${broker.port}`, { token, timeoutMs: 5_000 });
  clients.push(c);
  return c;
}

describe("secure by default, off loopback", { timeout: 90_000 }, () => {
  it("refuses to serve a non-loopback address without authentication", async () => {
    const refused = await spawnBroker({ PGMESH_AUTH: "off" });
    // A setting the broker refuses is a usage error: exit 2, like any bad flag or value.
    expect(await refused.exited).toBe(2);
    expect(refused.stderr()).toContain(
      "is not loopback, so authentication must be on (PGMESH_AUTH=on); to serve it without authentication anyway, set PGMESH_INSECURE=on",
    );
  });

  it("serves without authentication only with the insecure flag, and says so loudly", async () => {
    const insecure = await spawnBroker({ PGMESH_AUTH: "off", PGMESH_INSECURE: "on" });
    expect(insecure.stderr()).toContain("*** INSECURE: serving 0.0.0.0:");
    expect(insecure.stderr()).toContain("WITHOUT AUTHENTICATION");
    expect(insecure.stderr()).toContain("WITHOUT TLS");
    await client(insecure).listTopics();
    insecure.child.kill("SIGTERM");
    expect(await insecure.exited).toBe(0);
  });

  it("turns authentication on by itself and writes the first admin token to a 0600 file, never to stdout or the log", async () => {
    const first = await spawnBroker({});
    const file = join(dataDir, "admin-token");
    // stdout names the file; the token is only in it (a supervisor keeps stdout with the logs).
    expect(first.stdout(), first.stdout() + first.stderr()).toContain(`admin token written to ${file}`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const shown = readFileSync(file, "utf8").trim();
    expect(shown).toMatch(/^pgm_\S+$/);
    expect(first.stdout()).not.toContain(shown);
    expect(first.stderr()).not.toContain(shown);
    expect((await rejection(client(first).listTopics())).code).toBe(status.UNAUTHENTICATED);
    await client(first, shown).createTopic("first.start");
    first.child.kill("SIGTERM");
    await first.exited;

    const second = await spawnBroker({});
    expect(second.stdout()).not.toContain("admin token");
    expect(readFileSync(file, "utf8").trim()).toBe(shown);
    await client(second, shown).getTopic("first.start");
    second.child.kill("SIGTERM");
    await second.exited;
  });

  it("refuses to serve /metrics off loopback without authentication, and with the metrics insecure flag says so loudly", async () => {
    const metricsPort = await freePort();
    const refused = await spawnBroker({ PGMESH_METRICS_ADDRESS: `0.0.0.0:${metricsPort}` });
    expect(await refused.exited).toBe(2);
    expect(refused.stderr()).toContain(
      `the metrics address 0.0.0.0:${metricsPort} is not loopback, so /metrics needs authentication`,
    );
    // (After the first-token test: this broker finds the admin that one made.)
    const open = await spawnBroker({
      PGMESH_METRICS_ADDRESS: `0.0.0.0:${metricsPort}`,
      PGMESH_METRICS_INSECURE: "on",
    });
    expect(open.stderr()).toContain(
      `*** INSECURE: serving /metrics on 0.0.0.0:${metricsPort} WITHOUT AUTHENTICATION`,
    );
    open.child.kill("SIGTERM");
    expect(await open.exited).toBe(0);
  });
});

describe("TLS certificates rotated with SIGHUP", { timeout: 90_000 }, () => {
  it("serves the new certificate to new connections after the signal, without a restart", async () => {
    const certs = new TestCertificates();
    try {
      const oldCa = certs.ca("old-ca");
      const newCa = certs.ca("new-ca");
      const live = certs.leaf(oldCa, "localhost", "server", "live");
      const next = certs.leaf(newCa, "localhost", "server", "next");
      const adminToken = "sighup-admin-token-0123456789abcdef0123";
      const broker = await spawnBroker({
        PGMESH_TLS_CERT: live.certFile,
        PGMESH_TLS_KEY: live.keyFile,
        // Only the signal may reload here.
        PGMESH_TLS_RELOAD_MS: "3600000",
        PGMESH_ADMIN_TOKEN: adminToken,
      });
      expect(broker.stderr()).not.toContain("WITHOUT TLS");
      const connect = (ca: Buffer) => {
        const c = new PgmeshClient(`127.0.0.1:${broker.port}`, {
          tls: { ca },
          token: adminToken,
          timeoutMs: 3_000,
        });
        clients.push(c);
        return c.listTopics();
      };
      await connect(oldCa.cert);
      copyFileSync(next.keyFile, live.keyFile);
      copyFileSync(next.certFile, live.certFile);
      broker.child.kill("SIGHUP");
      const deadline = Date.now() + 10_000;
      while (!broker.stderr().includes("TLS certificates reloaded")) {
        if (Date.now() > deadline) throw new Error(`no reload:\n${broker.stderr()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      await connect(newCa.cert);
      expect((await rejection(connect(oldCa.cert))).code).toBe(status.UNAVAILABLE);
      broker.child.kill("SIGTERM");
      expect(await broker.exited).toBe(0);
    } finally {
      certs.remove();
    }
  });
});

describe("no token in the broker's log or metrics", { timeout: 90_000 }, () => {
  it("after good, wrong, expired, revoked and malformed tokens, at debug level", async () => {
    const adminToken = "env-admin-token-for-the-log-scan-0123456789";
    const broker = await spawnBroker({ PGMESH_ADMIN_TOKEN: adminToken });
    const admin = client(broker, adminToken);
    const address = `127.0.0.1:${broker.port}`;
    const cli = (...args: string[]) =>
      run(process.execPath, [pgmesh, "-a", address, "--token", adminToken, ...args]);

    await admin.createTopic("scan");
    await admin.createSubscription("scan.sub", "scan");
    await cli("principals", "create", "scanner", "--grant", "publish:scan", "read:*", "--source", "scanner");
    const fromCli = (await cli("tokens", "create", "scanner")).stdout.trim();
    const { token: shortLived } = await admin.createToken("scanner", { ttlSeconds: 1 });
    const { token: revoked, info } = await admin.createToken("scanner");
    const tokens = [adminToken, fromCli, shortLived, revoked];

    await client(broker, fromCli).publish("scan", [{ id: "1", source: "scanner", type: "t" }]);
    await rejection(client(broker, fromCli).publish("scan", [{ id: "2", source: "forged", type: "t" }]));
    await rejection(client(broker, fromCli).deleteTopic("scan"));
    await client(broker, revoked).listTopics();
    await admin.revokeToken(info.id);
    await rejection(client(broker, revoked).listTopics());
    await new Promise((r) => setTimeout(r, 1_100));
    await rejection(client(broker, shortLived).listTopics());
    const wrong = `${fromCli.slice(0, -4)}AAAA`;
    tokens.push(wrong);
    await rejection(client(broker, wrong).listTopics());
    const malformed = "Basic dXNlcjpwYXNzd29yZA-not-a-bearer-token";
    tokens.push(malformed);
    const raw = client(broker);
    const metadata = raw.metadata();
    metadata.set("authorization", malformed);
    await new Promise<void>((resolve) =>
      raw.admin.listTopics({ pageSize: 0, pageToken: "" }, metadata, () => resolve()),
    );
    await cli("audit");

    const metrics = await (await fetch(`http://127.0.0.1:${broker.metricsPort}/metrics`)).text();
    broker.child.kill("SIGTERM");
    await broker.exited;
    const log = broker.stderr();
    expect(log).toContain("serving gRPC on"); // the scan read the broker's real log
    for (const token of tokens) {
      expect(log).not.toContain(token);
      expect(broker.stdout()).not.toContain(token);
      expect(metrics).not.toContain(token);
      // Nor a recognisable part of one.
      expect(log).not.toContain(token.slice(4, 24));
    }
  });
});
