// What deploy/ provisions, tested natively (no Docker engine here): a real Prometheus from Debian,
// configured by prometheus.local.yml (the README's way without Docker), scrapes a real broker under
// a small load, and every query of every dashboard panel must return data; promtool checks the
// configs and unit-tests the alerts; the compose file validates, and it and the README set what
// Grafana's provisioning reads from the environment.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { loadConfig } from "../broker/src/config.ts";
import { startTestBroker, type TestBroker } from "../broker/test/support/broker.ts";
import { createTestDatabase, type TestDatabase } from "../broker/test/support/database.ts";
import { freePort } from "../broker/test/support/free-port.ts";
import { StreamProbe, sleep } from "../broker/test/support/stream-probe.ts";
import { dashboardFile, dashboardJson, dashboards } from "./grafana/dashboards.ts";

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));
const here = (file: string) => join(root, "deploy", file);
const prometheusBinary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].find((p) => existsSync(p));
const promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].find((p) => existsSync(p));

if (!prometheusBinary && process.env.CI !== "true") {
  console.warn(
    "\n*** prometheus is not installed: the dashboard and alert tests are SKIPPED (apt-get install prometheus) ***\n",
  );
}
const withPrometheus = process.env.CI === "true" || prometheusBinary ? describe : describe.skip;

describe("dashboards as code", () => {
  it("the committed dashboard JSON is what deploy/grafana/dashboards.ts generates", () => {
    for (const spec of dashboards) {
      const committed = JSON.parse(readFileSync(dashboardFile(spec), "utf8"));
      expect(committed, `${spec.uid}.json is stale: run npm run dashboards`).toEqual(dashboardJson(spec));
    }
  });

  it("every panel says what it answers and has a unit", () => {
    for (const spec of dashboards) {
      for (const panel of spec.panels) {
        expect(panel.answers, panel.title).toMatch(/\?$/);
        expect(panel.unit, panel.title).not.toBe("");
      }
    }
  });
});

interface PrometheusConfig {
  global: Record<string, string>;
  rule_files: string[];
  scrape_configs: {
    job_name: string;
    static_configs: { targets: string[] }[];
    authorization?: { credentials_file: string };
  }[];
}
const prometheusConfig = (file: string) =>
  parse(readFileSync(here(`prometheus/${file}`), "utf8")) as PrometheusConfig;

describe("Prometheus and Grafana outside Docker", () => {
  it("prometheus.local.yml is the compose file's config, scraping the metrics address of `npm start` (without its token)", () => {
    const local = prometheusConfig("prometheus.local.yml");
    const compose = prometheusConfig("prometheus.yml");
    const targets = (config: PrometheusConfig) => config.scrape_configs.map((job) => job.static_configs);
    expect(targets(compose)).toEqual([[{ targets: ["broker:9464"] }]]);
    expect(targets(local)).toEqual([[{ targets: [loadConfig([], {}).metricsAddress] }]]);
    const withoutTargets = (config: PrometheusConfig) => ({
      ...config,
      scrape_configs: config.scrape_configs.map(({ static_configs: _, authorization: __, ...job }) => job),
    });
    expect(withoutTargets(local)).toEqual(withoutTargets(compose));
    // The compose file's Prometheus scrapes with the token its entrypoint writes from .env.
    const tokenFile = compose.scrape_configs[0]?.authorization?.credentials_file ?? "";
    expect(tokenFile).toBe("/prometheus/metrics-token");
    const services = parse(readFileSync(join(root, "docker-compose.yml"), "utf8")).services;
    expect(services.prometheus.entrypoint.join(" ")).toContain(`"$$PGMESH_METRICS_TOKEN" > ${tokenFile}`);
  });

  it("every variable Grafana's provisioning reads is set by the compose file and by the README", async () => {
    const provisioning = here("grafana/provisioning");
    const files = (await readdir(provisioning, { recursive: true })).filter((f) => f.endsWith(".yml"));
    const variables = new Set(
      files.flatMap((file) =>
        [...readFileSync(join(provisioning, file), "utf8").matchAll(/\$\{?(\w+)\}?/g)].map((m) => m[1]),
      ),
    );
    expect([...variables].sort()).toEqual(["PGMESH_DASHBOARDS_DIR", "PGMESH_PROMETHEUS_URL"]);
    const compose = parse(readFileSync(join(root, "docker-compose.yml"), "utf8"));
    const grafana = compose.services.grafana as { environment: Record<string, string>; volumes: string[] };
    expect(grafana.environment.PGMESH_PROMETHEUS_URL).toBe("http://prometheus:9090");
    expect(grafana.volumes).toContain(
      `./deploy/grafana/dashboards:${grafana.environment.PGMESH_DASHBOARDS_DIR}:ro`,
    );
    // The README's Grafana outside Docker: the repository's provisioning and dashboards, and the
    // Prometheus that prometheus.local.yml configures.
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const native = readme.slice(readme.indexOf("### Grafana without Docker"));
    expect(native).toMatch(/GF_PATHS_PROVISIONING="?\S*\/deploy\/grafana\/provisioning"?/);
    expect(native).toMatch(/PGMESH_DASHBOARDS_DIR="?\S*\/deploy\/grafana\/dashboards"?/);
    expect(native).toContain("PGMESH_PROMETHEUS_URL=http://127.0.0.1:9090");
    expect(native).toContain("--config.file=deploy/prometheus/prometheus.local.yml");
    expect(native).toContain("--web.listen-address=127.0.0.1:9090");
  });
});

describe("docker compose", () => {
  // The secrets come from .env (deploy/compose.env.example): the test gives them as the
  // environment, which Compose reads the same way.
  const secrets = { POSTGRES_PASSWORD: "0123abcd".repeat(8), PGMESH_METRICS_TOKEN: "4567cdef".repeat(8) };

  it("validates with docker-compose config and dclint", async () => {
    if (process.env.CI === "true" || existsSync("/usr/bin/docker-compose")) {
      const config = ["-f", join(root, "docker-compose.yml"), "config"];
      const resolved = await run("docker-compose", config, {
        cwd: root,
        env: { ...process.env, ...secrets },
      });
      expect(resolved.stdout).toContain(
        `postgres://pgmesh:${secrets.POSTGRES_PASSWORD}@postgres:5432/pgmesh`,
      );
      // Without them Compose refuses, naming what to set and where.
      const bare = Object.fromEntries(
        Object.entries(process.env).filter(([name]) => !(name in secrets) && name !== "PGMESH_ADMIN_TOKEN"),
      );
      const refused = await run("docker-compose", [...config, "-q"], { cwd: root, env: bare }).then(
        () => "",
        (error: { stderr: string }) => error.stderr,
      );
      expect(refused).toMatch(
        /set (POSTGRES_PASSWORD|PGMESH_METRICS_TOKEN) in \.env \(see deploy\/compose\.env\.example\)/,
      );
    }
    const lint = await run(join(root, "node_modules/.bin/dclint"), ["docker-compose.yml"], { cwd: root });
    expect(lint.stdout + lint.stderr).not.toMatch(/error|warning/);
  });

  it("keeps no password or token in the file: each is a variable the env example lists", () => {
    const text = readFileSync(join(root, "docker-compose.yml"), "utf8");
    const required = new Set([...text.matchAll(/\$\{([A-Z_]+):\?/g)].map((m) => m[1]));
    expect([...required].sort()).toEqual(["PGMESH_METRICS_TOKEN", "POSTGRES_PASSWORD"]);
    const example = readFileSync(here("compose.env.example"), "utf8");
    for (const name of required) expect(example).toMatch(new RegExp(`^${name}=$`, "m"));
    const services = parse(text).services;
    expect(services.postgres.environment.POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?/);
    expect(services.broker.environment.DATABASE_URL).toMatch(/^postgres:\/\/pgmesh:\$\{POSTGRES_PASSWORD:\?/);
  });
});

const SCRAPE_TOKEN = "scrape-token-for-the-prometheus-test-0123456789";

withPrometheus("Prometheus", () => {
  let db: TestDatabase;
  let mesh: TestBroker;
  let prometheus: ChildProcess | undefined;
  let prometheusUrl = "";
  let dataDir = "";
  let probe: StreamProbe;

  beforeAll(async () => {
    db = await createTestDatabase();
    // /metrics behind a token, scraped as the compose file's Prometheus does (its credentials_file).
    mesh = await startTestBroker(db.url, { PGMESH_METRICS_TOKEN: SCRAPE_TOKEN });
    dataDir = await mkdtemp(join(tmpdir(), "pgmesh-prometheus-"));
    const tokenFile = join(dataDir, "metrics-token");
    await writeFile(tokenFile, SCRAPE_TOKEN, { mode: 0o600 });
    const port = await freePort();
    prometheusUrl = `http://127.0.0.1:${port}`;
    // prometheus.local.yml, as the README runs it, but scraping every second and this test's
    // broker (on a port of its own rather than npm start's).
    const local = prometheusConfig("prometheus.local.yml");
    const config = join(dataDir, "prometheus.yml");
    await writeFile(
      config,
      stringify({
        ...local,
        global: { ...local.global, scrape_interval: "1s", evaluation_interval: "1s" },
        rule_files: local.rule_files.map((file) => here(`prometheus/${file}`)),
        scrape_configs: local.scrape_configs.map((job) => ({
          ...job,
          authorization: { credentials_file: tokenFile },
          static_configs: [{ targets: [mesh.broker.metricsAddress] }],
        })),
      }),
    );
    prometheus = spawn(
      prometheusBinary ?? "prometheus",
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dataDir, "tsdb")}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: "ignore" },
    );
    await load();
    // Enough scrapes after the load for rate() over the test's window.
    await sleep(5000);
  }, 60_000);

  afterAll(async () => {
    prometheus?.kill();
    await probe?.close();
    await mesh?.stop();
    await db?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  /** A little of everything the dashboards show: publishes, acks, nacks, a dead letter, an error. */
  async function load() {
    const c = mesh.client;
    await c.createTopic("obs.orders");
    await c.createSubscription("obs.billing", "obs.orders", {
      retryPolicy: { initialBackoffSeconds: 0, maxBackoffSeconds: 0 },
    });
    await c.createSubscription("obs.idle", "obs.orders");
    probe = await StreamProbe.open(c, "obs.billing");
    for (let round = 0; round < 3; round++) {
      await c.publish(
        "obs.orders",
        Array.from({ length: 10 }, (_, i) => ({ id: `${round}-${i}`, source: "load", type: "t" })),
      );
      await sleep(1200);
    }
    const first = await probe.waitForDeliveries(30);
    await probe.settleAndWait(() => probe.nack(first.slice(0, 3).map((d) => d.ackId)), 3);
    await probe.settleAndWait(() => probe.reject([first[3]?.ackId ?? ""], "poison"), 1);
    await probe.ackAndWait(first.slice(4).map((d) => d.ackId));
    const again = (await probe.waitForDeliveries(33)).slice(30);
    await probe.ackAndWait(again.map((d) => d.ackId));
    await c.getTopic("no.such.topic").catch(() => {});
  }

  async function query(
    expr: string,
  ): Promise<{ status: string; data?: { result: unknown[] }; error?: string }> {
    const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await response.json()) as { status: string; data?: { result: unknown[] }; error?: string };
  }

  it("scrapes the broker", async () => {
    const up = await query('up{job="pgmesh"}');
    expect(up.data?.result).toEqual([expect.objectContaining({ value: [expect.any(Number), "1"] })]);
  });

  it("every panel query of every dashboard runs and returns data", async () => {
    const failures: string[] = [];
    for (const spec of dashboards) {
      for (const panel of spec.panels) {
        for (const target of panel.targets) {
          // Grafana's variables, as Grafana would fill them for "all subscriptions, last minute".
          const expr = target.expr.replaceAll("$__rate_interval", "1m").replaceAll("$subscription", ".+");
          const result = await query(expr);
          if (result.status !== "success") failures.push(`${spec.uid} / ${panel.title}: ${result.error}`);
          else if ((result.data?.result.length ?? 0) === 0)
            failures.push(`${spec.uid} / ${panel.title}: no series for ${expr}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it("the subscription dashboard's variable lists the subscriptions", async () => {
    const response = await fetch(`${prometheusUrl}/api/v1/label/subscription/values?match[]=pgmesh_backlog`);
    const body = (await response.json()) as { data: string[] };
    expect(body.data).toEqual(expect.arrayContaining(["obs.billing", "obs.idle"]));
  });

  it("the metrics moved as the load did", async () => {
    const value = async (expr: string) =>
      Number(((await query(expr)).data?.result[0] as { value: [number, string] })?.value[1]);
    expect(await value('pgmesh_events_published_total{topic="obs.orders"}')).toBe(30);
    expect(await value('pgmesh_dead_letters{subscription="obs.billing"}')).toBe(1);
    expect(await value('pgmesh_backlog{subscription="obs.idle"}')).toBe(30);
    expect(await value('pgmesh_redeliveries_total{subscription="obs.billing"}')).toBe(3);
  });

  it("promtool accepts the deployed config and rules, and the alert unit tests pass", async () => {
    const tool = promtool ?? "promtool";
    // promtool checks that the token file exists: the compose file's, with the token file the
    // container's entrypoint writes put here.
    const composeConfig = prometheusConfig("prometheus.yml");
    const tokenFile = join(dataDir, "compose-metrics-token");
    await writeFile(tokenFile, SCRAPE_TOKEN, { mode: 0o600 });
    const checked = join(dataDir, "prometheus.compose.yml");
    await writeFile(
      checked,
      stringify({
        ...composeConfig,
        rule_files: composeConfig.rule_files.map((file) => here(`prometheus/${file}`)),
        scrape_configs: composeConfig.scrape_configs.map((job) => ({
          ...job,
          authorization: { credentials_file: tokenFile },
        })),
      }),
    );
    await run(tool, ["check", "config", checked]);
    await run(tool, ["check", "config", here("prometheus/prometheus.local.yml")]);
    await run(tool, ["check", "rules", here("prometheus/alerts.yml")]);
    const tested = await run(tool, ["test", "rules", "alerts.test.yml"], { cwd: here("prometheus") });
    expect(tested.stdout).toContain("SUCCESS");
  });
});
