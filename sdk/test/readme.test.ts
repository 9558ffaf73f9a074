// sdk/README.md's TypeScript snippets, as documentation that runs: each ```ts block above the code
// generation part is written to a file next to the orders example's generated code, all of them are
// type-checked with the repository's strict tsc settings, and then run in order, each as its own
// process, against a real broker (and its database for the outbox snippet).
import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestBroker } from "../../broker/test/support/broker.ts";
import { FROM_SOURCE } from "../../broker/test/support/from-source.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const run = promisify(execFile);
const t = useTestBroker();
let dir: string;
let snippets: string[];

beforeAll(async () => {
  const readme = await readFile(join(root, "sdk/README.md"), "utf8");
  const runnable = readme.slice(0, readme.indexOf("## Typed events from your .proto files"));
  snippets = [...runnable.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
  // A dot-dir inside the repository: @pgmesh/sdk, postgres and @opentelemetry/api resolve from its
  // node_modules, and tsc's `include` and the vitest globs do not pick it up.
  dir = await mkdtemp(join(root, "sdk/test/.tmp-readme-"));
  await cp(join(root, "examples/orders/gen"), join(dir, "gen"), { recursive: true });
  await Promise.all(snippets.map((code, i) => writeFile(join(dir, `snippet-${i + 1}.ts`), code)));
  await writeFile(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      extends: "../../../tsconfig.base.json",
      include: ["*.ts"],
    }),
  );
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("sdk/README.md", () => {
  it("has snippets that compile under strict tsc", async () => {
    expect(snippets.length).toBeGreaterThanOrEqual(8);
    const tsc = join(root, "node_modules/.bin/tsc");
    const result = await run(tsc, ["-p", dir, "--pretty", "false"]).catch((error) => error);
    expect(`${result.stdout ?? ""}${result.stderr ?? ""}`).toBe("");
  }, 60_000);

  it("has snippets that run, in order, against a broker", async () => {
    const outputs: string[] = [];
    for (const [i] of snippets.entries()) {
      const file = join(dir, `snippet-${i + 1}.ts`);
      const result = await run(process.execPath, [...FROM_SOURCE, file], {
        cwd: root,
        env: { ...process.env, PGMESH_ADDRESS: t.mesh.address, DATABASE_URL: t.db.url },
      }).catch((error) => {
        throw new Error(`snippet ${i + 1} failed:\n${snippets[i]}\n${error.stdout}${error.stderr}`);
      });
      expect(result.stderr, `snippet ${i + 1}`).toBe("");
      outputs.push(result.stdout);
    }
    // What they printed: the topics and subscriptions made, a new event's id, the batch's three ids.
    expect(outputs[0]).toMatch(/^\[ 'orders' \] 2 0\n$/);
    expect(outputs[1]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12} false\n$/);
    expect(outputs[2]?.match(/-7[0-9a-f]{3}-/g)).toHaveLength(3);
    const { deadLetters } = await t.mesh.client.subscriptionStats("orders.fulfilment");
    expect(deadLetters).toBe(0);
  }, 120_000);
});
