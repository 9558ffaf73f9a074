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
};

/** Whether `path` (relative to the root, or to a package or folder the text is about) exists. */
function exists(path: string): boolean {
  if (path in NOT_IN_REPOSITORY) return true;
  const bases = [
    "",
    "broker/",
    "broker/src/",
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
