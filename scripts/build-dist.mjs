// Compiles a package's src/ into its dist/ (tsc, the package's tsconfig.build.json) without a
// moment in which dist/ is missing or half written: tsc writes a fresh directory beside it, which
// then takes dist/'s place by two renames. A test that packs a package (npm pack runs prepack,
// which builds) while another runs the built broker would otherwise find dist/ gone.
import { execFileSync } from "node:child_process";
import { existsSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

/** Builds `packageDir`/dist from `packageDir`/src. */
export function buildDist(packageDir) {
  const dir = packageDir instanceof URL ? fileURLToPath(packageDir) : packageDir;
  const dist = join(dir, "dist");
  const fresh = join(dir, `dist.build-${process.pid}`);
  const old = join(dir, `dist.old-${process.pid}`);
  rmSync(fresh, { recursive: true, force: true });
  try {
    execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json", "--outDir", fresh], {
      cwd: dir,
      stdio: "inherit",
    });
    if (existsSync(dist)) renameSync(dist, old);
    renameSync(fresh, dist);
  } finally {
    rmSync(fresh, { recursive: true, force: true });
    rmSync(old, { recursive: true, force: true });
  }
}
