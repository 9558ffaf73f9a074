// Builds the package as published: ESM JavaScript and .d.ts from src/ into dist/ (tsc), and the
// pgmesh/v1/options.proto that users' .proto files import into proto/ (its source is the
// repository's proto/ directory, one copy for the broker and the package).
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";

const here = (path) => new URL(path, import.meta.url);
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

rmSync(here("../dist"), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: here(".."), stdio: "inherit" });
mkdirSync(here("../proto/pgmesh/v1"), { recursive: true });
cpSync(here("../../proto/pgmesh/v1/options.proto"), here("../proto/pgmesh/v1/options.proto"));
cpSync(here("../../LICENSE"), here("../LICENSE"));
