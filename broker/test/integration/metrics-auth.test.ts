// /metrics behind authentication: Prometheus's `authorization` (Bearer) or `basic_auth` scrape
// settings against a real broker; the probes stay open for load balancers and orchestrators.
import { readFileSync } from "node:fs";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../support/broker.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

const TOKEN = "metrics-scrape-token-0123456789abcdef";
const USER = "prometheus";
const PASSWORD = "metrics-password-0123456789";

let db: TestDatabase;
let dir: string;
const brokers: TestBroker[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(join(tmpdir(), "pgmesh-metrics-auth-"));
});

afterAll(async () => {
  for (const b of brokers) await b.stop();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

async function broker(env: Record<string, string>): Promise<TestBroker> {
  const started = await startTestBroker(db.url, env);
  brokers.push(started);
  return started;
}

const get = (b: TestBroker, path: string, authorization?: string) =>
  fetch(`http://${b.broker.metricsAddress}${path}`, {
    headers: authorization ? { authorization } : {},
  });
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("metrics authentication", () => {
  it("with a bearer token, /metrics answers 401 without it or with another, 200 with it; probes stay open", async () => {
    const b = await broker({ PGMESH_METRICS_TOKEN: TOKEN });
    const missing = await get(b, "/metrics");
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toBe('Bearer realm="pgmesh metrics"');
    expect(await missing.text()).not.toContain("pgmesh_");
    for (const wrong of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, TOKEN, basic(USER, TOKEN)]) {
      expect((await get(b, "/metrics", wrong)).status).toBe(401);
    }
    const scraped = await get(b, "/metrics", `Bearer ${TOKEN}`);
    expect(scraped.status).toBe(200);
    expect(await scraped.text()).toContain("pgmesh_grpc_requests_total");
    expect((await get(b, "/healthz")).status).toBe(200);
    expect((await get(b, "/readyz")).status).toBe(200);
  });

  it("with a user and a password file, /metrics takes basic authentication", async () => {
    const passwordFile = join(dir, "metrics-password");
    await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    const b = await broker({ PGMESH_METRICS_USER: USER, PGMESH_METRICS_PASSWORD_FILE: passwordFile });
    const missing = await get(b, "/metrics");
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toBe('Basic realm="pgmesh metrics"');
    expect((await get(b, "/metrics", basic(USER, `${PASSWORD}x`))).status).toBe(401);
    expect((await get(b, "/metrics", basic("someone", PASSWORD))).status).toBe(401);
    expect((await get(b, "/metrics", basic(USER, PASSWORD))).status).toBe(200);
  });

  it("writes a new token to PGMESH_METRICS_TOKEN_FILE (0600) when the file does not exist, and uses it", async () => {
    const file = join(dir, "metrics-token");
    const b = await broker({ PGMESH_METRICS_TOKEN_FILE: file });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const token = readFileSync(file, "utf8").trim();
    expect(token.length).toBeGreaterThanOrEqual(32);
    expect((await get(b, "/metrics")).status).toBe(401);
    expect((await get(b, "/metrics", `Bearer ${token}`)).status).toBe(200);
  });

  it("without authentication configured, /metrics stays open (on loopback)", async () => {
    const b = await broker({});
    expect((await get(b, "/metrics")).status).toBe(200);
  });
});
