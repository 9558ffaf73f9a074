// Builds the package as published: ESM JavaScript from src/ into dist/ (tsc). It imports
// @pgmesh/sdk's built types, so build the sdk first (the root `npm run build` does).
import { execFileSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { createRequire } from "node:module";

const here = (path) => new URL(path, import.meta.url);
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

rmSync(here("../dist"), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: here(".."), stdio: "inherit" });
cpSync(here("../../LICENSE"), here("../LICENSE"));
