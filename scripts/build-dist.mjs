// Compiles a package's src/ into its dist/ (tsc, the package's tsconfig.build.json) without a
// moment in which a file of dist/ is missing or half written: tsc writes a fresh directory beside
// it, whose files then replace dist/'s one by one, each by a rename (atomic for a file that is
// already there); files the new build no longer has are removed after. A test that packs a package
// (npm pack runs prepack, which builds) while another runs the built broker would otherwise find
// dist/ gone. Swapping the whole directory by two renames left it missing between them, rarely but
// observably (sdk/test/build-dist.test.ts saw it once in a full run).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

/** Builds `packageDir`/dist from `packageDir`/src. */
export function buildDist(packageDir) {
  const dir = packageDir instanceof URL ? fileURLToPath(packageDir) : packageDir;
  const dist = join(dir, "dist");
  const fresh = join(dir, `dist.build-${process.pid}`);
  rmSync(fresh, { recursive: true, force: true });
  try {
    execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json", "--outDir", fresh], {
      cwd: dir,
      stdio: "inherit",
    });
    if (!existsSync(dist)) {
      renameSync(fresh, dist);
      return;
    }
    moveInto(fresh, dist);
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
}

/**
 * Moves every file of `fresh` into `dist` by a rename each, the deepest first (a web app's assets
 * before the index.html that names them), then removes what `dist` held that `fresh` did not.
 */
export function moveInto(fresh, dist) {
  const depth = (file) => file.split(/[\\/]/).length;
  const built = filesUnder(fresh)
    .map((file) => relative(fresh, file))
    .sort((a, b) => depth(b) - depth(a));
  for (const file of built) {
    mkdirSync(dirname(join(dist, file)), { recursive: true });
    renameSync(join(fresh, file), join(dist, file));
  }
  const kept = new Set(built);
  for (const file of filesUnder(dist)) {
    if (!kept.has(relative(dist, file))) rmSync(file, { force: true });
  }
  removeEmptyDirectories(dist);
}

/** Every file below `root`, as paths. */
function filesUnder(root) {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => !entry.isDirectory())
    .map((entry) => join(entry.parentPath, entry.name));
}

/** Removes the directories below `root` that hold no file (left by a module the build dropped). */
function removeEmptyDirectories(root) {
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const path = join(root, entry.name);
    removeEmptyDirectories(path);
    if (readdirSync(path).length === 0) rmSync(path, { recursive: true });
  }
}
