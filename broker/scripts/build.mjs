// Builds the package as published: ESM JavaScript from src/ into dist/ (tsc), and the web console
// from console/ into console/dist (Vite). It imports @pgmesh/sdk's built types, so build the sdk
// first (the root `npm run build` does).
import { cpSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "vite";
import { buildDist, moveInto } from "../../scripts/build-dist.mjs";

const here = (path) => new URL(path, import.meta.url);

buildDist(here(".."));
// Built beside console/dist and moved in file by file, as buildDist does: a broker starting while
// a test packs the package must never find the console half written.
// A NODE_ENV other than production (vitest sets "test" or "development" for the packs its tests
// make) would make Vite build the app for development: bigger and slower.
process.env.NODE_ENV = "production";
const consoleRoot = fileURLToPath(here("../console"));
const fresh = `${consoleRoot}/dist.build-${process.pid}`;
try {
  await build({ root: consoleRoot, configFile: `${consoleRoot}/vite.config.ts`, build: { outDir: fresh } });
  moveInto(fresh, `${consoleRoot}/dist`);
} finally {
  rmSync(fresh, { recursive: true, force: true });
}
cpSync(here("../../LICENSE"), here("../LICENSE"));
