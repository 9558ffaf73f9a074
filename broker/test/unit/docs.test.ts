// The repository's prose documentation stays true to the repository: every file it cites exists,
// and every table row renders as the table it belongs to (a stray `|` or backtick breaks a cell).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../../", import.meta.url));
// CHANGELOG.md is history: it names files that were since renamed or removed.
const docs = [
  "README.md",
  "sdk/README.md",
  "bench/README.md",
  ...readdirSync(join(root, "docs"), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];

/** Paths a document names: relative link targets, and code spans that look like a repository file. */
function citedPaths(doc: string, text: string): string[] {
  const links = [...text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)]
    .map((m) => m[1] ?? "")
    .filter((target) => !/^[a-z]+:/.test(target))
    .map((target) => join(doc, "..", target));
  const spans = [
    ...text.matchAll(/`([A-Za-z0-9_.][A-Za-z0-9_./-]*\/[A-Za-z0-9_.-]+\.(?:ts|md|proto|sql|ya?ml|json))`/g),
  ]
    .map((m) => m[1] ?? "")
    // A path with a glob or a placeholder names a family of files, not one.
    .filter((path) => !/[*<>{}]/.test(path));
  return [...links, ...spans];
}

/** Files a document may name that are not in the repository, and why. */
const NOT_IN_REPOSITORY: Record<string, string> = {
  "bench/results/latest.json": "what `npm run bench` writes",
  "bench/peers.ts": "bench/README's history of the benchmark",
  "shop/v1/orders.ts": "what `buf generate` writes in the user's project",
  "shop/v1/orders_pgmesh.ts": "what `buf generate` writes in the user's project",
  "google/protobuf/timestamp.ts": "what `buf generate` writes in the user's project",
  "pgmesh/v1/options.ts": "what `buf generate` writes in the user's project",
  "google/protobuf/timestamp.proto": "a well-known type that buf brings",
  "proto/shop/v1/orders.proto": "the proto the README's user writes in their own project",
};

/** Whether `path` (relative to the root, or to a package or folder the text is about) exists. */
function exists(path: string): boolean {
  if (path in NOT_IN_REPOSITORY) return true;
  const bases = [
    "",
    "broker/",
    "broker/src/",
    "broker/src/store/",
    "broker/src/server/",
    "sdk/",
    "sdk/src/",
    "sdk/proto/",
    "proto/",
  ];
  return bases.some((base) => existsSync(join(root, base, path)));
}

describe.each(docs)("%s", (doc) => {
  const text = readFileSync(join(root, doc), "utf8");

  it("cites only files that exist in the repository", () => {
    expect(citedPaths(doc, text).filter((path) => !exists(path))).toEqual([]);
  });

  it("has tables whose rows each have the header's cells, with closed code spans", () => {
    const broken: string[] = [];
    for (const table of text.match(/(?:^\|.*\|[ \t]*\n)+/gm) ?? []) {
      const rows = table.trimEnd().split("\n");
      // Cells split at a pipe that is not escaped.
      const cells = (row: string) =>
        row
          .trim()
          .slice(1, -1)
          .split(/(?<!\\)\|/);
      const width = cells(rows[0] ?? "").length;
      for (const row of rows) {
        const unbalanced = cells(row).some((cell) => (cell.match(/`/g)?.length ?? 0) % 2 === 1);
        if (cells(row).length !== width || unbalanced) broken.push(row);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe("examples/orders/buf.workspace.yaml", () => {
  it("finds options.proto the way README.md's buf.yaml tells a user to", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const module = readme.match(/```yaml file=buf\.yaml\n[\s\S]*?- path: (node_modules\/\S+)/)?.[1];
    expect(module).toBe("node_modules/@pgmesh/sdk/proto");
    const workspace = readFileSync(join(root, "examples/orders/buf.workspace.yaml"), "utf8");
    // The repository's proto/ stands in for the package's copy (sdk/scripts/build.mjs copies it).
    expect(workspace).toMatch(/- path: proto\n/);
    expect(workspace).toContain(module);
    expect(workspace).not.toMatch(/copy that file/);
  });
});

describe("the supported Node.js versions", () => {
  it("are one range, stated alike by both packages' engines and the READMEs", () => {
    const engines = ["sdk", "broker"].map(
      (pkg) => JSON.parse(readFileSync(join(root, pkg, "package.json"), "utf8")).engines.node as string,
    );
    expect(new Set(engines).size).toBe(1);
    const lowest = engines[0]?.match(/^>=(\d+\.\d+)$/)?.[1];
    expect(lowest).toBeDefined();
    for (const doc of ["README.md", "sdk/README.md"]) {
      const stated = [...readFileSync(join(root, doc), "utf8").matchAll(/Node\.js (\d+(?:\.\d+)?)/g)].map(
        (m) => m[1],
      );
      expect(stated.length, doc).toBeGreaterThan(0);
      expect(new Set(stated), doc).toEqual(new Set([lowest]));
    }
  });
});
